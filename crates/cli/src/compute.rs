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
use crate::node_cmds::{emit, hex_id, FEE_INDUSTRIAL};
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
usage: tb-cli compute replay TASK [--fabric cpu|cuda] [--threads N] [--json]

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

/// The job `compute submit` sends: the blob (version 1 when it names a model), the
/// decoded job, and the model's bytes when it names one.
struct Submission {
    blob: Vec<u8>,
    job: Job,
    model: Option<Vec<u8>>,
}

/// Reads FILE (and `--model`, or the model from the node), applying `--by-reference`.
fn submission(client: &Client, a: &Args) -> Result<Submission, CliError> {
    if !a.values("--text").is_empty() {
        let model = crate::text::model_arg(a, Some(client))?;
        let t = crate::text::text_job(a, model)?;
        return Ok(Submission {
            blob: t.blob,
            job: t.job,
            model: Some(t.model),
        });
    }
    let path = &a.positionals[0];
    let raw = crate::job::read_capped(path, JOB_BLOB_BYTES_MAX, "job blob")?;
    let model_file = a
        .value("--model")
        .map(|m| crate::job::read_capped(m, MODEL_BYTES_MAX, "model"))
        .transpose()?;
    let bad = |e: tb_job::JobError| CliError::fail(format!("{path}: not a valid job blob: {e}"));
    let (job, model) = match Job::model_of(&raw).map_err(bad)? {
        None => {
            if model_file.is_some() {
                return Err(CliError::usage(format!(
                    "--model applies to a blob that names its model; {path} carries its own \
                     (use --by-reference to publish it as a model)"
                )));
            }
            (Job::decode(&raw).map_err(bad)?, None)
        }
        Some(m) => {
            if a.flag("--by-reference") {
                return Err(CliError::usage(format!(
                    "{path} already names its model (--by-reference is for a version 0 blob)"
                )));
            }
            let sha = hex::encode(m.sha256);
            let bytes = match model_file {
                Some(b) => b,
                None => fetch_object(client, &sha, m.bytes, "the job's model").map_err(|e| {
                    CliError::fail(format!(
                        "{path} names model {sha}, which is neither given (--model) nor \
                         readable from the node ({}): publish it first (`tb-cli model publish`)",
                        e.message
                    ))
                })?,
            };
            let job = Job::decode_resolved(&raw, Some(&bytes)).map_err(bad)?;
            (job, Some(bytes))
        }
    };
    if a.flag("--by-reference") {
        let job = job.with_form(JobForm::ByReference);
        let model = job
            .model_bytes()
            .map_err(|e| CliError::fail(format!("{path}: {e}")))?;
        let blob = job
            .encode()
            .map_err(|e| CliError::fail(format!("{path}: {e}")))?;
        return Ok(Submission {
            blob,
            job,
            model: Some(model),
        });
    }
    Ok(Submission {
        blob: raw,
        job,
        model,
    })
}

/// A shortened hex id for progress lines.
fn short_hex(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(6)])
}

fn estimate_text(e: &Value, redundancy: u32) -> String {
    let capable = e.arr_at("capable").len();
    let now = e.arr_at("eligible_now").len();
    let lease = match e.get("expected_lease_height").and_then(Value::as_u64) {
        Some(h) => format!("height {h} (next block but one)"),
        None if capable < redundancy as usize => "never: too few providers".into(),
        None => format!(
            "when capacity frees up ({} queued job(s) ahead in its lane)",
            e.text_at("queue_ahead")
        ),
    };
    fields(
        &[
            (
                "providers",
                format!(
                    "{capable} could serve it, {now} free now; redundancy {redundancy}{}",
                    match e.u64_at("shortfall").unwrap_or(0) {
                        0 => String::new(),
                        n => format!(" — {n} short"),
                    }
                ),
            ),
            (
                "price",
                format!(
                    "{}–{} industrial per replica (by delivery latency and availability)",
                    e.tokens_at("price_worst_micro"),
                    e.tokens_at("price_best_micro")
                ),
            ),
            ("expected lease", lease),
        ],
        "",
    )
}

