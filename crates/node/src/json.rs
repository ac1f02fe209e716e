//! JSON views of chain records for the RPC and the event stream. Conventions (also in
//! `docs/spec/rpc.md`): ids and digests are lowercase hex, addresses `tb1…` text,
//! amounts integer micro-tokens, heights and counts integers; enum values are their
//! variant names.

use serde_json::{json, Value};
use tb_chain::governance::{GovernorStatus, Proposal};
use tb_chain::market::records::{self as r, Job, JobState};
use tb_chain::{BlockHeader, SignedTx, TxPayload};
use tb_primitives::Id;

pub fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

pub fn header(h: &BlockHeader, txs: usize) -> Value {
    serde_json::to_value(head(h, txs)).expect("a header serialises")
}

/// A header as the typed `chain.head` result.
pub fn head(h: &BlockHeader, txs: usize) -> tb_rpc_api::results::Header {
    use tb_rpc_api::params::HexId;
    tb_rpc_api::results::Header {
        id: HexId(h.id()),
        height: h.height,
        parent: HexId(h.parent),
        timestamp_ms: h.timestamp_ms,
        difficulty: h.difficulty,
        nonce: h.nonce,
        tx_root: HexId(h.tx_root),
        state_root: HexId(h.state_root),
        receipts_root: HexId(h.receipts_root),
        coinbase_consumer: h.coinbase_consumer,
        coinbase_industrial: h.coinbase_industrial,
        beneficiary: h.beneficiary.to_string(),
        txs: txs as u64,
    }
}

pub fn tx(t: &SignedTx) -> Value {
    let p = &t.payload;
    let mut v = json!({
        "id": t.id().to_hex(),
        "kind": p.kind(),
        "from": p.from().to_string(),
        "nonce": p.nonce(),
        "fee": p.fee(),
        "fee_selector": p.fee_selector(),
        "bytes": t.encoded_len(),
    });
    match p {
        TxPayload::Transfer(x) => {
            v["to"] = json!(x.to.to_string());
            v["amount_consumer"] = json!(x.amount_consumer);
            v["amount_industrial"] = json!(x.amount_industrial);
        }
        TxPayload::RegisterHandle(x) => v["handle"] = json!(x.handle),
        TxPayload::Stake(x) | TxPayload::Unstake(x) => v["amount"] = json!(x.amount),
        TxPayload::SubmitJob(x) => {
            v["blob_sha256"] = json!(hex32(&x.spec.blob_sha256));
            v["max_price"] = json!(x.spec.max_price);
            v["redundancy"] = json!(x.spec.redundancy);
        }
        TxPayload::SubmitReceipt(x) => v["task_id"] = json!(x.task_id.to_hex()),
        TxPayload::SealReceipt(x) => v["task_id"] = json!(x.task_id.to_hex()),
        TxPayload::Challenge(x) => {
            v["task_id"] = json!(x.task_id.to_hex());
            v["op"] = json!(x.op);
        }
        TxPayload::PublishBlob(x) => {
            v["object"] = json!(hex32(&x.object));
            v["index"] = json!(x.index);
        }
        _ => {}
    }
    v
}

pub fn job_state(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "Queued",
        JobState::Leased => "Leased",
        JobState::Proven => "Proven",
        JobState::Verified => "Verified",
        JobState::Settled => "Settled",
        JobState::Failed => "Failed",
        JobState::Disputed => "Disputed",
        JobState::Revealing => "Revealing",
    }
}

/// Parses a job state name (case-insensitive).
pub fn parse_job_state(s: &str) -> Option<JobState> {
    JobState::ALL
        .into_iter()
        .find(|st| job_state(*st).eq_ignore_ascii_case(s))
}

pub fn receipt(x: &r::ReceiptRecord) -> Value {
    json!({
        "provider": x.provider.to_string(),
        "receipt_hash": hex32(&x.receipt_hash),
        "output_digest": hex32(&x.output_digest),
        "trace_root": x.trace_root.to_hex(),
        "trace_sha256": hex32(&x.trace_sha256),
        "result_sha256": hex32(&x.result_sha256),
        "latency_blocks": x.latency_blocks,
        "latency_ms": x.latency_ms,
        "height": x.height,
        "payable": x.payable,
        "refuted": x.refuted,
    })
}

pub fn job(t: &Id, j: &Job) -> Value {
    json!({
        "task_id": t.to_hex(),
        "state": job_state(j.state),
        "requester": j.requester.to_string(),
        "blob_sha256": hex32(&j.spec.blob_sha256),
        "blob_bytes": j.spec.blob_bytes,
        "flops": j.spec.flops,
        "n_ops": j.spec.n_ops,
        "outputs": j.spec.outputs.len(),
        "model_sha256": j.spec.model_object.map(|m| hex32(&m.sha256)),
        "model_bytes": j.spec.model_object.map(|m| m.bytes),
        "lane": j.spec.lane,
        "max_price": j.spec.max_price,
        "redundancy": j.spec.redundancy,
        "deadline": j.spec.deadline,
        "escrow": j.escrow,
        "submitted": j.submitted,
        "retries": j.retries,
        "leases": j.leases.iter().map(|l| json!({
            "provider": l.provider.to_string(), "start": l.start, "expiry": l.expiry,
            "renewals": l.renewals})).collect::<Vec<_>>(),
        "receipts": j.receipts.iter().map(receipt).collect::<Vec<_>>(),
        "seals": j.seals.iter().map(|s| json!({
            "provider": s.provider.to_string(), "seal": hex32(&s.seal), "height": s.height}))
            .collect::<Vec<_>>(),
        "window_end": j.window_end,
        "reveal_deadline": j.reveal_deadline,
        "disputes": j.disputes,
        "disputes_open": j.disputes_open,
        "payouts_pending": j.payouts_pending,
        "failure": j.failure.map(failure),
    })
}

