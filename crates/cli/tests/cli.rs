//! End-to-end tests of the `tb-cli` binary: every command through the process
//! boundary, its stdout, its one-line stderr and its exit status.

mod support;

use std::path::{Path, PathBuf};
use support::{fails, tb};
use tb_job::examples::{build_example, EXAMPLES};
use tb_job::{validate, Job, SignedReceipt};
use tempfile::TempDir;

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let r = tb(args);
    assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
    assert!(
        r.stderr.is_empty(),
        "{args:?} wrote to stderr: {}",
        r.stderr
    );
    r.stdout
}

/// The string value of `key` in a flat part of one-line JSON.
fn json_str(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let end = json[start..].find('"').expect("a closing quote") + start;
    json[start..end].to_string()
}

/// The raw (number, bool, null) value of `key` in one-line JSON.
fn json_raw(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let end = json[start..].find([',', '}']).expect("a delimiter") + start;
    json[start..end].to_string()
}

/// The value of `key` in `key  value` text output (keys are padded to one width).
fn text_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")))
        .unwrap_or_else(|| panic!("no {key} line in:\n{out}"))
        .trim()
        .to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Builds example `name` through the binary into `dir`.
fn build(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(format!("{name}.btj"));
    let out = ok(&["job", "build", "--example", name, "-o", s(&path)]);
    assert!(out.contains("wrote"), "{out}");
    path
}

fn leaf_hex(leaves: &[u8], k: usize) -> String {
    hex::encode(&leaves[k * 32..(k + 1) * 32])
}

#[test]
fn builds_every_example_exactly_as_the_library_does() {
    let dir = TempDir::new().unwrap();
    for name in EXAMPLES {
        let path = build(&dir, name);
        let blob = std::fs::read(&path).unwrap();
        let want = build_example(name).unwrap().encode().unwrap();
        assert!(
            blob == want,
            "{name}: the written blob differs from build_example"
        );
        assert!(Job::decode(&blob).is_ok(), "{name}");
    }
    let listed = ok(&["job", "build", "--example", "list"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), EXAMPLES);
    let line = fails(
        &["job", "build", "--example", "resnet", "-o", "x"],
        2,
        "resnet",
    );
    for name in EXAMPLES {
        assert!(line.contains(name), "{line}");
    }
    fails(&["job", "build", "--example", "mlp"], 2, "needs --out");
}

#[test]
fn inspect_shows_the_op_table_and_costs() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "mlp");
    let job = Job::decode(&std::fs::read(&path).unwrap()).unwrap();
    let plan = validate(&job).unwrap();
    let out = ok(&["job", "inspect", s(&path)]);
    for want in [
        "magic           BTRA".to_string(),
        format!("kernel digest   {}", hex::encode(job.kernel_digest)),
        "normalisation   bytes/255".into(),
        format!("ops ({})", job.program.ops.len()),
        "flops".into(),
        "matmul".into(),
        "input Main".into(),
        "w1  f32  [784, 128]".into(),
        "probs".into(),
        format!("flops            {}", plan.total.flops),
        format!("bytes            {}", plan.total.bytes),
        format!("artifact hash    {}", hex::encode(job.artifact_hash)),
        format!("descriptor hash  {}", hex::encode(job.descriptor_hash)),
    ] {
        assert!(out.contains(&want), "inspect lacks {want:?}:\n{out}");
    }
    // The first matmul row: op 1, [8, 784] × [784, 128] = 2·8·128·784 FLOPs.
    let row = out
        .lines()
        .find(|l| l.contains(" matmul "))
        .expect("a matmul row");
    assert!(row.contains(&(2 * 8 * 128 * 784).to_string()), "{row}");

    let j = ok(&["job", "inspect", s(&path), "--json"]);
    assert_eq!(j.lines().count(), 1, "{j}");
    assert_eq!(json_raw(&j, "total_flops"), plan.total.flops.to_string());
    assert_eq!(
        json_str(&j, "artifact_hash"),
        hex::encode(job.artifact_hash)
    );
    assert!(j.contains("\"op\":\"matmul\""), "{j}");
}

