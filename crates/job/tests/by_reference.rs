//! Version 1 blobs (`docs/spec/job-format-v1.md`): a job that names its model by
//! SHA-256 instead of carrying it. The spec's worked example byte by byte; the same job
//! inline and by reference runs to the same trace, outputs and receipt fields; every
//! defect of the header, the model and the pairing of the two is a typed error that
//! names the field and its byte offset; property tests over random blobs and models.

mod support;

use blocktorch::{CpuFabric, HostData};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use support::hex;
use tb_job::format::{HEADER_BYTES_V1, JOB_VERSION_BY_REFERENCE, MODEL_BYTES_MAX};
use tb_job::{examples, validate, ExecOptions, Job, JobError, JobForm, ModelRef, ReplayMode};

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The worked example of `job-format-v0.md` §12, by reference.
fn worked_example() -> Job {
    support::worked_example().with_form(JobForm::ByReference)
}

fn run(job: &Job) -> tb_job::ExecResult {
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    tb_job::execute(job, &CpuFabric::reference(), opts).unwrap()
}

#[test]
fn the_spec_worked_example_by_reference() {
    let job = worked_example();
    let blob = job.encode().unwrap();
    let model = job.model_bytes().unwrap();
    assert_eq!(model.len(), 87, "the artifact of the v0 example");
    let model_sha = "c9aafc2b6b776858e23fc2de61da13ed0d5b8e410aadd12e8b20a0e4518ea924";
    let expected = [
        "42545241 01",
        &"ab".repeat(32),
        model_sha,
        "57000000 10000000",
        "01 02 02000000 02000000 02000000 01000000 00 00 00 00 00",
        "0000803f 00000040 00004040 00008040",
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&sha(&model)), model_sha);
    assert_eq!(hex(&blob), expected);
    assert_eq!(blob.len(), 116);
    assert_eq!(
        Job::model_of(&blob).unwrap(),
        Some(ModelRef {
            sha256: sha(&model),
            bytes: 87
        })
    );
    let back = Job::decode_resolved(&blob, Some(&model)).unwrap();
    assert_eq!(back, job);
    // The same outputs, trace and digests as the inline job of §12.
    let r = run(&back);
    assert_eq!(r.outputs[0].data, HostData::F32(vec![1.0, 4.0, 3.0, 8.0]));
    assert_eq!(
        r.trace_root.to_hex(),
        "27f5241c81590c9d360b41584ff13426b0c14803812b7601b5a449ce6249910f"
    );
    assert_eq!(
        hex(&r.output_digest),
        "a108f1490333710069847439c0aae56d4ce356d64831e79edd4d2cb8a09a7f75"
    );
    assert_eq!(
        Job::task_id(&blob).to_hex(),
        "95a8dabe21f3060d76f0c6e29ff8a94d025d1b2050ad8eb371f2082936cfbc71"
    );
}

#[test]
fn every_example_runs_the_same_inline_and_by_reference() {
    for name in examples::EXAMPLES {
        let inline = examples::build_example(name).unwrap();
        let by_ref = inline.clone().with_form(JobForm::ByReference);
        let blob = by_ref.encode().unwrap();
        let model = by_ref.model_bytes().unwrap();
        let back = Job::decode_resolved(&blob, Some(&model)).unwrap();
        assert_eq!(back.form, JobForm::ByReference, "{name}");
        assert_eq!(back.artifact_hash, inline.artifact_hash, "{name}");
        assert_eq!(back.descriptor_hash, inline.descriptor_hash, "{name}");
        assert_eq!(back.program, inline.program, "{name}");
        assert_eq!(back.input, inline.input, "{name}");
        // The version 1 blob holds no weights: it is the inline blob less the artifact,
        // plus the 32-byte model SHA-256.
        let inline_len = inline.encode().unwrap().len();
        assert_eq!(blob.len() + model.len(), inline_len + 32, "{name}");
        let (a, b) = (run(&inline), run(&back));
        assert_eq!(a.op_digests, b.op_digests, "{name}");
        assert_eq!(a.output_digest, b.output_digest, "{name}");
        // A version 0 decoder path ignores a model it does not need.
        let v0 = inline.encode().unwrap();
        assert_eq!(Job::decode_resolved(&v0, Some(&model)).unwrap(), inline);
        assert_eq!(Job::model_of(&v0).unwrap(), None);
    }
}

#[test]
fn a_blob_without_its_model_names_the_model_it_needs() {
    let job = worked_example();
    let blob = job.encode().unwrap();
    let model = job.model_bytes().unwrap();
    let err = Job::decode(&blob).unwrap_err();
    assert_eq!(
        err,
        JobError::ModelMissing {
            sha256: hex(&sha(&model)),
            bytes: 87
        }
    );
    assert!(err.to_string().contains(&hex(&sha(&model))));
    assert!(err.to_string().contains("tb-cli model publish"));
}

