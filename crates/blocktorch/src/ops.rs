//! The closed set of primitives a fabric implements, and their shape/dtype rules.
//!
//! Everything else (softmax, layer-norm, attention, mean, masked fill, the backward
//! passes) is composed from these in one place, `crate::compose`. Each primitive's exact
//! order of evaluation is written in `docs/spec/blocktorch-semantics.md`; a fabric must
//! follow it bit for bit. [`Prim::output_spec`] is the single validator every fabric
//! calls first, so a bad argument is refused with the same typed error everywhere.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::layout::{broadcast_shapes, check_shape};

/// Elementwise f32 → f32 functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// −x (flips the sign bit; NaN stays NaN).
    Neg,
    /// |x| (clears the sign bit).
    Abs,
    /// e^x (`math::exp`).
    Exp,
    /// ln x (`math::log`).
    Log,
    /// √x, IEEE correctly rounded.
    Sqrt,
    /// 1 / √x (two IEEE roundings).
    Rsqrt,
    /// 1 / x.
    Recip,
    /// tanh x (`math::tanh`).
    Tanh,
    /// 1 / (1 + e^−x) (`math::sigmoid`).
    Sigmoid,
    /// max(x, 0) with relu(−0) = +0 and relu(NaN) = NaN.
    Relu,
    /// GELU, tanh form (`math::gelu_tanh`).
    GeluTanh,
    /// GELU, erf form (`math::gelu_erf`).
    GeluErf,
    /// erf x (`math::erf`).
    Erf,
    /// −1, ±0 (sign kept), +1, or NaN.
    Sign,
    /// x^p for a scalar p (`pow_scalar` in the spec).
    PowScalar(f32),
}

impl UnaryOp {
    /// Every op, with a representative `PowScalar` exponent set for tests.
    pub const ALL: [UnaryOp; 19] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::GeluTanh,
        UnaryOp::GeluErf,
        UnaryOp::Erf,
        UnaryOp::Sign,
        UnaryOp::PowScalar(2.0),
        UnaryOp::PowScalar(3.0),
        UnaryOp::PowScalar(-1.5),
        UnaryOp::PowScalar(0.5),
        UnaryOp::PowScalar(0.0),
    ];
}

/// Elementwise f32 × f32 → f32 functions, with broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b.
    Add,
    /// a − b.
    Sub,
    /// a × b.
    Mul,
    /// a ÷ b.
    Div,
    /// max(a, b); NaN if either is NaN; max(+0, −0) = +0.
    Max,
    /// min(a, b); NaN if either is NaN; min(+0, −0) = −0.
    Min,
}

impl BinaryOp {
    /// Every op.
    pub const ALL: [BinaryOp; 6] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
    ];
}

/// Elementwise f32 comparisons → u8 (1 true, 0 false), with broadcasting. Any
/// comparison with NaN is false except `Ne`, which is true.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// a == b.
    Eq,
    /// a != b.
    Ne,
    /// a < b.
    Lt,
    /// a <= b.
    Le,
    /// a > b.
    Gt,
    /// a >= b.
    Ge,
}

impl CompareOp {
    /// Every op.
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];
}

/// Reductions over the last axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum in the canonical 32-lane order; the empty sum is +0.
    Sum,
    /// Maximum (NaN wins; +0 beats −0). Refused on an empty axis.
    Max,
    /// Index (i32) of the first maximum (the first NaN if any). Refused on an empty axis.
    ArgMax,
}

impl ReduceOp {
    /// Every op.
    pub const ALL: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::ArgMax];
}

