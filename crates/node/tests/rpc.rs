//! Bad requests get JSON-RPC errors (or HTTP refusals) with clear messages, and the node
//! keeps serving: oversized bodies, wrong types, unknown methods, malformed JSON,
//! garbage transactions, garbage on the socket and on the WebSocket; the metrics
//! manifest is served with its stable hash; health and readiness; 1,000 concurrent
//! scrapes; `promtool check metrics`; a bad config is refused at start; idle
//! WebSockets from one address neither lock other clients out nor stay forever.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use support::{http, Node, Ws};

fn rpc_node(dir: &std::path::Path) -> Node {
    node_with_config(
        dir,
        "rpc_max_request_bytes = 65536\nmetrics_addr = \"127.0.0.1:0\"\n",
    )
}

/// `the-block run` in `dir` with the configuration file `toml`.
fn node_with_config(dir: &std::path::Path, toml: &str) -> Node {
    let cfg = dir.join("node.toml");
    std::fs::write(&cfg, toml).unwrap();
    let c = cfg.display().to_string();
    Node::start("run", &dir.join("data"), &["--config", &c], &[])
}

fn code(e: &Value) -> i64 {
    e["code"].as_i64().unwrap_or(0)
}

/// An error's message and data, for matching what it says.
fn says(e: &Value) -> String {
    format!("{} {}", e["message"], e["data"])
}

#[test]
fn bad_requests_get_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = rpc_node(dir.path());
    let head = node.ok("chain.head", json!([]));
    assert_eq!(head["height"], 0);

    // Unknown method, wrong types, missing and malformed parameters.
    assert_eq!(
        code(&node.call("no_such_method", json!([])).unwrap_err()),
        -32601
    );
    let e = node.call("balance", json!([123])).unwrap_err();
    assert_eq!(code(&e), -32602);
    assert!(says(&e).contains("expected a string"), "{e}");
    let e = node.call("balance", json!(["tb1nope"])).unwrap_err();
    assert_eq!(code(&e), -32602);
    assert!(
        says(&e).contains("neither an address nor a registered handle"),
        "{e}"
    );
    let e = node.call("balance", json!([])).unwrap_err();
    assert_eq!(code(&e), -32602);
    let e = node.call("balance", json!({"adress": "x"})).unwrap_err();
    assert!(says(&e).contains("address"), "{e}");
    let e = node.call("chain.getBlock", json!([true])).unwrap_err();
    assert_eq!(code(&e), -32602);
    assert_eq!(
        code(&node.call("chain.getBlock", json!([999_999])).unwrap_err()),
        -32011
    );
    let e = node
        .call("compute.listJobs", json!(["Sleeping"]))
        .unwrap_err();
    assert!(says(&e).contains("unknown job state"), "{e}");

    // Garbage transactions: not hex, hex but not a transaction, a valid but unfunded one.
    let e = node.call("submit_tx", json!(["zz"])).unwrap_err();
    assert!(says(&e).contains("not hex"), "{e}");
    let e = node.call("submit_tx", json!(["00ff00ff"])).unwrap_err();
    assert!(
        e["message"].as_str().unwrap().starts_with("transaction:"),
        "{e}"
    );
    let (_, tx_hex) = support::unfunded_transfer_hex(0);
    let e = node.call("submit_tx", json!([tx_hex])).unwrap_err();
    assert_eq!(code(&e), -32010);
    assert!(e["data"]["reason"].is_string(), "{e}");
    assert_eq!(
        code(&node.call("compute.submitJob", json!([tx_hex])).unwrap_err()),
        -32602,
        "compute.submitJob takes only SubmitJob"
    );
    // Mining needs a key.
    assert_eq!(
        code(&node.call("start_mining", json!([])).unwrap_err()),
        -32012
    );

    // Malformed JSON and an oversized body.
    let (status, body) = http(
        node.rpc,
        "POST",
        "/",
        b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"meth",
    );
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code(&v["error"]), -32700, "{body}");
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "submit_tx",
                     "params": ["ab".repeat(40_000)]})
    .to_string();
    let (status, body) = http(node.rpc, "POST", "/", big.as_bytes());
    assert!(
        status == 413 || body.contains("-32007") || body.contains("too big"),
        "oversized request: HTTP {status}: {body}"
    );

    // Garbage on the socket, a half request, and garbage on the WebSocket.
    for junk in [
        &b"\x00\x01\x02 GARBAGE \xff\xfe\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
    ] {
        let mut s = TcpStream::connect(node.rpc).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let _ = s.write_all(junk);
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
    }
    let mut ws = Ws::connect(node.rpc);
    ws.send_text("this is not json");
    let r = support::wait_for(10, "a parse error on the socket", || ws.read());
    assert_eq!(code(&r["error"]), -32700, "{r}");
    let r = ws.call("subscribe_nothing", json!([]));
    assert_eq!(code(&r["error"]), -32601, "{r}");
    let r = ws.call("chain.head", json!([]));
    assert_eq!(r["result"]["height"], 0);

    // Still serving, and every request was counted.
    assert_eq!(node.ok("chain.head", json!([]))["id"], head["id"]);
    assert_eq!(node.metric("rpc_requests_total{method=\"balance\"}"), 4.0);
}

