//! Results through the real binary: a lying provider's result is shown provisional,
//! then challenged, and replaced by the honest provider's, which turns final and is the
//! CPU reference's answer; the events a requestor follows (`receiptAccepted`,
//! `challengeOpened`, `challengeRuled`, `providerSlashed`, `epochSettled` counting the
//! slash); a job no provider serves fails `unserved` with a `jobFailed` event.

mod support;

use serde_json::{json, Value};
use support::{wait_for, Node, Ws};
use tb_chain::market::objects::publish_payloads;
use tb_chain::tx::{FeeSelector, JobSpec, SubmitJob, TxPayload};
use tb_primitives::{SecretKey, MICRO_PER_TOKEN};

const OFF: &str = "0";

/// The honest output digest of the `mlp` example (a local run on the CPU reference).
fn honest_mlp_digest() -> String {
    let job = tb_job::examples::build_example("mlp").unwrap();
    let run = tb_job::replay(&job, blocktorch::cpu::default_fabric()).unwrap();
    hex::encode(run.output_digest)
}

fn subscribe(ws: &mut Ws, kinds: &[&str]) {
    for k in kinds {
        let r = ws.call(&format!("subscribe_{k}"), json!([]));
        assert!(r["result"].is_u64() || r["result"].is_string(), "{k}: {r}");
    }
}

/// `compute.getResult` until `f` accepts it.
fn wait_result(n: &Node, task: &str, secs: u64, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(secs, what, || {
        let r = n.call("compute.getResult", json!([task])).ok()?;
        f(&r).then_some(r)
    })
}

