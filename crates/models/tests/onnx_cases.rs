//! The importer against onnxruntime and against the ONNX project's own backend
//! conformance cases. `crates/models/scripts/onnx_cases.py DIR` writes the cases (it
//! needs the `onnx` and `onnxruntime` packages); `TB_ONNX_CASES=DIR` points these tests
//! at them (`.ci/run` does both). Without the variable each test prints that it
//! skipped and why.
//!
//! Every case runs on the CPU reference (scalar, 1 thread) and on the fastest CPU path
//! with 2 threads; the two must give identical output digests and trace roots, and the
//! outputs must be within 1e-5 (norm-wise relative) of the expected ones.
//!
//! The node cases' outcomes are recorded in `tests/onnx_node_cases.txt` (one line per
//! case: name, op, `pass` or the reason it is refused); a case whose outcome changes
//! fails the test. `TB_ONNX_RECORD=1` rewrites the record.

use blocktorch::{CpuConfig, CpuFabric, Fabric, HostData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tb_job::{execute, ExecOptions, Job, ReplayMode};
use tb_models::onnx::host::{HostTensor, HostValues};
use tb_models::onnx::{import, tensor_from_bytes, ImportOptions};

const TOLERANCE: f64 = 1e-5;

fn cases(kind: &str) -> Option<Vec<PathBuf>> {
    let Some(root) = std::env::var_os("TB_ONNX_CASES") else {
        eprintln!(
            "skipped: TB_ONNX_CASES is not set (run crates/models/scripts/onnx_cases.py DIR, \
             which needs the onnx and onnxruntime Python packages)"
        );
        return None;
    };
    let dir = Path::new(&root).join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no cases in {}", dir.display());
    Some(v)
}

fn read_tensors(dir: &Path, kind: &str) -> Vec<HostTensor> {
    let mut out = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("{kind}_{i}.pb"));
        let Ok(bytes) = std::fs::read(&p) else { break };
        out.push(tensor_from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
    }
    out
}

/// Norm-wise relative error of `got` against `want`; infinities must match exactly
/// and NaNs must sit at the same places.
fn rel_error(got: &[f32], want: &[f32]) -> Result<f64, String> {
    let (mut num, mut den) = (0f64, 0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            if w.is_nan() != g.is_nan() {
                return Err(format!("element {i}: {g} vs {w}"));
            }
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            if g != w {
                return Err(format!("element {i}: {g} vs {w}"));
            }
            continue;
        }
        num += (g as f64 - w as f64).powi(2);
        den += (w as f64).powi(2);
    }
    Ok(if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    })
}

fn compare(got: &tb_job::exec::OutputTensor, want: &HostTensor) -> Result<f64, String> {
    if got.shape != want.shape {
        return Err(format!(
            "{}: shape {:?}, expected {:?}",
            got.name, got.shape, want.shape
        ));
    }
    match (&got.data, &want.values) {
        (HostData::F32(g), HostValues::F32(w)) => {
            let e = rel_error(g, w)?;
            if e > TOLERANCE {
                return Err(format!("{}: relative error {e:.3e}", got.name));
            }
            Ok(e)
        }
        (HostData::I32(g), HostValues::I64(w)) => {
            let same = g.iter().zip(w).all(|(&a, &b)| a as i64 == b);
            if same {
                Ok(0.0)
            } else {
                Err(format!("{}: integers differ", got.name))
            }
        }
        (HostData::U8(g), HostValues::Bool(w)) => {
            let same = g.iter().zip(w).all(|(&a, &b)| (a != 0) == b);
            if same {
                Ok(0.0)
            } else {
                Err(format!("{}: booleans differ", got.name))
            }
        }
        (g, w) => Err(format!(
            "{}: dtype {:?}, expected {}",
            got.name,
            g.dtype(),
            w.kind()
        )),
    }
}

