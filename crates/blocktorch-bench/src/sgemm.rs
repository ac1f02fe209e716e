//! `blocktorch-bench sgemm`: BlockTorch's SGEMM against OpenBLAS.

use std::time::{Duration, Instant};

use blocktorch::cpu::gemm::{sgemm, GemmConfig, MatRef, Simd};

use crate::openblas::OpenBlas;

const USAGE: &str = "\
usage: blocktorch-bench sgemm (--n N | --shape MxKxN | --suite) [--threads T] [--runs R]
                             [--tiles MC,KC,NC] [--warm-ms W] [--json]

  --n N          square N x N x N multiply
  --shape MxKxN  C (MxN) = A (MxK) . B (KxN)
  --suite        256, 512, 1024, 2048 square and 128x384x1536, 128x1536x384,
                 512x768x768, 2048x64x2048
  --threads T    threads for us and for OpenBLAS (default: all cores)
  --runs R       timed runs; the median is reported (default 7)
  --tiles MC,KC,NC  our cache tiles: rows of A per L2 block, depth of a K block,
                 columns of B per block (default: GemmConfig::new's); they change
                 the speed only, never a bit
  --warm-ms W    before each timed run, run the same multiply back to back for W ms
                 untimed (ours before ours, OpenBLAS's before OpenBLAS's), so that
                 both are timed with their threads already running (default 0: each
                 run starts right after the other library's run and its pause)
  --json         one JSON object per line
  --no-openblas  do not load OpenBLAS; report ours only
";

/// The `--suite` shapes, as (m, k, n).
const SUITE: &[(usize, usize, usize)] = &[
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (128, 384, 1536),
    (128, 1536, 384),
    (512, 768, 768),
    (2048, 64, 2048),
];

/// A timed run lasts at least this long (repeating the multiply as needed).
const MIN_RUN: Duration = Duration::from_millis(40);

struct Opts {
    shapes: Vec<(usize, usize, usize)>,
    threads: usize,
    runs: usize,
    tiles: Option<(usize, usize, usize)>,
    warm: Duration,
    json: bool,
    no_openblas: bool,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut shapes = Vec::new();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runs = 7;
    let mut tiles = None;
    let mut warm = Duration::ZERO;
    let mut json = false;
    let mut no_openblas = false;
    let mut it = args.iter();
    let num = |v: Option<&String>, flag: &str| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => {
                let n = num(it.next(), "--n")?;
                shapes.push((n, n, n));
            }
            "--shape" => {
                let v = it.next().ok_or("--shape needs MxKxN")?;
                let dims = sizes(v, &['x', 'X'], "--shape")?;
                match dims[..] {
                    [m, k, n] => shapes.push((m, k, n)),
                    _ => return Err(format!("--shape {v}: expected MxKxN")),
                }
            }
            "--suite" => shapes.extend_from_slice(SUITE),
            "--threads" => threads = num(it.next(), "--threads")?,
            "--runs" => runs = num(it.next(), "--runs")?,
            "--tiles" => {
                let v = it.next().ok_or("--tiles needs MC,KC,NC")?;
                let t = sizes(v, &[','], "--tiles")?;
                match t[..] {
                    [mc, kc, nc] if mc > 0 && kc > 0 && nc > 0 => tiles = Some((mc, kc, nc)),
                    _ => return Err(format!("--tiles {v}: expected three sizes of at least 1")),
                }
            }
            "--warm-ms" => warm = Duration::from_millis(num(it.next(), "--warm-ms")? as u64),
            "--json" => json = true,
            "--no-openblas" => no_openblas = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if shapes.is_empty() {
        return Err(format!("give --n, --shape or --suite\n{USAGE}"));
    }
    if shapes.iter().any(|&(m, k, n)| m == 0 || k == 0 || n == 0) {
        return Err("matrix dimensions must be at least 1".into());
    }
    if threads == 0 || runs == 0 {
        return Err("--threads and --runs must be at least 1".into());
    }
    Ok(Some(Opts {
        shapes,
        threads,
        runs,
        tiles,
        warm,
        json,
        no_openblas,
    }))
}

/// `v` cut at `sep` into sizes, or the error of `flag`'s value.
fn sizes(v: &str, sep: &[char], flag: &str) -> Result<Vec<usize>, String> {
    v.split(sep)
        .map(|d| d.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{flag} {v}: {e}"))
}

/// Entry point of the subcommand.
pub fn main(args: &[String]) -> Result<(), String> {
    let Some(opts) = parse(args)? else {
        return Ok(());
    };
    let blas = match if opts.no_openblas {
        Err("--no-openblas".to_string())
    } else {
        OpenBlas::load()
    } {
        Ok(b) => {
            b.set_threads(opts.threads);
            Some(b)
        }
        Err(e) => {
            eprintln!("openblas: not available ({e}); reporting ours only");
            None
        }
    };
    let simd = Simd::detect();
    if !opts.json {
        println!(
            "sgemm: simd {simd:?}, threads {}, median of {} runs (each >= {} ms){}",
            opts.threads,
            opts.runs,
            MIN_RUN.as_millis(),
            opts.tiles.map_or(String::new(), |(mc, kc, nc)| format!(
                ", tiles {mc},{kc},{nc}"
            )) + &if opts.warm.is_zero() {
                String::new()
            } else {
                format!(", warmed {} ms before each", opts.warm.as_millis())
            }
        );
    }
    for &(m, k, n) in &opts.shapes {
        let r = bench_shape(&opts, blas.as_ref(), simd, m, k, n);
        if opts.json {
            println!("{}", r.json());
        } else {
            println!("{}", r.text());
        }
    }
    Ok(())
}

struct Report {
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
    runs: usize,
    simd: Simd,
    ours: f64,
    openblas: Option<f64>,
    bit_identical: bool,
    max_ulp: Option<u64>,
    max_rel_err: Option<f64>,
}

impl Report {
    fn ratio(&self) -> Option<f64> {
        self.openblas.map(|o| self.ours / o)
    }

    fn text(&self) -> String {
        let mut s = format!(
            "{}x{}x{} (MxKxN): ours {:.1} GFLOP/s",
            self.m, self.k, self.n, self.ours
        );
        match (self.openblas, self.ratio()) {
            (Some(o), Some(r)) => s += &format!(", openblas {o:.1} GFLOP/s, ratio {r:.3}"),
            _ => s += ", openblas n/a",
        }
        s += &format!(", bit_identical: {}", self.bit_identical);
        if let (Some(u), Some(e)) = (self.max_ulp, self.max_rel_err) {
            s += &format!(", max_ulp_vs_openblas: {u}, max_rel_err_vs_openblas: {e:.2e}");
        }
        s
    }

    fn json(&self) -> String {
        let opt_f = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.3}"));
        format!(
            "{{\"bench\":\"sgemm\",\"m\":{},\"k\":{},\"n\":{},\"threads\":{},\"runs\":{},\
             \"simd\":\"{:?}\",\"ours_gflops\":{:.3},\"openblas_gflops\":{},\"ratio\":{},\
             \"bit_identical\":{},\"max_ulp_vs_openblas\":{},\"max_rel_err_vs_openblas\":{}}}",
            self.m,
            self.k,
            self.n,
            self.threads,
            self.runs,
            self.simd,
            self.ours,
            opt_f(self.openblas),
            opt_f(self.ratio()),
            self.bit_identical,
            self.max_ulp.map_or("null".to_string(), |u| u.to_string()),
            self.max_rel_err
                .map_or("null".to_string(), |e| format!("{e:.3e}")),
        )
    }
}

/// Deterministic inputs in [-1, 1) (SplitMix64).
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32) / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// OpenBLAS's idle worker threads keep spinning (`sched_yield`) for about
/// 2^28 cycles after a call, which would steal cores from our next run: wait
/// for them to go to sleep.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Times `f`: returns the median GFLOP/s of `runs` runs, each repeating `f`
/// `reps` times.
fn time_runs(flops: f64, reps: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// Calls `f` back to back, untimed, for `d` (not at all for zero): a pool's threads
/// are then running when the timed run starts (`--warm-ms`).
fn warm_up(d: Duration, f: &mut dyn FnMut()) {
    let t = Instant::now();
    while t.elapsed() < d {
        f();
    }
}

/// How many repetitions make one run last at least [`MIN_RUN`] (from one
/// warm-up call).
fn calibrate(f: &mut dyn FnMut()) -> usize {
    let t = Instant::now();
    f();
    let once = t.elapsed().max(Duration::from_micros(1));
    (MIN_RUN.as_secs_f64() / once.as_secs_f64()).ceil().max(1.0) as usize
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let h = v.len() / 2;
    if v.len() % 2 == 1 {
        v[h]
    } else {
        (v[h - 1] + v[h]) / 2.0
    }
}

/// Bits ordered like the floats they encode, NaNs canonicalised.
fn ordered(x: f32) -> i64 {
    let x = if x.is_nan() { f32::NAN } else { x };
    let b = x.to_bits() as i32;
    i64::from(if b < 0 { i32::MIN - b } else { b })
}

fn bench_shape(
    opts: &Opts,
    blas: Option<&OpenBlas>,
    simd: Simd,
    m: usize,
    k: usize,
    n: usize,
) -> Report {
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    let av = MatRef {
        data: &a,
        offset: 0,
        rs: k,
        cs: 1,
    };
    let bv = MatRef {
        data: &b,
        offset: 0,
        rs: n,
        cs: 1,
    };
    let mut cfg = GemmConfig::new(simd, opts.threads);
    if let Some((mc, kc, nc)) = opts.tiles {
        (cfg.mc, cfg.kc, cfg.nc) = (mc, kc, nc);
    }
    let flops = 2.0 * m as f64 * n as f64 * k as f64;

    let mut c_ours = vec![0.0f32; m * n];
    let mut c_blas = vec![0.0f32; m * n];
    let mut ours = || sgemm(&cfg, m, n, k, av, bv, &mut c_ours);
    let reps_ours = calibrate(&mut ours);
    let (a, b) = (&a, &b);
    let mut blas_call = blas.map(|lib| move |c: &mut [f32]| lib.sgemm(m, n, k, a, b, c));
    let reps_blas = blas_call.as_mut().map(|f| {
        let reps = calibrate(&mut || f(&mut c_blas));
        settle();
        reps
    });

    // Alternate ours and OpenBLAS so that background load hits both alike.
    let mut ours_g = Vec::with_capacity(opts.runs);
    let mut blas_g = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        warm_up(opts.warm, &mut ours);
        ours_g.push(time_runs(flops, reps_ours, &mut ours));
        if let (Some(f), Some(reps)) = (blas_call.as_mut(), reps_blas) {
            warm_up(opts.warm, &mut || f(&mut c_blas));
            blas_g.push(time_runs(flops, reps, &mut || f(&mut c_blas)));
            settle();
        }
    }

    // Bit-identity with the scalar path on this very size.
    let mut c_scalar = vec![0.0f32; m * n];
    sgemm(
        &GemmConfig::new(Simd::Scalar, opts.threads),
        m,
        n,
        k,
        av,
        bv,
        &mut c_scalar,
    );
    let bit_identical = c_ours
        .iter()
        .zip(&c_scalar)
        .all(|(x, y)| ordered(*x) == ordered(*y));
    let max_ulp = blas.map(|_| {
        c_ours
            .iter()
            .zip(&c_blas)
            .map(|(x, y)| ordered(*x).abs_diff(ordered(*y)))
            .max()
            .unwrap_or(0)
    });
    // |ours - OpenBLAS| relative to (|A|·|B|)[i, j], the scale of the
    // rounding error of any summation order (ULPs mislead near 0).
    let max_rel_err = blas.map(|_| {
        let abs_a: Vec<f32> = a.iter().map(|x| x.abs()).collect();
        let abs_b: Vec<f32> = b.iter().map(|x| x.abs()).collect();
        let mut scale = vec![0.0f32; m * n];
        let (aa, bb) = (MatRef { data: &abs_a, ..av }, MatRef { data: &abs_b, ..bv });
        sgemm(&cfg, m, n, k, aa, bb, &mut scale);
        c_ours
            .iter()
            .zip(&c_blas)
            .zip(&scale)
            .map(|((x, y), s)| f64::from((x - y).abs()) / f64::from(s.max(f32::MIN_POSITIVE)))
            .fold(0.0f64, f64::max)
    });
    Report {
        m,
        k,
        n,
        threads: opts.threads,
        runs: opts.runs,
        simd,
        ours: median(ours_g),
        openblas: blas.map(|_| median(blas_g)),
        bit_identical,
        max_ulp,
        max_rel_err,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn tiles_are_three_positive_sizes() {
        let o = parse(&args("--n 64 --tiles 48,256,1024"))
            .expect("parses")
            .expect("not --help");
        assert_eq!(o.tiles, Some((48, 256, 1024)));
        assert_eq!(parse(&args("--n 64")).unwrap().unwrap().tiles, None);
        let o = parse(&args("--n 64 --warm-ms 100")).unwrap().unwrap();
        assert_eq!(o.warm, std::time::Duration::from_millis(100));
        assert!(parse(&args("--n 64 --warm-ms -1")).is_err());
        for bad in ["0,256,1024", "48,256", "48,256,1024,1", "48,x,1024", ""] {
            let e = parse(&args(&format!("--n 64 --tiles {bad}")))
                .err()
                .unwrap_or_else(|| panic!("--tiles {bad:?} accepted"));
            assert!(e.contains("--tiles"), "{e}");
        }
    }
}
