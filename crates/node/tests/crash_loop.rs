//! The crash loop: the real binary killed with SIGKILL at least 100 times
//! (`TB_CRASH_TRIALS`, default 100) while it mines, imports a peer's blocks and answers
//! jobs, each kill at a random moment drawn from one seed (`TB_CRASH_SEED` replays a
//! run). Node A (miner, provider, verifier) is the one killed; node B, its bootnode,
//! is never killed; in a third of the trials it mines alongside A (competing blocks:
//! A reorganises), and in two thirds of the gaps while A is down it mines blocks A
//! must import when it comes back.
//!
//! After every restart of A:
//! - it started cleanly (its `node.json` appeared, its log has no panic);
//! - its total work is at least what it last reported, and the head it last reported
//!   is still in its store (a reorganisation may leave it off the canonical chain,
//!   never lose it);
//! - every transaction it reported included in a block that is still canonical is
//!   still included there (one whose block was reorganised away may be pending or
//!   gone with the branch);
//! - the supply audit holds (`admin.auditSupply`: minted = accounted, the fund's
//!   running totals match their records).
//!
//! At the end every job submitted in a block still canonical is known to A.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use support::{wait_for, Node};
use tb_chain::tx::FeeSelector;
use tb_chain::{Transfer, TxPayload};
use tb_primitives::SecretKey;

/// splitmix64: the test's one source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A transfer of `amount` micro-tokens from `key` to `to` with its next nonce; the
/// transaction id, or `None` when the node refused it (the mempool may still hold an
/// earlier one under that nonce).
fn transfer(n: &Node, key: &SecretKey, to: tb_primitives::Address, amount: u64) -> Option<String> {
    let p = TxPayload::Transfer(Transfer {
        from: key.address(),
        to,
        amount_consumer: amount,
        amount_industrial: 0,
        fee: 0,
        fee_selector: FeeSelector::Consumer.into(),
        nonce: 0,
        memo: vec![],
    });
    n.try_send(key, vec![p]).pop()?.ok()
}

/// Every transaction seen included in a block that is still canonical is included
/// there.
fn check_committed(a: &Node, included: &BTreeMap<String, (u64, String)>, ctx: &str) {
    for (tx, (height, block)) in included {
        if !canonical(a, *height, block) {
            continue;
        }
        let t = a.call("chain.getTx", json!([tx]));
        let t = t.unwrap_or_else(|e| panic!("{ctx}: {tx} in canonical block {block}: {e}"));
        assert_eq!(
            t["status"], "included",
            "{ctx}: {tx} in canonical block {block}"
        );
        assert_eq!(t["block"].as_str(), Some(block.as_str()), "{ctx}: {tx}");
    }
}

/// Whether block `id` is canonical on `n` at `height`.
fn canonical(n: &Node, height: u64, id: &str) -> bool {
    n.call("chain.getBlock", json!([height]))
        .is_ok_and(|b| b["id"].as_str() == Some(id))
}

