//! The random-program differential harness: the CPU fabric passes it in other SIMD and
//! thread configurations, generation is a pure function of the seed, every op kind is
//! generated, and a fabric that is off by one bit in one primitive is caught.

#[path = "support/skewed.rs"]
mod skewed;

use blocktorch::conformance::ConformanceFailure;
use blocktorch::cpu::gemm::Simd;
use blocktorch::fabric::Fabric;
use blocktorch::programs::{
    program_seed, random_program, run_program, run_random_programs, ProgramConfig, ProgramReport,
};
use blocktorch::{BinaryOp, CompareOp, CpuConfig, CpuFabric, Prim, TensorError, UnaryOp};
use skewed::Skewed;
use std::collections::BTreeSet;

fn cfg(count: usize) -> ProgramConfig {
    ProgramConfig {
        count,
        ..ProgramConfig::default()
    }
}

/// Runs `count` programs on `config` and checks the report's counts.
fn check_passes(config: CpuConfig, count: usize) -> ProgramReport {
    let fabric = CpuFabric::new(config).expect("valid config");
    let report =
        run_random_programs(&fabric, &cfg(count)).unwrap_or_else(|e| panic!("{config:?}: {e}"));
    assert_eq!(report.programs, count, "{report:?}");
    assert!(report.steps >= 3 * count, "{report:?}");
    assert!(report.elements > 100 * count, "{report:?}");
    report
}

#[test]
fn cpu_fabric_passes_300_programs_in_other_configurations() {
    check_passes(CpuConfig::new(Simd::detect(), 3), 300);
    check_passes(CpuConfig::new(Simd::Scalar, 2), 300);
    // Odd, tiny GEMM tiles: results must not depend on blocking.
    check_passes(
        CpuConfig {
            mc: 5,
            kc: 7,
            nc: 9,
            ..CpuConfig::new(Simd::detect(), 2)
        },
        100,
    );
}

#[test]
fn report_counts_are_not_trivial() {
    let count = 200;
    let report = check_passes(CpuConfig::reference(), count);
    assert!(report.fabric.starts_with("cpu"), "{report:?}");
    // One program in 32 ends with a planned refusal; 200 programs see a few.
    assert!(
        report.refused > 0 && report.refused < count / 8,
        "{report:?}"
    );
    // Reports are deterministic.
    assert_eq!(
        run_random_programs(&CpuFabric::reference(), &cfg(count)),
        Ok(report)
    );
}

#[test]
fn generation_is_a_pure_function_of_the_seed() {
    let c = ProgramConfig::default();
    let debug = |seed: u64| format!("{:?}", random_program(seed, &c));
    for i in 0..20 {
        let seed = program_seed(c.seed, i);
        assert_eq!(debug(seed), debug(seed), "program {i}");
        assert_ne!(
            debug(seed),
            debug(program_seed(c.seed, i + 1)),
            "program {i}"
        );
        assert_ne!(seed, program_seed(c.seed ^ 1, i));
        let p = random_program(seed, &c);
        assert_eq!(p.seed(), seed);
        assert!((3..=c.steps_max).contains(&p.step_count()), "{p:?}");
    }
    // The config's own seed and count do not enter a program.
    let other = ProgramConfig {
        seed: 1,
        count: 5,
        ..c.clone()
    };
    assert_eq!(debug(7), format!("{:?}", random_program(7, &other)));
}

