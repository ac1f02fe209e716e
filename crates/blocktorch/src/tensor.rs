//! `Tensor`: the user-facing tensor on the default CPU fabric, with autograd.
//!
//! A tensor is a [`FabricTensor`] (dtype, layout, shared storage) plus autograd state.
//! Ops run through the compositions of `crate::compose` on the [`Autograd`] backend,
//! which records one node per primitive or view. `backward` walks the recorded graph in
//! a fixed order (descending creation id) and accumulates gradients in that order, so
//! gradients are bit-for-bit deterministic.

use crate::compose::{self, apply_view, AttentionOptions, Backend, FabricBackend, View};
use crate::cpu::default_fabric;
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::fabric::{Fabric, FabricTensor};
use crate::layout::{resolve_axis, Layout};
use crate::ops::{BinaryOp, CompareOp, Prim, ReduceOp, UnaryOp};
use crate::storage::HostData;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub(crate) enum GradOp {
    Prim(Prim),
    View(View),
}

#[derive(Debug)]
pub(crate) struct Node {
    op: GradOp,
    inputs: Vec<Tensor>,
}

struct Inner {
    id: u64,
    raw: FabricTensor,
    requires_grad: bool,
    node: Option<Node>,
    grad: Mutex<Option<FabricTensor>>,
}

/// A tensor: cheap to clone (shares everything), immutable value.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("id", &self.0.id)
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("requires_grad", &self.0.requires_grad)
            .finish()
    }
}

/// The autograd backend: runs primitives on the default CPU fabric and records the graph.
pub struct Autograd;

fn differentiable(prim: &Prim) -> bool {
    match prim {
        Prim::Unary(_)
        | Prim::Binary(_)
        | Prim::Select
        | Prim::Matmul
        | Prim::Gather
        | Prim::IndexAdd { .. } => true,
        Prim::Concat { .. } | Prim::Copy | Prim::Cast(_) => true,
        Prim::Reduce(op) => *op != ReduceOp::ArgMax,
        Prim::Compare(_) => false,
    }
}

impl Backend for Autograd {
    type T = Tensor;
    fn shape(&self, t: &Tensor) -> Vec<usize> {
        t.shape().to_vec()
    }
    fn dtype(&self, t: &Tensor) -> DType {
        t.dtype()
    }
    fn is_contiguous(&self, t: &Tensor) -> bool {
        t.0.raw.layout().is_contiguous()
    }
    fn exec(&self, prim: &Prim, inputs: &[&Tensor]) -> Result<Tensor> {
        let raws: Vec<&FabricTensor> = inputs.iter().map(|t| &t.0.raw).collect();
        let out = default_fabric().execute(prim, &raws)?;
        let track = differentiable(prim)
            && out.dtype() == DType::F32
            && inputs.iter().any(|t| t.0.requires_grad);
        Ok(Tensor::make(
            out,
            track.then(|| Node {
                op: GradOp::Prim(prim.clone()),
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            }),
        ))
    }
    fn view(&self, t: &Tensor, v: View) -> Result<Tensor> {
        let out = apply_view(&t.0.raw, &v)?;
        let track = t.0.requires_grad;
        Ok(Tensor::make(
            out,
            track.then(|| Node {
                op: GradOp::View(v),
                inputs: vec![t.clone()],
            }),
        ))
    }
    fn constant(&self, data: HostData, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::make(default_fabric().upload(&data, shape)?, None))
    }
}

