//! Accuracy and special-value tests of `blocktorch::math`.
//!
//! A strided sweep (every 4099th `f32` bit pattern) plus dense windows around
//! 0, ±1, the range boundaries of each algorithm and the overflow/underflow
//! thresholds, checked against `f64` references with the ULP definition of
//! `examples/ulp_sweep.rs`; the bounds asserted are the ones published in
//! `docs/spec/blocktorch-math.md` (from the exhaustive sweep). Special values,
//! oddness and a conformance digest of the exact output bits are checked too.

use blocktorch::math;

#[path = "support/ulp_ref.rs"]
mod ulp_ref;
use ulp_ref::{ulp_error, F32Fn, FUNCS as REFERENCES};

/// Published maximum ULP error of each function, in the order of `REFERENCES`
/// (from the exhaustive sweep, rounded up).
const BOUNDS: [f64; 10] = [1.02, 0.88, 0.95, 2.41, 0.83, 2.69, 2.67, 0.5, 1.5, 0.5];

/// Name, implementation, reference, published maximum ULP error.
fn funcs() -> impl Iterator<Item = (&'static str, F32Fn, ulp_ref::RefFn, f64)> {
    REFERENCES
        .into_iter()
        .zip(BOUNDS)
        .map(|((n, f, r), b)| (n, f, r, b))
}

/// Bit patterns of the sweep: every 4099th pattern, dense windows, specials.
fn inputs() -> Vec<u32> {
    let mut v: Vec<u32> = (0..=(u32::MAX / 4099)).map(|j| j * 4099).collect();
    // Centres of dense windows (positive values; both signs are added).
    let centres: [f32; 32] = [
        0.0,
        f32::MIN_POSITIVE,
        1.0,
        0.5,
        2.0,
        std::f32::consts::FRAC_1_SQRT_2,
        std::f32::consts::SQRT_2,
        88.722_84,
        87.336_55,
        103.278_93,
        103.972_08,
        44.361_42,
        1.0 / 64.0,
        0.875,
        3.9375,
        3.919_2,
        9.011,
        0.625,
        2.5,
        4.5,
        10.5,
        10.770_868,
        16.635_532,
        3.920_115,
        4.961_970_3,
        5.347_515_6,
        14.356_069,
        12.0,
        13.0,
        14.5,
        15.0,
        f32::MAX,
    ];
    for c in centres {
        let b = c.to_bits() as i64;
        for d in -2048i64..=2048 {
            let p = b + d;
            if (0..0x7F80_0000).contains(&p) {
                v.push(p as u32);
                v.push(p as u32 | 0x8000_0000);
            }
        }
    }
    // The worst inputs of the exhaustive sweep (docs/spec/blocktorch-math.md).
    v.extend_from_slice(&[
        0x426D_3962,
        0x3FA3_1D39,
        0x3F81_51CA,
        0xC085_088D,
        0x3F7E_6B28,
        0xC02F_CB7C,
        0xBFEC_F08E,
        0x017F_FFFF,
        0x0080_CAB3,
        0x00FC_3237,
    ]);
    v.extend_from_slice(&[
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0000,
        0xFFC0_0000,
        0x7F80_0001,
        0x7FBF_FFFF,
    ]);
    v
}

