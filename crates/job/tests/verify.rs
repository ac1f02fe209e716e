//! The verifier library: trace blobs, receipt checks against a trace, replay and
//! compare, challenge bundles (their codec as a fuzz body and property tests), and
//! adjudication's three outcomes.

use blocktorch::CpuFabric;
use proptest::prelude::*;
use tb_job::examples::build_example;
use tb_job::verify::{BUNDLE_MAGIC, SHAPE_OUTPUTS_MAX};
use tb_job::{
    adjudicate, build_challenge, check_trace, compare, decode_trace, first_divergence, replay,
    trace_blob, trace_root, trace_sha256, EvidenceBundle, Job, JobError, JobShape, Receipt, Ruling,
    TraceMismatch, Verdict,
};
use tb_primitives::{Id, SecretKey};

fn honest(name: &str) -> (Job, Vec<u8>, tb_job::ExecResult) {
    let job = build_example(name).unwrap();
    let blob = job.encode().unwrap();
    let run = replay(&job, &CpuFabric::reference()).unwrap();
    (job, blob, run)
}

fn receipt_of(job: &Job, blob: &[u8], run: &tb_job::ExecResult) -> Receipt {
    Receipt::of_run(blob, job, run, "test", SecretKey::dev("p").address()).unwrap()
}

#[test]
fn the_receipt_names_its_trace_and_matches_it() {
    let (job, blob, run) = honest("mlp");
    let shape = JobShape::of(&job).unwrap();
    shape.check().unwrap();
    assert_eq!(shape.n_ops as usize, job.program.ops.len());
    let r = receipt_of(&job, &blob, &run);
    let t = trace_blob(r.task_id, r.provider, &run.op_digests);
    assert_eq!(t.len(), tb_job::verify::TRACE_HEADER_BYTES + 32 * run.n_ops);
    assert_eq!(r.trace_sha256, tb_primitives::sha256_digest(&t).0);
    assert_eq!(
        r.trace_sha256,
        trace_sha256(r.task_id, r.provider, &run.op_digests)
    );
    let decoded = decode_trace(&t).unwrap();
    assert_eq!((decoded.task_id, decoded.provider), (r.task_id, r.provider));
    let leaves = decoded.leaves;
    assert_eq!(leaves, run.op_digests);
    // Another provider's or another job's trace of the same leaves is another object.
    assert_ne!(
        trace_sha256(Id([1; 32]), r.provider, &leaves),
        r.trace_sha256
    );
    assert_ne!(
        trace_sha256(r.task_id, SecretKey::dev("q").address(), &leaves),
        r.trace_sha256
    );
    check_trace(&r, &shape, &leaves).unwrap();
    assert_eq!(shape.output_digest(&leaves), Some(run.output_digest));
}

#[test]
fn receipt_checks_refuse_every_mismatch() {
    let (job, blob, run) = honest("matmul-chain");
    let shape = JobShape::of(&job).unwrap();
    let r = receipt_of(&job, &blob, &run);
    let leaves = run.op_digests.clone();
    let mut bad = r.clone();
    bad.n_ops += 1;
    assert!(matches!(
        check_trace(&bad, &shape, &leaves),
        Err(TraceMismatch::OpCount { .. })
    ));
    assert!(matches!(
        check_trace(&r, &shape, &leaves[1..]),
        Err(TraceMismatch::LeafCount { .. })
    ));
    let mut other = leaves.clone();
    other[0][0] ^= 1;
    assert_eq!(
        check_trace(&r, &shape, &other),
        Err(TraceMismatch::Root),
        "a leaf changed under the same receipt"
    );
    // A receipt whose root matches its trace but whose output digest is not the output
    // op's leaf.
    let mut lie = r.clone();
    lie.output_digest_sha256[3] ^= 4;
    assert_eq!(
        check_trace(&lie, &shape, &leaves),
        Err(TraceMismatch::OutputDigest)
    );
}