impl Tensor {
    fn make(raw: FabricTensor, node: Option<Node>) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            raw,
            requires_grad: node.is_some(),
            node,
            grad: Mutex::new(None),
        }))
    }

    /// Wraps a fabric tensor that lives on the CPU fabric.
    pub fn from_fabric(raw: FabricTensor) -> Tensor {
        Tensor::make(raw, None)
    }

    /// A tensor from host data in row-major order.
    pub fn from_data(data: HostData, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::make(
            crate::cpu::host_tensor(data, shape, "Tensor::from_data")?,
            None,
        ))
    }
    /// An f32 tensor.
    pub fn from_f32(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_data(HostData::F32(data), shape)
    }
    /// A u8 tensor.
    pub fn from_u8(data: Vec<u8>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_data(HostData::U8(data), shape)
    }
    /// An i32 tensor.
    pub fn from_i32(data: Vec<i32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_data(HostData::I32(data), shape)
    }
    /// A u32 tensor.
    pub fn from_u32(data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_data(HostData::U32(data), shape)
    }
    /// A rank-0 f32 tensor.
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_f32(vec![v], &[]).unwrap_or_else(|_| unreachable!("rank 0 is always valid"))
    }
    /// Every element `v`.
    pub fn full(shape: &[usize], v: f32) -> Result<Tensor> {
        let n = crate::layout::check_shape(shape)?;
        Tensor::from_f32(vec![v; n], shape)
    }
    /// Zeros.
    pub fn zeros(shape: &[usize]) -> Result<Tensor> {
        Tensor::full(shape, 0.0)
    }
    /// Ones.
    pub fn ones(shape: &[usize]) -> Result<Tensor> {
        Tensor::full(shape, 1.0)
    }
    /// Uniform values in [lo, hi) from a seed (`crate::rng`); identical everywhere.
    pub fn rand_uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Result<Tensor> {
        let n = crate::layout::check_shape(shape)?;
        Tensor::from_f32(crate::rng::uniform_f32(seed, n, lo, hi), shape)
    }

    /// The same value as a leaf that records gradients. Only f32 tensors qualify.
    pub fn requires_grad(&self) -> Result<Tensor> {
        if self.dtype() != DType::F32 {
            return Err(TensorError::DTypeMismatch {
                op: "requires_grad",
                expected: DType::F32,
                got: self.dtype(),
            });
        }
        Ok(Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            raw: self.0.raw.clone(),
            requires_grad: true,
            node: None,
            grad: Mutex::new(None),
        })))
    }
    /// Whether gradients flow to or through this tensor.
    pub fn is_requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    /// The same storage, cut from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::make(self.0.raw.clone(), None)
    }
    /// Whether two tensors share storage.
    pub fn is_alias_of(&self, other: &Tensor) -> bool {
        self.0.raw.is_alias_of(&other.0.raw)
    }
    /// The underlying fabric tensor.
    pub fn raw(&self) -> &FabricTensor {
        &self.0.raw
    }
    /// Creation id (monotonic within the process).
    pub fn id(&self) -> u64 {
        self.0.id
    }
    /// The accumulated gradient of a leaf, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(Tensor::from_fabric)
    }
    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.raw.dtype()
    }
    /// Shape.
    pub fn shape(&self) -> &[usize] {
        self.0.raw.shape()
    }
    /// Layout over the storage.
    pub fn layout(&self) -> &Layout {
        self.0.raw.layout()
    }
    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }
    /// Element count.
    pub fn numel(&self) -> usize {
        self.layout().numel()
    }
    /// Elements in row-major order (a host round trip).
    pub fn to_host(&self) -> Result<HostData> {
        default_fabric().download(&self.0.raw)
    }
    /// f32 elements in row-major order.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        match self.to_host()? {
            HostData::F32(v) => Ok(v),
            other => Err(TensorError::DTypeMismatch {
                op: "to_vec_f32",
                expected: DType::F32,
                got: other.dtype(),
            }),
        }
    }
    /// The single element of a one-element f32 tensor.
    pub fn item(&self) -> Result<f32> {
        let v = self.to_vec_f32()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(TensorError::InvalidArgument {
                op: "item",
                message: format!("tensor has {} elements", v.len()),
            }),
        }
    }
    /// `output_digest_sha256` of the value.
    pub fn output_digest_sha256(&self) -> Result<[u8; 32]> {
        crate::digest::output_digest_sha256(self.shape(), &self.to_host()?)
    }

    // ----- views (no copy) -----
    /// A new shape (copies first only if the view is not contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        compose::reshape(&Autograd, self, shape)
    }
    /// `start..end` by `step` along `axis`.
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let axis = resolve_axis("slice", axis, self.rank())?;
        Autograd.view(
            self,
            View::Slice {
                axis,
                start,
                end,
                step,
            },
        )
    }
    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        compose::transpose(&Autograd, self, a, b)
    }
    /// Reorders axes.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Autograd.view(self, View::Permute(perm.to_vec()))
    }
    /// Broadcasts to `shape` (stride 0, no copy).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        Autograd.view(self, View::BroadcastTo(shape.to_vec()))
    }
    /// Inserts a size-1 axis.
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        Autograd.view(self, View::Unsqueeze(axis))
    }
    /// Removes a size-1 axis.
    pub fn squeeze(&self, axis: usize) -> Result<Tensor> {
        Autograd.view(self, View::Squeeze(axis))
    }
    /// A contiguous version (the same tensor if already contiguous).
    pub fn contiguous(&self) -> Result<Tensor> {
        compose::contiguous(&Autograd, self)
    }
    /// A copy with its own storage (differentiable).
    pub fn deep_clone(&self) -> Result<Tensor> {
        Autograd.exec(&Prim::Copy, &[self])
    }

    // ----- elementwise -----
    /// A unary op.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        compose::unary(&Autograd, op, self)
    }
    /// −x.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// |x|.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// e^x.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// ln x.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// √x.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// 1/√x.
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Rsqrt)
    }
    /// 1/x.
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    /// tanh.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// max(x, 0).
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU, tanh form.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluTanh)
    }
    /// GELU, erf form.
    pub fn gelu_erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluErf)
    }
    /// erf.
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf)
    }
    /// x^p for a scalar p.
    pub fn pow_scalar(&self, p: f32) -> Result<Tensor> {
        self.unary(UnaryOp::PowScalar(p))
    }
    /// A binary op with broadcasting.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        compose::binary(&Autograd, op, self, other)
    }
    /// self + other.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, other)
    }
    /// self − other.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, other)
    }
    /// self × other.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, other)
    }
    /// self ÷ other.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, other)
    }
    /// Elementwise maximum.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Max, other)
    }
    /// Elementwise minimum.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Min, other)
    }
    /// `self op s` for a scalar.
    pub fn binary_scalar(&self, op: BinaryOp, s: f32) -> Result<Tensor> {
        compose::binary_scalar(&Autograd, op, self, s)
    }
    /// A comparison → u8 mask.
    pub fn compare(&self, op: CompareOp, other: &Tensor) -> Result<Tensor> {
        compose::compare(&Autograd, op, self, other)
    }
    /// `self (u8 mask) ? a : b`.
    pub fn select(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        compose::select(&Autograd, self, a, b)
    }
    /// `mask ? value : self`.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        compose::masked_fill(&Autograd, self, mask, value)
    }
    /// Converts to another dtype.
    pub fn cast(&self, to: DType) -> Result<Tensor> {
        Autograd.exec(&Prim::Cast(to), &[self])
    }

    // ----- reductions and composites -----
    /// Sum over `axes` (all when empty).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        compose::sum(&Autograd, self, axes, keepdim)
    }
    /// Mean over `axes` (all when empty).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        compose::mean(&Autograd, self, axes, keepdim)
    }
    /// Maximum over `axes` (all when empty).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        compose::max(&Autograd, self, axes, keepdim)
    }
    /// Index of the first maximum along `axis` (i32).
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        compose::argmax(&Autograd, self, axis, keepdim)
    }
    /// Batched matrix product with broadcast batch dims.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        Autograd.exec(&Prim::Matmul, &[self, other])
    }
    /// softmax along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        compose::softmax(&Autograd, self, axis)
    }
    /// log-softmax along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        compose::log_softmax(&Autograd, self, axis)
    }
    /// Layer-norm over the trailing `normalized_dims` axes.
    pub fn layer_norm(
        &self,
        normalized_dims: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        compose::layer_norm(&Autograd, self, normalized_dims, weight, bias, eps)
    }
    /// Scaled dot-product attention with `self` as the queries.
    pub fn attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        bias: Option<&Tensor>,
        opts: &AttentionOptions,
    ) -> Result<Tensor> {
        compose::attention(&Autograd, self, k, v, mask, bias, opts)
    }
    /// Rows of `self` (the table) at `indices`.
    pub fn embedding(&self, indices: &Tensor) -> Result<Tensor> {
        compose::embedding(&Autograd, self, indices)
    }
    /// Joins tensors along `axis`.
    pub fn concat(xs: &[&Tensor], axis: isize) -> Result<Tensor> {
        compose::concat(&Autograd, xs, axis)
    }

    // ----- autograd -----
    /// Back-propagates from a one-element tensor (seed gradient 1).
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(TensorError::Backward(format!(
                "needs a one-element tensor, got shape {:?}",
                self.shape()
            )));
        }
        let seed = Tensor::full(self.shape(), 1.0)?;
        self.backward_with(&seed)
    }

    /// Back-propagates `grad` (same shape as `self`). Leaf gradients accumulate across
    /// calls until [`Tensor::zero_grad`].
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if !self.0.requires_grad {
            return Err(TensorError::Backward("tensor does not require grad".into()));
        }
        if grad.shape() != self.shape() || grad.dtype() != DType::F32 {
            return Err(TensorError::Backward(format!(
                "gradient shape {:?} does not match {:?}",
                grad.shape(),
                self.shape()
            )));
        }
        // Collect the graph; process in descending creation id (a topological order).
        let mut order: Vec<Tensor> = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![self.clone()];
        while let Some(t) = stack.pop() {
            if !t.0.requires_grad || !seen.insert(t.0.id) {
                continue;
            }
            if let Some(node) = &t.0.node {
                stack.extend(node.inputs.iter().cloned());
            }
            order.push(t);
        }
        order.sort_by_key(|t| std::cmp::Reverse(t.0.id));
        let fb = FabricBackend(default_fabric());
        let mut grads: HashMap<u64, FabricTensor> = HashMap::new();
        grads.insert(self.0.id, grad.0.raw.clone());
        for t in &order {
            let Some(g) = grads.remove(&t.0.id) else {
                continue;
            };
            match &t.0.node {
                Some(node) => {
                    let input_grads =
                        crate::autograd::grad_rule(&fb, &node.op, &node.inputs, &t.0.raw, &g)?;
                    for (input, ig) in node.inputs.iter().zip(input_grads) {
                        let Some(ig) = ig else { continue };
                        if !input.0.requires_grad {
                            continue;
                        }
                        let acc = match grads.remove(&input.0.id) {
                            Some(prev) => compose::binary(&fb, BinaryOp::Add, &prev, &ig)?,
                            None => ig,
                        };
                        grads.insert(input.0.id, acc);
                    }
                }
                None => {
                    let mut slot = t.0.grad.lock().unwrap_or_else(|p| p.into_inner());
                    let g = compose::contiguous(&fb, &g)?;
                    let acc = match slot.take() {
                        Some(prev) => compose::binary(&fb, BinaryOp::Add, &prev, &g)?,
                        None => g,
                    };
                    *slot = Some(acc);
                }
            }
        }
        Ok(())
    }
}
