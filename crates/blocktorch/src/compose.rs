//! Every op that is not a primitive, composed from primitives in one place.
//!
//! The functions here are generic over a [`Backend`]: the same composition runs on any
//! fabric (`FabricBackend`, used by job executors and the conformance suite) and on the
//! autograd tape (`crate::Tensor`), so softmax, layer-norm, attention and friends have
//! one definition, one evaluation order and gradients by the chain rule through their
//! primitives. The evaluation order of each composite is written in
//! `docs/spec/blocktorch-semantics.md`.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::{Fabric, FabricTensor};
use crate::layout::{resolve_axis, Layout};
use crate::ops::{BinaryOp, CompareOp, Prim, ReduceOp, UnaryOp};
use crate::storage::HostData;

/// Layout-only operations: they never copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// A new shape over contiguous data.
    Reshape(Vec<usize>),
    /// Dimension `i` of the result is dimension `perm[i]` of the input.
    Permute(Vec<usize>),
    /// `start..end` by `step` along `axis`.
    Slice {
        /// Axis.
        axis: usize,
        /// First index.
        start: usize,
        /// End (exclusive, clamped).
        end: usize,
        /// Step (≥ 1).
        step: usize,
    },
    /// Broadcast (stride 0) to a shape.
    BroadcastTo(Vec<usize>),
    /// Insert a size-1 dimension.
    Unsqueeze(usize),
    /// Remove a size-1 dimension.
    Squeeze(usize),
}

/// The layout a view gives: the one rule every fabric and the job validator use.
pub fn view_layout(l: &Layout, v: &View) -> Result<Layout> {
    Ok(match v {
        View::Reshape(shape) => l
            .reshape(shape)?
            .ok_or_else(|| TensorError::InvalidArgument {
                op: "reshape",
                message: "a non-contiguous view must be materialised before reshaping".into(),
            })?,
        View::Permute(perm) => l.permute(perm)?,
        View::Slice {
            axis,
            start,
            end,
            step,
        } => l.slice(*axis, *start, *end, *step)?,
        View::BroadcastTo(shape) => l.broadcast_to(shape)?,
        View::Unsqueeze(axis) => l.unsqueeze(*axis)?,
        View::Squeeze(axis) => l.squeeze(*axis)?,
    })
}

/// Applies a view to a fabric tensor's layout.
pub fn apply_view(t: &FabricTensor, v: &View) -> Result<FabricTensor> {
    t.with_layout(view_layout(t.layout(), v)?)
}

/// What a composition needs: primitive execution, views and constants.
pub trait Backend {
    /// The tensor type.
    type T: Clone;
    /// Shape of a tensor.
    fn shape(&self, t: &Self::T) -> Vec<usize>;
    /// Dtype of a tensor.
    fn dtype(&self, t: &Self::T) -> DType;
    /// Whether the tensor's layout is contiguous.
    fn is_contiguous(&self, t: &Self::T) -> bool;
    /// Executes a primitive.
    fn exec(&self, prim: &Prim, inputs: &[&Self::T]) -> Result<Self::T>;
    /// Applies a view.
    fn view(&self, t: &Self::T, v: View) -> Result<Self::T>;
    /// A constant from host data.
    fn constant(&self, data: HostData, shape: &[usize]) -> Result<Self::T>;
}

/// Runs compositions directly on a fabric.
pub struct FabricBackend<'a>(pub &'a dyn Fabric);

impl Backend for FabricBackend<'_> {
    type T = FabricTensor;
    fn shape(&self, t: &FabricTensor) -> Vec<usize> {
        t.shape().to_vec()
    }
    fn dtype(&self, t: &FabricTensor) -> DType {
        t.dtype()
    }
    fn is_contiguous(&self, t: &FabricTensor) -> bool {
        t.layout().is_contiguous()
    }
    fn exec(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        self.0.execute(prim, inputs)
    }
    fn view(&self, t: &FabricTensor, v: View) -> Result<FabricTensor> {
        apply_view(t, &v)
    }
    fn constant(&self, data: HostData, shape: &[usize]) -> Result<FabricTensor> {
        self.0.upload(&data, shape)
    }
}

/// A rank-0 f32 constant.
pub fn scalar<B: Backend>(b: &B, v: f32) -> Result<B::T> {
    b.constant(HostData::F32(vec![v]), &[])
}

/// A unary op.
pub fn unary<B: Backend>(b: &B, op: UnaryOp, x: &B::T) -> Result<B::T> {
    b.exec(&Prim::Unary(op), &[x])
}

