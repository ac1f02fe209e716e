//! The node commands of `tb-cli` through the process boundary: the JSON-RPC client's
//! failures (no node, not a node, a node's error), malformed command lines, the keys
//! directory, and one end-to-end run against a real devnet (`the-block devnet`): a job
//! submitted, followed to Settled, its receipt listed and replayed.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;
use tb_primitives::SecretKey;
use tempfile::TempDir;

#[test]
fn a_missing_or_wrong_node_is_one_clear_line_and_exit_1() {
    let addr = some_address();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let line = fails(&["--rpc", &url, "balance", &addr], 1, "connection refused");
    assert!(line.contains(&url), "{line}");
    // The same over WebSocket.
    let ws = url.replacen("http://", "ws://", 1);
    let line = fails(&["--rpc", &ws, "chain", "info"], 1, "connection refused");
    assert!(
        line.contains(&ws) && line.contains("is `the-block` running"),
        "{line}"
    );
    // TB_RPC is the default for --rpc, and --rpc beats it.
    let line = fails_env(
        &["mine", "start"],
        &[("TB_RPC", &url)],
        1,
        "connection refused",
    );
    assert!(line.contains(&url), "{line}");
    let other = format!("http://127.0.0.1:{}", closed_port());
    let line = fails_env(
        &["--rpc", &other, "mine", "start"],
        &[("TB_RPC", &url)],
        1,
        "refused",
    );
    assert!(line.contains(&other), "{line}");
    for (bad, fragment) in [
        ("https://127.0.0.1:3030", "plain HTTP and WebSocket only"),
        ("wss://127.0.0.1:3030", "plain HTTP and WebSocket only"),
        ("127.0.0.1:3030", "expected http://HOST:PORT"),
        ("http://", "expected http://HOST:PORT"),
        ("", "expected http://HOST:PORT"),
    ] {
        fails(&["--rpc", bad, "compute", "stats"], 1, fragment);
    }
    // Something that is not a JSON-RPC endpoint.
    let url = fake_server(http("404 Not Found", "nothing here"));
    fails(&["--rpc", &url, "compute", "stats"], 1, "HTTP status 404");
    let url = fake_server(http("200 OK", "<html>"));
    fails(&["--rpc", &url, "compute", "stats"], 1, "not JSON-RPC");
    // A node's JSON-RPC error: its message and code.
    let url = fake_server(http(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":ID,"error":{"code":-32012,"message":"this node has no key"}}"#,
    ));
    let line = fails(&["--rpc", &url, "mine", "start"], 1, "this node has no key");
    assert!(
        line.contains("-32012") && line.contains("start_mining"),
        "{line}"
    );
    // An error with string data.
    let url = fake_server(http(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":ID,"error":{"code":-32007,"message":"Request is too big","data":"Exceeded max limit of 8388608"}}"#,
    ));
    fails(
        &["--rpc", &url, "mine", "stop"],
        1,
        "Request is too big [Exceeded max limit of 8388608] (JSON-RPC error -32007)",
    );
    // jsonrpsee's refusal of a large request (HTTP 413).
    let url = fake_server(http(
        "413 Payload Too Large",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32007,"message":"Request is too big"}}"#,
    ));
    fails(
        &["--rpc", &url, "mine", "stop"],
        1,
        "larger than the node accepts (HTTP 413",
    );
    // A reply to another request.
    let url = fake_server(http(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":99,"result":{"mining":false}}"#,
    ));
    fails(&["--rpc", &url, "mine", "stop"], 1, "another request id");
    // A reply of the wrong shape is a failure, not a panic: a typed result...
    let url = fake_server(http(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":ID,"result":[1,2]}"#,
    ));
    fails(
        &["--rpc", &url, "balance", &addr],
        1,
        "not what this tb-cli expects",
    );
    // ...and a field of a JSON view.
    let url = fake_server(http(
        "200 OK",
        r#"{"jsonrpc":"2.0","id":ID,"result":[1,2]}"#,
    ));
    fails(&["--rpc", &url, "chain", "info"], 1, "no such field");
}

