//! ONNX import: an ONNX model (protobuf, decoded by prost from the official
//! `onnx.proto`) lowered to a BlockTorch program with its initializers as weights.
//!
//! Every shape is fixed at import: a dynamic axis (`dim_param`) takes its size from
//! [`ImportOptions::dims`], so the job's declared input shape is the model's. What is
//! known at import — initializers, `Constant`s, and the shape subgraphs exporters write
//! (`Shape`, `Gather` on a shape, `Concat` of dims, …) — is folded on the host
//! ([`host`]); the rest becomes the program's ops, through the runtime's composites
//! (`blocktorch::compose`), so an imported model runs, traces and is refereed like any
//! other. Supported ops and their lowering: `docs/models.md`.
//!
//! The graph's inputs map to the job's input slots ([`InputBinding`]): the first is
//! the main input, an input named [`ImportOptions::mask_input`] is the attention mask,
//! inputs listed in [`ImportOptions::zero_inputs`] are folded to zeros, and any other
//! is a bias array of the descriptor (f32, converted to the ONNX type at run time).

pub mod host;
mod lower;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto;

/// The protobuf runtime the bindings are generated for (to encode or edit a model).
pub use prost;

use crate::error::{ModelError, Result};
use blocktorch::DType;
use host::{HostTensor, HostValues};
use prost::Message;
use proto::tensor_proto::DataType;
use std::collections::{BTreeMap, BTreeSet};
use tb_job::format::{SideTensor, BIAS_ARRAYS_MAX};
use tb_job::{InputSlot, InputTensorDescriptor, Normalisation, Program};

/// The lowest ai.onnx opset imported.
pub const OPSET_MIN: i64 = 13;
/// The highest ai.onnx opset imported (ONNX 1.23's). Ops whose meaning changed inside the
/// range are lowered per version; later versions of the supported ops only add element
/// types or attributes, which are refused unless supported (`docs/models.md`).
pub const OPSET_MAX: i64 = 28;
/// Largest ONNX file read (protobuf's own limit is 2 GiB; a model object is at most
/// `tb_job::format::MODEL_BYTES_MAX`).
pub const ONNX_BYTES_MAX: u64 = 1 << 30;
/// Most nodes in a graph.
pub const ONNX_NODES_MAX: usize = 100_000;
/// Largest rank of any tensor in a graph (the runtime's).
pub const ONNX_RANK_MAX: usize = blocktorch::RANK_MAX;

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Sizes of dynamic axes, by `dim_param` name (`batch` → 1, `sequence` → 128).
    pub dims: BTreeMap<String, usize>,
    /// Inputs folded to zeros at import (for example `token_type_ids`).
    pub zero_inputs: BTreeSet<String>,
    /// The input that is the attention mask; `None` means `attention_mask`.
    pub mask_input: Option<String>,
    /// Inputs folded to these values at import (their shape must be the input's): the
    /// ONNX backend tests pass shape parameters (`axes`, `shape`, `starts`) as inputs,
    /// which an exported model holds as initializers.
    pub constant_inputs: BTreeMap<String, HostTensor>,
}

/// The element type of an ONNX input as the job carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// float32.
    Float,
    /// An integer type; at run time i32.
    Int,
    /// bool; at run time u8 (0 or 1).
    Bool,
}

/// Where one graph input comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct InputBinding {
    /// The ONNX input's name.
    pub name: String,
    /// Its element type.
    pub elem: Elem,
    /// Its shape (dynamic axes resolved).
    pub shape: Vec<usize>,
    /// The job's slot, or `None` when folded at import (to zeros, or to a constant given).
    pub slot: Option<InputSlot>,
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The program (the model object is `program.encode()`).
    pub program: Program,
    /// The descriptor jobs of this model declare (side tensors zero-filled).
    pub descriptor: InputTensorDescriptor,
    /// How each graph input is supplied, in the graph's order.
    pub inputs: Vec<InputBinding>,
    /// The graph's outputs, in order (the program's output names).
    pub outputs: Vec<String>,
    /// The graph's ai.onnx opset.
    pub opset: i64,
    /// Nodes in the graph, and ops in the program.
    pub nodes: usize,
}

fn elem_of(dt: i32) -> Option<Elem> {
    match DataType::try_from(dt).ok()? {
        DataType::Float => Some(Elem::Float),
        DataType::Int64
        | DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32 => Some(Elem::Int),
        DataType::Bool => Some(Elem::Bool),
        _ => None,
    }
}

fn dtype_name(dt: i32) -> String {
    DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {dt}"))
}