/// Runs one case: `Ok(max error)`, or `Err(why)` when refused or wrong. Panics when the
/// two CPU configurations disagree (never acceptable).
fn run_case(dir: &Path) -> Result<f64, String> {
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let m = match import(&bytes, &ImportOptions::default()) {
        Ok(m) => m,
        // A backend test that passes a shape parameter (axes, shape, starts) as an input
        // gets it folded, as an exporter would have written it: its integer inputs
        // become constants of the case's values (`ImportOptions::constant_inputs`).
        Err(e) if e.to_string().contains("must be known at import") => {
            let mut opts = ImportOptions::default();
            let proto = tb_models::onnx::decode_model(&bytes).map_err(|e| e.to_string())?;
            let set = dir.join("test_data_set_0");
            let names = proto
                .graph
                .iter()
                .flat_map(|g| &g.input)
                .map(|v| v.name().to_string());
            for (name, t) in names.zip(read_tensors(&set, "input")) {
                if matches!(t.values, HostValues::I64(_)) {
                    opts.constant_inputs.insert(name, t);
                }
            }
            import(&bytes, &opts).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let reference = CpuFabric::reference();
    let fast = CpuFabric::new(CpuConfig::new(CpuConfig::from_env().expect("cpu").simd, 2))
        .expect("fabric");
    let kernel = reference.kernel_variant_digest();
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let mut worst = 0f64;
    for set in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let set = set.map_err(|e| e.to_string())?.path();
        if !set.is_dir() {
            continue;
        }
        let inputs = read_tensors(&set, "input");
        let outputs = read_tensors(&set, "output");
        let (d, input) = m.job_input(&inputs).map_err(|e| e.to_string())?;
        let job = Job::new(kernel, d, m.program.clone(), input).map_err(|e| e.to_string())?;
        let a = execute(&job, &reference, opts).map_err(|e| e.to_string())?;
        let b = execute(&job, &fast, opts).map_err(|e| e.to_string())?;
        assert_eq!(
            a.output_digest,
            b.output_digest,
            "{}: output digests differ across CPU configurations",
            dir.display()
        );
        assert_eq!(
            a.trace_root,
            b.trace_root,
            "{}: trace roots differ across CPU configurations",
            dir.display()
        );
        if a.outputs.len() != outputs.len() {
            return Err(format!(
                "{} outputs, expected {}",
                a.outputs.len(),
                outputs.len()
            ));
        }
        for (g, w) in a.outputs.iter().zip(&outputs) {
            worst = worst.max(compare(g, w)?);
        }
    }
    Ok(worst)
}

fn op_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("op.txt"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn every_supported_op_matches_onnxruntime() {
    let Some(cases) = cases("ort") else { return };
    let mut failures = Vec::new();
    for c in &cases {
        match run_case(c) {
            Ok(e) => eprintln!(
                "{:<40} {:<20} ok, relative error {e:.2e}",
                name(c),
                op_of(c)
            ),
            Err(e) => failures.push(format!("{}: {e}", name(c))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

const RECORD: &str = "tests/onnx_node_cases.txt";

#[test]
fn the_onnx_backend_conformance_cases_match_the_record() {
    let Some(cases) = cases("node") else { return };
    let mut lines = Vec::new();
    let mut per_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in &cases {
        let op = op_of(c);
        let outcome = match run_case(c) {
            Ok(_) => "pass".to_string(),
            Err(e) => e.replace('\n', " "),
        };
        let e = per_op.entry(op.clone()).or_default();
        e.1 += 1;
        if outcome == "pass" {
            e.0 += 1;
        }
        lines.push(format!("{}\t{op}\t{outcome}", name(c)));
    }
    for (op, (pass, all)) in &per_op {
        eprintln!("{op:<20} {pass:>3} / {all:<3} pass");
    }
    let total: usize = per_op.values().map(|v| v.0).sum();
    eprintln!("total {total} / {} pass", cases.len());
    let text = lines.join("\n") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORD);
    if std::env::var_os("TB_ONNX_RECORD").is_some() {
        std::fs::write(&path, &text).expect("write the record");
        return;
    }
    let recorded = std::fs::read_to_string(&path).expect("the record (TB_ONNX_RECORD=1 writes it)");
    let want: BTreeMap<&str, &str> = recorded
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let mut changed = Vec::new();
    for l in text.lines() {
        let (case, rest) = l.split_once('\t').expect("tab");
        match want.get(case) {
            Some(w) if *w == rest => {}
            Some(w) => changed.push(format!("{case}: recorded {w:?}, now {rest:?}")),
            None => changed.push(format!("{case}: not in the record (now {rest:?})")),
        }
    }
    assert!(
        changed.is_empty(),
        "{} outcomes changed (TB_ONNX_RECORD=1 rewrites {RECORD} once reviewed):\n{}",
        changed.len(),
        changed.join("\n")
    );
}
