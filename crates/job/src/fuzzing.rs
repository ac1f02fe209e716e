//! The fuzz target bodies, shared by `fuzz/fuzz_targets/` and the stable property
//! tests (`tests/props.rs`, `tests/verify.rs`, `tests/result.rs`).

use crate::exec::{execute, trace_root, ExecOptions, ReplayMode};
use crate::format::Job;
use crate::validate::validate;
use blocktorch::CpuFabric;

/// Jobs above these bounds are validated but not run.
pub const FUZZ_FLOPS_RUN_MAX: u128 = 10_000_000;
/// Bytes moved and digested, at most, by a fuzzed job that is run.
pub const FUZZ_BYTES_RUN_MAX: u128 = 100_000_000;

/// Any bytes: never a panic; accepted bytes are canonical; what decodes is validated,
/// and a cheap valid job runs on the CPU reference in cross-fabric replay mode, its
/// trace root matching its op digests. Panics (the fuzzer's finding) on a violation.
///
/// The bytes are tried twice: as a whole blob (version 0, or version 1 without its
/// model), and split into a model and a version 1 blob — the first four bytes (u32 LE,
/// modulo what follows) give the model's length, and a version 1 blob's model SHA-256
/// is set to the model's own, so the fuzzer reaches the model decoder.
pub fn decode_job(data: &[u8]) {
    check_job(data, None);
    if data.len() < 4 {
        return;
    }
    let rest = &data[4..];
    let k = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as usize % (rest.len() + 1);
    let (model, blob) = rest.split_at(k);
    let mut blob = blob.to_vec();
    if blob.len() >= 69 && blob[..5] == [b'B', b'T', b'R', b'A', 1] {
        let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(model).into();
        blob[37..69].copy_from_slice(&sha);
    }
    check_job(&blob, Some(model));
}

fn check_job(data: &[u8], model: Option<&[u8]>) {
    let Ok(job) = Job::decode_resolved(data, model) else {
        return;
    };
    assert_eq!(
        job.encode().as_deref(),
        Ok(data),
        "accepted bytes must be canonical"
    );
    if let Some(m) = model.filter(|_| job.form == crate::format::JobForm::ByReference) {
        assert_eq!(
            job.model_bytes().as_deref(),
            Ok(m),
            "the model is canonical"
        );
    }
    let Ok(plan) = validate(&job) else { return };
    if plan.total.flops > FUZZ_FLOPS_RUN_MAX || plan.total.bytes > FUZZ_BYTES_RUN_MAX {
        return;
    }
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    if let Ok(run) = execute(&job, &CpuFabric::reference(), opts) {
        assert_eq!(run.n_ops, job.program.ops.len());
        assert_eq!(run.op_digests.len(), run.n_ops);
        assert_eq!(run.trace_root, trace_root(&run.op_digests));
        assert_eq!(run.outputs.len(), job.program.outputs.len());
    }
}

/// Any bytes as an evidence bundle and as a trace blob: never a panic; an accepted
/// bundle or trace re-encodes to the same bytes.
pub fn decode_evidence(data: &[u8]) {
    if let Ok(b) = crate::verify::EvidenceBundle::decode(data) {
        assert_eq!(
            b.encode().as_deref(),
            Ok(data),
            "accepted bundle bytes must be canonical"
        );
    }
    if let Ok(t) = crate::trace::decode_trace(data) {
        assert_eq!(
            crate::trace::TRACE_HEADER_BYTES + 32 * t.leaves.len(),
            data.len()
        );
        assert_eq!(
            crate::trace::trace_blob(t.task_id, t.provider, &t.leaves),
            data
        );
    }
}

/// Any bytes as a result object: never a panic; an accepted object re-encodes to the
/// same bytes; the streaming scanner, fed the bytes in pieces of a size taken from the
/// data, accepts exactly what the decoder accepts and gives the same digests.
pub fn decode_result(data: &[u8]) {
    let decoded = crate::result::ResultObject::decode(data);
    let piece = data.first().map_or(1, |b| *b as usize % 7 + 1);
    let mut s = crate::result::ResultScanner::new();
    for c in data.chunks(piece) {
        s.feed(c);
    }
    let scanned = s.finish();
    match (&decoded, &scanned) {
        (Ok(r), Ok(sum)) => {
            assert_eq!(
                r.encode().as_deref(),
                Ok(data),
                "accepted bytes are canonical"
            );
            assert_eq!(
                r.digests(),
                sum.digests,
                "the scanner's digests are the decoder's"
            );
            assert_eq!(r.output_digest(), sum.output_digest);
            assert_eq!(r.outputs.len() as u32, sum.outputs);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("decoder {decoded:?} and scanner {scanned:?} disagree"),
    }
}
