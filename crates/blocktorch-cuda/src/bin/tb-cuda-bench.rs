//! Benchmarks of the CUDA fabric (run on a GPU machine):
//!
//! - `tb-cuda-bench matmul [--runs N] [--sizes 1024,2048,...] [--no-verify]`: our
//!   matmul (each tile configuration) beside cuBLAS SGEMM (default math mode, TF32 off)
//!   on the same stream, square sizes and transformer shapes; median of `N` timed runs
//!   after warm-up, CUDA events. Every output of ours is compared bit for bit with the
//!   CPU fabric (`--no-verify` skips that).
//! - `tb-cuda-bench e2e [--runs N]`: a transformer block forward pass (layer-norm,
//!   QKV projection, 12-head attention, output projection, GELU MLP, residuals) built
//!   from `blocktorch::compose`, on the CPU fabric and on CUDA, with both output digests.
#![deny(unsafe_code)]

use blocktorch::compose::{self, AttentionOptions, Backend, FabricBackend};
use blocktorch::{BinaryOp, Fabric, FabricTensor, HostData, Prim, UnaryOp};
use blocktorch_cuda::{CudaConfig, CudaFabric, MatmulTile};
use cudarc::cublas::sys::{cublasMath_t, cublasOperation_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::CudaSlice;
use std::process::ExitCode;
use std::time::Instant;

/// Causal self-attention at the default scale.
const CAUSAL: AttentionOptions = AttentionOptions {
    scale: None,
    causal: true,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: tb-cuda-bench matmul [--runs N] [--sizes A,B,..] [--no-verify] | e2e [--runs N]"
    );
    ExitCode::from(2)
}

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut r = blocktorch::rng::SplitMix64::new(seed);
    (0..n).map(|_| r.next_unit_f32() * 2.0 - 1.0).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

type BenchResult<T> = Result<T, String>;

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Median milliseconds of `runs` calls of `f`, each bracketed by CUDA events.
fn time_gpu(
    fab: &CudaFabric,
    runs: usize,
    mut f: impl FnMut() -> BenchResult<()>,
) -> BenchResult<f64> {
    // Warm up for at least 3 calls and 200 ms, so clocks have ramped before timing.
    let warm = Instant::now();
    let mut calls = 0;
    while calls < 3 || warm.elapsed().as_millis() < 200 {
        f()?;
        fab.synchronize().map_err(e("sync"))?;
        calls += 1;
    }
    let flags = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
    let mut ms = Vec::new();
    for _ in 0..runs {
        let start = fab.stream().record_event(flags).map_err(e("event"))?;
        f()?;
        let end = fab.stream().record_event(flags).map_err(e("event"))?;
        end.synchronize().map_err(e("event sync"))?;
        ms.push(start.elapsed_ms(&end).map_err(e("elapsed"))? as f64);
    }
    Ok(median(ms))
}

