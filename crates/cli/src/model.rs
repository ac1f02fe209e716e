//! `tb-cli model ...`: models (programs and their weights) published once and named
//! by the jobs that run them.
//!
//! - `publish` publishes a model file (or the model inside a version 0 job blob) on
//!   chain in paced, resumable `PublishBlob` chunks (`publish.rs`) and prints its
//!   SHA-256, the name jobs use.
//! - `info` decodes a model file and prints its hash, size, constants and ops.

use crate::args::{Args, Spec};
use crate::job::{fields, read_capped};
use crate::node_cmds::emit;
use crate::wallet::{load_key, Signer};
use crate::{CliError, Global, Outcome};
use serde_json::json;
use tb_chain::tx::FeeSelector;
use tb_job::format::{JOB_MAGIC, MODEL_BYTES_MAX};
use tb_job::program::ARTIFACT_MAGIC;
use tb_job::{Job, JobForm, Program};

const USAGE: &str = "\
usage: tb-cli model COMMAND ...

commands:
  import SRC -o OUT      lower an ONNX model, or a safetensors BERT-family model
                         directory, to a model file
  publish FILE --key K   publish a model once; jobs name it by its SHA-256
  info FILE              a model file's hash, size, constants and ops

A model is a BlockTorch program with its weights (the artifact, `BTPG`…): `tb-cli job
build --model-out` writes one. Jobs that name it (version 1 blobs) carry only their
input, so each job's publication fee follows its input, not the model.";

/// Every command of `model`, for the completion tree.
pub(crate) const SPECS: &[&Spec] = &[&PUBLISH, &INFO, &crate::text::IMPORT];

