//! Bring your own model on the command line: `tb-cli model import` (ONNX, or a
//! safetensors BERT-family model directory), and text jobs — `--model M --tokenizer T
//! --text S [--text S…]` on `job build`, `job run` and `compute submit` — whose input is
//! the tokenised texts (ids and attention mask; `tb_models::text`).

use crate::args::{Args, Spec};
use crate::job::{fields, read_capped};
use crate::node_cmds::emit;
use crate::rpc_client::Reply as _;
use crate::{CliError, Global, Outcome};
use blocktorch::{Fabric, HostData};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use tb_job::format::MODEL_BYTES_MAX;
use tb_job::{Job, JobForm, Program};
use tb_models::bert::{Bert, BertShape, Pooling};
use tb_models::onnx::{self, ImportOptions, InputBinding};
use tb_models::text::{Encoded, TextEncoder};

pub const IMPORT: Spec = Spec {
    command: "model import",
    usage: "\
usage: tb-cli model import MODEL.onnx -o OUT [--dim NAME=N]... [--zero-input NAME]...
                           [--mask-input NAME] [--json]
       tb-cli model import DIR -o OUT [--batch N] [--seq-len L]
                           [--pooling mean-normalized|mean|none] [--json]

Lowers a model to a BlockTorch model file (a program and its weights, `BTPG`…) that
`model publish` publishes and jobs name by SHA-256. Every shape is fixed here: a job of
the model declares exactly the input shape it was imported for.

ONNX (opsets 13 to 28; supported ops in docs/models.md): initializers become weights,
shape subgraphs are folded, and an unsupported op, attribute or dtype is refused naming
the node. The graph's first input is the job's main input, an input called
attention_mask (or --mask-input) its attention mask, and any other a side input.

DIR (or DIR/model.safetensors): a Hugging Face BERT-family encoder — config.json and
model.safetensors — with sentence-transformers pooling; its input is token ids
[batch, seq] and the attention mask, which `--text` jobs fill from tokenizer.json.

options:
  -o, --out OUT           the model file to write
  --dim NAME=N            the size of dynamic axis NAME (repeatable)
  --zero-input NAME       fold input NAME to zeros (token_type_ids, say; repeatable)
  --mask-input NAME       the input that is the attention mask (default attention_mask)
  --batch N               texts per job (default 1)
  --seq-len L             tokens per text (default: DIR/tokenizer.json's fixed length)
  --pooling P             mean-normalized (default; sentence embeddings), mean, or none
                          (the last hidden state)
  --json                  print JSON",
    flags: &["--json"],
    options: &[
        ("--out", Some("-o")),
        ("--dim", None),
        ("--zero-input", None),
        ("--mask-input", None),
        ("--batch", None),
        ("--seq-len", None),
        ("--pooling", None),
    ],
    positionals: &["MODEL"],
};

fn model_err(what: &str, e: tb_models::ModelError) -> CliError {
    CliError::fail(format!("{what}: {e}"))
}

fn bindings_text(inputs: &[InputBinding]) -> String {
    inputs
        .iter()
        .map(|b| {
            let slot = match b.slot {
                None => "zeros".to_string(),
                Some(s) => format!("{s:?}").to_lowercase(),
            };
            format!("{} {:?} {:?} → {slot}", b.name, b.elem, b.shape).to_lowercase()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `tb-cli model import`.
pub fn import(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let src = a.positionals[0].as_str();
    let out = a.required("--out")?;
    let path = Path::new(src);
    if !path.exists() {
        return Err(CliError::fail(format!(
            "{src}: no such file or directory (give an ONNX file or a model directory)"
        )));
    }
    let started = Instant::now();
    let is_onnx = path.is_file() && !src.ends_with(".safetensors");
    let (program, inputs, kind) = if is_onnx {
        for o in ["--batch", "--seq-len", "--pooling"] {
            if a.value(o).is_some() {
                return Err(CliError::usage(format!(
                    "{o} applies to a safetensors model directory"
                )));
            }
        }
        let mut opts = ImportOptions::default();
        for d in a.values("--dim") {
            let (k, v) = d
                .split_once('=')
                .and_then(|(k, v)| Some((k, v.parse::<usize>().ok()?)))
                .ok_or_else(|| CliError::usage(format!("--dim {d:?}: expected NAME=N")))?;
            opts.dims.insert(k.to_string(), v);
        }
        opts.zero_inputs = a
            .values("--zero-input")
            .into_iter()
            .map(String::from)
            .collect();
        opts.mask_input = a.value("--mask-input").map(String::from);
        let bytes = read_capped(src, onnx::ONNX_BYTES_MAX as usize, "ONNX model")?;
        let m = onnx::import(&bytes, &opts).map_err(|e| model_err(src, e))?;
        let kind = format!("ONNX, opset {}, {} nodes", m.opset, m.nodes);
        (m.program, bindings_text(&m.inputs), kind)
    } else {
        for o in ["--dim", "--zero-input", "--mask-input"] {
            if a.value(o).is_some() {
                return Err(CliError::usage(format!("{o} applies to an ONNX model")));
            }
        }
        let dir = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(Path::new("."))
        };
        let batch = crate::run::positive_opt(a, "--batch")?.unwrap_or(1);
        let seq = match crate::run::positive_opt(a, "--seq-len")? {
            Some(l) => l,
            None => {
                TextEncoder::open(&dir.join("tokenizer.json"), None)
                    .map_err(|e| {
                        CliError::fail(format!(
                            "{}: {e}; give --seq-len",
                            dir.join("tokenizer.json").display()
                        ))
                    })?
                    .seq
            }
        };
        let pooling = match a.value("--pooling") {
            None | Some("mean-normalized") => Pooling::MeanNormalized,
            Some("mean") => Pooling::Mean,
            Some("none") => Pooling::None,
            Some(o) => {
                return Err(CliError::usage(format!(
                    "--pooling {o:?}: expected mean-normalized, mean or none"
                )))
            }
        };
        let bert = Bert::open(dir).map_err(|e| model_err(&dir.display().to_string(), e))?;
        let p = bert
            .build(BertShape { batch, seq }, pooling)
            .map_err(|e| model_err(&dir.display().to_string(), e))?;
        let kind = format!(
            "BERT, {} layers, hidden {}, {} heads",
            bert.config.num_hidden_layers, bert.config.hidden_size, bert.config.num_attention_heads
        );
        (
            p,
            format!(
                "input_ids i32 [{batch}, {seq}] → main; attention_mask u8 [{batch}, {seq}] → mask"
            ),
            kind,
        )
    };
    let model = program
        .encode()
        .map_err(|e| CliError::fail(format!("{src}: {e}")))?;
    if model.len() > MODEL_BYTES_MAX {
        return Err(CliError::fail(format!(
            "{src}: the model is {} bytes, above the {MODEL_BYTES_MAX}-byte limit of one object",
            model.len()
        )));
    }
    std::fs::write(out, &model).map_err(|e| CliError::fail(format!("cannot write {out}: {e}")))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let sha = hex::encode(tb_primitives::sha256_digest(&model).0);
    let params: usize = program.consts.iter().map(|c| c.data.len()).sum();
    let outputs: Vec<String> = program.outputs.iter().map(|o| o.name.clone()).collect();
    let v = json!({
        "model_sha256": sha, "out": out, "bytes": model.len(), "source": kind,
        "constants": program.consts.len(), "parameters": params, "ops": program.ops.len(),
        "inputs": inputs, "outputs": outputs, "import_ms": ms,
    });
    Ok(emit(g, a, &v, || {
        fields(
            &[
                ("model", sha.clone()),
                ("written", format!("{out} ({} bytes)", model.len())),
                ("source", kind.clone()),
                (
                    "weights",
                    format!("{} constants, {params} parameters", program.consts.len()),
                ),
                ("ops", program.ops.len().to_string()),
                ("inputs", inputs.clone()),
                ("outputs", outputs.join(", ")),
                ("import_ms", format!("{ms:.0}")),
            ],
            "",
        )
    }))
}

/// Whether the command line asks for a text job.
pub fn wants_text(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--text" || a.starts_with("--text="))
}

/// A text job's parts.
pub struct TextJob {
    /// The version 1 blob (names the model).
    pub blob: Vec<u8>,
    /// The job, resolved with its model.
    pub job: Job,
    /// The model's bytes.
    pub model: Vec<u8>,
    /// The texts.
    pub texts: Vec<String>,
    /// Their tokenisation.
    pub encoded: Encoded,
}

/// Builds the job of `--text`s for `model` (bytes of a model file): tokenised by
/// `--tokenizer` to `--seq-len` (default: the tokenizer's own length), one text per
/// row of the batch.
pub fn text_job(a: &Args, model: Vec<u8>) -> Result<TextJob, CliError> {
    let texts: Vec<String> = a.values("--text").into_iter().map(String::from).collect();
    let tok_path = a.required("--tokenizer")?;
    let seq = crate::run::positive_opt(a, "--seq-len")?;
    let enc = TextEncoder::open(Path::new(tok_path), seq).map_err(|e| model_err(tok_path, e))?;
    let encoded = enc.encode(&texts).map_err(|e| model_err(tok_path, e))?;
    let program = Program::decode(&model, 0)
        .map_err(|e| CliError::fail(format!("the model is not valid: {e}")))?;
    let (d, input) = encoded.job_input();
    let kernel = blocktorch::CpuFabric::reference().kernel_variant_digest();
    let job = Job::new(kernel, d, program, input)
        .map_err(|e| CliError::fail(format!("building the job: {e}")))?
        .with_form(JobForm::ByReference);
    tb_job::validate(&job).map_err(|e| {
        CliError::fail(format!(
            "{} text(s) of {} tokens do not fit this model: {e} (a model takes the batch and \
             sequence length it was imported for: `model import --batch N --seq-len L`)",
            texts.len(),
            encoded.shape.seq
        ))
    })?;
    let blob = job
        .encode()
        .map_err(|e| CliError::fail(format!("building the job: {e}")))?;
    Ok(TextJob {
        blob,
        job,
        model,
        texts,
        encoded,
    })
}

/// Reads `--model` for a text job: a model file, or a model's SHA-256 read back from
/// the node (`client`).
pub fn model_arg(
    a: &Args,
    client: Option<&crate::rpc_client::Client>,
) -> Result<Vec<u8>, CliError> {
    let m = a.required("--model")?;
    let is_hash =
        m.len() == 64 && m.bytes().all(|b| b.is_ascii_hexdigit()) && !Path::new(m).exists();
    match (is_hash, client) {
        (false, _) => Ok(crate::model::read_model(m)?.0),
        (true, None) => Err(CliError::usage(format!(
            "--model {m}: a SHA-256 needs a node to read the model from; give the model file"
        ))),
        (true, Some(c)) => {
            let sha = crate::rpc_client::hid(m)?;
            let head = c
                .find("compute.getBlob", |c| {
                    crate::rpc_client::ComputeClient::get_blob(c, sha, Some(0), Some(1))
                })?
                .ok_or_else(|| {
                    CliError::fail(format!("model {m} is neither on the node nor published"))
                })?;
            let size = head.u64_at("bytes")?;
            crate::compute::fetch_object(c, &m.to_lowercase(), size, "the model")
        }
    }
}

/// The embeddings (or other f32 outputs) of a text job, one line per text.
pub fn outputs_text(texts: &[String], outputs: &[tb_job::exec::OutputTensor]) -> String {
    let mut s = String::new();
    for o in outputs {
        let HostData::F32(v) = &o.data else { continue };
        let rows = texts.len().max(1);
        let per = v.len() / rows;
        s += &format!("{} (one row per text, {per} values)\n", o.name);
        for (i, t) in texts.iter().enumerate() {
            let row = &v[i * per..(i + 1) * per];
            let head: Vec<String> = row.iter().take(6).map(|x| format!("{x:+.6}")).collect();
            let norm = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let shown: String = t.chars().take(40).collect();
            let more = if t.chars().count() > 40 { "…" } else { "" };
            s += &format!(
                "  [{i}] {shown:?}{more}: {} … (L2 norm {norm:.6})\n",
                head.join(" ")
            );
        }
    }
    s
}

/// The JSON of a text job's f32 outputs: name → one array per text.
pub fn outputs_json(texts: &[String], outputs: &[tb_job::exec::OutputTensor]) -> serde_json::Value {
    let mut m = BTreeMap::new();
    for o in outputs {
        let HostData::F32(v) = &o.data else { continue };
        let per = v.len() / texts.len().max(1);
        let rows: Vec<Vec<f32>> = v.chunks(per.max(1)).map(<[f32]>::to_vec).collect();
        m.insert(o.name.clone(), rows);
    }
    json!(m)
}