struct Shape {
    name: String,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

fn shapes(sizes: &[usize]) -> Vec<Shape> {
    let mut v: Vec<Shape> = sizes
        .iter()
        .map(|&s| Shape {
            name: format!("{s}^3"),
            batch: 1,
            m: s,
            k: s,
            n: s,
        })
        .collect();
    // A GPT-2-small-sized layer at 8 x 512 tokens, and its attention products.
    for (name, batch, m, k, n) in [
        ("qkv 4096x768x2304", 1, 4096, 768, 2304),
        ("proj 4096x768x768", 1, 4096, 768, 768),
        ("mlp-up 4096x768x3072", 1, 4096, 768, 3072),
        ("mlp-down 4096x3072x768", 1, 4096, 3072, 768),
        ("scores 96x(512x64x512)", 96, 512, 64, 512),
        ("context 96x(512x512x64)", 96, 512, 512, 64),
    ] {
        v.push(Shape {
            name: name.into(),
            batch,
            m,
            k,
            n,
        });
    }
    v
}

fn bench_matmul(runs: usize, sizes: &[usize], verify: bool) -> BenchResult<()> {
    let fabrics: Vec<(MatmulTile, CudaFabric)> = MatmulTile::ALL
        .iter()
        .map(|&t| {
            CudaFabric::new(CudaConfig {
                ordinal: 0,
                matmul_tile: Some(t),
            })
            .map(|f| (t, f))
            .map_err(|err| err.to_string())
        })
        .collect::<BenchResult<_>>()?;
    let auto = CudaFabric::new(CudaConfig::default()).map_err(|err| err.to_string())?;
    println!("device: {}", auto.device_description());
    let occ: Vec<String> = auto
        .matmul_occupancy()
        .iter()
        .map(|(t, o)| format!("{} {o}", t.name()))
        .collect();
    println!("resident blocks per SM: {}", occ.join(", "));
    let cpu = blocktorch::cpu::default_fabric();
    let tiles: Vec<&str> = MatmulTile::ALL.iter().map(|t| t.name()).collect();
    println!(
        "| shape | auto tile | auto TFLOP/s | {} | cuBLAS ms | cuBLAS TFLOP/s | auto / cuBLAS | best / cuBLAS | bit-identical to CPU |",
        tiles.join(" | ")
    );
    println!("|{}", " --- |".repeat(8 + tiles.len()));
    for s in shapes(sizes) {
        let flops = 2.0 * (s.batch * s.m * s.n * s.k) as f64;
        let a = HostData::F32(seeded(s.batch * s.m * s.k, 1));
        let b = HostData::F32(seeded(s.k * s.n * s.batch, 2));
        let (sa, sb) = if s.batch == 1 {
            (vec![s.m, s.k], vec![s.k, s.n])
        } else {
            (vec![s.batch, s.m, s.k], vec![s.batch, s.k, s.n])
        };
        // Ours, every tile and the automatic choice.
        let run_ours = |f: &CudaFabric| -> BenchResult<(f64, FabricTensor)> {
            let ta = f.upload(&a, &sa).map_err(e("upload"))?;
            let tb = f.upload(&b, &sb).map_err(e("upload"))?;
            let ms = time_gpu(f, runs, || {
                f.execute(&Prim::Matmul, &[&ta, &tb])
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            })?;
            let c = f.execute(&Prim::Matmul, &[&ta, &tb]).map_err(e("matmul"))?;
            Ok((ms, c))
        };
        let (auto_ms, auto_out) = run_ours(&auto)?;
        let auto_bytes = auto.download(&auto_out).map_err(e("download"))?;
        let mut best = (f64::INFINITY, "");
        let mut per_tile = Vec::new();
        for (t, f) in &fabrics {
            let (ms, out) = run_ours(f)?;
            let bytes = f.download(&out).map_err(e("download"))?;
            if bytes.to_le_bytes_canonical() != auto_bytes.to_le_bytes_canonical() {
                return Err(format!(
                    "{}: tile {} differs from the auto tile",
                    s.name,
                    t.name()
                ));
            }
            if ms < best.0 {
                best = (ms, t.name());
            }
            per_tile.push(ms);
        }
        // cuBLAS on the same stream.
        #[allow(unsafe_code)]
        // SAFETY: only tries `dlopen` on the candidate names; calls nothing in the library.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err("libcublas.so is not on the library path (set LD_LIBRARY_PATH)".into());
        }
        let blas = CudaBlas::new(auto.stream().clone()).map_err(e("cublas"))?;
        #[allow(unsafe_code)]
        // SAFETY: the handle is live for the call; DEFAULT_MATH keeps SGEMM in FP32
        // (no TF32 tensor cores).
        unsafe {
            cudarc::cublas::sys::cublasSetMathMode(
                *blas.handle(),
                cublasMath_t::CUBLAS_DEFAULT_MATH,
            )
        }
        .result()
        .map_err(e("cublasSetMathMode"))?;
        let (HostData::F32(av), HostData::F32(bv)) = (&a, &b) else {
            return Err("inputs are f32".into());
        };
        let st = auto.stream();
        let da: CudaSlice<f32> = st.clone_htod(av.as_slice()).map_err(e("upload"))?;
        let db: CudaSlice<f32> = st.clone_htod(bv.as_slice()).map_err(e("upload"))?;
        let mut dc: CudaSlice<f32> = st.alloc_zeros(s.batch * s.m * s.n).map_err(e("alloc"))?;
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
        let gemm = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: s.n as i32,
            n: s.m as i32,
            k: s.k as i32,
            alpha: 1.0f32,
            lda: s.n as i32,
            ldb: s.k as i32,
            beta: 0.0f32,
            ldc: s.n as i32,
        };
        let cublas_ms = time_gpu(&auto, runs, || {
            #[allow(unsafe_code)]
            // SAFETY: the buffers hold batch·k·n, batch·m·k and batch·m·n floats, which
            // the leading dimensions and strides above address exactly.
            let r = unsafe {
                if s.batch == 1 {
                    blas.gemm(gemm, &db, &da, &mut dc)
                } else {
                    blas.gemm_strided_batched(
                        StridedBatchedConfig {
                            gemm,
                            batch_size: s.batch as i32,
                            stride_a: (s.k * s.n) as i64,
                            stride_b: (s.m * s.k) as i64,
                            stride_c: (s.m * s.n) as i64,
                        },
                        &db,
                        &da,
                        &mut dc,
                    )
                }
            };
            r.map_err(|err| err.to_string())
        })?;
        let verdict = if verify {
            let ta = cpu.upload(&a, &sa).map_err(e("upload"))?;
            let tb = cpu.upload(&b, &sb).map_err(e("upload"))?;
            let c = cpu
                .execute(&Prim::Matmul, &[&ta, &tb])
                .map_err(e("cpu matmul"))?;
            let want = cpu.download(&c).map_err(e("download"))?;
            if want.to_le_bytes_canonical() == auto_bytes.to_le_bytes_canonical() {
                "yes"
            } else {
                return Err(format!("{}: CUDA and CPU differ", s.name));
            }
        } else {
            "not checked"
        };
        let tf = |ms: f64| flops / (ms * 1e-3) / 1e12;
        let cols: Vec<String> = per_tile
            .iter()
            .map(|ms| format!("{:.1}", tf(*ms)))
            .collect();
        println!(
            "| {} | {} | {:.1} | {} | {:.3} | {:.1} | {:.2} | {:.2} ({}) | {} |",
            s.name,
            auto.pick_tile(s.m, s.n, s.k, s.batch).name(),
            tf(auto_ms),
            cols.join(" | "),
            cublas_ms,
            tf(cublas_ms),
            cublas_ms / auto_ms,
            cublas_ms / best.0,
            best.1,
            verdict
        );
    }
    Ok(())
}