const PUBLISH: Spec = Spec {
    command: "model publish",
    usage: "\
usage: tb-cli model publish FILE --key K [--fee-token industrial|consumer] [--json]

Publishes the model FILE on chain: a model file (`BTPG`…), or a version 0 job blob,
whose artifact is the model. Chunks go at the pace blocks take them (a few MiB in
flight at once); an interrupted run, re-run, resumes: the chunks of this key's copy
already on chain are skipped. Progress goes to stderr. Prints the model's SHA-256 — what
a job names — and when it expires unless jobs pin it (every job naming it keeps it
until the job's own data may be disputed).

Fee: `blob_fee_per_kib_micro` per KiB (or the mempool's per-byte floor, if higher),
paid once; jobs that name the model pay for their own blobs only.

options:
  --key K               the publisher's key (a name in the keys directory, or a file)
  --fee-token T         the token that pays the chunk fees (default industrial)
  --json                print JSON",
    flags: &["--json"],
    options: &[("--key", None), ("--fee-token", None), ("--keys-dir", None)],
    positionals: &["FILE"],
};

const INFO: Spec = Spec {
    command: "model info",
    usage: "\
usage: tb-cli model info FILE [--json]

Decodes a model file (or the model inside a version 0 job blob) and prints its SHA-256,
size, runtime, constants, ops and outputs.",
    flags: &["--json"],
    options: &[],
    positionals: &["FILE"],
};

/// Runs `tb-cli model ARGS...`.
pub fn dispatch(g: &Global, args: &[String]) -> Result<Outcome, CliError> {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => Ok(Outcome::ok(format!("{USAGE}\n"))),
        Some("publish") => crate::with_spec(g, &PUBLISH, rest, publish),
        Some("info") => crate::with_spec(g, &INFO, rest, info),
        Some("import") => crate::with_spec(g, &crate::text::IMPORT, rest, crate::text::import),
        Some(other) => Err(CliError::usage(format!(
            "unknown model command {other:?}: expected import, publish or info (try `tb-cli model --help`)"
        ))),
    }
}

/// The model bytes in `path`: a model file as it is, or the artifact of a version 0 job
/// blob. Decoded, so a file that is not a model is refused here rather than on chain.
pub fn read_model(path: &str) -> Result<(Vec<u8>, Program), CliError> {
    let bytes = read_capped(path, MODEL_BYTES_MAX, "model")?;
    let model = if bytes.starts_with(&JOB_MAGIC) {
        let job = Job::decode_resolved(&bytes, None).map_err(|e| match e {
            tb_job::JobError::ModelMissing { sha256, .. } => CliError::fail(format!(
                "{path} is a job that names model {sha256}: publish that model's file"
            )),
            e => CliError::fail(format!("{path}: not a valid job blob: {e}")),
        })?;
        if job.form != JobForm::Inline {
            return Err(CliError::fail(format!("{path}: not a version 0 job blob")));
        }
        job.model_bytes()
            .map_err(|e| CliError::fail(format!("{path}: {e}")))?
    } else {
        bytes
    };
    if !model.starts_with(&ARTIFACT_MAGIC) {
        return Err(CliError::fail(format!(
            "{path} is neither a model (`BTPG`…) nor a version 0 job blob (`BTRA`…)"
        )));
    }
    let program = Program::decode(&model, 0)
        .map_err(|e| CliError::fail(format!("{path}: not a valid model: {e}")))?;
    Ok((model, program))
}

fn fee_token(a: &Args) -> Result<FeeSelector, CliError> {
    match a.value("--fee-token") {
        None | Some("industrial") => Ok(FeeSelector::Industrial),
        Some("consumer") => Ok(FeeSelector::Consumer),
        Some(other) => Err(CliError::usage(format!(
            "--fee-token {other:?}: expected industrial or consumer"
        ))),
    }
}

fn publish(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let fee = fee_token(a)?;
    let (model, program) = read_model(path)?;
    let key = load_key(g, a, a.required("--key")?)?;
    let client = g.client()?;
    let mut s = Signer::new(&client, key)?;
    let sha = hex::encode(tb_primitives::sha256_digest(&model).0);
    let p = crate::publish::publish(
        &mut s,
        &model,
        &format!("model {}…", &sha[..12]),
        fee,
        false,
    )?;
    let mut v = p.json();
    v["model_sha256"] = json!(sha);
    v["ops"] = json!(program.ops.len());
    v["publisher"] = json!(s.address().to_string());
    Ok(emit(g, a, &v, || {
        let how = if p.already {
            "already published on chain; nothing sent".to_string()
        } else if p.skipped > 0 {
            format!(
                "published: {} chunk(s) sent, {} already on chain from an earlier run",
                p.sent, p.skipped
            )
        } else {
            format!("published in {} chunk(s)", p.sent)
        };
        fields(
            &[
                ("model", sha.clone()),
                (
                    "size",
                    format!("{} bytes, {} ops", model.len(), program.ops.len()),
                ),
                ("status", how),
                (
                    "expires",
                    p.expires.map_or("-".into(), |h| {
                        format!("height {h}, unless jobs that name it pin it longer")
                    }),
                ),
            ],
            "",
        )
    }))
}

fn info(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let (model, program) = read_model(path)?;
    let sha = hex::encode(tb_primitives::sha256_digest(&model).0);
    let params: usize = program.consts.iter().map(|c| c.data.len()).sum();
    let v = json!({
        "model_sha256": sha,
        "bytes": model.len(),
        "runtime": program.runtime,
        "constants": program.consts.len(),
        "parameters": params,
        "ops": program.ops.len(),
        "outputs": program.outputs.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
    });
    Ok(emit(g, a, &v, || {
        fields(
            &[
                ("model", sha.clone()),
                ("bytes", model.len().to_string()),
                ("runtime", program.runtime.clone()),
                (
                    "constants",
                    format!("{} ({params} elements)", program.consts.len()),
                ),
                ("ops", program.ops.len().to_string()),
                (
                    "outputs",
                    program
                        .outputs
                        .iter()
                        .map(|o| o.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ],
            "",
        )
    }))
}
