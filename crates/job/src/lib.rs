//! BlockTorchJobV0: what a requestor submits and a provider runs.
//!
//! - [`format`]: the blob (`BTRA`, version 0, kernel digest, lengths, the
//!   [`InputTensorDescriptor`], the artifact, the input bytes), decoded with a typed
//!   error naming the field and byte offset of any defect (`docs/spec/job-format-v0.md`);
//!   version 1 names a published model by SHA-256 instead of carrying the artifact
//!   (`docs/spec/job-format-v1.md`).
//! - [`program`]: the artifact — named constants and an SSA op list over the runtime's
//!   primitives and views — its canonical encoding, [`validate`] (shape and dtype
//!   inference, references, runtime, cost bounds) and its deterministic FLOP/byte cost.
//! - [`exec`]: the executor on any `Fabric`: outputs, `output_digest_sha256`, every op's
//!   trace leaf, `trace_root`, the profile epoch; kernel digest checked unless in
//!   cross-fabric replay mode.
//! - [`prepared`]: a model's constants uploaded to a fabric once for all its jobs
//!   ([`PreparedModel`], [`execute_prepared`]) and a byte-bounded cache of them.
//! - [`leaves`]: what each trace leaf commits to (declared outputs, views, the rest),
//!   and the committed base a dispute reads an argument from.
//! - [`referee`]: one op re-executed on the CPU reference from proven inputs.
//! - [`verify`]: trace blobs, the job shape the chain records, receipt checks against a
//!   trace, replay and compare, challenge bundles and adjudication.
//! - [`receipt`]: the signed compute receipt.
//! - [`result`]: the result object a provider publishes (the declared outputs, bound to
//!   the receipt by its output digest) and the streaming check the chain runs over it.
//! - [`builder`] and [`examples`]: programs written with `blocktorch::compose`, and the
//!   example jobs.
#![forbid(unsafe_code)]

pub mod builder;
pub mod error;
pub mod examples;
pub mod exec;
pub mod format;
pub mod fuzzing;
pub mod leaves;
pub mod prepared;
pub mod program;
pub mod receipt;
pub mod referee;
pub mod result;
pub mod trace;
pub mod validate;
pub mod verify;
mod wire;

pub use builder::{ProgramBuilder, Val};
pub use error::{JobError, Result};
pub use exec::{
    execute, trace_proof, trace_root, verify_trace_proof, ExecOptions, ExecResult, ReplayMode,
};
pub use format::{InputTensorDescriptor, Job, JobForm, ModelRef, Normalisation, SideTensor};
pub use prepared::{execute_prepared, CacheLookup, ModelCache, PreparedModel};
pub use program::{Cost, InputSlot, Node, Op, Plan, Program};
pub use receipt::{Receipt, SignedReceipt};
pub use referee::{evidence_for, referee, replay_values, replay_values_prepared, Evidence};
pub use result::{scan_result, ResultObject, ResultScanner, ResultSummary, ResultTensor};
pub use validate::validate;
pub use verify::{
    adjudicate, adjudicate_decoded, build_challenge, check_blob_for_disputes, check_job_blob,
    check_trace, check_trace_parts, checked_job_plan, compare, decode_trace, first_divergence,
    replay, trace_blob, trace_sha256, Challenge, EvidenceBundle, JobShape, Ruling, TraceBlob,
    TraceMismatch, Verdict,
};
