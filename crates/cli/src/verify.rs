//! `tb-cli job verify`: the verifier's side of the protocol. The job is replayed on a
//! chosen fabric and its leaves compared with a provider's published trace; at the
//! first differing op the challenge is built (the provider's leaf with its Merkle proof,
//! and the evidence bundle of the op's inputs), ready to publish and post.

use crate::args::{Args, Spec};
use crate::job::{fields, read_job, read_leaves};
use crate::json::Json;
use crate::{CliError, Outcome, EXIT_PROVIDER_WRONG};
use tb_job::{build_challenge, first_divergence, replay, trace_root, validate, Job};
use tb_primitives::Id;

pub const SPEC: Spec = Spec {
    command: "job verify",
    usage: "\
usage: tb-cli job verify FILE --trace LEAVES [--fabric cpu|cuda|wgpu] [--threads N]
                         [--task-id HEX32] [--bundle-out BUNDLE] [--model MODEL]
                         [--json]

Replays the job on the fabric (any fabric gives the CPU reference's bits) and compares
its leaves with the provider's trace LEAVES (the published trace blob: 32 bytes per op,
program order, as `tb-cli job run --trace-out` writes it). When they differ, the first
differing op is the one to challenge: the command prints it, the provider's leaf there
and its Merkle proof under the provider's trace root, and writes the evidence bundle
(the op's input tensors, proven against the provider's own leaves) to BUNDLE. Publish
the bundle and the job blob, then post a `Challenge` naming the op, the leaf, the
proof and the bundle's SHA-256 (docs/spec/verification.md).

options:
  --trace LEAVES        the provider's trace
  --fabric NAME         cpu (default) or cuda
  --threads N           CPU threads (the CPU fabric only)
  --task-id HEX32       the chain's task id, recorded in the bundle (default zero)
  --bundle-out BUNDLE   where to write the evidence bundle when the trace differs
  --model MODEL         the model a version 1 blob names
  --json                print one JSON object instead of text

exit status: 0 the trace is the replay's, 3 it differs (a challenge was built),
             1 failure, 2 usage",
    flags: &["--json"],
    options: &[
        ("--trace", None),
        ("--fabric", None),
        ("--threads", None),
        ("--task-id", None),
        ("--bundle-out", None),
        ("--model", None),
    ],
    positionals: &["FILE"],
};

/// The replay's leaves of `job` on the fabric `fabric_args` named (any fabric gives
/// the CPU reference's bits). Shared by `job verify` and `compute replay`.
pub fn replay_leaves(
    job: &Job,
    fabric_name: &str,
    threads: Option<usize>,
) -> Result<Vec<[u8; 32]>, CliError> {
    let fabric = crate::run::open_fabric(fabric_name, threads)?;
    let run = replay(job, fabric.as_ref()).map_err(|e| {
        CliError::fail(format!(
            "the replay on the {fabric_name} fabric failed: {e}"
        ))
    })?;
    Ok(run.op_digests)
}

/// Where a provider's leaves first differ from the replay's.
pub struct Divergence {
    /// The first differing op (or, when the trace is shorter or longer than the
    /// program, the first op one of them lacks).
    pub op: usize,
    /// The op's node, when the program has that op.
    pub node: Option<String>,
    /// The provider's leaf there, if its trace has one.
    pub provider_leaf: Option<[u8; 32]>,
    /// The replay's leaf there, if the program has that op.
    pub replay_leaf: Option<[u8; 32]>,
}

impl Divergence {
    /// One line: the op, its node, and both leaves.
    pub fn describe(&self, theirs_len: usize, ours_len: usize) -> String {
        let leaf = |l: &Option<[u8; 32]>| l.map_or("(none)".to_string(), hex::encode);
        let mut s = format!(
            "first differing op {}{}: provider leaf {}, replay leaf {}",
            self.op,
            self.node
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            leaf(&self.provider_leaf),
            leaf(&self.replay_leaf)
        );
        if theirs_len != ours_len {
            s += &format!(" (the trace has {theirs_len} leaves, the job {ours_len} ops)");
        }
        s
    }
}

