//! The fuzz target body, shared by `fuzz/fuzz_targets/decode_job.rs` and the stable
//! property tests (`tests/props.rs`).

use crate::exec::{execute, trace_root, ExecOptions, ReplayMode};
use crate::format::Job;
use crate::program::validate;
use blocktorch::CpuFabric;

/// Jobs above these bounds are validated but not run.
pub const FUZZ_FLOPS_RUN_MAX: u128 = 10_000_000;
/// Bytes moved and digested, at most, by a fuzzed job that is run.
pub const FUZZ_BYTES_RUN_MAX: u128 = 100_000_000;

/// Any bytes: never a panic; accepted bytes are canonical; what decodes is validated,
/// and a cheap valid job runs on the CPU reference in cross-fabric replay mode, its
/// trace root matching its op digests. Panics (the fuzzer's finding) on a violation.
pub fn decode_job(data: &[u8]) {
    let Ok(job) = Job::decode(data) else { return };
    assert_eq!(
        job.encode().as_deref(),
        Ok(data),
        "accepted bytes must be canonical"
    );
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
    if let Ok(t) = crate::verify::decode_trace(data) {
        assert_eq!(
            crate::verify::TRACE_HEADER_BYTES + 32 * t.leaves.len(),
            data.len()
        );
        assert_eq!(
            crate::verify::trace_blob(t.task_id, t.provider, &t.leaves),
            data
        );
    }
}
