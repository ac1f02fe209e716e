//! `tb-node-bench load [--rate R] [--blocks B] [--block-interval-ms M]`: an honest
//! provider under a steady load. A devnet (the real binary: miner, one provider with 4
//! leases, verifier) gets `mlp` jobs from devnet-alice at R a second (the model's blob
//! published once, each job by its own `SubmitJob`) for B blocks; then, two epochs
//! later, the jobs by state, the provider's heartbeats and every slash it took are
//! reported. An honest provider must end with none.

use super::{ready_devnet, Client};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tb_chain::tx::FeeSelector;
use tb_chain::{SignedTx, TxPayload};
use tb_primitives::{SecretKey, MICRO_PER_TOKEN};

fn height(c: &mut Client) -> Result<u64, String> {
    c.call("chain.head", json!([]))?["height"]
        .as_u64()
        .ok_or_else(|| "height".to_string())
}

pub fn load(rate: f64, blocks: u64, interval_ms: u64) -> Result<(), String> {
    let (dir, node, mut c, alice, info) = ready_devnet(interval_ms)?;
    let chain_id = info["chain_id"].as_u64().ok_or("chain id")?;
    let epoch = info["market"]["epoch_blocks"].as_u64().ok_or("epoch")?;
    let provider = SecretKey::dev("devnet-provider").address().to_string();
    let job = tb_job::examples::build_example("mlp").map_err(|e| e.to_string())?;
    let blob = job.encode().map_err(|e| e.to_string())?;
    let mut nonce = c.call("balance", json!([alice.address().to_string()]))?["next_nonce"]
        .as_u64()
        .ok_or("nonce")?;
    // Signs `p` at `*nonce` and submits it; the nonce advances when it is admitted.
    let send = |c: &mut Client, nonce: &mut u64, mut p: TxPayload| -> Result<(), String> {
        *p.nonce_mut() = *nonce;
        let tx = SignedTx::sign_paying_floor(p, &alice, chain_id, 1);
        c.call(
            "submit_tx",
            json!([hex::encode(tb_primitives::encode(&tx))]),
        )?;
        *nonce += 1;
        Ok(())
    };
    for b in tb_chain::market::objects::publish_payloads(
        &tb_chain::ChainParams::devnet().market,
        alice.address(),
        &blob,
    ) {
        send(&mut c, &mut nonce, TxPayload::PublishBlob(b))?;
    }
    let start = height(&mut c)?;
    let t0 = Instant::now();
    let (mut submitted, mut refused) = (0u64, 0u64);
    let mut h = start;
    while h < start + blocks {
        h = height(&mut c)?;
        let spec = tb_chain::tx::JobSpec::for_job(&blob, &job, MICRO_PER_TOKEN / 10, 1, h + 300)
            .map_err(|e| e.to_string())?;
        let p = TxPayload::SubmitJob(tb_chain::tx::SubmitJob {
            from: alice.address(),
            spec,
            fee: 0,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        });
        match send(&mut c, &mut nonce, p) {
            Ok(()) => submitted += 1,
            Err(e) => {
                refused += 1;
                if refused <= 3 {
                    eprintln!("load: a job refused: {e}");
                }
                // Resynchronise the nonce with the node's view.
                nonce = c.call("balance", json!([alice.address().to_string()]))?["next_nonce"]
                    .as_u64()
                    .ok_or("nonce")?;
            }
        }
        if submitted % 250 == 0 && std::env::var_os("TB_LOAD_TRACE").is_some() {
            let b = c.call("balance", json!([provider]))?;
            let p = c.call("aicf.getProvider", json!([provider]))?;
            eprintln!(
                "load: height {h}: provider nonce {} next {}, last heartbeat {}",
                b["nonce"], b["next_nonce"], p["last_heartbeat"]
            );
        }
        let next = Duration::from_secs_f64(submitted as f64 / rate);
        if let Some(wait) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // Two epochs on: every availability judgement of the loaded blocks is made.
    let judged = (h / epoch + 2) * epoch + 1;
    while height(&mut c)? < judged {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut states = Vec::new();
    for s in [
        "Queued", "Leased", "Proven", "Verified", "Settled", "Failed",
    ] {
        let n = c.call("compute.listJobs", json!([s, 1]))?["total"].clone();
        states.push(format!("{s} {n}"));
    }
    let slashes = c.call("aicf.slashes", json!([provider]))?;
    let reasons: Vec<String> = slashes
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| format!("{} at {}", s["reason"], s["height"]))
                .collect()
        })
        .unwrap_or_default();
    let p: Value = c.call("aicf.getProvider", json!([provider]))?;
    println!(
        "load: {submitted} jobs submitted over {} blocks of {interval_ms} ms ({:.1} jobs/s, {refused} refused); judged through height {judged}",
        h - start,
        submitted as f64 / secs
    );
    println!("load: jobs by state: {}", states.join(", "));
    println!(
        "load: provider receipts {}, availability now {}, slashes {}: [{}]",
        p["receipts"],
        p["availability"],
        reasons.len(),
        reasons.join("; ")
    );
    drop(node);
    if std::env::var_os("TB_LOAD_TRACE").is_some() {
        // Keep the devnet's directory (its log) for a look afterwards.
        eprintln!("load: kept {}", dir.keep().display());
    }
    Ok(())
}