/// The primitive set. A fabric implements exactly these.
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    /// `[x: f32]` → f32, same shape.
    Unary(UnaryOp),
    /// `[a: f32, b: f32]` → f32, broadcast shape.
    Binary(BinaryOp),
    /// `[a: f32, b: f32]` → u8, broadcast shape.
    Compare(CompareOp),
    /// `[cond: u8, a: f32, b: f32]` → f32: `cond != 0 ? a : b`, broadcast shape.
    Select,
    /// `[x: f32 of shape [.., n]]` → shape `[..]`; f32 for sum/max, i32 for argmax.
    Reduce(ReduceOp),
    /// `[a: f32 [..batch, m, k], b: f32 [..batch, k, n]]` → `[broadcast batch, m, n]`.
    Matmul,
    /// `[table: f32 [v, ..rest], idx: i32|u32 [..ix]]` → `[..ix, ..rest]`.
    Gather,
    /// `[idx: i32|u32 [..ix], src: f32 [..ix, ..rest]]` → `[rows, ..rest]`: zeros, then
    /// each `src` row added to row `idx` in row-major order of `idx` (embedding backward).
    IndexAdd {
        /// Rows of the output.
        rows: usize,
    },
    /// `[x0, x1, ..]` of one dtype, equal except along `axis` → joined along `axis`.
    Concat {
        /// The axis to join along.
        axis: usize,
    },
    /// `[x]` → the same shape in another dtype (conversion rules in the spec).
    Cast(DType),
    /// `[x]` → a contiguous copy (materialises any view).
    Copy,
}

fn expect_arity(op: &'static str, inputs: &[(DType, &[usize])], n: usize) -> Result<()> {
    if inputs.len() != n {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("expected {n} inputs, got {}", inputs.len()),
        });
    }
    Ok(())
}

fn expect_dtype(op: &'static str, got: DType, expected: DType) -> Result<()> {
    if got != expected {
        return Err(TensorError::DTypeMismatch { op, expected, got });
    }
    Ok(())
}

fn expect_index(op: &'static str, got: DType) -> Result<()> {
    match got {
        DType::I32 | DType::U32 => Ok(()),
        DType::F32 | DType::U8 => Err(TensorError::DTypeMismatch {
            op,
            expected: DType::I32,
            got,
        }),
    }
}