#[test]
fn a_lying_providers_result_is_provisional_then_challenged_and_replaced_by_the_honest_one() {
    let d = tempfile::tempdir().unwrap();
    // A mines and verifies (no provider of its own).
    let a = Node::devnet(&d.path().join("a"), &[], &[("TB_PROVIDER", OFF)]);
    let mut ws = Ws::connect(a.rpc);
    subscribe(
        &mut ws,
        &[
            "receiptAccepted",
            "challengeOpened",
            "challengeRuled",
            "providerSlashed",
            "epochSettled",
        ],
    );
    // B is a provider (devnet-bob's key) that reports a wrong output: op 12 of `mlp`
    // is its `probs` output, so its result object, leaf and output digest tell the
    // same lie.
    let bob = SecretKey::dev("devnet-bob");
    let bob_key = d.path().join("a").join("dev-keys").join("devnet-bob.key");
    let b = Node::start(
        "run",
        &d.path().join("b"),
        &[
            "--network",
            "devnet",
            "--key-file",
            bob_key.to_str().unwrap(),
            "--provider",
            "--stake",
            "100",
            "--test-corrupt-op",
            "12",
            "--bootnode",
            &a.p2p(),
        ],
        &[],
    );
    let alice = SecretKey::dev("devnet-alice");
    a.wait_funded(&alice, 50);
    let liar = a.wait_provider_of(&bob);
    let honest_digest = honest_mlp_digest();

    let tx = a.submit_by_reference(&alice, "mlp", 400);
    let task = a.wait_job(&tx, &["Leased", "Proven", "Disputed"], 120)["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The liar's answer is readable at once: provisional, and wrong.
    let ev = ws.wait_event(120, "receiptAccepted", |v| v["task_id"] == task.as_str());
    assert_eq!(ev["provider"], liar.as_str());
    let r = wait_result(&a, &task, 60, "a provisional result", |r| {
        r["status"] == "provisional" || r["status"] == "challenged"
    });
    assert_eq!(r["provider"], liar.as_str(), "{r}");
    assert_ne!(
        r["output_digest"],
        honest_digest.as_str(),
        "the liar's answer"
    );
    assert_eq!(r["final"], false);
    // The verifier challenges it: the result is shown challenged, never final.
    let ev = ws.wait_event(120, "challengeOpened", |v| v["task_id"] == task.as_str());
    assert_eq!(ev["kind"], "challenge");
    assert_eq!(ev["op"], 12, "the first wrong op is the corrupted one");
    let r = a.ok("compute.getResult", json!([task]));
    assert!(
        r["status"] == "challenged" || r["provider"] != liar.as_str(),
        "{r}"
    );
    // An honest provider (C, the devnet's provider key) joins while the dispute runs.
    let c = Node::devnet(
        &d.path().join("c"),
        &["--bootnode", &a.p2p()],
        &[("TB_MINE", OFF), ("TB_VERIFIER", OFF)],
    );
    let honest = c.wait_provider();
    // The referee rules against the liar, who is slashed; the job is leased again.
    let ev = ws.wait_event(120, "challengeRuled", |v| v["task_id"] == task.as_str());
    assert!(
        ev["ruling"].as_str().unwrap().starts_with("Referee"),
        "{ev}"
    );
    let ev = ws.wait_event(60, "providerSlashed", |v| v["task_id"] == task.as_str());
    assert_eq!(ev["provider"], liar.as_str());
    assert_eq!(ev["reason"], "LostDispute");
    // The honest answer replaces it, provisional then final: the CPU reference's.
    let r = wait_result(&a, &task, 240, "the honest, final result", |r| {
        r["status"] == "final"
    });
    assert_eq!(r["provider"], honest.as_str(), "{r}");
    assert_eq!(r["output_digest"], honest_digest.as_str(), "{r}");
    assert!(
        r["refuted"].as_array().unwrap().is_empty(),
        "the refuted round was cleared by the requeue: {r}"
    );
    let bytes = hex::decode(r["hex"].as_str().unwrap()).unwrap();
    let res = tb_job::ResultObject::decode(&bytes).unwrap();
    assert_eq!(hex::encode(res.output_digest()), honest_digest);
    // The epoch that held the slash reports it.
    let ev = ws.wait_event(120, "epochSettled", |v| v["slashes"].as_u64() >= Some(1));
    assert!(ev["epoch"].as_u64().is_some(), "{ev}");
    drop(b);
}

#[test]
fn a_job_no_provider_serves_fails_unserved_with_an_event() {
    let d = tempfile::tempdir().unwrap();
    let node = Node::devnet(d.path(), &[], &[("TB_PROVIDER", OFF)]);
    let mut ws = Ws::connect(node.rpc);
    subscribe(&mut ws, &["jobFailed", "jobCompleted"]);
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let job = tb_job::examples::build_example("mlp").unwrap();
    let tx = node.submit_job(&alice, &job, 15);
    let j = node.wait_job(&tx, &["Failed"], 120);
    let task = j["task_id"].as_str().unwrap().to_string();
    assert_eq!(j["failure"]["reason"], "unserved", "{j}");
    let ev = ws.wait_event(30, "jobFailed", |v| v["task_id"] == task.as_str());
    assert_eq!(ev["reason"], "unserved");
    assert!(
        ev["description"].as_str().unwrap().contains("waited"),
        "{ev}"
    );
    assert_eq!(ev["height"], j["failure"]["height"]);
    let r = node.ok("compute.getResult", json!([task]));
    assert_eq!(r["status"], "failed");
    assert_eq!(r["failure"]["reason"], "unserved");
    // The dry run had said so: no provider could serve it.
    let e = node.ok(
        "compute.estimate",
        json!([{"flops": 1_000_000, "max_price": 2_000_000}]),
    );
    assert_eq!(e["shortfall"], 1, "{e}");
    assert_eq!(e["capable"], json!([]));
    assert_eq!(e["expected_lease_height"], Value::Null);
}

#[test]
fn jobs_page_by_offset_newest_first() {
    let d = tempfile::tempdir().unwrap();
    let node = Node::devnet(d.path(), &[], &[("TB_PROVIDER", OFF)]);
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let mut submitted = Vec::new();
    for example in ["mlp", "matmul-chain", "transformer"] {
        let job = tb_job::examples::build_example(example).unwrap();
        let tx = node.submit_job(&alice, &job, 500);
        node.wait_job(&tx, &["Queued"], 60);
        submitted.push(node.ok("compute.getJob", json!([tx]))["task_id"].clone());
    }
    let all = node.ok("compute.listJobs", json!([]));
    assert_eq!(all["total"], 3, "{all}");
    let ids = |v: &Value| -> Vec<Value> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["task_id"].clone())
            .collect()
    };
    submitted.reverse();
    assert_eq!(
        ids(&all),
        submitted,
        "newest first: the last submitted leads"
    );
    let mut paged = Vec::new();
    for offset in [0, 2] {
        let page = node.ok("compute.listJobs", json!([null, 2, offset]));
        assert_eq!(page["total"], 3, "{page}");
        paged.extend(ids(&page));
    }
    assert_eq!(paged, ids(&all), "two pages are the whole list, in order");
    let past = node.ok("compute.listJobs", json!({"limit": 2, "offset": 99}));
    assert_eq!(past["jobs"], json!([]), "{past}");
    assert_eq!(past["total"], 3);
    assert_eq!(
        node.ok("aicf.listJobs", json!(["Queued", 1, 1]))["jobs"],
        json!([all["jobs"][1]])
    );
}

