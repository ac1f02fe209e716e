//! `compute result`, `status` and `receipts`: a job's verified result checked
//! against its receipt, its timeline, its receipts.

use super::*;

/// The result `compute.getResult` names, fetched and checked: its bytes hash to the
/// receipt's `result_sha256`, the receipt is on the job's record as the node reports
/// it, and the outputs give the receipt's output digest. Returns the outputs and the
/// output digest.
pub(super) fn verified_result(
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
pub(super) fn show_result(
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

pub(super) fn result(g: &Global, a: &Args) -> Result<Outcome, CliError> {
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
pub(super) fn line_key(line: &str) -> &str {
    line.rsplit_once("  height ").map_or(line, |(k, _)| k)
}

/// The job for `TASK` (a task id or a SubmitJob transaction id).
pub(super) fn get_job(client: &Client, task: &str) -> Result<Value, CliError> {
    let id = hex_id(task, "TASK")?;
    let task = hid(&id)?;
    client.find("compute.getJob", |c| ComputeClient::get_job(c, task))?.ok_or_else(|| {
        CliError::fail(format!(
            "no job {id}: neither a task id nor an included SubmitJob transaction (a pending one is not a job yet)"
        ))
    })
}

/// The first 16 characters of an id or address, and `…` when there are more.
pub(super) fn short(s: &str) -> String {
    let head: String = s.chars().take(16).collect();
    if head.len() < s.len() {
        format!("{head}…")
    } else {
        head
    }
}

pub(super) fn receipt_rows(receipts: &[Value]) -> String {
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
pub(super) fn status_text(j: &Value) -> String {
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

pub(super) fn status(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let j = get_job(&g.client()?, &a.positionals[0])?;
    Ok(emit(g, a, &j, || status_text(&j)))
}

pub(super) fn receipts(g: &Global, a: &Args) -> Result<Outcome, CliError> {
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
