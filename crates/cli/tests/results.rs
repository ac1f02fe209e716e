//! Requestors get their verified results back, models are published once, and no job
//! fails silently — through the real `tb-cli` and a real `the-block devnet`:
//!
//! * the `mlp` and `transformer` examples submitted by reference to a published model
//!   give results equal, byte for byte, to a local `tb-cli job run` (safetensors, npy
//!   and JSON), final once their window closed; a second job of the model publishes
//!   nothing of the model;
//! * a result that does not match its receipt (from a lying node) is refused;
//! * a redundancy no provider set can meet is refused at submission, naming the
//!   shortfall, and with `--force` fails `unserved` at its deadline;
//! * a 100 MiB model is published, interrupted (SIGKILL), resumed without re-sending
//!   what landed, and a job naming it settles.

mod support;

use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tempfile::TempDir;

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn jobs_by_reference_give_results_equal_to_a_local_run() {
    let mut node = Devnet::start(&[]);
    let alice = node.funded_alice();
    let work = TempDir::new().unwrap();
    let w = |name: &str| work.path().join(name);
    for example in ["mlp", "transformer"] {
        let inline = w(&format!("{example}.btj"));
        let by_ref = w(&format!("{example}-ref.btj"));
        let model = w(&format!("{example}.btm"));
        ok(&["job", "build", "--example", example, "-o", s(&inline)]);
        ok(&[
            "job",
            "build",
            "--example",
            example,
            "-o",
            s(&by_ref),
            "--model-out",
            s(&model),
        ]);
        // The version 1 blob carries the input only.
        assert!(read(&by_ref).len() + read(&model).len() <= read(&inline).len() + 32);

        // Publish the model once.
        let out = node.expect(
            &["--json", "model", "publish", s(&model), "--key", &alice],
            0,
        );
        let p: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(p["already_published"], false, "{out}");
        assert!(p["chunks_sent"].as_u64().unwrap() >= 1, "{out}");
        let model_sha = p["model_sha256"].as_str().unwrap().to_string();

        // Submit by reference and wait for the final, verified result.
        let res = w(&format!("{example}.safetensors"));
        let out = node.expect(
            &[
                "--json",
                "compute",
                "submit",
                s(&by_ref),
                "--key",
                &alice,
                "--max-price",
                "2",
                "--wait",
                "--timeout-secs",
                "240",
                "-o",
                s(&res),
            ],
            0,
        );
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            lines[0]["model"]["already_published"], true,
            "the model is not sent again: {out}"
        );
        assert_eq!(lines[0]["model"]["chunks_sent"], 0, "{out}");
        assert_eq!(lines[1]["status"], "final", "{out}");
        assert_eq!(lines[1]["final"], true, "{out}");
        let tx = lines[0]["tx_id"].as_str().unwrap().to_string();
        let task = lines[1]["task_id"].as_str().unwrap().to_string();

        // The same bytes as a local run of the inline job.
        let local = w(&format!("{example}-local.safetensors"));
        ok(&["job", "run", s(&inline), "--result-out", s(&local)]);
        assert_eq!(read(&res), read(&local), "{example}: safetensors");
        for (fmt, ext) in [("npy", "npy"), ("json", "json")] {
            let remote = w(&format!("{example}-remote.{ext}"));
            let here = w(&format!("{example}-here.{ext}"));
            let text = node.expect(
                &[
                    "compute",
                    "result",
                    &task,
                    "-o",
                    s(&remote),
                    "--format",
                    fmt,
                ],
                0,
            );
            assert!(text.contains("final"), "{text}");
            ok(&[
                "job",
                "run",
                s(&by_ref),
                "--model",
                s(&model),
                "--result-out",
                s(&here),
                "--format",
                fmt,
            ]);
            if fmt == "json" {
                // The JSON documents differ in the task id they name; the outputs agree.
                let a: Value = serde_json::from_slice(&read(&remote)).unwrap();
                let b: Value = serde_json::from_slice(&read(&here)).unwrap();
                assert_eq!(a["outputs"], b["outputs"], "{example}: json outputs");
                assert_eq!(a["output_digest_sha256"], b["output_digest_sha256"]);
                assert_eq!(a["status"], "final");
            } else {
                assert_eq!(read(&remote), read(&here), "{example}: {fmt}");
            }
        }
        // A replay here reads the model from the node and agrees with the receipt.
        let replay = node.expect(&["compute", "replay", &task], 0);
        assert!(replay.contains("agrees"), "{replay}");
        // The SubmitJob id names the job as well as the task id; its record names the
        // model.
        let st = node.expect(&["--json", "compute", "status", &tx], 0);
        let st: Value = serde_json::from_str(&st).unwrap();
        assert_eq!(st["model_sha256"], json!(model_sha), "{st}");
        assert_eq!(st["failure"], Value::Null);

        // A second job of the model: nothing of the model is published; the version 0
        // blob with --by-reference names the same model, already on chain.
        let out = node.expect(
            &[
                "--json",
                "compute",
                "submit",
                s(&inline),
                "--by-reference",
                "--key",
                &alice,
                "--max-price",
                "2",
            ],
            0,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["model"]["already_published"], true, "{out}");
        assert_eq!(v["model"]["chunks_sent"], 0, "{out}");
        assert_eq!(v["blob"]["already_published"], true, "{out}");
    }
}