#[test]
fn a_model_other_than_the_one_named_is_refused() {
    let job = worked_example();
    let blob = job.encode().unwrap();
    let model = job.model_bytes().unwrap();
    // Another length.
    let mut longer = model.clone();
    longer.push(0);
    let e = Job::decode_resolved(&blob, Some(&longer)).unwrap_err();
    assert!(
        matches!(&e, JobError::ModelMismatch { message, .. } if message.contains("87 bytes")),
        "{e}"
    );
    // The same length, another SHA-256 (a weight changed).
    let mut other = model.clone();
    let last = other.len() - 20;
    other[last] ^= 1;
    let e = Job::decode_resolved(&blob, Some(&other)).unwrap_err();
    assert!(matches!(e, JobError::ModelMismatch { .. }), "{e}");
}

#[test]
fn a_model_that_does_not_decode_is_an_error_inside_the_model() {
    // A blob that names bytes which hash right but are not an artifact.
    let job = worked_example();
    let mut blob = job.encode().unwrap();
    let junk = vec![b'X'; 87];
    blob[37..69].copy_from_slice(&sha(&junk));
    let e = Job::decode_resolved(&blob, Some(&junk)).unwrap_err();
    assert_eq!(
        e,
        JobError::InModel {
            source: Box::new(JobError::BadMagic {
                field: "artifact magic",
                offset: 0,
                expected: *b"BTPG",
                found: *b"XXXX",
            })
        }
    );
    assert_eq!(
        e.to_string(),
        "model: bad artifact magic at byte 0: expected [66, 84, 80, 71], found [88, 88, 88, 88]"
    );
    // A model that ends early: the offset is inside the model.
    let model = job.model_bytes().unwrap();
    let cut = &model[..60];
    blob[37..69].copy_from_slice(&sha(cut));
    blob[69..73].copy_from_slice(&60u32.to_le_bytes());
    let e = Job::decode_resolved(&blob, Some(cut)).unwrap_err();
    match e {
        JobError::InModel { source } => {
            assert!(
                matches!(*source, JobError::Truncated { offset, .. } if offset < 60),
                "{source}"
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn header_defects_name_their_field_and_offset() {
    let job = worked_example();
    let blob = job.encode().unwrap();
    let model = job.model_bytes().unwrap();
    let trunc = |n: usize| Job::decode_resolved(&blob[..n], Some(&model)).unwrap_err();
    let field = |e: JobError| match e {
        JobError::Truncated { field, offset, .. } => (field, offset),
        other => panic!("{other}"),
    };
    assert_eq!(field(trunc(40)), ("model sha256", 37));
    assert_eq!(field(trunc(70)), ("model length", 69));
    assert_eq!(field(trunc(75)), ("input length", 73));
    assert_eq!(field(trunc(HEADER_BYTES_V1)), ("descriptor dtype", 77));
    assert_eq!(field(trunc(blob.len() - 1)), ("input", 100));
    // A model above the limit, at the length field.
    let mut b = blob.clone();
    b[69..73].copy_from_slice(&(MODEL_BYTES_MAX as u32 + 1).to_le_bytes());
    assert_eq!(
        Job::decode_resolved(&b, Some(&model)).unwrap_err(),
        JobError::TooLarge {
            field: "model length",
            offset: 69,
            value: MODEL_BYTES_MAX as u64 + 1,
            max: MODEL_BYTES_MAX as u64
        }
    );
    assert!(Job::model_of(&b).is_err());
    // The input length is checked against the descriptor, at its own offset.
    let mut b = blob.clone();
    b[73..77].copy_from_slice(&15u32.to_le_bytes());
    assert_eq!(
        Job::decode_resolved(&b, Some(&model)).unwrap_err(),
        JobError::LengthMismatch {
            field: "input length",
            offset: 73,
            declared: 15,
            actual: 16
        }
    );
    // Trailing bytes after the input.
    let mut b = blob.clone();
    b.push(0);
    assert_eq!(
        Job::decode_resolved(&b, Some(&model)).unwrap_err(),
        JobError::TrailingBytes {
            offset: 116,
            count: 1
        }
    );
    assert_eq!(blob[4], JOB_VERSION_BY_REFERENCE);
}

#[test]
fn a_by_reference_job_validates_like_its_inline_twin() {
    let job = worked_example();
    let inline = job.clone().with_form(JobForm::Inline);
    assert_eq!(
        validate(&job).unwrap().total,
        validate(&inline).unwrap().total
    );
}

proptest! {
    /// Random bytes as a blob and as a model never panic; anything accepted is
    /// canonical (the fuzz target's body).
    #[test]
    fn random_blobs_and_models_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        tb_job::fuzzing::decode_job(&data);
    }

    /// One byte of a valid version 1 blob or of its model changed: never a panic, and
    /// whatever still decodes re-encodes to the same blob.
    #[test]
    fn mutated_v1_blobs_and_models_never_panic(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        in_model in any::<bool>(),
    ) {
        let job = worked_example();
        let mut blob = job.encode().unwrap();
        let mut model = job.model_bytes().unwrap();
        if in_model {
            let i = at.index(model.len());
            model[i] = byte;
            // Keep the blob naming it, so the mutation reaches the model decoder.
            blob[37..69].copy_from_slice(&sha(&model));
        } else {
            let i = at.index(blob.len());
            blob[i] = byte;
        }
        if let Ok(j) = Job::decode_resolved(&blob, Some(&model)) {
            prop_assert_eq!(j.encode().unwrap(), blob);
            prop_assert_eq!(j.model_bytes().unwrap(), model);
        }
    }
}
