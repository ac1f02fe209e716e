//! The readers of outside bytes — ONNX files and safetensors files — on random and
//! mutated inputs: never a panic, always a typed error or a valid result. These are the
//! bodies of the cargo-fuzz targets `import_onnx` and `read_safetensors`
//! (`tb_models::fuzzing`), run on stable. And the errors a user meets first, each one
//! clear line.

use proptest::collection::vec;
use proptest::prelude::*;
use safetensors::tensor::{serialize, TensorView};
use safetensors::Dtype;
use tb_models::onnx::{import, ImportOptions};
use tb_models::weights::Weights;
use tb_models::ModelError;

const ATTENTION: &[u8] = include_bytes!("data/attention_block.onnx");

fn safetensors_seed() -> Vec<u8> {
    let w: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let h: Vec<u8> = (0..3u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    let views = vec![
        (
            "w",
            TensorView::new(Dtype::F32, vec![2, 3], &w).expect("view"),
        ),
        ("h", TensorView::new(Dtype::F16, vec![3], &h).expect("view")),
    ];
    serialize(views, None).expect("serialize")
}

fn mutate(seed: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = v;
        }
    }
    b.truncate(b.len().saturating_sub(cut % (b.len() + 1)));
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_onnx_never_panic(data in vec(any::<u8>(), 0..512)) {
        tb_models::fuzzing::import_onnx(&data);
    }

    #[test]
    fn a_mutated_onnx_model_imports_or_is_refused(edits in vec((any::<usize>(), any::<u8>()), 0..6), cut in 0usize..64) {
        tb_models::fuzzing::import_onnx(&mutate(ATTENTION, &edits, cut));
    }

    #[test]
    fn any_bytes_as_safetensors_never_panic(data in vec(any::<u8>(), 0..256)) {
        tb_models::fuzzing::read_safetensors(&data);
    }

    #[test]
    fn a_mutated_safetensors_file_reads_or_is_refused(edits in vec((any::<usize>(), any::<u8>()), 0..6), cut in 0usize..32) {
        tb_models::fuzzing::read_safetensors(&mutate(&safetensors_seed(), &edits, cut));
    }
}

#[test]
fn the_seeds_are_valid() {
    let mut opts = ImportOptions::default();
    opts.dims.clear();
    let m = import(ATTENTION, &opts).expect("the attention block imports");
    assert_eq!(m.outputs, vec!["y".to_string()]);
    assert!(m.program.ops.len() > 10);
    let w = Weights::from_bytes(safetensors_seed(), "seed").expect("opens");
    assert_eq!(
        w.get("h").expect("f16").data,
        vec![1.0, 1.0009766, 1.0019531]
    );
}

/// The first errors a user meets are one line each, naming what is wrong.
#[test]
fn bad_models_get_one_clear_line() {
    let one_line = |e: ModelError| {
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        s
    };
    let e = one_line(import(b"\x0a\xff\xff\xff", &ImportOptions::default()).unwrap_err());
    assert!(e.starts_with("malformed ONNX model:"), "{e}");
    let e = one_line(
        Weights::from_bytes(safetensors_seed()[..40].to_vec(), "m.safetensors")
            .err()
            .unwrap(),
    );
    assert!(e.starts_with("malformed safetensors file:"), "{e}");
    let w = Weights::from_bytes(safetensors_seed(), "m.safetensors").unwrap();
    let e = one_line(
        w.get("encoder.layer.0.attention.self.query.weight")
            .unwrap_err(),
    );
    assert_eq!(e, "m.safetensors: no tensor \"encoder.layer.0.attention.self.query.weight\" (the config asks for it)");

    // An unsupported op names the node, its op type and the opset.
    let mut m = tb_models::onnx::decode_model(ATTENTION).unwrap();
    let g = m.graph.as_mut().unwrap();
    g.node[3].op_type = Some("NonMaxSuppression".into());
    g.node[3].name = Some("nms_1".into());
    let bytes = prost::Message::encode_to_vec(&m);
    let e = one_line(import(&bytes, &ImportOptions::default()).unwrap_err());
    assert_eq!(e, "node \"nms_1\" (NonMaxSuppression, opset 20): op \"NonMaxSuppression\" is not supported (see docs/models.md)");

    // A dynamic axis without a size says how to give one.
    let mut m = tb_models::onnx::decode_model(ATTENTION).unwrap();
    let dim = &mut m.graph.as_mut().unwrap().input[0]
        .r#type
        .as_mut()
        .unwrap()
        .value;
    if let Some(tb_models::onnx::proto::type_proto::Value::TensorType(t)) = dim {
        t.shape.as_mut().unwrap().dim[0].value = Some(
            tb_models::onnx::proto::tensor_shape_proto::dimension::Value::DimParam("batch".into()),
        );
    }
    let bytes = prost::Message::encode_to_vec(&m);
    let e = one_line(import(&bytes, &ImportOptions::default()).unwrap_err());
    assert_eq!(
        e,
        "input \"x\": dynamic axis 0 (\"batch\") needs a size: --dim batch=N"
    );
    let mut opts = ImportOptions::default();
    opts.dims.insert("batch".into(), 2);
    assert!(import(&bytes, &opts).is_ok());

    // A reshape whose known dims multiply past usize (with a -1 to infer): found by the
    // `import_onnx` fuzzer on 2026-12-07 as an overflow panic; now refused.
    let mut m = tb_models::onnx::decode_model(ATTENTION).unwrap();
    let g = m.graph.as_mut().unwrap();
    let back = g
        .initializer
        .iter_mut()
        .find(|t| t.name.as_deref() == Some("back"))
        .unwrap();
    back.int64_data = vec![-1, 1 << 62, 8];
    back.raw_data = None;
    let bytes = prost::Message::encode_to_vec(&m);
    tb_models::fuzzing::import_onnx(&bytes);
    let e = one_line(import(&bytes, &ImportOptions::default()).unwrap_err());
    assert!(
        e.contains("(Reshape, opset 20)") && e.contains("multiply past the address space"),
        "{e}"
    );
}

/// The seed corpora of `import_onnx` and `read_safetensors` (`tb_primitives::seeds`,
/// `docs/fuzzing.md`): the attention block and the two-tensor file above.
#[test]
fn fuzz_seeds() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut opts = ImportOptions::default();
    opts.dims.clear();
    tb_primitives::seeds::check_seeds(dir, "import_onnx", &[ATTENTION.to_vec()], |b| {
        import(b, &opts).is_ok()
    });
    tb_primitives::seeds::check_seeds(dir, "read_safetensors", &[safetensors_seed()], |b| {
        Weights::from_bytes(b.to_vec(), "seed").is_ok()
    });
}
