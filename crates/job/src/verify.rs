//! Verification: what a verifier, a challenger and every validating node run.
//!
//! - The **trace blob** ([`crate::trace`], re-exported here): a receipt's leaf list,
//!   published content-addressed ([`trace_blob`], [`decode_trace`]); the receipt names
//!   its SHA-256.
//! - The **job shape** the chain knows without the blob ([`JobShape`]: op count and the
//!   ops that are outputs), and the receipt checks against a published trace
//!   ([`check_trace`]).
//! - **Replay and compare** ([`replay`], [`first_divergence`], [`compare`]) on any
//!   fabric, and the **challenge** a verifier builds for the first differing op
//!   ([`build_challenge`]): the op, the provider's leaf with its proof, and the
//!   [`EvidenceBundle`] holding the op's agreed input tensors.
//! - **Adjudication** ([`adjudicate`]): the one-op referee on the CPU reference, as the
//!   chain runs it, with the three outcomes a dispute can have.
//!
//! The evidence bundle's byte format and the rules are in `docs/spec/verification.md`.

use crate::error::{JobError, Result};
use crate::exec::{execute, trace_proof, trace_root, ExecOptions, ExecResult, ReplayMode};
use crate::format::{Job, JOB_BLOB_BYTES_MAX};
use crate::program::{OPS_MAX, OP_ARGS_MAX};
use crate::receipt::Receipt;
use crate::referee::{evidence_for, referee, Evidence};
pub use crate::trace::{
    decode_trace, trace_blob, trace_sha256, TraceBlob, TRACE_HEADER_BYTES, TRACE_MAGIC,
    TRACE_VERSION,
};
use crate::validate::validate;
use crate::wire::{Reader, Writer};
use blocktorch::{Fabric, RANK_MAX};
use sha2::{Digest as _, Sha256};
use tb_primitives::{Id, MerkleProof};

/// Magic of an evidence bundle.
pub const BUNDLE_MAGIC: [u8; 4] = *b"BTEV";
/// Its version.
pub const BUNDLE_VERSION: u8 = 0;
/// Largest evidence bundle (the inputs of one op of a job no larger than a job blob).
pub const BUNDLE_BYTES_MAX: usize = JOB_BLOB_BYTES_MAX;
/// Most siblings in a trace proof (a tree of at most [`OPS_MAX`] leaves has 16 levels).
pub const PROOF_SIBLINGS_MAX: usize = 32;
/// Most outputs the chain records for a job (as many as a result object holds).
pub const SHAPE_OUTPUTS_MAX: usize = crate::result::RESULT_OUTPUTS_MAX;

/// What the chain knows of a job's program without its blob: the op count, and the op
/// index of every declared output in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobShape {
    /// Ops in the program (= leaves in its trace).
    pub n_ops: u32,
    /// The op whose output each declared output is.
    pub outputs: Vec<u32>,
}