#[test]
fn run_is_identical_across_runs_and_thread_counts() {
    let dir = TempDir::new().unwrap();
    for name in EXAMPLES {
        let path = build(&dir, name);
        let runs: Vec<String> = [
            vec!["job", "run", s(&path), "--json"],
            vec!["job", "run", s(&path), "--json"],
            vec!["job", "run", s(&path), "--json", "--threads", "1"],
            vec!["job", "run", s(&path), "--json", "--threads", "2"],
        ]
        .iter()
        .map(|a| ok(a))
        .collect();
        let first = &runs[0];
        for key in [
            "output_digest_sha256",
            "trace_root",
            "n_ops",
            "time_ms",
            "fabric",
            "device",
            "cross_fabric",
            "outputs",
            "kernel_variant_digest",
            "tensor_profile_epoch",
        ] {
            assert!(
                first.contains(&format!("\"{key}\":")),
                "{name}: no {key} in {first}"
            );
        }
        assert_eq!(json_str(first, "fabric"), "cpu");
        assert_eq!(json_raw(first, "cross_fabric"), "false");
        for r in &runs[1..] {
            assert_eq!(
                json_str(r, "output_digest_sha256"),
                json_str(first, "output_digest_sha256"),
                "{name}"
            );
            assert_eq!(
                json_str(r, "trace_root"),
                json_str(first, "trace_root"),
                "{name}"
            );
            assert_eq!(json_raw(r, "n_ops"), json_raw(first, "n_ops"), "{name}");
        }
        assert!(runs[2].contains("1 threads"), "{}", runs[2]);
    }
    let path = dir.path().join("mlp.btj");
    let text = ok(&["job", "run", s(&path)]);
    for key in [
        "output_digest_sha256",
        "trace_root",
        "n_ops",
        "cross_fabric",
        "tensor_profile_epoch",
        "time_ms",
        "probs  [8, 10]",
    ] {
        assert!(text.contains(key), "text output lacks {key}:\n{text}");
    }
    fails(&["job", "run", s(&path), "--threads", "0"], 1, "threads");
    fails(
        &["job", "run", s(&path), "--threads", "many"],
        2,
        "--threads",
    );
    fails(
        &["job", "run", s(&path), "--fabric", "tpu"],
        2,
        "cpu, cuda or wgpu",
    );
}

#[test]
fn wgpu_runs_the_job_with_the_cpu_digests() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "mlp");
    let cpu = ok(&["job", "run", s(&path), "--json"]);
    let r = tb(&[
        "job",
        "run",
        s(&path),
        "--fabric",
        "wgpu",
        "--cross-fabric",
        "--json",
    ]);
    if r.code != 0 {
        // CI installs lavapipe and sets TB_WGPU_REQUIRED: there the fabric must run.
        assert!(
            std::env::var_os("TB_WGPU_REQUIRED").is_none(),
            "TB_WGPU_REQUIRED is set but --fabric wgpu failed: {}",
            r.stderr
        );
        eprintln!(
            "SKIPPED wgpu_runs_the_job_with_the_cpu_digests: no WebGPU adapter ({})",
            r.stderr.trim_end()
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("wgpu"), "{}", r.stderr);
        return;
    }
    assert_eq!(json_str(&r.stdout, "fabric"), "wgpu");
    assert_eq!(json_raw(&r.stdout, "cross_fabric"), "true");
    assert_eq!(
        json_str(&r.stdout, "output_digest_sha256"),
        json_str(&cpu, "output_digest_sha256")
    );
    assert_eq!(
        json_str(&r.stdout, "trace_root"),
        json_str(&cpu, "trace_root")
    );
    // A CPU run's trace verifies leaf by leaf on the wgpu fabric.
    let leaves = dir.path().join("mlp.leaves");
    ok(&["job", "run", s(&path), "--trace-out", s(&leaves)]);
    let v = ok(&[
        "job",
        "verify",
        s(&path),
        "--trace",
        s(&leaves),
        "--fabric",
        "wgpu",
    ]);
    assert!(v.contains("the provider's trace is the replay's"), "{v}");
    // Without --cross-fabric the CPU reference's kernel digest is refused.
    fails(
        &["job", "run", s(&path), "--fabric", "wgpu"],
        1,
        "--cross-fabric",
    );
    fails(
        &["job", "run", s(&path), "--fabric", "wgpu", "--threads", "2"],
        2,
        "CPU fabric only",
    );
}

