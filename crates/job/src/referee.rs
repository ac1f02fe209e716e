//! The single-op referee: re-executes op `i` of a job alone on the CPU reference, from
//! input tensors whose digests are proven against the disputed trace root.

use crate::error::{JobError, Result};
use crate::exec::{run_node, tensor_digest, trace_proof, verify_trace_proof};
use crate::format::Job;
use crate::validate::validate;
use blocktorch::{output_digest_sha256, Fabric, FabricTensor, HostData};
use tb_primitives::{Id, MerkleProof};

/// One agreed input of the disputed op: the output of an earlier op, with its leaf and
/// the proof that the leaf is in the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// The value id (constants first, then ops) this tensor is.
    pub value: u32,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its elements, row-major.
    pub data: HostData,
    /// The trace leaf claimed for it (its `output_digest_sha256`).
    pub leaf: [u8; 32],
    /// Inclusion proof of `leaf` at index `value - constants`.
    pub proof: MerkleProof,
}

/// Re-executes op `op` of `job` on the CPU reference and returns its output digest.
/// (It runs on the process's default CPU fabric — SIMD and threads from the
/// environment — which gives the reference's bits in every configuration.)
///
/// Constants and input slots come from the job itself. Every argument that is an
/// earlier op's output must be given in `evidence`: its data must hash to its leaf, the
/// leaf must be proven at that op's index under `trace_root`, and its dtype and shape
/// must be what validation infers. Anything else is refused with `JobError::Referee`.
pub fn referee(job: &Job, trace_root: &Id, op: usize, evidence: &[Evidence]) -> Result<[u8; 32]> {
    let plan = validate(job)?;
    let p = &job.program;
    let nc = p.consts.len();
    let o = p.ops.get(op).ok_or_else(|| {
        JobError::Referee(format!("op {op} is past the program's {} ops", p.ops.len()))
    })?;
    // Every CPU configuration gives the reference's bits; the default one is the fastest.
    let cpu = blocktorch::cpu::default_fabric();
    let mut args: Vec<FabricTensor> = Vec::with_capacity(o.args.len());
    for a in &o.args {
        let v = *a as usize;
        let info = &plan.values[v];
        let t = if v < nc {
            let c = &p.consts[v];
            cpu.upload(&c.data, &c.shape)
                .map_err(|e| JobError::Referee(format!("constant {v}: {e}")))?
        } else {
            let e = evidence.iter().find(|e| e.value == *a).ok_or_else(|| {
                JobError::Referee(format!("no evidence for value {v} (op {})", v - nc))
            })?;
            if e.proof.index != (v - nc) as u64 || e.proof.leaf_count != p.ops.len() as u64 {
                return Err(JobError::Referee(format!(
                    "the proof for value {v} is for leaf {} of {}, not leaf {} of {}",
                    e.proof.index,
                    e.proof.leaf_count,
                    v - nc,
                    p.ops.len()
                )));
            }
            if !verify_trace_proof(trace_root, &e.leaf, &e.proof) {
                return Err(JobError::Referee(format!(
                    "the leaf of value {v} is not in the trace"
                )));
            }
            if e.data.dtype() != info.dtype || e.shape != info.layout.shape() {
                return Err(JobError::Referee(format!(
                    "value {v} is {:?} {:?}, the program makes it {:?} {:?}",
                    e.data.dtype(),
                    e.shape,
                    info.dtype,
                    info.layout.shape()
                )));
            }
            let d = output_digest_sha256(&e.shape, &e.data)
                .map_err(|err| JobError::Referee(format!("value {v}: {err}")))?;
            if d != e.leaf {
                return Err(JobError::Referee(format!(
                    "the data of value {v} does not hash to its leaf"
                )));
            }
            cpu.upload(&e.data, &e.shape)
                .map_err(|err| JobError::Referee(format!("value {v}: {err}")))?
        };
        args.push(t);
    }
    let refs: Vec<&FabricTensor> = args.iter().collect();
    let out = run_node(cpu, job, &o.node, &refs)?;
    tensor_digest(cpu, &out).map_err(|source| JobError::Execution {
        op,
        name: crate::program::node_name(&o.node),
        source,
    })
}

