//! The executor: runs a validated job on any fabric and commits to every op output.

use crate::error::{JobError, Result};
use crate::format::{Job, Normalisation};
use crate::leaves::{leaf_of, LeafKind, TracePlan, DERIVED_LEAF};
use crate::program::{node_name, InputSlot, Node, Plan};
use crate::validate::validate;
use blocktorch::compose::apply_view;
use blocktorch::{output_digest_sha256, DType, Fabric, FabricTensor, HostData, Layout};
use sha2::{Digest as _, Sha256};
use std::time::Instant;
use tb_primitives::{merkle_proof, merkle_root, merkle_verify, Id, MerkleProof};

/// Op outputs waiting to be hashed on the hashing thread, at most.
pub const HASH_QUEUE: usize = 4;
/// Op outputs of at most this many bytes are hashed on the executing thread (64 KiB).
pub const INLINE_HASH_BYTES: usize = 64 * 1024;
/// Bytes of op outputs that may wait for their leaves to be hashed in the background
/// on a fabric that hashes on its own workers (4 MiB), beyond the newest one, which is
/// always left to them: past it the executor waits for the oldest (helping hash it)
/// before it runs the next op. Small, so the outputs are freed soon and their memory
/// reused: with 64 MiB, MiniLM's trace cost 28–40 % over its bare ops instead of
/// 4–6 % (`BENCHMARKS.md`).
pub const DEFERRED_HASH_BYTES_MAX: usize = 4 << 20;

/// Domain of the trace Merkle tree.
pub const TRACE_DOMAIN: &[u8] = b"TB/job/trace/v1";

/// Whether the job must have been built for this fabric's kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayMode {
    /// Refuse a job whose kernel digest is not the fabric's.
    #[default]
    Strict,
    /// Run it anyway (results are bit-identical across fabrics); the result records it.
    CrossFabric,
}

/// Executor options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Kernel digest policy.
    pub replay: ReplayMode,
    /// Reset the (process-global) allocation profiler first and return its epoch.
    pub profile: bool,
}

/// One declared output, downloaded.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputTensor {
    /// Its name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: HostData,
    /// Its `output_digest_sha256`.
    pub digest: [u8; 32],
}

/// What a run gives.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecResult {
    /// The declared outputs.
    pub outputs: Vec<OutputTensor>,
    /// The job's output digest: [`job_output_digest`] of the outputs' digests.
    pub output_digest: [u8; 32],
    /// Every op's trace leaf, in program order (what each commits to:
    /// [`crate::leaves`]).
    pub op_digests: Vec<[u8; 32]>,
    /// Merkle root over `op_digests` under [`TRACE_DOMAIN`].
    pub trace_root: Id,
    /// Ops run.
    pub n_ops: usize,
    /// `tensor_profile_epoch` after the run, when profiling was asked for.
    pub profile_epoch: Option<[u8; 32]>,
    /// Whether the job ran in cross-fabric replay mode with a foreign kernel digest.
    pub cross_fabric: bool,
    /// Fabric name.
    pub fabric: String,
    /// Fabric device description.
    pub device: String,
    /// The fabric's kernel variant digest.
    pub kernel_variant_digest: [u8; 32],
    /// Wall time of the run, microseconds.
    pub elapsed_us: u64,
}

/// The job's output digest (what a receipt's `output_digest_sha256` commits to) from
/// its declared outputs' digests, in declaration order: the output's digest when there
/// is one output, else [`combine_output_digests`] of all of them.
pub fn job_output_digest(digests: &[[u8; 32]]) -> [u8; 32] {
    match digests {
        [one] => *one,
        _ => combine_output_digests(digests),
    }
}

/// The digest of several outputs: SHA-256 over `"BTOUT0"`, the count (u32 LE) and
/// each output's digest in declaration order.
pub fn combine_output_digests(digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"BTOUT0");
    h.update((digests.len() as u32).to_le_bytes());
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// The trace root of a leaf list.
pub fn trace_root(leaves: &[[u8; 32]]) -> Id {
    merkle_root(TRACE_DOMAIN, leaves)
}

/// The inclusion proof of leaf `op`.
pub fn trace_proof(leaves: &[[u8; 32]], op: usize) -> Option<MerkleProof> {
    merkle_proof(TRACE_DOMAIN, leaves, op)
}

