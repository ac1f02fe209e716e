//! A job's program validated against its descriptor: the runtime, every reference,
//! every op's arity, dtypes and shapes, the outputs and the cost bounds, giving the
//! [`Plan`] every fabric runs.

use crate::error::{JobError, Result};
use crate::format::{InputTensorDescriptor, Job};
use crate::program::*;
use blocktorch::layout::Layout;
use blocktorch::{DType, TensorError};

fn input_info(
    d: &InputTensorDescriptor,
    slot: InputSlot,
) -> std::result::Result<ValueInfo, TensorError> {
    let missing = |what: &str| TensorError::InvalidArgument {
        op: "input",
        message: format!("the descriptor has no {what}"),
    };
    let (dtype, shape): (DType, &[usize]) = match slot {
        InputSlot::Main => (d.input_dtype(), &d.shape),
        InputSlot::Mask => {
            let m = d
                .attention_mask
                .as_ref()
                .ok_or_else(|| missing("attention mask"))?;
            (DType::U8, &m.shape)
        }
        InputSlot::Padding => {
            d.padding_token.ok_or_else(|| missing("padding token"))?;
            (DType::I32, &[])
        }
        InputSlot::Bias(i) => {
            let b = d
                .bias
                .get(i as usize)
                .ok_or_else(|| missing(&format!("bias array {i}")))?;
            (DType::F32, &b.shape)
        }
    };
    Ok(ValueInfo {
        dtype,
        layout: Layout::contiguous(shape)?,
    })
}

/// Validates `job`'s program against its descriptor: the runtime, every reference,
/// every op's arity, dtypes and shapes (the runtime's own `Prim::output_spec` and view
/// rules), the outputs, and the cost bounds.
pub fn validate(job: &Job) -> Result<Plan> {
    let p = &job.program;
    if p.runtime != blocktorch::RUNTIME_VERSION {
        return Err(JobError::UnsupportedRuntime {
            declared: p.runtime.clone(),
            supported: blocktorch::RUNTIME_VERSION,
        });
    }
    let mut values: Vec<ValueInfo> = Vec::with_capacity(p.consts.len() + p.ops.len());
    for c in &p.consts {
        let layout = Layout::contiguous(&c.shape).map_err(|e| JobError::Op {
            op: 0,
            name: format!("constant {:?}", c.name),
            source: e,
        })?;
        values.push(ValueInfo {
            dtype: c.data.dtype(),
            layout,
        });
    }
    let mut costs = Vec::with_capacity(p.ops.len());
    let mut total = Cost::default();
    let mut last_use: Vec<Option<usize>> = vec![None; p.consts.len() + p.ops.len()];
    for (i, op) in p.ops.iter().enumerate() {
        let defined = values.len();
        for (a, v) in op.args.iter().enumerate() {
            if *v as usize >= defined {
                return Err(JobError::BadReference {
                    op: i,
                    arg: a,
                    value: *v as u64,
                    defined: defined as u64,
                });
            }
            last_use[*v as usize] = Some(i);
        }
        let op_err = |source: TensorError| JobError::Op {
            op: i,
            name: node_name(&op.node),
            source,
        };
        let arity = |want: usize| -> Result<()> {
            if op.args.len() != want {
                return Err(op_err(TensorError::InvalidArgument {
                    op: "program",
                    message: format!("takes {want} arguments, has {}", op.args.len()),
                }));
            }
            Ok(())
        };
        let ins: Vec<&ValueInfo> = op.args.iter().map(|v| &values[*v as usize]).collect();
        let out = match &op.node {
            Node::Input(slot) => {
                arity(0)?;
                input_info(&job.descriptor, *slot).map_err(op_err)?
            }
            Node::Prim(prim) => {
                let specs: Vec<(DType, &[usize])> =
                    ins.iter().map(|v| (v.dtype, v.layout.shape())).collect();
                let (dtype, shape) = prim.output_spec(&specs).map_err(op_err)?;
                ValueInfo {
                    dtype,
                    layout: Layout::contiguous(&shape).map_err(op_err)?,
                }
            }
            Node::View(v) => {
                arity(1)?;
                let l = view_layout(&ins[0].layout, v).map_err(op_err)?;
                ValueInfo {
                    dtype: ins[0].dtype,
                    layout: l,
                }
            }
        };
        let c = op_cost(&op.node, &ins, &out);
        total.flops += c.flops;
        total.bytes += c.bytes;
        costs.push(c);
        values.push(out);
    }
    if total.flops > PROGRAM_FLOPS_MAX {
        return Err(JobError::CostExceeded {
            what: "FLOPs",
            value: total.flops,
            max: PROGRAM_FLOPS_MAX,
        });
    }
    if total.bytes > PROGRAM_BYTES_MAX {
        return Err(JobError::CostExceeded {
            what: "bytes",
            value: total.bytes,
            max: PROGRAM_BYTES_MAX,
        });
    }
    if p.outputs.is_empty() {
        return Err(JobError::NoOutputs);
    }
    for (k, o) in p.outputs.iter().enumerate() {
        if o.value as usize >= values.len() {
            return Err(JobError::BadOutput {
                output: k,
                name: o.name.clone(),
                value: o.value as u64,
                defined: values.len() as u64,
            });
        }
    }
    Ok(Plan {
        values,
        costs,
        total,
        last_use,
    })
}