/// Decodes an ONNX `TensorProto` (an initializer, a `Constant`, or a test's
/// `input_N.pb`) to a host tensor. External data and types other than float32, the
/// integers and bool are refused.
pub fn tensor_from_proto(t: &proto::TensorProto) -> Result<HostTensor> {
    let name = t.name().to_string();
    let err = |message: String| ModelError::Input {
        name: name.clone(),
        message,
    };
    if t.data_location() == proto::tensor_proto::DataLocation::External {
        return Err(err(
            "external data is not supported: save the model with its weights inside".into(),
        ));
    }
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    if t.dims.len() > ONNX_RANK_MAX {
        return Err(ModelError::TooLarge {
            what: "tensor rank",
            got: t.dims.len() as u64,
            max: ONNX_RANK_MAX as u64,
        });
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("negative dim {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let n = host::numel(&shape)?;
    let raw = t.raw_data();
    let from_raw = |width: usize| -> Result<Option<Vec<&[u8]>>> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() != n * width {
            return Err(err(format!(
                "raw_data holds {} bytes, the shape needs {}",
                raw.len(),
                n * width
            )));
        }
        Ok(Some(raw.chunks_exact(width).collect()))
    };
    let dt = t.data_type();
    let values = match DataType::try_from(dt) {
        Ok(DataType::Float) => HostValues::F32(match from_raw(4)? {
            Some(c) => c
                .iter()
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None => t.float_data.clone(),
        }),
        Ok(DataType::Int64) => HostValues::I64(match from_raw(8)? {
            Some(c) => c
                .iter()
                .map(|b| i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
                .collect(),
            None => t.int64_data.clone(),
        }),
        Ok(DataType::Uint32) => HostValues::I64(match from_raw(4)? {
            Some(c) => c
                .iter()
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
            None => t.uint64_data.iter().map(|&v| v as i64).collect(),
        }),
        Ok(
            d @ (DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint8
            | DataType::Uint16),
        ) => {
            let width = match d {
                DataType::Int32 => 4,
                DataType::Int16 | DataType::Uint16 => 2,
                _ => 1,
            };
            HostValues::I64(match from_raw(width)? {
                Some(c) => c
                    .iter()
                    .map(|b| match d {
                        DataType::Int32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                        DataType::Int16 => i16::from_le_bytes([b[0], b[1]]) as i64,
                        DataType::Uint16 => u16::from_le_bytes([b[0], b[1]]) as i64,
                        DataType::Int8 => b[0] as i8 as i64,
                        _ => b[0] as i64,
                    })
                    .collect(),
                None => t.int32_data.iter().map(|&v| v as i64).collect(),
            })
        }
        Ok(DataType::Bool) => HostValues::Bool(match from_raw(1)? {
            Some(c) => c.iter().map(|b| b[0] != 0).collect(),
            None => t.int32_data.iter().map(|&v| v != 0).collect(),
        }),
        _ => {
            return Err(err(format!(
                "{} tensors are not supported (float32, integers and bool are)",
                dtype_name(dt)
            )))
        }
    };
    HostTensor::new(shape, values).map_err(|e| err(e.to_string()))
}

/// Decodes one protobuf message of at most `ONNX_BYTES_MAX` bytes; `what` names it in
/// errors.
fn decode_capped<M: Message + Default>(
    bytes: &[u8],
    what: &'static str,
    size: &'static str,
) -> Result<M> {
    if bytes.len() as u64 > ONNX_BYTES_MAX {
        return Err(ModelError::TooLarge {
            what: size,
            got: bytes.len() as u64,
            max: ONNX_BYTES_MAX,
        });
    }
    M::decode(bytes).map_err(|e| ModelError::Malformed {
        what,
        message: e.to_string(),
    })
}

/// Decodes a serialized `TensorProto` (the backend tests' `input_N.pb`).
pub fn tensor_from_bytes(bytes: &[u8]) -> Result<HostTensor> {
    tensor_from_proto(&decode_capped::<proto::TensorProto>(
        bytes,
        "ONNX tensor",
        "tensor file bytes",
    )?)
}

/// Decodes an ONNX file's bytes.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto> {
    let model: proto::ModelProto = decode_capped(bytes, "ONNX model", "ONNX file bytes")?;
    if model.graph.is_none() {
        return Err(ModelError::Malformed {
            what: "ONNX model",
            message: "no graph (is this an ONNX file?)".into(),
        });
    }
    Ok(model)
}

/// The model's ai.onnx opset, checked against the supported range.
pub fn opset_of(model: &proto::ModelProto) -> Result<i64> {
    let mut opset = None;
    for o in &model.opset_import {
        match o.domain() {
            "" | "ai.onnx" => opset = Some(o.version()),
            "ai.onnx.ml" => {}
            other => {
                return Err(ModelError::UnsupportedOpset {
                    domain: other.to_string(),
                    version: o.version(),
                    min: OPSET_MIN,
                    max: OPSET_MAX,
                })
            }
        }
    }
    let v = opset.ok_or_else(|| ModelError::Malformed {
        what: "ONNX model",
        message: "no ai.onnx opset import".into(),
    })?;
    if !(OPSET_MIN..=OPSET_MAX).contains(&v) {
        return Err(ModelError::UnsupportedOpset {
            domain: "ai.onnx".into(),
            version: v,
            min: OPSET_MIN,
            max: OPSET_MAX,
        });
    }
    Ok(v)
}

/// The shape and element type of a graph input, with dynamic axes resolved.
fn input_signature(v: &proto::ValueInfoProto, opts: &ImportOptions) -> Result<(Elem, Vec<usize>)> {
    let name = v.name().to_string();
    let err = |message: String| ModelError::Input {
        name: name.clone(),
        message,
    };
    let Some(proto::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(err(
            "not a tensor (sequences, maps and optionals are not supported)".into(),
        ));
    };
    let elem = elem_of(t.elem_type()).ok_or_else(|| {
        err(format!(
            "{} inputs are not supported (float32, integers and bool are)",
            dtype_name(t.elem_type())
        ))
    })?;
    let dims = t
        .shape
        .as_ref()
        .ok_or_else(|| err("the model does not declare its shape".into()))?;
    if dims.dim.len() > ONNX_RANK_MAX {
        return Err(err(format!(
            "rank {} is above {ONNX_RANK_MAX}",
            dims.dim.len()
        )));
    }
    let mut shape = Vec::with_capacity(dims.dim.len());
    for (i, d) in dims.dim.iter().enumerate() {
        use proto::tensor_shape_proto::dimension::Value;
        shape.push(match &d.value {
            Some(Value::DimValue(n)) if *n >= 0 => *n as usize,
            Some(Value::DimParam(p)) => *opts.dims.get(p).ok_or_else(|| {
                err(format!(
                    "dynamic axis {i} ({p:?}) needs a size: --dim {p}=N"
                ))
            })?,
            _ => {
                return Err(err(format!(
                    "axis {i} has no size: name it in the model or give its size"
                )))
            }
        });
    }
    host::numel(&shape).map_err(|e| err(e.to_string()))?;
    Ok((elem, shape))
}

/// Imports an ONNX model from its bytes.
pub fn import(bytes: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let model = decode_model(bytes)?;
    let opset = opset_of(&model)?;
    let graph = model.graph.as_ref().ok_or_else(|| ModelError::Malformed {
        what: "ONNX model",
        message: "no graph".into(),
    })?;
    if graph.node.len() > ONNX_NODES_MAX {
        return Err(ModelError::TooLarge {
            what: "ONNX graph nodes",
            got: graph.node.len() as u64,
            max: ONNX_NODES_MAX as u64,
        });
    }
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let mask_name = opts.mask_input.as_deref().unwrap_or("attention_mask");
    let mut inputs = Vec::new();
    let mut bias = 0u8;
    for v in graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name()))
    {
        let (elem, shape) = input_signature(v, opts)?;
        if let Some(t) = opts.constant_inputs.get(v.name()) {
            if t.shape != shape || elem_of_values(&t.values) != elem {
                return Err(ModelError::Input {
                    name: v.name().to_string(),
                    message: format!(
                        "the constant given is {:?} {}, the input is {shape:?} {elem:?}",
                        t.shape,
                        t.values.kind()
                    ),
                });
            }
        }
        let slot =
            if opts.zero_inputs.contains(v.name()) || opts.constant_inputs.contains_key(v.name()) {
                None
            } else if inputs
                .iter()
                .all(|b: &InputBinding| b.slot != Some(InputSlot::Main))
                && v.name() != mask_name
            {
                Some(InputSlot::Main)
            } else if v.name() == mask_name && elem != Elem::Float {
                Some(InputSlot::Mask)
            } else {
                if bias as usize >= BIAS_ARRAYS_MAX {
                    return Err(ModelError::Input {
                        name: v.name().to_string(),
                        message: format!("a job carries at most {BIAS_ARRAYS_MAX} side inputs"),
                    });
                }
                bias += 1;
                Some(InputSlot::Bias(bias - 1))
            };
        inputs.push(InputBinding {
            name: v.name().to_string(),
            elem,
            shape,
            slot,
        });
    }
    if !inputs.iter().any(|b| b.slot == Some(InputSlot::Main)) {
        return Err(ModelError::Input {
            name: String::new(),
            message: "the graph has no input a job can supply".into(),
        });
    }
    let descriptor = descriptor_for(&inputs);
    let (program, outputs) =
        lower::lower(graph, opset, &inputs, &descriptor, &opts.constant_inputs)?;
    Ok(Imported {
        program,
        descriptor,
        inputs,
        outputs,
        opset,
        nodes: graph.node.len(),
    })
}