#[test]
fn cuda_runs_or_fails_with_one_line() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "mlp");
    let cpu = ok(&["job", "run", s(&path), "--json"]);
    let r = tb(&[
        "job",
        "run",
        s(&path),
        "--fabric",
        "cuda",
        "--cross-fabric",
        "--json",
    ]);
    if r.code == 0 {
        println!("a GPU is present: the CUDA fabric ran the job");
        assert_eq!(json_str(&r.stdout, "fabric"), "cuda");
        assert_eq!(json_raw(&r.stdout, "cross_fabric"), "true");
        assert_eq!(
            json_str(&r.stdout, "output_digest_sha256"),
            json_str(&cpu, "output_digest_sha256")
        );
        assert_eq!(
            json_str(&r.stdout, "trace_root"),
            json_str(&cpu, "trace_root")
        );
        // Without --cross-fabric the CPU reference's kernel digest is refused.
        fails(
            &["job", "run", s(&path), "--fabric", "cuda"],
            1,
            "--cross-fabric",
        );
    } else {
        println!("no GPU here: {}", r.stderr.trim_end());
        fails(
            &["job", "run", s(&path), "--fabric", "cuda", "--cross-fabric"],
            1,
            "CUDA",
        );
        fails(&["job", "run", s(&path), "--fabric", "cuda"], 1, "CUDA");
    }
    fails(
        &["job", "run", s(&path), "--fabric", "cuda", "--threads", "2"],
        2,
        "CPU fabric only",
    );
}

#[test]
fn corrupted_blobs_fail_with_one_line() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "mlp");
    let blob = std::fs::read(&path).unwrap();
    let mut magic = blob.clone();
    magic[1] ^= 0x20;
    let mut version = blob.clone();
    version[4] = 9;
    let mut artifact_len = blob.clone();
    artifact_len[37] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic", magic, "magic"),
        ("version", version, "version"),
        ("artifact-length", artifact_len, "not a valid job blob"),
        ("truncated", blob[..blob.len() - 1].to_vec(), "truncated"),
        ("half", blob[..blob.len() / 2].to_vec(), "truncated"),
        ("header-only", blob[..20].to_vec(), "truncated"),
        ("appended", [blob.as_slice(), &[0]].concat(), "trailing"),
        ("empty", Vec::new(), "truncated"),
    ];
    for (name, bytes, fragment) in cases {
        let bad = dir.path().join(format!("{name}.btj"));
        std::fs::write(&bad, bytes).unwrap();
        fails(&["job", "inspect", s(&bad)], 1, fragment);
        fails(&["job", "run", s(&bad)], 1, fragment);
        fails(&["job", "referee", s(&bad), "--op", "0"], 1, fragment);
    }
    let missing = dir.path().join("missing.btj");
    fails(&["job", "run", s(&missing)], 1, "cannot open");
}

#[test]
fn referee_finds_a_wrong_leaf_and_clears_an_honest_trace() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "mlp");
    let job = Job::decode(&std::fs::read(&path).unwrap()).unwrap();
    let nc = job.program.consts.len() as u32;
    let trace = dir.path().join("honest.leaves");
    ok(&["job", "run", s(&path), "--trace-out", s(&trace)]);
    let leaves = std::fs::read(&trace).unwrap();
    assert_eq!(leaves.len(), job.program.ops.len() * 32);

    // A committed op whose segment reads an earlier committed op output (derived ops
    // are recomputed in their reader's dispute, docs/spec/job-format-v0.md §10).
    let plan = tb_job::validate(&job).unwrap();
    let tplan = tb_job::leaves::TracePlan::of(&job.program, &plan);
    let k = (0..job.program.ops.len())
        .find(|k| {
            tplan.kinds[*k] != tb_job::leaves::LeafKind::Derived && !tplan.frontier[*k].is_empty()
        })
        .expect("an op whose segment reads an op output");
    let input = (tplan.frontier[k][tplan.frontier[k].len() - 1] - nc) as usize;
    let ks = k.to_string();

    // Leaf k flipped: the provider is wrong at op k, and the referee gives the honest leaf.
    let mut wrong = leaves.clone();
    wrong[k * 32 + 7] ^= 0x10;
    let wrong_path = dir.path().join("wrong.leaves");
    std::fs::write(&wrong_path, &wrong).unwrap();
    let r = tb(&[
        "job",
        "referee",
        s(&path),
        "--op",
        &ks,
        "--trace",
        s(&wrong_path),
    ]);
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("provider wrong at op {k}")),
        "{}",
        r.stdout
    );
    assert_eq!(
        text_field(&r.stdout, "referee digest"),
        leaf_hex(&leaves, k)
    );
    assert_eq!(text_field(&r.stdout, "provider leaf"), leaf_hex(&wrong, k));
    assert_eq!(text_field(&r.stdout, "first differing op"), ks);
    let r = tb(&[
        "job",
        "referee",
        s(&path),
        "--op",
        &ks,
        "--trace",
        s(&wrong_path),
        "--json",
    ]);
    assert_eq!(r.code, 3);
    assert_eq!(json_str(&r.stdout, "referee_digest"), leaf_hex(&leaves, k));
    assert_eq!(
        json_str(&r.stdout, "verdict"),
        format!("provider wrong at op {k}")
    );
    assert_eq!(json_raw(&r.stdout, "first_differing_op"), ks);

    // The honest trace, given or not: the provider is correct.
    for extra in [vec!["--trace", s(&trace)], vec![]] {
        let args = [vec!["job", "referee", s(&path), "--op", &ks], extra].concat();
        let out = ok(&args);
        assert!(out.trim_end().ends_with("provider correct"), "{out}");
        assert_eq!(text_field(&out, "referee digest"), leaf_hex(&leaves, k));
    }

    // An input of op k flipped: op k is not the first differing op.
    let mut early = leaves.clone();
    early[input * 32] ^= 0x01;
    let early_path = dir.path().join("early.leaves");
    std::fs::write(&early_path, &early).unwrap();
    fails(
        &[
            "job",
            "referee",
            s(&path),
            "--op",
            &ks,
            "--trace",
            s(&early_path),
        ],
        1,
        &format!("the first differing op is {input}"),
    );
    // Disputing that op instead finds the provider wrong there.
    let r = tb(&[
        "job",
        "referee",
        s(&path),
        "--op",
        &input.to_string(),
        "--trace",
        s(&early_path),
    ]);
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("provider wrong at op {input}")),
        "{}",
        r.stdout
    );

    // Malformed disputes.
    let n = job.program.ops.len().to_string();
    fails(
        &["job", "referee", s(&path), "--op", &n],
        1,
        "numbered 0 to",
    );
    fails(&["job", "referee", s(&path)], 2, "--op");
    let short = dir.path().join("short.leaves");
    std::fs::write(&short, &leaves[..leaves.len() - 1]).unwrap();
    fails(
        &[
            "job",
            "referee",
            s(&path),
            "--op",
            "0",
            "--trace",
            s(&short),
        ],
        1,
        "not a trace of this job",
    );
    fails(
        &["job", "referee", s(&path), "--op", "0", "--trace", s(&path)],
        1,
        "limit",
    );
}

