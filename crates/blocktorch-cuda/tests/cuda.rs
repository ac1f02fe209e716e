//! The CUDA fabric against the CPU reference. Every test that needs a GPU prints
//! `SKIPPED <test>: <reason>` and returns on a machine without one (CI has none); run
//! them on a GPU machine (see README "CUDA fabric").

use blocktorch::conformance::{run_conformance, ConformanceConfig};
use blocktorch::programs::{run_random_programs, ProgramConfig};
use blocktorch::{compose, CpuFabric, Fabric, HostData, Prim, ReduceOp, TensorError};
use blocktorch_cuda::{probe, CudaConfig, CudaFabric, MatmulTile};

/// Says on the terminal that a test skipped and why. Written to stderr directly, not
/// through `println!`, so the test harness does not swallow it.
fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn fabric(test: &str) -> Option<CudaFabric> {
    fabric_with(test, CudaConfig::default())
}

fn fabric_with(test: &str, cfg: CudaConfig) -> Option<CudaFabric> {
    if let Err(why) = probe() {
        // A GPU runner sets TB_CUDA_REQUIRED=1 so that a broken CUDA install fails
        // instead of skipping.
        if std::env::var_os("TB_CUDA_REQUIRED").is_some() {
            panic!("TB_CUDA_REQUIRED is set but CUDA is unusable: {why}");
        }
        skip(test, &format!("no usable CUDA GPU here ({why})"));
        return None;
    }
    match CudaFabric::new(cfg) {
        Ok(f) => Some(f),
        Err(e) => panic!("a CUDA device is present but the fabric failed to start: {e}"),
    }
}

#[test]
fn without_a_gpu_the_fabric_is_a_typed_error() {
    match probe() {
        Ok(()) => skip(
            "without_a_gpu_the_fabric_is_a_typed_error",
            "this machine has a GPU",
        ),
        Err(why) => {
            assert!(!why.is_empty());
            match CudaFabric::new(CudaConfig::default()) {
                Err(TensorError::Fabric { fabric, message }) => {
                    assert_eq!(fabric, "cuda");
                    assert!(
                        message.contains("not installed") || message.contains("device"),
                        "{message}"
                    );
                }
                other => panic!("expected a typed fabric error, got {other:?}"),
            }
        }
    }
}

#[test]
fn kernel_variant_digest_covers_sources_and_options() {
    let d = blocktorch_cuda::cuda_kernel_variant_digest();
    assert_ne!(d, [0u8; 32]);
    assert_ne!(d, CpuFabric::reference().kernel_variant_digest());
    // Recomputing from the parts gives the same digest; dropping the options changes it.
    let src = blocktorch_cuda::program_source();
    for (name, text) in blocktorch_cuda::KERNEL_FILES {
        assert!(src.contains(text), "{name} is part of the NVRTC program");
    }
    // Rebuilt from its parts it is the same; without the NVRTC options it is not.
    let options = blocktorch_cuda::NVRTC_OPTIONS.join(" ");
    let shared: Vec<(&str, &str)> = blocktorch::cpu::KERNEL_SOURCES
        .iter()
        .filter(|(n, _)| !n.starts_with("cpu/"))
        .copied()
        .collect();
    let parts = |with_options: bool| {
        let mut v: Vec<(&str, &str)> = blocktorch_cuda::KERNEL_FILES.to_vec();
        v.push(("blocktorch-cuda/lib.rs", include_str!("../src/lib.rs")));
        if with_options {
            v.push(("nvrtc-options", &options));
        }
        v.extend(shared.iter().copied());
        blocktorch::kernel_variant_digest(&v, blocktorch::RUNTIME_VERSION)
    };
    assert_eq!(parts(true), d);
    assert_ne!(parts(false), d);
}

