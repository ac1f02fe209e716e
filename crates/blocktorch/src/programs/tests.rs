use super::*;

/// Every input, fresh operand and predicted result is within the value limits.
fn check_limits(i: usize, p: &Program) {
    for input in &p.inputs {
        assert!(fits(&input.shape), "program {i}: input {:?}", input.shape);
    }
    for (k, s) in p.steps.iter().enumerate() {
        let shapes = s.operands.iter().filter_map(|o| match o {
            Operand::Value(_) => None,
            Operand::Fresh(input) => Some(&input.shape),
        });
        for shape in shapes.chain(s.out.as_ref().map(|(_, s)| s)) {
            assert!(fits(shape), "program {i} step {k}: {}", p.step_name(k));
        }
    }
}

/// The generator's predicted dtype and shape of every step is what the reference
/// computes, every value is within the limits, and only steps built to be refused
/// are refused.
#[test]
fn predicted_results_match_the_reference() {
    let cfg = ProgramConfig::default();
    let reference = CpuFabric::reference();
    let mut refused = 0;
    for i in 0..400 {
        let p = random_program(program_seed(cfg.seed, i), &cfg);
        check_limits(i, &p);
        let t = trace(&reference, &p);
        for (k, (o, s)) in t.outputs.iter().zip(&p.steps).enumerate() {
            let want = s.out.as_ref().map(|(d, sh)| (*d, sh.as_slice()));
            assert_eq!(
                Some((o.0, o.1.as_slice())),
                want,
                "program {i} step {k}: {}",
                p.step_name(k)
            );
        }
        match &t.refusal {
            None => assert!(!p.expects_refusal(), "program {i} was not refused"),
            Some((stage, e)) => {
                assert!(
                    p.expects_refusal() && *stage == Stage::Step(p.steps.len() - 1),
                    "program {i} refused at {}: {e}",
                    p.stage_name(*stage)
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "no program of 400 ended with a refusal");
}

/// Long programs over the largest dims keep every value within the limits.
#[test]
fn long_programs_stay_within_the_limits() {
    let cfg = ProgramConfig {
        steps_max: PROGRAM_STEPS_MAX,
        dim_max: PROGRAM_DIM_MAX,
        ..ProgramConfig::default()
    };
    for i in 0..20 {
        check_limits(i, &random_program(program_seed(1, i), &cfg));
    }
}