#[test]
fn trace_blobs_and_shapes_refuse_bad_input() {
    let a = SecretKey::dev("p").address();
    assert!(decode_trace(&[]).is_err());
    let empty = trace_blob(Id([1; 32]), a, &[]);
    assert!(
        matches!(decode_trace(&empty), Err(JobError::Verify(_))),
        "no leaves"
    );
    let mut ragged = trace_blob(Id([1; 32]), a, &[[2; 32]]);
    ragged.push(0);
    assert!(decode_trace(&ragged).is_err());
    let mut magic = trace_blob(Id([1; 32]), a, &[[2; 32]]);
    magic[0] = b'X';
    assert!(matches!(
        decode_trace(&magic),
        Err(JobError::BadMagic { .. })
    ));
    let big = vec![[0u8; 32]; tb_job::program::OPS_MAX + 1];
    assert!(decode_trace(&trace_blob(Id([1; 32]), a, &big)).is_err());
    let bad = JobShape {
        n_ops: 3,
        outputs: vec![3],
    };
    assert!(bad.check().is_err());
    assert!(JobShape {
        n_ops: 0,
        outputs: vec![0]
    }
    .check()
    .is_err());
    assert!(JobShape {
        n_ops: 40,
        outputs: vec![0; SHAPE_OUTPUTS_MAX + 1]
    }
    .check()
    .is_err());
}

#[test]
fn first_divergence_finds_the_first_differing_leaf() {
    let a = vec![[1u8; 32], [2; 32], [3; 32]];
    assert_eq!(first_divergence(&a, &a), None);
    let mut b = a.clone();
    b[1][0] = 9;
    b[2][0] = 9;
    assert_eq!(first_divergence(&a, &b), Some(1));
    assert_eq!(first_divergence(&a, &a[..2]), Some(2));
}

/// Every op of the transformer example: corrupt its leaf (and, as a lying provider
/// must to stay self-consistent, every later leaf is whatever it likes): the verifier
/// finds the op, builds the challenge, and adjudication convicts the leaf.
#[test]
fn a_corrupted_leaf_is_found_challenged_and_convicted() {
    let (job, blob, run) = honest("transformer");
    let shape = JobShape::of(&job).unwrap();
    let n = run.n_ops;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for trial in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = (rng % n as u64) as usize;
        let bit = (rng >> 20) % 256;
        let mut theirs = run.op_digests.clone();
        theirs[k][(bit / 8) as usize] ^= 1 << (bit % 8);
        let mut r = receipt_of(&job, &blob, &run);
        r.trace_root = trace_root(&theirs);
        r.output_digest_sha256 = shape.output_digest(&theirs).unwrap();
        let v = compare(&shape, &run.op_digests, &r, &theirs);
        assert_eq!(
            v,
            Verdict::Differs {
                op: k,
                ours: run.op_digests[k],
                theirs: theirs[k]
            },
            "trial {trial}"
        );
        let c = build_challenge(&job, Id([1; 32]), &theirs, k).unwrap();
        assert_eq!(c.leaf, theirs[k]);
        assert!(tb_job::verify_trace_proof(&r.trace_root, &c.leaf, &c.proof));
        let bytes = c.bundle.encode().unwrap();
        let back = EvidenceBundle::decode(&bytes).unwrap();
        assert_eq!(back, c.bundle);
        let ruling = adjudicate(&blob, None, &shape, &r.trace_root, k as u32, &back).unwrap();
        assert_eq!(
            ruling,
            Ruling::Leaf(run.op_digests[k]),
            "trial {trial} op {k}"
        );
        assert_ne!(ruling, Ruling::Leaf(theirs[k]));
    }
}

