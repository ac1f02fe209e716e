//! `blocktorch-bench ops`: elementwise and reduction throughput as a fraction of the
//! machine's memory bandwidth (a plain copy measured in the same run), and softmax,
//! layer-norm and attention throughput in rows per second.

use blocktorch::compose::{self as c, AttentionOptions, FabricBackend};
use blocktorch::cpu::gemm::Simd;
use blocktorch::fabric::{Fabric, FabricTensor};
use blocktorch::rng::uniform_f32;
use blocktorch::{BinaryOp, CpuConfig, CpuFabric, HostData, UnaryOp};
use std::time::Instant;

/// Causal self-attention at the default scale.
const CAUSAL: AttentionOptions = AttentionOptions {
    scale: None,
    causal: true,
};

struct Opts {
    threads: usize,
    runs: usize,
    elements: usize,
    json: bool,
    simd: Simd,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        threads: 2,
        runs: 7,
        elements: 1 << 24,
        json: false,
        simd: Simd::detect(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => o.threads = crate::flag_value(&mut it, "--threads")?,
            "--runs" => o.runs = crate::flag_value(&mut it, "--runs")?,
            "--elements" => o.elements = crate::flag_value(&mut it, "--elements")?,
            "--scalar" => o.simd = Simd::Scalar,
            "--json" => o.json = true,
            other => return Err(format!("ops: unknown argument {other:?}")),
        }
    }
    if o.runs == 0 || o.threads == 0 || o.elements == 0 {
        return Err("--runs, --threads and --elements must be positive".into());
    }
    Ok(o)
}

/// One benchmarked computation.
type Job<'a> = Box<dyn Fn() -> FabricTensor + 'a>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median seconds of `f` over `runs` runs (after one warm-up).
fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn upload(f: &CpuFabric, seed: u64, shape: &[usize], lo: f32, hi: f32) -> FabricTensor {
    f.upload(
        &HostData::F32(uniform_f32(seed, shape.iter().product(), lo, hi)),
        shape,
    )
    .expect("upload")
}

/// Runs the `ops` benchmark.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let fabric = CpuFabric::new(CpuConfig::new(o.simd, o.threads)).map_err(|e| e.to_string())?;
    let b = FabricBackend(&fabric);
    let n = o.elements;
    let bytes = (n * 4) as f64;

    // Memory bandwidth reference: copying a buffer (read n, write n), split like the ops.
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let copy_s = time(o.runs, || {
        let chunk = n.div_ceil(o.threads);
        std::thread::scope(|s| {
            for (d, sr) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(sr));
            }
        });
    });
    let bw = 2.0 * bytes / copy_s;
    drop(dst);
    report(&o, "copy (bandwidth reference)", bw, bw, None);
    // What every op that allocates its output also pays: fresh pages (first touch).
    let fresh_s = time(o.runs, || {
        let mut fresh = vec![0.0f32; n];
        let chunk = n.div_ceil(o.threads);
        std::thread::scope(|s| {
            for (d, sr) in fresh.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(sr));
            }
        });
        drop(fresh);
    });
    drop(src);
    report(
        &o,
        "copy into a fresh allocation",
        2.0 * bytes / fresh_s,
        bw,
        None,
    );

    let x = upload(&fabric, 1, &[n], -4.0, 4.0);
    let y = upload(&fabric, 2, &[n], 0.5, 2.0);
    let ew: Vec<(&str, f64, Job)> = vec![
        (
            "add",
            3.0,
            Box::new(|| c::binary(&b, BinaryOp::Add, &x, &y).expect("add")),
        ),
        (
            "mul",
            3.0,
            Box::new(|| c::binary(&b, BinaryOp::Mul, &x, &y).expect("mul")),
        ),
        (
            "relu",
            2.0,
            Box::new(|| c::unary(&b, UnaryOp::Relu, &x).expect("relu")),
        ),
        (
            "exp",
            2.0,
            Box::new(|| c::unary(&b, UnaryOp::Exp, &x).expect("exp")),
        ),
        (
            "tanh",
            2.0,
            Box::new(|| c::unary(&b, UnaryOp::Tanh, &x).expect("tanh")),
        ),
        (
            "gelu_erf",
            2.0,
            Box::new(|| c::unary(&b, UnaryOp::GeluErf, &x).expect("gelu")),
        ),
        (
            "sum (all)",
            1.0,
            Box::new(|| c::sum(&b, &x, &[], false).expect("sum")),
        ),
        (
            "max (all)",
            1.0,
            Box::new(|| c::max(&b, &x, &[], false).expect("max")),
        ),
    ];
    for (name, passes, f) in &ew {
        let s = time(o.runs, || drop(f()));
        report(&o, name, passes * bytes / s, bw, None);
    }
    let rows_bench: Vec<(&str, usize, Job)> = {
        let sm = upload(&fabric, 3, &[4096, 1024], -8.0, 8.0);
        let ln = upload(&fabric, 4, &[4096, 768], -3.0, 3.0);
        let w = upload(&fabric, 5, &[768], 0.5, 1.5);
        let bb = upload(&fabric, 6, &[768], -0.1, 0.1);
        let q = upload(&fabric, 7, &[12, 128, 64], -1.0, 1.0);
        let k = upload(&fabric, 8, &[12, 128, 64], -1.0, 1.0);
        let v = upload(&fabric, 9, &[12, 128, 64], -1.0, 1.0);
        let fr = &fabric;
        let b2 = FabricBackend(fr);
        vec![
            (
                "softmax 4096x1024",
                4096,
                Box::new(move || c::softmax(&FabricBackend(fr), &sm, -1).expect("softmax")),
            ),
            (
                "layer_norm 4096x768",
                4096,
                Box::new(move || {
                    c::layer_norm(&b2, &ln, 1, Some(&w), Some(&bb), 1e-5).expect("ln")
                }),
            ),
            (
                "attention causal 12 heads x 128 x 64",
                12 * 128,
                Box::new(move || {
                    c::attention(&FabricBackend(fr), &q, &k, &v, None, None, &CAUSAL)
                        .expect("attention")
                }),
            ),
        ]
    };
    for (name, rows, f) in &rows_bench {
        let s = time(o.runs, || drop(f()));
        report(&o, name, *rows as f64 / s, bw, Some("rows/s"));
    }
    Ok(())
}

fn report(o: &Opts, name: &str, rate: f64, bw: f64, unit: Option<&str>) {
    let simd = match o.simd {
        Simd::Scalar => "scalar",
        Simd::Avx2Fma => "avx2",
    };
    match (unit, o.json) {
        (None, true) => println!(
            "{{\"bench\":\"ops\",\"op\":\"{name}\",\"simd\":\"{simd}\",\"threads\":{},\"elements\":{},\"gb_per_s\":{:.2},\"fraction_of_copy_bandwidth\":{:.3}}}",
            o.threads,
            o.elements,
            rate / 1e9,
            rate / bw
        ),
        (None, false) => println!("{name:40} {:8.2} GB/s  {:5.1}% of copy bandwidth", rate / 1e9, 100.0 * rate / bw),
        (Some(_), true) => println!(
            "{{\"bench\":\"ops\",\"op\":\"{name}\",\"simd\":\"{simd}\",\"threads\":{},\"rows_per_s\":{rate:.0}}}",
            o.threads
        ),
        (Some(u), false) => println!("{name:40} {rate:12.0} {u}"),
    }
}