/// Compares a provider's leaves with the replay's; `None` when they agree.
pub fn divergence(job: &Job, ours: &[[u8; 32]], theirs: &[[u8; 32]]) -> Option<Divergence> {
    let op = first_divergence(ours, theirs)?;
    Some(Divergence {
        op,
        node: job
            .program
            .ops
            .get(op)
            .map(|o| tb_job::program::node_name(&o.node)),
        provider_leaf: theirs.get(op).copied(),
        replay_leaf: ours.get(op).copied(),
    })
}

pub fn verify(a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let (fabric_name, threads) = crate::run::fabric_args(a)?;
    let mut task = [0u8; 32];
    if let Some(h) = a.value("--task-id") {
        hex::decode_to_slice(h, &mut task)
            .map_err(|_| CliError::usage("--task-id: expected 64 hex digits"))?;
    }
    let trace_path = a.required("--trace")?;
    let (_, job) = read_job(path, a.value("--model"))?;
    validate(&job)
        .map_err(|e| CliError::fail(format!("{path}: the job does not validate: {e}")))?;
    let theirs = read_leaves(trace_path, job.program.ops.len())?;
    let ours = replay_leaves(&job, fabric_name, threads)?;
    let root = trace_root(&theirs);
    let Some(d) = divergence(&job, &ours, &theirs) else {
        let out = if a.flag("--json") {
            format!(
                "{}\n",
                Json::Obj(vec![
                    ("agrees", Json::Bool(true)),
                    ("trace_root", Json::str(root.to_hex())),
                    ("fabric", Json::str(fabric_name)),
                ])
                .render()
            )
        } else {
            format!(
                "{}the provider's trace is the replay's\n",
                fields(
                    &[
                        ("trace_root", root.to_hex()),
                        ("fabric", fabric_name.to_string())
                    ],
                    ""
                )
            )
        };
        return Ok(Outcome::ok(out));
    };
    let op = d.op;
    let c = build_challenge(&job, Id(task), &theirs, op)
        .map_err(|e| CliError::fail(format!("building the challenge of op {op}: {e}")))?;
    let bundle = c
        .bundle
        .encode()
        .map_err(|e| CliError::fail(format!("encoding the bundle: {e}")))?;
    let bundle_sha = tb_primitives::sha256_digest(&bundle).0;
    if let Some(out) = a.value("--bundle-out") {
        std::fs::write(out, &bundle).map_err(|e| CliError::fail(format!("{out}: {e}")))?;
    }
    let replay_leaf = d.replay_leaf.unwrap_or_default();
    let node = d.node.unwrap_or_default();
    let out = if a.flag("--json") {
        format!(
            "{}\n",
            Json::Obj(vec![
                ("agrees", Json::Bool(false)),
                ("op", Json::int(op as u64)),
                ("node", Json::str(node)),
                ("provider_leaf", Json::hex(c.leaf)),
                ("replay_leaf", Json::hex(replay_leaf)),
                ("trace_root", Json::str(root.to_hex())),
                (
                    "proof_siblings",
                    Json::Arr(
                        c.proof
                            .siblings
                            .iter()
                            .map(|s| Json::str(s.to_hex()))
                            .collect()
                    ),
                ),
                ("bundle_sha256", Json::hex(bundle_sha)),
                ("bundle_bytes", Json::int(bundle.len() as u64)),
                ("evidence_inputs", Json::int(c.bundle.inputs.len() as u64)),
                ("fabric", Json::str(fabric_name)),
            ])
            .render()
        )
    } else {
        let mut s = fields(
            &[
                ("first differing op", format!("{op} ({node})")),
                ("provider leaf", hex::encode(c.leaf)),
                ("replay leaf", hex::encode(replay_leaf)),
                ("trace_root", root.to_hex()),
                ("proof", format!("{} siblings", c.proof.siblings.len())),
                (
                    "bundle",
                    format!(
                        "{} ({} bytes, {} input tensors){}",
                        hex::encode(bundle_sha),
                        bundle.len(),
                        c.bundle.inputs.len(),
                        a.value("--bundle-out")
                            .map(|p| format!(" written to {p}"))
                            .unwrap_or_default()
                    ),
                ),
            ],
            "",
        );
        s += &format!("the provider's trace is wrong from op {op}: challenge it there\n");
        s
    };
    Ok(Outcome {
        stdout: out,
        code: EXIT_PROVIDER_WRONG,
    })
}
