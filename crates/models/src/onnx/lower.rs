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

    /// Input `i` as a dynamic f32 value; other element types are refused.
    fn float_dyn(&mut self, i: usize) -> Result<Val> {
        let v = self.arg(i)?;
        if elem_of(&v) != Elem::Float {
            unsupported!(self, "input {i} must be float32, is {:?}", elem_of(&v));
        }
        self.dynamic(i)
    }

    fn arith(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        if op != "Max" && op != "Min" && self.node.input.len() != 2 {
            unsupported!(self, "expected 2 inputs");
        }
        if (op == "Max" || op == "Min") && self.node.input.len() != 2 {
            return self.variadic(op);
        }
        let (a, b) = (self.arg(0)?, self.arg(1)?);
        let (ea, eb) = (elem_of(&a), elem_of(&b));
        if ea != eb {
            unsupported!(self, "inputs of different types ({ea:?}, {eb:?})");
        }
        if let (V::S(x), V::S(y), Elem::Int) = (&a, &b, ea) {
            let f: fn(i64, i64) -> Option<i64> = match op {
                "Add" => i64::checked_add,
                "Sub" => i64::checked_sub,
                "Mul" => i64::checked_mul,
                "Div" => i64::checked_div,
                "Max" => |a, b| Some(a.max(b)),
                _ => |a, b| Some(a.min(b)),
            };
            return Ok(vec![st(self.ctx(HostTensor::zip_ints("arith", x, y, f))?)]);
        }
        if ea == Elem::Bool {
            unsupported!(self, "arithmetic on bool");
        }
        if ea == Elem::Int && op == "Div" {
            unsupported!(self, "integer division at run time is not supported");
        }
        let bop = match op {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Max" => BinaryOp::Max,
            _ => BinaryOp::Min,
        };
        let (x, y) = (self.dynamic(0)?, self.dynamic(1)?);
        let (x, y) = (self.f32_of(&x)?, self.f32_of(&y)?);
        let r = self.prim(Prim::Binary(bop), &[&x, &y])?;
        Ok(vec![V::D(self.back(r, ea)?)])
    }

    /// `Max`/`Min` of any number of float inputs, folded left to right.
    fn variadic(&mut self, op: &str) -> Result<Vec<V>> {
        let bop = if op == "Max" {
            BinaryOp::Max
        } else {
            BinaryOp::Min
        };
        let k = self.node.input.len();
        if k == 0 {
            unsupported!(self, "no inputs");
        }
        let mut acc = self.float_dyn(0)?;
        for i in 1..k {
            let x = self.float_dyn(i)?;
            acc = self.prim(Prim::Binary(bop), &[&acc, &x])?;
        }
        if k == 1 {
            acc = self.prim(Prim::Copy, &[&acc])?;
        }
        Ok(vec![V::D(acc)])
    }

    fn pow(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let e = match self.arg(1)? {
            V::S(t) if t.values.len() == 1 => self.ctx(t.scalar_f32("Pow"))?,
            _ => unsupported!(self, "the exponent must be one value known at import"),
        };
        let x = self.float_dyn(0)?;
        let r = self.prim(Prim::Unary(UnaryOp::PowScalar(e)), &[&x])?;
        let s = shape_of(&self.arg(1)?);
        // A [1]-shaped exponent broadcasts a rank-0 base to rank 1.
        let out = host::broadcast("Pow", x.layout.shape(), &s)?;
        if out != x.layout.shape() {
            return Ok(vec![V::D(self.ctx(c::reshape(&self.b, &r, &out))?)]);
        }
        Ok(vec![V::D(r)])
    }

    fn compare(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let (a, b) = (self.arg(0)?, self.arg(1)?);
        if let (V::S(x), V::S(y)) = (&a, &b) {
            if elem_of(&a) != Elem::Float && elem_of(&b) != Elem::Float {
                let f: fn(i64, i64) -> bool = match op {
                    "Equal" => |a, b| a == b,
                    "Less" => |a, b| a < b,
                    "Greater" => |a, b| a > b,
                    "LessOrEqual" => |a, b| a <= b,
                    _ => |a, b| a >= b,
                };
                return Ok(vec![st(
                    self.ctx(HostTensor::compare_ints("compare", x, y, f))?
                )]);
            }
        }
        let cop = match op {
            "Equal" => CompareOp::Eq,
            "Less" => CompareOp::Lt,
            "Greater" => CompareOp::Gt,
            "LessOrEqual" => CompareOp::Le,
            _ => CompareOp::Ge,
        };
        let (x, y) = (self.dynamic(0)?, self.dynamic(1)?);
        let (x, y) = (self.f32_of(&x)?, self.f32_of(&y)?);
        Ok(vec![V::D(self.prim(Prim::Compare(cop), &[&x, &y])?)])
    }

    fn not(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        match self.arg(0)? {
            V::S(t) => {
                let v = self.ctx(t.as_ints("Not"))?;
                Ok(vec![st(HostTensor::new(
                    t.shape.clone(),
                    HostValues::Bool(v.iter().map(|&x| x == 0).collect()),
                )?)])
            }
            V::D(x) => {
                let f = self.f32_of(&x)?;
                let zero = self.ctx(c::scalar(&self.b, 0.0))?;
                Ok(vec![V::D(
                    self.prim(Prim::Compare(CompareOp::Eq), &[&f, &zero])?,
                )])
            }
        }
    }

    fn where_(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let (cnd, a, b) = (self.arg(0)?, self.arg(1)?, self.arg(2)?);
        if let (V::S(c0), V::S(x), V::S(y)) = (&cnd, &a, &b) {
            return Ok(vec![st(self.ctx(HostTensor::select(c0, x, y))?)]);
        }
        let (ea, eb) = (elem_of(&a), elem_of(&b));
        if ea != eb {
            unsupported!(self, "branches of different types ({ea:?}, {eb:?})");
        }
        let cond = self.dynamic(0)?;
        let cond = if cond.dtype == DType::U8 {
            cond
        } else {
            self.back(self.f32_of(&cond)?, Elem::Bool)?
        };
        let (x, y) = (self.dynamic(1)?, self.dynamic(2)?);
        let (x, y) = (self.f32_of(&x)?, self.f32_of(&y)?);
        let r = self.prim(Prim::Select, &[&cond, &x, &y])?;
        Ok(vec![V::D(self.back(r, ea)?)])
    }

    fn unary(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let v = self.arg(0)?;
        if let (V::S(t), "Neg" | "Abs") = (&v, op) {
            if let HostValues::I64(x) = &t.values {
                let f = |a: i64| {
                    if op == "Neg" {
                        a.checked_neg()
                    } else {
                        a.checked_abs()
                    }
                };
                let r = x
                    .iter()
                    .map(|&a| f(a).ok_or_else(|| self.unsupported(format!("{a} overflows"))))
                    .collect::<Result<_>>()?;
                return Ok(vec![st(HostTensor::new(
                    t.shape.clone(),
                    HostValues::I64(r),
                )?)]);
            }
        }
        let u = match op {
            "Sqrt" => UnaryOp::Sqrt,
            "Reciprocal" => UnaryOp::Recip,
            "Erf" => UnaryOp::Erf,
            "Tanh" => UnaryOp::Tanh,
            "Exp" => UnaryOp::Exp,
            "Log" => UnaryOp::Log,
            "Neg" => UnaryOp::Neg,
            "Abs" => UnaryOp::Abs,
            "Relu" => UnaryOp::Relu,
            "Sigmoid" => UnaryOp::Sigmoid,
            _ => UnaryOp::Sign,
        };
        let x = self.float_dyn(0)?;
        Ok(vec![V::D(self.prim(Prim::Unary(u), &[&x])?)])
    }

    fn layer_norm(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis", "epsilon", "stash_type"])?;
        if self.attr_i("stash_type", 1) != 1 {
            unsupported!(self, "stash_type other than float32");
        }
        let x = self.float_dyn(0)?;
        let shape = x.layout.shape().to_vec();
        let rank = shape.len();
        let a = axis("LayerNormalization", self.attr_i("axis", -1), rank)?;
        let eps = self.attr_f("epsilon", 1e-5);
        let stats = self.node.output.iter().skip(1).any(|o| !o.is_empty());
        let (mut y, extra) = if stats {
            // The steps of `compose::layer_norm`, written out to keep μ and 1/σ.
            let n: usize = shape[a..].iter().product();
            if n == 0 {
                unsupported!(self, "nothing to normalise");
            }
            let b = &self.b;
            let mut flat = shape[..a].to_vec();
            flat.push(n);
            let mut kept = shape[..a].to_vec();
            kept.extend(std::iter::repeat_n(1, rank - a));
            let stats = || -> blocktorch::Result<(Val, Val, Val)> {
                let xf = c::reshape(b, &x, &flat)?;
                let mu =
                    c::binary_scalar(b, BinaryOp::Div, &c::sum(b, &xf, &[-1], true)?, n as f32)?;
                let d = c::binary(b, BinaryOp::Sub, &xf, &mu)?;
                let sq = c::binary(b, BinaryOp::Mul, &d, &d)?;
                let var =
                    c::binary_scalar(b, BinaryOp::Div, &c::sum(b, &sq, &[-1], true)?, n as f32)?;
                let inv = c::unary(
                    b,
                    UnaryOp::Rsqrt,
                    &c::binary_scalar(b, BinaryOp::Add, &var, eps)?,
                )?;
                let y = c::reshape(b, &c::binary(b, BinaryOp::Mul, &d, &inv)?, &shape)?;
                Ok((y, c::reshape(b, &mu, &kept)?, c::reshape(b, &inv, &kept)?))
            };
            let (y, mu, inv) = self.ctx(stats())?;
            (y, vec![V::D(mu), V::D(inv)])
        } else {
            (
                self.ctx(c::layer_norm(&self.b, &x, rank - a, None, None, eps))?,
                vec![],
            )
        };
        // Scale and bias as `compose::layer_norm` applies them (y·w, then +b), broadcast.
        let w = self.float_dyn(1)?;
        y = self.prim(Prim::Binary(BinaryOp::Mul), &[&y, &w])?;
        if self.input_name(2).is_some() {
            let bias = self.float_dyn(2)?;
            y = self.prim(Prim::Binary(BinaryOp::Add), &[&y, &bias])?;
        }
        let mut out = vec![V::D(y)];
        out.extend(extra);
        Ok(out)
    }

    fn reduce(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&["axes", "keepdims", "noop_with_empty_axes"])?;
        let axes_input = op == "ReduceSum" || self.opset >= 18;
        let axes = if axes_input {
            if self.attr("axes").is_some() {
                unsupported!(self, "axes is an input from this opset, not an attribute");
            }
            self.static_ints(1, "axes")?.unwrap_or_default()
        } else {
            self.attr_ints("axes").unwrap_or_default()
        };
        let keep = self.attr_i("keepdims", 1) != 0;
        let x = self.float_dyn(0)?;
        if axes.is_empty() && self.attr_i("noop_with_empty_axes", 0) != 0 {
            return Ok(vec![V::D(x)]);
        }
        let rank = x.layout.shape().len();
        if rank == 0 {
            return Ok(vec![V::D(x)]);
        }
        let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let r = match op {
            "ReduceMean" => c::mean(&self.b, &x, &axes, keep),
            "ReduceSum" => c::sum(&self.b, &x, &axes, keep),
            _ => c::max(&self.b, &x, &axes, keep),
        };
        Ok(vec![V::D(self.ctx(r)?)])
    }

    fn matmul(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let (a, b) = (self.float_dyn(0)?, self.float_dyn(1)?);
        let (ra, rb) = (a.layout.shape().len(), b.layout.shape().len());
        if ra == 0 || rb == 0 {
            unsupported!(self, "MatMul of a scalar");
        }
        let a2 = if ra == 1 {
            self.view(&a, View::Unsqueeze(0))?
        } else {
            a
        };
        let b2 = if rb == 1 {
            self.view(&b, View::Unsqueeze(1))?
        } else {
            b
        };
        let mut y = self.prim(Prim::Matmul, &[&a2, &b2])?;
        if rb == 1 {
            let r = y.layout.shape().len();
            y = self.view(&y, View::Squeeze(r - 1))?;
        }
        if ra == 1 {
            let r = y.layout.shape().len();
            y = self.view(&y, View::Squeeze(r - if rb == 1 { 1 } else { 2 }))?;
        }
        Ok(vec![V::D(y)])
    }

    fn gemm(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["alpha", "beta", "transA", "transB"])?;
        let (mut a, mut b) = (self.float_dyn(0)?, self.float_dyn(1)?);
        if a.layout.shape().len() != 2 || b.layout.shape().len() != 2 {
            unsupported!(self, "A and B must be rank 2");
        }
        if self.attr_i("transA", 0) != 0 {
            a = self.view(&a, View::Permute(vec![1, 0]))?;
        }
        if self.attr_i("transB", 0) != 0 {
            b = self.view(&b, View::Permute(vec![1, 0]))?;
        }
        let mut y = self.prim(Prim::Matmul, &[&a, &b])?;
        let alpha = self.attr_f("alpha", 1.0);
        if alpha != 1.0 {
            y = self.ctx(c::binary_scalar(&self.b, BinaryOp::Mul, &y, alpha))?;
        }
        if self.input_name(2).is_some() {
            let mut cc = self.float_dyn(2)?;
            let beta = self.attr_f("beta", 1.0);
            if beta != 1.0 {
                cc = self.ctx(c::binary_scalar(&self.b, BinaryOp::Mul, &cc, beta))?;
            }
            y = self.prim(Prim::Binary(BinaryOp::Add), &[&y, &cc])?;
        }
        Ok(vec![V::D(y)])
    }

    fn gather(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let (data, idx) = (self.arg(0)?, self.arg(1)?);
        let ds = shape_of(&data);
        let a = axis("Gather", self.attr_i("axis", 0), ds.len())?;
        if let (V::S(t), V::S(i)) = (&data, &idx) {
            return Ok(vec![st(self.ctx(t.gather(a, i))?)]);
        }
        let elem = elem_of(&data);
        if elem_of(&idx) != Elem::Int {
            unsupported!(self, "indices must be integers");
        }
        let indices = match &idx {
            V::S(t) => {
                // Negative indices count from the end; normalised at import.
                let dim = ds[a] as i64;
                let v = self.ctx(t.as_ints("Gather"))?;
                let mut fixed = Vec::with_capacity(v.len());
                for x in v {
                    let y = if x < 0 { x + dim } else { x };
                    if !(0..dim).contains(&y) {
                        unsupported!(self, "index {x} out of range for {dim} rows");
                    }
                    fixed.push(y);
                }
                self.param(
                    "",
                    &HostTensor::new(t.shape.clone(), HostValues::I64(fixed))?,
                )?
            }
            V::D(x) => {
                // Negative indices count from the end: i + dim where i < 0 (exact in f32
                // for any table the runtime holds, |i| < 2^24 checked by the binder).
                let f = self.f32_of(x)?;
                let zero = self.ctx(c::scalar(&self.b, 0.0))?;
                let neg = self.prim(Prim::Compare(CompareOp::Lt), &[&f, &zero])?;
                let wrapped =
                    self.ctx(c::binary_scalar(&self.b, BinaryOp::Add, &f, ds[a] as f32))?;
                let fixed = self.prim(Prim::Select, &[&neg, &wrapped, &f])?;
                self.prim(Prim::Cast(DType::I32), &[&fixed])?
            }
        };
        let table = self.dynamic(0)?;
        let table = self.f32_of(&table)?;
        let rank = ds.len();
        let moved = if a == 0 {
            table
        } else {
            let mut perm = vec![a];
            perm.extend((0..rank).filter(|&d| d != a));
            let p = self.view(&table, View::Permute(perm))?;
            self.prim(Prim::Copy, &[&p])?
        };
        let mut y = self.prim(Prim::Gather, &[&moved, &indices])?;
        if a != 0 {
            let r = indices.layout.shape().len();
            let mut perm: Vec<usize> = (r..r + a).collect();
            perm.extend(0..r);
            perm.extend(r + a..y.layout.shape().len());
            y = self.view(&y, View::Permute(perm))?;
        }
        Ok(vec![V::D(self.back(y, elem)?)])
    }

    /// ONNX `Reshape`'s target: 0 copies the input's dim (unless `allowzero`), −1 is
    /// inferred.
    fn reshape_target(&self, from: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
        let n: usize = from.iter().product();
        let mut out = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &d) in spec.iter().enumerate() {
            out.push(match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                0 if !allowzero => *from.get(i).ok_or_else(|| {
                    self.unsupported(format!("dim {i} copies a missing input dim"))
                })?,
                d if d >= 0 => d as usize,
                d => unsupported!(self, "bad reshape dim {d}"),
            });
        }
        if let Some(i) = infer {
            let known: usize = out.iter().product();
            if known == 0 || !n.is_multiple_of(known) {
                unsupported!(self, "cannot infer dim {i} of {spec:?} for {from:?}");
            }
            out[i] = n / known;
        }
        if host::numel(&out)? != n {
            unsupported!(self, "cannot reshape {from:?} to {spec:?}");
        }
        Ok(out)
    }

    fn reshape_to(&mut self, v: V, shape: Vec<usize>) -> Result<V> {
        Ok(match v {
            V::S(t) => st(self.ctx(t.reshape(shape))?),
            V::D(x) => V::D(self.ctx(c::reshape(&self.b, &x, &shape))?),
        })
    }

    fn reshape(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["allowzero"])?;
        let x = self.arg(0)?;
        let spec = self.ctx(self.static_arg(1, "shape")?.as_dims("Reshape"))?;
        let target = self.reshape_target(&shape_of(&x), &spec, self.attr_i("allowzero", 0) != 0)?;
        Ok(vec![self.reshape_to(x, target)?])
    }

    fn flatten(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let a = self.attr_i("axis", 1);
        let a = if a < 0 { a + s.len() as i64 } else { a };
        if !(0..=s.len() as i64).contains(&a) {
            unsupported!(self, "axis {a} out of range");
        }
        let (l, r) = s.split_at(a as usize);
        Ok(vec![self.reshape_to(
            x,
            vec![l.iter().product(), r.iter().product()],
        )?])
    }

    fn transpose(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["perm"])?;
        let x = self.arg(0)?;
        let rank = shape_of(&x).len();
        let perm: Vec<usize> = match self.attr_ints("perm") {
            Some(p) => p
                .iter()
                .map(|&d| axis("Transpose", d, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).rev().collect(),
        };
        Ok(vec![match x {
            V::S(t) => st(self.ctx(t.permute(&perm))?),
            V::D(v) => V::D(self.view(&v, View::Permute(perm))?),
        }])
    }

    fn squeeze(&mut self, op: &str) -> Result<Vec<V>> {
        self.check_attrs(&["axes"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let axes = match self.attr_ints("axes") {
            Some(a) if self.opset < 13 => Some(a),
            Some(_) => unsupported!(self, "axes is an input from opset 13"),
            None => self.static_ints(1, "axes")?,
        };
        let target = if op == "Unsqueeze" {
            let axes = axes.ok_or_else(|| self.unsupported("axes is required".into()))?;
            let rank = s.len() + axes.len();
            let mut pos: Vec<usize> = axes
                .iter()
                .map(|&a| axis("Unsqueeze", a, rank))
                .collect::<Result<_>>()?;
            pos.sort_unstable();
            let mut out = s.clone();
            for p in pos {
                if p > out.len() {
                    unsupported!(self, "axes {axes:?} out of range");
                }
                out.insert(p, 1);
            }
            out
        } else {
            let drop: Vec<usize> = match axes {
                Some(a) => a
                    .iter()
                    .map(|&d| axis("Squeeze", d, s.len()))
                    .collect::<Result<_>>()?,
                None => (0..s.len()).filter(|&d| s[d] == 1).collect(),
            };
            if drop.iter().any(|&d| s[d] != 1) {
                unsupported!(self, "cannot squeeze a dim that is not 1 in {s:?}");
            }
            s.iter()
                .enumerate()
                .filter(|(d, _)| !drop.contains(d))
                .map(|(_, &v)| v)
                .collect()
        };
        Ok(vec![self.reshape_to(x, target)?])
    }

    fn concat(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis"])?;
        let k = self.node.input.len();
        let vals: Vec<V> = (0..k).map(|i| self.arg(i)).collect::<Result<_>>()?;
        let first = vals
            .first()
            .ok_or_else(|| self.unsupported("no inputs".into()))?;
        let rank = shape_of(first).len();
        let a = axis("Concat", self.attr_i("axis", 0), rank)?;
        if vals.iter().all(|v| matches!(v, V::S(_))) {
            let ts: Vec<&HostTensor> = vals
                .iter()
                .map(|v| match v {
                    V::S(t) => t.as_ref(),
                    V::D(_) => unreachable!("all static"),
                })
                .collect();
            return Ok(vec![st(self.ctx(HostTensor::concat(&ts, a))?)]);
        }
        let elem = elem_of(first);
        if vals.iter().any(|v| elem_of(v) != elem) {
            unsupported!(self, "inputs of different types");
        }
        let xs: Vec<Val> = (0..k).map(|i| self.dynamic(i)).collect::<Result<_>>()?;
        let xs: Vec<Val> = if elem == Elem::Float {
            xs
        } else {
            xs.iter().map(|x| self.f32_of(x)).collect::<Result<_>>()?
        };
        let refs: Vec<&Val> = xs.iter().collect();
        let y = self.prim(Prim::Concat { axis: a }, &refs)?;
        Ok(vec![V::D(self.back(y, elem)?)])
    }

    /// One slice along `axis` of `x`, with ONNX's clamping.
    fn slice_one(&self, x: V, ax: usize, start: i64, end: i64, step: i64) -> Result<V> {
        let dim = shape_of(&x)[ax] as i64;
        if step < 1 {
            unsupported!(self, "step {step}: only positive steps are supported");
        }
        let norm = |v: i64| (if v < 0 { v.saturating_add(dim) } else { v }).clamp(0, dim) as usize;
        let (s, e) = (norm(start), norm(end));
        let e = e.max(s);
        Ok(match x {
            V::S(t) => st(self.ctx(t.slice(ax, s, e, step as usize))?),
            V::D(v) => V::D(self.view(
                &v,
                View::Slice {
                    axis: ax,
                    start: s,
                    end: e,
                    step: step as usize,
                },
            )?),
        })
    }

    fn slice(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let mut x = self.arg(0)?;
        let rank = shape_of(&x).len();
        let starts = self.static_ints(1, "starts")?.unwrap_or_default();
        let ends = self.static_ints(2, "ends")?.unwrap_or_default();
        let axes = self
            .static_ints(3, "axes")?
            .unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = self
            .static_ints(4, "steps")?
            .unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            unsupported!(self, "starts, ends, axes and steps differ in length");
        }
        for i in 0..starts.len() {
            let a = axis("Slice", axes[i], rank)?;
            x = self.slice_one(x, a, starts[i], ends[i], steps[i])?;
        }
        Ok(vec![x])
    }

    fn split(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["axis", "num_outputs"])?;
        let x = self.arg(0)?;
        let s = shape_of(&x);
        let a = axis("Split", self.attr_i("axis", 0), s.len())?;
        let k = self.node.output.len();
        let sizes = match self.static_ints(1, "split")? {
            Some(v) => v,
            None => {
                let parts = self.attr_i("num_outputs", k as i64).max(1);
                let each = (s[a] as i64 + parts - 1) / parts;
                (0..parts)
                    .map(|i| each.min(s[a] as i64 - i * each).max(0))
                    .collect()
            }
        };
        if sizes.len() != k
            || sizes.iter().any(|&v| v < 0)
            || sizes.iter().sum::<i64>() != s[a] as i64
        {
            unsupported!(
                self,
                "split sizes {sizes:?} do not cover dim {} with {k} outputs",
                s[a]
            );
        }
        let mut out = Vec::with_capacity(k);
        let mut at = 0;
        for sz in sizes {
            out.push(self.slice_one(x.clone(), a, at, at + sz, 1)?);
            at += sz;
        }
        Ok(out)
    }

    fn expand(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let x = self.arg(0)?;
        let spec = self.ctx(self.static_arg(1, "shape")?.as_dims("Expand"))?;
        let spec: Vec<usize> = spec
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.unsupported(format!("bad dim {d}"))))
            .collect::<Result<_>>()?;
        let out = host::broadcast("Expand", &shape_of(&x), &spec)?;
        host::numel(&out)?;
        Ok(vec![match x {
            V::S(t) => st(self.ctx(t.expand(&out))?),
            V::D(v) => {
                let rank = v.layout.shape().len();
                let mut y = v;
                for _ in rank..out.len() {
                    y = self.view(&y, View::Unsqueeze(0))?;
                }
                V::D(self.view(&y, View::BroadcastTo(out))?)
            }
        }])
    }

    fn cast(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["to", "saturate"])?;
        let to = self.attr_i("to", 0) as i32;
        let target = match super::elem_of(to) {
            Some(e) => e,
            None => unsupported!(self, "cast to {} is not supported", super::dtype_name(to)),
        };
        let x = self.arg(0)?;
        if let V::S(t) = &x {
            let kind = match target {
                Elem::Float => HostValues::F32(vec![]),
                Elem::Int => HostValues::I64(vec![]),
                Elem::Bool => HostValues::Bool(vec![]),
            };
            return Ok(vec![st(t.cast(&kind))]);
        }
        let v = self.dynamic(0)?;
        let from = elem_of(&x);
        let y = match (from, target) {
            (a, b) if a == b => v,
            (_, Elem::Float) => self.prim(Prim::Cast(DType::F32), &[&v])?,
            (Elem::Bool, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
            (Elem::Float, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
            (_, Elem::Bool) => self.back(self.f32_of(&v)?, Elem::Bool)?,
            (_, Elem::Int) => self.prim(Prim::Cast(DType::I32), &[&v])?,
        };
        Ok(vec![V::D(y)])
    }

    fn constant(&mut self) -> Result<Vec<V>> {
        let n = self.node;
        let a = match n.attribute.as_slice() {
            [a] => a,
            _ => unsupported!(self, "expected exactly one value attribute"),
        };
        let t = match a.name() {
            "value" => {
                let t =
                    a.t.as_ref()
                        .ok_or_else(|| self.unsupported("value has no tensor".into()))?;
                self.ctx(tensor_from_proto(t))?
            }
            "value_float" => HostTensor::new(vec![], HostValues::F32(vec![a.f()]))?,
            "value_floats" => {
                HostTensor::new(vec![a.floats.len()], HostValues::F32(a.floats.clone()))?
            }
            "value_int" => HostTensor::new(vec![], HostValues::I64(vec![a.i()]))?,
            "value_ints" => HostTensor::ints(a.ints.clone()),
            other => unsupported!(self, "attribute {other:?} is not supported"),
        };
        Ok(vec![st(t)])
    }

    fn constant_of_shape(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&["value"])?;
        let dims = self.ctx(self.static_arg(0, "shape")?.as_dims("ConstantOfShape"))?;
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.unsupported(format!("bad dim {d}"))))
            .collect::<Result<_>>()?;
        let n = host::numel(&shape)?;
        let fill = match self.attr("value").and_then(|a| a.t.as_ref()) {
            Some(t) => self.ctx(tensor_from_proto(t))?,
            None => HostTensor::new(vec![1], HostValues::F32(vec![0.0]))?,
        };
        if fill.values.len() != 1 {
            unsupported!(self, "value must hold one element");
        }
        let values = match &fill.values {
            HostValues::F32(v) => HostValues::F32(vec![v[0]; n]),
            HostValues::I64(v) => HostValues::I64(vec![v[0]; n]),
            HostValues::Bool(v) => HostValues::Bool(vec![v[0]; n]),
        };
        Ok(vec![st(HostTensor::new(shape, values)?)])
    }

    fn range(&mut self) -> Result<Vec<V>> {
        self.check_attrs(&[])?;
        let (s, l, d) = (
            self.static_arg(0, "start")?,
            self.static_arg(1, "limit")?,
            self.static_arg(2, "delta")?,
        );
        match (&s.values, &l.values, &d.values) {
            (HostValues::I64(s), HostValues::I64(l), HostValues::I64(d))
                if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
            {
                let (s, l, d) = (s[0], l[0], d[0]);
                if d == 0 {
                    unsupported!(self, "delta 0");
                }
                let n = ((l - s) as f64 / d as f64).ceil().max(0.0) as usize;
                host::numel(&[n])?;
                Ok(vec![st(HostTensor::ints(
                    (0..n as i64).map(|i| s + i * d).collect(),
                ))])
            }
            _ => unsupported!(self, "only integer ranges known at import are supported"),
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
