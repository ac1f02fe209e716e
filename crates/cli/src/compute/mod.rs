//! `tb-cli compute ...`: BlockTorch jobs on a node's market.
//!
//! - `submit` checks a job blob here (`tb_job::validate`, `tb_job::JobShape::of`), asks
//!   the node who could serve it and at what price (`compute.estimate`; a redundancy no
//!   provider set can ever meet is refused unless `--force`), publishes the model a
//!   job names (once; `--by-reference` turns an inline blob into a model and a blob
//!   that names it) and the job blob at the pace the chain takes them
//!   (`publish.rs`), and submits the `SubmitJob`, all signed here; `--wait` follows the
//!   job and ends by writing or printing its verified result.
//! - `result` fetches a job's result object, recomputes every output digest and the
//!   combined `output_digest_sha256`, refuses one that does not match the accepted
//!   receipt, and writes it (safetensors, npy, JSON) or prints it, marked provisional
//!   until its challenge window closes and final after.
//! - `status`, `receipts` and `stats` print what the node knows (a failed job's
//!   reason included).
//! - `replay` re-executes the job here and compares each receipt's published trace
//!   with the replay (the same code as `job verify`).

use crate::args::{Args, Spec};
use crate::job::{fields, table};
use crate::node_cmds::{emit, hex_id};
use crate::rpc_client::{
    hid, ChainClient, Client, ComputeClient, EstimateJob, HexBytes, HexId, Reply as _,
};
use crate::verify::{divergence, replay_leaves};
use crate::wallet::{load_key, tokens, tokens_arg, Signer};
use crate::{CliError, Global, Outcome, EXIT_PROVIDER_WRONG};
use serde_json::{json, Value};
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};
use tb_chain::tx::{JobSpec, SubmitJob};
use tb_chain::TxPayload;
use tb_job::format::{JOB_BLOB_BYTES_MAX, MODEL_BYTES_MAX};
use tb_job::{decode_trace, trace_root, validate, Job, JobForm, JobShape};

/// Default `--deadline-blocks`: the job must be proven this many blocks after now.
pub const DEADLINE_BLOCKS_DEFAULT: u64 = 200;
/// Default `--timeout-secs` of `--wait`.
pub const WAIT_TIMEOUT_S_DEFAULT: u64 = 600;
/// Time between two polls of `--wait`.
pub const WAIT_POLL_MS: u64 = 500;
/// Largest blob `compute submit` also stores in the node's blob store with one
/// `compute.uploadBlob` (its hex must fit the node's default 8 MiB request limit).
pub const UPLOAD_BYTES_MAX: usize = 3 * 1024 * 1024;
/// Bytes read per `compute.getBlob` range when fetching an object (the node returns at
/// most 16 MiB a call).
pub const FETCH_RANGE_BYTES: u64 = 8 * 1024 * 1024;

const USAGE: &str = "\
usage: tb-cli compute COMMAND ...

commands:
  submit FILE --key K --max-price TOKENS   publish a job blob and submit the job
  result TASK [-o FILE]                    a job's verified result (provisional or final)
  status TASK                              a job's state, leases, receipts, disputes
  receipts TASK                            a job's receipts
  replay TASK                              replay a job here and check every receipt
  stats                                    the BlockTorch job timeline of the last blocks

TASK is a task id or the id of the SubmitJob transaction that created it.";

/// Every command of `compute`, for the completion tree (the first spec of a path wins).
pub(crate) const SPECS: &[&Spec] = &[
    &SUBMIT,
    &SUBMIT_TEXT,
    &RESULT,
    &STATUS,
    &RECEIPTS,
    &REPLAY,
    &STATS,
];

