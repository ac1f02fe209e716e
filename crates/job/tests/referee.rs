//! The dispute game: a provider's corrupted trace leaf is caught by the single-op
//! referee, and dishonest evidence is refused.

use blocktorch::CpuFabric;
use tb_job::examples::build_example;
use tb_job::{evidence_for, execute, referee, trace_root, ExecOptions, JobError};

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
    bad[0].proof.index = 0;
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