#[test]
fn every_op_kind_is_generated_and_only_planned_steps_are_refused() {
    let c = ProgramConfig::default();
    let reference = CpuFabric::reference();
    let mut names = BTreeSet::new();
    let (mut planned, mut wild) = (0, 0);
    for i in 0..300 {
        let p = random_program(program_seed(c.seed, i), &c);
        wild += p.is_wild() as usize;
        let run = run_program(&reference, &p);
        assert_eq!(run.is_err(), p.expects_refusal(), "program {i}: {run:?}");
        match run {
            Ok(outputs) => assert_eq!(outputs.len(), p.step_count()),
            Err(e) => {
                planned += 1;
                assert!(
                    matches!(
                        e,
                        TensorError::IndexOutOfRange { .. } | TensorError::ShapeMismatch { .. }
                    ),
                    "program {i}: {e}"
                );
            }
        }
        names.extend(p.step_names());
    }
    assert!(planned > 0, "no planned refusal in 300 programs");
    assert!((50..250).contains(&wild), "{wild} wild programs of 300");
    let kinds: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.split_whitespace().next())
        .collect();
    for kind in [
        "unary",
        "binary",
        "compare",
        "select",
        "masked_fill",
        "matmul",
        "softmax",
        "log_softmax",
        "layer_norm",
        "sum",
        "mean",
        "max",
        "argmax",
        "transpose",
        "slice",
        "expand",
        "reshape",
        "cast",
        "concat",
        "gather",
        "attention",
        "index_add",
    ] {
        assert!(kinds.contains(kind), "no {kind} step in {kinds:?}");
    }
    let has = |prefix: String| names.iter().any(|n| n.starts_with(&prefix));
    for op in UnaryOp::ALL {
        let prefix = match op {
            UnaryOp::PowScalar(_) => "unary PowScalar(".to_string(),
            _ => format!("unary {op:?} "),
        };
        assert!(has(prefix.clone()), "no `{prefix}` step");
    }
    for op in BinaryOp::ALL {
        assert!(has(format!("binary {op:?} ")), "no binary {op:?} step");
    }
    for op in CompareOp::ALL {
        assert!(has(format!("compare {op:?} ")), "no compare {op:?} step");
    }
    // Casts f32 -> i32 -> f32 and f32 -> u8 (words: cast, to, dtype, (vN, from-dtype).
    for (from, to) in [("f32", "i32"), ("i32", "f32"), ("f32", "u8"), ("u8", "f32")] {
        assert!(
            names.iter().any(|n| {
                let w: Vec<&str> = n.split_whitespace().take(5).collect();
                w[..] == ["cast", "to", to, w.get(3).copied().unwrap_or(""), from]
            }),
            "no cast {from} -> {to}"
        );
    }
    for needle in [
        "rhs transposed",
        "fresh i32",
        "fresh u32",
        "] transposed",
        "] strided",
        "causal true",
        "keepdim true",
        "of |x|",
    ] {
        assert!(
            names.iter().any(|n| n.contains(needle)),
            "no step name contains `{needle}`"
        );
    }
}

/// The CPU fabric with the lowest mantissa bit of element 0 of every matmul output
/// flipped.
fn skewed() -> Skewed {
    Skewed::new(Prim::Matmul, |v| {
        if let Some(x) = v.first_mut() {
            *x = f32::from_bits(x.to_bits() ^ 1);
        }
    })
}

#[test]
fn harness_detects_a_fabric_that_differs_in_matmul() {
    let c = cfg(300);
    let err: ConformanceFailure = run_random_programs(&skewed(), &c).expect_err("must fail");
    // The failure names the program, its seed, and a step that runs Prim::Matmul
    // (attention runs two).
    let step = err
        .case
        .split_once(" step ")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no step in {err}"));
    assert!(
        step.contains("(matmul") || step.contains("(attention"),
        "{err}"
    );
    assert!(err.case.starts_with("program "), "{err}");
    let index: usize = err.case["program ".len()..]
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no program index in {err}"));
    let seed = program_seed(c.seed, index);
    assert!(err.case.contains(&format!("{seed:#018x}")), "{err}");
    assert!(
        err.detail.contains("reference 0x") && err.detail.contains("fabric 0x"),
        "{err}"
    );
    // The named program replays the difference on its own.
    let p = random_program(seed, &c);
    let bits = |f: &dyn Fabric| -> Vec<Vec<u8>> {
        run_program(f, &p)
            .expect("the program runs")
            .iter()
            .map(|(_, _, data)| data.to_le_bytes_canonical())
            .collect()
    };
    assert_ne!(bits(&CpuFabric::reference()), bits(&skewed()));
}

#[test]
fn extreme_configs_are_clamped_and_run() {
    for (steps_max, dim_max) in [(0, 0), (usize::MAX, usize::MAX), (3, 1)] {
        let c = ProgramConfig {
            count: 4,
            steps_max,
            dim_max,
            ..ProgramConfig::default()
        };
        let report = run_random_programs(&CpuFabric::reference(), &c)
            .unwrap_or_else(|e| panic!("steps_max {steps_max} dim_max {dim_max}: {e}"));
        assert_eq!(report.programs, 4);
        assert!(report.steps >= 12, "{report:?}");
        if steps_max == 0 {
            // Clamped to 3..=3 steps.
            assert_eq!(report.steps, 12, "{report:?}");
        }
    }
}
