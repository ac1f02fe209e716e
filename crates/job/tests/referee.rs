//! The dispute game: a provider's corrupted trace leaf is caught by the single-op
//! referee, dishonest evidence is refused, and derived ops (views, fused element-wise
//! ops) are recomputed in their reader's dispute.

use blocktorch::CpuFabric;
use tb_job::examples::build_example;
use tb_job::leaves::{
    LeafKind, TracePlan, DERIVED_LEAF, SEGMENT_BYTES_MAX, SEGMENT_FLOPS_MAX, SEGMENT_INPUTS_MAX,
};
use tb_job::{evidence_for, execute, referee, trace_root, validate, ExecOptions, JobError};

#[test]
fn referee_returns_the_honest_digest_for_a_corrupted_leaf() {
    let job = build_example("transformer").unwrap();
    let honest = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
    // Every op whose inputs include an earlier op's output, a few of them.
    let nc = job.program.consts.len();
    let disputed: Vec<usize> = (0..job.program.ops.len())
        .filter(|i| job.program.ops[*i].args.iter().any(|a| *a as usize >= nc))
        .step_by(9)
        .collect();
    assert!(disputed.len() >= 5);
    for k in disputed {
        let mut provider = honest.op_digests.clone();
        provider[k][0] ^= 1;
        let root = trace_root(&provider);
        assert_ne!(root, honest.trace_root);
        // The challenger's evidence: op k's inputs are agreed (their leaves are honest).
        let evidence = evidence_for(&job, k, &provider).unwrap();
        let verdict = referee(&job, &root, k, &evidence).unwrap();
        assert_eq!(
            verdict, honest.op_digests[k],
            "op {k}: the referee gives the honest digest"
        );
        assert_ne!(
            verdict, provider[k],
            "op {k}: and so convicts the corrupted leaf"
        );
    }
}

#[test]
fn referee_refuses_evidence_that_does_not_check_out() {
    let job = build_example("matmul-chain").unwrap();
    let honest = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
    let leaves = honest.op_digests.clone();
    let root = honest.trace_root;
    let last = job.program.ops.len() - 1;
    let good = evidence_for(&job, last, &leaves).unwrap();
    assert!(!good.is_empty());
    assert_eq!(referee(&job, &root, last, &good).unwrap(), leaves[last]);

    // Tampered data: no longer hashes to its leaf.
    let mut bad = good.clone();
    if let blocktorch::HostData::F32(v) = &mut bad[0].data {
        v[0] += 1.0;
    }
    assert!(
        matches!(referee(&job, &root, last, &bad), Err(JobError::Referee(m)) if m.contains("does not hash"))
    );
    // A leaf that is not in the trace.
    let mut bad = good.clone();
    bad[0].leaf[5] ^= 0x80;
    assert!(
        matches!(referee(&job, &root, last, &bad), Err(JobError::Referee(m)) if m.contains("not in the trace"))
    );
    // A proof for another leaf.
    let mut bad = good.clone();
    bad[0].proof.index = (bad[0].proof.index + 1) % leaves.len() as u64;
    assert!(matches!(
        referee(&job, &root, last, &bad),
        Err(JobError::Referee(_))
    ));
    // Missing evidence, and an op past the end.
    assert!(
        matches!(referee(&job, &root, last, &[]), Err(JobError::Referee(m)) if m.contains("no evidence"))
    );
    assert!(matches!(
        referee(&job, &root, last + 1, &good),
        Err(JobError::Referee(_))
    ));
}

#[test]
fn every_op_of_every_example_is_refereed_to_its_honest_leaf() {
    for name in tb_job::examples::EXAMPLES {
        let job = build_example(name).unwrap();
        let honest = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
        for k in 0..honest.n_ops {
            let evidence = evidence_for(&job, k, &honest.op_digests).unwrap();
            assert_eq!(
                referee(&job, &honest.trace_root, k, &evidence).unwrap(),
                honest.op_digests[k],
                "{name} op {k}"
            );
        }
    }
}

