//! Benchmarks of the job pipeline (issue 4): decode + validate of a large blob, the
//! executor's overhead (trace hashing included) over the bare ops, and the referee's
//! cost per single op.

use crate::median;
use blocktorch::{Fabric, HostData, Prim};
use std::time::Instant;
use tb_job::examples::build_example;
use tb_job::{
    evidence_for, execute, execute_prepared, referee, replay_values, replay_values_prepared,
    validate, ExecOptions, InputSlot, InputTensorDescriptor, Job, Normalisation, PreparedModel,
    ProgramBuilder, ReplayMode,
};

fn cross() -> ExecOptions {
    ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    }
}

/// A job whose artifact carries `mb` MiB of weights: `x[1, n] · W[n, n]`.
pub fn bench_decode(mb: usize, runs: usize) -> Result<(), String> {
    let n = (((mb << 20) / 4) as f64).sqrt() as usize;
    let d = InputTensorDescriptor::dense(blocktorch::DType::F32, &[1, n], Normalisation::None);
    let b = ProgramBuilder::new(&d);
    let x = b.input(InputSlot::Main).map_err(|e| e.to_string())?;
    let w = b
        .param(
            "w",
            HostData::F32(blocktorch::rng::uniform_f32(1, n * n, -1.0, 1.0)),
            &[n, n],
        )
        .map_err(|e| e.to_string())?;
    let y = blocktorch::compose::Backend::exec(&b, &Prim::Matmul, &[&x, &w])
        .map_err(|e| e.to_string())?;
    b.output("y", &y);
    let job =
        Job::new([0; 32], d, b.finish(), HostData::F32(vec![0.5; n])).map_err(|e| e.to_string())?;
    let blob = job.encode().map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut hash_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let j = Job::decode(&blob).map_err(|e| e.to_string())?;
        validate(&j).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let h = <sha2::Sha256 as sha2::Digest>::digest(&blob);
        hash_times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(h);
    }
    let (dt, ht) = (median(times), median(hash_times));
    let mb_f = blob.len() as f64 / 1e6;
    println!(
        "{{\"bench\":\"job-decode\",\"blob_mb\":{mb_f:.1},\"runs\":{runs},\"decode_validate_ms\":{:.1},\"decode_validate_gb_per_s\":{:.2},\"sha256_ms\":{:.1},\"sha256_gb_per_s\":{:.2}}}",
        dt * 1e3,
        mb_f / 1e3 / dt,
        ht * 1e3,
        mb_f / 1e3 / ht
    );
    Ok(())
}

/// Medians, in seconds, of `job` run bare (the ops alone, `replay_values`) and by the
/// executor (the trace's leaves hashed, the trace root), each uploading the model's
/// constants as it starts and with them uploaded once before (`PreparedModel`, what a
/// provider's model cache gives), after one warm-up run of each.
struct Times {
    bare: f64,
    full: f64,
    bare_prepared: f64,
    full_prepared: f64,
    prepare: f64,
}

