//! Arithmetic, comparison, unary, normalisation, reduction and matrix ops.

use super::*;

impl Lower<'_> {
    /// Input `i` as a dynamic f32 value; other element types are refused.
    pub(super) fn float_dyn(&mut self, i: usize) -> Result<Val> {
        let v = self.arg(i)?;
        if elem_of(&v) != Elem::Float {
            unsupported!(self, "input {i} must be float32, is {:?}", elem_of(&v));
        }
        self.dynamic(i)
    }

    pub(super) fn arith(&mut self, op: &str) -> Result<Vec<V>> {
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
    pub(super) fn variadic(&mut self, op: &str) -> Result<Vec<V>> {
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

    pub(super) fn pow(&mut self) -> Result<Vec<V>> {
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

    pub(super) fn compare(&mut self, op: &str) -> Result<Vec<V>> {
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

    pub(super) fn not(&mut self) -> Result<Vec<V>> {
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

    pub(super) fn where_(&mut self) -> Result<Vec<V>> {
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

    pub(super) fn unary(&mut self, op: &str) -> Result<Vec<V>> {
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

    pub(super) fn layer_norm(&mut self) -> Result<Vec<V>> {
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

    pub(super) fn reduce(&mut self, op: &str) -> Result<Vec<V>> {
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

    pub(super) fn matmul(&mut self) -> Result<Vec<V>> {
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

    pub(super) fn gemm(&mut self) -> Result<Vec<V>> {
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
}
