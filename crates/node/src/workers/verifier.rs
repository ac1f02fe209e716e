//! The verifier worker. On every new tip it looks at the proven jobs inside their
//! challenge window and picks a share of their receipts (`share_bps`; the pick is a hash
//! of the verifier's address and the receipt, so it is fixed per receipt and unknown to
//! the provider in advance of the verifier's key). For each pick it fetches the job blob
//! and the published trace, replays the job on the CPU reference, and when the trace
//! differs, builds the challenge of the first differing op (`tb_job::build_challenge`),
//! publishes the job blob (if the chain no longer has it) and the evidence bundle, and
//! submits the bonded `Challenge`.

use super::{publish_payloads, FEES};
use crate::blobs::{fetch as fetch_blob, job_model};
use crate::config::VerifierConfig;
use crate::node::Node;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tb_chain::market::query::live_index;
use tb_chain::market::records::{self as r, JobState};
use tb_chain::TxPayload;
use tb_primitives::{Address, Id, SecretKey};

/// Whether the verifier with address `me` replays receipt `receipt_hash` at `share_bps`.
pub fn picked(me: &Address, receipt_hash: &[u8; 32], share_bps: u32) -> bool {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&me.0);
    b.extend_from_slice(receipt_hash);
    let d = tb_primitives::sha256_digest(&b).0;
    (u16::from_be_bytes([d[0], d[1]]) as u32 % 10_000) < share_bps
}

/// Runs until the node stops.
pub fn run(node: Arc<Node>, key: SecretKey, cfg: VerifierConfig, models: Arc<tb_job::ModelCache>) {
    let me = key.address();
    let mut checked: BTreeSet<[u8; 32]> = BTreeSet::new();
    // Tasks challenged: one open challenge per challenger per job.
    let mut challenged: BTreeSet<Id> = BTreeSet::new();
    let mut seen = 0;
    while !node.stopping() {
        let h = node.wait_head(seen, Duration::from_millis(500));
        if node.stopping() {
            break;
        }
        if h == seen {
            continue;
        }
        seen = h;
        // Jobs whose challenge window is still open, from the chain's index.
        let open = live_index(node.core().db.state(), r::Kind::Challenge, h + 1);
        for (t, _) in open {
            let Some(job) = r::job(node.core().db.state(), &t) else {
                continue;
            };
            if job.state != JobState::Proven || job.window_end < h + 1 || challenged.contains(&t) {
                continue;
            }
            for rc in job.receipts.iter().filter(|x| !x.refuted) {
                if !checked.insert(rc.receipt_hash) || !picked(&me, &rc.receipt_hash, cfg.share_bps)
                {
                    continue;
                }
                match check(&node, &key, &models, t, &job, rc) {
                    Ok(true) => {
                        challenged.insert(t);
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(task = %t, error = %e, "verifier check failed"),
                }
            }
        }
    }
}

/// Replays one receipt; challenges it when it differs. `Ok(true)` when a challenge was
/// sent.
fn check(
    node: &Node,
    key: &SecretKey,
    models: &tb_job::ModelCache,
    t: Id,
    job: &r::Job,
    rc: &r::ReceiptRecord,
) -> Result<bool, String> {
    let blob = fetch_blob(node, &job.spec.blob_sha256)?.ok_or("job blob unavailable")?;
    let trace = fetch_blob(node, &rc.trace_sha256)?.ok_or("trace unavailable")?;
    let theirs = tb_job::decode_trace(&trace)
        .map_err(|e| e.to_string())?
        .leaves;
    let model = job_model(node, job)?;
    let decoded =
        tb_job::Job::decode_resolved(&blob, model.as_deref()).map_err(|e| e.to_string())?;
    let _span =
        tracing::info_span!("verifier_replay", task = %t, provider = %rc.provider).entered();
    let t0 = Instant::now();
    let replay = super::execute_cached(
        node,
        models,
        &decoded,
        blocktorch::cpu::default_fabric(),
        tb_job::ExecOptions {
            replay: tb_job::ReplayMode::CrossFabric,
            profile: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    node.metrics.observe("verifier_replay_seconds", &[], secs);
    tracing::debug!(
        ms = (secs * 1e3) as u64,
        ops = replay.op_digests.len(),
        "receipt replayed"
    );
    node.metrics.inc("verifier_replays_total", &[]);
    let Some(op) = tb_job::first_divergence(&replay.op_digests, &theirs) else {
        return Ok(false);
    };
    let c = tb_job::build_challenge(&decoded, t, &theirs, op).map_err(|e| e.to_string())?;
    let bundle = c.bundle.encode().map_err(|e| e.to_string())?;
    node.blobs.put(&bundle).map_err(|e| e.to_string())?;
    let me = key.address();
    let mut p = publish_payloads(node, me, &blob);
    p.extend(publish_payloads(node, me, &bundle));
    // Too late once the window has closed (the challenge would not apply).
    if node.core().db.tip().height >= job.window_end {
        return Ok(false);
    }
    let bond = node
        .core()
        .effective_params(&node.params)
        .market
        .challenge_bond_micro;
    p.push(TxPayload::Challenge(Box::new(
        tb_chain::market::dispute::challenge_tx(me, t, &c, &bundle, bond, FEES),
    )));
    node.submit_signed(key, p)
        .map_err(|e| format!("challenge refused: {e}"))?;
    node.metrics.inc("verifier_challenges_total", &[]);
    tracing::warn!(
        task = %t,
        op,
        provider = %rc.provider,
        "receipt diverges from the replay; challenged"
    );
    Ok(true)
}
