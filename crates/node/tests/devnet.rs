//! The node end to end, through the real binary: a devnet settles a job and pays its
//! provider exactly what the epoch's payout record says; a cheating provider is caught
//! by the verifier and slashed by the referee; WebSocket subscribers see the events;
//! `/metrics` moves with the jobs; a `kill -9` loses nothing committed.

mod support;

use serde_json::{json, Value};
use support::{wait_for, Node, Ws};
use tb_chain::tx::FeeSelector;
use tb_primitives::SecretKey;

#[test]
fn devnet_settles_a_job_and_pays_the_provider_its_payout() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::devnet(dir.path(), &[], &[]);
    let mut ws = Ws::connect(node.rpc);
    for m in [
        "subscribe_newHeads",
        "subscribe_jobAssigned",
        "subscribe_jobCompleted",
        "subscribe_epochSettled",
    ] {
        let r = ws.call(m, json!([]));
        assert!(r["result"].is_u64() || r["result"].is_string(), "{m}: {r}");
    }
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let provider = node.wait_provider();
    let before = node.ok("balance", json!([provider]));
    assert_eq!(node.metric("jobs{state=\"Settled\"}"), 0.0);
    let tx = node.submit_example(&alice, "mlp");

    let job = node.wait_job(&tx, &["Settled", "Failed"], 120);
    assert_eq!(job["state"], "Settled", "{job}\n{}", node.log_text());
    let task = job["task_id"].as_str().unwrap().to_string();
    assert_eq!(job["receipts"].as_array().unwrap().len(), 1);
    assert_eq!(job["receipts"][0]["provider"], provider.as_str());

    // The provider's Industrial balance rose by exactly its payouts (its fees are paid
    // in Consumer tokens and its stake was bonded before).
    let after = node.ok("balance", json!([provider]));
    let (h0, h1) = (
        before["height"].as_u64().unwrap(),
        after["height"].as_u64().unwrap(),
    );
    let epoch_blocks = node.ok("chain.info", json!([]))["market"]["epoch_blocks"]
        .as_u64()
        .unwrap();
    let mut paid = 0;
    let mut ours = 0;
    for e in (h0 / epoch_blocks)..=(h1 / epoch_blocks) {
        if e * epoch_blocks <= h0 {
            continue; // settled before the first balance
        }
        for p in node.ok("aicf.payouts", json!([e]))["payouts"]
            .as_array()
            .unwrap()
        {
            if p["provider"] == provider.as_str() {
                paid += p["provider_micro"].as_u64().unwrap();
                ours += u64::from(p["task_id"] == task.as_str());
            }
        }
    }
    assert_eq!(ours, 1, "one payout for the task");
    assert!(paid > 0);
    assert_eq!(
        after["industrial"].as_u64().unwrap() - before["industrial"].as_u64().unwrap(),
        paid,
        "balance moved by the payouts, between heights {h0} and {h1}"
    );
    assert_eq!(before["stake"], after["stake"]);

    // Subscribers saw the job move and the epoch settle.
    let a = ws.wait_event(10, "jobAssigned", |v| v["task_id"] == task.as_str());
    assert_eq!(a["provider"], provider.as_str());
    let c = ws.wait_event(10, "jobCompleted", |v| v["task_id"] == task.as_str());
    assert_eq!(c["state"], "Settled");
    let s = ws.wait_event(10, "epochSettled", |v| {
        v["receipts_paid"].as_u64() >= Some(1)
    });
    assert!(s["provider_paid_micro"].as_u64().unwrap() >= paid);
    assert!(ws.events.iter().any(|(m, _)| m == "newHeads"));

    // The metrics moved with the job.
    assert_eq!(node.metric("jobs{state=\"Settled\"}"), 1.0);
    assert_eq!(
        node.metric("provider_jobs_executed_total{fabric=\"cpu\"}"),
        1.0
    );
    assert!(node.metric("verifier_replays_total") >= 1.0);
    assert_eq!(node.metric("verifier_challenges_total"), 0.0);
    // The provider uploaded the model's constants once and kept them; the verifier,
    // on the same CPU fabric, replayed with them.
    assert_eq!(
        node.metric("model_cache_lookups_total{result=\"miss\"}"),
        1.0
    );
    assert_eq!(
        node.metric("model_cache_lookups_total{result=\"hit\"}"),
        node.metric("verifier_replays_total")
    );
    assert!(
        node.metric("model_cache_bytes") > 400_000.0,
        "the mlp's weights"
    );
    // The job was matched once, on lane 0: the chain time from its submission's block
    // to its lease's.
    assert_eq!(
        node.metric("market_match_latency_seconds_count{lane=\"0\"}"),
        1.0
    );
    let ts = |h: &Value| {
        node.ok("chain.getBlock", json!([h]))["timestamp_ms"]
            .as_u64()
            .unwrap()
    };
    let want = (ts(&a["height"]) - ts(&job["submitted"])) as f64 / 1000.0;
    let got = node.metric("market_match_latency_seconds_sum{lane=\"0\"}");
    assert!(
        (got - want).abs() < 1e-9,
        "match latency {got} s, blocks say {want} s"
    );
    assert!(node.metric("block_height") >= h1 as f64);

    // compute.stats shows the receipt's block with its kernel digest and latency bucket.
    let receipts = node.ok("compute.getReceipt", json!([task]));
    assert_eq!(receipts["receipts"].as_array().unwrap().len(), 1);
    let replayed = node.ok("compute.getBlob", json!([job["blob_sha256"]]));
    assert_eq!(replayed["bytes"], job["blob_bytes"]);
}