fn submit(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let path = a.positionals.first().map_or("the text job", String::as_str);
    let max_price = tokens_arg(a, "--max-price")?.ok_or_else(|| {
        CliError::usage(
            "`compute submit` needs --max-price TOKENS (try `tb-cli compute submit --help`)",
        )
    })?;
    if max_price == 0 {
        return Err(CliError::usage("--max-price must be more than 0"));
    }
    let redundancy: u32 = positive(a, "--redundancy", 1)?;
    let deadline_blocks: u64 = positive(a, "--deadline-blocks", DEADLINE_BLOCKS_DEFAULT)?;
    let lane: u8 = a.parsed::<u8>("--lane", "a lane number")?.unwrap_or(0);
    let timeout_s: u64 = positive(a, "--timeout-secs", WAIT_TIMEOUT_S_DEFAULT)?;
    let wait = a.flag("--wait");
    for only_wait in ["--timeout-secs", "--out", "--format"] {
        if !wait && a.value(only_wait).is_some() {
            return Err(CliError::usage(format!(
                "{only_wait} applies to --wait only"
            )));
        }
    }
    if !wait && a.flag("--provisional") {
        return Err(CliError::usage("--provisional applies to --wait only"));
    }
    let format = crate::results::Format::parse(a.value("--format"), a.value("--out"))?;
    let escrow = max_price
        .checked_mul(redundancy as u64)
        .ok_or_else(|| CliError::usage("--max-price × --redundancy is too large"))?;
    let key_arg = a.required("--key")?;
    let client = g.client()?;
    let Submission { blob, job, model } = submission(&client, a)?;
    let plan = validate(&job)
        .map_err(|e| CliError::fail(format!("{path}: the job does not validate: {e}")))?;
    let shape = JobShape::of(&job)
        .map_err(|e| CliError::fail(format!("{path}: the chain cannot take this job: {e}")))?;
    // What every node checks of a leased job: a job it would void is refused here.
    tb_job::checked_job_plan(&blob, model.as_deref(), &shape)
        .map_err(|why| CliError::fail(format!("{path}: the chain would void this job: {why}")))?;
    let key = load_key(g, a, key_arg)?;
    let mut s = Signer::new(&client, key)?;
    let industrial = s.account.industrial;
    if industrial < escrow {
        return Err(CliError::fail(format!(
            "{} holds {} industrial tokens; the job escrows {} (max price × redundancy) plus fees",
            s.address(),
            tokens(industrial),
            tokens(escrow)
        )));
    }
    let flops = plan.total.flops.min(u64::MAX as u128) as u64;
    let ask = EstimateJob {
        flops,
        max_price,
        redundancy,
        model: 0,
        lane,
        region: None,
        kernel_digest: None,
        blob_bytes: blob.len() as u64,
    };
    let est = client.get("compute.estimate", |c| ComputeClient::estimate(c, ask))?;
    let shortfall = est.u64_at("shortfall")?;
    if a.flag("--dry-run") {
        let mut v = est.clone();
        v["dry_run"] = json!(true);
        return Ok(emit(g, a, &v, || estimate_text(&est, redundancy)));
    }
    if shortfall > 0 && !a.flag("--force") {
        return Err(CliError::fail(format!(
            "redundancy {redundancy} needs {redundancy} distinct providers that could serve \
             this job, and the network has {}: {shortfall} short (nothing was submitted; with \
             --force it would queue and fail `unserved` at its deadline)",
            est.arr_at("capable").len()
        )));
    }
    if !g.json(a) {
        eprint!("{}", estimate_text(&est, redundancy));
    }
    // The model first (once: skipped when on chain), then the blob.
    let model_pub = match &model {
        Some(m) => {
            let sha = tb_primitives::sha256_digest(m).0;
            Some(crate::publish::publish(
                &mut s,
                m,
                &format!("model {}…", short_hex(&sha)),
                FEE_INDUSTRIAL,
                false,
            )?)
        }
        None => None,
    };
    let sha = hex::encode(tb_primitives::sha256_digest(&blob).0);
    let sha_id = hid(&sha)?;
    let has = client.get("compute.hasBlob", |c| ComputeClient::has_blob(c, sha_id))?;
    if !has.stored && blob.len() <= UPLOAD_BYTES_MAX {
        // The node's blob store takes a small blob in one request (its providers read
        // it there first); the chain takes any blob in published chunks.
        let r = client.get("compute.uploadBlob", |c| {
            ComputeClient::upload_blob(c, HexBytes(blob.clone()))
        })?;
        if r.sha256 != sha_id {
            return Err(CliError::fail(format!(
                "the node stored the blob as {}, not {sha}",
                r.sha256.0.to_hex()
            )));
        }
    }
    let blob_pub = crate::publish::publish(
        &mut s,
        &blob,
        &format!("job blob {}…", &sha[..12]),
        FEE_INDUSTRIAL,
        false,
    )?;
    // The deadline counts from now: publishing a large model takes blocks.
    let height = client.get("chain.head", ChainClient::head)?.height;
    let deadline = height
        .checked_add(deadline_blocks)
        .ok_or_else(|| CliError::usage("--deadline-blocks is too large"))?;
    let mut spec = JobSpec::for_job(&blob, &job, max_price, redundancy, deadline)
        .map_err(|e| CliError::fail(format!("{path}: {e}")))?;
    spec.lane = lane;
    // Keeping the model available until the deadline, past what its publication paid
    // for, is rent the SubmitJob's fee pays (`market.md`).
    let rent = match &spec.model_object {
        Some(m) => {
            let st = client.get("compute.hasBlob", |c| {
                ComputeClient::has_blob(c, HexId(tb_primitives::Id(m.sha256)))
            })?;
            let expires = st.expires.ok_or_else(|| {
                CliError::fail(
                    "the model is no longer published on chain (its publication expired)",
                )
            })?;
            let market = crate::publish::market_params(&s.chain.raw)?;
            tb_chain::market::pricing::model_rent_micro(&market, m.bytes, expires, deadline)
        }
        None => 0,
    };
    let tx_id = s.send(
        crate::wallet::Via::SubmitJob,
        TxPayload::SubmitJob(SubmitJob {
            from: s.address(),
            spec,
            fee: rent,
            fee_selector: FEE_INDUSTRIAL,
            nonce: 0,
        }),
    )?;
    let v = json!({
        "tx_id": tx_id,
        "requester": s.address().to_string(),
        "blob_sha256": sha,
        "blob_bytes": blob.len(),
        "blob": blob_pub.json(),
        "model": model_pub.as_ref().map(|p| p.json()),
        "n_ops": shape.n_ops,
        "flops": flops,
        "max_price": max_price,
        "redundancy": redundancy,
        "deadline": deadline,
        "model_rent_micro": rent,
        "estimate": est,
        "transactions": s.sent.len(),
    });
    let text = || {
        let mut rows = vec![(
            "job",
            format!(
                "{path}: {} bytes, {} ops, {} FLOP{}",
                blob.len(),
                shape.n_ops,
                plan.total.flops,
                match job.form {
                    JobForm::Inline => "",
                    JobForm::ByReference => ", names its model",
                }
            ),
        )];
        if let Some(m) = &model_pub {
            rows.push(("model", publication_text(m)));
        }
        rows.push(("blob", publication_text(&blob_pub)));
        rows.push((
            "escrow",
            format!(
                "{} industrial ({} × {redundancy})",
                tokens(escrow),
                tokens(max_price)
            ),
        ));
        rows.push(("deadline", format!("height {deadline}")));
        if rent > 0 {
            rows.push((
                "model rent",
                format!(
                    "{} (keeps the model available until the deadline; in the fee)",
                    tokens(rent)
                ),
            ));
        }
        rows.push(("submitted", format!("SubmitJob {tx_id}")));
        let mut out = fields(&rows, "");
        if !wait {
            out += &format!(
                "follow it with `tb-cli compute status {tx_id}`; read its answer with \
                 `tb-cli compute result {tx_id}`\n"
            );
        }
        out
    };
    let first = emit(g, a, &v, text);
    if !wait {
        return Ok(first);
    }
    // The submission is printed now, so that it is not lost if the wait fails.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(first.stdout.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::fail(format!("cannot write to stdout: {e}")))?;
    drop(stdout);
    let r = wait_for(
        &client,
        &tx_id,
        redundancy,
        a.flag("--provisional"),
        Duration::from_secs(timeout_s),
    )?;
    let task = r.str_at("task_id")?.to_string();
    show_result(g, a, &client, &task, &r, format)
}

