//! Exhaustive ULP sweep of `blocktorch::math` against `f64` references.
//!
//! Evaluates every function on every `f32` bit pattern (2^32 inputs; with
//! `--stride S` only the patterns `0, S, 2S, ...`), split over threads with
//! `std::thread::scope`, and prints a markdown table with, per function, the
//! maximum ULP error, the worst input, the share of correctly rounded results
//! and the counts of mismatched special cases.
//!
//! ```text
//! cargo run --release --example ulp_sweep -p blocktorch [-- --stride S] [--threads T]
//! ```
//!
//! # Reference
//!
//! The reference `r` is an `f64` evaluation: `f64::exp`, `f64::ln`,
//! `f64::tanh`, `1 / (1 + exp(-x))`, `libm::erf`, `f64::sqrt`, `1 / sqrt(x)`,
//! `1 / x`. For the GELUs the reference is the `f64` evaluation of the same
//! formula in a form that does not cancel in `f64` either:
//! `0.5 x (1 + tanh(y)) = x / (1 + exp(-2y))` with
//! `y = sqrt(2/pi) (x + 0.044715 x^3)`, and `0.5 x (1 + erf(x/sqrt 2)) =
//! 0.5 x erfc(-x/sqrt 2)` (`libm::erfc`); `gelu(+inf) = +inf`,
//! `gelu(-inf) = -0`. No input is excluded.
//!
//! # ULP error
//!
//! Let `y` be our `f32` result and `c = RN(r)` the correctly rounded `f32`
//! result (round to nearest, ties to even; `|r|` at or beyond
//! `2^128 - 2^103` rounds to `±inf`). For an `f32` value `v`,
//! `ulp(v) = 2^(max(E, -126) - 23)` where `E = floor(log2 |v|)` for finite
//! non-zero `v`, `ulp(±0) = 2^-149` (the subnormal spacing) and
//! `ulp(±inf) = 2^104` (the spacing of the top binade). Then
//!
//! * if `y` and `r` are both NaN, or `y == c` and `c` is infinite: error 0;
//! * otherwise, with `±inf` in `y` read as `±2^128` and `r` clamped to
//!   `[-2^128, 2^128]`: `error = |y - r| / ulp(c)`, computed in `f64`.
//!
//! A correctly rounded result therefore has error at most 0.5. `±0` compare
//! equal for the error; a different sign of zero is counted separately.
//!
//! # Special cases
//!
//! * `NaN`: `y` is NaN and `r` is not, or the other way round;
//! * `inf`: exactly one of `y`, `c` is infinite, or they are infinities of
//!   opposite sign;
//! * `zero sign`: `y` and `c` are both zero with different sign bits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[path = "../tests/support/ulp_ref.rs"]
mod ulp_ref;
use ulp_ref::{ulp_error, FUNCS};

#[derive(Clone, Copy, Default)]
struct Stats {
    max_err: f64,
    worst: u32,
    worst_y: f32,
    worst_r: f64,
    correctly_rounded: u64,
    count: u64,
    nan: u64,
    inf: u64,
    zero_sign: u64,
}

impl Stats {
    fn add(&mut self, bits: u32, y: f32, r: f64) {
        self.count += 1;
        let c = r as f32;
        if y.is_nan() != r.is_nan() {
            self.nan += 1;
        }
        if !y.is_nan() && !r.is_nan() {
            if (y.is_infinite() || c.is_infinite()) && y != c {
                self.inf += 1;
            }
            if y == 0.0 && c == 0.0 && y.is_sign_negative() != c.is_sign_negative() {
                self.zero_sign += 1;
            }
        }
        if y.to_bits() == c.to_bits() || (y.is_nan() && r.is_nan()) {
            self.correctly_rounded += 1;
        }
        let e = ulp_error(y, r);
        if e > self.max_err || (e == self.max_err && e > 0.0 && bits < self.worst) {
            self.max_err = e;
            self.worst = bits;
            self.worst_y = y;
            self.worst_r = r;
        }
    }

    fn merge(&mut self, o: &Stats) {
        if o.max_err > self.max_err || (o.max_err == self.max_err && o.worst < self.worst) {
            self.max_err = o.max_err;
            self.worst = o.worst;
            self.worst_y = o.worst_y;
            self.worst_r = o.worst_r;
        }
        self.correctly_rounded += o.correctly_rounded;
        self.count += o.count;
        self.nan += o.nan;
        self.inf += o.inf;
        self.zero_sign += o.zero_sign;
    }
}

fn parse_args() -> (u64, usize) {
    let mut stride = 1u64;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a positive integer"))
        };
        match a.as_str() {
            "--stride" => stride = val("--stride").max(1),
            "--threads" => threads = val("--threads").max(1) as usize,
            other => panic!("unknown argument {other} (use --stride S, --threads T)"),
        }
    }
    (stride, threads)
}

fn main() {
    let (stride, threads) = parse_args();
    let total: u64 = (1u64 << 32).div_ceil(stride);
    const CHUNK: u64 = 1 << 16;
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let mut all = [Stats::default(); FUNCS.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut st = [Stats::default(); FUNCS.len()];
                    loop {
                        let lo = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if lo >= total {
                            break;
                        }
                        for j in lo..(lo + CHUNK).min(total) {
                            let bits = (j * stride) as u32;
                            let x = f32::from_bits(bits);
                            for (k, (_, f, r)) in FUNCS.iter().enumerate() {
                                st[k].add(bits, f(x), r(x as f64));
                            }
                        }
                    }
                    st
                })
            })
            .collect();
        for h in handles {
            let st = h.join().expect("sweep thread panicked");
            for (a, b) in all.iter_mut().zip(st.iter()) {
                a.merge(b);
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ULP sweep: {total} inputs per function (stride {stride}), {threads} threads, {secs:.1} s\n"
    );
    println!(
        "| function | max ULP | worst input (bits) | worst input | result | reference (f64) \
         | correctly rounded | NaN mism. | inf mism. | zero-sign mism. |"
    );
    println!("| --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: |");
    for ((name, _, _), s) in FUNCS.iter().zip(all.iter()) {
        println!(
            "| {name} | {:.3} | `0x{:08X}` | {:e} | {:e} | {:e} | {:.4}% | {} | {} | {} |",
            s.max_err,
            s.worst,
            f32::from_bits(s.worst),
            s.worst_y,
            s.worst_r,
            100.0 * s.correctly_rounded as f64 / s.count as f64,
            s.nan,
            s.inf,
            s.zero_sign
        );
    }
}