/// One pre-norm transformer block over `x: [b, t, d]` with `h` heads.
fn block<B: Backend>(be: &B, x: &B::T, w: &[B::T], h: usize) -> blocktorch::Result<B::T> {
    let s = be.shape(x);
    let (bsz, t, d) = (s[0], s[1], s[2]);
    let dh = d / h;
    let ln1 = compose::layer_norm(be, x, 1, Some(&w[0]), Some(&w[1]), 1e-5)?;
    let qkv = be.exec(&Prim::Matmul, &[&ln1, &w[2]])?; // [b, t, 3d]
    let qkv = compose::reshape(be, &compose::contiguous(be, &qkv)?, &[bsz, t, 3, h, dh])?;
    let part = |i: usize| -> blocktorch::Result<B::T> {
        let p = be.view(
            &qkv,
            compose::View::Slice {
                axis: 2,
                start: i,
                end: i + 1,
                step: 1,
            },
        )?;
        let p = compose::reshape(be, &compose::contiguous(be, &p)?, &[bsz, t, h, dh])?;
        compose::contiguous(be, &compose::transpose(be, &p, 1, 2)?) // [b, h, t, dh]
    };
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let att = compose::attention(be, &q, &k, &v, None, None, &CAUSAL)?;
    let att = compose::contiguous(be, &compose::transpose(be, &att, 1, 2)?)?;
    let att = compose::reshape(be, &att, &[bsz, t, d])?;
    let proj = be.exec(&Prim::Matmul, &[&att, &w[3]])?;
    let x1 = compose::binary(be, BinaryOp::Add, x, &proj)?;
    let ln2 = compose::layer_norm(be, &x1, 1, Some(&w[4]), Some(&w[5]), 1e-5)?;
    let up = be.exec(&Prim::Matmul, &[&ln2, &w[6]])?;
    let act = compose::unary(be, UnaryOp::GeluTanh, &up)?;
    let down = be.exec(&Prim::Matmul, &[&act, &w[7]])?;
    compose::binary(be, BinaryOp::Add, &x1, &down)
}