fn elem_of_values(v: &HostValues) -> Elem {
    match v {
        HostValues::F32(_) => Elem::Float,
        HostValues::I64(_) => Elem::Int,
        HostValues::Bool(_) => Elem::Bool,
    }
}

fn slot_dtype(elem: Elem) -> DType {
    match elem {
        Elem::Float => DType::F32,
        Elem::Int => DType::I32,
        Elem::Bool => DType::U8,
    }
}

/// The descriptor of a job for these bindings, side tensors zero-filled.
fn descriptor_for(inputs: &[InputBinding]) -> InputTensorDescriptor {
    let main = inputs
        .iter()
        .find(|b| b.slot == Some(InputSlot::Main))
        .map(|b| (slot_dtype(b.elem), b.shape.clone()))
        .unwrap_or((DType::F32, vec![]));
    let mut d = InputTensorDescriptor::dense(main.0, &main.1, Normalisation::None);
    for b in inputs {
        let n: usize = b.shape.iter().product();
        match b.slot {
            Some(InputSlot::Mask) => {
                d.attention_mask = Some(SideTensor {
                    shape: b.shape.clone(),
                    data: blocktorch::HostData::U8(vec![0; n]),
                })
            }
            Some(InputSlot::Bias(_)) => d.bias.push(SideTensor {
                shape: b.shape.clone(),
                data: blocktorch::HostData::F32(vec![0.0; n]),
            }),
            _ => {}
        }
    }
    d
}

