//! `compute replay`: every receipt of a job checked by replaying the job here and
//! comparing traces.

use super::*;

/// A blob from the node, checked against its SHA-256.
pub(super) fn fetch_blob(
    client: &Client,
    sha: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, CliError> {
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
pub(super) enum Check {
    Agrees,
    /// Where it differs, and the trace's leaf count.
    Differs(crate::verify::Divergence, usize),
    /// The trace could not be checked (missing, malformed, not this receipt's).
    Unchecked(String),
}

pub(super) fn check_receipt(
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

pub(super) fn replay(g: &Global, a: &Args) -> Result<Outcome, CliError> {
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