/// A binary op with broadcasting.
pub fn binary<B: Backend>(b: &B, op: BinaryOp, x: &B::T, y: &B::T) -> Result<B::T> {
    b.exec(&Prim::Binary(op), &[x, y])
}

/// `x op s` for a scalar `s`.
pub fn binary_scalar<B: Backend>(b: &B, op: BinaryOp, x: &B::T, s: f32) -> Result<B::T> {
    let s = scalar(b, s)?;
    b.exec(&Prim::Binary(op), &[x, &s])
}

/// A comparison (u8 result) with broadcasting.
pub fn compare<B: Backend>(b: &B, op: CompareOp, x: &B::T, y: &B::T) -> Result<B::T> {
    b.exec(&Prim::Compare(op), &[x, y])
}

/// `cond ? x : y` with broadcasting.
pub fn select<B: Backend>(b: &B, cond: &B::T, x: &B::T, y: &B::T) -> Result<B::T> {
    b.exec(&Prim::Select, &[cond, x, y])
}

/// A contiguous copy (a no-op view is returned unchanged when already contiguous).
pub fn contiguous<B: Backend>(b: &B, x: &B::T) -> Result<B::T> {
    if b.is_contiguous(x) {
        return Ok(x.clone());
    }
    b.exec(&Prim::Copy, &[x])
}

/// Reshape; materialises a non-contiguous input first.
pub fn reshape<B: Backend>(b: &B, x: &B::T, shape: &[usize]) -> Result<B::T> {
    let x = contiguous(b, x)?;
    b.view(&x, View::Reshape(shape.to_vec()))
}

/// Swaps two axes (negative axes count from the end).
pub fn transpose<B: Backend>(b: &B, x: &B::T, a: isize, c: isize) -> Result<B::T> {
    let rank = b.shape(x).len();
    let (a, c) = (
        resolve_axis("transpose", a, rank)?,
        resolve_axis("transpose", c, rank)?,
    );
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(a, c);
    b.view(x, View::Permute(perm))
}

fn resolve_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = axes
        .iter()
        .map(|&a| resolve_axis(op, a, rank))
        .collect::<Result<_>>()?;
    out.sort_unstable();
    let len = out.len();
    out.dedup();
    if out.len() != len {
        return Err(TensorError::InvalidArgument {
            op,
            message: format!("repeated axis in {axes:?}"),
        });
    }
    Ok(out)
}

/// Moves `axes` (sorted) to the end, flattens them into one, and reduces it. Returns the
/// result with the reduced axes removed, or kept as size 1 when `keepdim`.
fn reduce_axes<B: Backend>(
    b: &B,
    op: ReduceOp,
    x: &B::T,
    axes: &[isize],
    keepdim: bool,
    name: &'static str,
) -> Result<B::T> {
    let shape = b.shape(x);
    let rank = shape.len();
    let axes = if axes.is_empty() {
        (0..rank).collect()
    } else {
        resolve_axes(name, axes, rank)?
    };
    let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let mut perm = kept.clone();
    perm.extend_from_slice(&axes);
    let mut y = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        x.clone()
    } else {
        b.view(x, View::Permute(perm))?
    };
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let n: usize = axes.iter().map(|&d| shape[d]).product();
    if axes.len() != 1 {
        let mut flat = kept_shape.clone();
        flat.push(n);
        y = reshape(b, &y, &flat)?;
    }
    let r = b.exec(&Prim::Reduce(op), &[&y])?;
    if !keepdim {
        return Ok(r);
    }
    let kd: Vec<usize> = (0..rank)
        .map(|d| if axes.contains(&d) { 1 } else { shape[d] })
        .collect();
    reshape(b, &r, &kd)
}

/// Sum over `axes` (all axes when empty) in the canonical order over the flattened
/// reduced axes.
pub fn sum<B: Backend>(b: &B, x: &B::T, axes: &[isize], keepdim: bool) -> Result<B::T> {
    reduce_axes(b, ReduceOp::Sum, x, axes, keepdim, "sum")
}

/// Maximum over `axes` (all axes when empty).
pub fn max<B: Backend>(b: &B, x: &B::T, axes: &[isize], keepdim: bool) -> Result<B::T> {
    reduce_axes(b, ReduceOp::Max, x, axes, keepdim, "max")
}

/// Mean over `axes`: `sum / n` with `n` converted to f32 (one IEEE division).
pub fn mean<B: Backend>(b: &B, x: &B::T, axes: &[isize], keepdim: bool) -> Result<B::T> {
    let shape = b.shape(x);
    let rank = shape.len();
    let axes_r = if axes.is_empty() {
        (0..rank).collect()
    } else {
        resolve_axes("mean", axes, rank)?
    };
    let n: usize = axes_r.iter().map(|&d| shape[d]).product();
    if n == 0 {
        return Err(TensorError::EmptyReduction { op: "mean" });
    }
    let s = sum(b, x, axes, keepdim)?;
    binary_scalar(b, BinaryOp::Div, &s, n as f32)
}