#[test]
fn matmul_tile_names_round_trip() {
    for t in MatmulTile::ALL {
        assert_eq!(MatmulTile::parse(t.name()), Some(t));
    }
    assert_eq!(MatmulTile::parse("32x32x4"), None);
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
        match run_conformance(&f, &cfg) {
            Ok(r) => println!(
                "conformance seed {seed:#x}: {} cases, {} elements",
                r.cases, r.elements
            ),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn conformance_holds_for_every_matmul_tile() {
    for tile in MatmulTile::ALL {
        let cfg = CudaConfig {
            matmul_tile: Some(tile),
            ..CudaConfig::default()
        };
        let Some(f) = fabric_with("conformance_holds_for_every_matmul_tile", cfg) else {
            return;
        };
        let c = ConformanceConfig {
            seed: 11,
            cases_per_op: 4,
            dim_max: 70,
        };
        if let Err(e) = run_conformance(&f, &c) {
            panic!("tile {}: {e}", tile.name());
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
        match run_random_programs(&f, &cfg) {
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

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut r = blocktorch::rng::SplitMix64::new(seed);
    (0..n).map(|_| r.next_unit_f32() * 2.0 - 1.0).collect()
}

fn assert_same(cpu: &HostData, gpu: &HostData, what: &str) {
    assert_eq!(
        cpu.to_le_bytes_canonical(),
        gpu.to_le_bytes_canonical(),
        "{what}: CPU and CUDA differ"
    );
}

#[test]
fn large_matmuls_are_bit_identical() {
    for tile in MatmulTile::ALL {
        let cfg = CudaConfig {
            matmul_tile: Some(tile),
            ..CudaConfig::default()
        };
        let Some(f) = fabric_with("large_matmuls_are_bit_identical", cfg) else {
            return;
        };
        large_matmuls_on(&f, tile);
    }
}

/// Several tiles in both directions, ragged edges, both load paths.
fn large_matmuls_on(f: &CudaFabric, tile: MatmulTile) {
    let cpu = blocktorch::cpu::default_fabric();
    // Square, ragged (no multiple of any tile), transposed-operand and batched-broadcast.
    for (m, k, n) in [
        (512, 512, 512),
        (1000, 333, 515),
        (129, 1025, 67),
        (3, 4097, 5),
    ] {
        let a = HostData::F32(seeded(m * k, 1));
        let b = HostData::F32(seeded(k * n, 2));
        let run = |fab: &dyn Fabric| -> HostData {
            let ta = fab.upload(&a, &[m, k]).expect("upload");
            let tb = fab.upload(&b, &[k, n]).expect("upload");
            let c = fab.execute(&Prim::Matmul, &[&ta, &tb]).expect("matmul");
            fab.download(&c).expect("download")
        };
        assert_same(
            &run(cpu),
            &run(f),
            &format!("matmul {m}x{k}x{n}, tile {}", tile.name()),
        );
    }
    // [4, 96, 200] @ [200, 72]ᵀ-view with broadcast batch.
    let a = HostData::F32(seeded(4 * 96 * 200, 3));
    let b = HostData::F32(seeded(72 * 200, 4));
    let run = |fab: &dyn Fabric| -> HostData {
        let ta = fab.upload(&a, &[4, 96, 200]).expect("upload");
        let tb = fab.upload(&b, &[72, 200]).expect("upload");
        let be = blocktorch::compose::FabricBackend(fab);
        let bt = compose::transpose(&be, &tb, 0, 1).expect("transpose");
        let c = fab.execute(&Prim::Matmul, &[&ta, &bt]).expect("matmul");
        fab.download(&c).expect("download")
    };
    assert_same(
        &run(cpu),
        &run(f),
        &format!(
            "batched matmul with a transposed operand, tile {}",
            tile.name()
        ),
    );
}

#[test]
fn long_reductions_are_bit_identical() {
    let Some(f) = fabric("long_reductions_are_bit_identical") else {
        return;
    };
    let cpu = blocktorch::cpu::default_fabric();
    for (rows, len) in [(1, 1 << 20), (3, 100_003), (2048, 1000)] {
        let x = HostData::F32(seeded(rows * len, 5));
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::ArgMax] {
            let run = |fab: &dyn Fabric| {
                let t = fab.upload(&x, &[rows, len]).expect("upload");
                let y = fab.execute(&Prim::Reduce(op), &[&t]).expect("reduce");
                fab.download(&y).expect("download")
            };
            assert_same(&run(cpu), &run(&f), &format!("{op:?} over {rows}x{len}"));
        }
    }
}

#[test]
fn bad_indices_and_foreign_tensors_are_typed_errors() {
    let Some(f) = fabric("bad_indices_and_foreign_tensors_are_typed_errors") else {
        return;
    };
    if let Err(e) = blocktorch::conformance::check_refusals(&f) {
        panic!("{e}");
    }
}

#[test]
fn nvrtc_compiles_the_kernels() {
    // Needs only the NVRTC library (CI fetches it; see .ci/run), no GPU.
    if !blocktorch_cuda::nvrtc_available() {
        skip(
            "nvrtc_compiles_the_kernels",
            "the NVRTC library is not installed here",
        );
        return;
    }
    for (major, minor) in [(9, 0), (8, 0)] {
        let ptx = blocktorch_cuda::compile_kernels(major, minor)
            .unwrap_or_else(|e| panic!("compute_{major}{minor}: {e}"))
            .to_src();
        let mut kernels = vec![
            "bt_unary".to_string(),
            "bt_binary".into(),
            "bt_compare".into(),
            "bt_select".into(),
            "bt_cast".into(),
            "bt_copy32".into(),
            "bt_copy8".into(),
            "bt_reduce".into(),
            "bt_argmax".into(),
            "bt_gather".into(),
            "bt_index_add".into(),
        ];
        for t in MatmulTile::ALL {
            kernels.push(format!("bt_matmul_{}_v", t.name()));
            kernels.push(format!("bt_matmul_{}_s", t.name()));
        }
        for k in kernels {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "compute_{major}{minor}: {k} missing"
            );
        }
        // No contraction: every f32 multiply and add is an explicitly rounded one.
        assert!(
            !ptx.contains("mul.f32") && !ptx.contains("add.f32"),
            "unrounded f32 op in PTX"
        );
        assert!(ptx.contains("fma.rn.f32"));
    }
}

#[test]
fn committed_golden_digests_hold_on_cuda() {
    let Some(f) = fabric("committed_golden_digests_hold_on_cuda") else {
        return;
    };
    match blocktorch::golden::check(&f) {
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
    // Four threads share one fabric (one stream), each running its own programs.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    let cfg = ProgramConfig {
                        seed: 1000 + t,
                        count: 150,
                        ..ProgramConfig::default()
                    };
                    run_random_programs(f, &cfg).map(|r| r.programs)
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => assert_eq!(n, 150),
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
        let gpu = tb_job::execute(&job, &f, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(gpu.cross_fabric, "the examples carry the CPU kernel digest");
        assert_eq!(
            gpu.output_digest, cpu.output_digest,
            "{name}: output digest"
        );
        assert_eq!(gpu.trace_root, cpu.trace_root, "{name}: trace root");
        assert_eq!(gpu.op_digests, cpu.op_digests, "{name}: every op");
        println!(
            "example {name}: {} ops, output {} trace {} identical on CPU and CUDA",
            gpu.n_ops,
            gpu.output_digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            gpu.trace_root.to_hex()
        );
    }
    // Strict mode refuses the foreign kernel digest.
    let job = tb_job::examples::build_example("mlp").unwrap();
    assert!(matches!(
        tb_job::execute(&job, &f, tb_job::ExecOptions::default()),
        Err(tb_job::JobError::KernelDigestMismatch { .. })
    ));
}
