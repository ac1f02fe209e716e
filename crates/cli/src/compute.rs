//! `tb-cli compute ...`: BlockTorch jobs on a node's market.
//!
//! - `submit` checks a job blob here (`tb_job::validate`, `tb_job::JobShape::of`),
//!   uploads it to the node, publishes it on chain (`PublishBlob` chunks) unless the node
//!   already has it, and submits the `SubmitJob`, all signed here with consecutive
//!   nonces; `--wait` follows the job to `Settled` or `Failed`.
//! - `status`, `receipts` and `stats` print what the node knows.
//! - `replay` re-executes the job here and compares each receipt's published trace
//!   with the replay (the same code as `job verify`).

use crate::args::{Args, Spec};
use crate::job::{fields, table};
use crate::node_cmds::{emit, hex_id, FEE_INDUSTRIAL};
use crate::rpc_client::{Client, Reply as _};
use crate::verify::{divergence, replay_leaves};
use crate::wallet::{load_key, tokens, tokens_arg, ChainInfo, Signer};
use crate::{CliError, Global, Outcome, EXIT_PROVIDER_WRONG};
use serde_json::{json, Value};
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};
use tb_chain::market::dispute::publish_payloads;
use tb_chain::market::MarketParams;
use tb_chain::tx::{JobSpec, SubmitJob};
use tb_chain::{ChainParams, TxPayload};
use tb_job::format::JOB_BLOB_BYTES_MAX;
use tb_job::{decode_trace, trace_root, validate, Job, JobShape};

/// Default `--deadline-blocks`: the job must be proven this many blocks after now.
pub const DEADLINE_BLOCKS_DEFAULT: u64 = 200;
/// Default `--timeout-secs` of `--wait`.
pub const WAIT_TIMEOUT_S_DEFAULT: u64 = 600;
/// Time between two polls of `--wait`.
pub const WAIT_POLL_MS: u64 = 500;
/// Largest blob `compute submit` also stores in the node's blob store with one
/// `compute.uploadBlob` (its hex must fit the node's default 8 MiB request limit).
pub const UPLOAD_BYTES_MAX: usize = 3 * 1024 * 1024;

const USAGE: &str = "\
usage: tb-cli compute COMMAND ...

commands:
  submit FILE --key K --max-price TOKENS   publish a job blob and submit the job
  status TASK                              a job's state, leases, receipts, disputes
  receipts TASK                            a job's receipts
  replay TASK                              replay a job here and check every receipt
  stats                                    the BlockTorch job timeline of the last blocks

TASK is a task id or the id of the SubmitJob transaction that created it.";

const SUBMIT: Spec = Spec {
    command: "compute submit",
    usage: "\
usage: tb-cli compute submit FILE --key K --max-price TOKENS [--redundancy N]
                             [--deadline-blocks N] [--wait [--timeout-secs S]] [--json]

Checks the BlockTorchJobV0 blob FILE (it must validate), uploads it to the node and
publishes it on chain in PublishBlob chunks (skipped when the node already has it), then
submits the job: its spec is the blob's SHA-256, size, FLOP cost and shape, any kernel
digest, model class 0, lane 0, any region. MAX-PRICE × REDUNDANCY industrial tokens
are escrowed; fees are paid in industrial tokens. Prints the SubmitJob transaction id,
which `compute status` and the other commands accept until the task id is known.

options:
  --key K               the requester's key (a name in the keys directory, or a file)
  --max-price TOKENS    most paid per replica
  --redundancy N        replicas (default 1)
  --deadline-blocks N   blocks from now by which it must be proven (default 200)
  --wait                follow the job until Settled (exit 0) or Failed (exit 1),
                        showing its progress on stderr
  --timeout-secs S      give up waiting after S seconds (default 600; exit 1)
  --json                print JSON: the submission, and with --wait the job at its end",
    flags: &["--json", "--wait"],
    options: &[
        ("--key", None),
        ("--max-price", None),
        ("--redundancy", None),
        ("--deadline-blocks", None),
        ("--timeout-secs", None),
        ("--keys-dir", None),
    ],
    positionals: &["FILE"],
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

Fetches the job's blob and every receipt's published trace from the node, replays the
job here (any fabric gives the CPU reference's bits) and reports, per receipt, whether
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
        Some("submit") => crate::with_spec(g, &SUBMIT, rest, submit),
        Some("status") => crate::with_spec(g, &STATUS, rest, status),
        Some("receipts") => crate::with_spec(g, &RECEIPTS, rest, receipts),
        Some("replay") => crate::with_spec(g, &REPLAY, rest, replay),
        Some("stats") => crate::with_spec(g, &STATS, rest, stats),
        Some(other) => Err(CliError::usage(format!(
            "unknown compute command {other:?}: expected submit, status, receipts, replay or stats (try `tb-cli compute --help`)"
        ))),
    }
}

