//! `blocktorch-bench leaf`: the trace leaf's hashing rate by tensor size — our leaf
//! (`blocktorch::digest::trace_leaf`, one thread, along BLAKE3's tree) against the same
//! stream fed to a `blake3::Hasher` as it lies in memory (head, then the elements: the
//! way the leaf was hashed before), and the CPU fabric's leaf on `--threads` workers.
//! Every run checks that all three give the same leaf.

use blocktorch::digest::{digest_header, trace_leaf, TRACE_LEAF_PREFIX};
use blocktorch::fabric::Fabric;
use blocktorch::{CpuConfig, CpuFabric, DType, HostData};
use std::time::Instant;

struct Opts {
    threads: usize,
    runs: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        threads: 2,
        runs: 9,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => o.threads = crate::flag_value(&mut it, "--threads")?,
            "--runs" => o.runs = crate::flag_value(&mut it, "--runs")?,
            other => return Err(format!("leaf: unknown argument {other:?}")),
        }
    }
    if o.runs == 0 || o.threads == 0 {
        return Err("--runs and --threads must be positive".into());
    }
    Ok(o)
}

/// Median seconds per call of `f`, each run repeating it enough to last ~2 ms.
fn median_per_call(runs: usize, bytes: usize, mut f: impl FnMut()) -> f64 {
    let reps = (2_000_000 / bytes.max(1)).clamp(1, 10_000);
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let cpu = CpuFabric::new(CpuConfig::new(
        blocktorch::cpu::gemm::Simd::detect(),
        o.threads,
    ))
    .map_err(|e| e.to_string())?;
    for kib in [1usize, 4, 16, 24, 32, 48, 64, 128, 256, 1024, 4096] {
        let n = kib * 256;
        let shape = [n / 64, 64];
        let v = blocktorch::rng::uniform_f32(7, n, -1.0, 1.0);
        let data = HostData::F32(v.clone());
        let mut head = TRACE_LEAF_PREFIX.to_vec();
        head.extend_from_slice(&digest_header(DType::F32, &shape).map_err(|e| e.to_string())?);
        let in_memory = || {
            let mut h = blake3::Hasher::new();
            h.update(&head);
            // As the leaf's old streaming fed it: 64 KiB at a time.
            for x in v.chunks(16384) {
                h.update(bytemuck_bytes(x));
            }
            *h.finalize().as_bytes()
        };
        let ours = trace_leaf(&shape, &data).map_err(|e| e.to_string())?;
        let t = cpu.upload(&data, &shape).map_err(|e| e.to_string())?;
        if in_memory() != ours || cpu.trace_leaf(&t).map_err(|e| e.to_string())? != ours {
            return Err(format!("{kib} KiB: the three leaves differ"));
        }
        let bytes = n * 4;
        let t_mem = median_per_call(o.runs, bytes, || {
            std::hint::black_box(in_memory());
        });
        let t_ours = median_per_call(o.runs, bytes, || {
            std::hint::black_box(trace_leaf(&shape, &data).ok());
        });
        let t_fabric = median_per_call(o.runs, bytes, || {
            std::hint::black_box(cpu.trace_leaf(&t).ok());
        });
        let gbs = |s: f64| bytes as f64 / s / 1e9;
        println!(
            "{{\"bench\":\"leaf\",\"kib\":{kib},\"runs\":{},\"in_memory_us\":{:.2},\"in_memory_gb_per_s\":{:.2},\"tree_us\":{:.2},\"tree_gb_per_s\":{:.2},\"tree_speedup\":{:.2},\"fabric_threads\":{},\"fabric_us\":{:.2},\"fabric_gb_per_s\":{:.2}}}",
            o.runs,
            t_mem * 1e6,
            gbs(t_mem),
            t_ours * 1e6,
            gbs(t_ours),
            t_mem / t_ours,
            o.threads,
            t_fabric * 1e6,
            gbs(t_fabric)
        );
    }
    Ok(())
}

/// The in-memory bytes of `x` (little-endian hosts: the stream's bytes, no NaN here).
fn bytemuck_bytes(x: &[f32]) -> &[u8] {
    bytemuck::cast_slice(x)
}