const SUBMIT: Spec = Spec {
    command: "compute submit",
    usage: "\
usage: tb-cli compute submit FILE --key K --max-price TOKENS [--redundancy N]
                             [--deadline-blocks N] [--lane L] [--by-reference] [--model MODEL]
                             [--force] [--dry-run]
                             [--wait [--provisional] [--timeout-secs S]
                                     [-o OUT [--format safetensors|npy|json]]] [--json]

Checks the job blob FILE (it must validate) and asks the node what the job would meet:
the providers that could ever serve it and those free now, the price of one replica
and the height it would be leased at (`compute.estimate`). A redundancy above the
providers that could ever serve it is refused (with --force it is submitted anyway,
and fails `unserved` at its deadline).

A blob that names its model (version 1, `job build --model-out`) needs the model on
chain: MODEL, if given, is published first (once: skipped when already there); without
it, the model is read back from the node to check the job. --by-reference turns a
version 0 blob into its model (published once) and a version 1 blob that names it, so
this and every later job of the model pay for their input only.

The blob and the model are published in PublishBlob chunks at the pace blocks take
them, resuming an interrupted publication (progress on stderr); the blob also goes to
the node's blob store. Then the job is submitted: its spec is the blob's SHA-256, size,
FLOP cost, shape and model, any kernel digest, model class 0, lane L (default 0), any
region.
MAX-PRICE × REDUNDANCY industrial tokens are escrowed; fees are paid in industrial
tokens. Prints the SubmitJob transaction id, which `compute status` and the other
commands accept until the task id is known.

options:
  --key K               the requester's key (a name in the keys directory, or a file)
  --max-price TOKENS    most paid per replica
  --redundancy N        replicas (default 1)
  --deadline-blocks N   blocks from now by which it must be proven (default 200)
  --lane L              the lane (its lease length: 0 fast, 1 domain, 2 macro; a job
                        whose result takes long to publish needs a longer one)
  --by-reference        submit a version 0 blob as its model and a blob naming it
  --model MODEL         the model file a version 1 blob names, published if needed
  --force               submit even when too few providers could ever serve it
  --dry-run             only print the estimate; submit nothing
  --wait                follow the job (progress on stderr) until its result is final
                        (its challenge window closed: exit 0) or it fails (exit 1, with
                        its reason); then write or print the verified result
  --provisional         with --wait, stop at the first accepted receipt (provisional)
  --timeout-secs S      give up waiting after S seconds (default 600; exit 1)
  -o, --out OUT         with --wait, write the result to OUT
  --format F            safetensors (default), npy or json (default from OUT's extension)
  --json                print JSON: the submission, and with --wait the result",
    flags: &[
        "--json",
        "--wait",
        "--by-reference",
        "--force",
        "--dry-run",
        "--provisional",
    ],
    options: &[
        ("--key", None),
        ("--max-price", None),
        ("--redundancy", None),
        ("--deadline-blocks", None),
        ("--lane", None),
        ("--timeout-secs", None),
        ("--keys-dir", None),
        ("--model", None),
        ("--out", Some("-o")),
        ("--format", None),
    ],
    positionals: &["FILE"],
};

const SUBMIT_TEXT: Spec = Spec {
    command: "compute submit",
    usage: "\
usage: tb-cli compute submit --model MODEL --tokenizer T --text S [--text S]... [--seq-len L]
                             --key K --max-price TOKENS [--redundancy N] [--deadline-blocks N]
                             [--lane L] [--force] [--dry-run]
                             [--wait [--provisional] [--timeout-secs S]
                                     [-o OUT [--format safetensors|npy|json]]] [--json]

Submits the job of texts for MODEL — a model file (from `model import`; published first
if it is not on chain yet) or the SHA-256 of a published model (read back from the
node) — tokenised with T (the model's tokenizer.json; padded and truncated to L, by
default the tokenizer's own length) into the token ids and attention mask the model was
imported for (one text per row of its batch). The job names the model (version 1), so
it pays for its input only. Everything else is `compute submit FILE`'s (see its help,
`tb-cli compute submit FILE --help`); with --wait, the verified embeddings.",
    flags: &["--json", "--wait", "--force", "--dry-run", "--provisional"],
    options: &[
        ("--key", None),
        ("--max-price", None),
        ("--redundancy", None),
        ("--deadline-blocks", None),
        ("--lane", None),
        ("--timeout-secs", None),
        ("--keys-dir", None),
        ("--model", None),
        ("--tokenizer", None),
        ("--text", None),
        ("--seq-len", None),
        ("--out", Some("-o")),
        ("--format", None),
    ],
    positionals: &[],
};

const RESULT: Spec = Spec {
    command: "compute result",
    usage: "\
usage: tb-cli compute result TASK [-o OUT] [--format safetensors|npy|json] [--json]

Fetches the job's result object (the outputs its standing receipt commits to),
recomputes every output digest and the combined output_digest_sha256, and refuses one
that does not match the accepted receipt (exit 1). The result is available as soon as a
receipt is accepted: it is `provisional` while its challenge window is open,
`challenged` or `disputed` while a dispute of it is open, and `final` once the window
closed unrefuted. A failed job prints its reason (exit 1).

Without -o, prints each output's name, dtype, shape, digest and first elements (with
--json: every element). With -o, writes OUT: safetensors (every output by name, the
output digest in the metadata), npy (one file per output: OUT itself for one, else
OUT's stem + .NAME.npy), or json.

TASK is a task id or the id of the SubmitJob transaction that created it.",
    flags: &["--json"],
    options: &[("--out", Some("-o")), ("--format", None)],
    positionals: &["TASK"],
};

const STATUS: Spec = Spec {
    command: "compute status",
    usage: "\
usage: tb-cli compute status TASK [--json]

Prints a job: its state, spec, escrow, leases, receipts and disputes. TASK is a task id
or the id of the SubmitJob transaction that created it.",
    flags: &["--json"],
    options: &[],
    positionals: &["TASK"],
};

const RECEIPTS: Spec = Spec {
    command: "compute receipts",
    usage: "\
usage: tb-cli compute receipts TASK [--json]

Prints a job's receipts: provider, height, output digest, trace root, trace SHA-256,
latency, and whether each is payable or refuted.",
    flags: &["--json"],
    options: &[],
    positionals: &["TASK"],
};

const REPLAY: Spec = Spec {
    command: "compute replay",
    usage: "\
usage: tb-cli compute replay TASK [--fabric cpu|cuda|wgpu] [--threads N] [--json]

Fetches the job's blob (and the model a job by reference names) and every receipt's
published trace from the node, replays the job here (any fabric gives the CPU reference's bits) and reports, per receipt, whether
its trace is the replay's or the first op where it differs. To challenge a differing
trace, fetch it and use `tb-cli job verify`.

exit status: 0 every trace is the replay's, 3 one differs, 1 failure (a trace missing
             or not this receipt's), 2 usage",
    flags: &["--json"],
    options: &[("--fabric", None), ("--threads", None)],
    positionals: &["TASK"],
};

const STATS: Spec = Spec {
    command: "compute stats",
    usage: "\
usage: tb-cli compute stats [--json]

Prints the BlockTorch job timeline of the node's last five blocks: each block's
receipts (task, provider, fabric, kernel digest, benchmark commit, proof latency) and
proof-latency buckets; then the node's receipt-check latency and the queues.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

/// Runs `tb-cli compute ARGS...`.
pub fn dispatch(g: &Global, args: &[String]) -> Result<Outcome, CliError> {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => Ok(Outcome::ok(format!("{USAGE}\n"))),
        Some("submit") if crate::text::wants_text(rest) => {
            crate::with_spec(g, &SUBMIT_TEXT, rest, submit)
        }
        Some("submit") => crate::with_spec(g, &SUBMIT, rest, submit),
        Some("result") => crate::with_spec(g, &RESULT, rest, result),
        Some("status") => crate::with_spec(g, &STATUS, rest, status),
        Some("receipts") => crate::with_spec(g, &RECEIPTS, rest, receipts),
        Some("replay") => crate::with_spec(g, &REPLAY, rest, replay),
        Some("stats") => crate::with_spec(g, &STATS, rest, stats),
        Some(other) => Err(CliError::usage(format!(
            "unknown compute command {other:?}: expected submit, result, status, receipts, replay or stats (try `tb-cli compute --help`)"
        ))),
    }
}

fn positive<T: PartialOrd + Default + std::str::FromStr>(
    a: &Args,
    name: &str,
    default: T,
) -> Result<T, CliError> {
    let v = a
        .parsed::<T>(name, "a positive integer")?
        .unwrap_or(default);
    if v <= T::default() {
        return Err(CliError::usage(format!("{name} must be at least 1")));
    }
    Ok(v)
}

/// Reads an object of `size` bytes from the node in `compute.getBlob` ranges and checks
/// its SHA-256 (`sha`, hex); `what` names it in errors.
pub fn fetch_object(
    client: &Client,
    sha: &str,
    size: u64,
    what: &str,
) -> Result<Vec<u8>, CliError> {
    if size > JOB_BLOB_BYTES_MAX as u64 {
        return Err(CliError::fail(format!(
            "the node reports {what} of {size} bytes, above the {JOB_BLOB_BYTES_MAX}-byte limit"
        )));
    }
    let sha_id = hid(sha)?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let at = out.len() as u64;
        let len = FETCH_RANGE_BYTES.min(size - at);
        let Some(r) = client.find("compute.getBlob", |c| {
            ComputeClient::get_blob(c, sha_id, Some(at), Some(len))
        })?
        else {
            return Err(CliError::fail(format!(
                "{what} ({sha}) is neither on the node nor published"
            )));
        };
        let part = hex::decode(r.str_at("hex")?)
            .map_err(|e| CliError::fail(format!("the node sent {what} as bad hex: {e}")))?;
        if part.is_empty() || part.len() as u64 > len || r.u64_at("bytes")? != size {
            return Err(CliError::fail(format!(
                "the node sent a range of {what} that does not fit its size"
            )));
        }
        out.extend_from_slice(&part);
    }
    if hex::encode(tb_primitives::sha256_digest(&out).0) != sha {
        return Err(CliError::fail(format!(
            "the node sent {what} whose SHA-256 is not {sha}: refused"
        )));
    }
    Ok(out)
}

mod replay;
mod result;
mod submit;

use replay::*;
use result::*;
use submit::*;

fn stats(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let r = g.client()?.get("compute.stats", ComputeClient::stats)?;
    let text = || {
        let blocks = r.arr_at("blocks");
        let mut out = format!(
            "BlockTorch job timeline (height {}, last {} blocks)\n",
            r.text_at("height"),
            blocks.len()
        );
        for b in blocks {
            let receipts = b.arr_at("receipts");
            out += &format!(
                "block {}: {}\n",
                b.text_at("height"),
                match receipts.len() {
                    0 => "no receipts".to_string(),
                    1 => "1 receipt".to_string(),
                    n => format!("{n} receipts"),
                }
            );
            let rows: Vec<Vec<String>> = receipts
                .iter()
                .map(|x| {
                    vec![
                        format!("task {}", short(&x.text_at("task_id"))),
                        format!("provider {}", short(&x.text_at("provider"))),
                        x.text_at("fabric"),
                        format!("kernel {}", x.text_at("kernel_digest")),
                        format!("commit {:?}", x.text_at("benchmark_commit")),
                        format!("proof {} ms", x.text_at("proof_latency_ms")),
                    ]
                })
                .collect();
            out += &table(&rows, &[], "  ");
            if !receipts.is_empty() {
                let buckets: Vec<String> = b
                    .arr_at("proof_latency_ms_buckets")
                    .iter()
                    .map(|k| match k.get("le") {
                        Some(Value::String(s)) if s == "+Inf" => {
                            format!("more {}", k.text_at("count"))
                        }
                        _ => format!("≤{} {}", k.text_at("le"), k.text_at("count")),
                    })
                    .collect();
                out += &format!("  proof latency ms: {}\n", buckets.join("  "));
            }
        }
        let c = r.get("receipt_checks").cloned().unwrap_or(Value::Null);
        out += &format!(
            "receipt checks: {} on this node, p50 ≤ {} µs, p99 ≤ {} µs, {} over the {} ms budget\n",
            c.text_at("count"),
            c.text_at("p50_us_upper"),
            c.text_at("p99_us_upper"),
            c.text_at("over_budget"),
            c.text_at("budget_ms")
        );
        out += &format!(
            "queued jobs {}, settlement queue {}\n",
            r.text_at("queued"),
            r.text_at("settlement_queue")
        );
        out
    };
    Ok(emit(g, a, &r, text))
}
