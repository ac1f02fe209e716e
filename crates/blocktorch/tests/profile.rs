//! Allocation profiling: allocs and frees balance after every op and every program, the
//! log records each pair, and the epoch digest is a deterministic function of the run.
//! The profiler is process-global, so the tests here take one lock.

use blocktorch::profile::tensor_profile_log_path;
use blocktorch::{
    tensor_profile_clear_log, tensor_profile_counters, tensor_profile_epoch, tensor_profile_reset,
    tensor_profile_set_log, AttentionOptions, BinaryOp, CompareOp, DType, Tensor,
};
use std::sync::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Asserts that running `f` (and dropping what it made) leaves allocs == frees and the
/// live bytes where they were.
fn balanced(name: &str, f: impl FnOnce()) {
    let before = tensor_profile_counters();
    f();
    let after = tensor_profile_counters();
    assert!(after.allocs > before.allocs, "{name}: allocated nothing");
    assert_eq!(
        after.allocs - before.allocs,
        after.frees - before.frees,
        "{name}: allocs and frees differ"
    );
    assert_eq!(
        after.live_bytes, before.live_bytes,
        "{name}: live bytes leaked"
    );
}

/// A small transformer-ish program touching every op family, with a backward pass.
fn program(seed: u64) {
    let x = Tensor::rand_uniform(&[4, 8], -1.0, 1.0, seed).unwrap();
    let w = Tensor::rand_uniform(&[8, 8], -0.5, 0.5, seed + 1)
        .unwrap()
        .requires_grad()
        .unwrap();
    let h = x
        .matmul(&w)
        .unwrap()
        .gelu_erf()
        .unwrap()
        .layer_norm(1, None, None, 1e-5)
        .unwrap();
    let q = h.reshape(&[2, 2, 8]).unwrap();
    let a = q
        .attention(
            &q,
            &q,
            None,
            None,
            &AttentionOptions {
                scale: None,
                causal: true,
            },
        )
        .unwrap();
    let loss = a
        .softmax(-1)
        .unwrap()
        .log()
        .unwrap()
        .mean(&[], false)
        .unwrap();
    loss.backward().unwrap();
    assert!(w.grad().is_some());
}

#[test]
fn every_op_and_program_balances() {
    let _g = lock();
    tensor_profile_reset();
    let x = Tensor::rand_uniform(&[3, 5], -2.0, 2.0, 1).unwrap();
    let y = Tensor::rand_uniform(&[5], 0.5, 2.0, 2).unwrap();
    let idx = Tensor::from_i32(vec![0, 2, 1], &[3]).unwrap();
    type Op<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let ops: Vec<Op> = vec![
        ("exp", Box::new(|| drop(x.exp().unwrap()))),
        ("gelu_tanh", Box::new(|| drop(x.gelu_tanh().unwrap()))),
        ("add", Box::new(|| drop(x.add(&y).unwrap()))),
        (
            "div scalar",
            Box::new(|| drop(x.binary_scalar(BinaryOp::Div, 3.0).unwrap())),
        ),
        (
            "compare+select",
            Box::new(|| {
                drop(
                    x.compare(CompareOp::Gt, &y)
                        .unwrap()
                        .select(&x, &y)
                        .unwrap(),
                )
            }),
        ),
        ("sum", Box::new(|| drop(x.sum(&[0, 1], false).unwrap()))),
        ("max", Box::new(|| drop(x.max(&[1], true).unwrap()))),
        ("argmax", Box::new(|| drop(x.argmax(0, false).unwrap()))),
        (
            "matmul",
            Box::new(|| drop(x.matmul(&x.transpose(0, 1).unwrap()).unwrap())),
        ),
        ("softmax", Box::new(|| drop(x.softmax(0).unwrap()))),
        (
            "layer_norm",
            Box::new(|| drop(x.layer_norm(1, Some(&y), Some(&y), 1e-5).unwrap())),
        ),
        ("embedding", Box::new(|| drop(x.embedding(&idx).unwrap()))),
        (
            "concat",
            Box::new(|| drop(Tensor::concat(&[&x, &x], 0).unwrap())),
        ),
        ("cast", Box::new(|| drop(x.cast(DType::I32).unwrap()))),
        (
            "contiguous",
            Box::new(|| drop(x.transpose(0, 1).unwrap().contiguous().unwrap())),
        ),
        ("program", Box::new(|| program(9))),
    ];
    for (name, op) in &ops {
        balanced(name, op);
    }
    drop(ops);
    drop((x, y, idx));
    let c = tensor_profile_counters();
    assert_eq!(
        c.allocs, c.frees,
        "everything made since the reset was freed"
    );
    assert!(c.peak_bytes > 0);
}

#[test]
fn log_records_pairs_and_epoch_is_deterministic() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orchard_tensor_profile.log");
    tensor_profile_set_log(Some(&path));
    assert_eq!(tensor_profile_log_path().as_deref(), Some(path.as_path()));

    tensor_profile_reset();
    program(5);
    let epoch_a = tensor_profile_epoch();
    tensor_profile_reset();
    program(5);
    let epoch_b = tensor_profile_epoch();
    tensor_profile_reset();
    program(6);
    let epoch_c = tensor_profile_epoch();
    // The same program twice gives the same epoch (the seeds change values, not the
    // allocation sequence, so compare against a structurally different run).
    assert_eq!(epoch_a, epoch_b);
    assert_eq!(
        epoch_a, epoch_c,
        "allocation sequence does not depend on values"
    );
    tensor_profile_reset();
    drop(Tensor::zeros(&[7]).unwrap());
    assert_ne!(tensor_profile_epoch(), epoch_a);

    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
    assert!(
        lines.iter().all(|f| f.len() == 5 && f[4] == "cpu"),
        "malformed line"
    );
    let allocs = lines.iter().filter(|f| f[1] == "alloc").count();
    let frees = lines.iter().filter(|f| f[1] == "free").count();
    assert_eq!(allocs, frees, "log pairs allocs with frees");
    assert!(
        lines.iter().any(|f| f[2] == "cpu::matmul")
            && lines.iter().any(|f| f[2] == "Tensor::from_data")
    );
    let alloc_bytes: u64 = lines
        .iter()
        .filter(|f| f[1] == "alloc")
        .map(|f| f[3].parse::<u64>().unwrap())
        .sum();
    let free_bytes: u64 = lines
        .iter()
        .filter(|f| f[1] == "free")
        .map(|f| f[3].parse::<u64>().unwrap())
        .sum();
    assert_eq!(alloc_bytes, free_bytes);

    tensor_profile_clear_log().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    drop(Tensor::zeros(&[2]).unwrap());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        2,
        "logging continues after a clear"
    );

    // The epoch is SHA-256 of exactly the lines logged since the reset, numbered from 0.
    tensor_profile_reset();
    tensor_profile_clear_log().unwrap();
    program(7);
    let log = std::fs::read(&path).unwrap();
    let epoch: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&log).into();
    assert_eq!(
        tensor_profile_epoch(),
        epoch,
        "the epoch hashes the log's bytes"
    );
    let text = String::from_utf8(log).unwrap();
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line.split('\t').next(), Some(i.to_string().as_str()));
    }
    assert!(text.lines().count() > 20);
    tensor_profile_set_log(None);
}