/// Largest integer magnitude an int input carried as f32 (a bias array) keeps exactly.
pub const F32_EXACT_INT_MAX: i64 = 1 << 24;

impl Imported {
    /// The descriptor and main input of a job that feeds `tensors` (one per graph input,
    /// in order; folded inputs are ignored) to this model.
    pub fn job_input(
        &self,
        tensors: &[HostTensor],
    ) -> Result<(InputTensorDescriptor, blocktorch::HostData)> {
        if tensors.len() != self.inputs.len() {
            return Err(ModelError::Input {
                name: String::new(),
                message: format!(
                    "the model takes {} inputs, {} given",
                    self.inputs.len(),
                    tensors.len()
                ),
            });
        }
        let mut d = self.descriptor.clone();
        let mut main = blocktorch::HostData::F32(Vec::new());
        for (b, t) in self.inputs.iter().zip(tensors) {
            let err = |message: String| ModelError::Input {
                name: b.name.clone(),
                message,
            };
            if t.shape != b.shape {
                return Err(err(format!(
                    "shape {:?}, the model was imported for {:?}",
                    t.shape, b.shape
                )));
            }
            let ints = || -> Result<Vec<i64>> {
                t.as_ints("input")
                    .map_err(|_| err("expected integers".into()))
            };
            match b.slot {
                None => {}
                Some(InputSlot::Main) => {
                    main = match b.elem {
                        Elem::Float => match &t.values {
                            HostValues::F32(v) => blocktorch::HostData::F32(v.clone()),
                            _ => return Err(err("expected float32 values".into())),
                        },
                        Elem::Int => blocktorch::HostData::I32(
                            ints()?
                                .into_iter()
                                .map(|v| {
                                    i32::try_from(v)
                                        .map_err(|_| err(format!("{v} does not fit i32")))
                                })
                                .collect::<Result<_>>()?,
                        ),
                        Elem::Bool => blocktorch::HostData::U8(
                            ints()?.into_iter().map(|v| (v != 0) as u8).collect(),
                        ),
                    }
                }
                Some(InputSlot::Mask) => {
                    let data = ints()?
                        .into_iter()
                        .map(|v| {
                            u8::try_from(v)
                                .map_err(|_| err(format!("mask value {v} is not 0..=255")))
                        })
                        .collect::<Result<_>>()?;
                    d.attention_mask = Some(SideTensor {
                        shape: b.shape.clone(),
                        data: blocktorch::HostData::U8(data),
                    });
                }
                Some(InputSlot::Bias(i)) => {
                    let data = match &t.values {
                        HostValues::F32(v) => v.clone(),
                        _ => ints()?
                            .into_iter()
                            .map(|v| {
                                if v.abs() > F32_EXACT_INT_MAX {
                                    Err(err(format!(
                                        "{v} is not exact as a side input (|v| ≤ 2^24)"
                                    )))
                                } else {
                                    Ok(v as f32)
                                }
                            })
                            .collect::<Result<_>>()?,
                    };
                    d.bias[i as usize] = SideTensor {
                        shape: b.shape.clone(),
                        data: blocktorch::HostData::F32(data),
                    };
                }
                Some(InputSlot::Padding) => return Err(err("padding slot is never bound".into())),
            }
        }
        Ok((d, main))
    }
}