#[test]
fn max_ulp_within_published_bounds() {
    let xs = inputs();
    let mut failures = Vec::new();
    for (name, f, r, bound) in funcs() {
        let mut worst = (0.0f64, 0u32);
        let mut specials = 0u32;
        for &b in &xs {
            let x = f32::from_bits(b);
            let y = f(x);
            let rv = r(x as f64);
            let e = ulp_error(y, rv);
            if e > worst.0 {
                worst = (e, b);
            }
            let c = rv as f32;
            let nan_bad = y.is_nan() != rv.is_nan();
            let zero_bad = y == 0.0 && c == 0.0 && y.is_sign_negative() != c.is_sign_negative();
            if nan_bad || zero_bad {
                specials += 1;
            }
        }
        println!(
            "{name}: max {:.3} ulp at 0x{:08X} (bound {bound})",
            worst.0, worst.1
        );
        if worst.0 > bound || specials > 0 {
            failures.push(format!(
                "{name}: max {:.3} ulp at 0x{:08X} (bound {bound}), {specials} NaN/zero-sign mismatches",
                worst.0, worst.1
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn special_values() {
    let inf = f32::INFINITY;
    let nan = f32::NAN;
    let cases: &[(&str, F32Fn, f32, f32)] = &[
        ("exp", math::exp, 0.0, 1.0),
        ("exp", math::exp, -0.0, 1.0),
        ("exp", math::exp, -inf, 0.0),
        ("exp", math::exp, inf, inf),
        ("exp", math::exp, 88.73, inf),
        ("exp", math::exp, -104.0, 0.0),
        ("exp", math::exp, nan, nan),
        ("exp", math::exp, -103.5, f32::from_bits(1)),
        ("log", math::log, 1.0, 0.0),
        ("log", math::log, 0.0, -inf),
        ("log", math::log, -0.0, -inf),
        ("log", math::log, -1.0, nan),
        ("log", math::log, -inf, nan),
        ("log", math::log, f32::from_bits(0x8000_0001), nan),
        ("log", math::log, inf, inf),
        ("log", math::log, nan, nan),
        ("tanh", math::tanh, 0.0, 0.0),
        ("tanh", math::tanh, -0.0, -0.0),
        ("tanh", math::tanh, inf, 1.0),
        ("tanh", math::tanh, -inf, -1.0),
        ("tanh", math::tanh, 10.0, 1.0),
        ("tanh", math::tanh, -1e30, -1.0),
        ("tanh", math::tanh, f32::from_bits(1), f32::from_bits(1)),
        ("tanh", math::tanh, nan, nan),
        ("sigmoid", math::sigmoid, 0.0, 0.5),
        ("sigmoid", math::sigmoid, -0.0, 0.5),
        ("sigmoid", math::sigmoid, inf, 1.0),
        ("sigmoid", math::sigmoid, -inf, 0.0),
        ("sigmoid", math::sigmoid, 20.0, 1.0),
        ("sigmoid", math::sigmoid, nan, nan),
        ("erf", math::erf, 0.0, 0.0),
        ("erf", math::erf, -0.0, -0.0),
        ("erf", math::erf, inf, 1.0),
        ("erf", math::erf, -inf, -1.0),
        ("erf", math::erf, 4.0, 1.0),
        (
            "erf",
            math::erf,
            f32::from_bits(0x8000_0001),
            f32::from_bits(0x8000_0001),
        ),
        ("erf", math::erf, nan, nan),
        ("gelu_tanh", math::gelu_tanh, 0.0, 0.0),
        ("gelu_tanh", math::gelu_tanh, -0.0, -0.0),
        ("gelu_tanh", math::gelu_tanh, inf, inf),
        ("gelu_tanh", math::gelu_tanh, -inf, -0.0),
        ("gelu_tanh", math::gelu_tanh, 100.0, 100.0),
        ("gelu_tanh", math::gelu_tanh, -100.0, -0.0),
        ("gelu_tanh", math::gelu_tanh, nan, nan),
        ("gelu_erf", math::gelu_erf, 0.0, 0.0),
        ("gelu_erf", math::gelu_erf, -0.0, -0.0),
        ("gelu_erf", math::gelu_erf, inf, inf),
        ("gelu_erf", math::gelu_erf, -inf, -0.0),
        ("gelu_erf", math::gelu_erf, 100.0, 100.0),
        ("gelu_erf", math::gelu_erf, -100.0, -0.0),
        ("gelu_erf", math::gelu_erf, nan, nan),
        ("sqrt", math::sqrt, -0.0, -0.0),
        ("sqrt", math::sqrt, -1.0, nan),
        ("sqrt", math::sqrt, inf, inf),
        ("rsqrt", math::rsqrt, 0.0, inf),
        ("rsqrt", math::rsqrt, -0.0, -inf),
        ("rsqrt", math::rsqrt, inf, 0.0),
        ("rsqrt", math::rsqrt, 4.0, 0.5),
        ("rsqrt", math::rsqrt, -1.0, nan),
        ("recip", math::recip, 0.0, inf),
        ("recip", math::recip, -0.0, -inf),
        ("recip", math::recip, -inf, -0.0),
        ("recip", math::recip, 4.0, 0.25),
    ];
    let bad: Vec<String> = cases
        .iter()
        .filter(|(_, f, x, want)| !same(f(*x), *want))
        .map(|(name, f, x, want)| format!("{name}({x:e}) = {:e}, want {want:e}", f(*x)))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // Every NaN payload and sign gives NaN.
    for b in [
        0x7F80_0001u32,
        0x7FC0_0000,
        0x7FFF_FFFF,
        0xFF80_0001,
        0xFFC0_0000,
        0xFFFF_FFFF,
    ] {
        let x = f32::from_bits(b);
        for (name, f, _, _) in funcs() {
            assert!(f(x).is_nan(), "{name}(NaN 0x{b:08X}) is not NaN");
        }
    }
}

#[test]
fn odd_functions_are_bit_exactly_odd_and_monotone_saturation() {
    for b in (0..0x7F80_0000u32).step_by(997) {
        let x = f32::from_bits(b);
        for (name, f) in [("tanh", math::tanh as F32Fn), ("erf", math::erf)] {
            let (p, n) = (f(x), f(-x));
            assert_eq!(n.to_bits(), (-p).to_bits(), "{name} not odd at 0x{b:08X}");
            assert!(p.abs() <= 1.0, "{name}(0x{b:08X}) = {p} beyond 1");
        }
        let s = math::sigmoid(x);
        assert!((0.5..=1.0).contains(&s), "sigmoid(0x{b:08X}) = {s}");
        let e = math::exp(x);
        assert!(e >= 1.0, "exp(0x{b:08X}) = {e}");
    }
    // exp is non-decreasing and gradual underflow produces every subnormal scale.
    let mut prev = 0.0f32;
    let mut x = -104.0f32;
    while x < -85.0 {
        let e = math::exp(x);
        assert!(e >= prev, "exp not monotone at {x:e}");
        prev = e;
        x += 1.0 / 1024.0;
    }
}

/// FNV-1a over the little-endian bytes of `f(x)` for the sweep patterns
/// `j * 4099`; pins the exact output bits (see the spec's conformance table).
fn digest(f: F32Fn) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for j in 0..=(u32::MAX / 4099) {
        let y = f(f32::from_bits(j * 4099));
        // NaN payloads are unspecified: hash every NaN as the canonical one.
        let bits = if y.is_nan() { 0x7FC0_0000 } else { y.to_bits() };
        for byte in bits.to_le_bytes() {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    h
}

#[test]
fn conformance_digests() {
    let want: [(&str, F32Fn, u64); 7] = [
        ("exp", math::exp, 0x0D4B_1F92_9D8D_2A7E),
        ("log", math::log, 0x1930_E43D_7808_13EA),
        ("tanh", math::tanh, 0x68E8_FAA5_4CD4_C328),
        ("sigmoid", math::sigmoid, 0x54D0_F1B0_C4AD_BAB1),
        ("erf", math::erf, 0x44C1_13EE_ED38_462D),
        ("gelu_tanh", math::gelu_tanh, 0x6B78_3040_D789_FD07),
        ("gelu_erf", math::gelu_erf, 0x4FF4_9D8B_417C_6978),
    ];
    let bad: Vec<String> = want
        .iter()
        .filter_map(|(name, f, d)| {
            let got = digest(*f);
            (got != *d).then(|| format!("{name}: digest 0x{got:016X}, spec says 0x{d:016X}"))
        })
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}
