//! `tb-cli job run`: executes a job blob on a fabric, prints its digests and trace
//! root, optionally writes the trace leaves and signs a compute receipt.

use crate::args::{Args, Spec};
use crate::job::{fields, read_job, shape, table};
use crate::json::Json;
use crate::{CliError, Outcome};
use blocktorch::cpu::gemm::Simd;
use blocktorch::{CpuConfig, CpuFabric, Fabric};
use blocktorch_cuda::{CudaConfig, CudaFabric};
use blocktorch_wgpu::{WgpuConfig, WgpuFabric};
use tb_job::{execute, ExecOptions, ExecResult, Job, JobError, Receipt, ReplayMode, SignedReceipt};
use tb_primitives::SecretKey;

pub const SPEC: Spec = Spec {
    command: "job run",
    usage: "\
usage: tb-cli job run FILE [--model MODEL] [--fabric cpu|cuda|wgpu] [--threads N]
                           [--cross-fabric] [--json] [--trace-out LEAVES]
                           [--result-out OUT [--format safetensors|npy|json]]
                           [--receipt-key-seed HEX32 --chain-id N [--benchmark-commit S]]

Validates and executes a job blob and prints the fabric, each output's name, shape and
digest, output_digest_sha256, trace_root, n_ops, cross_fabric, tensor_profile_epoch and
the run time. Results are bit-identical on every fabric and thread count.

options:
  --model MODEL            the model a version 1 blob names (`job build --model-out`)
  --result-out OUT         write the outputs (as `compute result -o` does: the same
                           bytes for the same answer)
  --format F               safetensors (default), npy or json; from OUT's extension
                           when it is .npy or .json
  --fabric cpu|cuda|wgpu   the fabric (default cpu); wgpu takes the adapter named by
                           TB_WGPU_ADAPTER, else the best one (a GPU before lavapipe)
  --threads N              CPU worker threads, with the best SIMD path of this CPU
                           (without it: TB_BLOCKTORCH_THREADS and TB_BLOCKTORCH_SIMD,
                           else every core and the best SIMD path)
  --cross-fabric           run a job built for other kernels (replay mode); the example
                           jobs carry the CPU reference's kernel digest, so running them
                           on CUDA or wgpu needs this
  --json                   print one JSON object instead of text
  --trace-out LEAVES       write the trace leaves: 32 bytes per op, in program order
  --receipt-key-seed HEX32 sign a compute receipt with the Ed25519 key of this 32-byte
                           seed (64 hex digits; other users can see command lines, so
                           use it for development keys only)
  --chain-id N             the chain the receipt is signed for (needed with a seed)
  --benchmark-commit S     the receipt's benchmark commit (up to 64 bytes; default empty)",
    flags: &["--cross-fabric", "--json"],
    options: &[
        ("--fabric", None),
        ("--threads", None),
        ("--trace-out", None),
        ("--receipt-key-seed", None),
        ("--chain-id", None),
        ("--benchmark-commit", None),
        ("--model", None),
        ("--result-out", None),
        ("--format", None),
    ],
    positionals: &["FILE"],
};

/// What `--receipt-key-seed` asks for.
struct ReceiptRequest {
    key: SecretKey,
    chain_id: u64,
    benchmark_commit: String,
}