/// Heartbeats do not wait for execution: the provider's every job takes 3 s more
/// (`TB_TEST_EXEC_DELAY_MS`), four jobs keep it busy for about 12 s — 80 blocks of
/// 150 ms, eight heartbeat windows, more than an epoch — and still its heartbeat lands
/// in every window, its availability stays full and it is never slashed. (Before the
/// heartbeat had a thread of its own it was sent after the jobs: one for the whole
/// busy spell, and an `Availability` slash at the epoch's end.)
#[test]
fn a_provider_busy_with_slow_jobs_keeps_its_heartbeats_and_is_not_slashed() {
    let d = tempfile::tempdir().unwrap();
    let node = Node::devnet(
        d.path(),
        &[],
        &[("TB_TEST_EXEC_DELAY_MS", "3000"), ("TB_VERIFIER", OFF)],
    );
    let alice = SecretKey::dev("devnet-alice");
    node.wait_funded(&alice, 50);
    let provider = wait_for(60, "a staked provider", || {
        let ps = node.ok("aicf.listProviders", json!([]));
        let p = ps.as_array()?.first()?.clone();
        (p["stake"].as_u64()? > 0).then_some(p)
    });
    let addr = provider["address"].as_str().unwrap().to_string();
    let market = node.ok("chain.info", json!([]))["market"].clone();
    let epoch_blocks = market["epoch_blocks"].as_u64().unwrap();
    let interval = market["heartbeat_interval_blocks"].as_u64().unwrap();
    // Four jobs in lane 1, whose lease (100 blocks, 15 s) holds all four executions, so
    // every receipt is inside its lease and on time: only availability is at stake.
    let job = tb_job::examples::build_example("mlp").unwrap();
    let blob = job.encode().unwrap();
    let market = tb_chain::ChainParams::devnet().market;
    let mut payloads: Vec<TxPayload> = publish_payloads(&market, alice.address(), &blob)
        .into_iter()
        .map(TxPayload::PublishBlob)
        .collect();
    let h = node.height();
    for k in 0..4 {
        // Distinct deadlines make distinct jobs of the same blob.
        let mut spec = JobSpec::for_job(&blob, &job, 2 * MICRO_PER_TOKEN, 1, h + 600 + k).unwrap();
        spec.lane = 1;
        payloads.push(TxPayload::SubmitJob(SubmitJob {
            from: alice.address(),
            spec,
            fee: 0,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }));
    }
    let sent = node.send(&alice, payloads);
    let txs = &sent[sent.len() - 4..];
    let (start, t0) = (node.height(), std::time::Instant::now());
    for tx in txs {
        node.wait_job(tx, &["Proven", "Verified", "Settled"], 120);
    }
    let busy_until = node.height();
    // One worker, four jobs of at least 3 s each.
    assert!(t0.elapsed().as_secs() >= 12, "{:?}", t0.elapsed());
    // The delay was served: the last receipt came at least 4 × 3 s after the first
    // lease.
    let latency: Vec<u64> = txs
        .iter()
        .map(|tx| {
            let r = node.ok("compute.getReceipt", json!([tx]));
            r["receipts"][0]["latency_ms"].as_u64().unwrap()
        })
        .collect();
    assert!(latency.iter().all(|&ms| ms >= 3_000), "{latency:?}");
    // Past the end of the epoch the busy spell ended in, where availability is judged.
    let judged = (busy_until / epoch_blocks + 1) * epoch_blocks + 2;
    wait_for(60, "the epoch's end", || {
        (node.height() >= judged).then_some(())
    });
    let p = node.ok("aicf.getProvider", json!([addr]));
    assert_eq!(p["slashes"], json!([]), "{p}");
    assert_eq!(node.ok("aicf.slashes", json!([addr])), json!([]));
    assert!(p["availability"].as_f64().unwrap() >= 0.99, "{p}");
    let beats = node.metric("provider_heartbeats_total");
    let windows = (node.height() - start) / interval;
    assert!(
        beats >= windows as f64,
        "{beats} heartbeats over {windows} windows"
    );
}
