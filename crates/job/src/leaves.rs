//! What each trace leaf commits to (trace v1, `docs/spec/job-format-v0.md` §10).
//!
//! Every op has one leaf, in program order, of one of three kinds, fixed by the program
//! ([`TracePlan::of`]):
//!
//! - an op that is a **declared output** commits with its `output_digest_sha256`, so the
//!   receipt's output digest is read straight from the trace;
//! - a **derived** op holds [`DERIVED_LEAF`]: an op with one reader, which recomputes
//!   it in a dispute. Its value is fused into its reader's **segment**, the way a
//!   compiler fuses element-wise chains and a matmul's epilogue (bias, activation);
//! - every other op's leaf is its **content leaf**, `blocktorch::trace_leaf` (BLAKE3).
//!
//! A dispute over a committed op (output or content) re-executes its segment — the op
//! and the derived ops that feed it, transitively — from the segment's **frontier**: the
//! committed op outputs it reads (proven against their leaves) and the job's constants.
//! A segment holds at most one matmul, and is capped ([`SEGMENT_INPUTS_MAX`],
//! [`SEGMENT_FLOPS_MAX`], [`SEGMENT_BYTES_MAX`], [`SEGMENT_EVIDENCE_BYTES_MAX`]), so a
//! dispute re-runs about one op; a candidate that would break a rule stays committed.

use crate::format::JOB_BLOB_BYTES_MAX;
use crate::program::{Node, Plan, Program, OP_ARGS_MAX};
use blocktorch::{Fabric, FabricTensor, HostData, Prim, TensorError};

/// The leaf of a derived op: 32 zero bytes (no content leaf or digest equals it: that
/// would be a preimage of zero).
pub const DERIVED_LEAF: [u8; 32] = [0; 32];
/// Most committed op outputs one segment reads (an evidence bundle's input count).
pub const SEGMENT_INPUTS_MAX: usize = OP_ARGS_MAX;
/// Most FLOPs of one segment (what the referee runs for one dispute): 2³⁴.
pub const SEGMENT_FLOPS_MAX: u128 = 1 << 34;
/// Most bytes of the tensors one segment makes (views make none): 2³⁰.
pub const SEGMENT_BYTES_MAX: u128 = 1 << 30;
/// Most bytes of the committed op outputs one segment reads (an evidence bundle's data,
/// with 1 MiB left for its headers and proofs).
pub const SEGMENT_EVIDENCE_BYTES_MAX: u128 = (JOB_BLOB_BYTES_MAX - (1 << 20)) as u128;

/// What an op's leaf commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// A declared output: its `output_digest_sha256`.
    Output,
    /// Recomputed by its one reader in a dispute: [`DERIVED_LEAF`].
    Derived,
    /// Any other op: its content leaf (`blocktorch::trace_leaf`).
    Content,
}

/// The trace's shape over one program: every op's leaf kind and segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracePlan {
    /// Leaf kind of every op, in program order.
    pub kinds: Vec<LeafKind>,
    /// Per op: FLOPs of the segment it roots (for a derived op, of its own subtree).
    pub flops: Vec<u128>,
    /// Per op: bytes of the tensors of that segment (views count none).
    pub bytes: Vec<u128>,
    /// Per op: the committed op outputs that segment reads (value ids, ascending).
    pub frontier: Vec<Vec<u32>>,
}

/// Whether op `node` is **heavy**: a matmul (its cost grows faster than its tensors').
/// A segment holds at most one heavy op, so a dispute never re-runs two.
fn heavy(node: &Node) -> bool {
    matches!(node, Node::Prim(Prim::Matmul))
}