/// Parameters by position and by name give the same answers; the seeds' examples as
/// written work or get their documented error.
#[test]
fn named_and_positional_params_give_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = rpc_node(dir.path());
    let a = tb_primitives::SecretKey::dev("alice").address().to_string();
    let by_pos = node.ok("balance", json!([a]));
    assert_eq!(node.ok("balance", json!({"address": a})), by_pos);
    assert_eq!(by_pos["address"], a.as_str());
    assert_eq!(
        node.ok("chain.getBlock", json!([0])),
        node.ok("chain.getBlock", json!({"block": 0}))
    );
    assert_eq!(
        node.ok("compute.listJobs", json!(["Queued", 5])),
        node.ok("compute.listJobs", json!({"state": "Queued", "limit": 5}))
    );
    assert_eq!(
        node.ok("aicf.payouts", json!([0])),
        node.ok("aicf.payouts", json!({"epoch": 0}))
    );
    // Trailing optional parameters may be left out, by position or by name.
    assert_eq!(
        node.ok("compute.listJobs", json!([])),
        node.ok("compute.listJobs", json!({}))
    );
    // The seeds' Python client sends `{}` for methods without parameters.
    assert_eq!(node.ok("chain.head", json!({}))["height"], 0);
    assert_eq!(
        node.ok("resolve_handle", json!({"handle": "@alice"}))["address"],
        Value::Null
    );
    // The seeds' `balance {"address": "alice"}`: a name that is not a registered handle.
    let e = node
        .call("balance", json!({"address": "alice"}))
        .unwrap_err();
    assert!(
        says(&e).contains("neither an address nor a registered handle"),
        "{e}"
    );
    // The seeds' unsigned `register_handle`: the node holds no keys.
    let e = node
        .call(
            "register_handle",
            json!({"handle": "@alice", "address": "alice"}),
        )
        .unwrap_err();
    assert_eq!(code(&e), -32602);
    assert!(says(&e).contains("holds no keys"), "{e}");
}

/// Admin methods need the token from the node's admin token file; with it they work.
#[test]
fn admin_methods_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = rpc_node(dir.path());
    let token = node
        .admin_token
        .clone()
        .expect("the node made its admin token file");
    assert_eq!(token.len(), 64);
    for (m, p) in [
        ("start_mining", json!([])),
        ("stop_mining", json!([])),
        ("admin.shutdown", json!([])),
        ("admin.addPeer", json!(["/ip4/127.0.0.1/tcp/1"])),
        ("admin.auditSupply", json!([])),
    ] {
        let e = node.call_as(m, p.clone(), None).unwrap_err();
        assert_eq!(code(&e), -32013, "{m}: {e}");
        let e = node.call_as(m, p, Some("not-the-token-0000")).unwrap_err();
        assert_eq!(code(&e), -32013, "{m}: {e}");
    }
    // With the token: stop_mining works; start_mining needs a key this node lacks.
    assert_eq!(node.ok("stop_mining", json!([]))["mining"], false);
    assert_eq!(
        code(&node.call("start_mining", json!([])).unwrap_err()),
        -32012
    );
    // The supply audit at genesis: the allocations, all on balances.
    let audit = node.ok("admin.auditSupply", json!([]));
    assert_eq!(audit["holds"], true, "{audit}");
    assert_eq!(audit["height"], 0);
    assert_eq!(audit["minted"], audit["accounted"]);
    assert_eq!(audit["minted"], audit["balances"], "{audit}");
    // The same over WebSocket: no token on the upgrade, refused.
    let mut ws = Ws::connect(node.rpc);
    let r = ws.call("stop_mining", json!([]));
    assert_eq!(code(&r["error"]), -32013, "{r}");
    // admin.shutdown stops the node cleanly.
    assert_eq!(node.ok("admin.shutdown", json!([]))["stopping"], true);
    let st = support::wait_for(30, "the node to exit", || {
        node.child.try_wait().ok().flatten()
    });
    assert!(st.success(), "{st}");
}

