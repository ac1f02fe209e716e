//! `tb-cli job inspect`: the header, descriptor, artifact (constants, op table with
//! costs, outputs) and hashes of a job blob, after validation.

use crate::args::{Args, Spec};
use crate::job::{fields, read_job, shape, table};
use crate::json::Json;
use crate::{CliError, Outcome};
use tb_job::format::{JOB_MAGIC, JOB_VERSION, JOB_VERSION_BY_REFERENCE};
use tb_job::program::node_name;
use tb_job::{validate, InputSlot, Job, JobForm, Node, Normalisation, Plan};

pub const SPEC: Spec = Spec {
    command: "job inspect",
    usage: "\
usage: tb-cli job inspect FILE [--model MODEL] [--json]

Decodes and validates a job blob and prints its header, input descriptor, artifact
(constants, the op table with each op's output dtype, shape, FLOPs and bytes, the
outputs), the total cost and the artifact and descriptor hashes (SHA-256). A blob that
names its model (version 1) needs the model file.

options:
  --model MODEL  the model a version 1 blob names (`job build --model-out`)
  --json         print one JSON object instead of text",
    flags: &["--json"],
    options: &[("--model", None)],
    positionals: &["FILE"],
};

fn version(job: &Job) -> u8 {
    match job.form {
        JobForm::Inline => JOB_VERSION,
        JobForm::ByReference => JOB_VERSION_BY_REFERENCE,
    }
}

fn input_bytes(job: &Job) -> u64 {
    (job.input.len() * job.descriptor.dtype.size_bytes()) as u64
}

fn normalisation(n: Normalisation) -> &'static str {
    match n {
        Normalisation::None => "none",
        Normalisation::Bytes255 => "bytes/255",
    }
}

/// The name of a value: a constant's name, or `opN`.
fn value_name(job: &Job, v: u32) -> String {
    let nc = job.program.consts.len();
    match job.program.consts.get(v as usize) {
        Some(c) if !c.name.is_empty() => format!("%{v}({})", c.name),
        Some(_) => format!("%{v}(const)"),
        None => format!("%{v}(op{})", v as usize - nc),
    }
}

pub fn inspect(a: &Args) -> Result<Outcome, CliError> {
    let path = &a.positionals[0];
    let (blob, job) = read_job(path, a.value("--model"))?;
    let plan = validate(&job)
        .map_err(|e| CliError::fail(format!("{path}: the job does not validate: {e}")))?;
    let out = if a.flag("--json") {
        format!("{}\n", json(&blob, &job, &plan).render())
    } else {
        text(&blob, &job, &plan)
    };
    Ok(Outcome::ok(out))
}

fn text(blob: &[u8], job: &Job, plan: &Plan) -> String {
    let d = &job.descriptor;
    let p = &job.program;
    let nc = p.consts.len();
    let mut s = String::from("header\n");
    s += &fields(
        &[
            ("magic", String::from_utf8_lossy(&JOB_MAGIC).into_owned()),
            (
                "version",
                match job.form {
                    JobForm::Inline => format!("{JOB_VERSION} (the artifact inline)"),
                    JobForm::ByReference => {
                        format!("{JOB_VERSION_BY_REFERENCE} (names its model)")
                    }
                },
            ),
            ("kernel digest", hex::encode(job.kernel_digest)),
            (
                "model",
                match job.form {
                    JobForm::Inline => "inline".into(),
                    JobForm::ByReference => hex::encode(job.artifact_hash),
                },
            ),
            ("artifact bytes", job.artifact_bytes.to_string()),
            ("input bytes", input_bytes(job).to_string()),
            ("blob bytes", blob.len().to_string()),
            ("task id", Job::task_id(blob).to_hex()),
        ],
        "  ",
    );
    s += "descriptor\n";
    s += &fields(
        &[
            ("dtype", d.dtype.to_string()),
            ("shape", shape(&d.shape)),
            ("strides", shape(&d.strides)),
            ("normalisation", normalisation(d.normalisation).into()),
            ("profile epoch", format!("{:?}", d.profile_epoch)),
            (
                "attention mask",
                d.attention_mask
                    .as_ref()
                    .map_or("none".into(), |m| shape(&m.shape)),
            ),
            (
                "padding token",
                d.padding_token.map_or("none".into(), |t| t.to_string()),
            ),
            (
                "bias",
                if d.bias.is_empty() {
                    "none".into()
                } else {
                    d.bias
                        .iter()
                        .map(|b| shape(&b.shape))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            ),
        ],
        "  ",
    );
    s += "artifact\n";
    s += &fields(&[("runtime", p.runtime.clone())], "  ");
    s += &format!("  constants ({})\n", nc);
    let rows: Vec<Vec<String>> = p
        .consts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                format!("%{i}"),
                if c.name.is_empty() {
                    "-".into()
                } else {
                    c.name.clone()
                },
                c.data.dtype().to_string(),
                shape(&c.shape),
            ]
        })
        .collect();
    s += &table(&rows, &[], "    ");
    s += &format!("  ops ({})\n", p.ops.len());
    let mut rows = vec![vec![
        "op".to_string(),
        "value".into(),
        "node".into(),
        "args".into(),
        "dtype".into(),
        "shape".into(),
        "flops".into(),
        "bytes".into(),
    ]];
    for (i, op) in p.ops.iter().enumerate() {
        let v = &plan.values[nc + i];
        let c = plan.costs[i];
        rows.push(vec![
            i.to_string(),
            format!("%{}", nc + i),
            node_name(&op.node),
            op.args
                .iter()
                .map(|a| value_name(job, *a))
                .collect::<Vec<_>>()
                .join(" "),
            v.dtype.to_string(),
            shape(v.layout.shape()),
            c.flops.to_string(),
            c.bytes.to_string(),
        ]);
    }
    s += &table(
        &rows,
        &[true, true, false, false, false, false, true, true],
        "    ",
    );
    s += &format!("  outputs ({})\n", p.outputs.len());
    let rows: Vec<Vec<String>> = p
        .outputs
        .iter()
        .map(|o| {
            let v = &plan.values[o.value as usize];
            vec![
                o.name.clone(),
                value_name(job, o.value),
                v.dtype.to_string(),
                shape(v.layout.shape()),
            ]
        })
        .collect();
    s += &table(&rows, &[], "    ");
    s += "totals\n";
    s += &fields(
        &[
            ("flops", plan.total.flops.to_string()),
            ("bytes", plan.total.bytes.to_string()),
            ("artifact hash", hex::encode(job.artifact_hash)),
            ("descriptor hash", hex::encode(job.descriptor_hash)),
        ],
        "  ",
    );
    s
}