#[test]
fn stats_show_the_job_timeline() {
    let kernel = "ab".repeat(32);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":ID,"result":{{"height":9,"blocks":[
          {{"height":9,"receipts":[{{"task_id":"{t}","provider":"tb1xyz","fabric":"cpu",
            "kernel_digest":"{kernel}","benchmark_commit":"the-block 0.1.0",
            "proof_latency_ms":42,"output_digest":"{t}"}}],
           "proof_latency_ms_buckets":[{{"le":1,"count":0}},{{"le":10,"count":0}},
             {{"le":100,"count":1}},{{"le":1000,"count":0}},{{"le":"+Inf","count":0}}]}},
          {{"height":8,"receipts":[],"proof_latency_ms_buckets":[]}}],
          "receipt_checks":{{"count":3,"p50_us_upper":128,"p99_us_upper":256,
                             "budget_ms":100,"over_budget":0}},
          "queued":2,"settlement_queue":1}}}}"#,
        t = "cd".repeat(32)
    );
    let url = fake_server(http("200 OK", &body));
    let out = ok(&["--rpc", &url, "compute", "stats"]);
    for want in [
        "BlockTorch job timeline (height 9, last 2 blocks)",
        "block 9: 1 receipt",
        &format!("kernel {kernel}"),
        "commit \"the-block 0.1.0\"",
        "proof 42 ms",
        "≤100 1",
        "block 8: no receipts",
        "receipt checks: 3 on this node, p50 ≤ 128 µs, p99 ≤ 256 µs, 0 over the 100 ms budget",
        "queued jobs 2, settlement queue 1",
    ] {
        assert!(out.contains(want), "stats lack {want:?}:\n{out}");
    }
}

#[test]
fn malformed_command_lines_exit_2() {
    let addr = some_address();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for (args, fragment) in [
        (vec!["frob"], "unknown command"),
        (vec!["--rpc"], "a value is required for '--rpc <URL>'"),
        (
            vec!["--json=1", "mine", "start"],
            "unexpected value '1' for '--json'",
        ),
        (
            vec!["--rpc", "a", "--rpc", "b", "mine", "start"],
            "cannot be used multiple times",
        ),
        (vec!["balance"], "required arguments were not provided"),
        (
            vec!["balance", &addr, "extra"],
            "unexpected argument 'extra'",
        ),
        (vec!["tx", "fly"], "unknown tx command"),
        (
            vec!["tx", "send", "--to", &addr, "--amount", "1"],
            "needs --key",
        ),
        (
            vec!["tx", "send", "--key", "k", "--to", &addr],
            "needs --amount",
        ),
        (
            vec![
                "tx",
                "send",
                "--key",
                "k",
                "--to",
                &addr,
                "--amount",
                "1.0000001",
            ],
            "more than 6 decimals",
        ),
        (
            vec!["tx", "send", "--key", "k", "--to", &addr, "--amount", "-1"],
            "not an amount",
        ),
        (
            vec!["tx", "send", "--key", "k", "--to", &addr, "--amount", "1,5"],
            "not an amount",
        ),
        (
            vec!["tx", "send", "--key", "k", "--to", &addr, "--amount", "0"],
            "more than 0",
        ),
        (
            vec![
                "tx", "send", "--key", "k", "--to", &addr, "--amount", "1", "--token", "gold",
            ],
            "consumer or industrial",
        ),
        (
            vec![
                "tx",
                "send",
                "--key",
                "k",
                "--to",
                &addr,
                "--amount",
                "1",
                "--memo",
                &"m".repeat(257),
            ],
            "limit of 256",
        ),
        (vec!["tx", "status", "abc"], "64 hex digits"),
        (
            vec!["handle", "register", "@No", "--key", "k"],
            "not a handle",
        ),
        (vec!["handle", "resolve", "bob"], "not a handle"),
        (vec!["mine", "go"], "expected start or stop"),
        (vec!["compute", "frob"], "unknown compute command"),
        (
            vec!["compute", "submit", "f", "--key", "k"],
            "needs --max-price",
        ),
        (
            vec![
                "compute",
                "submit",
                "f",
                "--key",
                "k",
                "--max-price",
                "1",
                "--redundancy",
                "0",
            ],
            "at least 1",
        ),
        (
            vec![
                "compute",
                "submit",
                "f",
                "--key",
                "k",
                "--max-price",
                "1",
                "--timeout-secs",
                "5",
            ],
            "applies to --wait only",
        ),
        (vec!["compute", "status", "xyz"], "64 hex digits"),
        (
            vec!["compute", "replay", &"0".repeat(64), "--fabric", "tpu"],
            "expected cpu, cuda or wgpu",
        ),
        (
            vec!["provider", "register", "--key", "k", "--fabric", "tpu"],
            "expected cpu, cuda or wgpu",
        ),
        (
            vec!["provider", "register", "--key", "k", "--max-leases", "0"],
            "at least 1",
        ),
        (vec!["provider", "stake", "--key", "k"], "needs --amount"),
        (
            vec!["governor", "vote", "--key", "k", "--proposal", "1"],
            "--approve and --reject",
        ),
        (
            vec![
                "governor",
                "vote",
                "--key",
                "k",
                "--proposal",
                "1",
                "--approve",
                "--reject",
            ],
            "--approve and --reject",
        ),
        (
            vec!["governor", "propose", "--key", "k"],
            "exactly one of --apply",
        ),
        (
            vec![
                "governor",
                "propose",
                "--key",
                "k",
                "--apply",
                "epoch_blocks=9",
            ],
            "--activation-delay",
        ),
        (
            vec![
                "governor",
                "propose",
                "--key",
                "k",
                "--shadow",
                "epoch_blocks=9",
                "--activate-at",
                "9",
            ],
            "never applied",
        ),
        (
            vec![
                "governor",
                "propose",
                "--key",
                "k",
                "--apply",
                "nope=1",
                "--activate-at",
                "9",
            ],
            "not a governable",
        ),
        (vec!["key", "generate", "../evil"], "key name"),
        (
            vec!["key", "import", "x", "--seed", "abcd"],
            "64 hex digits",
        ),
    ] {
        // A dead --rpc: none of these may get as far as the network (the global-option
        // cases run as they are).
        let mut full = vec![];
        if !args[0].starts_with("--") {
            full.extend(["--rpc", dead.as_str()]);
        }
        full.extend(args.iter());
        fails(&full, 2, fragment);
    }
    // --help of every new command is usage text on stdout.
    for cmd in [
        vec!["key", "generate", "--help"],
        vec!["balance", "--help"],
        vec!["tx", "send", "--help"],
        vec!["compute", "submit", "--help"],
        vec!["compute", "replay", "--help"],
        vec!["governor", "propose", "--help"],
        vec!["provider", "--help"],
    ] {
        let h = ok(&cmd);
        assert!(h.to_lowercase().contains("usage: tb-cli"), "{cmd:?}: {h}");
    }
}

