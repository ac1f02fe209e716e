//! The lowering of each supported ONNX op to host folding or program ops. One function
//! per op family; `docs/models.md` lists the ops and what each becomes.

use super::host::{self, HostTensor, HostValues};
use super::proto;
use super::{tensor_from_proto, Elem, InputBinding};
use crate::error::{ModelError, Result};
use blocktorch::compose::{self as c, Backend as _, View};
use blocktorch::layout::resolve_axis;
use blocktorch::{BinaryOp, CompareOp, DType, HostData, Prim, UnaryOp};
use std::collections::HashMap;
use std::rc::Rc;
use tb_job::program::NAME_BYTES_MAX;
use tb_job::{InputSlot, InputTensorDescriptor, Program, ProgramBuilder, Val};

/// A value of the graph: known at import, or computed by the program.
#[derive(Clone)]
enum V {
    S(Rc<HostTensor>),
    D(Val),
}

struct Lower<'a> {
    b: ProgramBuilder,
    vals: HashMap<String, V>,
    /// Static values already made program constants, by ONNX name.
    consts: HashMap<String, Val>,
    opset: i64,
    node: &'a proto::NodeProto,
    index: usize,
}

/// `Err(Unsupported)` for the node being lowered.
macro_rules! unsupported {
    ($l:expr, $($arg:tt)*) => {
        return Err($l.unsupported(format!($($arg)*)))
    };
}

fn shape_of(v: &V) -> Vec<usize> {
    match v {
        V::S(t) => t.shape.clone(),
        V::D(x) => x.layout.shape().to_vec(),
    }
}

fn elem_of(v: &V) -> Elem {
    match v {
        V::S(t) => match t.values {
            HostValues::F32(_) => Elem::Float,
            HostValues::I64(_) => Elem::Int,
            HostValues::Bool(_) => Elem::Bool,
        },
        V::D(x) => match x.dtype {
            DType::F32 => Elem::Float,
            DType::I32 | DType::U32 => Elem::Int,
            DType::U8 => Elem::Bool,
        },
    }
}

fn st(t: HostTensor) -> V {
    V::S(Rc::new(t))
}

/// An ONNX axis (negative counts from the end) resolved against `rank`.
fn axis(op: &'static str, a: i64, rank: usize) -> Result<usize> {
    Ok(resolve_axis(op, a as isize, rank)?)
}

/// Constant names are capped at the artifact's limit; the tail is kept (it is the part
/// that tells weights apart).
fn const_name(name: &str) -> String {
    if name.len() <= NAME_BYTES_MAX {
        return name.to_string();
    }
    let mut start = name.len() - NAME_BYTES_MAX;
    while !name.is_char_boundary(start) {
        start += 1;
    }
    name[start..].to_string()
}

impl<'a> Lower<'a> {
    fn unsupported(&self, message: String) -> ModelError {
        let n = self.node;
        ModelError::Unsupported {
            node: if n.name().is_empty() {
                format!("#{}", self.index)
            } else {
                n.name().to_string()
            },
            op_type: if n.domain().is_empty() || n.domain() == "ai.onnx" {
                n.op_type().to_string()
            } else {
                format!("{}.{}", n.domain(), n.op_type())
            },
            opset: self.opset,
            message,
        }
    }

    /// Wraps a runtime or folding error with the node.
    fn ctx<T>(&self, r: std::result::Result<T, impl std::fmt::Display>) -> Result<T> {
        r.map_err(|e| self.unsupported(e.to_string()))
    }