#[test]
fn an_honest_trace_is_upheld_and_bad_evidence_is_refused() {
    let (job, blob, run) = honest("mlp");
    let shape = JobShape::of(&job).unwrap();
    let r = receipt_of(&job, &blob, &run);
    assert_eq!(
        compare(&shape, &run.op_digests, &r, &run.op_digests),
        Verdict::Agrees
    );
    let last = run.n_ops - 1;
    let c = build_challenge(&job, Id([2; 32]), &run.op_digests, last).unwrap();
    assert_eq!(
        adjudicate(&blob, None, &shape, &r.trace_root, last as u32, &c.bundle).unwrap(),
        Ruling::Leaf(run.op_digests[last]),
        "a lying challenger gets the provider's own leaf back"
    );
    // The bundle of another op, tampered data, and a missing input are bad evidence.
    assert!(adjudicate(
        &blob,
        None,
        &shape,
        &r.trace_root,
        last as u32 - 1,
        &c.bundle
    )
    .is_err());
    let mut bad = c.bundle.clone();
    if let Some(e) = bad.inputs.first_mut() {
        e.leaf[0] ^= 1;
        assert!(matches!(
            adjudicate(&blob, None, &shape, &r.trace_root, last as u32, &bad),
            Err(JobError::Referee(_))
        ));
        bad.inputs.clear();
        assert!(adjudicate(&blob, None, &shape, &r.trace_root, last as u32, &bad).is_err());
    }
    // A blob that is not a job, or a shape that is not the blob's: the job is void
    // (the requester's fault), no leaf is judged.
    assert!(matches!(
        adjudicate(
            b"not a job",
            None,
            &shape,
            &r.trace_root,
            last as u32,
            &c.bundle
        ),
        Ok(Ruling::VoidJob(_))
    ));
    let mut other = shape.clone();
    other.outputs = vec![0];
    assert!(matches!(
        adjudicate(&blob, None, &other, &r.trace_root, last as u32, &c.bundle),
        Ok(Ruling::VoidJob(_))
    ));
    let plan = tb_job::validate(&job).unwrap();
    assert!(tb_job::check_job_blob(&blob, None, &shape, plan.total.flops as u64).is_ok());
    assert!(tb_job::check_job_blob(&blob, None, &other, plan.total.flops as u64).is_err());
    assert!(tb_job::check_job_blob(&blob, None, &shape, plan.total.flops as u64 + 1).is_err());
    assert!(tb_job::check_job_blob(b"BTRA", None, &shape, 1).is_err());
}

#[test]
fn an_op_that_fails_on_the_reference_has_no_honest_leaf() {
    // A gather whose index is out of range for the data: validation cannot see it, the
    // executor fails at the op, so any leaf a provider claims for it is a lie.
    let d = tb_job::InputTensorDescriptor::dense(
        blocktorch::DType::I32,
        &[4],
        tb_job::Normalisation::None,
    );
    let b = tb_job::ProgramBuilder::new(&d);
    let idx = b.input(tb_job::InputSlot::Main).unwrap();
    let table = b
        .param("table", blocktorch::HostData::F32(vec![1.0; 6]), &[3, 2])
        .unwrap();
    let y = blocktorch::compose::Backend::exec(&b, &blocktorch::Prim::Gather, &[&table, &idx]);
    let y = y.expect("shapes and dtypes are valid; only the index values are not");
    b.output("y", &y);
    let job = Job::new(
        [0; 32],
        d,
        b.finish(),
        blocktorch::HostData::I32(vec![0, 1, 2, 7]),
    )
    .unwrap();
    assert!(replay(&job, &CpuFabric::reference()).is_err());
    let blob = job.encode().unwrap();
    let shape = JobShape::of(&job).unwrap();
    let op = shape.outputs[0];
    // The op's segment re-reads the main input from the job (the input op is derived
    // into it), so its evidence is whatever committed values it reads — proven from a
    // fabricated trace whose earlier leaves are what an honest run gives for them.
    let nc = job.program.consts.len();
    let mut leaves = vec![[0u8; 32]; shape.n_ops as usize];
    let plan = tb_job::validate(&job).unwrap();
    let trace = tb_job::leaves::TracePlan::of(&job.program, &plan);
    assert_ne!(trace.kinds[op as usize], tb_job::leaves::LeafKind::Derived);
    let inputs: Vec<u32> = trace.frontier[op as usize].clone();
    let values = tb_job::replay_values(&job, &CpuFabric::reference(), &inputs).unwrap();
    let kinds = trace.kinds;
    for (v, (shape_v, data)) in inputs.iter().zip(&values) {
        let i = *v as usize - nc;
        leaves[i] = tb_job::leaves::leaf_of_host(kinds[i], shape_v, data).unwrap();
    }
    let bundle = EvidenceBundle {
        task_id: Id([5; 32]),
        op,
        inputs: inputs
            .iter()
            .zip(values)
            .map(|(v, (shape_v, data))| tb_job::Evidence {
                value: *v,
                shape: shape_v,
                data,
                leaf: leaves[*v as usize - nc],
                proof: tb_job::trace_proof(&leaves, *v as usize - nc).unwrap(),
            })
            .collect(),
    };
    let root = trace_root(&leaves);
    assert!(matches!(
        adjudicate(&blob, None, &shape, &root, op, &bundle),
        Ok(Ruling::NoHonestLeaf(_))
    ));
}

