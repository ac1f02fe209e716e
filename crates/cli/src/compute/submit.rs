//! `compute submit`: the node's estimate, the model and the blob published, the
//! `SubmitJob`, and `--wait` following it to its verified result.

use super::*;
use tb_chain::tx::FeeSelector;

/// The job `compute submit` sends: the blob (version 1 when it names a model), the
/// decoded job, and the model's bytes when it names one.
pub(super) struct Submission {
    blob: Vec<u8>,
    job: Job,
    model: Option<Vec<u8>>,
}

/// Reads FILE (and `--model`, or the model from the node), applying `--by-reference`.
pub(super) fn submission(client: &Client, a: &Args) -> Result<Submission, CliError> {
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
pub(super) fn short_hex(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(6)])
}

pub(super) fn estimate_text(e: &Value, redundancy: u32) -> String {
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

pub(super) fn submit(g: &Global, a: &Args) -> Result<Outcome, CliError> {
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
                FeeSelector::Industrial,
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
        FeeSelector::Industrial,
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
            fee_selector: FeeSelector::Industrial.into(),
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

pub(super) fn publication_text(p: &crate::publish::Published) -> String {
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
pub(super) fn waiting_for(status: &str, r: Option<&Value>) -> String {
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
pub(super) fn wait_for(
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
pub(super) fn failed(r: &Value) -> CliError {
    let f = r.get("failure").cloned().unwrap_or(Value::Null);
    CliError::fail(format!(
        "task {} failed at height {}: {} ({})",
        r.text_at("task_id"),
        f.text_at("height"),
        f.text_at("reason"),
        f.text_at("description")
    ))
}