#[test]
fn a_cheating_provider_is_challenged_and_slashed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::devnet(dir.path(), &["--test-corrupt-op", "2"], &[]);
    let mut ws = Ws::connect(node.rpc);
    let r = ws.call("subscribe_providerSlashed", json!([]));
    assert!(r["result"].is_u64() || r["result"].is_string(), "{r}");
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let provider = node.wait_provider();
    let stake0 = node.ok("aicf.getProvider", json!([provider]))["stake"]
        .as_u64()
        .unwrap();
    let tx = node.submit_example(&alice, "mlp");
    let task = node.wait_job(&tx, &["Proven", "Disputed", "Queued", "Failed"], 120)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ev = ws.wait_event(120, "providerSlashed", |v| v["reason"] == "LostDispute");
    assert_eq!(ev["provider"], provider.as_str());
    assert_eq!(ev["task_id"], task.as_str());
    let p = node.ok("aicf.getProvider", json!([provider]));
    assert_eq!(
        p["stake"].as_u64().unwrap(),
        stake0 - ev["amount"].as_u64().unwrap()
    );
    let job = node.ok("compute.getJob", json!([task]));
    let d = &job["disputes_detail"][0];
    assert_eq!(d["op"], 2, "the verifier challenged the corrupted op");
    assert!(d["ruling"].as_str().unwrap().starts_with("Referee"), "{d}");
    // The convicted receipt is gone from the job (it was requeued) or refuted.
    assert!(
        job["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["refuted"] == true),
        "{job}"
    );
    assert_eq!(node.metric("verifier_challenges_total"), 1.0);
    let slashes = node.ok("aicf.slashes", json!([provider]));
    assert!(slashes
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["reason"] == "LostDispute"));
}

#[test]
fn kill_9_then_restart_resumes_the_chain_and_the_pending_job() {
    let dir = tempfile::tempdir().unwrap();
    // No provider: the job waits in the queue.
    let mut node = Node::devnet(dir.path(), &[], &[("TB_PROVIDER", "0")]);
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let tx = node.submit_example(&alice, "mlp");
    let job = node.wait_job(&tx, &["Queued"], 60);
    let task = job["task_id"].as_str().unwrap().to_string();
    let height = node.height();
    let tip = node.ok("chain.head", json!([]));
    node.kill9();

    let node = Node::devnet(dir.path(), &[], &[]);
    // The chain is where it was (or further), with the same block at that height.
    let h = node.height();
    assert!(h >= tip["height"].as_u64().unwrap(), "{h} < {height}");
    let b = node.ok("chain.getBlock", json!([tip["height"]]));
    assert_eq!(b["id"], tip["id"]);
    // The pending job resumes: the provider registers, leases it and answers it.
    let job = node.wait_job(&task, &["Proven", "Verified", "Settled"], 120);
    assert_eq!(job["task_id"], task.as_str());
    assert_eq!(job["receipts"].as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_stops_cleanly_and_keeps_the_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::devnet(dir.path(), &[], &[]);
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    node.ok("stop_mining", json!([]));
    let bob = SecretKey::dev("devnet-bob").address();
    let ids = node.send(
        &alice,
        vec![tb_chain::TxPayload::Transfer(tb_chain::Transfer {
            from: alice.address(),
            to: bob,
            amount_consumer: 1,
            amount_industrial: 0,
            fee: 0,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
            memo: vec![],
        })],
    );
    let height = node.height();
    assert!(node.terminate().success(), "{}", node.log_text());
    let node = Node::devnet(dir.path(), &[], &[("TB_MINE", "0")]);
    assert_eq!(node.height(), height);
    let t = node.ok("chain.getTx", json!([ids[0]]));
    assert_eq!(t["status"], "pending", "the saved mempool was re-admitted");
    node.ok("start_mining", json!([]));
    wait_for(30, "the transfer's inclusion", || {
        let t = node.ok("chain.getTx", json!([ids[0]]));
        (t["status"] == "included").then_some(())
    });
}
