//! Building programs: [`ProgramBuilder`] implements `blocktorch::compose::Backend`, so
//! every composite of the runtime (softmax, layer-norm, attention, …) is recorded as the
//! primitives and views it runs — exactly the ops a fabric executes and the referee
//! re-executes.

use crate::format::InputTensorDescriptor;
use crate::program::{view_layout, Const, InputSlot, Node, Op, Output, Program, ValueInfo};
use blocktorch::compose::{Backend, View};
use blocktorch::layout::Layout;
use blocktorch::{DType, HostData, Prim, Result, TensorError};
use std::cell::RefCell;

/// A value of a program being built.
#[derive(Clone, Debug, PartialEq)]
pub struct Val {
    /// Its value id.
    pub id: u32,
    /// Its dtype.
    pub dtype: DType,
    /// Its layout at run time.
    pub layout: Layout,
}

#[derive(Default)]
struct Inner {
    consts: Vec<Const>,
    ops: Vec<Op>,
    values: Vec<ValueInfo>,
    outputs: Vec<Output>,
}

/// Records a program. Constants get value ids as they are added; [`ProgramBuilder::finish`]
/// renumbers so that every constant precedes every op, as the format requires.
pub struct ProgramBuilder {
    descriptor: InputTensorDescriptor,
    inner: RefCell<Inner>,
}

/// A value id inside the builder: constants and ops are numbered separately until
/// `finish`; bit 31 marks an op.
const OP_BIT: u32 = 1 << 31;

impl ProgramBuilder {
    /// A builder for jobs with this input descriptor.
    pub fn new(descriptor: &InputTensorDescriptor) -> ProgramBuilder {
        ProgramBuilder {
            descriptor: descriptor.clone(),
            inner: RefCell::new(Inner::default()),
        }
    }

    /// A named constant (a weight).
    pub fn param(&self, name: &str, data: HostData, shape: &[usize]) -> Result<Val> {
        let layout = data.layout_as(shape)?;
        let mut inner = self.inner.borrow_mut();
        let id = inner.consts.len() as u32;
        let dtype = data.dtype();
        inner.consts.push(Const {
            name: name.to_string(),
            shape: shape.to_vec(),
            data,
        });
        Ok(Val { id, dtype, layout })
    }

    /// Reads an input slot.
    pub fn input(&self, slot: InputSlot) -> Result<Val> {
        let d = &self.descriptor;
        let missing = |what: &str| TensorError::InvalidArgument {
            op: "input",
            message: format!("the descriptor has no {what}"),
        };
        let (dtype, shape): (DType, Vec<usize>) = match slot {
            InputSlot::Main => (d.input_dtype(), d.shape.clone()),
            InputSlot::Mask => (
                DType::U8,
                d.attention_mask
                    .as_ref()
                    .ok_or_else(|| missing("mask"))?
                    .shape
                    .clone(),
            ),
            InputSlot::Padding => {
                d.padding_token.ok_or_else(|| missing("padding token"))?;
                (DType::I32, vec![])
            }
            InputSlot::Bias(i) => (
                DType::F32,
                d.bias
                    .get(i as usize)
                    .ok_or_else(|| missing("bias array"))?
                    .shape
                    .clone(),
            ),
        };
        let info = ValueInfo {
            dtype,
            layout: Layout::contiguous(&shape)?,
        };
        Ok(self.push(Node::Input(slot), &[], info))
    }

    fn push(&self, node: Node, args: &[&Val], info: ValueInfo) -> Val {
        let mut inner = self.inner.borrow_mut();
        let id = OP_BIT | inner.ops.len() as u32;
        inner.ops.push(Op {
            node,
            args: args.iter().map(|a| a.id).collect(),
        });
        inner.values.push(info.clone());
        Val {
            id,
            dtype: info.dtype,
            layout: info.layout,
        }
    }

    /// Declares `v` an output named `name`.
    pub fn output(&self, name: &str, v: &Val) {
        self.inner.borrow_mut().outputs.push(Output {
            name: name.to_string(),
            value: v.id,
        });
    }

    /// The program, for `blocktorch::RUNTIME_VERSION`.
    pub fn finish(self) -> Program {
        let inner = self.inner.into_inner();
        let nc = inner.consts.len() as u32;
        let fix = |id: u32| {
            if id & OP_BIT != 0 {
                nc + (id & !OP_BIT)
            } else {
                id
            }
        };
        Program {
            runtime: blocktorch::RUNTIME_VERSION.to_string(),
            consts: inner.consts,
            ops: inner
                .ops
                .into_iter()
                .map(|o| Op {
                    node: o.node,
                    args: o.args.into_iter().map(fix).collect(),
                })
                .collect(),
            outputs: inner
                .outputs
                .into_iter()
                .map(|o| Output {
                    name: o.name,
                    value: fix(o.value),
                })
                .collect(),
        }
    }
}

impl Backend for ProgramBuilder {
    type T = Val;
    fn shape(&self, t: &Val) -> Vec<usize> {
        t.layout.shape().to_vec()
    }
    fn dtype(&self, t: &Val) -> DType {
        t.dtype
    }
    fn is_contiguous(&self, t: &Val) -> bool {
        t.layout.is_contiguous()
    }
    fn exec(&self, prim: &Prim, inputs: &[&Val]) -> Result<Val> {
        let specs: Vec<(DType, &[usize])> =
            inputs.iter().map(|v| (v.dtype, v.layout.shape())).collect();
        let (dtype, shape) = prim.output_spec(&specs)?;
        let info = ValueInfo {
            dtype,
            layout: Layout::contiguous(&shape)?,
        };
        Ok(self.push(Node::Prim(prim.clone()), inputs, info))
    }
    fn view(&self, t: &Val, v: View) -> Result<Val> {
        let layout = view_layout(&t.layout, &v)?;
        let info = ValueInfo {
            dtype: t.dtype,
            layout,
        };
        Ok(self.push(Node::View(v), &[t], info))
    }
    fn constant(&self, data: HostData, shape: &[usize]) -> Result<Val> {
        self.param("", data, shape)
    }
}
