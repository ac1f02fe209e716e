//! The f64 references and the ULP metric shared by `examples/ulp_sweep.rs` (the
//! exhaustive sweep) and `tests/math_ulp.rs` (the strided guard), so both measure the
//! same thing. Included by path from both.
//!
//! `ulp(v) = 2^(max(E, -126) - 23)` with `E = floor(log2 |v|)` for finite non-zero `v`,
//! `2^-149` at zero and `2^104` at infinity. The error of `y` against the f64
//! reference `r` is `|y - r| / ulp(c)` with `c = r` rounded to f32, infinities read
//! as `±2^128`; NaN against NaN is 0, NaN against a number is infinite.
#![allow(dead_code)]

use blocktorch::math;

pub type F32Fn = fn(f32) -> f32;
pub type RefFn = fn(f64) -> f64;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

fn ref_sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
fn ref_gelu_tanh(x: f64) -> f64 {
    if x.is_infinite() {
        return if x > 0.0 { x } else { -0.0 };
    }
    let y = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    x / (1.0 + (-2.0 * y).exp())
}
fn ref_gelu_erf(x: f64) -> f64 {
    if x.is_infinite() {
        return if x > 0.0 { x } else { -0.0 };
    }
    0.5 * x * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// The functions swept: name, implementation, `f64` reference.
pub const FUNCS: [(&str, F32Fn, RefFn); 10] = [
    ("exp", math::exp, f64::exp),
    ("log", math::log, f64::ln),
    ("tanh", math::tanh, f64::tanh),
    ("sigmoid", math::sigmoid, ref_sigmoid),
    ("erf", math::erf, libm::erf),
    ("gelu_tanh", math::gelu_tanh, ref_gelu_tanh),
    ("gelu_erf", math::gelu_erf, ref_gelu_erf),
    ("sqrt", math::sqrt, f64::sqrt),
    ("rsqrt", math::rsqrt, |x| 1.0 / x.sqrt()),
    ("recip", math::recip, |x| 1.0 / x),
];

/// `2^k` as `f64` for `-1022 <= k <= 1023`.
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `ulp(v)` as defined in the module documentation.
pub fn ulp(v: f32) -> f64 {
    let b = v.to_bits() & 0x7FFF_FFFF;
    if b >= 0x7F80_0000 {
        return pow2(104);
    }
    let e = (b >> 23) as i32;
    pow2(e.max(1) - 127 - 23)
}

/// ULP error of `y` against the reference `r` (module documentation).
pub fn ulp_error(y: f32, r: f64) -> f64 {
    if y.is_nan() || r.is_nan() {
        return if y.is_nan() && r.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let c = r as f32;
    if y == c && c.is_infinite() {
        return 0.0;
    }
    let big = pow2(128);
    let yv = if y.is_infinite() {
        big.copysign(y as f64)
    } else {
        y as f64
    };
    let rv = r.clamp(-big, big);
    (yv - rv).abs() / ulp(c)
}
