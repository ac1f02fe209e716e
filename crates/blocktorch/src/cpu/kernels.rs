//! Row kernels of the CPU fabric. Each kernel body is written once, in plain scalar
//! Rust, and compiled twice: as is (the scalar path) and inside a
//! `#[target_feature(enable = "avx2,fma")]` function, where LLVM vectorises it. Rust
//! never contracts `a * b + c` into an fma and vectorisation of these loops does not
//! reorder any floating-point operation, so both paths give the same bits; the
//! conformance suite checks it.
#![allow(unsafe_code)]

use super::gemm::Simd;
use crate::ops::{BinaryOp, UnaryOp};
use crate::scalar::{self, max_f32};

/// Lanes of the canonical reduction order (spec: "Reductions").
pub const REDUCE_LANES: usize = 32;

/// The fixed pairwise tree over the 32 lane partials: for s in 16, 8, 4, 2, 1:
/// `p[l] = p[l] ⊕ p[l + s]` for l < s. Returns p[0].
#[inline(always)]
fn tree(mut p: [f32; REDUCE_LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut s = REDUCE_LANES / 2;
    while s > 0 {
        for l in 0..s {
            p[l] = f(p[l], p[l + s]);
        }
        s /= 2;
    }
    p[0]
}

#[inline(always)]
fn sum_body(x: &[f32]) -> f32 {
    let mut p = [0.0f32; REDUCE_LANES];
    let mut chunks = x.chunks_exact(REDUCE_LANES);
    for c in &mut chunks {
        for l in 0..REDUCE_LANES {
            p[l] += c[l];
        }
    }
    for (l, v) in chunks.remainder().iter().enumerate() {
        p[l] += *v;
    }
    tree(p, |a, b| a + b)
}

#[inline(always)]
fn max_body(x: &[f32]) -> f32 {
    let mut p = [f32::NEG_INFINITY; REDUCE_LANES];
    let mut chunks = x.chunks_exact(REDUCE_LANES);
    for c in &mut chunks {
        for l in 0..REDUCE_LANES {
            p[l] = max_f32(p[l], c[l]);
        }
    }
    for (l, v) in chunks.remainder().iter().enumerate() {
        p[l] = max_f32(p[l], *v);
    }
    tree(p, max_f32)
}

#[inline(always)]
fn unary_body(op: UnaryOp, x: &mut [f32]) {
    // One loop per op so each loop body is branch-free and vectorisable.
    macro_rules! map {
        ($f:expr) => {
            for v in x.iter_mut() {
                *v = $f(*v);
            }
        };
    }
    match op {
        UnaryOp::Neg => map!(|v: f32| -v),
        UnaryOp::Abs => map!(|v: f32| v.abs()),
        UnaryOp::Exp => map!(crate::math::exp),
        UnaryOp::Log => map!(crate::math::log),
        UnaryOp::Sqrt => map!(crate::math::sqrt),
        UnaryOp::Rsqrt => map!(crate::math::rsqrt),
        UnaryOp::Recip => map!(crate::math::recip),
        UnaryOp::Tanh => map!(crate::math::tanh),
        UnaryOp::Sigmoid => map!(crate::math::sigmoid),
        UnaryOp::Relu => map!(scalar::relu),
        UnaryOp::GeluTanh => map!(crate::math::gelu_tanh),
        UnaryOp::GeluErf => map!(crate::math::gelu_erf),
        UnaryOp::Erf => map!(crate::math::erf),
        UnaryOp::Sign => map!(scalar::sign),
        UnaryOp::PowScalar(p) => map!(|v| scalar::pow_scalar(v, p)),
    }
}

#[inline(always)]
fn binary_body(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    macro_rules! zip {
        ($f:expr) => {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = $f(*x, *y);
            }
        };
    }
    match op {
        BinaryOp::Add => zip!(|x: f32, y: f32| x + y),
        BinaryOp::Sub => zip!(|x: f32, y: f32| x - y),
        BinaryOp::Mul => zip!(|x: f32, y: f32| x * y),
        BinaryOp::Div => zip!(|x: f32, y: f32| x / y),
        BinaryOp::Max => zip!(scalar::max_f32),
        BinaryOp::Min => zip!(scalar::min_f32),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    #[target_feature(enable = "avx2,fma")]
    pub fn sum(x: &[f32]) -> f32 {
        sum_body(x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub fn max(x: &[f32]) -> f32 {
        max_body(x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub fn unary(op: UnaryOp, x: &mut [f32]) {
        unary_body(op, x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub fn binary(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
        binary_body(op, a, b, out)
    }
}

/// Sum of a row in the canonical order.
pub fn sum_row(simd: Simd, x: &[f32]) -> f32 {
    match simd {
        Simd::Scalar => sum_body(x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `CpuFabric` only holds `Simd::Avx2Fma` after `Simd::available`
        // confirmed AVX2 and FMA at run time (checked in `CpuConfig::validate`).
        Simd::Avx2Fma => unsafe { avx2::sum(x) },
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Avx2Fma => sum_body(x),
    }
}

/// Maximum of a row in the canonical order (−∞ for an empty row).
pub fn max_row(simd: Simd, x: &[f32]) -> f32 {
    match simd {
        Simd::Scalar => max_body(x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `sum_row`, the variant exists only when AVX2+FMA were detected.
        Simd::Avx2Fma => unsafe { avx2::max(x) },
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Avx2Fma => max_body(x),
    }
}

/// Index of the first maximum (first NaN if any) of a non-empty row.
pub fn argmax_row(x: &[f32]) -> i32 {
    let mut best = 0usize;
    for i in 1..x.len() {
        let (b, v) = (x[best], x[i]);
        if !b.is_nan() && (v.is_nan() || v > b) {
            best = i;
        }
    }
    best as i32
}

/// Applies `op` to every element in place.
pub fn unary_inplace(simd: Simd, op: UnaryOp, x: &mut [f32]) {
    match simd {
        Simd::Scalar => unary_body(op, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `sum_row`, the variant exists only when AVX2+FMA were detected.
        Simd::Avx2Fma => unsafe { avx2::unary(op, x) },
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Avx2Fma => unary_body(op, x),
    }
}

/// `out[i] = a[i] op b[i]` for equal-length slices.
pub fn binary_slices(simd: Simd, op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    debug_assert!(a.len() == out.len() && b.len() == out.len());
    match simd {
        Simd::Scalar => binary_body(op, a, b, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `sum_row`, the variant exists only when AVX2+FMA were detected.
        Simd::Avx2Fma => unsafe { avx2::binary(op, a, b, out) },
        #[cfg(not(target_arch = "x86_64"))]
        Simd::Avx2Fma => binary_body(op, a, b, out),
    }
}