#[test]
fn run_signs_a_verifiable_receipt() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "train-step");
    let blob = std::fs::read(&path).unwrap();
    let seed = [0x42u8; 32];
    let seed_hex = hex::encode(seed);
    let j = ok(&[
        "job",
        "run",
        s(&path),
        "--json",
        "--receipt-key-seed",
        &seed_hex,
        "--chain-id",
        "7",
        "--benchmark-commit",
        "bench-1",
    ]);
    let bytes = hex::decode(json_str(&j, "receipt")).unwrap();
    let signed = SignedReceipt::from_bytes(&bytes).unwrap();
    signed.verify(7).unwrap();
    assert!(signed.verify(8).is_err(), "a receipt is bound to its chain");
    let r = &signed.receipt;
    assert_eq!(
        r.provider,
        tb_primitives::SecretKey::from_seed(seed).address()
    );
    assert_eq!(json_str(&j, "receipt_provider"), r.provider.to_text());
    assert_eq!(r.task_id, Job::task_id(&blob));
    assert_eq!(
        hex::encode(r.output_digest_sha256),
        json_str(&j, "output_digest_sha256")
    );
    assert_eq!(r.trace_root.to_hex(), json_str(&j, "trace_root"));
    assert_eq!(
        hex::encode(r.tensor_profile_epoch),
        json_str(&j, "tensor_profile_epoch")
    );
    assert_eq!(r.benchmark_commit, "bench-1");
    assert_eq!(r.fabric, "cpu");

    let text = ok(&[
        "job",
        "run",
        s(&path),
        "--receipt-key-seed",
        &seed_hex,
        "--chain-id",
        "7",
    ]);
    assert!(text.contains("receipt "), "{text}");

    fails(
        &[
            "job",
            "run",
            s(&path),
            "--receipt-key-seed",
            "abcd",
            "--chain-id",
            "7",
        ],
        2,
        "64 hex digits",
    );
    fails(
        &["job", "run", s(&path), "--receipt-key-seed", &seed_hex],
        2,
        "--chain-id",
    );
    fails(
        &["job", "run", s(&path), "--chain-id", "7"],
        2,
        "--receipt-key-seed",
    );
    let long = "x".repeat(65);
    fails(
        &[
            "job",
            "run",
            s(&path),
            "--receipt-key-seed",
            &seed_hex,
            "--chain-id",
            "7",
            "--benchmark-commit",
            &long,
        ],
        2,
        "limit",
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let help = ok(&[]);
    assert!(
        help.contains("Usage: tb-cli") && help.contains("compute"),
        "{help}"
    );
    let v = ok(&["--version"]);
    assert!(
        v.starts_with("tb-cli ") && v.contains("commit ") && v.contains("runtime "),
        "{v}"
    );
    for cmd in ["build", "inspect", "run", "referee", "verify"] {
        let h = ok(&["job", cmd, "--help"]);
        assert!(h.contains("Usage: tb-cli job "), "{cmd}: {h}");
        assert!(h.contains("-h, --help"), "{cmd}: {h}");
    }
    // Completion scripts cover the whole tree.
    for shell in ["bash", "zsh", "fish"] {
        let c = ok(&["completions", shell]);
        assert!(
            c.contains("tb-cli") && c.contains("submit") && c.contains("max-price"),
            "{shell}"
        );
    }
    fails(&["completions", "tcsh"], 2, "completions");
    assert!(ok(&["job"]).contains("commands:"));
    fails(&["frob"], 2, "unknown command");
    fails(&["job", "mine"], 2, "unknown job command");
    fails(
        &["job", "run"],
        2,
        "required arguments were not provided: <FILE>",
    );
    fails(&["job", "inspect", "a", "b"], 2, "unexpected argument 'b'");
    fails(
        &["job", "inspect", "a", "--fast"],
        2,
        "unexpected argument '--fast'",
    );
    fails(
        &["job", "run", "a", "--trace-out"],
        2,
        "a value is required for '--trace-out",
    );
}