fn bare_and_full(job: &Job, fabric: &dyn Fabric, runs: usize) -> Result<Times, String> {
    let last = (job.program.consts.len() + job.program.ops.len() - 1) as u32;
    let t = Instant::now();
    let prepared = PreparedModel::new(job, fabric).map_err(|e| e.to_string())?;
    let prepare = t.elapsed().as_secs_f64();
    let mut v: [Vec<f64>; 4] = Default::default();
    for _ in 0..runs + 1 {
        let t = Instant::now();
        replay_values(job, fabric, &[last]).map_err(|e| e.to_string())?;
        v[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        execute(job, fabric, cross()).map_err(|e| e.to_string())?;
        v[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        replay_values_prepared(job, fabric, &prepared, &[last]).map_err(|e| e.to_string())?;
        v[2].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        execute_prepared(job, fabric, &prepared, cross()).map_err(|e| e.to_string())?;
        v[3].push(t.elapsed().as_secs_f64());
    }
    let [bare, full, bare_prepared, full_prepared] = v.map(|mut x| {
        x.remove(0);
        median(x)
    });
    Ok(Times {
        bare,
        full,
        bare_prepared,
        full_prepared,
        prepare,
    })
}

impl Times {
    /// The JSON fields every bench that uses it prints.
    fn json(&self) -> String {
        format!(
            "\"bare_ms\":{:.2},\"executor_ms\":{:.2},\"overhead_pct\":{:.1},\"prepare_ms\":{:.2},\"bare_prepared_ms\":{:.2},\"executor_prepared_ms\":{:.2},\"prepared_overhead_pct\":{:.1}",
            self.bare * 1e3,
            self.full * 1e3,
            (self.full / self.bare - 1.0) * 100.0,
            self.prepare * 1e3,
            self.bare_prepared * 1e3,
            self.full_prepared * 1e3,
            (self.full_prepared / self.bare_prepared - 1.0) * 100.0
        )
    }
}

/// Megabytes of op outputs the trace hashes (v1: outputs and content leaves, derived
/// ops skipped) and of every op output (what trace v0 hashed).
fn hashed_mb(job: &Job) -> Result<(f64, f64), String> {
    use tb_job::leaves::{LeafKind, TracePlan};
    let plan = validate(job).map_err(|e| e.to_string())?;
    let kinds = TracePlan::of(&job.program, &plan).kinds;
    let nc = job.program.consts.len();
    let (mut hashed, mut all) = (0f64, 0f64);
    for (i, kind) in kinds.iter().enumerate() {
        let v = &plan.values[nc + i];
        let b = (v.layout.numel() * v.dtype.size_bytes()) as f64 / 1e6;
        all += b;
        if *kind != LeafKind::Derived {
            hashed += b;
        }
    }
    Ok((hashed, all))
}

/// The executor on an example job against the same ops run bare (no digests, no trace).
pub fn bench_exec(example: &str, runs: usize) -> Result<(), String> {
    let job = match example {
        // GPT-2-small width at 2 x 128 tokens.
        "transformer-768" => tb_job::examples::transformer_job(2, 128, 768, 12, 3072),
        name => build_example(name),
    }
    .map_err(|e| e.to_string())?;
    let fabric = blocktorch::cpu::default_fabric();
    let times = bare_and_full(&job, fabric, runs)?;
    let (hashed, all) = hashed_mb(&job)?;
    println!(
        "{{\"bench\":\"job-exec\",\"example\":\"{example}\",\"fabric\":\"{}\",\"runs\":{runs},\"ops\":{},\"hashed_mb\":{hashed:.2},\"all_ops_mb\":{all:.2},{}}}",
        fabric.device_description(),
        job.program.ops.len(),
        times.json()
    );
    Ok(())
}

/// The referee on the matmul of `x[n, n] · W[n, n]` for each size.
pub fn bench_referee(sizes: &[usize], runs: usize) -> Result<(), String> {
    for &n in sizes {
        let d = InputTensorDescriptor::dense(blocktorch::DType::F32, &[n, n], Normalisation::None);
        let b = ProgramBuilder::new(&d);
        let x = b.input(InputSlot::Main).map_err(|e| e.to_string())?;
        let x2 = blocktorch::compose::unary(&b, blocktorch::UnaryOp::Tanh, &x)
            .map_err(|e| e.to_string())?;
        let w = b
            .param(
                "w",
                HostData::F32(blocktorch::rng::uniform_f32(2, n * n, -1.0, 1.0)),
                &[n, n],
            )
            .map_err(|e| e.to_string())?;
        let y = blocktorch::compose::Backend::exec(&b, &Prim::Matmul, &[&x2, &w])
            .map_err(|e| e.to_string())?;
        b.output("y", &y);
        let input = HostData::F32(blocktorch::rng::uniform_f32(3, n * n, -1.0, 1.0));
        let job = Job::new([0; 32], d, b.finish(), input).map_err(|e| e.to_string())?;
        let run =
            execute(&job, blocktorch::cpu::default_fabric(), cross()).map_err(|e| e.to_string())?;
        let op = job.program.ops.len() - 1;
        let evidence = evidence_for(&job, op, &run.op_digests).map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let v = referee(&job, &run.trace_root, op, &evidence).map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64());
            if v != run.op_digests[op] {
                return Err("the referee disagrees with an honest run".into());
            }
        }
        let t = median(times);
        println!(
            "{{\"bench\":\"referee\",\"op\":\"matmul {n}^3\",\"fabric\":\"{}\",\"runs\":{runs},\"referee_ms\":{:.1},\"gflop_per_s\":{:.1}}}",
            blocktorch::cpu::default_fabric().device_description(),
            t * 1e3,
            2.0 * (n as f64).powi(3) / t / 1e9
        );
    }
    Ok(())
}