fn publication_text(p: &crate::publish::Published) -> String {
    if p.already {
        format!("{} (already on chain; not published again)", p.sha256)
    } else if p.skipped > 0 {
        format!(
            "{} (published: {} chunk(s) sent, {} already on chain)",
            p.sha256, p.sent, p.skipped
        )
    } else {
        format!("{} (published in {} chunk(s))", p.sha256, p.sent)
    }
}

/// What a wait is waiting for, in words, given the job's result status and reply.
fn waiting_for(status: &str, r: Option<&Value>) -> String {
    let window_end = r.and_then(|r| r.get("window_end")).and_then(Value::as_u64);
    match status {
        "pending" => "waiting for providers to lease and run it".into(),
        "provisional" => match window_end {
            Some(w) => format!("final when its challenge window closes at height {w}"),
            None => "final when its challenge window closes".into(),
        },
        "challenged" => "a challenge is open: every node's referee rules on one op".into(),
        "disputed" => "replicas disagree: the referee decides".into(),
        "final" => "verified".into(),
        other => other.to_string(),
    }
}

/// Polls `compute.getResult` until the job's result is final (or, with `provisional`,
/// a receipt is accepted), the job fails, the timeout passes or the transaction
/// disappears. Progress goes to stderr, saying what the wait is for: an indicatif
/// spinner on a terminal, else a line per change. Returns the last `compute.getResult`.
fn wait_for(
    client: &Client,
    tx_id: &str,
    redundancy: u32,
    provisional: bool,
    timeout: Duration,
) -> Result<Value, CliError> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let t0 = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let finish = || {
        if let Some(b) = &bar {
            b.finish();
        }
    };
    let tx = hid(tx_id)?;
    let mut last = String::new();
    loop {
        let r = client.find("compute.getResult", |c| ComputeClient::get_result(c, tx))?;
        let height = client.get("chain.head", ChainClient::head)?.height;
        let (who, state, status) = match &r {
            Some(r) => (
                format!("task {}", short(r.str_at("task_id")?)),
                r.str_at("state")?.to_string(),
                r.str_at("status")?.to_string(),
            ),
            None => {
                if client
                    .find("chain.getTx", |c| ChainClient::get_tx(c, tx))?
                    .is_none()
                {
                    finish();
                    return Err(CliError::fail(format!(
                        "SubmitJob {tx_id} is neither pending nor included any more \
                         (dropped from the node's mempool?)"
                    )));
                }
                (
                    format!("SubmitJob {}", short(tx_id)),
                    "Pending".into(),
                    "pending".into(),
                )
            }
        };
        let line = format!(
            "{who}  {state}  result {status}  redundancy {redundancy}  height {height}: {}",
            waiting_for(&status, r.as_ref())
        );
        match &bar {
            Some(b) => b.set_message(line.clone()),
            None if line_key(&line) != line_key(&last) => eprintln!("{line}"),
            None => {}
        }
        last = line;
        if let Some(r) = r {
            let done = match status.as_str() {
                "final" => true,
                "provisional" | "challenged" | "disputed" => provisional,
                "failed" => {
                    finish();
                    return Err(failed(&r));
                }
                _ => false,
            };
            if done {
                finish();
                return Ok(r);
            }
        }
        if t0.elapsed() >= timeout {
            finish();
            return Err(CliError::fail(format!(
                "gave up after {} s: {who} is {state}, its result {status} (`tb-cli compute status {tx_id}`)",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
    }
}

/// The error of a failed job: its reason.
fn failed(r: &Value) -> CliError {
    let f = r.get("failure").cloned().unwrap_or(Value::Null);
    CliError::fail(format!(
        "task {} failed at height {}: {} ({})",
        r.text_at("task_id"),
        f.text_at("height"),
        f.text_at("reason"),
        f.text_at("description")
    ))
}

/// The result `compute.getResult` names, fetched and checked: its bytes hash to the
/// receipt's `result_sha256`, the receipt is on the job's record as the node reports
/// it, and the outputs give the receipt's output digest. Returns the outputs and the
/// output digest.
fn verified_result(
    client: &Client,
    task: &str,
    r: &Value,
) -> Result<(tb_job::ResultObject, [u8; 32]), CliError> {
    match r.str_at("status")? {
        "failed" => return Err(failed(r)),
        "pending" => {
            return Err(CliError::fail(format!(
                "task {task} has no accepted receipt yet (state {}): no result to read",
                r.text_at("state")
            )))
        }
        _ => {}
    }
    let digest_hex = r.str_at("output_digest")?.to_string();
    let result_sha = r.str_at("result_sha256")?.to_string();
    let provider = r.str_at("provider")?.to_string();
    // The receipt on the job's record must be the one the result answers.
    let job = get_job(client, task)?;
    let on_record = job.arr_at("receipts").iter().any(|x| {
        x["provider"] == json!(provider)
            && x["output_digest"] == json!(digest_hex)
            && x["result_sha256"] == json!(result_sha)
            && x["refuted"] != json!(true)
    });
    if !on_record {
        return Err(CliError::fail(format!(
            "the node's result of task {task} names a receipt that is not the job's standing one: refused"
        )));
    }
    let bytes = match r.get("hex").and_then(Value::as_str) {
        Some(h) => {
            let b = hex::decode(h)
                .map_err(|e| CliError::fail(format!("the node sent the result as bad hex: {e}")))?;
            if hex::encode(tb_primitives::sha256_digest(&b).0) != result_sha {
                return Err(CliError::fail(format!(
                    "the node sent a result whose SHA-256 is not the receipt's {result_sha}: refused"
                )));
            }
            b
        }
        None => fetch_object(client, &result_sha, r.u64_at("result_bytes")?, "the result")?,
    };
    let mut digest = [0u8; 32];
    hex::decode_to_slice(&digest_hex, &mut digest)
        .map_err(|_| CliError::fail("the node sent a bad output digest"))?;
    let outputs = job.u64_at("outputs").ok().map(|n| n as usize);
    let res = crate::results::verify(
        &bytes,
        &digest,
        outputs,
        &format!("the result of task {task}"),
    )?;
    Ok((res, digest))
}

/// Writes or prints the verified result of `task` (from its `compute.getResult`).
fn show_result(
    g: &Global,
    a: &Args,
    client: &Client,
    task: &str,
    r: &Value,
    format: crate::results::Format,
) -> Result<Outcome, CliError> {
    let (res, digest) = verified_result(client, task, r)?;
    let status = r.str_at("status")?;
    let meaning = match status {
        "final" => "final: its challenge window closed unrefuted".to_string(),
        "provisional" => format!(
            "provisional: challengeable until height {}",
            r.text_at("window_end")
        ),
        "challenged" => "provisional, challenged: the referee rules on it".into(),
        "disputed" => "provisional, disputed: replicas disagree; the referee decides".into(),
        other => other.to_string(),
    };
    let extra = json!({
        "task_id": task,
        "status": status,
        "final": status == "final",
        "state": r["state"],
        "provider": r["provider"],
        "receipt_hash": r["receipt_hash"],
        "receipt_height": r["receipt_height"],
        "result_sha256": r["result_sha256"],
    });
    let header = fields(
        &[
            ("task id", task.to_string()),
            ("result", meaning),
            ("provider", r.text_at("provider")),
            (
                "receipt",
                format!(
                    "{} at height {}",
                    r.text_at("receipt_hash"),
                    r.text_at("receipt_height")
                ),
            ),
            (
                "output digest",
                format!("{} (verified)", hex::encode(digest)),
            ),
            ("result object", r.text_at("result_sha256")),
        ],
        "",
    );
    crate::results::emit(
        &res,
        &digest,
        a.value("--out"),
        format,
        g.json(a),
        header,
        extra,
    )
}

fn result(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let id = hex_id(&a.positionals[0], "TASK")?;
    let format = crate::results::Format::parse(a.value("--format"), a.value("--out"))?;
    if a.value("--format").is_some() && a.value("--out").is_none() {
        return Err(CliError::usage("--format applies to -o/--out"));
    }
    let client = g.client()?;
    let task = hid(&id)?;
    let r = client.find("compute.getResult", |c| ComputeClient::get_result(c, task))?.ok_or_else(|| {
        CliError::fail(format!(
            "no job {id}: neither a task id nor an included SubmitJob transaction (a pending one is not a job yet)"
        ))
    })?;
    let task = r.str_at("task_id")?.to_string();
    show_result(g, a, &client, &task, &r, format)
}

/// A progress line without its height: what counts as a change.
fn line_key(line: &str) -> &str {
    line.rsplit_once("  height ").map_or(line, |(k, _)| k)
}

/// The job for `TASK` (a task id or a SubmitJob transaction id).
fn get_job(client: &Client, task: &str) -> Result<Value, CliError> {
    let id = hex_id(task, "TASK")?;
    let task = hid(&id)?;
    client.find("compute.getJob", |c| ComputeClient::get_job(c, task))?.ok_or_else(|| {
        CliError::fail(format!(
            "no job {id}: neither a task id nor an included SubmitJob transaction (a pending one is not a job yet)"
        ))
    })
}

/// The first 16 characters of an id or address, and `…` when there are more.
fn short(s: &str) -> String {
    let head: String = s.chars().take(16).collect();
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        head
    }
}

fn receipt_rows(receipts: &[Value]) -> String {
    let mut out = String::new();
    for (i, r) in receipts.iter().enumerate() {
        let mut flags = Vec::new();
        if r.get("payable").and_then(Value::as_bool) == Some(true) {
            flags.push("payable");
        }
        if r.get("refuted").and_then(Value::as_bool) == Some(true) {
            flags.push("refuted");
        }
        out += &format!("  receipt {i}\n");
        out += &fields(
            &[
                ("provider", r.text_at("provider")),
                ("height", r.text_at("height")),
                ("output digest", r.text_at("output_digest")),
                ("trace root", r.text_at("trace_root")),
                ("trace sha256", r.text_at("trace_sha256")),
                ("receipt hash", r.text_at("receipt_hash")),
                ("latency", format!("{} blocks", r.text_at("latency_blocks"))),
                (
                    "standing",
                    if flags.is_empty() {
                        "-".into()
                    } else {
                        flags.join(", ")
                    },
                ),
            ],
            "    ",
        );
    }
    out
}

/// A job record (`compute.getJob`) for a person.
fn status_text(j: &Value) -> String {
    let mut out = fields(
        &[
            ("task id", j.text_at("task_id")),
            ("state", j.text_at("state")),
            ("requester", j.text_at("requester")),
            (
                "blob",
                format!(
                    "{} ({} bytes, {} ops, {} FLOP)",
                    j.text_at("blob_sha256"),
                    j.text_at("blob_bytes"),
                    j.text_at("n_ops"),
                    j.text_at("flops")
                ),
            ),
            (
                "max price",
                format!(
                    "{} industrial × redundancy {}",
                    j.tokens_at("max_price"),
                    j.text_at("redundancy")
                ),
            ),
            ("escrow", j.tokens_at("escrow")),
            (
                "heights",
                format!(
                    "submitted {}, deadline {}, window end {}",
                    j.text_at("submitted"),
                    j.text_at("deadline"),
                    j.text_at("window_end")
                ),
            ),
            ("retries", j.text_at("retries")),
            ("payouts pending", j.text_at("payouts_pending")),
        ]
        .into_iter()
        .chain(
            j.get("model_sha256")
                .and_then(Value::as_str)
                .map(|m| ("model", format!("{m} ({} bytes)", j.text_at("model_bytes")))),
        )
        .chain(j.get("failure").filter(|f| !f.is_null()).map(|f| {
            (
                "failed",
                format!(
                    "at height {}: {} ({})",
                    f.text_at("height"),
                    f.text_at("reason"),
                    f.text_at("description")
                ),
            )
        }))
        .collect::<Vec<_>>(),
        "",
    );
    let leases = j.arr_at("leases");
    out += &format!("leases ({}):\n", leases.len());
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.text_at("provider"),
                format!("start {}", l.text_at("start")),
                format!("expiry {}", l.text_at("expiry")),
                format!("renewals {}", l.text_at("renewals")),
            ]
        })
        .collect();
    out += &table(&rows, &[], "  ");
    let seals = j.arr_at("seals");
    if !seals.is_empty() {
        out += &format!("seals ({}):\n", seals.len());
        let rows: Vec<Vec<String>> = seals
            .iter()
            .map(|s| {
                vec![
                    s.text_at("provider"),
                    format!("height {}", s.text_at("height")),
                ]
            })
            .collect();
        out += &table(&rows, &[], "  ");
    }
    let receipts = j.arr_at("receipts");
    out += &format!("receipts ({}):\n", receipts.len());
    out += &receipt_rows(receipts);
    let disputes = j.arr_at("disputes_detail");
    out += &format!(
        "disputes ({}, {} open):\n",
        disputes.len(),
        j.text_at("disputes_open")
    );
    let rows: Vec<Vec<String>> = disputes
        .iter()
        .map(|d| {
            let accused: Vec<String> = d
                .arr_at("accused")
                .iter()
                .map(|a| short(a.as_str().unwrap_or("?")))
                .collect();
            vec![
                format!("#{}", d.text_at("index")),
                format!("op {}", d.text_at("op")),
                format!("accused {}", accused.join(" ")),
                format!("challenger {}", short(&d.text_at("challenger"))),
                format!("opened {}", d.text_at("opened")),
                format!("deadline {}", d.text_at("deadline")),
                format!("ruling {}", d.text_at("ruling")),
            ]
        })
        .collect();
    out += &table(&rows, &[], "  ");
    out
}