/// A job's failure: its reason's stable name, a sentence, and the height.
pub fn failure(f: r::Failure) -> Value {
    json!({
        "reason": f.reason.name(),
        "description": f.reason.describe(),
        "height": f.height,
    })
}

pub fn provider(a: &tb_primitives::Address, p: &r::Provider) -> Value {
    json!({
        "address": a.to_string(),
        "fabrics": p.caps.fabrics,
        "models": p.caps.models,
        "region": p.caps.region,
        "max_leases": p.caps.max_leases,
        "stake": p.stake,
        "unbonding": p.unbonding,
        "jailed_until": p.jailed_until,
        "last_heartbeat": p.last_heartbeat,
        "active_leases": p.active_leases,
        "missed_leases": p.missed_leases,
        "receipts": p.receipts,
        "slashed": p.slashed,
        "registered_at": p.registered_at,
    })
}

pub fn slash(s: &r::SlashRecord) -> Value {
    json!({
        "provider": s.provider.to_string(),
        "reason": format!("{:?}", s.reason),
        "task_id": s.task_id.map(|t| t.to_hex()),
        "output_digest": s.output_digest.map(|d| hex32(&d)),
        "amount": s.amount,
        "height": s.height,
    })
}

pub fn payout(p: &r::PayoutRecord) -> Value {
    json!({
        "epoch": p.epoch,
        "task_id": p.item.task_id.to_hex(),
        "provider": p.item.provider.to_string(),
        "units_milli": p.item.units_milli,
        "price_micro": p.item.price_micro,
        "provider_micro": p.provider_micro,
        "miner_micro": p.miner_micro,
        "fund_micro": p.fund_micro,
        "miner": p.miner.to_string(),
    })
}

pub fn dispute(d: &r::Dispute) -> Value {
    json!({
        "task_id": d.task_id.to_hex(),
        "index": d.index,
        "op": d.op,
        "kind": if d.challenger.is_some() { "challenge" } else { "replica" },
        "accused": d.accused.providers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "accused_leaf": hex32(&d.accused.leaf),
        "challenger": d.challenger.map(|(a, _)| a.to_string()),
        "opened": d.opened,
        "deadline": d.deadline,
        "ruled_at": d.ruling.is_some().then_some(d.ruled_at),
        "ruling": d.ruling.as_ref().map(|o| match o {
            r::Outcome::Referee(x) => format!("Referee({})", hex32(x)),
            other => format!("{other:?}"),
        }),
    })
}

pub fn fund(f: &r::Fund) -> Value {
    json!({
        "consumer": f.consumer,
        "industrial": f.industrial,
        "stakes": f.stakes,
        "unbonding": f.unbonding,
        "escrow": f.escrow,
        "bonds": f.bonds,
        "queued": f.queued,
        "settlement_queue": f.settle_next.saturating_sub(f.settle_head),
        "payouts": f.payouts,
        "slashes": f.slashes,
    })
}

pub fn proposal(p: &Proposal) -> Value {
    json!({
        "id": p.id,
        "proposer": p.proposer.to_string(),
        "body": format!("{:?}", p.body),
        "created": p.created,
        "voting_end": p.voting_end,
        "status": format!("{:?}", p.status),
        "tally": p.tally.as_ref().map(|t| json!({"yes": t.yes, "no": t.no, "total": t.total,
                                               "voters": t.voters})),
    })
}

pub fn governor(s: &GovernorStatus) -> Value {
    json!({
        "differs_from_genesis": s.differs_from_genesis(),
        "changed": s.changed.iter().map(|(n, g, a)| json!({"name": n, "genesis": g, "active": a}))
            .collect::<Vec<_>>(),
        "voting": s.voting.iter().map(|(p, t)| {
            let mut v = proposal(p);
            v["current_tally"] = json!({"yes": t.yes, "no": t.no, "total": t.total,
                                         "voters": t.voters});
            v
        }).collect::<Vec<_>>(),
        "scheduled": s.scheduled.iter().map(proposal).collect::<Vec<_>>(),
        "shadowing": s.shadowing.iter().map(|(p, rep)| {
            let mut v = proposal(p);
            v["report"] = json!({"receipts_seen": rep.receipts_seen,
                                 "would_violate": rep.would_violate,
                                 "would_pass": rep.would_pass});
            v
        }).collect::<Vec<_>>(),
        "active": s.active.iter().map(proposal).collect::<Vec<_>>(),
        "history": s.history.iter().map(proposal).collect::<Vec<_>>(),
    })
}