/// Checks that `leaf` is leaf `proof.index` under `root`.
pub fn verify_trace_proof(root: &Id, leaf: &[u8; 32], proof: &MerkleProof) -> bool {
    merkle_verify(TRACE_DOMAIN, root, leaf, proof)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The program's main input as the runtime sees it: the strided input bytes gathered
/// into row-major order, then normalised.
pub fn main_input(job: &Job) -> Result<HostData> {
    let d = &job.descriptor;
    let layout =
        Layout::from_parts(d.shape.clone(), d.strides.clone(), 0).map_err(|e| JobError::Op {
            op: 0,
            name: "input".into(),
            source: e,
        })?;
    // Row by row (one copy of a contiguous input), as `gather(layout.offsets())` orders it.
    let dense = job.input.gather_layout(&layout);
    Ok(match (d.normalisation, dense) {
        (Normalisation::Bytes255, HostData::U8(v)) => {
            HostData::F32(v.into_iter().map(|b| b as f32 / 255.0).collect())
        }
        (_, other) => other,
    })
}

/// The host data an input slot provides.
pub(crate) fn slot_data(job: &Job, slot: InputSlot) -> Result<(HostData, Vec<usize>)> {
    let d = &job.descriptor;
    let missing = || JobError::Referee(format!("the descriptor has no {slot:?} input"));
    Ok(match slot {
        InputSlot::Main => (main_input(job)?, d.shape.clone()),
        InputSlot::Mask => {
            let m = d.attention_mask.as_ref().ok_or_else(missing)?;
            (m.data.clone(), m.shape.clone())
        }
        InputSlot::Padding => {
            let p = d.padding_token.ok_or_else(missing)?;
            let p = i32::try_from(p)
                .map_err(|_| JobError::Referee(format!("padding token {p} is above i32::MAX")))?;
            (HostData::I32(vec![p]), vec![])
        }
        InputSlot::Bias(i) => {
            let b = d.bias.get(i as usize).ok_or_else(missing)?;
            (b.data.clone(), b.shape.clone())
        }
    })
}

/// Runs op `op` (its node `node`) on already-placed arguments; a fabric's refusal
/// names the op.
pub(crate) fn run_node(
    fabric: &dyn Fabric,
    job: &Job,
    op: usize,
    node: &Node,
    args: &[&FabricTensor],
) -> std::result::Result<FabricTensor, JobError> {
    let tensor_err = |source| JobError::Execution {
        op,
        name: node_name(node),
        source,
    };
    match node {
        Node::Input(slot) => {
            let (data, shape) = slot_data(job, *slot)?;
            fabric.upload_owned(data, &shape).map_err(tensor_err)
        }
        Node::Prim(p) => fabric.execute(p, args).map_err(tensor_err),
        Node::View(v) => {
            let a = args
                .first()
                .ok_or_else(|| JobError::Referee("a view takes one argument".into()))?;
            apply_view(a, v).map_err(tensor_err)
        }
    }
}

/// Validates and runs `job` on `fabric`.
pub fn execute(job: &Job, fabric: &dyn Fabric, opts: ExecOptions) -> Result<ExecResult> {
    let plan = validate(job)?;
    execute_plan(job, &plan, fabric, opts)
}

/// Runs `job` with an already computed [`Plan`].
pub fn execute_plan(
    job: &Job,
    plan: &Plan,
    fabric: &dyn Fabric,
    opts: ExecOptions,
) -> Result<ExecResult> {
    execute_plan_with(job, plan, fabric, None, opts)
}

/// Runs `job` with an already computed [`Plan`], its constants taken from `prepared`
/// (one slot per constant, uploaded to `fabric` before: `PreparedModel`) when given
/// and the run is not profiled, else uploaded now.
pub(crate) fn execute_plan_with(
    job: &Job,
    plan: &Plan,
    fabric: &dyn Fabric,
    prepared: Option<&[Option<FabricTensor>]>,
    opts: ExecOptions,
) -> Result<ExecResult> {
    let kvd = fabric.kernel_variant_digest();
    let cross = kvd != job.kernel_digest;
    if cross && opts.replay == ReplayMode::Strict {
        return Err(JobError::KernelDigestMismatch {
            job: hex(&job.kernel_digest),
            fabric: hex(&kvd),
        });
    }
    if opts.profile {
        blocktorch::tensor_profile_reset();
    }
    let start = Instant::now();
    let p = &job.program;
    let nc = p.consts.len();
    let mut live: Vec<Option<FabricTensor>> = vec![None; nc + p.ops.len()];
    // A profiled run uploads its constants, so that its profile epoch records them.
    match prepared.filter(|_| !opts.profile) {
        Some(prepared) => {
            for (slot, c) in live.iter_mut().zip(prepared) {
                slot.clone_from(c);
            }
        }
        None => upload_consts(job, plan, fabric, &mut live)?,
    }
    let is_output = |v: usize| p.outputs.iter().any(|o| o.value as usize == v);
    let trace_plan = TracePlan::of(p, plan);
    let kinds = &trace_plan.kinds;
    let leaf_err = |i: usize, source| JobError::Execution {
        op: i,
        name: node_name(&p.ops[i].node),
        source,
    };
    // A derived op's leaf is fixed: nothing to hash. A small output is hashed on the caller
    // (handing it to another thread costs more than hashing it); a large one on a
    // second thread while later ops run, so the trace costs what the hashing costs
    // beyond the compute it overlaps. A bounded queue keeps at most HASH_QUEUE outputs
    // alive for it; the thread starts at the first large output.
    // A fabric that hashes on its own workers (the CPU) is given every content leaf
    // to hash in the background (`Fabric::trace_leaf_deferred`): its workers hash
    // between kernels, in the time they would wait for the next one, and a thread of
    // ours beside them would only compete with them for the cores. At most
    // DEFERRED_HASH_BYTES_MAX of outputs, and the newest, wait for their leaves.
    let inline_all = fabric.hashes_on_its_workers();
    let mut op_digests: Vec<[u8; 32]> = vec![DERIVED_LEAF; p.ops.len()];
    let mut deferred: std::collections::VecDeque<(usize, usize, blocktorch::PendingLeaf)> =
        Default::default();
    let mut deferred_bytes = 0usize;
    let ops_result: Result<()> = std::thread::scope(|s| {
        type Offload<'s> = (
            std::sync::mpsc::SyncSender<(usize, FabricTensor)>,
            std::thread::ScopedJoinHandle<'s, Result<Vec<(usize, [u8; 32])>>>,
        );
        let mut offload: Option<Offload<'_>> = None;
        let run = (|| -> Result<()> {
            for (i, op) in p.ops.iter().enumerate() {
                let args: Vec<&FabricTensor> = op
                    .args
                    .iter()
                    .map(|a| {
                        live[*a as usize]
                            .as_ref()
                            .ok_or_else(|| JobError::Execution {
                                op: i,
                                name: node_name(&op.node),
                                source: blocktorch::TensorError::InvalidArgument {
                                    op: "executor",
                                    message: format!("value {a} was released before its last use"),
                                },
                            })
                    })
                    .collect::<Result<_>>()?;
                let out = run_node(fabric, job, i, &op.node, &args)?;
                let bytes = out
                    .layout()
                    .numel()
                    .saturating_mul(out.dtype().size_bytes());
                if kinds[i] == LeafKind::Derived {
                    // Never hashed: its leaf is DERIVED_LEAF, already in place.
                } else if inline_all && kinds[i] == LeafKind::Content {
                    deferred.push_back((i, bytes, fabric.trace_leaf_deferred(&out)));
                    deferred_bytes = deferred_bytes.saturating_add(bytes);
                    while deferred_bytes > DEFERRED_HASH_BYTES_MAX && deferred.len() > 1 {
                        let Some((j, b, leaf)) = deferred.pop_front() else {
                            break;
                        };
                        op_digests[j] = leaf.wait().map_err(|e| leaf_err(j, e))?;
                        deferred_bytes -= b;
                    }
                } else if bytes <= INLINE_HASH_BYTES || inline_all {
                    op_digests[i] = leaf_of(fabric, kinds[i], &out).map_err(|e| leaf_err(i, e))?;
                } else {
                    let (tx, _) = offload.get_or_insert_with(|| {
                        let (tx, rx) =
                            std::sync::mpsc::sync_channel::<(usize, FabricTensor)>(HASH_QUEUE);
                        let hasher = s.spawn(move || {
                            let mut done = Vec::new();
                            for (i, t) in rx {
                                done.push((
                                    i,
                                    leaf_of(fabric, kinds[i], &t).map_err(|e| leaf_err(i, e))?,
                                ));
                            }
                            Ok(done)
                        });
                        (tx, hasher)
                    });
                    if tx.send((i, out.clone())).is_err() {
                        // The hasher stopped on an error; it reports it below.
                        break;
                    }
                }
                live[nc + i] = Some(out);
                // Release what no later op reads.
                for a in &op.args {
                    let a = *a as usize;
                    if plan.last_use[a] == Some(i) && !is_output(a) {
                        live[a] = None;
                    }
                }
                if plan.last_use[nc + i].is_none() && !is_output(nc + i) {
                    live[nc + i] = None;
                }
            }
            Ok(())
        })();
        // Every deferred leaf is waited for, even after an error, so no queued piece
        // outlives the run (the first error is the one reported).
        let mut leaves_result = Ok(());
        for (j, _, leaf) in deferred.drain(..) {
            match leaf.wait() {
                Ok(d) => op_digests[j] = d,
                Err(e) if leaves_result.is_ok() => leaves_result = Err(leaf_err(j, e)),
                Err(_) => {}
            }
        }
        if let Some((tx, hasher)) = offload {
            drop(tx);
            let done = hasher.join().map_err(|_| JobError::Execution {
                op: 0,
                name: "trace hashing".into(),
                source: blocktorch::TensorError::InvalidArgument {
                    op: "executor",
                    message: "the hashing thread panicked".into(),
                },
            })?;
            for (i, d) in done? {
                op_digests[i] = d;
            }
        }
        run.and(leaves_result)
    });
    ops_result?;
    let mut outputs = Vec::with_capacity(p.outputs.len());
    for o in &p.outputs {
        let v = o.value as usize;
        let t = live[v].as_ref().ok_or_else(|| JobError::Execution {
            op: v.saturating_sub(nc),
            name: format!("output {:?}", o.name),
            source: blocktorch::TensorError::InvalidArgument {
                op: "executor",
                message: "the output has no value".into(),
            },
        })?;
        let data = fabric.download(t).map_err(|source| JobError::Execution {
            op: v.saturating_sub(nc),
            name: format!("output {:?}", o.name),
            source,
        })?;
        // An op's output leaf is its output digest already; a constant's is computed.
        let digest = match v.checked_sub(nc) {
            Some(i) => op_digests[i],
            None => {
                output_digest_sha256(t.shape(), &data).map_err(|source| JobError::Execution {
                    op: 0,
                    name: format!("output {:?}", o.name),
                    source,
                })?
            }
        };
        outputs.push(OutputTensor {
            name: o.name.clone(),
            shape: t.shape().to_vec(),
            data,
            digest,
        });
    }
    let elapsed_us = start.elapsed().as_micros() as u64;
    let output_digest = job_output_digest(&outputs.iter().map(|o| o.digest).collect::<Vec<_>>());
    Ok(ExecResult {
        output_digest,
        trace_root: trace_root(&op_digests),
        n_ops: op_digests.len(),
        op_digests,
        outputs,
        profile_epoch: opts.profile.then(blocktorch::tensor_profile_epoch),
        cross_fabric: cross,
        fabric: fabric.name().to_string(),
        device: fabric.device_description(),
        kernel_variant_digest: kvd,
        elapsed_us,
    })
}

/// Uploads the constants the program reads or declares as outputs into their slots of
/// `live`.
pub(crate) fn upload_consts(
    job: &Job,
    plan: &Plan,
    fabric: &dyn Fabric,
    live: &mut [Option<FabricTensor>],
) -> Result<()> {
    let p = &job.program;
    for (i, c) in p.consts.iter().enumerate() {
        if plan.last_use[i].is_some() || p.outputs.iter().any(|o| o.value as usize == i) {
            live[i] =
                Some(
                    fabric
                        .upload(&c.data, &c.shape)
                        .map_err(|source| JobError::Execution {
                            op: 0,
                            name: format!("constant {:?}", c.name),
                            source,
                        })?,
                );
        }
    }
    Ok(())
}

/// The dtype an op's output has (from the plan), for referee inputs.
pub fn value_dtype(plan: &Plan, value: usize) -> Option<DType> {
    plan.values.get(value).map(|v| v.dtype)
}