#[test]
fn keys_round_trip_and_are_never_overwritten() {
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    let kd = s(&keys);
    let out = ok(&["--keys-dir", kd, "--json", "key", "generate", "carol"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let carol = v["address"].as_str().unwrap().to_string();
    assert!(carol.starts_with("tb1"), "{out}");
    let file = keys.join("carol.key");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // show by name (--keys-dir after the command), by file, and via TB_KEYS_DIR.
    assert!(ok(&["key", "show", "carol", "--keys-dir", kd]).contains(&carol));
    assert!(ok(&["key", "show", s(&file)]).contains(&carol));
    let r = tb_env(&["key", "show", "carol"], &[("TB_KEYS_DIR", kd)]);
    assert!(r.code == 0 && r.stdout.contains(&carol), "{}", r.stderr);
    // Never overwritten: generate or import over it fails and the file is unchanged.
    fails(
        &["--keys-dir", kd, "key", "generate", "carol"],
        1,
        "never overwritten",
    );
    let seed = hex::encode(SecretKey::dev("dave").seed());
    fails(
        &["--keys-dir", kd, "key", "import", "carol", "--seed", &seed],
        1,
        "never overwritten",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // import gives the seed's address, in the node's key-file format.
    let out = ok(&["--keys-dir", kd, "key", "import", "dave", "--seed", &seed]);
    let dave = SecretKey::dev("dave").address().to_string();
    assert!(out.contains(&dave), "{out}");
    assert_eq!(
        std::fs::read_to_string(keys.join("dave.key")).unwrap(),
        format!("{seed}\n")
    );
    // list: both, sorted; JSON too.
    let listed = ok(&["--keys-dir", kd, "key", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("carol") && lines[0].contains(&carol),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("dave") && lines[1].contains(&dave),
        "{listed}"
    );
    let v: Value = serde_json::from_str(&ok(&["--keys-dir", kd, "key", "list", "--json"])).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    // The default directory is $HOME/.the-block/keys.
    let home = dir.path().join("home");
    let r = tb_env(&["key", "generate", "erin"], &[("HOME", s(&home))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(home.join(".the-block/keys/erin.key").is_file());
    // Missing and damaged keys.
    fails(
        &["--keys-dir", kd, "key", "show", "nobody"],
        1,
        "no key \"nobody\"",
    );
    std::fs::write(keys.join("bad.key"), "zz\n").unwrap();
    fails(
        &["--keys-dir", kd, "key", "show", "bad"],
        1,
        "expected 64 hex digits",
    );
    assert!(ok(&["--keys-dir", kd, "key", "list"]).contains("unreadable"));
    // An empty directory lists nothing, without failing.
    let empty = dir.path().join("none");
    assert!(ok(&["--keys-dir", s(&empty), "key", "list"]).contains("no keys"));
    // A --key that names nothing fails before any network call.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    fails(
        &[
            "--rpc",
            &dead,
            "--keys-dir",
            kd,
            "provider",
            "stake",
            "--key",
            "nobody",
            "--amount",
            "1",
        ],
        1,
        "no key \"nobody\"",
    );
}

// ---- end to end -------------------------------------------------------------------

#[test]
fn devnet_end_to_end_submit_wait_receipts_replay() {
    let mut node = Devnet::start(&[]);
    let alice_s = node.funded_alice();
    let text = node.expect(&["balance", &alice_s], 0);
    assert!(text.contains("industrial"), "{text}");

    // Someone follows the job's events over WebSocket (the generated subscription
    // client) while it runs: its receipt, then its completion.
    let events = std::process::Command::new(env!("CARGO_BIN_EXE_tb-cli"))
        .args(["--rpc", &node.rpc, "--json", "events"])
        .args(["--event", "receiptAccepted", "--event", "jobCompleted"])
        .args(["--count", "2", "--for", "300"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let work = TempDir::new().unwrap();
    let blob = build_mlp(work.path());
    let out = node.expect(
        &[
            "--json",
            "compute",
            "submit",
            s(&blob),
            "--key",
            &alice_s,
            "--max-price",
            "2",
            "--wait",
            "--timeout-secs",
            "240",
        ],
        0,
    );
    // Two JSON lines: the submission, then the verified, final result.
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let tx_id = lines[0]["tx_id"].as_str().unwrap().to_string();
    assert_eq!(lines[0]["blob"]["chunks_sent"], 1, "{out}");
    assert_eq!(lines[1]["status"], "final", "{out}");
    assert_eq!(lines[1]["outputs"][0]["name"], "probs", "{out}");
    assert_eq!(
        lines[1]["outputs"][0]["data"].as_array().map(Vec::len),
        Some(80),
        "{out}"
    );
    let task = lines[1]["task_id"].as_str().unwrap().to_string();
    assert_ne!(task, tx_id);

    let events = events.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&events.stdout);
    assert!(
        events.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&events.stderr)
    );
    let seen: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["receiptAccepted", "jobCompleted"], "{text}");
    for e in &seen {
        assert_eq!(e["data"]["task_id"], task.as_str(), "{text}");
    }

    // The SubmitJob id and the task id name the same job (verified once its window
    // closed; settled at the epoch's end).
    let by_tx = node.expect(&["compute", "status", &tx_id], 0);
    assert!(
        by_tx.contains(&task) && (by_tx.contains("Verified") || by_tx.contains("Settled")),
        "{by_tx}"
    );

    let receipts = node.expect(&["--json", "compute", "receipts", &task], 0);
    let v: Value = serde_json::from_str(&receipts).unwrap();
    assert_eq!(
        v["receipts"].as_array().map(Vec::len),
        Some(1),
        "{receipts}"
    );
    let text = node.expect(&["compute", "receipts", &task], 0);
    assert!(text.contains("1 receipt(s)"), "{text}");

    let replay = node.expect(&["compute", "replay", &task], 0);
    assert!(replay.contains("agrees"), "{replay}");
    assert!(!replay.contains("DIFFERS"), "{replay}");

    let stats = node.expect(&["compute", "stats"], 0);
    assert!(stats.contains("BlockTorch job timeline"), "{stats}");

    // A second submission of the same blob does not publish it again.
    let again = node.expect(
        &[
            "--json",
            "compute",
            "submit",
            s(&blob),
            "--key",
            &alice_s,
            "--max-price",
            "1",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["blob"]["chunks_sent"], 0, "{again}");
    assert_eq!(v["blob"]["already_published"], true, "{again}");

    // A transfer to a fresh key arrives.
    let keys = work.path().join("keys");
    let out = ok(&["--keys-dir", s(&keys), "--json", "key", "generate", "carol"]);
    let carol: Value = serde_json::from_str(&out).unwrap();
    let carol = carol["address"].as_str().unwrap().to_string();
    node.expect(
        &[
            "tx",
            "send",
            "--key",
            &alice_s,
            "--to",
            &carol,
            "--amount",
            "1.5",
            "--token",
            "industrial",
        ],
        0,
    );
    node.wait_for("the transfer to carol", Duration::from_secs(120), |n| {
        let r = n.tb(&["--json", "balance", &carol]);
        let v: Value = serde_json::from_str(&r.stdout).ok()?;
        (v["industrial"].as_u64()? == 1_500_000).then_some(())
    });

    // The devnet's provider is registered and staked.
    let p = node.expect(&["provider", "status", s(&node.key("devnet-provider"))], 0);
    assert!(p.contains("stake") && p.contains("cpu"), "{p}");
    let out = node.expect(&["governor", "status"], 0);
    assert!(out.contains("voting"), "{out}");

    // The read-only views.
    let info = node.expect(&["chain", "info"], 0);
    assert!(info.contains("chain id") && info.contains("1337"), "{info}");
    assert!(
        info.contains("min stake") && info.contains("tokens per byte"),
        "{info}"
    );
    let b1 = node.expect(&["chain", "block", "1"], 0);
    assert!(b1.contains("height") && b1.contains("beneficiary"), "{b1}");
    let tx = node.expect(&["chain", "tx", &tx_id], 0);
    assert!(tx.contains("included") && tx.contains(&task), "{tx}");
    let jobs = node.expect(&["jobs", "list"], 0);
    assert!(jobs.contains(&task), "{jobs}");
    let jobs: Value =
        serde_json::from_str(&node.expect(&["--json", "jobs", "list", "--limit", "1"], 0)).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    let providers = node.expect(&["providers"], 0);
    assert!(
        providers.contains("cpu") && providers.contains("stake"),
        "{providers}"
    );
    let slashes = node.expect(&["slashes"], 0);
    assert!(slashes.contains("no slashes"), "{slashes}");
    let payouts = node.expect(&["payouts", "0"], 0);
    assert!(payouts.contains("epoch"), "{payouts}");
    let net = node.expect(&["net", "info"], 0);
    assert!(net.contains("peer id"), "{net}");

    // Every call also goes over one WebSocket (ws://, the same port), admin methods
    // with the token in the upgrade request.
    let ws = node.rpc.replacen("http://", "ws://", 1);
    let over_http = node.expect(&["--json", "chain", "info"], 0);
    let over_ws = ok(&["--rpc", &ws, "--json", "chain", "info"]);
    let (h, w): (Value, Value) = (
        serde_json::from_str(&over_http).unwrap(),
        serde_json::from_str(&over_ws).unwrap(),
    );
    assert_eq!(
        (&h["chain_id"], &h["genesis"]),
        (&w["chain_id"], &w["genesis"])
    );
    let line = fails(&["--rpc", &ws, "mine", "stop"], 1, "admin token");
    assert!(
        line.contains("-32013") && line.contains("stop_mining"),
        "{line}"
    );
    let token = node.dir.path().join("data").join("admin.token");
    let out = ok(&["--rpc", &ws, "--admin-token", s(&token), "mine", "stop"]);
    assert!(out.contains("not mining"), "{out}");
    let out = ok(&["--rpc", &ws, "--admin-token", s(&token), "mine", "start"]);
    assert!(out.contains("is mining"), "{out}");
    // An event name the node does not have is a usage error; --for ends a quiet stream.
    fails(
        &["--rpc", &ws, "events", "--event", "nope"],
        2,
        "expected one of newHeads",
    );
    let quiet = ok(&[
        "--rpc",
        &ws,
        "events",
        "--event",
        "challengeRuled",
        "--for",
        "1",
    ]);
    assert_eq!(quiet, "");
}

/// A provider that reports a wrong digest for op 5, and no verifier to challenge it:
/// its receipt stays on chain, and `compute replay` finds the op (exit 3).
#[test]
fn devnet_replay_finds_a_wrong_trace() {
    let mut node = Devnet::start(&["--test-corrupt-op", "5", "--verify-share-bps", "0"]);
    let alice_s = node.funded_alice();
    let work = TempDir::new().unwrap();
    let blob = build_mlp(work.path());
    let out = node.expect(
        &[
            "--json",
            "compute",
            "submit",
            s(&blob),
            "--key",
            &alice_s,
            "--max-price",
            "2",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let tx_id = v["tx_id"].as_str().unwrap().to_string();
    node.wait_for("a receipt", Duration::from_secs(240), |n| {
        let r = n.tb(&["--json", "compute", "receipts", &tx_id]);
        let v: Value = serde_json::from_str(&r.stdout).ok()?;
        (!v["receipts"].as_array()?.is_empty()).then_some(())
    });
    let out = node.expect(&["--json", "compute", "replay", &tx_id], 3);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["agrees"], false, "{out}");
    assert_eq!(v["receipts"][0]["op"], 5, "{out}");
    let text = node.expect(&["compute", "replay", &tx_id], 3);
    assert!(text.contains("DIFFERS: first differing op 5"), "{text}");
}