#[test]
fn a_result_that_does_not_match_its_receipt_is_refused() {
    let honest = tb_job::ResultObject {
        outputs: vec![tb_job::ResultTensor {
            name: "y".into(),
            shape: vec![2],
            data: blocktorch::HostData::F32(vec![1.0, 2.0]),
        }],
    };
    let digest = hex::encode(honest.output_digest());
    let mut tampered = honest.clone();
    tampered.outputs[0].data = blocktorch::HostData::F32(vec![1.0, 2.5]);
    let task = "ab".repeat(32);
    let provider = tb_primitives::SecretKey::dev("p").address().to_string();
    let node_with = |bytes: &[u8], result_sha: &str| {
        let receipt = json!({"provider": provider, "output_digest": digest,
                             "result_sha256": result_sha, "refuted": false});
        fake_node(vec![
            (
                "compute.getResult",
                json!({"task_id": task, "state": "Verified", "status": "final", "final": true,
                       "provider": provider, "output_digest": digest,
                       "result_sha256": result_sha, "result_bytes": bytes.len(),
                       "receipt_hash": "00".repeat(32), "receipt_height": 7,
                       "window_end": 9, "hex": hex::encode(bytes)}),
            ),
            (
                "compute.getJob",
                json!({"task_id": task, "state": "Verified", "outputs": 1,
                       "receipts": [receipt]}),
            ),
        ])
    };
    let sha = |b: &[u8]| hex::encode(tb_primitives::sha256_digest(b).0);
    // The honest object: accepted.
    let good = honest.encode().unwrap();
    let url = node_with(&good, &sha(&good));
    let out = ok(&["--rpc", &url, "compute", "result", &task]);
    assert!(out.contains("final") && out.contains(&digest), "{out}");
    // Tampered data under its own (consistent) object hash: the digests give it away.
    let bad = tampered.encode().unwrap();
    let url = node_with(&bad, &sha(&bad));
    fails(
        &["--rpc", &url, "compute", "result", &task, "-o", "/dev/null"],
        1,
        "does not match the accepted receipt",
    );
    // Bytes that are not the object the receipt names.
    let url = node_with(&bad, &sha(&good));
    fails(
        &["--rpc", &url, "compute", "result", &task],
        1,
        "SHA-256 is not the receipt's",
    );
    // Not a result object at all.
    let junk = b"BTRS\x00junk".to_vec();
    let url = node_with(&junk, &sha(&junk));
    fails(
        &["--rpc", &url, "compute", "result", &task],
        1,
        "not a valid result object",
    );
}

