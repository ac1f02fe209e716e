//! The peer-to-peer layer with real node processes on 127.0.0.1: convergence, a job
//! whose blob travels over the network, a partition that heals onto the heaviest chain,
//! misbehaving peers that are banned while the honest nodes carry on, and a flood of
//! idle connections that does not keep a real peer out.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::{wait_for, Node};
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{JobSpec, SubmitJob};
use tb_chain::TxPayload;
use tb_primitives::{SecretKey, MICRO_PER_TOKEN};

const OFF: &str = "0";

/// A node that only relays and serves (no miner, provider or verifier).
fn plain(dir: &std::path::Path, bootnodes: &[String]) -> Node {
    let b = bootnodes.join(",");
    let mut args = vec![];
    if !b.is_empty() {
        args = vec!["--bootnode", b.as_str()];
    }
    Node::devnet(
        dir,
        &args,
        &[("TB_MINE", OFF), ("TB_PROVIDER", OFF), ("TB_VERIFIER", OFF)],
    )
}

/// A node that mines, relays and serves (no provider or verifier).
fn miner(dir: &std::path::Path) -> Node {
    Node::devnet(dir, &[], &[("TB_PROVIDER", OFF), ("TB_VERIFIER", OFF)])
}

fn head(n: &Node) -> (u64, String, String) {
    let h = n.ok("chain.head", json!([]));
    (
        h["height"].as_u64().unwrap(),
        h["id"].as_str().unwrap().to_string(),
        h["state_root"].as_str().unwrap().to_string(),
    )
}

/// Waits until every node has the same tip (and state root); returns it.
fn converged(nodes: &[&Node], secs: u64, what: &str) -> (u64, String, String) {
    wait_for(secs, what, || {
        let heads: Vec<_> = nodes.iter().map(|n| head(n)).collect();
        heads
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| heads[0].clone())
    })
}

/// `n`'s head once it has held for a second: a block being mined when mining stopped
/// may still land after `stop_mining` answers.
fn settled_head(n: &Node, what: &str) -> (u64, String, String) {
    let mut seen: Option<((u64, String, String), std::time::Instant)> = None;
    wait_for(30, what, || {
        let h = head(n);
        match &seen {
            Some((last, since)) if *last == h => {
                (since.elapsed() >= std::time::Duration::from_secs(1)).then_some(h)
            }
            _ => {
                seen = Some((h, std::time::Instant::now()));
                None
            }
        }
    })
}

/// The block at `height` on each node: ids and state roots agree.
fn same_block_everywhere(nodes: &[&Node], height: u64) -> Value {
    let blocks: Vec<Value> = nodes
        .iter()
        .map(|n| {
            wait_for(60, "the block on every node", || {
                (n.height() >= height).then_some(())
            });
            n.ok("chain.getBlock", json!([height]))
        })
        .collect();
    for b in &blocks[1..] {
        assert_eq!(b["id"], blocks[0]["id"], "block {height} differs");
        assert_eq!(b["state_root"], blocks[0]["state_root"]);
    }
    blocks[0].clone()
}