impl TracePlan {
    /// The trace plan of a validated program (`plan` from [`crate::validate`]).
    ///
    /// An op is **derived** when it is not a declared output, exactly one op reads it,
    /// and that reader takes it into its segment. Ops are visited in program order; at
    /// each op its distinct arguments that are op outputs are visited in increasing
    /// value id, and a candidate's segment is taken in when the merged segment keeps
    /// - at most one matmul, and none at all if the reader is a view (a matmul's
    ///   output is then committed where it is contiguous, not through the view);
    /// - at most [`SEGMENT_INPUTS_MAX`] committed inputs and
    ///   [`SEGMENT_EVIDENCE_BYTES_MAX`] bytes of them, counting each candidate not yet
    ///   visited as one more input of its own size;
    /// - at most [`SEGMENT_FLOPS_MAX`] FLOPs and [`SEGMENT_BYTES_MAX`] bytes of tensors.
    ///
    /// Otherwise the candidate is committed (content) and read as evidence.
    pub fn of(p: &Program, plan: &Plan) -> TracePlan {
        let nc = p.consts.len();
        let n = p.ops.len();
        let mut readers = vec![0u32; n];
        for op in &p.ops {
            let mut args: Vec<u32> = op.args.clone();
            args.sort_unstable();
            args.dedup();
            for a in args {
                if let Some(j) = (a as usize).checked_sub(nc) {
                    if let Some(r) = readers.get_mut(j) {
                        *r = r.saturating_add(1);
                    }
                }
            }
        }
        let mut kinds = vec![LeafKind::Content; n];
        for o in &p.outputs {
            if let Some(k) = (o.value as usize)
                .checked_sub(nc)
                .and_then(|i| kinds.get_mut(i))
            {
                *k = LeafKind::Output;
            }
        }
        let candidate: Vec<bool> = (0..n)
            .map(|i| kinds[i] == LeafKind::Content && readers[i] == 1)
            .collect();
        let out_bytes = |v: usize| -> u128 {
            plan.values.get(v).map_or(0, |x| {
                x.layout.numel() as u128 * x.dtype.size_bytes() as u128
            })
        };
        let mut flops = Vec::with_capacity(n);
        let mut bytes = Vec::with_capacity(n);
        let mut frontier: Vec<Vec<u32>> = Vec::with_capacity(n);
        let mut heavies: Vec<u8> = Vec::with_capacity(n);
        for (i, op) in p.ops.iter().enumerate() {
            let is_view = matches!(op.node, Node::View(_));
            let mut h = u8::from(heavy(&op.node));
            let own_bytes = match op.node {
                Node::View(_) => 0,
                _ => out_bytes(nc + i),
            };
            let mut f = plan.costs.get(i).map_or(0, |c| c.flops);
            let mut b = own_bytes;
            let mut front: Vec<u32> = Vec::new();
            let mut args: Vec<u32> = op
                .args
                .iter()
                .copied()
                .filter(|a| (*a as usize) >= nc && (*a as usize) < nc + i)
                .collect();
            args.sort_unstable();
            args.dedup();
            // Committed arguments are inputs whatever happens.
            for &a in args.iter().filter(|a| !candidate[**a as usize - nc]) {
                front.push(a);
            }
            let mut pending: Vec<u32> = args
                .iter()
                .copied()
                .filter(|a| candidate[*a as usize - nc])
                .collect();
            pending.reverse(); // popped in increasing value id
            while let Some(a) = pending.pop() {
                let j = a as usize - nc;
                let mut merged = front.clone();
                merged.extend_from_slice(&frontier[j]);
                merged.sort_unstable();
                merged.dedup();
                // The candidates still to visit may each have to be read as evidence.
                let reserve_count = pending.len();
                let reserve_bytes: u128 = pending.iter().map(|v| out_bytes(*v as usize)).sum();
                let ev_bytes: u128 = merged.iter().map(|v| out_bytes(*v as usize)).sum();
                let fits = h + heavies[j] <= 1
                    && (heavies[j] == 0 || !is_view)
                    && merged.len() + reserve_count <= SEGMENT_INPUTS_MAX
                    && ev_bytes.saturating_add(reserve_bytes) <= SEGMENT_EVIDENCE_BYTES_MAX
                    && f.saturating_add(flops[j]) <= SEGMENT_FLOPS_MAX
                    && b.saturating_add(bytes[j]) <= SEGMENT_BYTES_MAX;
                if fits {
                    kinds[j] = LeafKind::Derived;
                    h += heavies[j];
                    f = f.saturating_add(flops[j]);
                    b = b.saturating_add(bytes[j]);
                    front = merged;
                } else {
                    front.push(a);
                    front.sort_unstable();
                    front.dedup();
                }
            }
            front.sort_unstable();
            heavies.push(h);
            flops.push(f);
            bytes.push(b);
            frontier.push(front);
        }
        TracePlan {
            kinds,
            flops,
            bytes,
            frontier,
        }
    }

    /// The committed op outputs (value ids, ascending) a dispute over op `op` reads as
    /// evidence: its segment's frontier, none for a derived op (its leaf is fixed) or
    /// an op past the program.
    pub fn dispute_inputs(&self, op: usize) -> &[u32] {
        match self.kinds.get(op) {
            Some(LeafKind::Output | LeafKind::Content) => &self.frontier[op],
            _ => &[],
        }
    }

    /// The FLOPs the referee runs for a dispute over op `op`: its segment's, none for a
    /// derived op or an op past the program.
    pub fn dispute_flops(&self, op: usize) -> u128 {
        match self.kinds.get(op) {
            Some(LeafKind::Output | LeafKind::Content) => self.flops[op],
            _ => 0,
        }
    }

    /// The derived ops (value ids, ascending = program order) that op `op`'s segment
    /// recomputes. Empty for a derived op (never disputed on its own) or one past the
    /// program.
    pub fn segment(&self, p: &Program, op: usize) -> Vec<u32> {
        let nc = p.consts.len();
        if self.kinds.get(op).is_none_or(|k| *k == LeafKind::Derived) {
            return Vec::new();
        }
        let mut out = std::collections::BTreeSet::new();
        let mut stack: Vec<u32> = p.ops[op].args.clone();
        while let Some(a) = stack.pop() {
            let Some(j) = (a as usize).checked_sub(nc) else {
                continue;
            };
            if j >= op || self.kinds.get(j) != Some(&LeafKind::Derived) || !out.insert(a) {
                continue;
            }
            stack.extend_from_slice(&p.ops[j].args);
        }
        out.into_iter().collect()
    }
}

/// The leaf of an op's output `t` of kind `kind`, computed by `fabric`.
pub fn leaf_of(
    fabric: &dyn Fabric,
    kind: LeafKind,
    t: &FabricTensor,
) -> Result<[u8; 32], TensorError> {
    match kind {
        LeafKind::Output => fabric.digest(t),
        LeafKind::Derived => Ok(DERIVED_LEAF),
        LeafKind::Content => fabric.trace_leaf(t),
    }
}

/// The leaf of kind `kind` of host data (a dispute's evidence).
pub fn leaf_of_host(
    kind: LeafKind,
    shape: &[usize],
    data: &HostData,
) -> Result<[u8; 32], TensorError> {
    match kind {
        LeafKind::Output => blocktorch::output_digest_sha256(shape, data),
        LeafKind::Derived => Ok(DERIVED_LEAF),
        LeafKind::Content => blocktorch::trace_leaf(shape, data),
    }
}