fn status(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let j = get_job(&g.client()?, &a.positionals[0])?;
    Ok(emit(g, a, &j, || status_text(&j)))
}

fn receipts(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let id = hex_id(&a.positionals[0], "TASK")?;
    let task = hid(&id)?;
    let client = g.client()?;
    let r = client
        .find("compute.getReceipt", |c| {
            ComputeClient::get_receipt(c, task)
        })?
        .ok_or_else(|| {
            CliError::fail(format!(
                "no job {id}: neither a task id nor an included SubmitJob transaction"
            ))
        })?;
    let text = || {
        let rs = r.arr_at("receipts");
        format!(
            "task {}: {} receipt(s)\n{}",
            r.text_at("task_id"),
            rs.len(),
            receipt_rows(rs)
        )
    };
    Ok(emit(g, a, &r, text))
}

/// A blob from the node, checked against its SHA-256.
fn fetch_blob(client: &Client, sha: &str, what: &str) -> Result<Option<Vec<u8>>, CliError> {
    let sha_id = hid(sha)?;
    let Some(r) = client.find("compute.getBlob", |c| {
        ComputeClient::get_blob(c, sha_id, None, None)
    })?
    else {
        return Ok(None);
    };
    let bytes = hex::decode(r.str_at("hex")?)
        .map_err(|e| CliError::fail(format!("the node sent the {what} as bad hex: {e}")))?;
    if hex::encode(tb_primitives::sha256_digest(&bytes).0) != sha {
        return Err(CliError::fail(format!(
            "the node sent a {what} whose SHA-256 is not {sha}"
        )));
    }
    Ok(Some(bytes))
}

