//! The fuzz target bodies (`fuzz/fuzz_targets/import_onnx.rs`, `read_safetensors.rs`),
//! shared with the stable property tests (`tests/readers.rs`).

use crate::onnx::{import, ImportOptions};
use crate::weights::Weights;

/// Any bytes as an ONNX file: never a panic. An import that succeeds gives a program
/// that validates and encodes (every dynamic axis is given size 2).
pub fn import_onnx(data: &[u8]) {
    let mut opts = ImportOptions::default();
    if let Ok(model) = crate::onnx::decode_model(data) {
        for v in model.graph.iter().flat_map(|g| &g.input) {
            let dims = v
                .r#type
                .as_ref()
                .and_then(|t| t.value.as_ref())
                .and_then(|t| match t {
                    crate::onnx::proto::type_proto::Value::TensorType(t) => t.shape.as_ref(),
                    _ => None,
                });
            for d in dims.iter().flat_map(|s| &s.dim) {
                if let Some(crate::onnx::proto::tensor_shape_proto::dimension::Value::DimParam(p)) =
                    &d.value
                {
                    opts.dims.insert(p.clone(), 2);
                }
            }
        }
    }
    if let Ok(m) = import(data, &opts) {
        let kernel = blocktorch::Fabric::kernel_variant_digest(&blocktorch::CpuFabric::reference());
        let (d, input) = zero_input(&m);
        if let Ok(job) = tb_job::Job::new(kernel, d, m.program.clone(), input) {
            tb_job::validate(&job).expect("an imported program validates");
        }
    }
}

fn zero_input(m: &crate::onnx::Imported) -> (tb_job::InputTensorDescriptor, blocktorch::HostData) {
    let d = m.descriptor.clone();
    let n: usize = d.shape.iter().product();
    let input = match d.dtype {
        blocktorch::DType::F32 => blocktorch::HostData::F32(vec![0.0; n]),
        blocktorch::DType::I32 => blocktorch::HostData::I32(vec![0; n]),
        blocktorch::DType::U32 => blocktorch::HostData::U32(vec![0; n]),
        blocktorch::DType::U8 => blocktorch::HostData::U8(vec![0; n]),
    };
    (d, input)
}

/// Any bytes as a safetensors file: never a panic; every tensor of a file that opens
/// reads or is refused with a typed error.
pub fn read_safetensors(data: &[u8]) {
    if let Ok(w) = Weights::from_bytes(data.to_vec(), "fuzz") {
        for n in w.names().unwrap_or_default() {
            let _ = w.get(&n);
        }
    }
}