fn slot_name(slot: InputSlot) -> String {
    match slot {
        InputSlot::Main => "main".into(),
        InputSlot::Mask => "mask".into(),
        InputSlot::Padding => "padding".into(),
        InputSlot::Bias(i) => format!("bias{i}"),
    }
}

fn json(blob: &[u8], job: &Job, plan: &Plan) -> Json {
    let d = &job.descriptor;
    let p = &job.program;
    let nc = p.consts.len();
    let header = Json::Obj(vec![
        ("magic", Json::str(String::from_utf8_lossy(&JOB_MAGIC))),
        ("version", Json::int(version(job))),
        ("kernel_digest", Json::hex(job.kernel_digest)),
        (
            "model_sha256",
            match job.form {
                JobForm::Inline => Json::Null,
                JobForm::ByReference => Json::hex(job.artifact_hash),
            },
        ),
        ("artifact_bytes", Json::int(job.artifact_bytes)),
        ("input_bytes", Json::int(input_bytes(job))),
        ("blob_bytes", Json::int(blob.len() as u64)),
        ("task_id", Json::str(Job::task_id(blob).to_hex())),
    ]);
    let descriptor = Json::Obj(vec![
        ("dtype", Json::str(d.dtype.to_string())),
        ("shape", Json::shape(&d.shape)),
        ("strides", Json::shape(&d.strides)),
        ("normalisation", Json::str(normalisation(d.normalisation))),
        ("profile_epoch", Json::str(d.profile_epoch.clone())),
        (
            "attention_mask_shape",
            d.attention_mask
                .as_ref()
                .map_or(Json::Null, |m| Json::shape(&m.shape)),
        ),
        (
            "padding_token",
            d.padding_token.map_or(Json::Null, Json::int),
        ),
        (
            "bias_shapes",
            Json::Arr(d.bias.iter().map(|b| Json::shape(&b.shape)).collect()),
        ),
    ]);
    let constants = p
        .consts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Json::Obj(vec![
                ("value", Json::int(i as u64)),
                ("name", Json::str(c.name.clone())),
                ("dtype", Json::str(c.data.dtype().to_string())),
                ("shape", Json::shape(&c.shape)),
            ])
        })
        .collect();
    let ops = p
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let v = &plan.values[nc + i];
            let c = plan.costs[i];
            let mut f = vec![
                ("index", Json::int(i as u64)),
                ("value", Json::int((nc + i) as u64)),
                ("op", Json::str(node_name(&op.node))),
            ];
            if let Node::Input(slot) = op.node {
                f.push(("input", Json::str(slot_name(slot))));
            }
            f.extend([
                (
                    "args",
                    Json::Arr(op.args.iter().map(|a| Json::int(*a)).collect()),
                ),
                ("dtype", Json::str(v.dtype.to_string())),
                ("shape", Json::shape(v.layout.shape())),
                ("flops", Json::int(c.flops)),
                ("bytes", Json::int(c.bytes)),
            ]);
            Json::Obj(f)
        })
        .collect();
    let outputs = p
        .outputs
        .iter()
        .map(|o| {
            let v = &plan.values[o.value as usize];
            Json::Obj(vec![
                ("name", Json::str(o.name.clone())),
                ("value", Json::int(o.value)),
                ("dtype", Json::str(v.dtype.to_string())),
                ("shape", Json::shape(v.layout.shape())),
            ])
        })
        .collect();
    Json::Obj(vec![
        ("header", header),
        ("descriptor", descriptor),
        (
            "artifact",
            Json::Obj(vec![
                ("runtime", Json::str(p.runtime.clone())),
                ("constants", Json::Arr(constants)),
                ("ops", Json::Arr(ops)),
            ]),
        ),
        ("outputs", Json::Arr(outputs)),
        ("total_flops", Json::int(plan.total.flops)),
        ("total_bytes", Json::int(plan.total.bytes)),
        ("artifact_hash", Json::hex(job.artifact_hash)),
        ("descriptor_hash", Json::hex(job.descriptor_hash)),
    ])
}