/// Every example job (and the transformer at width 768) on the CPU fabric and, when a
/// GPU is present, on CUDA: median executor time (trace included) and the digests.
pub fn bench_jobs(runs: usize) -> Result<(), String> {
    let cuda = match blocktorch_cuda::probe() {
        Ok(()) => Some(
            blocktorch_cuda::CudaFabric::new(
                blocktorch_cuda::CudaConfig::from_env().map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?,
        ),
        Err(why) => {
            println!(
                "{{\"bench\":\"jobs\",\"cuda\":\"skipped: {}\"}}",
                why.replace('"', "'")
            );
            None
        }
    };
    let cpu = blocktorch::cpu::default_fabric();
    let mut names: Vec<&str> = tb_job::examples::EXAMPLES.to_vec();
    names.push("transformer-768");
    for name in names {
        let job = match name {
            "transformer-768" => tb_job::examples::transformer_job(2, 128, 768, 12, 3072),
            n => build_example(n),
        }
        .map_err(|e| e.to_string())?;
        let time = |f: &dyn Fabric| -> Result<(f64, tb_job::ExecResult), String> {
            let mut ts = Vec::new();
            let mut last = None;
            for i in 0..runs + 1 {
                let t = Instant::now();
                let r = execute(&job, f, cross()).map_err(|e| e.to_string())?;
                if i > 0 {
                    ts.push(t.elapsed().as_secs_f64());
                }
                last = Some(r);
            }
            let r = last.ok_or("no run")?;
            Ok((median(ts), r))
        };
        let (ct, cr) = time(cpu)?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut line = format!(
            "{{\"bench\":\"jobs\",\"example\":\"{name}\",\"ops\":{},\"runs\":{runs},\"cpu\":\"{}\",\"cpu_ms\":{:.2},\"output_digest_sha256\":\"{}\",\"trace_root\":\"{}\"",
            cr.n_ops,
            cpu.device_description(),
            ct * 1e3,
            hex(&cr.output_digest),
            cr.trace_root.to_hex()
        );
        if let Some(g) = &cuda {
            let (gt, gr) = time(g)?;
            let same = gr.output_digest == cr.output_digest && gr.trace_root == cr.trace_root;
            line.push_str(&format!(
                ",\"cuda_ms\":{:.2},\"speedup\":{:.1},\"cuda_digests_equal\":{same}",
                gt * 1e3,
                ct / gt
            ));
            if !same {
                println!("{line}}}");
                return Err(format!("{name}: CUDA and CPU digests differ"));
            }
        }
        println!("{line}}}");
    }
    Ok(())
}

/// A BERT-family sentence encoder (all-MiniLM-L6-v2) from `dir` (config.json,
/// model.safetensors, tokenizer.json): the build from safetensors, then sentences per
/// second at `batch` × 128 tokens with the executor (trace on) and with the bare ops
/// (trace off), on the default CPU fabric (TB_BLOCKTORCH_THREADS sets its threads).
pub fn bench_minilm(dir: &str, batch: usize, runs: usize) -> Result<(), String> {
    use tb_models::bert::{Bert, BertShape, Pooling};
    use tb_models::text::TextEncoder;
    let dir = std::path::Path::new(dir);
    let t = Instant::now();
    let bert = Bert::open(dir).map_err(|e| e.to_string())?;
    let program = bert
        .build(BertShape { batch, seq: 128 }, Pooling::MeanNormalized)
        .map_err(|e| e.to_string())?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let enc =
        TextEncoder::open(&dir.join("tokenizer.json"), Some(128)).map_err(|e| e.to_string())?;
    // Full-length sequences: the cost does not depend on the padding.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let e = enc.encode(&vec![long; batch]).map_err(|e| e.to_string())?;
    let (d, input) = e.job_input();
    let fabric = blocktorch::cpu::default_fabric();
    let job =
        Job::new(fabric.kernel_variant_digest(), d, program, input).map_err(|e| e.to_string())?;
    let times = bare_and_full(&job, fabric, runs)?;
    let (hashed, all) = hashed_mb(&job)?;
    println!(
        "{{\"bench\":\"minilm\",\"fabric\":\"{}\",\"batch\":{batch},\"seq\":128,\"runs\":{runs},\"ops\":{},\"hashed_mb\":{hashed:.1},\"all_ops_mb\":{all:.1},\"build_ms\":{build_ms:.0},{},\"sentences_per_s_trace_off\":{:.1},\"sentences_per_s_trace_on\":{:.1},\"sentences_per_s_trace_on_prepared\":{:.1}}}",
        fabric.device_description(),
        job.program.ops.len(),
        times.json(),
        batch as f64 / times.bare,
        batch as f64 / times.full,
        batch as f64 / times.full_prepared,
    );
    Ok(())
}

/// Matmul GFLOP/s and the transformer example's executor time on every fabric this
/// machine has, in one run: the CPU fabric (every core, best SIMD path), the CPU
/// reference configuration (one thread, scalar), CUDA and wgpu when present.
pub fn bench_fabrics(runs: usize) -> Result<(), String> {
    let mut fabrics: Vec<(&str, Box<dyn Fabric>)> = vec![
        (
            "cpu",
            Box::new(
                blocktorch::CpuFabric::new(
                    blocktorch::CpuConfig::from_env().map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?,
            ),
        ),
        (
            "cpu-reference",
            Box::new(blocktorch::CpuFabric::reference()),
        ),
    ];
    match blocktorch_cuda::probe() {
        Ok(()) => fabrics.push((
            "cuda",
            Box::new(
                blocktorch_cuda::CudaFabric::new(
                    blocktorch_cuda::CudaConfig::from_env().map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?,
            ),
        )),
        Err(why) => println!(
            "{{\"bench\":\"fabrics\",\"cuda\":\"skipped: {}\"}}",
            why.replace('"', "'")
        ),
    }
    match blocktorch_wgpu::probe() {
        Ok(_) => fabrics.push((
            "wgpu",
            Box::new(
                blocktorch_wgpu::WgpuFabric::new(blocktorch_wgpu::WgpuConfig::from_env())
                    .map_err(|e| e.to_string())?,
            ),
        )),
        Err(why) => println!(
            "{{\"bench\":\"fabrics\",\"wgpu\":\"skipped: {}\"}}",
            why.replace('"', "'")
        ),
    }
    let seeded = |n: usize, seed: u64| {
        let mut r = blocktorch::rng::SplitMix64::new(seed);
        HostData::F32((0..n).map(|_| r.next_unit_f32() * 2.0 - 1.0).collect())
    };
    for n in [128usize, 256, 512] {
        let (a, b) = (seeded(n * n, 1), seeded(n * n, 2));
        let mut want: Option<Vec<u8>> = None;
        for (name, f) in &fabrics {
            let ta = f.upload(&a, &[n, n]).map_err(|e| e.to_string())?;
            let tb = f.upload(&b, &[n, n]).map_err(|e| e.to_string())?;
            let mut ts = Vec::new();
            let mut out = None;
            for i in 0..runs + 1 {
                let t = Instant::now();
                let c = f
                    .execute(&Prim::Matmul, &[&ta, &tb])
                    .map_err(|e| e.to_string())?;
                // The download waits for the device and is part of the time.
                let host = f.download(&c).map_err(|e| e.to_string())?;
                if i > 0 {
                    ts.push(t.elapsed().as_secs_f64());
                }
                out = Some(host);
            }
            let bytes = out.ok_or("no run")?.to_le_bytes_canonical();
            let same = *want.get_or_insert_with(|| bytes.clone()) == bytes;
            let t = median(ts);
            println!(
                "{{\"bench\":\"fabrics\",\"op\":\"matmul {n}^3\",\"fabric\":\"{name}\",\"device\":\"{}\",\"runs\":{runs},\"ms\":{:.2},\"gflop_per_s\":{:.3},\"bits_equal_to_cpu\":{same}}}",
                f.device_description().replace('"', "'"),
                t * 1e3,
                2.0 * (n as f64).powi(3) / t / 1e9
            );
            if !same {
                return Err(format!("matmul {n}^3: {name} differs from the CPU fabric"));
            }
        }
    }
    let job = build_example("transformer").map_err(|e| e.to_string())?;
    let mut want = None;
    for (name, f) in &fabrics {
        let mut ts = Vec::new();
        let mut last = None;
        for i in 0..runs + 1 {
            let t = Instant::now();
            let r = execute(&job, f.as_ref(), cross()).map_err(|e| e.to_string())?;
            if i > 0 {
                ts.push(t.elapsed().as_secs_f64());
            }
            last = Some(r);
        }
        let r = last.ok_or("no run")?;
        let same =
            *want.get_or_insert((r.output_digest, r.trace_root)) == (r.output_digest, r.trace_root);
        println!(
            "{{\"bench\":\"fabrics\",\"example\":\"transformer\",\"ops\":{},\"fabric\":\"{name}\",\"runs\":{runs},\"ms\":{:.2},\"digests_equal_to_cpu\":{same}}}",
            r.n_ops,
            median(ts) * 1e3
        );
        if !same {
            return Err(format!("transformer: {name} differs from the CPU fabric"));
        }
    }
    Ok(())
}