#[test]
fn verify_builds_the_challenge_of_the_first_differing_op() {
    let dir = TempDir::new().unwrap();
    let path = build(&dir, "transformer");
    let trace = dir.path().join("honest.leaves");
    ok(&["job", "run", s(&path), "--trace-out", s(&trace)]);
    let leaves = std::fs::read(&trace).unwrap();
    // The honest trace agrees.
    let out = ok(&["job", "verify", s(&path), "--trace", s(&trace), "--json"]);
    assert_eq!(json_raw(&out, "agrees"), "true");
    // A trace wrong from op k on: exit 3, op k named, a bundle that decodes and proves
    // op k's inputs under the wrong trace's root.
    let n = leaves.len() / 32;
    let k = n / 2;
    let mut wrong = leaves.clone();
    for b in wrong[k * 32..].iter_mut().step_by(37) {
        *b ^= 0x5a;
    }
    let wrong_path = dir.path().join("wrong.leaves");
    std::fs::write(&wrong_path, &wrong).unwrap();
    let bundle_path = dir.path().join("op.bundle");
    let r = tb(&[
        "job",
        "verify",
        s(&path),
        "--trace",
        s(&wrong_path),
        "--bundle-out",
        s(&bundle_path),
        "--task-id",
        &"ab".repeat(32),
        "--json",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(json_raw(&r.stdout, "op"), k.to_string());
    let bytes = std::fs::read(&bundle_path).unwrap();
    assert_eq!(
        json_str(&r.stdout, "bundle_sha256"),
        tb_primitives::sha256_digest(&bytes).to_hex()
    );
    let bundle = tb_job::EvidenceBundle::decode(&bytes).unwrap();
    assert_eq!(bundle.op as usize, k);
    assert_eq!(bundle.task_id.0, [0xab; 32]);
    let wrong_leaves: Vec<[u8; 32]> = wrong
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    let job = Job::decode(&std::fs::read(&path).unwrap()).unwrap();
    let shape = tb_job::JobShape::of(&job).unwrap();
    let ruling = tb_job::adjudicate(
        &std::fs::read(&path).unwrap(),
        None,
        &shape,
        &tb_job::trace_root(&wrong_leaves),
        k as u32,
        &bundle,
    )
    .unwrap();
    assert_eq!(
        ruling,
        tb_job::Ruling::Leaf(leaves[k * 32..k * 32 + 32].try_into().unwrap())
    );
    // Usage and input errors are one line.
    fails(&["job", "verify", s(&path)], 2, "--trace");
    fails(
        &["job", "verify", s(&path), "--trace", s(&path)],
        1,
        "limit of a trace of this job",
    );
    fails(
        &[
            "job",
            "verify",
            s(&path),
            "--trace",
            s(&trace),
            "--fabric",
            "tpu",
        ],
        2,
        "expected cpu, cuda or wgpu",
    );
}