/// What `compute replay` found for one receipt.
enum Check {
    Agrees,
    /// Where it differs, and the trace's leaf count.
    Differs(crate::verify::Divergence, usize),
    /// The trace could not be checked (missing, malformed, not this receipt's).
    Unchecked(String),
}

fn check_receipt(
    client: &Client,
    job: &Job,
    task: &str,
    ours: &[[u8; 32]],
    r: &Value,
) -> Result<Check, CliError> {
    let provider = r.str_at("provider")?;
    let sha = r.str_at("trace_sha256")?;
    let Some(bytes) = fetch_blob(client, sha, "trace")? else {
        return Ok(Check::Unchecked(format!(
            "its trace {sha} is neither on the node nor published"
        )));
    };
    let trace = match decode_trace(&bytes) {
        Ok(t) => t,
        Err(e) => return Ok(Check::Unchecked(format!("its trace is malformed: {e}"))),
    };
    if trace.task_id.to_hex() != task || trace.provider.to_string() != provider {
        return Ok(Check::Unchecked(
            "its trace names another task or provider".into(),
        ));
    }
    if trace_root(&trace.leaves).to_hex() != r.str_at("trace_root")? {
        return Ok(Check::Unchecked(
            "its trace's root is not the receipt's trace root".into(),
        ));
    }
    Ok(match divergence(job, ours, &trace.leaves) {
        None => Check::Agrees,
        Some(d) => Check::Differs(d, trace.leaves.len()),
    })
}