#[test]
fn derived_ops_have_the_fixed_leaf_and_are_recomputed_by_their_reader() {
    let job = build_example("transformer").unwrap();
    let p = &job.program;
    let nc = p.consts.len();
    let honest = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
    let tp = TracePlan::of(p, &validate(&job).unwrap());
    let derived: Vec<usize> = (0..p.ops.len())
        .filter(|i| tp.kinds[*i] == LeafKind::Derived)
        .collect();
    assert!(
        derived.len() >= 10,
        "the transformer fuses views and element-wise ops"
    );
    assert!(
        derived
            .iter()
            .any(|i| matches!(p.ops[*i].node, tb_job::Node::View(_)))
            && derived
                .iter()
                .any(|i| matches!(p.ops[*i].node, tb_job::Node::Prim(_))),
        "views and primitives both fuse"
    );
    for &k in &derived {
        assert_eq!(honest.op_digests[k], DERIVED_LEAF, "op {k}");
        // A provider who commits anything else there is convicted with no evidence.
        let mut provider = honest.op_digests.clone();
        provider[k] = [7; 32];
        let root = trace_root(&provider);
        assert!(evidence_for(&job, k, &provider).unwrap().is_empty());
        assert_eq!(referee(&job, &root, k, &[]).unwrap(), DERIVED_LEAF);
    }
    for o in &p.outputs {
        assert_eq!(tp.kinds[o.value as usize - nc], LeafKind::Output);
    }
    // Segments: a committed op recomputes the derived ops that feed it, some several.
    let fused: Vec<usize> = (0..p.ops.len())
        .filter(|i| tp.kinds[*i] != LeafKind::Derived && !tp.segment(p, *i).is_empty())
        .collect();
    assert!(fused.iter().any(|i| tp.segment(p, *i).len() >= 2));
    for &k in &fused {
        let evidence = evidence_for(&job, k, &honest.op_digests).unwrap();
        let values: Vec<u32> = evidence.iter().map(|e| e.value).collect();
        assert_eq!(
            values, tp.frontier[k],
            "op {k}: the evidence is the frontier"
        );
        for v in &values {
            assert_ne!(tp.kinds[*v as usize - nc], LeafKind::Derived);
        }
        // A corrupted leaf at the root is convicted with that evidence.
        let mut provider = honest.op_digests.clone();
        provider[k][3] ^= 0x10;
        let root = trace_root(&provider);
        let evidence = evidence_for(&job, k, &provider).unwrap();
        assert_eq!(
            referee(&job, &root, k, &evidence).unwrap(),
            honest.op_digests[k]
        );
        // Evidence for a derived argument instead (what trace v0 asked for) proves
        // nothing: the frontier value it replaces is missing.
        let Some(&d) = p.ops[k]
            .args
            .iter()
            .find(|a| **a as usize >= nc && tp.kinds[**a as usize - nc] == LeafKind::Derived)
        else {
            continue;
        };
        let (shape, data) =
            tb_job::replay_values(&job, &CpuFabric::reference(), &[d]).unwrap()[0].clone();
        let wrong = vec![tb_job::Evidence {
            value: d,
            shape,
            data,
            leaf: DERIVED_LEAF,
            proof: tb_job::trace_proof(&honest.op_digests, d as usize - nc).unwrap(),
        }];
        if !tp.frontier[k].is_empty() {
            assert!(
                matches!(referee(&job, &honest.trace_root, k, &wrong), Err(JobError::Referee(m)) if m.contains("no evidence")),
                "op {k}"
            );
        }
    }
}