impl JobShape {
    /// The shape of `job`. Refused when an output is a constant (it has no leaf) or
    /// there are more than [`SHAPE_OUTPUTS_MAX`] outputs: such jobs cannot be
    /// marketed.
    pub fn of(job: &Job) -> Result<JobShape> {
        let p = &job.program;
        let nc = p.consts.len();
        if p.outputs.len() > SHAPE_OUTPUTS_MAX {
            return Err(JobError::Verify(format!(
                "{} outputs, the chain records at most {SHAPE_OUTPUTS_MAX}",
                p.outputs.len()
            )));
        }
        let outputs = p
            .outputs
            .iter()
            .map(|o| {
                (o.value as usize)
                    .checked_sub(nc)
                    .map(|i| i as u32)
                    .ok_or_else(|| {
                        JobError::Verify(format!(
                            "output {} is a constant, which has no trace leaf",
                            o.name
                        ))
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok(JobShape {
            n_ops: p.ops.len() as u32,
            outputs,
        })
    }

    /// Checks the shape's own consistency (what the chain checks at submission).
    pub fn check(&self) -> Result<()> {
        if self.n_ops == 0 || self.n_ops as usize > OPS_MAX {
            return Err(JobError::Verify(format!(
                "n_ops must be 1..={OPS_MAX}, not {}",
                self.n_ops
            )));
        }
        if self.outputs.is_empty() || self.outputs.len() > SHAPE_OUTPUTS_MAX {
            return Err(JobError::Verify(format!(
                "1..={SHAPE_OUTPUTS_MAX} outputs, not {}",
                self.outputs.len()
            )));
        }
        if let Some(o) = self.outputs.iter().find(|o| **o >= self.n_ops) {
            return Err(JobError::Verify(format!(
                "output op {o} is past the program's {} ops",
                self.n_ops
            )));
        }
        Ok(())
    }

    /// The job's output digest implied by a trace: `job_output_digest` of the output
    /// ops' leaves. `None` if a leaf is missing.
    pub fn output_digest(&self, leaves: &[[u8; 32]]) -> Option<[u8; 32]> {
        let ds: Vec<[u8; 32]> = self
            .outputs
            .iter()
            .map(|o| leaves.get(*o as usize).copied())
            .collect::<Option<_>>()?;
        Some(crate::exec::job_output_digest(&ds))
    }
}

/// Why a receipt does not match its published trace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceMismatch {
    /// The receipt's `n_ops` is not the job's.
    #[error("the receipt declares {receipt} ops, the job has {job}")]
    OpCount {
        /// The receipt's.
        receipt: u64,
        /// The job's.
        job: u32,
    },
    /// The trace holds another number of leaves.
    #[error("the trace holds {leaves} leaves, the job has {job} ops")]
    LeafCount {
        /// Leaves.
        leaves: usize,
        /// Ops.
        job: u32,
    },
    /// The leaves' Merkle root is not the receipt's `trace_root`.
    #[error("the trace's root is not the receipt's trace_root")]
    Root,
    /// The output op's leaf is not the receipt's output digest.
    #[error("the output ops' leaves do not give the receipt's output digest")]
    OutputDigest,
}

/// The receipt checks against its published trace: op count, leaf count, root, and the
/// output digest implied by the output ops' leaves.
pub fn check_trace(
    receipt: &Receipt,
    shape: &JobShape,
    leaves: &[[u8; 32]],
) -> std::result::Result<(), TraceMismatch> {
    let outputs: Vec<[u8; 32]> = shape
        .outputs
        .iter()
        .filter_map(|o| leaves.get(*o as usize).copied())
        .collect();
    check_trace_parts(
        receipt,
        shape,
        leaves.len() as u64,
        &trace_root(leaves),
        &outputs,
    )
}

/// [`check_trace`] from what a node keeps of a published trace: its leaf count, its
/// root (computed once, at publication) and the leaves of the output ops, in the
/// shape's output order. O(outputs), whatever the trace's length.
pub fn check_trace_parts(
    receipt: &Receipt,
    shape: &JobShape,
    leaf_count: u64,
    root: &Id,
    output_leaves: &[[u8; 32]],
) -> std::result::Result<(), TraceMismatch> {
    if receipt.n_ops != shape.n_ops as u64 {
        return Err(TraceMismatch::OpCount {
            receipt: receipt.n_ops,
            job: shape.n_ops,
        });
    }
    if leaf_count != shape.n_ops as u64 {
        return Err(TraceMismatch::LeafCount {
            leaves: leaf_count as usize,
            job: shape.n_ops,
        });
    }
    if *root != receipt.trace_root {
        return Err(TraceMismatch::Root);
    }
    let digest = (output_leaves.len() == shape.outputs.len())
        .then(|| crate::exec::job_output_digest(output_leaves));
    if digest != Some(receipt.output_digest_sha256) {
        return Err(TraceMismatch::OutputDigest);
    }
    Ok(())
}

/// Replays `job` on `fabric` whatever kernel digest it declares (results are
/// bit-identical across fabrics).
pub fn replay(job: &Job, fabric: &dyn Fabric) -> Result<ExecResult> {
    execute(
        job,
        fabric,
        ExecOptions {
            replay: ReplayMode::CrossFabric,
            profile: false,
        },
    )
}

/// The first index where two leaf lists differ (a length difference counts at the
/// shorter length); `None` when equal.
pub fn first_divergence(a: &[[u8; 32]], b: &[[u8; 32]]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
}

/// What a replay says of a receipt and its trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The replay's leaves are the trace's and the receipt matches them.
    Agrees,
    /// The first op whose leaf differs, with both leaves.
    Differs {
        /// The op.
        op: usize,
        /// The replay's leaf.
        ours: [u8; 32],
        /// The trace's.
        theirs: [u8; 32],
    },
    /// The receipt does not match its own trace (the chain refuses such receipts).
    Malformed(TraceMismatch),
}

/// Compares a replay's leaves with a receipt and its published trace.
pub fn compare(
    shape: &JobShape,
    ours: &[[u8; 32]],
    receipt: &Receipt,
    theirs: &[[u8; 32]],
) -> Verdict {
    if let Err(e) = check_trace(receipt, shape, theirs) {
        return Verdict::Malformed(e);
    }
    match first_divergence(ours, theirs) {
        None => Verdict::Agrees,
        Some(op) => Verdict::Differs {
            op,
            ours: ours.get(op).copied().unwrap_or([0; 32]),
            theirs: theirs.get(op).copied().unwrap_or([0; 32]),
        },
    }
}

/// The input tensors of one disputed op, with their leaves and proofs under the disputed
/// trace root.
#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceBundle {
    /// The job (the chain's task id).
    pub task_id: Id,
    /// The disputed op.
    pub op: u32,
    /// Every argument of the op that is an earlier op's output, in increasing value id.
    pub inputs: Vec<Evidence>,
}

impl EvidenceBundle {
    /// Canonical bytes (`docs/spec/verification.md`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.inputs.len() > OP_ARGS_MAX {
            return Err(JobError::Verify(format!(
                "{} inputs, an op has at most {OP_ARGS_MAX}",
                self.inputs.len()
            )));
        }
        if self.inputs.windows(2).any(|p| p[0].value >= p[1].value) {
            return Err(JobError::Verify(
                "inputs must be in strictly increasing value order".into(),
            ));
        }
        let mut w = Writer::default();
        w.raw(&BUNDLE_MAGIC);
        w.u8(BUNDLE_VERSION);
        w.raw(&self.task_id.0);
        w.u32(self.op);
        w.u8(self.inputs.len() as u8);
        for e in &self.inputs {
            if e.shape.len() > RANK_MAX || e.shape.iter().any(|d| *d > u32::MAX as usize) {
                return Err(JobError::Verify(format!(
                    "value {}: the shape cannot be encoded",
                    e.value
                )));
            }
            if e.proof.siblings.len() > PROOF_SIBLINGS_MAX {
                return Err(JobError::Verify(format!(
                    "value {}: a proof has at most {PROOF_SIBLINGS_MAX} siblings",
                    e.value
                )));
            }
            if e.shape.iter().product::<usize>() != e.data.len() {
                return Err(JobError::Verify(format!(
                    "value {}: the data does not fill the shape",
                    e.value
                )));
            }
            w.u32(e.value);
            w.u8(e.data.dtype().tag());
            w.shape(&e.shape);
            w.raw(&e.leaf);
            w.raw(&e.proof.index.to_le_bytes());
            w.raw(&e.proof.leaf_count.to_le_bytes());
            w.u8(e.proof.siblings.len() as u8);
            for s in &e.proof.siblings {
                w.raw(&s.0);
            }
            w.data(&e.data);
        }
        if w.bytes.len() > BUNDLE_BYTES_MAX {
            return Err(JobError::Verify(format!(
                "the bundle is {} bytes, above {BUNDLE_BYTES_MAX}",
                w.bytes.len()
            )));
        }
        Ok(w.bytes)
    }

    /// Decodes canonical bytes; every defect is a typed error naming the field and
    /// offset. Inputs must be in strictly increasing value order.
    pub fn decode(b: &[u8]) -> Result<EvidenceBundle> {
        crate::error::at_most("bundle", 0, b.len() as u64, BUNDLE_BYTES_MAX as u64)?;
        let mut r = Reader::new(b, 0);
        let at = r.offset();
        let magic: [u8; 4] = r.take("magic", 4)?.try_into().expect("4 bytes");
        if magic != BUNDLE_MAGIC {
            return Err(JobError::BadMagic {
                field: "magic",
                offset: at,
                expected: BUNDLE_MAGIC,
                found: magic,
            });
        }
        let at = r.offset();
        let v = r.u8("version")?;
        if v != BUNDLE_VERSION {
            return Err(JobError::UnknownTag {
                field: "version",
                offset: at,
                tag: v as u64,
            });
        }
        let task_id = Id(r.array32("task_id")?);
        let op = r.u32("op")?;
        let at = r.offset();
        let n = r.u8("inputs")? as usize;
        crate::error::at_most("inputs", at, n as u64, OP_ARGS_MAX as u64)?;
        let mut inputs: Vec<Evidence> = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.offset();
            let value = r.u32("value")?;
            if inputs.last().is_some_and(|p| p.value >= value) {
                return Err(JobError::Invalid {
                    field: "value",
                    offset: at,
                    message: "inputs must be in strictly increasing value order".into(),
                });
            }
            let dtype = r.dtype("dtype")?;
            let (shape, elements) = r.shape("shape")?;
            let leaf = r.array32("leaf")?;
            let index = u64::from_le_bytes(r.take("proof.index", 8)?.try_into().expect("8"));
            let leaf_count =
                u64::from_le_bytes(r.take("proof.leaf_count", 8)?.try_into().expect("8"));
            let at = r.offset();
            let ns = r.u8("proof.siblings")? as usize;
            crate::error::at_most("proof.siblings", at, ns as u64, PROOF_SIBLINGS_MAX as u64)?;
            let siblings = (0..ns)
                .map(|_| r.array32("proof.sibling").map(Id))
                .collect::<Result<Vec<Id>>>()?;
            let data = r.data("data", dtype, elements)?;
            inputs.push(Evidence {
                value,
                shape,
                data,
                leaf,
                proof: MerkleProof {
                    index,
                    leaf_count,
                    siblings,
                },
            });
        }
        r.finish()?;
        Ok(EvidenceBundle {
            task_id,
            op,
            inputs,
        })
    }

    /// SHA-256 of the canonical bytes (the bundle's content address).
    pub fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }
}

