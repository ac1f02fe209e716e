//! The single-op referee: re-executes op `i` of a job alone on the CPU reference, from
//! input tensors whose digests are proven against the disputed trace root.

use crate::error::{JobError, Result};
use crate::exec::{run_node, trace_proof, verify_trace_proof};
use crate::format::Job;
use crate::leaves::{leaf_of, leaf_of_host, LeafKind, TracePlan, DERIVED_LEAF};
use crate::prepared::PreparedModel;
use crate::validate::validate;
use blocktorch::{Fabric, FabricTensor, HostData};
use std::collections::BTreeMap;
use tb_primitives::{Id, MerkleProof};

/// One agreed input of the disputed op's segment: a committed op output it reads (in
/// `TracePlan::frontier`), with its leaf and the proof that the leaf is in the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// The value id (constants first, then ops) this tensor is.
    pub value: u32,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its elements, row-major.
    pub data: HostData,
    /// The trace leaf claimed for it (of its op's [`LeafKind`]).
    pub leaf: [u8; 32],
    /// Inclusion proof of `leaf` at index `value - constants`.
    pub proof: MerkleProof,
}

/// Re-executes op `op` of `job` on the CPU reference and returns its trace leaf.
/// (It runs on the process's default CPU fabric — SIMD and threads from the
/// environment — which gives the reference's bits in every configuration.)
///
/// A derived op has the fixed leaf `DERIVED_LEAF`: nothing runs and no evidence is
/// read. Otherwise the op's segment runs (`TracePlan::segment`: the derived ops that
/// feed it, in program order, then the op) from its frontier and the job's constants
/// and input slots. Every frontier value must be given in `evidence`: its data must hash
/// to its leaf (of that op's kind), the leaf must be proven at that op's index under
/// `trace_root`, and its dtype and shape must be what validation infers. Anything else
/// is refused with `JobError::Referee`.
pub fn referee(job: &Job, trace_root: &Id, op: usize, evidence: &[Evidence]) -> Result<[u8; 32]> {
    let plan = validate(job)?;
    let p = &job.program;
    let nc = p.consts.len();
    if op >= p.ops.len() {
        return Err(JobError::Referee(format!(
            "op {op} is past the program's {} ops",
            p.ops.len()
        )));
    }
    let tp = TracePlan::of(p, &plan);
    if tp.kinds[op] == LeafKind::Derived {
        return Ok(DERIVED_LEAF);
    }
    // Every CPU configuration gives the reference's bits; the default one is the fastest.
    let cpu = blocktorch::cpu::default_fabric();
    let mut values: BTreeMap<u32, FabricTensor> = BTreeMap::new();
    for &base in &tp.frontier[op] {
        let v = base as usize;
        let info = &plan.values[v];
        let e = evidence.iter().find(|e| e.value == base).ok_or_else(|| {
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
        let d = leaf_of_host(tp.kinds[v - nc], &e.shape, &e.data)
            .map_err(|err| JobError::Referee(format!("value {v}: {err}")))?;
        if d != e.leaf {
            return Err(JobError::Referee(format!(
                "the data of value {v} does not hash to its leaf"
            )));
        }
        let t = cpu
            .upload(&e.data, &e.shape)
            .map_err(|err| JobError::Referee(format!("value {v}: {err}")))?;
        values.insert(base, t);
    }
    let mut run = tp.segment(p, op);
    run.push((nc + op) as u32);
    for v in run {
        let i = v as usize - nc;
        let node = &p.ops[i];
        for a in &node.args {
            if (*a as usize) < nc && !values.contains_key(a) {
                let c = &p.consts[*a as usize];
                let t = cpu
                    .upload(&c.data, &c.shape)
                    .map_err(|e| JobError::Referee(format!("constant {a}: {e}")))?;
                values.insert(*a, t);
            }
        }
        let args: Vec<&FabricTensor> = node
            .args
            .iter()
            .map(|a| {
                values.get(a).ok_or_else(|| {
                    JobError::Referee(format!("value {a} is not in op {op}'s segment"))
                })
            })
            .collect::<Result<_>>()?;
        let out = run_node(cpu, job, i, &node.node, &args)?;
        values.insert(v, out);
    }
    let out = &values[&((nc + op) as u32)];
    leaf_of(cpu, tp.kinds[op], out).map_err(|source| JobError::Execution {
        op,
        name: crate::program::node_name(&p.ops[op].node),
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
    replay_values_with(job, fabric, None, wanted)
}

/// [`replay_values`] with the constants of `prepared` (the model's constants uploaded
/// to `fabric` before, [`PreparedModel`]): the same values.
pub fn replay_values_prepared(
    job: &Job,
    fabric: &dyn Fabric,
    prepared: &PreparedModel,
    wanted: &[u32],
) -> Result<Vec<(Vec<usize>, HostData)>> {
    replay_values_with(job, fabric, Some(prepared), wanted)
}

fn replay_values_with(
    job: &Job,
    fabric: &dyn Fabric,
    prepared: Option<&PreparedModel>,
    wanted: &[u32],
) -> Result<Vec<(Vec<usize>, HostData)>> {
    let plan = validate(job)?;
    let p = &job.program;
    let nc = p.consts.len();
    let last = wanted.iter().map(|v| *v as usize).max().unwrap_or(0);
    let keep = |v: usize| wanted.contains(&(v as u32));
    let mut live: Vec<Option<FabricTensor>> = vec![None; nc + p.ops.len()];
    if let Some(prepared) = prepared {
        for (slot, c) in live.iter_mut().zip(prepared.consts_for(job, fabric)?) {
            slot.clone_from(c);
        }
    }
    for (i, c) in p.consts.iter().enumerate() {
        if live[i].is_none() && (plan.last_use[i].is_some() || keep(i)) {
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
        live[nc + i] = Some(run_node(fabric, job, i, &op.node, &args)?);
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

/// The challenger's evidence for disputing op `op`: the committed base of every
/// value of its segment's frontier (`TracePlan::frontier`), replayed on the CPU
/// reference, with its leaf and proof taken from
/// `leaves` (the disputed trace). The replayed data hashes to the leaf only when the
/// provider's leaf for that input is honest — that is, when `op` is the first
/// differing op.
pub fn evidence_for(job: &Job, op: usize, leaves: &[[u8; 32]]) -> Result<Vec<Evidence>> {
    let p = &job.program;
    let nc = p.consts.len();
    if op >= p.ops.len() {
        return Err(JobError::Referee(format!(
            "op {op} is past the program's {} ops",
            p.ops.len()
        )));
    }
    let plan = validate(job)?;
    let tp = TracePlan::of(p, &plan);
    let values = tp.dispute_inputs(op).to_vec();
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