#[test]
fn three_nodes_converge_and_a_job_uploaded_at_a_is_run_on_c_and_settles_everywhere() {
    let d = tempfile::tempdir().unwrap();
    // A mines and verifies; B relays; C runs the provider.
    let a = Node::devnet(&d.path().join("a"), &[], &[("TB_PROVIDER", OFF)]);
    let b = plain(&d.path().join("b"), &[a.p2p()]);
    let boots = format!("{},{}", a.p2p(), b.p2p());
    let c = Node::devnet(
        &d.path().join("c"),
        &["--bootnode", &boots],
        &[("TB_MINE", OFF), ("TB_VERIFIER", OFF)],
    );
    // The dev keys' funding (transactions gossiped from A, mined there, synced and
    // gossiped to C) and the provider's registration (sent at C, mined at A).
    let alice = SecretKey::dev("devnet-alice");
    c.wait_funded(&alice, 100);
    a.wait_provider();
    let h = converged(&[&a, &b, &c], 60, "three nodes on one head").0;
    assert!(h > 0);
    for n in [&a, &b, &c] {
        let peers = n.ok("net.info", json!([]))["peers"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(peers, 2, "full mesh of three");
    }

    // The job's blob is uploaded to A only (not published on chain).
    let job = tb_job::examples::build_example("mlp").unwrap();
    let blob = job.encode().unwrap();
    let up = a.ok("compute.uploadBlob", json!([hex::encode(&blob)]));
    let sha = up["sha256"].as_str().unwrap().to_string();
    for n in [&b, &c] {
        assert_eq!(
            n.ok("compute.hasBlob", json!([sha]))["stored"],
            json!(false)
        );
    }
    let spec = JobSpec::for_job(&blob, &job, 2 * MICRO_PER_TOKEN, 1, a.height() + 400).unwrap();
    let tx = a
        .send(
            &alice,
            vec![TxPayload::SubmitJob(SubmitJob {
                from: alice.address(),
                spec,
                fee: 0,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })],
        )
        .pop()
        .unwrap();
    let j = a.wait_job(&tx, &["Settled"], 240);
    // C fetched the blob from a peer, checked its digest and stored it; B, which runs
    // no worker, never needed it.
    assert!(c.metric("p2p_blob_fetches_total{result=\"ok\"}") >= 1.0);
    assert_eq!(c.ok("compute.hasBlob", json!([sha]))["stored"], json!(true));
    let on_b = b.ok("compute.hasBlob", json!([sha]));
    assert_eq!(on_b["stored"], json!(false));
    assert_eq!(on_b["published"], json!(false));
    assert_eq!(
        j["receipts"][0]["provider"].as_str().unwrap(),
        SecretKey::dev("devnet-provider").address().to_string()
    );
    assert!(c.metric("provider_jobs_executed_total{fabric=\"cpu\"}") >= 1.0);
    assert!(a.metric("verifier_replays_total") >= 1.0);
    // Settled identically everywhere: the same job record, the same block at the
    // settlement height and above.
    let settled_at = a.height();
    same_block_everywhere(&[&a, &b, &c], settled_at);
    for n in [&b, &c] {
        assert_eq!(n.wait_job(&tx, &["Settled"], 60), j, "job record differs");
    }
    // Balances agree once the tip stops moving.
    let p = SecretKey::dev("devnet-provider").address().to_string();
    a.ok("stop_mining", json!([]));
    let (h2, _, _) = converged(&[&a, &b, &c], 60, "heads after mining stopped");
    assert!(h2 >= settled_at);
    let bal2: Vec<Value> = [&a, &b, &c]
        .iter()
        .map(|n| n.ok("balance", json!([p])))
        .collect();
    assert!(bal2.windows(2).all(|w| w[0] == w[1]), "{bal2:?}");
    assert!(bal2[0]["industrial"].as_u64().unwrap() > 0);
}

#[test]
fn a_partitioned_node_rejoins_and_every_node_ends_on_the_heaviest_chain() {
    let d = tempfile::tempdir().unwrap();
    let only_mine = [("TB_PROVIDER", OFF), ("TB_VERIFIER", OFF)];
    let fast = ["--block-interval-ms", "50", "--metrics-addr", "127.0.0.1:0"];
    let a = Node::start("devnet", &d.path().join("a"), &fast, &only_mine);
    let b = plain(&d.path().join("b"), &[a.p2p()]);
    let cdir = d.path().join("c");
    let mut c = plain(&cdir, &[a.p2p()]);
    let c_id = c.node_json()["p2p"]["peer_id"].clone();
    wait_for(60, "height 5", || (a.height() >= 5).then_some(()));
    a.ok("stop_mining", json!([]));
    let (h0, _, _) = converged(&[&a, &b, &c], 60, "three nodes on one head");

    // Partition: C goes down and comes back alone, mining its own branch, while A mines
    // for A and B. Both branches grow past one sync batch (128 blocks), so when the
    // network heals the heavier branch reaches A as several batches of side-chain
    // blocks before it outweighs A's own.
    assert!(c.terminate().success());
    let c_alone = Node::start("devnet", &cdir, &fast, &only_mine);
    assert_eq!(
        c_alone.node_json()["p2p"]["peer_id"],
        c_id,
        "the network key persists across restarts"
    );
    a.ok("start_mining", json!([]));
    wait_for(120, "A's branch past one batch", || {
        (a.height() >= h0 + 140).then_some(())
    });
    a.ok("stop_mining", json!([]));
    let a_h = a.height();
    // The lone side outworks the majority: A and B must reorganise onto it.
    wait_for(120, "C's branch heavier", || {
        (c_alone.height() >= a_h + 20 && c_alone.total_work() > a.total_work() + 3).then_some(())
    });
    c_alone.ok("stop_mining", json!([]));
    let (_, ab_tip, _) = converged(&[&a, &b], 30, "A and B agree");
    let (c_h, c_tip, c_root) = settled_head(&c_alone, "C's head after it stopped mining");
    assert_ne!(ab_tip, c_tip, "two branches");
    let fork_len = c_h - h0;
    assert!(fork_len > 128, "C's branch is {fork_len} blocks");
    assert!(c_h > a_h);
    let mut c_alone = c_alone;
    assert!(c_alone.terminate().success());

    // Heal: C restarts with its bootnode, not mining.
    let c = plain(&cdir, &[a.p2p()]);
    let end = converged(&[&a, &b, &c], 90, "every node on the heaviest chain");
    assert_eq!(end, (c_h, c_tip.clone(), c_root), "the heavier branch wins");
    assert!(a.metric("chain_reorgs_total") >= 1.0);
    assert!(b.metric("chain_reorgs_total") >= 1.0);
    assert!(a.metric("p2p_sync_blocks_total") >= (fork_len - 1) as f64);
    same_block_everywhere(&[&a, &b, &c], c_h);
    // And the other direction: the majority mines on, the healed network follows.
    a.ok("start_mining", json!([]));
    wait_for(60, "mining resumes", || {
        (a.height() > c_h + 3).then_some(())
    });
    a.ok("stop_mining", json!([]));
    converged(&[&a, &b, &c], 60, "heads after the heal");
}

fn probe(target: &str, mode: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tb-net-probe"))
        .args([
            "--target", target, "--mode", mode, "--count", "12", "--secs", "30",
        ])
        .output()
        .expect("the probe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn peers_sending_invalid_data_are_penalised_and_banned_while_honest_nodes_carry_on() {
    let d = tempfile::tempdir().unwrap();
    let a = miner(&d.path().join("a"));
    let b = plain(&d.path().join("b"), &[a.p2p()]);
    converged(&[&a, &b], 60, "two nodes on one head");

    for (target, mode, offence, per) in [
        (&b, "garbage", "malformed", 25.0),
        (&a, "invalid-block", "invalid_block", 50.0),
        (&b, "bad-request", "bad_request", 25.0),
    ] {
        let r = probe(&target.p2p(), mode);
        assert_eq!(r["connected"], json!(true), "{mode}: {r}");
        assert_eq!(
            r["disconnected"],
            json!(true),
            "{mode}: the node cut the peer off: {r}"
        );
        assert_eq!(
            r["refused_after"],
            json!(true),
            "{mode}: and refuses it: {r}"
        );
        let charged = target.metric(&format!("p2p_penalties_total{{offence=\"{offence}\"}}"));
        assert!(charged * per >= 100.0, "{mode}: {charged} penalties");
        let banned = target.ok("net.info", json!([]))["banned"].clone();
        assert!(
            banned.as_array().unwrap().contains(&r["peer_id"]),
            "{mode}: the probe {} is listed as banned: {banned}",
            r["peer_id"]
        );
    }
    assert_eq!(b.metric("p2p_peers_banned_total"), 2.0);
    assert_eq!(a.metric("p2p_peers_banned_total"), 1.0);
    // Nothing the probe sent was relayed: the honest peer was never penalised.
    for n in [&a, &b] {
        let peers = n.ok("net.info", json!([]))["peers"].clone();
        let peers = peers.as_array().unwrap();
        assert_eq!(peers.len(), 1, "only the honest peer stays: {peers:?}");
        assert_eq!(peers[0]["points"], json!(0));
    }
    // The honest nodes keep mining, gossiping and agreeing.
    let h = a.height();
    wait_for(60, "the chain moves on", || {
        (b.height() >= h + 5).then_some(())
    });
    a.ok("stop_mining", json!([]));
    converged(&[&a, &b], 60, "still one head");
}

/// The TCP address of a `/ip4/A/tcp/P/p2p/ID` listen address.
fn tcp_of(p2p: &str) -> std::net::SocketAddr {
    let parts: Vec<&str> = p2p.split('/').collect();
    format!("{}:{}", parts[2], parts[4]).parse().unwrap()
}

/// Keeps `n` TCP connections to `target` from `source` that never send a byte; each
/// one the node drops is opened again after `backoff`. Returns the connections made.
async fn idle_flood(
    source: std::net::IpAddr,
    target: std::net::SocketAddr,
    n: usize,
    backoff: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncReadExt;
    let made = std::sync::Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (stop, made) = (stop.clone(), made.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                s.bind((source, 0).into()).unwrap();
                if let Ok(mut c) = s.connect(target).await {
                    made.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 512];
                    // Hold it, idle, until the node closes it (or the test ends).
                    loop {
                        let r = tokio::time::timeout(
                            std::time::Duration::from_millis(500),
                            c.read(&mut buf),
                        )
                        .await;
                        match r {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            _ if stop.load(Ordering::Relaxed) => break,
                            _ => {}
                        }
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    made.load(Ordering::Relaxed)
}

#[test]
fn four_hundred_idle_connections_from_one_host_do_not_keep_a_real_peer_out() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = tempfile::tempdir().unwrap();
    let a = miner(&d.path().join("a"));
    wait_for(60, "a few blocks", || (a.height() >= 3).then_some(()));
    // The attacker holds 400 idle connections from 127.0.0.2 (another host as far as
    // the node can tell), reopening each one the node drops.
    let target = tcp_of(&a.p2p());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(idle_flood(
                    "127.0.0.2".parse().unwrap(),
                    target,
                    400,
                    std::time::Duration::from_millis(200),
                    stop,
                ))
        })
    };
    // Past the handshake deadline the idle connections the node let in are dropped
    // (and reopened): the flood is in its steady state.
    wait_for(30, "idle handshakes dropped at the deadline", || {
        let m = a.metric("p2p_inbound_refused_total{reason=\"handshake\"}");
        (m >= 4.0).then_some(())
    });
    // A real peer from 127.0.0.1 connects, syncs and follows the chain meanwhile.
    let b = plain(&d.path().join("b"), &[a.p2p()]);
    wait_for(60, "the peer to connect", || {
        let peers = b.ok("net.info", json!([]))["peers"].clone();
        (peers.as_array().unwrap().len() == 1).then_some(())
    });
    let h = a.height();
    wait_for(60, "the peer to sync past the head it joined at", || {
        (b.height() > h).then_some(())
    });
    let refused = a.metric("p2p_inbound_refused_total{reason=\"pending_per_ip\"}");
    let timed_out = a.metric("p2p_inbound_refused_total{reason=\"handshake\"}");
    stop.store(true, Ordering::Relaxed);
    let made = flood.join().unwrap();
    eprintln!(
        "flood: {made} connections made; {refused} refused per address, {timed_out} dropped in the handshake"
    );
    assert!(
        made > 400,
        "the flood reopened what the node dropped: {made}"
    );
    assert!(refused >= 396.0, "all but 4 refused at once: {refused}");
    assert!(timed_out >= 4.0, "the 4 let in were dropped: {timed_out}");
    a.ok("stop_mining", json!([]));
    converged(&[&a, &b], 60, "one head");
}