fn replay(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let (fabric_name, threads) = crate::run::fabric_args(a)?;
    let client = g.client()?;
    let j = get_job(&client, &a.positionals[0])?;
    let task = j.str_at("task_id")?.to_string();
    let blob_sha = j.str_at("blob_sha256")?;
    let blob = fetch_blob(&client, blob_sha, "job blob")?.ok_or_else(|| {
        CliError::fail(format!(
            "the job's blob {blob_sha} is neither on the node nor published"
        ))
    })?;
    // A job by reference runs the model its record names, read from the node.
    let model = match j.get("model_sha256").and_then(Value::as_str) {
        Some(m) => Some(fetch_object(
            &client,
            m,
            j.u64_at("model_bytes")?,
            "the job's model",
        )?),
        None => None,
    };
    let job = Job::decode_resolved(&blob, model.as_deref())
        .map_err(|e| CliError::fail(format!("the job's blob is not a valid job: {e}")))?;
    validate(&job).map_err(|e| CliError::fail(format!("the job's blob does not validate: {e}")))?;
    let ours = replay_leaves(&job, fabric_name, threads)?;
    let mut results = Vec::new();
    for r in j.arr_at("receipts") {
        results.push((
            r.text_at("provider"),
            check_receipt(&client, &job, &task, &ours, r)?,
        ));
    }
    let differs = results.iter().any(|(_, c)| matches!(c, Check::Differs(..)));
    let unchecked = results
        .iter()
        .any(|(_, c)| matches!(c, Check::Unchecked(_)));
    let code = if differs {
        EXIT_PROVIDER_WRONG
    } else if unchecked {
        crate::EXIT_FAILURE
    } else {
        0
    };
    let root = trace_root(&ours).to_hex();
    let out = if g.json(a) {
        let rs: Vec<Value> = results
            .iter()
            .map(|(p, c)| match c {
                Check::Agrees => json!({"provider": p, "agrees": true}),
                Check::Differs(d, n) => json!({"provider": p, "agrees": false, "op": d.op,
                    "node": d.node, "provider_leaf": d.provider_leaf.map(hex::encode),
                    "replay_leaf": d.replay_leaf.map(hex::encode), "trace_leaves": n}),
                Check::Unchecked(w) => json!({"provider": p, "agrees": null, "unchecked": w}),
            })
            .collect();
        format!(
            "{}\n",
            json!({"task_id": task, "fabric": fabric_name, "replay_trace_root": root,
                   "n_ops": ours.len(), "receipts": rs, "agrees": !differs && !unchecked})
        )
    } else {
        let mut s = fields(
            &[
                ("task id", task.clone()),
                (
                    "replay",
                    format!(
                        "{} ops on the {fabric_name} fabric, trace root {root}",
                        ours.len()
                    ),
                ),
            ],
            "",
        );
        if results.is_empty() {
            s += "no receipts on chain: nothing to check\n";
        }
        for (p, c) in &results {
            s += &match c {
                Check::Agrees => format!("  {p}  agrees: its trace is the replay's\n"),
                Check::Differs(d, n) => {
                    format!("  {p}  DIFFERS: {}\n", d.describe(*n, ours.len()))
                }
                Check::Unchecked(w) => format!("  {p}  not checked: {w}\n"),
            };
        }
        if differs {
            s += "a provider's trace is wrong: challenge it at the first differing op (`tb-cli job verify`)\n";
        }
        s
    };
    if unchecked && !differs {
        // Exit 1 with the report on stdout, and the one-line reason on stderr.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush());
        return Err(CliError::fail(
            "some receipts could not be checked (see above)",
        ));
    }
    Ok(Outcome { stdout: out, code })
}

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
