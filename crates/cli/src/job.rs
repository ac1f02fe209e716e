//! `tb-cli job ...`: dispatch, `job build`, and what the job commands share (reading
//! blobs and leaf files, formatting).

use crate::args::{Parsed, Spec};
use crate::{CliError, Outcome};
use std::io::Read as _;
use std::path::Path;
use tb_job::examples::{build_example, EXAMPLES};
use tb_job::format::{JOB_BLOB_BYTES_MAX, MODEL_BYTES_MAX};
use tb_job::{Job, JobForm};

const USAGE: &str = "\
usage: tb-cli job COMMAND ...

commands:
  build     write an example job blob
  inspect   decode, validate and describe a job blob
  run       execute a job blob on the CPU or CUDA fabric
  referee   re-execute one op on the CPU reference against a provider's trace
  verify    replay a job, compare with a provider's trace, build the challenge

Run `tb-cli job COMMAND --help` for a command's options.";

/// Runs `tb-cli job ARGS...`.
pub fn dispatch(args: &[String]) -> Result<Outcome, CliError> {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => Ok(Outcome::ok(format!("{USAGE}\n"))),
        Some("build") if crate::text::wants_text(rest) => with_spec(&BUILD_TEXT, rest, build_text),
        Some("build") => with_spec(&BUILD, rest, build),
        Some("inspect") => with_spec(&crate::inspect::SPEC, rest, crate::inspect::inspect),
        Some("run") if crate::text::wants_text(rest) => {
            with_spec(&crate::run::TEXT_SPEC, rest, crate::run::run_text)
        }
        Some("run") => with_spec(&crate::run::SPEC, rest, crate::run::run),
        Some("referee") => with_spec(&crate::referee::SPEC, rest, crate::referee::referee),
        Some("verify") => with_spec(&crate::verify::SPEC, rest, crate::verify::verify),
        Some(other) => Err(CliError::usage(format!(
            "unknown job command {other:?}: expected build, inspect, run, referee or verify (try `tb-cli job --help`)"
        ))),
    }
}

fn with_spec(
    spec: &Spec,
    args: &[String],
    f: fn(&crate::args::Args) -> Result<Outcome, CliError>,
) -> Result<Outcome, CliError> {
    match spec.parse(args)? {
        Parsed::Help(h) => Ok(Outcome::ok(h)),
        Parsed::Run(a) => f(&a),
    }
}

/// Every command of `job`, for the completion tree (the first spec of a path wins).
pub(crate) const SPECS: &[&Spec] = &[
    &BUILD,
    &BUILD_TEXT,
    &crate::inspect::SPEC,
    &crate::run::SPEC,
    &crate::run::TEXT_SPEC,
    &crate::referee::SPEC,
    &crate::verify::SPEC,
];

const BUILD: Spec = Spec {
    command: "job build",
    usage: "\
usage: tb-cli job build --example NAME -o FILE [--model-out MODEL]
       tb-cli job build --example list

Builds an example job (fixed seeds, the CPU reference's kernel digest) and writes its
blob to FILE. With --model-out, the model (the program and its weights) goes to MODEL
and FILE is a version 1 blob that names it by SHA-256 and carries only the input:
publish the model once (`tb-cli model publish MODEL`), then submit any number of such
jobs.

options:
  --example NAME      mlp, transformer, matmul-chain or train-step; `list` lists them;
                      `lookup:ROWSxDIM` is an embedding lookup of 8 tokens in a seeded
                      f32 table of ROWS × DIM (a large model with a small job, for
                      publishing models: lookup:25600x1024 is 100 MiB)
  -o, --out FILE      where to write the blob
  --model-out MODEL   write the model there and a blob that names it",
    flags: &[],
    options: &[
        ("--example", None),
        ("--out", Some("-o")),
        ("--model-out", None),
    ],
    positionals: &[],
};

const BUILD_TEXT: Spec = Spec {
    command: "job build",
    usage: "\
usage: tb-cli job build --model MODEL --tokenizer TOKENIZER --text S [--text S]...
                        [--seq-len L] -o FILE

Builds the job of texts for MODEL (a model file from `model import`): the texts are
tokenised with TOKENIZER (tokenizer.json; padded and truncated to L, by default the
tokenizer's own length) into token ids (the input) and the attention mask. FILE is a
version 1 blob naming MODEL by SHA-256: `compute submit FILE --model MODEL` publishes
the model once and submits the job.",
    flags: &[],
    options: &[
        ("--model", None),
        ("--tokenizer", None),
        ("--text", None),
        ("--seq-len", None),
        ("--out", Some("-o")),
    ],
    positionals: &[],
};

fn build_text(a: &crate::args::Args) -> Result<Outcome, CliError> {
    let out = a.required("--out")?;
    let model = crate::text::model_arg(a, None)?;
    let t = crate::text::text_job(a, model)?;
    std::fs::write(out, &t.blob).map_err(|e| CliError::fail(format!("cannot write {out}: {e}")))?;
    Ok(Outcome::ok(fields(
        &[
            ("job", format!("{out} ({} bytes, version 1)", t.blob.len())),
            ("task id", Job::task_id(&t.blob).to_hex()),
            ("model", hex::encode(t.job.artifact_hash)),
            (
                "texts",
                format!("{} × {} tokens", t.encoded.shape.batch, t.encoded.shape.seq),
            ),
            (
                "tokens",
                t.encoded
                    .lengths
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
        "",
    )))
}

fn build(a: &crate::args::Args) -> Result<Outcome, CliError> {
    let name = a.required("--example")?;
    if name == "list" {
        return Ok(Outcome::ok(
            EXAMPLES.iter().map(|e| format!("{e}\n")).collect(),
        ));
    }
    let lookup = name.strip_prefix("lookup:").map(|dims| {
        dims.split_once('x')
            .and_then(|(r, d)| Some((r.parse::<usize>().ok()?, d.parse::<usize>().ok()?)))
            .filter(|(r, d)| *r >= 1 && *d >= 1 && r.saturating_mul(*d) <= (1 << 27))
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--example {name:?}: expected lookup:ROWSxDIM with ROWS × DIM ≤ 2^27"
                ))
            })
    });
    if lookup.is_none() && !EXAMPLES.contains(&name) {
        return Err(CliError::usage(format!(
            "no example {name:?}; the examples are {}",
            EXAMPLES.join(", ")
        )));
    }
    let out = a.required("--out")?;
    let mut job = match lookup {
        Some(dims) => {
            let (rows, dim) = dims?;
            tb_job::examples::lookup_job(rows, dim, 8, 21)
        }
        None => build_example(name),
    }
    .map_err(|e| CliError::fail(format!("example {name}: {e}")))?;
    let mut text = String::new();
    if let Some(model_out) = a.value("--model-out") {
        job = job.with_form(JobForm::ByReference);
        let model = job
            .model_bytes()
            .map_err(|e| CliError::fail(format!("example {name}: {e}")))?;
        std::fs::write(model_out, &model)
            .map_err(|e| CliError::fail(format!("cannot write {model_out}: {e}")))?;
        text += &format!(
            "wrote {model_out}: the model of example {name}, {} bytes, SHA-256 {}\n",
            model.len(),
            hex::encode(job.artifact_hash)
        );
    }
    let blob = job
        .encode()
        .map_err(|e| CliError::fail(format!("example {name}: {e}")))?;
    std::fs::write(out, &blob).map_err(|e| CliError::fail(format!("cannot write {out}: {e}")))?;
    text += &format!(
        "wrote {out}: example {name}, {} bytes{}, {} ops, task id {}\n",
        blob.len(),
        match job.form {
            JobForm::Inline => "",
            JobForm::ByReference => " (names the model)",
        },
        job.program.ops.len(),
        Job::task_id(&blob)
    );
    Ok(Outcome::ok(text))
}