/// A challenge, ready to post: the op, the provider's leaf there with its proof under
/// the receipt's trace root, and the evidence bundle of the op's inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    /// The first differing op.
    pub op: u32,
    /// The provider's leaf for it.
    pub leaf: [u8; 32],
    /// Its inclusion proof.
    pub proof: MerkleProof,
    /// The op's agreed inputs.
    pub bundle: EvidenceBundle,
}

/// Builds the challenge of op `op` of a provider's trace `theirs`: the inputs are
/// replayed on the CPU reference and proven with `theirs`' own leaves, which only
/// verify when `op` is the first differing op.
pub fn build_challenge(
    job: &Job,
    task_id: Id,
    theirs: &[[u8; 32]],
    op: usize,
) -> Result<Challenge> {
    let leaf = *theirs
        .get(op)
        .ok_or_else(|| JobError::Verify(format!("the trace has no leaf {op}")))?;
    let proof = trace_proof(theirs, op)
        .ok_or_else(|| JobError::Verify(format!("no proof for leaf {op}")))?;
    let inputs = evidence_for(job, op, theirs)?;
    Ok(Challenge {
        op: op as u32,
        leaf,
        proof,
        bundle: EvidenceBundle {
            task_id,
            op: op as u32,
            inputs,
        },
    })
}