/// Index (i32) of the first maximum along `axis`.
pub fn argmax<B: Backend>(b: &B, x: &B::T, axis: isize, keepdim: bool) -> Result<B::T> {
    reduce_axes(b, ReduceOp::ArgMax, x, &[axis], keepdim, "argmax")
}

/// Moves `axis` last, applies `f`, moves it back.
fn along_last<B: Backend>(
    b: &B,
    x: &B::T,
    axis: isize,
    f: impl Fn(&B::T) -> Result<B::T>,
) -> Result<B::T> {
    let rank = b.shape(x).len();
    let a = resolve_axis("softmax", axis, rank)?;
    if a + 1 == rank {
        return f(x);
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.remove(a);
    perm.push(a);
    let mut inv = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let y = f(&b.view(x, View::Permute(perm))?)?;
    b.view(&y, View::Permute(inv))
}

/// softmax along `axis`: `m = max(x)`, `e = exp(x − m)`, `s = sum(e)`, `e / s`.
pub fn softmax<B: Backend>(b: &B, x: &B::T, axis: isize) -> Result<B::T> {
    along_last(b, x, axis, |x| {
        let m = max(b, x, &[-1], true)?;
        let e = unary(b, UnaryOp::Exp, &binary(b, BinaryOp::Sub, x, &m)?)?;
        let s = sum(b, &e, &[-1], true)?;
        binary(b, BinaryOp::Div, &e, &s)
    })
}

/// log-softmax along `axis`: `(x − m) − log(sum(exp(x − m)))`.
pub fn log_softmax<B: Backend>(b: &B, x: &B::T, axis: isize) -> Result<B::T> {
    along_last(b, x, axis, |x| {
        let m = max(b, x, &[-1], true)?;
        let z = binary(b, BinaryOp::Sub, x, &m)?;
        let s = sum(b, &unary(b, UnaryOp::Exp, &z)?, &[-1], true)?;
        binary(b, BinaryOp::Sub, &z, &unary(b, UnaryOp::Log, &s)?)
    })
}

/// Layer normalisation over the last `normalized_dims` axes:
/// `μ = sum(x)/n`, `d = x − μ`, `σ² = sum(d·d)/n`, `y = d · rsqrt(σ² + eps)`, then
/// `y · weight` and `+ bias` when given (separate roundings, no fma).
pub fn layer_norm<B: Backend>(
    b: &B,
    x: &B::T,
    normalized_dims: usize,
    weight: Option<&B::T>,
    bias: Option<&B::T>,
    eps: f32,
) -> Result<B::T> {
    let shape = b.shape(x);
    if normalized_dims == 0 || normalized_dims > shape.len() {
        return Err(TensorError::InvalidArgument {
            op: "layer_norm",
            message: format!("cannot normalise {normalized_dims} trailing dims of {shape:?}"),
        });
    }
    let split = shape.len() - normalized_dims;
    let n: usize = shape[split..].iter().product();
    if n == 0 {
        return Err(TensorError::EmptyReduction { op: "layer_norm" });
    }
    let mut flat = shape[..split].to_vec();
    flat.push(n);
    let xf = reshape(b, x, &flat)?;
    let mu = binary_scalar(b, BinaryOp::Div, &sum(b, &xf, &[-1], true)?, n as f32)?;
    let d = binary(b, BinaryOp::Sub, &xf, &mu)?;
    let var = binary_scalar(
        b,
        BinaryOp::Div,
        &sum(b, &binary(b, BinaryOp::Mul, &d, &d)?, &[-1], true)?,
        n as f32,
    )?;
    let inv = unary(
        b,
        UnaryOp::Rsqrt,
        &binary_scalar(b, BinaryOp::Add, &var, eps)?,
    )?;
    let mut y = reshape(b, &binary(b, BinaryOp::Mul, &d, &inv)?, &shape)?;
    for p in weight.iter().chain(bias.iter()) {
        let ps = b.shape(p);
        if ps != shape[split..] {
            return Err(TensorError::ShapeMismatch {
                op: "layer_norm",
                lhs: shape[split..].to_vec(),
                rhs: ps,
            });
        }
    }
    if let Some(w) = weight {
        y = binary(b, BinaryOp::Mul, &y, w)?;
    }
    if let Some(bias) = bias {
        y = binary(b, BinaryOp::Add, &y, bias)?;
    }
    Ok(y)
}

/// `mask != 0 ? value : x`.
pub fn masked_fill<B: Backend>(b: &B, x: &B::T, mask: &B::T, value: f32) -> Result<B::T> {
    let v = scalar(b, value)?;
    select(b, mask, &v, x)
}

/// Options of [`attention`].
#[derive(Clone, Debug, Default)]
pub struct AttentionOptions {
    /// Score scale; `None` means `rsqrt(d)` with `d` the head size as f32.
    pub scale: Option<f32>,
    /// Mask out keys `j > i` (top-left aligned, like `tril(ones(Lq, Lk))`).
    pub causal: bool,
}

/// Scaled dot-product attention. `q: [.., Lq, d]`, `k: [.., Lk, d]`, `v: [.., Lk, dv]`;
/// optional `mask` (u8, broadcast to `[.., Lq, Lk]`, 1 = attend) and additive `bias`
/// (f32, broadcast). Order: `s = (q·kᵀ) × scale`; `s = s + bias`; masked and causal
/// positions set to −∞; `p = softmax(s)`; `p·v`. A row with every key masked is NaN.
pub fn attention<B: Backend>(
    b: &B,
    q: &B::T,
    k: &B::T,
    v: &B::T,
    mask: Option<&B::T>,
    bias: Option<&B::T>,
    opts: &AttentionOptions,
) -> Result<B::T> {
    let qs = b.shape(q);
    let ks = b.shape(k);
    if qs.len() < 2 || ks.len() < 2 {
        return Err(TensorError::ShapeMismatch {
            op: "attention",
            lhs: qs,
            rhs: ks,
        });
    }
    let d = qs[qs.len() - 1];
    let scale = opts.scale.unwrap_or_else(|| crate::math::rsqrt(d as f32));
    let kt = transpose(b, k, -1, -2)?;
    let mut s = binary_scalar(b, BinaryOp::Mul, &b.exec(&Prim::Matmul, &[q, &kt])?, scale)?;
    if let Some(bias) = bias {
        s = binary(b, BinaryOp::Add, &s, bias)?;
    }
    if let Some(mask) = mask {
        s = select(b, mask, &s, &scalar(b, f32::NEG_INFINITY)?)?;
    }
    if opts.causal {
        let (lq, lk) = (qs[qs.len() - 2], ks[ks.len() - 2]);
        crate::layout::check_shape(&[lq, lk])?;
        let future: Vec<u8> = (0..lq)
            .flat_map(|i| (0..lk).map(move |j| (j > i) as u8))
            .collect();
        let fm = b.constant(HostData::U8(future), &[lq, lk])?;
        s = masked_fill(b, &s, &fm, f32::NEG_INFINITY)?;
    }
    let p = softmax(b, &s, -1)?;
    b.exec(&Prim::Matmul, &[&p, v])
}

/// Embedding lookup: rows of `table` at `indices` (i32 or u32).
pub fn embedding<B: Backend>(b: &B, table: &B::T, indices: &B::T) -> Result<B::T> {
    b.exec(&Prim::Gather, &[table, indices])
}

/// Joins tensors along `axis`.
pub fn concat<B: Backend>(b: &B, xs: &[&B::T], axis: isize) -> Result<B::T> {
    let Some(first) = xs.first() else {
        return Err(TensorError::InvalidArgument {
            op: "concat",
            message: "needs at least one input".into(),
        });
    };
    let axis = resolve_axis("concat", axis, b.shape(first).len())?;
    b.exec(&Prim::Concat { axis }, xs)
}

/// Sums `g` down to `shape` (the inverse of broadcasting): leading extra axes and axes
/// where `shape` has 1 are summed, in one canonical reduction over their flattening.
pub fn sum_to_shape<B: Backend>(b: &B, g: &B::T, shape: &[usize]) -> Result<B::T> {
    let gs = b.shape(g);
    if gs == shape {
        return Ok(g.clone());
    }
    let lead = gs
        .len()
        .checked_sub(shape.len())
        .ok_or_else(|| TensorError::NotBroadcastable {
            from: shape.to_vec(),
            to: gs.clone(),
        })?;
    let axes: Vec<isize> = (0..gs.len())
        .filter(|&d| d < lead || (shape[d - lead] == 1 && gs[d] != 1))
        .map(|d| d as isize)
        .collect();
    let s = if axes.is_empty() {
        g.clone()
    } else {
        sum(b, g, &axes, true)?
    };
    reshape(b, &s, shape)
}