fn bench_e2e(runs: usize) -> BenchResult<()> {
    let (bsz, t, d, h) = (4usize, 512usize, 768usize, 12usize);
    let t0 = Instant::now();
    let cuda = CudaFabric::new(CudaConfig::default()).map_err(|err| err.to_string())?;
    println!(
        "fabric start (NVRTC compile, module load): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let cpu = blocktorch::cpu::default_fabric();
    println!("device: {}", cuda.device_description());
    println!("cpu: {}", cpu.device_description());
    let shapes: Vec<Vec<usize>> = vec![
        vec![d],
        vec![d],
        vec![d, 3 * d],
        vec![d, d],
        vec![d],
        vec![d],
        vec![d, 4 * d],
        vec![4 * d, d],
    ];
    let x = HostData::F32(seeded(bsz * t * d, 9));
    let ws: Vec<HostData> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n: usize = s.iter().product();
            let scale = if s.len() == 1 { 1.0 } else { 0.05 };
            HostData::F32(
                seeded(n, 100 + i as u64)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect(),
            )
        })
        .collect();
    let run = |fab: &dyn Fabric| -> BenchResult<(f64, [u8; 32])> {
        let be = FabricBackend(fab);
        let xt = fab.upload(&x, &[bsz, t, d]).map_err(e("upload"))?;
        let wt: Vec<FabricTensor> = ws
            .iter()
            .zip(&shapes)
            .map(|(w, s)| fab.upload(w, s))
            .collect::<blocktorch::Result<_>>()
            .map_err(e("upload"))?;
        let mut times = Vec::new();
        let mut digest = [0u8; 32];
        for i in 0..runs + 1 {
            let t0 = Instant::now();
            let y = block(&be, &xt, &wt, h).map_err(e("block"))?;
            let host = fab.download(&y).map_err(e("download"))?;
            let dt = t0.elapsed().as_secs_f64() * 1e3;
            if i > 0 {
                times.push(dt);
            }
            digest = blocktorch::output_digest_sha256(&[bsz, t, d], &host).map_err(e("digest"))?;
        }
        Ok((median(times), digest))
    };
    let (cpu_ms, cpu_digest) = run(cpu)?;
    let (gpu_ms, gpu_digest) = run(&cuda)?;
    let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    println!("| fabric | transformer block b={bsz} t={t} d={d} h={h}, median ms | output_digest_sha256 |");
    println!("| --- | ---: | --- |");
    println!("| cpu | {cpu_ms:.1} | {} |", hex(&cpu_digest));
    println!("| cuda | {gpu_ms:.1} | {} |", hex(&gpu_digest));
    println!(
        "speed-up {:.1}x; digests {}",
        cpu_ms / gpu_ms,
        if cpu_digest == gpu_digest {
            "equal"
        } else {
            "DIFFER"
        }
    );
    if cpu_digest != gpu_digest {
        return Err("CPU and CUDA digests differ".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let mut runs = 10usize;
    let mut sizes = vec![1024, 2048, 4096, 8192];
    let mut verify = true;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => match args.get(i + 1).and_then(|s| s.parse().ok()) {
                Some(r) if r > 0 => {
                    runs = r;
                    i += 1;
                }
                _ => return usage(),
            },
            "--sizes" => {
                let parsed: Option<Vec<usize>> = args
                    .get(i + 1)
                    .map(|s| s.split(',').map(|x| x.parse().ok()).collect())
                    .unwrap_or(None);
                match parsed {
                    Some(v) if !v.is_empty() && v.iter().all(|&n| (1..=16384).contains(&n)) => {
                        sizes = v;
                        i += 1;
                    }
                    _ => return usage(),
                }
            }
            "--no-verify" => verify = false,
            _ => return usage(),
        }
        i += 1;
    }
    if let Err(why) = blocktorch_cuda::probe() {
        eprintln!("tb-cuda-bench: no usable CUDA GPU: {why}");
        return ExitCode::FAILURE;
    }
    let r = match cmd.as_str() {
        "matmul" => bench_matmul(runs, &sizes, verify),
        "e2e" => bench_e2e(runs),
        _ => return usage(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tb-cuda-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