#[test]
fn devnet_nodes_starts_a_joined_local_network_and_stops_it_on_a_signal() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("net");
    let log = std::fs::File::create(d.path().join("parent.log")).unwrap();
    let mut parent = Command::new(env!("CARGO_BIN_EXE_the-block"))
        .args(["devnet", "--nodes", "3", "--data-dir"])
        .arg(&base)
        .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .args(["--block-interval-ms", "150"])
        .env_remove("TB_BOOTNODES")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let listing: Value = wait_for(120, "devnet.json", || {
        if let Ok(Some(st)) = parent.try_wait() {
            panic!("the devnet exited early ({st})");
        }
        serde_json::from_str(&std::fs::read_to_string(base.join("devnet.json")).ok()?).ok()
    });
    let nodes = listing["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let roles: Vec<Value> = nodes.iter().map(|n| n["roles"].clone()).collect();
    assert_eq!(roles[0], json!(["miner", "verifier"]));
    assert_eq!(roles[1], json!([]));
    assert_eq!(roles[2], json!(["provider"]));
    let rpcs: Vec<std::net::SocketAddr> = nodes
        .iter()
        .map(|n| n["node"]["rpc"].as_str().unwrap().parse().unwrap())
        .collect();
    let call = |a: std::net::SocketAddr, m: &str| -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": []});
        let (st, text) = support::http(a, "POST", "/", body.to_string().as_bytes());
        assert_eq!(st, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["result"].clone()
    };
    // Every node has the other two as peers, and their chains agree at height 3.
    wait_for(60, "a full mesh", || {
        rpcs.iter()
            .all(|a| call(*a, "net.info")["peers"].as_array().map(|p| p.len()) == Some(2))
            .then_some(())
    });
    wait_for(60, "height 3 everywhere", || {
        rpcs.iter()
            .all(|a| call(*a, "chain.head")["height"].as_u64() >= Some(3))
            .then_some(())
    });
    let at3: Vec<Value> = rpcs
        .iter()
        .map(|a| {
            let body =
                json!({"jsonrpc": "2.0", "id": 1, "method": "chain.getBlock", "params": [3]});
            let (_, text) = support::http(*a, "POST", "/", body.to_string().as_bytes());
            serde_json::from_str::<Value>(&text).unwrap()["result"]["id"].clone()
        })
        .collect();
    assert!(at3.windows(2).all(|w| w[0] == w[1]), "{at3:?}");
    // Each child's whole configuration is its node.toml, roles included.
    let conf: toml::Table = std::fs::read_to_string(base.join("node-2/node.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(conf["provider"]["enabled"].as_bool(), Some(true));
    assert_eq!(conf["miner"]["enabled"].as_bool(), Some(false));
    // A child killed is reported and restarted, and serves again.
    let pid = nodes[1]["node"]["pid"].as_u64().unwrap();
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let again: Value = wait_for(120, "node 1 restarted", || {
        let l: Value =
            serde_json::from_str(&std::fs::read_to_string(base.join("devnet.json")).ok()?).ok()?;
        (l["nodes"][1]["restarts"] == 1 && l["nodes"][1]["node"]["pid"].as_u64() != Some(pid))
            .then_some(l)
    });
    let rpc1: std::net::SocketAddr = again["nodes"][1]["node"]["rpc"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_for(60, "node 1 back at height 3", || {
        (call(rpc1, "chain.head")["height"].as_u64() >= Some(3)).then_some(())
    });
    let parent_log = std::fs::read_to_string(d.path().join("parent.log")).unwrap();
    assert!(
        parent_log.contains("devnet node exited; restarting it"),
        "{parent_log}"
    );
    // One signal stops all three; the children's data directories stay.
    let _ = Command::new("kill")
        .args(["-TERM", &parent.id().to_string()])
        .status();
    let st = wait_for(60, "the devnet to exit", || {
        parent.try_wait().ok().flatten()
    });
    assert!(st.success(), "{st}");
    for i in 0..3 {
        let dir = base.join(format!("node-{i}"));
        assert!(!dir.join("node.json").exists(), "node {i} stopped cleanly");
        assert!(dir.join("chain.redb").exists());
    }
    assert!(!base.join("devnet.json").exists());
}