#[test]
fn metrics_health_readiness_and_the_wrappers_manifest_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = rpc_node(dir.path());
    let text = node.metrics_text();
    for d in the_block::metrics::CATALOGUE {
        if d.labels.is_empty() {
            assert!(
                text.contains(&format!("# TYPE {} ", d.full)),
                "{} missing",
                d.full
            );
        }
    }
    assert!(text.contains("tb_build_info{version=\""), "{text}");
    assert!(text.contains("process_cpu_seconds_total"), "{text}");
    let m = node.metrics.unwrap();
    let (status, body) = http(m, "GET", "/wrappers", b"");
    assert_eq!(status, 200);
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["hash"], the_block::metrics::manifest_hash().as_str());
    assert_eq!(
        w["metrics"].as_array().unwrap().len(),
        the_block::metrics::CATALOGUE.len()
    );
    let (status, body) = http(m, "GET", "/health", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let (status, body) = http(m, "GET", "/ready", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);
    let (status, _) = http(m, "GET", "/nope", b"");
    assert_eq!(status, 404);
    let (status, _) = http(m, "POST", "/metrics", b"x");
    assert_eq!(status, 405);
    // The JSON-RPC `metrics` method returns the same exposition text.
    let j = node.ok("metrics", json!([]));
    assert_eq!(j["format"], "prometheus-text-0.0.4");
    assert!(
        j["text"].as_str().unwrap().contains("tb_block_height 0"),
        "{j}"
    );
}

/// 1,000 scrapes at once are all answered 200 with the whole exposition.
#[test]
fn a_thousand_concurrent_scrapes_are_all_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = rpc_node(dir.path());
    let addr = node.metrics.unwrap();
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            std::thread::spawn(move || {
                let (status, body) = http(addr, "GET", "/metrics", b"");
                status == 200 && body.contains("tb_block_height")
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 1000);
}

/// `promtool check metrics` (Debian package `prometheus`) on a live scrape: no lint
/// problem. Prints SKIPPED without promtool.
#[test]
fn promtool_finds_no_problem_in_a_live_scrape() {
    let Ok(v) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        println!("SKIPPED promtool_finds_no_problem_in_a_live_scrape: promtool is not installed (Debian package prometheus)");
        return;
    };
    assert!(v.status.success());
    let dir = tempfile::tempdir().unwrap();
    let node = rpc_node(dir.path());
    let text = node.metrics_text();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_config_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "rpc_addr = \"not an address\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_the-block"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("rpc_addr"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_the-block"))
        .args(["run", "--mine"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-file"));
}

/// A port another node holds (peer-to-peer, RPC or metrics) is an error at start that
/// names it, with exit status 1.
#[test]
fn an_occupied_port_is_refused_at_start_with_the_port_named() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    for args in [
        vec![
            "--p2p-listen".to_string(),
            format!("/ip4/127.0.0.1/tcp/{port}"),
        ],
        vec!["--rpc-addr".to_string(), format!("127.0.0.1:{port}")],
        vec!["--metrics-addr".to_string(), format!("127.0.0.1:{port}")],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_the-block"))
            .arg("run")
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            // The variables give free ports; the flag under test overrides one.
            .env("TB_RPC_ADDR", "127.0.0.1:0")
            .env("TB_P2P_LISTEN", "/ip4/127.0.0.1/tcp/0")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&port.to_string()), "{args:?}: {err}");
    }
    drop(held);
}

/// A blocking TCP connection to `to` from the local address `from` (127.0.0.2 plays
/// another host on loopback).
fn connect_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind((from, 0).into()).unwrap();
        s.connect(to).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s
}