/// The market parameters `publish_payloads` reads, from `chain.info`: the devnet's,
/// with the node's chunk size and blob fee.
fn market_params(chain: &ChainInfo) -> Result<MarketParams, CliError> {
    let m = chain.raw.field("market")?;
    let mut p = ChainParams::devnet().market;
    p.blob_chunk_bytes = m.u64_at("blob_chunk_bytes")?;
    p.blob_fee_per_kib_micro = m.u64_at("blob_fee_per_kib_micro")?;
    if p.blob_chunk_bytes == 0 || p.blob_chunk_bytes > JOB_BLOB_BYTES_MAX as u64 {
        return Err(CliError::fail(format!(
            "the node reports a blob chunk size of {} bytes",
            p.blob_chunk_bytes
        )));
    }
    Ok(p)
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

fn submit(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
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
    let timeout_s: u64 = positive(a, "--timeout-secs", WAIT_TIMEOUT_S_DEFAULT)?;
    let wait = a.flag("--wait");
    if !wait && a.value("--timeout-secs").is_some() {
        return Err(CliError::usage("--timeout-secs applies to --wait only"));
    }
    let escrow = max_price
        .checked_mul(redundancy as u64)
        .ok_or_else(|| CliError::usage("--max-price × --redundancy is too large"))?;
    let key_arg = a.required("--key")?;
    let (blob, job) = crate::job::read_job(path)?;
    let plan = validate(&job)
        .map_err(|e| CliError::fail(format!("{path}: the job does not validate: {e}")))?;
    let shape = JobShape::of(&job)
        .map_err(|e| CliError::fail(format!("{path}: the chain cannot take this job: {e}")))?;
    let key = load_key(g, a, key_arg)?;
    let client = g.client()?;
    let mut s = Signer::new(&client, key)?;
    let industrial = s.account.u64_at("industrial")?;
    if industrial < escrow {
        return Err(CliError::fail(format!(
            "{} holds {} industrial tokens; the job escrows {} (max price × redundancy) plus fees",
            s.address(),
            tokens(industrial),
            tokens(escrow)
        )));
    }
    let sha = hex::encode(tb_primitives::sha256_digest(&blob).0);
    let has = client.get("compute.hasBlob", json!([sha]))?;
    let mut chunks = 0usize;
    // The node's blob store takes the blob in one request (up to UPLOAD_BYTES_MAX);
    // the chain takes it in published chunks of any size up to the job format's cap.
    if has["stored"] != true && blob.len() <= UPLOAD_BYTES_MAX {
        let r = client.get("compute.uploadBlob", json!([hex::encode(&blob)]))?;
        if r.str_at("sha256")? != sha {
            return Err(CliError::fail(format!(
                "the node stored the blob as {}, not {sha}",
                r.text_at("sha256")
            )));
        }
    }
    if has["published"] != true {
        let market = market_params(&s.chain)?;
        for chunk in publish_payloads(&market, s.address(), &blob) {
            s.send("submit_tx", TxPayload::PublishBlob(chunk))?;
            chunks += 1;
        }
    }
    let deadline = s
        .chain
        .height
        .checked_add(deadline_blocks)
        .ok_or_else(|| CliError::usage("--deadline-blocks is too large"))?;
    let spec = JobSpec::for_job(&blob, &job, max_price, redundancy, deadline)
        .map_err(|e| CliError::fail(format!("{path}: {e}")))?;
    let tx_id = s.send(
        "compute.submitJob",
        TxPayload::SubmitJob(SubmitJob {
            from: s.address(),
            spec,
            fee: 0,
            fee_selector: FEE_INDUSTRIAL,
            nonce: 0,
        }),
    )?;
    let v = json!({
        "tx_id": tx_id,
        "requester": s.address().to_string(),
        "blob_sha256": sha,
        "blob_bytes": blob.len(),
        "n_ops": shape.n_ops,
        "flops": plan.total.flops as u64,
        "published_chunks": chunks,
        "blob_already_published": has["published"] == true,
        "max_price": max_price,
        "redundancy": redundancy,
        "deadline": deadline,
        "transactions": s.sent,
    });
    let text = || {
        let mut out = fields(
            &[
                (
                    "job",
                    format!(
                        "{path}: {} bytes, {} ops, {} FLOP",
                        blob.len(),
                        shape.n_ops,
                        plan.total.flops
                    ),
                ),
                (
                    "blob",
                    if has["published"] == true {
                        format!("{sha} (already published on chain; not published again)")
                    } else {
                        format!("{sha} (uploaded; published in {chunks} chunk(s))")
                    },
                ),
                (
                    "escrow",
                    format!(
                        "{} industrial ({} × {redundancy})",
                        tokens(escrow),
                        tokens(max_price)
                    ),
                ),
                ("deadline", format!("height {deadline}")),
                ("submitted", format!("SubmitJob {tx_id}")),
            ],
            "",
        );
        if !wait {
            out += &format!("follow it with `tb-cli compute status {tx_id}`\n");
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
    let end = wait_for(&client, &tx_id, redundancy, Duration::from_secs(timeout_s))?;
    Ok(emit(g, a, &end, || status_text(&end)))
}

/// Polls `compute.getJob` until the job is `Settled` (its record) or `Failed`, the
/// timeout passes or the transaction disappears (errors). Progress goes to stderr: one
/// line updated in place on a terminal, else a line per change.
fn wait_for(
    client: &Client,
    tx_id: &str,
    redundancy: u32,
    timeout: Duration,
) -> Result<Value, CliError> {
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    let mut task = String::new();
    let finish_line = |tty: bool| {
        if tty {
            eprintln!();
        }
    };
    loop {
        let job = client.find("compute.getJob", json!([tx_id]))?;
        let height = client.get("chain.head", json!([]))?.u64_at("height")?;
        let (state, receipts, leases) = match &job {
            Some(j) => {
                task = j.str_at("task_id")?.to_string();
                (
                    j.str_at("state")?.to_string(),
                    j.arr_at("receipts").len(),
                    j.arr_at("leases").len(),
                )
            }
            None => {
                if client.find("chain.getTx", json!([tx_id]))?.is_none() {
                    finish_line(tty && !last.is_empty());
                    return Err(CliError::fail(format!(
                        "SubmitJob {tx_id} is neither pending nor included any more \
                         (dropped from the node's mempool?)"
                    )));
                }
                ("Pending".to_string(), 0, 0)
            }
        };
        let who = if task.is_empty() {
            format!("SubmitJob {}", short(tx_id))
        } else {
            format!("task {}", short(&task))
        };
        let line = format!(
            "{who}  {state}  receipts {receipts}/{redundancy}  leases {leases}  height {height}"
        );
        if tty {
            eprint!("\r\x1b[2K{line}  ({} s)", t0.elapsed().as_secs());
            let _ = std::io::stderr().flush();
        } else if line_key(&line) != line_key(&last) {
            eprintln!("{line}");
        }
        last = line;
        match (state.as_str(), job) {
            ("Settled", Some(j)) => {
                finish_line(tty);
                return Ok(j);
            }
            ("Failed", _) => {
                finish_line(tty);
                return Err(CliError::fail(format!(
                    "task {task} failed ({receipts} receipts; `tb-cli compute status {task}` shows why)"
                )));
            }
            _ => {}
        }
        if t0.elapsed() >= timeout {
            finish_line(tty);
            return Err(CliError::fail(format!(
                "gave up after {} s: {who} is {state} (`tb-cli compute status {tx_id}`)",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
    }
}

/// A progress line without its height: what counts as a change.
fn line_key(line: &str) -> &str {
    line.rsplit_once("  height ").map_or(line, |(k, _)| k)
}

/// The job for `TASK` (a task id or a SubmitJob transaction id).
fn get_job(client: &Client, task: &str) -> Result<Value, CliError> {
    let id = hex_id(task, "TASK")?;
    client.find("compute.getJob", json!([id]))?.ok_or_else(|| {
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

fn amount(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_u64).map_or("-".into(), tokens)
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
                    amount(j, "max_price"),
                    j.text_at("redundancy")
                ),
            ),
            ("escrow", amount(j, "escrow")),
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
        ],
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
    let client = g.client()?;
    let r = client
        .find("compute.getReceipt", json!([id]))?
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
    let Some(r) = client.find("compute.getBlob", json!([sha]))? else {
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
    let job = Job::decode(&blob)
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
    let r = g.client()?.get("compute.stats", json!([]))?;
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
            "receipt checks: {} on this node, p50 ≤ {} µs, p99 ≤ {} µs\n",
            c.text_at("count"),
            c.text_at("p50_us_upper"),
            c.text_at("p99_us_upper")
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