/// What the referee says about the disputed op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ruling {
    /// The op's correct output digest: any leaf that differs from it is wrong.
    Leaf([u8; 32]),
    /// The op fails on the reference from its agreed inputs: no honest run produces a
    /// leaf for it, so every leaf claimed for it is wrong.
    NoHonestLeaf(String),
    /// The blob is not a valid job matching what the chain recorded (it does not
    /// decode or validate, or its shape is not the spec's): the requester's fault, not a
    /// provider's; nobody's leaf is judged.
    VoidJob(String),
}

/// Checks a job blob against what the chain recorded: it decodes (a version 1 blob
/// with `model`, the bytes of the model the chain recorded for the job; a version 0
/// blob with none), validates, has the spec's shape and FLOP cost, every op is
/// disputable (its op-output inputs fit in one evidence bundle) and its outputs fit in
/// one result object. `Err` says why not (the job is void).
pub fn check_job_blob(
    blob: &[u8],
    model: Option<&[u8]>,
    shape: &JobShape,
    flops: u64,
) -> std::result::Result<Job, String> {
    let (job, plan, _) = checked_job_plan(blob, model, shape)?;
    if plan.total.flops != flops as u128 {
        return Err(format!(
            "the job costs {} FLOPs, the chain recorded {flops}",
            plan.total.flops
        ));
    }
    Ok(job)
}