#[test]
fn idle_websockets_from_one_address_neither_lock_others_out_nor_stay() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_config(
        dir.path(),
        "metrics_addr = \"127.0.0.1:0\"\nrpc_connections_per_ip = 8\nrpc_idle_secs = 3\n",
    );
    let url = format!("ws://{}/", node.rpc);
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();

    // 128 WebSocket connections from one address, none subscribing: its share of 8
    // is let in, the rest are answered 429.
    let (mut held, mut refused) = (Vec::new(), 0);
    for _ in 0..128 {
        match tungstenite::client(url.as_str(), connect_from(other, node.rpc)) {
            Ok((ws, _)) => held.push(ws),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                assert_eq!(r.status(), 429);
                refused += 1;
            }
            Err(e) => panic!("handshake: {e}"),
        }
    }
    assert_eq!((held.len(), refused), (8, 120));
    assert_eq!(node.metric("rpc_connections_refused_total"), 120.0);

    // Meanwhile a client on another address is served, over HTTP and WebSocket, and
    // subscribes.
    assert_eq!(node.ok("chain.head", json!([]))["height"], 0);
    let mut sub = Ws::connect(node.rpc);
    let id = sub.call("subscribe_newHeads", json!([]));
    assert!(id["result"].is_u64(), "a subscription id: {id}");
    // A connection holds at most 64 subscriptions; the 65th is refused with -32006.
    for _ in 1..64 {
        let r = sub.call("subscribe_newHeads", json!([]));
        assert!(r["result"].is_u64(), "{r}");
    }
    let over = sub.call("subscribe_newHeads", json!([]));
    assert_eq!(over["error"]["code"], -32006, "{over}");
    assert_eq!(over["error"]["data"], "Exceeded max limit of 64", "{over}");

    // Past the idle timeout the 8 idle connections are closed with a close frame...
    support::wait_for(20, "the idle connections closed", || {
        (node.metric("rpc_connections_closed_idle_total") >= 8.0).then_some(())
    });
    for ws in &mut held {
        match ws.read() {
            Ok(tungstenite::Message::Close(_))
            | Err(tungstenite::Error::ConnectionClosed)
            | Err(tungstenite::Error::AlreadyClosed)
            | Err(tungstenite::Error::Protocol(_)) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() != std::io::ErrorKind::WouldBlock => {}
            other => panic!("an idle connection still open: {other:?}"),
        }
    }
    // ...and the address may connect again.
    let (mut again, _) = tungstenite::client(url.as_str(), connect_from(other, node.rpc))
        .expect("a fresh connection after the idle ones went");
    again
        .send(tungstenite::Message::Text(
            json!({"jsonrpc": "2.0", "id": 1, "method": "chain.head", "params": []})
                .to_string()
                .into(),
        ))
        .unwrap();
    match again.read().unwrap() {
        tungstenite::Message::Text(t) => assert!(t.contains("\"height\":0"), "{t}"),
        m => panic!("{m:?}"),
    }

    // The subscriber, silent for twice the idle timeout, is still there; the fresh
    // connection, silent as long after its one call, is not.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let head = sub.call("chain.head", json!([]));
    assert_eq!(head["result"]["height"], 0, "{head}");
    assert_eq!(node.metric("rpc_connections_closed_idle_total"), 9.0);
    assert!(
        !matches!(again.read(), Ok(tungstenite::Message::Text(_))),
        "closed"
    );
}

#[test]
fn requests_share_one_memory_budget_over_http_and_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_config(
        dir.path(),
        "rpc_max_request_bytes = 1048576\nrpc_request_memory_mb = 1\n",
    );

    // A slow upload of one whole budget: its share is taken when its head arrives.
    let size = 1 << 20;
    let start = r#"{"jsonrpc":"2.0","id":7,"method":"chain.head","params":[],"pad":""#;
    let end = r#""}"#;
    let body = format!("{start}{}{end}", "x".repeat(size - start.len() - end.len()));
    assert_eq!(body.len(), size);
    let mut slow = TcpStream::connect(node.rpc).unwrap();
    write!(
        slow,
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    slow.write_all(&body.as_bytes()[..4096]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    // A WebSocket call finds the budget spent and is refused at once as busy...
    let mut ws = Ws::connect(node.rpc);
    let r = ws.call("chain.head", json!([]));
    assert_eq!(r["error"]["code"], -32012, "{r}");
    assert!(says(&r["error"]).contains("budget"), "{r}");
    // ...and a small HTTP request waits for its share.
    let addr = node.rpc;
    let waiting = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let (status, text) = http(
            addr,
            "POST",
            "/",
            br#"{"jsonrpc":"2.0","id":1,"method":"chain.head","params":[]}"#,
        );
        (status, text, t0.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(
        !waiting.is_finished(),
        "the small request waits for the budget"
    );
    // The upload completes: its answer comes, the budget is given back, both go on.
    slow.write_all(&body.as_bytes()[4096..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"height\":0"), "{answer}");
    let (status, text, waited) = waiting.join().unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"height\":0"), "{text}");
    assert!(
        waited >= std::time::Duration::from_millis(800),
        "{waited:?}"
    );
    let r = ws.call("chain.head", json!([]));
    assert_eq!(r["result"]["height"], 0, "{r}");
}