#[test]
fn a_hundred_kill_9s_while_mining_importing_and_answering_jobs_lose_nothing_committed() {
    let trials: usize = env_or("TB_CRASH_TRIALS", 100);
    let seed: u64 = env_or("TB_CRASH_SEED", 0x7B_C4A5);
    eprintln!("crash loop: {trials} trials, seed {seed} (TB_CRASH_SEED={seed} replays the draws)");
    let mut rng = Rng(seed);
    let d = tempfile::tempdir().unwrap();
    let off = [("TB_PROVIDER", "0"), ("TB_VERIFIER", "0"), ("TB_MINE", "0")];
    let b = Node::devnet(&d.path().join("b"), &[], &off);
    let boot = b.p2p();
    let adir = d.path().join("a");
    let alice = SecretKey::dev("devnet-alice");
    let bob = SecretKey::dev("devnet-bob").address();

    // What A reported before each kill.
    let mut seen_work = 0u128;
    let mut seen_head: Option<String> = None;
    // tx id -> (height, block id) as A reported it included.
    let mut included: BTreeMap<String, (u64, String)> = BTreeMap::new();
    // SubmitJob tx ids.
    let mut jobs: Vec<String> = Vec::new();
    // Transfer tx ids submitted.
    let mut submitted: Vec<String> = Vec::new();
    let (mut imported_gaps, mut reorged, mut both_mined) = (0u32, 0u32, 0u32);
    let mut prev_head: Option<(u64, String)> = None;

    for trial in 0..trials {
        let ctx = format!("trial {trial} (seed {seed})");
        let a = Node::devnet(&adir, &["--bootnode", &boot], &[]);
        let log = a.log_text();
        assert!(!log.contains("panicked"), "{ctx}: a clean start:\n{log}");

        // Nothing committed went back.
        let w = a.total_work();
        assert!(
            w >= seen_work,
            "{ctx}: total work {w} < {seen_work} reported before the kill"
        );
        if let Some(id) = &seen_head {
            let r = a.call("chain.getBlock", json!([id]));
            assert!(r.is_ok(), "{ctx}: the last head {id} is gone: {r:?}");
        }
        check_committed(&a, &included, &ctx);
        let audit = a.ok("admin.auditSupply", json!([]));
        assert_eq!(audit["holds"], true, "{ctx}: the supply audit: {audit}");

        // Work while alive: transfers, sometimes a job, for a random while.
        if trial == 0 {
            // The devnet funds alice from the miner over its first blocks.
            a.wait_funded(&alice, 50);
        }
        if trial % 5 == 0 {
            jobs.push(a.submit_example(&alice, "mlp"));
        }
        // B mines: not at all, only while A is down, or from now on alongside A
        // (competing blocks: A reorganises).
        let b_mines = rng.below(3);
        if b_mines == 2 {
            b.ok("start_mining", json!([]));
            both_mined += 1;
        }
        for _ in 0..1 + rng.below(3) {
            if let Some(id) = transfer(&a, &alice, bob, 1 + rng.below(1000)) {
                submitted.push(id);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200 + rng.below(1300)));

        // What A reports now counts as committed.
        seen_work = a.total_work();
        if let Some((h, id)) = &prev_head {
            if !canonical(&a, *h, id) {
                reorged += 1;
            }
        }
        let head = a.ok("chain.head", json!([]));
        let id = head["id"].as_str().unwrap().to_string();
        prev_head = Some((head["height"].as_u64().unwrap(), id.clone()));
        seen_head = Some(id);
        for tx in submitted.iter().chain(&jobs) {
            // Not found: a pending transaction lost with the mempool at a kill, or one
            // whose block was reorganised away.
            let Ok(s) = a.call("chain.getTx", json!([tx])) else {
                continue;
            };
            if s["status"] == "included" {
                let at = (
                    s["height"].as_u64().unwrap(),
                    s["block"].as_str().unwrap().to_string(),
                );
                included.insert(tx.clone(), at);
            }
        }
        let mut a = a;
        a.kill9();

        // While A is down, B mines blocks A must import.
        if b_mines > 0 {
            let h = b.height();
            b.ok("start_mining", json!([]));
            wait_for(30, "B's blocks", || (b.height() >= h + 2).then_some(()));
            b.ok("stop_mining", json!([]));
            imported_gaps += 1;
        }
    }

    // The end: A once more; everything committed is there, every job whose submission
    // is canonical is known.
    let a = Node::devnet(&adir, &["--bootnode", &boot], &[]);
    wait_for(60, "A to catch up with B", || {
        (a.total_work() >= b.total_work()).then_some(())
    });
    check_committed(&a, &included, "the end");
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for tx in &jobs {
        let state = match a.call("chain.getTx", json!([tx])) {
            Err(_) => "submission lost (pending at a kill, or its block reorganised away)".into(),
            Ok(t) if t["status"] != "included" => format!("submission {}", t["status"]),
            Ok(t) => {
                let task = t["task_id"].as_str().unwrap();
                let job = a.ok("compute.getJob", json!([task]));
                job["state"].as_str().unwrap_or("?").to_string()
            }
        };
        *states.entry(state).or_default() += 1;
    }
    let audit = a.ok("admin.auditSupply", json!([]));
    assert_eq!(audit["holds"], true, "the supply audit at the end: {audit}");
    eprintln!(
        "crash loop: {trials} kills; {} of {} transactions seen included; B mined in {imported_gaps} gaps, alongside A in {both_mined} trials; A's head of one trial was off the canonical chain by the next {reorged} times; jobs by state {states:?}; final height {}",
        included.len(),
        submitted.len() + jobs.len(),
        a.height()
    );
    assert!(!included.is_empty(), "transfers were included");
    assert!(imported_gaps > 0, "A imported B's blocks");
}