fn receipt_request(a: &Args) -> Result<Option<ReceiptRequest>, CliError> {
    let Some(seed_hex) = a.value("--receipt-key-seed") else {
        for o in ["--chain-id", "--benchmark-commit"] {
            if a.value(o).is_some() {
                return Err(CliError::usage(format!("{o} needs --receipt-key-seed")));
            }
        }
        return Ok(None);
    };
    let mut seed = [0u8; 32];
    hex::decode_to_slice(seed_hex, &mut seed).map_err(|_| {
        CliError::usage("--receipt-key-seed: expected 64 hex digits (a 32-byte seed)")
    })?;
    let chain_id = a
        .parsed::<u64>("--chain-id", "an unsigned integer")?
        .ok_or_else(|| CliError::usage("--receipt-key-seed needs --chain-id N"))?;
    let benchmark_commit = a.value("--benchmark-commit").unwrap_or("").to_string();
    if benchmark_commit.len() > tb_job::receipt::RECEIPT_TEXT_BYTES_MAX {
        return Err(CliError::usage(format!(
            "--benchmark-commit is {} bytes, above the limit of {}",
            benchmark_commit.len(),
            tb_job::receipt::RECEIPT_TEXT_BYTES_MAX
        )));
    }
    Ok(Some(ReceiptRequest {
        key: SecretKey::from_seed(seed),
        chain_id,
        benchmark_commit,
    }))
}

fn cpu_fabric(threads: Option<usize>) -> Result<CpuFabric, CliError> {
    let config = match threads {
        Some(n) => CpuConfig::new(Simd::detect(), n),
        None => CpuConfig::from_env().map_err(|e| CliError::fail(format!("CPU fabric: {e}")))?,
    };
    CpuFabric::new(config).map_err(|e| CliError::fail(format!("CPU fabric: {e}")))
}

fn cuda_fabric() -> Result<CudaFabric, CliError> {
    let config = CudaConfig::from_env().map_err(|e| CliError::fail(format!("CUDA fabric: {e}")))?;
    CudaFabric::new(config).map_err(|e| {
        CliError::fail(format!(
            "the CUDA fabric is not available on this machine: {e} (use --fabric cpu)"
        ))
    })
}

fn wgpu_fabric() -> Result<WgpuFabric, CliError> {
    WgpuFabric::new(WgpuConfig::from_env()).map_err(|e| {
        CliError::fail(format!(
            "the wgpu fabric is not available on this machine: {e} (use --fabric cpu)"
        ))
    })
}

fn run_error(e: JobError, fabric: &str) -> CliError {
    match e {
        JobError::KernelDigestMismatch {
            job,
            fabric: theirs,
        } => CliError::fail(format!(
            "the job was built for kernel digest {job}, the {fabric} fabric's is {theirs}; \
             pass --cross-fabric to replay it anyway (results are bit-identical across \
             fabrics; the example jobs carry the CPU reference's kernel digest)"
        )),
        other => CliError::fail(format!("the job failed on the {fabric} fabric: {other}")),
    }
}

/// `--fabric cpu|cuda|wgpu` and `--threads N`, checked: the fabric's name and the CPU
/// thread count.
pub fn fabric_args(a: &Args) -> Result<(&str, Option<usize>), CliError> {
    let fabric_name = a.value("--fabric").unwrap_or("cpu");
    let threads = a.parsed::<usize>("--threads", "a positive integer")?;
    if !["cpu", "cuda", "wgpu"].contains(&fabric_name) {
        return Err(CliError::usage(format!(
            "--fabric {fabric_name:?}: expected cpu, cuda or wgpu"
        )));
    }
    if fabric_name != "cpu" && threads.is_some() {
        return Err(CliError::usage("--threads applies to the CPU fabric only"));
    }
    Ok((fabric_name, threads))
}

/// The fabric `fabric_args` named.
pub fn open_fabric(name: &str, threads: Option<usize>) -> Result<Box<dyn Fabric>, CliError> {
    Ok(match name {
        "cuda" => Box::new(cuda_fabric()?),
        "wgpu" => Box::new(wgpu_fabric()?),
        _ => Box::new(cpu_fabric(threads)?),
    })
}

