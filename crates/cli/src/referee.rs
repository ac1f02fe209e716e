//! `tb-cli job referee`: the dispute game from the challenger's side. The job is
//! replayed on the CPU reference; the arguments of the disputed op are proven against
//! the provider's trace root and handed to `tb_job::referee`, whose digest is compared
//! with the provider's leaf.

use crate::args::{Args, Spec};
use crate::job::{fields, read_job, read_leaves};
use crate::json::Json;
use crate::{CliError, Outcome, EXIT_PROVIDER_WRONG};
use blocktorch::CpuFabric;
use std::collections::BTreeSet;
use tb_job::leaves::{leaf_of_host, TracePlan};
use tb_job::program::node_name;
use tb_job::{evidence_for, execute, trace_root, validate, ExecOptions, ReplayMode};

pub const SPEC: Spec = Spec {
    command: "job referee",
    usage: "\
usage: tb-cli job referee FILE --op I [--trace LEAVES] [--model MODEL] [--json]

Plays the challenger's side of the dispute game for op I. The job is replayed on the
CPU reference; every committed op output that op I's segment reads (its arguments,
read through the derived ops that feed it) becomes evidence (its tensor, the provider's
leaf for it and that leaf's Merkle proof under the provider's trace root), and the
referee re-executes op I's segment from it. The verdict compares the referee's leaf with the
provider's leaf for op I.

The provider's trace is LEAVES (32 bytes per op, program order, as written by
`tb-cli job run --trace-out`); without --trace the replay's own trace is used.
If the provider's leaves for op I's inputs already differ from the replay, op I is not
the first differing op: the command fails and names the op to dispute instead.

options:
  --op I           the disputed op (0-based index into the op table)
  --trace LEAVES   the provider's trace leaves
  --model MODEL    the model a version 1 blob names
  --json           print one JSON object instead of text

exit status: 0 provider correct, 3 provider wrong at op I, 1 failure, 2 usage",
    flags: &["--json"],
    options: &[("--op", None), ("--trace", None), ("--model", None)],
    positionals: &["FILE"],
};

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::fail(e.to_string())
}