/// Most FLOPs of one disputable op and of one segment (≈1.7·10¹⁰, a 2048³ matmul; the
/// referee runs it inside block execution).
pub const REFEREE_OP_FLOPS_MAX: u128 = crate::leaves::SEGMENT_FLOPS_MAX;
/// Most bytes one disputable op may produce (its output, or a materialised input), and
/// the tensors of one segment together.
pub const REFEREE_OP_BYTES_MAX: u128 = crate::leaves::SEGMENT_BYTES_MAX;
const _: () = assert!(crate::leaves::SEGMENT_EVIDENCE_BYTES_MAX < BUNDLE_BYTES_MAX as u128);

/// What adjudication needs of a blob, checked once: it decodes (with `model` as in
/// [`check_job_blob`]), validates, has the recorded shape, and every op is disputable —
/// its evidence bundle fits ([`op_evidence_bytes`] ≤ [`BUNDLE_BYTES_MAX`]) and the
/// referee can afford it (at most [`REFEREE_OP_FLOPS_MAX`] FLOPs and
/// [`REFEREE_OP_BYTES_MAX`] output bytes, alone and with its segment) — and its result
/// fits in a result object.
/// `Err` is why the job is void.
pub fn check_blob_for_disputes(
    blob: &[u8],
    model: Option<&[u8]>,
    shape: &JobShape,
) -> std::result::Result<Job, String> {
    checked_job_plan(blob, model, shape).map(|(job, _, _)| job)
}

/// [`check_blob_for_disputes`], with the job's validated plan and its trace plan.
pub fn checked_job_plan(
    blob: &[u8],
    model: Option<&[u8]>,
    shape: &JobShape,
) -> std::result::Result<(Job, crate::program::Plan, crate::leaves::TracePlan), String> {
    let job =
        Job::decode_resolved(blob, model).map_err(|e| format!("the blob is not a job: {e}"))?;
    if job.form == crate::format::JobForm::Inline && model.is_some() {
        return Err(
            "the chain recorded a model for the job, but its blob carries its own program".into(),
        );
    }
    let plan = validate(&job).map_err(|e| format!("the job does not validate: {e}"))?;
    match JobShape::of(&job) {
        Ok(s) if &s == shape => {}
        _ => return Err("the blob's ops or outputs are not the shape the chain recorded".into()),
    }
    let nc = job.program.consts.len();
    let trace = crate::leaves::TracePlan::of(&job.program, &plan);
    for op in 0..job.program.ops.len() {
        let b = op_evidence_bytes(&job, &plan, &trace, op);
        if b > BUNDLE_BYTES_MAX as u128 {
            return Err(format!(
                "op {op} reads {b} bytes of op outputs, more than an evidence bundle holds \
                 ({BUNDLE_BYTES_MAX}): it could not be disputed"
            ));
        }
        let flops = plan.costs[op].flops;
        if flops > REFEREE_OP_FLOPS_MAX {
            return Err(format!(
                "op {op} costs {flops} FLOPs, more than the referee runs ({REFEREE_OP_FLOPS_MAX})"
            ));
        }
        let v = &plan.values[nc + op];
        let out = v.layout.numel() as u128 * v.dtype.size_bytes() as u128;
        if out > REFEREE_OP_BYTES_MAX {
            return Err(format!(
                "op {op} produces {out} bytes, more than the referee holds ({REFEREE_OP_BYTES_MAX})"
            ));
        }
        // A committed op's dispute runs its whole segment (derived ops are never
        // disputed alone). The trace plan keeps every segment it fused within these
        // bounds, so only an op over them on its own can fail here.
        if trace.dispute_flops(op) > REFEREE_OP_FLOPS_MAX
            || (trace.kinds[op] != crate::leaves::LeafKind::Derived
                && trace.bytes[op] > REFEREE_OP_BYTES_MAX)
        {
            return Err(format!(
                "op {op}'s segment costs {} FLOPs and {} bytes, more than the referee runs \
                 ({REFEREE_OP_FLOPS_MAX} FLOPs, {REFEREE_OP_BYTES_MAX} bytes)",
                trace.flops[op], trace.bytes[op]
            ));
        }
    }
    for o in &job.program.outputs {
        let shape = plan.values[o.value as usize].layout.shape();
        if shape
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(*d as u64))
            .is_none()
        {
            return Err(format!(
                "output {:?} has a shape whose element count overflows: a result object \
                 cannot carry it",
                o.name
            ));
        }
    }
    let rb = crate::result::encoded_bytes(&job, &plan);
    if rb > crate::result::RESULT_BYTES_MAX as u128 {
        return Err(format!(
            "its outputs take {rb} bytes, more than a result object holds ({})",
            crate::result::RESULT_BYTES_MAX
        ));
    }
    Ok((job, plan, trace))
}

