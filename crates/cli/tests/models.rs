//! Bring your own model through the real binary: `model import` of a safetensors BERT
//! directory and of an ONNX file, text jobs (`--text`) on `job run` and `job build`,
//! and the first errors a user meets — a malformed ONNX file, an unsupported op, a
//! truncated safetensors file, a config naming a missing tensor — each one line.

mod support;

use safetensors::tensor::{serialize, TensorView};
use safetensors::Dtype;
use serde_json::Value;
use std::path::Path;
use support::*;
use tempfile::TempDir;

const TOKENIZER: &str = "tests/data/tiny-bert-tokenizer.json";
const ATTENTION: &[u8] = include_bytes!("../../models/tests/data/attention_block.onnx");

/// A one-layer BERT (hidden 8, 2 heads, vocabulary 10) with seeded weights.
fn tiny_bert(dir: &Path, skip: Option<&str>) {
    let config = r#"{"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![10, 8]),
        ("embeddings.position_embeddings.weight".into(), vec![16, 8]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, 8]),
        ("embeddings.LayerNorm.weight".into(), vec![8]),
        ("embeddings.LayerNorm.bias".into(), vec![8]),
    ];
    let p = "encoder.layer.0.";
    for (n, o, i) in [
        ("attention.self.query", 8, 8),
        ("attention.self.key", 8, 8),
        ("attention.self.value", 8, 8),
        ("attention.output.dense", 8, 8),
        ("intermediate.dense", 16, 8),
        ("output.dense", 8, 16),
    ] {
        shapes.push((format!("{p}{n}.weight"), vec![o, i]));
        shapes.push((format!("{p}{n}.bias"), vec![o]));
    }
    for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
        shapes.push((format!("{p}{n}.weight"), vec![8]));
        shapes.push((format!("{p}{n}.bias"), vec![8]));
    }
    shapes.retain(|(n, _)| Some(n.as_str()) != skip);
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .enumerate()
        .map(|(k, (_, s))| {
            let n: usize = s.iter().product();
            blocktorch::rng::uniform_f32(100 + k as u64, n, -0.5, 0.5)
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = shapes
        .iter()
        .zip(&data)
        .map(|((n, s), d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        serialize(views, None).unwrap(),
    )
    .unwrap();
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).expect("JSON output")
}

#[test]
fn a_safetensors_bert_imports_and_embeds_text() {
    let dir = TempDir::new().unwrap();
    tiny_bert(dir.path(), None);
    let model = dir.path().join("m.btm");
    let out = ok(&[
        "model",
        "import",
        s(dir.path()),
        "-o",
        s(&model),
        "--batch",
        "2",
        "--seq-len",
        "8",
    ]);
    assert!(out.contains("BERT, 1 layers, hidden 8, 2 heads"), "{out}");
    assert!(out.contains("input_ids i32 [2, 8] → main"), "{out}");

    let texts = ["--text", "Hello blocks", "--text", "the verified world"];
    let mut args = vec![
        "job",
        "run",
        "--model",
        s(&model),
        "--tokenizer",
        TOKENIZER,
        "--json",
        "--threads",
        "1",
    ];
    args.extend(texts);
    let one = json(&ok(&args));
    let rows = one["values"]["embedding"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let norm: f64 = r
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert_ne!(rows[0], rows[1]);
    args[8] = "2";
    let two = json(&ok(&args));
    assert_eq!(one["output_digest_sha256"], two["output_digest_sha256"]);
    assert_eq!(one["trace_root"], two["trace_root"]);

    // The same texts as a job blob that names the model: the same answer.
    let blob = dir.path().join("t.btj");
    let mut b = vec![
        "job",
        "build",
        "--model",
        s(&model),
        "--tokenizer",
        TOKENIZER,
        "-o",
        s(&blob),
    ];
    b.extend(texts);
    let built = ok(&b);
    assert!(built.contains("2 × 8 tokens"), "{built}");
    let run = json(&ok(&[
        "job",
        "run",
        s(&blob),
        "--model",
        s(&model),
        "--json",
    ]));
    assert_eq!(run["output_digest_sha256"], one["output_digest_sha256"]);

    // Text output: one line per text.
    let mut t = vec!["job", "run", "--model", s(&model), "--tokenizer", TOKENIZER];
    t.extend(texts);
    let text = ok(&t);
    assert!(
        text.contains("embedding (one row per text, 8 values)"),
        "{text}"
    );
    assert_eq!(text.matches("(L2 norm 1.000000)").count(), 2, "{text}");

    // A model takes the batch it was imported for.
    let mut three = t.clone();
    three.extend(["--text", "one more"]);
    fails(&three, 1, "3 text(s) of 8 tokens do not fit this model");
}

#[test]
fn an_onnx_model_imports_with_its_dynamic_axes_fixed() {
    let dir = TempDir::new().unwrap();
    let onnx = dir.path().join("a.onnx");
    std::fs::write(&onnx, ATTENTION).unwrap();
    let model = dir.path().join("a.btm");
    let out = json(&ok(&[
        "--json",
        "model",
        "import",
        s(&onnx),
        "-o",
        s(&model),
    ]));
    assert_eq!(out["outputs"], serde_json::json!(["y"]));
    assert!(
        out["source"]
            .as_str()
            .unwrap()
            .starts_with("ONNX, opset 20"),
        "{out}"
    );
    let info = ok(&["model", "info", s(&model)]);
    assert!(
        info.contains(out["model_sha256"].as_str().unwrap()),
        "{info}"
    );
    fails(
        &["model", "import", s(&onnx), "-o", s(&model), "--batch", "2"],
        2,
        "--batch applies to a safetensors model directory",
    );
    fails(
        &[
            "model",
            "import",
            s(&onnx),
            "-o",
            s(&model),
            "--dim",
            "batch",
        ],
        2,
        "--dim \"batch\": expected NAME=N",
    );
}

#[test]
fn bad_models_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("x.btm");
    let onnx = dir.path().join("bad.onnx");
    std::fs::write(&onnx, b"\x0a\xff\xff\xff not protobuf").unwrap();
    fails(
        &["model", "import", s(&onnx), "-o", s(&out)],
        1,
        "malformed ONNX model",
    );
    let missing = dir.path().join("missing.onnx");
    fails(
        &["model", "import", s(&missing), "-o", s(&out)],
        1,
        "missing.onnx: no such file or directory",
    );

    let mut m = tb_models::onnx::decode_model(ATTENTION).unwrap();
    let node = &mut m.graph.as_mut().unwrap().node[5];
    node.op_type = Some("Einsum".into());
    node.name = Some("/attn/Einsum".into());
    std::fs::write(&onnx, tb_models::onnx::prost::Message::encode_to_vec(&m)).unwrap();
    let line = fails(
        &["model", "import", s(&onnx), "-o", s(&out)],
        1,
        "node \"/attn/Einsum\" (Einsum, opset 20)",
    );
    assert!(line.contains("op \"Einsum\" is not supported"), "{line}");

    let bert = dir.path().join("bert");
    std::fs::create_dir(&bert).unwrap();
    tiny_bert(&bert, Some("encoder.layer.0.output.dense.weight"));
    fails(
        &["model", "import", s(&bert), "-o", s(&out), "--seq-len", "8"],
        1,
        "no tensor \"encoder.layer.0.output.dense.weight\" (the config asks for it)",
    );
    tiny_bert(&bert, None);
    let st = bert.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() - 100]).unwrap();
    fails(
        &["model", "import", s(&bert), "-o", s(&out), "--seq-len", "8"],
        1,
        "malformed safetensors file",
    );
    std::fs::write(bert.join("config.json"), "{\"hidden_size\": 8").unwrap();
    fails(
        &["model", "import", s(&bert), "-o", s(&out), "--seq-len", "8"],
        1,
        "config: not JSON",
    );
}