#[test]
fn bundle_decoding_refuses_malformed_bytes_with_typed_errors() {
    let (job, _, run) = honest("matmul-chain");
    let last = run.n_ops - 1;
    let c = build_challenge(&job, Id([3; 32]), &run.op_digests, last).unwrap();
    let bytes = c.bundle.encode().unwrap();
    assert_eq!(&bytes[..4], &BUNDLE_MAGIC);
    assert!(matches!(
        EvidenceBundle::decode(&bytes[..bytes.len() - 1]),
        Err(JobError::Truncated { .. })
    ));
    let mut more = bytes.clone();
    more.push(0);
    assert!(matches!(
        EvidenceBundle::decode(&more),
        Err(JobError::TrailingBytes { .. })
    ));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(
        EvidenceBundle::decode(&magic),
        Err(JobError::BadMagic { .. })
    ));
    let mut version = bytes.clone();
    version[4] = 1;
    assert!(matches!(
        EvidenceBundle::decode(&version),
        Err(JobError::UnknownTag { .. })
    ));
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        tb_job::fuzzing::decode_evidence(&bytes);
    }

    #[test]
    fn mutated_bundles_never_panic(at in any::<prop::sample::Index>(), mask in 1..=255u8) {
        let job = build_example("train-step").unwrap();
        let run = replay(&job, &CpuFabric::reference()).unwrap();
        let c = build_challenge(&job, Id([4; 32]), &run.op_digests, run.n_ops - 1).unwrap();
        let mut bytes = c.bundle.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        tb_job::fuzzing::decode_evidence(&bytes);
    }
}

#[test]
fn the_evidence_size_bound_covers_every_real_bundle() {
    for name in tb_job::examples::EXAMPLES {
        let job = build_example(name).unwrap();
        let plan = tb_job::validate(&job).unwrap();
        let trace = tb_job::leaves::TracePlan::of(&job.program, &plan);
        let run = replay(&job, &CpuFabric::reference()).unwrap();
        for op in 0..run.n_ops {
            let c = build_challenge(&job, Id([0; 32]), &run.op_digests, op).unwrap();
            let len = c.bundle.encode().unwrap().len() as u128;
            let bound = tb_job::verify::op_evidence_bytes(&job, &plan, &trace, op);
            assert!(len <= bound, "{name} op {op}: {len} > {bound}");
            assert!(
                bound - len <= 32 * 17 * 16,
                "{name} op {op}: the bound is loose"
            );
        }
    }
}

#[test]
fn an_op_the_referee_cannot_afford_voids_the_job() {
    // A tiny blob whose main input is one byte broadcast (stride 0) to just over 2³⁰
    // elements: materialising it would cost every validating node over 1 GiB inside
    // block execution, so no op of it is disputable and the job is void.
    let mut d = tb_job::InputTensorDescriptor::dense(
        blocktorch::DType::U8,
        &[(1 << 30) + 8],
        tb_job::Normalisation::None,
    );
    d.strides = vec![0];
    let b = tb_job::ProgramBuilder::new(&d);
    let x = b.input(tb_job::InputSlot::Main).unwrap();
    b.output("x", &x);
    let job = Job::new([0; 32], d, b.finish(), blocktorch::HostData::U8(vec![7])).unwrap();
    let blob = job.encode().unwrap();
    assert!(blob.len() < 1_000, "the blob is tiny");
    let shape = JobShape::of(&job).unwrap();
    let why = tb_job::check_blob_for_disputes(&blob, None, &shape).unwrap_err();
    assert!(why.contains("more than the referee holds"), "{why}");
    let plan = tb_job::validate(&job).unwrap();
    assert!(tb_job::check_job_blob(&blob, None, &shape, plan.total.flops as u64).is_err());
    // And every example job is disputable.
    for name in tb_job::examples::EXAMPLES {
        let job = build_example(name).unwrap();
        let blob = job.encode().unwrap();
        tb_job::check_blob_for_disputes(&blob, None, &JobShape::of(&job).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