/// The encoded size of an evidence bundle for op `op` (an upper bound): the header,
/// and per value of its segment's frontier ([`crate::leaves::TracePlan`]; none for a
/// derived op) its value id, dtype, shape, leaf, Merkle proof (at most ⌈log₂ n_ops⌉
/// siblings) and data.
pub fn op_evidence_bytes(
    job: &Job,
    plan: &crate::program::Plan,
    trace: &crate::leaves::TracePlan,
    op: usize,
) -> u128 {
    let n_ops = job.program.ops.len().max(1);
    let siblings = (usize::BITS - (n_ops - 1).leading_zeros()) as u128;
    let header = (4 + 1 + 32 + 4 + 1) as u128;
    header
        + trace
            .dispute_inputs(op)
            .iter()
            .map(|a| {
                let v = &plan.values[*a as usize];
                let rank = v.layout.shape().len() as u128;
                let fixed = 4 + 1 + 1 + 4 * rank + 32 + 8 + 8 + 1 + 32 * siblings;
                fixed + v.layout.numel() as u128 * v.dtype.size_bytes() as u128
            })
            .sum::<u128>()
}

/// The one-op referee as a validating node runs it. `job_blob` must be the job's blob
/// (the caller checked its SHA-256 against the chain's record) and `model` the bytes of
/// the model the chain recorded for it (version 1 blobs); `shape` is the shape the
/// chain recorded; `trace_root` is the disputed receipt's. `Err` means the
/// *evidence* is bad (wrong op, missing input, a proof or digest that does not check):
/// the bundle proves nothing (who then loses is the chain's rule,
/// `docs/spec/verification.md`).
pub fn adjudicate(
    job_blob: &[u8],
    model: Option<&[u8]>,
    shape: &JobShape,
    trace_root: &Id,
    op: u32,
    bundle: &EvidenceBundle,
) -> Result<Ruling> {
    if op >= shape.n_ops {
        return Err(JobError::Verify(format!(
            "op {op} is past the job's {} ops",
            shape.n_ops
        )));
    }
    let job = match check_blob_for_disputes(job_blob, model, shape) {
        Ok(j) => j,
        Err(why) => return Ok(Ruling::VoidJob(why)),
    };
    adjudicate_decoded(&job, trace_root, op, bundle)
}

/// [`adjudicate`] for a job already checked with [`check_blob_for_disputes`] (a node
/// checks the blob once, then tries every named bundle).
pub fn adjudicate_decoded(
    job: &Job,
    trace_root: &Id,
    op: u32,
    bundle: &EvidenceBundle,
) -> Result<Ruling> {
    if bundle.op != op {
        return Err(JobError::Verify(format!(
            "the bundle is for op {}, the dispute for op {op}",
            bundle.op
        )));
    }
    if op as usize >= job.program.ops.len() {
        return Err(JobError::Verify(format!(
            "op {op} is past the job's {} ops",
            job.program.ops.len()
        )));
    }
    match referee(job, trace_root, op as usize, &bundle.inputs) {
        Ok(d) => Ok(Ruling::Leaf(d)),
        Err(e @ JobError::Referee(_)) => Err(e),
        Err(e) => Ok(Ruling::NoHonestLeaf(format!(
            "op {op} fails on the reference: {e}"
        ))),
    }
}