/// The host data of the values `wanted` (value ids), from a run of `job` on `fabric`
/// (any kernel digest: this is a replay).
pub fn replay_values(
    job: &Job,
    fabric: &dyn Fabric,
    wanted: &[u32],
) -> Result<Vec<(Vec<usize>, HostData)>> {
    let plan = validate(job)?;
    let p = &job.program;
    let nc = p.consts.len();
    let last = wanted.iter().map(|v| *v as usize).max().unwrap_or(0);
    let keep = |v: usize| wanted.contains(&(v as u32));
    let mut live: Vec<Option<FabricTensor>> = vec![None; nc + p.ops.len()];
    for (i, c) in p.consts.iter().enumerate() {
        if plan.last_use[i].is_some() || keep(i) {
            live[i] = Some(
                fabric
                    .upload(&c.data, &c.shape)
                    .map_err(|e| JobError::Referee(format!("constant {i}: {e}")))?,
            );
        }
    }
    for (i, op) in p.ops.iter().enumerate() {
        if nc + i > last {
            break;
        }
        let args: Vec<&FabricTensor> = op
            .args
            .iter()
            .map(|a| {
                live[*a as usize]
                    .as_ref()
                    .ok_or_else(|| JobError::Referee(format!("value {a} missing")))
            })
            .collect::<Result<_>>()?;
        live[nc + i] = Some(run_node(fabric, job, &op.node, &args)?);
        // Release what no later op reads and nobody asked for, as the executor does.
        for a in &op.args {
            let a = *a as usize;
            if plan.last_use[a] == Some(i) && !keep(a) {
                live[a] = None;
            }
        }
        if plan.last_use[nc + i].is_none() && !keep(nc + i) {
            live[nc + i] = None;
        }
    }
    wanted
        .iter()
        .map(|v| {
            let t = live
                .get(*v as usize)
                .and_then(|t| t.as_ref())
                .ok_or_else(|| JobError::Referee(format!("value {v} is not in the program")))?;
            let data = fabric
                .download(t)
                .map_err(|e| JobError::Referee(format!("value {v}: {e}")))?;
            Ok((t.shape().to_vec(), data))
        })
        .collect()
}

/// The challenger's evidence for disputing op `op`: every argument that is an earlier
/// op's output, replayed on the CPU reference, with its leaf and proof taken from
/// `leaves` (the disputed trace). The replayed data hashes to the leaf only when the
/// provider's leaf for that input is honest — that is, when `op` is the first
/// differing op.
pub fn evidence_for(job: &Job, op: usize, leaves: &[[u8; 32]]) -> Result<Vec<Evidence>> {
    let p = &job.program;
    let nc = p.consts.len();
    let o = p.ops.get(op).ok_or_else(|| {
        JobError::Referee(format!("op {op} is past the program's {} ops", p.ops.len()))
    })?;
    let mut values: Vec<u32> = o
        .args
        .iter()
        .copied()
        .filter(|a| *a as usize >= nc)
        .collect();
    values.sort_unstable();
    values.dedup();
    let data = replay_values(job, blocktorch::cpu::default_fabric(), &values)?;
    values
        .into_iter()
        .zip(data)
        .map(|(v, (shape, data))| {
            let j = v as usize - nc;
            let leaf = *leaves
                .get(j)
                .ok_or_else(|| JobError::Referee(format!("the trace has no leaf {j}")))?;
            let proof = trace_proof(leaves, j)
                .ok_or_else(|| JobError::Referee(format!("no proof for leaf {j}")))?;
            Ok(Evidence {
                value: v,
                shape,
                data,
                leaf,
                proof,
            })
        })
        .collect()
}