/// Reads at most `max` bytes of `path`; a longer file is refused without reading it all.
pub fn read_capped(path: &str, max: usize, what: &str) -> Result<Vec<u8>, CliError> {
    let f = std::fs::File::open(Path::new(path))
        .map_err(|e| CliError::fail(format!("cannot open {path}: {e}")))?;
    let mut bytes = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::fail(format!("cannot read {path}: {e}")))?;
    if bytes.len() > max {
        return Err(CliError::fail(format!(
            "{path} is larger than the {max}-byte limit of a {what}"
        )));
    }
    Ok(bytes)
}

/// Reads and decodes a job blob; a version 1 blob with the model at `model` (a model
/// file: the artifact bytes).
pub fn read_job(path: &str, model: Option<&str>) -> Result<(Vec<u8>, Job), CliError> {
    let blob = read_capped(path, JOB_BLOB_BYTES_MAX, "job blob")?;
    let model_bytes = match model {
        Some(m) => Some(read_capped(m, MODEL_BYTES_MAX, "model")?),
        None => None,
    };
    let job = Job::decode_resolved(&blob, model_bytes.as_deref()).map_err(|e| match e {
        tb_job::JobError::ModelMissing { .. } => {
            CliError::fail(format!("{path}: {e}; pass the model file with --model"))
        }
        e => CliError::fail(format!("{path}: not a valid job blob: {e}")),
    })?;
    Ok((blob, job))
}

/// Reads a trace leaf file: `n_ops` leaves of 32 bytes, in program order.
pub fn read_leaves(path: &str, n_ops: usize) -> Result<Vec<[u8; 32]>, CliError> {
    let want = n_ops * 32;
    let bytes = read_capped(path, want, "trace of this job")?;
    if bytes.len() != want {
        return Err(CliError::fail(format!(
            "{path}: {} bytes is not a trace of this job ({n_ops} ops × 32 bytes = {want})",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut leaf = [0u8; 32];
            leaf.copy_from_slice(c);
            leaf
        })
        .collect())
}

/// A shape as `[2, 3]`.
pub fn shape(dims: &[usize]) -> String {
    format!("{dims:?}")
}

/// Rows as aligned columns (two spaces apart); `right[i]` right-aligns column `i`.
pub fn table(rows: &[Vec<String>], right: &[bool], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (i, c) in r.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            let last = i + 1 == r.len();
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if !last {
                    line.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines with the keys padded to one width.
pub fn fields(pairs: &[(&str, String)], indent: &str) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(k, v)| vec![k.to_string(), v.clone()])
        .collect();
    table(&rows, &[], indent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let rows = vec![
            vec!["a".to_string(), "10".to_string(), "x".to_string()],
            vec!["bbb".to_string(), "2".to_string(), "".to_string()],
        ];
        assert_eq!(
            table(&rows, &[false, true], "  "),
            "  a    10  x\n  bbb   2\n"
        );
    }
}