    fn attr(&self, name: &str) -> Option<&'a proto::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    fn attr_i(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map(|a| a.i()).unwrap_or(default)
    }

    fn attr_f(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map(|a| a.f()).unwrap_or(default)
    }

    fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }

    fn attr_s(&self, name: &str) -> Option<String> {
        self.attr(name)
            .map(|a| String::from_utf8_lossy(a.s()).into_owned())
    }

    fn check_attrs(&self, allowed: &[&str]) -> Result<()> {
        for a in &self.node.attribute {
            if !allowed.contains(&a.name()) {
                unsupported!(self, "attribute {:?} is not supported", a.name());
            }
            if !a.ref_attr_name().is_empty() {
                unsupported!(self, "attribute references (functions) are not supported");
            }
        }
        Ok(())
    }

    fn input_name(&self, i: usize) -> Option<&'a str> {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    fn opt(&self, i: usize) -> Result<Option<V>> {
        match self.input_name(i) {
            None => Ok(None),
            Some(n) => match self.vals.get(n) {
                Some(v) => Ok(Some(v.clone())),
                None => unsupported!(self, "input {n:?} is not defined before this node"),
            },
        }
    }

    fn arg(&self, i: usize) -> Result<V> {
        match self.opt(i)? {
            Some(v) => Ok(v),
            None => unsupported!(self, "input {i} is required"),
        }
    }

    fn static_arg(&self, i: usize, what: &str) -> Result<Rc<HostTensor>> {
        match self.arg(i)? {
            V::S(t) => Ok(t),
            V::D(_) => unsupported!(
                self,
                "{what} (input {i}) must be known at import, not computed at run time"
            ),
        }
    }

    fn static_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.input_name(i) {
            None => Ok(None),
            Some(_) => {
                let t = self.static_arg(i, what)?;
                Ok(Some(self.ctx(t.as_dims("ints"))?))
            }
        }
    }

    /// A host tensor as a program constant.
    fn param(&self, name: &str, t: &HostTensor) -> Result<Val> {
        let data = match &t.values {
            HostValues::F32(v) => HostData::F32(v.clone()),
            HostValues::I64(v) => HostData::I32(
                v.iter()
                    .map(|&x| {
                        i32::try_from(x).map_err(|_| {
                            self.unsupported(format!("constant {name:?}: {x} does not fit i32"))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            HostValues::Bool(v) => HostData::U8(v.iter().map(|&x| x as u8).collect()),
        };
        Ok(self.b.param(&const_name(name), data, &t.shape)?)
    }

    /// Input `i` as a program value (a static one becomes a constant, once per name).
    fn dynamic(&mut self, i: usize) -> Result<Val> {
        let name = self.input_name(i).unwrap_or_default().to_string();
        match self.arg(i)? {
            V::D(x) => Ok(x),
            V::S(t) => {
                if let Some(v) = self.consts.get(&name) {
                    return Ok(v.clone());
                }
                let v = self.param(&name, &t)?;
                self.consts.insert(name, v.clone());
                Ok(v)
            }
        }
    }

    fn to_dyn(&self, v: &V) -> Result<Val> {
        match v {
            V::D(x) => Ok(x.clone()),
            V::S(t) => self.param("", t),
        }
    }

    fn prim(&self, p: Prim, args: &[&Val]) -> Result<Val> {
        self.ctx(c::Backend::exec(&self.b, &p, args))
    }

    fn view(&self, x: &Val, v: View) -> Result<Val> {
        self.ctx(c::Backend::view(&self.b, x, v))
    }

    fn f32_of(&self, x: &Val) -> Result<Val> {
        if x.dtype == DType::F32 {
            Ok(x.clone())
        } else {
            self.prim(Prim::Cast(DType::F32), &[x])
        }
    }

    /// An f32 result back to the ONNX element type.
    fn back(&self, x: Val, elem: Elem) -> Result<Val> {
        match elem {
            Elem::Float => Ok(x),
            Elem::Int => self.prim(Prim::Cast(DType::I32), &[&x]),
            Elem::Bool => {
                let zero = self.ctx(c::scalar(&self.b, 0.0))?;
                self.prim(Prim::Compare(CompareOp::Ne), &[&x, &zero])
            }
        }
    }

    fn lower_node(&mut self) -> Result<Vec<V>> {
        let n = self.node;
        if !(n.domain().is_empty() || n.domain() == "ai.onnx") {
            unsupported!(self, "only the ai.onnx domain is supported");
        }
        let op = n.op_type();
        match op {
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => self.arith(op),
            "Pow" => self.pow(),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => self.compare(op),
            "Not" => self.not(),
            "Where" => self.where_(),
            "Sqrt" | "Reciprocal" | "Erf" | "Tanh" | "Exp" | "Log" | "Neg" | "Abs" | "Relu"
            | "Sigmoid" | "Sign" => self.unary(op),
            "Gelu" => {
                self.check_attrs(&["approximate"])?;
                let u = match self.attr_s("approximate").as_deref() {
                    None | Some("none") => UnaryOp::GeluErf,
                    Some("tanh") => UnaryOp::GeluTanh,
                    Some(o) => unsupported!(self, "approximate={o:?}"),
                };
                let x = self.float_dyn(0)?;
                Ok(vec![V::D(self.prim(Prim::Unary(u), &[&x])?)])
            }
            "Softmax" => {
                self.check_attrs(&["axis"])?;
                let x = self.float_dyn(0)?;
                let a = self.attr_i("axis", -1);
                Ok(vec![V::D(self.ctx(c::softmax(&self.b, &x, a as isize))?)])
            }
            "LayerNormalization" => self.layer_norm(),
            "ReduceMean" | "ReduceSum" | "ReduceMax" => self.reduce(op),
            "MatMul" => self.matmul(),
            "Gemm" => self.gemm(),
            "Gather" => self.gather(),
            "Reshape" => self.reshape(),
            "Flatten" => self.flatten(),
            "Transpose" => self.transpose(),
            "Unsqueeze" | "Squeeze" => self.squeeze(op),
            "Concat" => self.concat(),
            "Slice" => self.slice(),
            "Split" => self.split(),
            "Expand" => self.expand(),
            "Cast" => self.cast(),
            "Constant" => self.constant(),
            "ConstantOfShape" => self.constant_of_shape(),
            "Shape" => {
                self.check_attrs(&["start", "end"])?;
                let s: Vec<i64> = shape_of(&self.arg(0)?).iter().map(|&d| d as i64).collect();
                let r = s.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (a, e) = (clamp(self.attr_i("start", 0)), clamp(self.attr_i("end", r)));
                Ok(vec![st(HostTensor::ints(s[a..e.max(a)].to_vec()))])
            }
            "Size" => {
                self.check_attrs(&[])?;
                let n: usize = shape_of(&self.arg(0)?).iter().product();
                Ok(vec![st(HostTensor::new(
                    vec![],
                    HostValues::I64(vec![n as i64]),
                )?)])
            }
            "Range" => self.range(),
            "Identity" => {
                self.check_attrs(&[])?;
                Ok(vec![self.arg(0)?])
            }
            "Dropout" => {
                self.check_attrs(&["seed"])?;
                match self.opt(2)? {
                    None => {}
                    Some(V::S(t)) if t.as_ints("Dropout").ok().as_deref() == Some(&[0]) => {}
                    Some(_) => unsupported!(self, "training mode is not supported"),
                }
                // Inference: the input unchanged, and a mask of all true.
                let x = self.arg(0)?;
                let s = shape_of(&x);
                let n = host::numel(&s)?;
                let mask = st(HostTensor::new(s, HostValues::Bool(vec![true; n]))?);
                Ok(vec![x, mask])
            }
            other => unsupported!(self, "op {other:?} is not supported (see docs/models.md)"),
        }
    }
}

/// Lowers `graph` to a program for `descriptor`.
pub(super) fn lower(
    graph: &proto::GraphProto,
    opset: i64,
    inputs: &[InputBinding],
    descriptor: &InputTensorDescriptor,
    constants: &std::collections::BTreeMap<String, HostTensor>,
) -> Result<(Program, Vec<String>)> {
    let placeholder = proto::NodeProto::default();
    let mut l = Lower {
        b: ProgramBuilder::new(descriptor),
        vals: HashMap::new(),
        consts: HashMap::new(),
        opset,
        node: &placeholder,
        index: 0,
    };
    for t in &graph.initializer {
        l.vals
            .insert(t.name().to_string(), st(tensor_from_proto(t)?));
    }
    for b in inputs {
        let v = match b.slot {
            None if constants.contains_key(&b.name) => st(constants[&b.name].clone()),
            None => {
                let n: usize = b.shape.iter().product();
                let values = match b.elem {
                    Elem::Float => HostValues::F32(vec![0.0; n]),
                    Elem::Int => HostValues::I64(vec![0; n]),
                    Elem::Bool => HostValues::Bool(vec![false; n]),
                };
                st(HostTensor::new(b.shape.clone(), values)?)
            }
            Some(slot) => {
                let raw = l.b.input(slot)?;
                let v = match (slot, b.elem) {
                    (InputSlot::Main, Elem::Float | Elem::Int | Elem::Bool) => raw,
                    (InputSlot::Mask, Elem::Int) => l.b.exec(&Prim::Cast(DType::I32), &[&raw])?,
                    (InputSlot::Bias(_), Elem::Int) => {
                        l.b.exec(&Prim::Cast(DType::I32), &[&raw])?
                    }
                    (InputSlot::Bias(_), Elem::Bool) => {
                        let zero = c::scalar(&l.b, 0.0)?;
                        l.b.exec(&Prim::Compare(CompareOp::Ne), &[&raw, &zero])?
                    }
                    _ => raw,
                };
                V::D(v)
            }
        };
        l.vals.insert(b.name.clone(), v);
    }
    for (i, node) in graph.node.iter().enumerate() {
        l.node = node;
        l.index = i;
        let outs = l.lower_node()?;
        if outs.len() < node.output.iter().filter(|o| !o.is_empty()).count() {
            return Err(l.unsupported(format!(
                "{} outputs requested, {} produced",
                node.output.len(),
                outs.len()
            )));
        }
        for (name, v) in node.output.iter().zip(outs) {
            if !name.is_empty() {
                if let V::S(t) = &v {
                    if t.values.len() > blocktorch::ELEMENTS_MAX {
                        return Err(l.unsupported("folded tensor too large".into()));
                    }
                }
                l.vals.insert(name.clone(), v);
            }
        }
    }
    let mut names = Vec::with_capacity(graph.output.len());
    for o in &graph.output {
        let name = o.name().to_string();
        let Some(v) = l.vals.get(&name).cloned() else {
            return Err(ModelError::Malformed {
                what: "ONNX model",
                message: format!("output {name:?} is not produced by any node"),
            });
        };
        if name.len() > NAME_BYTES_MAX {
            return Err(ModelError::TooLarge {
                what: "output name bytes",
                got: name.len() as u64,
                max: NAME_BYTES_MAX as u64,
            });
        }
        // Every output is an op's value: constants and views are materialised.
        let x = l.to_dyn(&v)?;
        let y = l.b.exec(&Prim::Copy, &[&x])?;
        l.b.output(&name, &y);
        names.push(name);
    }
    if names.is_empty() {
        return Err(ModelError::Malformed {
            what: "ONNX model",
            message: "the graph has no outputs".into(),
        });
    }
    Ok((l.b.finish(), names))
}

// After the macros above, which these use.
mod math;
mod shape;