impl Prim {
    /// A short name for errors and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Unary(_) => "unary",
            Prim::Binary(_) => "binary",
            Prim::Compare(_) => "compare",
            Prim::Select => "select",
            Prim::Reduce(_) => "reduce",
            Prim::Matmul => "matmul",
            Prim::Gather => "gather",
            Prim::IndexAdd { .. } => "index_add",
            Prim::Concat { .. } => "concat",
            Prim::Cast(_) => "cast",
            Prim::Copy => "copy",
        }
    }

    /// Validates the inputs (dtype and shape of each) and returns the output's dtype and
    /// shape. Every fabric calls this before executing, so refusals are identical.
    pub fn output_spec(&self, inputs: &[(DType, &[usize])]) -> Result<(DType, Vec<usize>)> {
        let op = self.name();
        let out = match self {
            Prim::Unary(_) | Prim::Copy | Prim::Cast(_) => {
                expect_arity(op, inputs, 1)?;
                if matches!(self, Prim::Unary(_)) {
                    expect_dtype(op, inputs[0].0, DType::F32)?;
                }
                let dtype = match self {
                    Prim::Cast(to) => *to,
                    Prim::Copy => inputs[0].0,
                    _ => DType::F32,
                };
                (dtype, inputs[0].1.to_vec())
            }
            Prim::Binary(_) | Prim::Compare(_) => {
                expect_arity(op, inputs, 2)?;
                expect_dtype(op, inputs[0].0, DType::F32)?;
                expect_dtype(op, inputs[1].0, DType::F32)?;
                let shape = broadcast_shapes(op, inputs[0].1, inputs[1].1)?;
                (
                    if matches!(self, Prim::Compare(_)) {
                        DType::U8
                    } else {
                        DType::F32
                    },
                    shape,
                )
            }
            Prim::Select => {
                expect_arity(op, inputs, 3)?;
                expect_dtype(op, inputs[0].0, DType::U8)?;
                expect_dtype(op, inputs[1].0, DType::F32)?;
                expect_dtype(op, inputs[2].0, DType::F32)?;
                let ab = broadcast_shapes(op, inputs[1].1, inputs[2].1)?;
                (DType::F32, broadcast_shapes(op, inputs[0].1, &ab)?)
            }
            Prim::Reduce(r) => {
                expect_arity(op, inputs, 1)?;
                expect_dtype(op, inputs[0].0, DType::F32)?;
                let shape = inputs[0].1;
                let Some((&n, rest)) = shape.split_last() else {
                    return Err(TensorError::InvalidArgument {
                        op,
                        message: "cannot reduce a rank-0 tensor".into(),
                    });
                };
                if n == 0 && *r != ReduceOp::Sum {
                    return Err(TensorError::EmptyReduction { op });
                }
                (
                    if *r == ReduceOp::ArgMax {
                        DType::I32
                    } else {
                        DType::F32
                    },
                    rest.to_vec(),
                )
            }
            Prim::Matmul => {
                expect_arity(op, inputs, 2)?;
                expect_dtype(op, inputs[0].0, DType::F32)?;
                expect_dtype(op, inputs[1].0, DType::F32)?;
                let (a, b) = (inputs[0].1, inputs[1].1);
                if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
                    return Err(TensorError::ShapeMismatch {
                        op,
                        lhs: a.to_vec(),
                        rhs: b.to_vec(),
                    });
                }
                let mut shape = broadcast_shapes(op, &a[..a.len() - 2], &b[..b.len() - 2])?;
                shape.push(a[a.len() - 2]);
                shape.push(b[b.len() - 1]);
                (DType::F32, shape)
            }
            Prim::Gather => {
                expect_arity(op, inputs, 2)?;
                expect_dtype(op, inputs[0].0, DType::F32)?;
                expect_index(op, inputs[1].0)?;
                let table = inputs[0].1;
                if table.is_empty() {
                    return Err(TensorError::InvalidArgument {
                        op,
                        message: "table must have rank >= 1".into(),
                    });
                }
                let mut shape = inputs[1].1.to_vec();
                shape.extend_from_slice(&table[1..]);
                (DType::F32, shape)
            }
            Prim::IndexAdd { rows } => {
                expect_arity(op, inputs, 2)?;
                expect_index(op, inputs[0].0)?;
                expect_dtype(op, inputs[1].0, DType::F32)?;
                let (idx, src) = (inputs[0].1, inputs[1].1);
                if src.len() < idx.len() || &src[..idx.len()] != idx {
                    return Err(TensorError::ShapeMismatch {
                        op,
                        lhs: idx.to_vec(),
                        rhs: src.to_vec(),
                    });
                }
                let mut shape = vec![*rows];
                shape.extend_from_slice(&src[idx.len()..]);
                (DType::F32, shape)
            }
            Prim::Concat { axis } => {
                let Some(first) = inputs.first() else {
                    return Err(TensorError::InvalidArgument {
                        op,
                        message: "needs at least one input".into(),
                    });
                };
                let rank = first.1.len();
                if *axis >= rank {
                    return Err(TensorError::AxisOutOfRange {
                        op,
                        axis: *axis as isize,
                        rank,
                    });
                }
                let mut shape = first.1.to_vec();
                shape[*axis] = 0;
                for (dtype, s) in inputs {
                    expect_dtype(op, *dtype, first.0)?;
                    let same = s.len() == rank
                        && s.iter()
                            .zip(first.1)
                            .enumerate()
                            .all(|(i, (x, y))| i == *axis || x == y);
                    if !same {
                        return Err(TensorError::ShapeMismatch {
                            op,
                            lhs: first.1.to_vec(),
                            rhs: s.to_vec(),
                        });
                    }
                    shape[*axis] += s[*axis];
                }
                (first.0, shape)
            }
        };
        check_shape(&out.1)?;
        Ok(out)
    }
}