#[test]
fn every_segment_keeps_within_its_caps_re_runs_one_matmul_at_most_and_each_derived_op_has_one_reader(
) {
    for name in tb_job::examples::EXAMPLES {
        let job = build_example(name).unwrap();
        let p = &job.program;
        let nc = p.consts.len();
        let tp = TracePlan::of(p, &validate(&job).unwrap());
        let mut owner = vec![None; p.ops.len()];
        for k in 0..p.ops.len() {
            if tp.kinds[k] == LeafKind::Derived {
                continue;
            }
            assert!(tp.frontier[k].len() <= SEGMENT_INPUTS_MAX);
            assert!(tp.flops[k] <= SEGMENT_FLOPS_MAX && tp.bytes[k] <= SEGMENT_BYTES_MAX);
            let is_matmul =
                |i: usize| matches!(p.ops[i].node, tb_job::Node::Prim(blocktorch::Prim::Matmul));
            let seg = tp.segment(p, k);
            let matmuls = seg.iter().filter(|d| is_matmul(**d as usize - nc)).count()
                + usize::from(is_matmul(k));
            assert!(
                matmuls <= 1,
                "{name}: op {k}'s segment re-runs {matmuls} matmuls"
            );
            for d in seg {
                let j = d as usize - nc;
                assert_eq!(owner[j], None, "{name}: op {j} is in two segments");
                owner[j] = Some(k);
            }
        }
        for (j, op) in p.ops.iter().enumerate() {
            if tp.kinds[j] != LeafKind::Derived {
                continue;
            }
            assert!(
                owner[j].is_some(),
                "{name}: derived op {j} is in no segment"
            );
            let readers = p
                .ops
                .iter()
                .filter(|o| o.args.contains(&((nc + j) as u32)))
                .count();
            assert_eq!(readers, 1, "{name}: derived op {j} ({:?})", op.node);
        }
    }
}

#[test]
fn a_segment_that_would_read_too_many_committed_values_is_cut() {
    // y = x₀ + x₁ + … + x₁₆ with every xᵢ a declared output (so committed): fusing the
    // whole chain of additions would make the last one read 17 committed values, one
    // more than an evidence bundle holds, so the chain is cut and every op stays
    // disputable.
    let d = tb_job::InputTensorDescriptor::dense(
        blocktorch::DType::F32,
        &[2, 2],
        tb_job::Normalisation::None,
    );
    let b = tb_job::ProgramBuilder::new(&d);
    let x = b.input(tb_job::InputSlot::Main).unwrap();
    let mut sum = None;
    for i in 0..=SEGMENT_INPUTS_MAX {
        let w = b
            .param(
                &format!("w{i}"),
                blocktorch::HostData::F32(vec![i as f32, 1.0, 0.5, -1.0]),
                &[2, 2],
            )
            .unwrap();
        let xi =
            blocktorch::compose::Backend::exec(&b, &blocktorch::Prim::Matmul, &[&x, &w]).unwrap();
        b.output(&format!("x{i}"), &xi);
        sum = Some(match sum {
            None => xi,
            Some(s) => blocktorch::compose::Backend::exec(
                &b,
                &blocktorch::Prim::Binary(blocktorch::BinaryOp::Add),
                &[&s, &xi],
            )
            .unwrap(),
        });
    }
    b.output("y", &sum.unwrap());
    let job = tb_job::Job::new(
        [0; 32],
        d,
        b.finish(),
        blocktorch::HostData::F32(vec![1.0, 2.0, 3.0, 4.0]),
    )
    .unwrap();
    let p = &job.program;
    let tp = TracePlan::of(p, &validate(&job).unwrap());
    let adds: Vec<usize> = (0..p.ops.len())
        .filter(|i| {
            matches!(
                p.ops[*i].node,
                tb_job::Node::Prim(blocktorch::Prim::Binary(_))
            )
        })
        .collect();
    assert_eq!(adds.len(), SEGMENT_INPUTS_MAX);
    let committed = adds
        .iter()
        .filter(|i| tp.kinds[**i] != LeafKind::Derived)
        .count();
    assert_eq!(committed, 2, "the output and the one cut: {:?}", tp.kinds);
    for k in 0..p.ops.len() {
        assert!(tp.frontier[k].len() <= SEGMENT_INPUTS_MAX);
    }
    let honest = execute(&job, &CpuFabric::reference(), cross()).unwrap();
    for k in 0..honest.n_ops {
        let evidence = evidence_for(&job, k, &honest.op_digests).unwrap();
        assert!(evidence.len() <= SEGMENT_INPUTS_MAX);
        assert_eq!(
            referee(&job, &honest.trace_root, k, &evidence).unwrap(),
            honest.op_digests[k],
            "op {k}"
        );
    }
}

fn cross() -> ExecOptions {
    ExecOptions {
        replay: tb_job::ReplayMode::CrossFabric,
        profile: false,
    }
}