/// `job run` of texts: the job is built from `--model`, `--tokenizer` and `--text`s.
pub const TEXT_SPEC: Spec = Spec {
    command: "job run",
    usage: "\
usage: tb-cli job run --model MODEL --tokenizer TOKENIZER --text S [--text S]...
                      [--seq-len L] [--fabric cpu|cuda|wgpu] [--threads N] [--json]
                      [--trace-out LEAVES] [--result-out OUT [--format F]]

Tokenises the texts with TOKENIZER (a Hugging Face tokenizer.json: special tokens added,
truncated and padded to L, by default the tokenizer's own fixed length), builds the job
of MODEL (a model file from `model import`) whose input is the token ids and attention
mask, runs it, and prints its digests and, per text, its embedding (or other output).
The model takes as many texts as the batch it was imported for.

options:
  --model MODEL        the model file
  --tokenizer T        the model's tokenizer.json
  --text S             a text (repeatable; one per row of the batch)
  --seq-len L          tokens per text
  --fabric, --threads, --json, --trace-out, --result-out, --format: as for a job blob",
    flags: &["--json"],
    options: &[
        ("--model", None),
        ("--tokenizer", None),
        ("--text", None),
        ("--seq-len", None),
        ("--fabric", None),
        ("--threads", None),
        ("--trace-out", None),
        ("--result-out", None),
        ("--format", None),
    ],
    positionals: &[],
};

/// `--NAME N` as a positive integer, if given.
pub fn positive_opt(a: &Args, name: &str) -> Result<Option<usize>, CliError> {
    match a.parsed::<usize>(name, "a positive integer")? {
        Some(0) => Err(CliError::usage(format!("{name} must be at least 1"))),
        v => Ok(v),
    }
}

/// `tb-cli job run --text …`.
pub fn run_text(a: &Args) -> Result<Outcome, CliError> {
    let model = crate::text::model_arg(a, None)?;
    let t = crate::text::text_job(a, model)?;
    run_job(a, t.blob, t.job, Some(&t.texts))
}

pub fn run(a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let (blob, job) = read_job(path, a.value("--model"))?;
    run_job(a, blob, job, None)
}

fn run_job(
    a: &Args,
    blob: Vec<u8>,
    job: Job,
    texts: Option<&[String]>,
) -> Result<Outcome, CliError> {
    let (fabric_name, threads) = fabric_args(a)?;
    let receipt = receipt_request(a)?;
    let fabric = open_fabric(fabric_name, threads)?;
    let opts = ExecOptions {
        replay: if a.flag("--cross-fabric") {
            ReplayMode::CrossFabric
        } else {
            ReplayMode::Strict
        },
        profile: true,
    };
    let format = crate::results::Format::parse(a.value("--format"), a.value("--result-out"))?;
    if a.value("--format").is_some() && a.value("--result-out").is_none() {
        return Err(CliError::usage("--format applies to --result-out"));
    }
    let result = execute(&job, fabric.as_ref(), opts).map_err(|e| run_error(e, fabric_name))?;
    if let Some(out) = a.value("--result-out") {
        let r = tb_job::ResultObject::of_run(&result);
        crate::results::write(
            &r,
            &result.output_digest,
            format,
            out,
            serde_json::json!({"task_id": Job::task_id(&blob).to_hex(), "source": "job run"}),
        )?;
    }
    if let Some(out) = a.value("--trace-out") {
        let leaves: Vec<u8> = result.op_digests.iter().flatten().copied().collect();
        std::fs::write(out, leaves)
            .map_err(|e| CliError::fail(format!("cannot write {out}: {e}")))?;
    }
    let signed = receipt
        .map(|r| sign(&blob, &job, &result, &r))
        .transpose()?;
    let out = match (a.flag("--json"), texts) {
        (true, None) => format!("{}\n", json(&blob, &job, &result, signed.as_ref()).render()),
        (true, Some(t)) => {
            let mut v: serde_json::Value =
                serde_json::from_str(&json(&blob, &job, &result, None).render())
                    .map_err(|e| CliError::fail(format!("internal: {e}")))?;
            v["texts"] = serde_json::json!(t);
            v["values"] = crate::text::outputs_json(t, &result.outputs);
            format!("{v}\n")
        }
        (false, None) => text(&job, &result, signed.as_ref()),
        (false, Some(t)) => {
            text(&job, &result, None) + &crate::text::outputs_text(t, &result.outputs)
        }
    };
    Ok(Outcome::ok(out))
}

/// Builds, signs and checks the receipt of `run`.
fn sign(
    blob: &[u8],
    job: &Job,
    run: &ExecResult,
    r: &ReceiptRequest,
) -> Result<SignedReceipt, CliError> {
    let err = |e: JobError| CliError::fail(format!("cannot make the receipt: {e}"));
    let signed = Receipt::of_run(blob, job, run, &r.benchmark_commit, r.key.address())
        .and_then(|receipt| receipt.sign(&r.key, r.chain_id))
        .map_err(err)?;
    signed.verify(r.chain_id).map_err(err)?;
    let back = SignedReceipt::from_bytes(&signed.to_bytes()).map_err(err)?;
    if back != signed {
        return Err(CliError::fail(
            "the signed receipt does not survive its own codec",
        ));
    }
    Ok(signed)
}

fn time_ms(r: &ExecResult) -> f64 {
    r.elapsed_us as f64 / 1000.0
}

fn text(job: &Job, r: &ExecResult, signed: Option<&SignedReceipt>) -> String {
    let mut s = fields(
        &[
            ("fabric", r.fabric.clone()),
            ("device", r.device.clone()),
            (
                "kernel_variant_digest",
                hex::encode(r.kernel_variant_digest),
            ),
            ("job kernel digest", hex::encode(job.kernel_digest)),
            ("cross_fabric", r.cross_fabric.to_string()),
        ],
        "",
    );
    s += "outputs\n";
    let rows: Vec<Vec<String>> = r
        .outputs
        .iter()
        .map(|o| vec![o.name.clone(), shape(&o.shape), hex::encode(o.digest)])
        .collect();
    s += &table(&rows, &[], "  ");
    let mut pairs = vec![
        ("output_digest_sha256", hex::encode(r.output_digest)),
        ("trace_root", r.trace_root.to_hex()),
        ("n_ops", r.n_ops.to_string()),
        (
            "tensor_profile_epoch",
            r.profile_epoch.map_or("none".into(), hex::encode),
        ),
        ("time_ms", format!("{:.3}", time_ms(r))),
    ];
    if let Some(sr) = signed {
        pairs.push(("receipt provider", sr.receipt.provider.to_text()));
        pairs.push(("receipt", hex::encode(sr.to_bytes())));
    }
    s += &fields(&pairs, "");
    s
}

fn json(blob: &[u8], job: &Job, r: &ExecResult, signed: Option<&SignedReceipt>) -> Json {
    let outputs = r
        .outputs
        .iter()
        .map(|o| {
            Json::Obj(vec![
                ("name", Json::str(o.name.clone())),
                ("shape", Json::shape(&o.shape)),
                ("digest", Json::hex(o.digest)),
            ])
        })
        .collect();
    let mut f = vec![
        ("fabric", Json::str(r.fabric.clone())),
        ("device", Json::str(r.device.clone())),
        ("kernel_variant_digest", Json::hex(r.kernel_variant_digest)),
        ("job_kernel_digest", Json::hex(job.kernel_digest)),
        ("cross_fabric", Json::Bool(r.cross_fabric)),
        ("task_id", Json::str(Job::task_id(blob).to_hex())),
        ("outputs", Json::Arr(outputs)),
        ("output_digest_sha256", Json::hex(r.output_digest)),
        ("trace_root", Json::str(r.trace_root.to_hex())),
        ("n_ops", Json::int(r.n_ops as u64)),
        (
            "tensor_profile_epoch",
            r.profile_epoch.map_or(Json::Null, Json::hex),
        ),
        ("time_ms", Json::decimal(time_ms(r), 3)),
    ];
    if let Some(sr) = signed {
        f.push(("receipt_provider", Json::str(sr.receipt.provider.to_text())));
        f.push(("receipt", Json::hex(sr.to_bytes())));
    }
    Json::Obj(f)
}