pub fn referee(a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let op = a.parsed::<usize>("--op", "an op index")?.ok_or_else(|| {
        CliError::usage("`job referee` needs --op I (try `tb-cli job referee --help`)")
    })?;
    let (_, job) = read_job(path, a.value("--model"))?;
    let plan = validate(&job)
        .map_err(|e| CliError::fail(format!("{path}: the job does not validate: {e}")))?;
    let p = &job.program;
    let (nc, n_ops) = (p.consts.len(), p.ops.len());
    if op >= n_ops {
        return Err(CliError::fail(match n_ops {
            0 => format!("--op {op}: the job has no ops"),
            n => format!("--op {op}: the job has {n} ops, numbered 0 to {}", n - 1),
        }));
    }
    let trace_path = a.value("--trace");
    let provider = trace_path.map(|t| read_leaves(t, n_ops)).transpose()?;

    // The honest replay: every op's digest on the CPU reference.
    let cpu = CpuFabric::reference();
    let replay = execute(
        &job,
        &cpu,
        ExecOptions {
            replay: ReplayMode::CrossFabric,
            profile: false,
        },
    )
    .map_err(|e| CliError::fail(format!("the replay on the CPU reference failed: {e}")))?;
    let honest = &replay.op_digests;
    let leaves = provider.as_ref().unwrap_or(honest);
    let root = trace_root(leaves);
    let first_diff = leaves.iter().zip(honest).position(|(l, h)| l != h);

    // The disputed op's evidence — the committed op outputs its segment reads (derived
    // ops are recomputed, `docs/spec/job-format-v0.md` §10) — must agree with the
    // replay, or an earlier op is where the provider first went wrong.
    let trace = TracePlan::of(p, &plan);
    let kinds = &trace.kinds;
    let op_args: BTreeSet<usize> = trace
        .dispute_inputs(op)
        .iter()
        .map(|v| *v as usize)
        .collect();
    if let Some(bad) = op_args
        .iter()
        .map(|v| v - nc)
        .find(|j| leaves[*j] != honest[*j])
    {
        let first = first_diff.unwrap_or(bad);
        return Err(CliError::fail(format!(
            "op {op} is not the first differing op: the provider's leaf for its input op {bad} already \
             differs from the replay; the first differing op is {first} (dispute --op {first})"
        )));
    }

    // The challenger's evidence: those values replayed on the CPU, each with its leaf
    // and proof from the disputed trace.
    let evidence = evidence_for(&job, op, leaves).map_err(fail)?;
    for e in &evidence {
        let j = e.value as usize - nc;
        let digest = leaf_of_host(kinds[j], &e.shape, &e.data).map_err(fail)?;
        if digest != honest[j] {
            return Err(CliError::fail(format!(
                "internal: the op-by-op replay of op {j} disagrees with the executor's leaf"
            )));
        }
    }
    let digest = tb_job::referee(&job, &root, op, &evidence).map_err(fail)?;
    if digest != honest[op] {
        return Err(CliError::fail(format!(
            "internal: the referee's digest for op {op} disagrees with the replay's leaf"
        )));
    }
    let correct = digest == leaves[op];
    let verdict = if correct {
        "provider correct".to_string()
    } else {
        format!("provider wrong at op {op}")
    };
    // An earlier op may differ without feeding op `op`; the verdict for op `op` stands,
    // but the challenger should know.
    let earlier = first_diff.filter(|f| *f < op);

    let out = if a.flag("--json") {
        let mut f = vec![
            ("op", Json::int(op as u64)),
            ("node", Json::str(node_name(&p.ops[op].node))),
            (
                "args",
                Json::Arr(p.ops[op].args.iter().map(|v| Json::int(*v)).collect()),
            ),
            (
                "evidence_ops",
                Json::Arr(op_args.iter().map(|v| Json::int((v - nc) as u64)).collect()),
            ),
            ("trace_root", Json::str(root.to_hex())),
            (
                "trace_source",
                Json::str(if provider.is_some() {
                    "provider"
                } else {
                    "replay"
                }),
            ),
            ("referee_digest", Json::hex(digest)),
            (
                "provider_leaf",
                provider.as_ref().map_or(Json::Null, |l| Json::hex(l[op])),
            ),
            ("replay_trace_root", Json::str(replay.trace_root.to_hex())),
            (
                "first_differing_op",
                first_diff.map_or(Json::Null, |f| Json::int(f as u64)),
            ),
            ("provider_correct", Json::Bool(correct)),
            ("verdict", Json::str(verdict.clone())),
        ];
        if earlier.is_some() {
            f.push((
                "note",
                Json::str("the provider's trace differs before this op, outside its inputs"),
            ));
        }
        format!("{}\n", Json::Obj(f).render())
    } else {
        let mut pairs = vec![
            ("op", format!("{op} ({})", node_name(&p.ops[op].node))),
            (
                "evidence",
                if op_args.is_empty() {
                    "none (constants and inputs only)".into()
                } else {
                    op_args
                        .iter()
                        .map(|v| format!("op {}", v - nc))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            (
                "trace_root",
                format!(
                    "{} ({})",
                    root.to_hex(),
                    if provider.is_some() {
                        "provider"
                    } else {
                        "replay"
                    }
                ),
            ),
            ("referee digest", hex::encode(digest)),
        ];
        if let Some(l) = &provider {
            pairs.push(("provider leaf", hex::encode(l[op])));
            pairs.push((
                "first differing op",
                first_diff.map_or("none (the provider's trace is the replay's)".into(), |f| {
                    f.to_string()
                }),
            ));
        }
        if let Some(f) = earlier {
            pairs.push((
                "note",
                format!(
                    "the provider's trace first differs at op {f}, which op {op} does not read"
                ),
            ));
        }
        let mut s = fields(&pairs, "");
        s += &verdict;
        s.push('\n');
        s
    };
    Ok(Outcome {
        stdout: out,
        code: if correct { 0 } else { EXIT_PROVIDER_WRONG },
    })
}
