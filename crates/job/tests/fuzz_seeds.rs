//! The seed corpora of the fuzz targets `decode_job`, `decode_evidence` and
//! `decode_result` (`tb_primitives::seeds`, `docs/fuzzing.md`): valid blobs, traces,
//! evidence bundles and result objects, written from the encoders.

mod support;

use blocktorch::cpu::CpuFabric;
use tb_job::leaves::{LeafKind, TracePlan};
use tb_job::trace::{decode_trace, trace_blob};
use tb_job::verify::{build_challenge, EvidenceBundle};
use tb_job::{execute, validate, ExecOptions, Job, JobForm, ReplayMode, ResultObject};
use tb_primitives::seeds::check_seeds;
use tb_primitives::SecretKey;

/// `decode_job`'s split form: the model's length (u32 LE), the model, the version 1 blob.
fn split(model: &[u8], blob: &[u8]) -> Vec<u8> {
    let mut b = (model.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(model);
    b.extend_from_slice(blob);
    b
}

fn unsplit(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let k = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let rest = &b[4..];
    (k <= rest.len()).then(|| rest.split_at(k))
}

#[test]
fn fuzz_seeds() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let worked = support::worked_example();
    let train = tb_job::examples::build_example("train-step").expect("the example");
    let by_ref = worked.clone().with_form(JobForm::ByReference);
    let model = by_ref.model_bytes().expect("the model");
    let jobs = vec![
        worked.encode().expect("encodes"),
        train.encode().expect("encodes"),
        split(&model, &by_ref.encode().expect("encodes")),
    ];
    check_seeds(dir, "decode_job", &jobs, |b| {
        Job::decode(b).is_ok()
            || unsplit(b).is_some_and(|(m, blob)| Job::decode_resolved(blob, Some(m)).is_ok())
    });

    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let cpu = CpuFabric::reference();
    let run = execute(&train, &cpu, opts).expect("runs");
    let task = Job::task_id(&jobs[1]);
    let provider = SecretKey::dev("seed-provider").address();
    // A committed op whose segment reads committed op outputs: its bundle has data.
    let plan = validate(&train).expect("validates");
    let tp = TracePlan::of(&train.program, &plan);
    let op = (0..tp.kinds.len())
        .rev()
        .find(|i| tp.kinds[*i] != LeafKind::Derived && !tp.frontier[*i].is_empty())
        .expect("an op with evidence");
    let bundle = build_challenge(&train, task, &run.op_digests, op)
        .expect("a challenge")
        .bundle;
    assert!(!bundle.inputs.is_empty());
    let evidence = vec![
        trace_blob(task, provider, &run.op_digests),
        bundle.encode().expect("encodes"),
    ];
    check_seeds(dir, "decode_evidence", &evidence, |b| {
        decode_trace(b).is_ok() || EvidenceBundle::decode(b).is_ok()
    });

    let small = execute(&worked, &cpu, opts).expect("runs");
    let results = vec![
        ResultObject::of_run(&small).encode().expect("encodes"),
        ResultObject::of_run(&run).encode().expect("encodes"),
    ];
    check_seeds(dir, "decode_result", &results, |b| {
        ResultObject::decode(b).is_ok()
    });
}
