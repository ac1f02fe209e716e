//! Scalar semantics shared by every fabric: the elementwise definitions that are not
//! transcendentals (those are in `crate::math`). A fabric's kernel for a primitive must
//! give, element by element, exactly these results.

use crate::dtype::DType;
use crate::math;
use crate::ops::{BinaryOp, CompareOp, UnaryOp};

/// The one NaN bit pattern every NaN is canonicalised to before hashing or comparing.
pub const CANONICAL_NAN_BITS: u32 = 0x7fc0_0000;

/// The bits of `x`, with any NaN replaced by [`CANONICAL_NAN_BITS`].
#[inline]
pub fn canonical_f32_bits(x: f32) -> u32 {
    if x.is_nan() {
        CANONICAL_NAN_BITS
    } else {
        x.to_bits()
    }
}

/// max(a, b): NaN if either is NaN; of two equal values the bitwise AND (so +0 beats −0).
#[inline(always)]
pub fn max_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a > b {
        a
    } else if b > a {
        b
    } else {
        f32::from_bits(a.to_bits() & b.to_bits())
    }
}

/// min(a, b): NaN if either is NaN; of two equal values the bitwise OR (so −0 beats +0).
#[inline(always)]
pub fn min_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a < b {
        a
    } else if b < a {
        b
    } else {
        f32::from_bits(a.to_bits() | b.to_bits())
    }
}

/// relu: `x > 0 ? x : +0`, NaN stays NaN.
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    if x.is_nan() || x > 0.0 {
        x
    } else {
        0.0
    }
}

/// sign: −1, +1, ±0 unchanged, NaN unchanged.
#[inline(always)]
pub fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// Largest |p| treated as an integer exponent by [`pow_scalar`].
pub const POW_INT_MAX: f32 = 16_777_216.0;

/// x^p, in this order of cases (spec: `pow_scalar`):
/// 1. p = 0 → 1; p = 1 → x; p = 2 → x·x; p = 0.5 → √x; p = −1 → 1/x.
/// 2. p an integer with |p| ≤ 2^24: square-and-multiply over the bits of |p| from the
///    least significant (`r = 1; b = x; loop { if bit { r = r·b }; b = b·b }`), then
///    `1/r` if p < 0.
/// 3. otherwise: NaN if x is NaN or x < 0; for x = ±0: +0 if p > 0, +∞ if p < 0; for
///    x = +∞: +∞ if p > 0, +0 if p < 0; else `exp(p · log(x))`.
#[inline]
pub fn pow_scalar(x: f32, p: f32) -> f32 {
    if p == 0.0 {
        return 1.0;
    }
    if p == 1.0 {
        return x;
    }
    if p == 2.0 {
        return x * x;
    }
    if p == 0.5 {
        return x.sqrt();
    }
    if p == -1.0 {
        return 1.0 / x;
    }
    if p.abs() <= POW_INT_MAX && p == (p as i32) as f32 {
        let mut n = p.abs() as u32;
        let mut r = 1.0f32;
        let mut b = x;
        while n > 0 {
            if n & 1 == 1 {
                r *= b;
            }
            n >>= 1;
            if n > 0 {
                b *= b;
            }
        }
        return if p < 0.0 { 1.0 / r } else { r };
    }
    if x.is_nan() || p.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return if p > 0.0 { 0.0 } else { f32::INFINITY };
    }
    if x == f32::INFINITY {
        return if p > 0.0 { f32::INFINITY } else { 0.0 };
    }
    math::exp(p * math::log(x))
}

/// One unary op on one element.
#[inline(always)]
pub fn unary(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => math::exp(x),
        UnaryOp::Log => math::log(x),
        UnaryOp::Sqrt => math::sqrt(x),
        UnaryOp::Rsqrt => math::rsqrt(x),
        UnaryOp::Recip => math::recip(x),
        UnaryOp::Tanh => math::tanh(x),
        UnaryOp::Sigmoid => math::sigmoid(x),
        UnaryOp::Relu => relu(x),
        UnaryOp::GeluTanh => math::gelu_tanh(x),
        UnaryOp::GeluErf => math::gelu_erf(x),
        UnaryOp::Erf => math::erf(x),
        UnaryOp::Sign => sign(x),
        UnaryOp::PowScalar(p) => pow_scalar(x, p),
    }
}

/// One binary op on one pair.
#[inline(always)]
pub fn binary(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => max_f32(a, b),
        BinaryOp::Min => min_f32(a, b),
    }
}

/// One comparison (IEEE: NaN compares unequal to everything).
#[inline(always)]
pub fn compare(op: CompareOp, a: f32, b: f32) -> u8 {
    let r = match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
    };
    r as u8
}

/// A scalar of any dtype, for casts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// f32.
    F32(f32),
    /// u8.
    U8(u8),
    /// i32.
    I32(i32),
    /// u32.
    U32(u32),
}

/// Converts one value (spec: `cast`). Integer → f32 rounds to nearest even; f32 →
/// integer truncates toward zero and saturates, NaN → 0; integer → integer saturates.
#[inline]
pub fn cast(x: Scalar, to: DType) -> Scalar {
    // Rust's `as` from float to int truncates, saturates and maps NaN to 0; from int to
    // float it rounds to nearest even. Integer narrowing is made saturating explicitly.
    let wide: i64 = match x {
        Scalar::F32(v) => {
            return match to {
                DType::F32 => Scalar::F32(v),
                DType::U8 => Scalar::U8(v as u8),
                DType::I32 => Scalar::I32(v as i32),
                DType::U32 => Scalar::U32(v as u32),
            }
        }
        Scalar::U8(v) => v as i64,
        Scalar::I32(v) => v as i64,
        Scalar::U32(v) => v as i64,
    };
    match to {
        DType::F32 => Scalar::F32(wide as f32),
        DType::U8 => Scalar::U8(wide.clamp(0, u8::MAX as i64) as u8),
        DType::I32 => Scalar::I32(wide.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
        DType::U32 => Scalar::U32(wide.clamp(0, u32::MAX as i64) as u32),
    }
}