#[test]
fn a_redundancy_no_provider_set_meets_is_refused_and_forced_fails_unserved() {
    let mut node = Devnet::start(&[]);
    let alice = node.funded_alice();
    let work = TempDir::new().unwrap();
    let blob = build_mlp(work.path());
    let submit = |extra: &[&str]| {
        let mut a = vec![
            "compute",
            "submit",
            s(&blob),
            "--key",
            &alice,
            "--max-price",
            "1",
            "--redundancy",
            "3",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };
    let args = submit(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = node.tb(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("needs 3 distinct providers")
            && r.stderr.contains("the network has 1")
            && r.stderr.contains("2 short"),
        "{}",
        r.stderr
    );
    // The dry run says the same, in JSON.
    let args = submit(&["--dry-run", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = node.expect(&args, 0);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["shortfall"], 2, "{out}");
    assert_eq!(e["capable"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(e["expected_lease_height"], Value::Null, "{out}");
    // Forced: it queues, one replica is leased, and it fails `unserved` at its deadline.
    let args = submit(&[
        "--force",
        "--deadline-blocks",
        "15",
        "--wait",
        "--timeout-secs",
        "120",
        "--json",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = node.tb(&args);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let last = r.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("tb-cli: task ")
            && last.contains("failed at height")
            && last.contains("unserved"),
        "{}",
        r.stderr
    );
    let sub: Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    let task = sub["tx_id"].as_str().unwrap().to_string();
    let text = node.expect(&["compute", "status", &task], 0);
    assert!(
        text.contains("Failed") && text.contains("unserved"),
        "{text}"
    );
    let r = node.tb(&["compute", "result", &task]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unserved"), "{}", r.stderr);
}

#[test]
fn a_100_mib_model_is_published_interrupted_resumed_and_its_job_settles() {
    let mut node = Devnet::start(&[]);
    let alice = node.funded_alice();
    let work = TempDir::new().unwrap();
    let (blob, model) = (work.path().join("big.btj"), work.path().join("big.btm"));
    ok(&[
        "job",
        "build",
        "--example",
        "lookup:25600x1024",
        "-o",
        s(&blob),
        "--model-out",
        s(&model),
    ]);
    let size = read(&model).len();
    assert!(size > 100 << 20, "{size}");
    let sha = hex::encode(tb_primitives::sha256_digest(&read(&model)).0);
    let alice_addr = {
        let v: Value =
            serde_json::from_str(&node.expect(&["--json", "balance", &alice], 0)).unwrap();
        v["address"].as_str().unwrap().to_string()
    };
    // Start publishing; once some chunks are on chain, kill the publisher.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tb-cli"))
        .args([
            "--rpc",
            &node.rpc,
            "model",
            "publish",
            s(&model),
            "--key",
            &alice,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let on_chain = |node: &Devnet| -> u64 {
        let v = rpc(&node.rpc, "compute.blobStatus", json!([sha, alice_addr]));
        v["copy"]["received"]
            .as_array()
            .map_or(0, |a| a.len() as u64)
    };
    loop {
        let n = on_chain(&node);
        if n >= 20 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "publication made no progress: {n} chunks"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the publisher exited early ({st})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    let _ = child.wait();
    // Resume: it waits for what the killed run left pending, skips what is on chain.
    let out = node.expect(
        &["--json", "model", "publish", s(&model), "--key", &alice],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let (sent, skipped, chunks) = (
        v["chunks_sent"].as_u64().unwrap(),
        v["chunks_skipped"].as_u64().unwrap(),
        v["chunks"].as_u64().unwrap(),
    );
    assert_eq!(v["already_published"], false, "{out}");
    assert!(skipped >= 20, "{out}");
    assert_eq!(
        sent + skipped,
        chunks,
        "{out}: each missing chunk sent once"
    );
    // A job naming it settles (the model file given: nothing is read back).
    let out = node.expect(
        &[
            "--json",
            "compute",
            "submit",
            s(&blob),
            "--model",
            s(&model),
            "--key",
            &alice,
            "--max-price",
            "2",
            "--wait",
            "--timeout-secs",
            "240",
        ],
        0,
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["model"]["already_published"], true, "{out}");
    assert_eq!(lines[1]["status"], "final", "{out}");
    assert_eq!(lines[1]["outputs"][0]["shape"], json!([8, 1024]), "{out}");
}

/// One JSON-RPC call over plain HTTP (the test's own client).
fn rpc(url: &str, method: &str, params: Value) -> Value {
    let addr = url.trim_start_matches("http://");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    let json = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {resp}"));
    v["result"].clone()
}
