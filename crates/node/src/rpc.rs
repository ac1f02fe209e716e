//! JSON-RPC 2.0 over HTTP and WebSocket (one port, jsonrpsee). Every method, its
//! parameters and results are in `docs/spec/rpc.md`. Parameters are positional
//! (a JSON array); a malformed request gets a JSON-RPC error naming what is wrong
//! (-32700 parse, -32600 invalid request, -32601 unknown method, -32602 bad params, and
//! the node's own codes below), and the server keeps serving.

use crate::json;
use crate::node::Node;
use jsonrpsee::server::{RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records as r;
use tb_chain::{SignedTx, StateRead, TxPayload};
use tb_primitives::{Address, Id};

/// Invalid parameters (JSON-RPC's own code).
pub const ERR_PARAMS: i32 = -32602;
/// The mempool refused the transaction; `data` has its `code` and `reason`
/// (`docs/spec/errors.md`).
pub const ERR_TX_REJECTED: i32 = -32010;
/// What was asked for does not exist.
pub const ERR_NOT_FOUND: i32 = -32011;
/// The node cannot do it (no miner, a store error).
pub const ERR_UNAVAILABLE: i32 = -32012;
/// Most items a list method returns.
pub const LIST_MAX: usize = 1000;
/// Largest blob `compute.getBlob` returns (hex doubles it on the wire).
pub const RPC_BLOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest response body.
pub const RPC_RESPONSE_BYTES_MAX: u32 = 2 * RPC_BLOB_BYTES_MAX as u32 + 64 * 1024;
/// Most subscriptions one connection may hold.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 64;

type Res = Result<Value, ErrorObjectOwned>;

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

fn bad(msg: impl Into<String>) -> ErrorObjectOwned {
    err(ERR_PARAMS, msg)
}

/// The positional parameters (none: an empty list).
fn args(p: &Params<'_>) -> Result<Vec<Value>, ErrorObjectOwned> {
    if p.as_str().is_none() {
        return Ok(Vec::new());
    }
    if p.is_object() {
        return Err(bad("parameters are positional: pass a JSON array"));
    }
    p.parse::<Vec<Value>>()
}

fn need<'a>(a: &'a [Value], i: usize, name: &str) -> Result<&'a Value, ErrorObjectOwned> {
    a.get(i)
        .ok_or_else(|| bad(format!("missing parameter {i} ({name})")))
}

fn string<'a>(a: &'a [Value], i: usize, name: &str) -> Result<&'a str, ErrorObjectOwned> {
    need(a, i, name)?
        .as_str()
        .ok_or_else(|| bad(format!("parameter {i} ({name}) must be a string")))
}

fn address(a: &[Value], i: usize) -> Result<Address, ErrorObjectOwned> {
    let s = string(a, i, "address")?;
    s.parse()
        .map_err(|e| bad(format!("parameter {i} (address) {s:?}: {e}")))
}

fn id(a: &[Value], i: usize, name: &str) -> Result<Id, ErrorObjectOwned> {
    let s = string(a, i, name)?;
    Id::from_hex(s).ok_or_else(|| bad(format!("parameter {i} ({name}) must be 64 hex digits")))
}

fn hex_bytes(a: &[Value], i: usize, name: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    let s = string(a, i, name)?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s))
        .map_err(|e| bad(format!("parameter {i} ({name}) is not hex: {e}")))
}

fn opt_u64(a: &[Value], i: usize, name: &str) -> Result<Option<u64>, ErrorObjectOwned> {
    match a.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            bad(format!(
                "parameter {i} ({name}) must be a non-negative integer"
            ))
        }),
    }
}

fn decode_tx(node: &Node, a: &[Value]) -> Result<SignedTx, ErrorObjectOwned> {
    let bytes = hex_bytes(a, 0, "signed transaction")?;
    let params = node.core().effective_params(&node.params);
    SignedTx::decode(&bytes, &params).map_err(|e| bad(format!("transaction: {e}")))
}

fn admit(node: &Node, tx: SignedTx) -> Res {
    match node.submit(tx) {
        Ok(id) => Ok(json!({"id": id.to_hex()})),
        Err(e) => Err(ErrorObjectOwned::owned(
            ERR_TX_REJECTED,
            format!("transaction rejected: {e}"),
            Some(json!({"code": e.code(), "reason": e.reason()})),
        )),
    }
}

type Method = fn(&Node, &[Value]) -> Res;

/// Every method, by name.
pub const METHODS: &[(&str, Method)] = &[
    ("balance", balance),
    ("submit_tx", submit_tx),
    ("start_mining", start_mining),
    ("stop_mining", stop_mining),
    ("metrics", metrics),
    ("register_handle", register_handle),
    ("resolve_handle", resolve_handle),
    ("chain.info", chain_info),
    ("chain.head", chain_head),
    ("chain.getBlock", chain_get_block),
    ("chain.getTx", chain_get_tx),
    ("compute.uploadBlob", upload_blob),
    ("compute.getBlob", get_blob),
    ("compute.hasBlob", has_blob),
    ("compute.blobStatus", blob_status),
    ("compute.estimate", estimate),
    ("compute.submitJob", submit_job),
    ("compute.getResult", get_result),
    ("compute.getJob", get_job),
    ("compute.listJobs", list_jobs),
    ("compute.getReceipt", get_receipt),
    ("compute.stats", compute_stats),
    ("aicf.listProviders", list_providers),
    ("aicf.getProvider", get_provider),
    ("aicf.listJobs", list_jobs),
    ("aicf.getJob", get_job),
    ("aicf.getBalance", fund_balance),
    ("aicf.payouts", payouts),
    ("aicf.slashes", slashes),
    ("governor.status", governor_status),
    ("governor.intents", governor_intents),
    ("net.info", net_info),
];

/// The subscriptions: (subscribe method, notification, unsubscribe method, event kind).
pub const SUBSCRIPTIONS: &[(&str, &str, &str, &str)] = &[
    (
        "subscribe_newHeads",
        "newHeads",
        "unsubscribe_newHeads",
        "newHeads",
    ),
    (
        "subscribe_jobAssigned",
        "jobAssigned",
        "unsubscribe_jobAssigned",
        "jobAssigned",
    ),
    (
        "subscribe_receiptAccepted",
        "receiptAccepted",
        "unsubscribe_receiptAccepted",
        "receiptAccepted",
    ),
    (
        "subscribe_challengeOpened",
        "challengeOpened",
        "unsubscribe_challengeOpened",
        "challengeOpened",
    ),
    (
        "subscribe_challengeRuled",
        "challengeRuled",
        "unsubscribe_challengeRuled",
        "challengeRuled",
    ),
    (
        "subscribe_jobCompleted",
        "jobCompleted",
        "unsubscribe_jobCompleted",
        "jobCompleted",
    ),
    (
        "subscribe_jobFailed",
        "jobFailed",
        "unsubscribe_jobFailed",
        "jobFailed",
    ),
    (
        "subscribe_providerSlashed",
        "providerSlashed",
        "unsubscribe_providerSlashed",
        "providerSlashed",
    ),
    (
        "subscribe_epochSettled",
        "epochSettled",
        "unsubscribe_epochSettled",
        "epochSettled",
    ),
];

/// The module with every method and subscription.
pub fn module(node: Arc<Node>) -> RpcModule<Arc<Node>> {
    let mut m = RpcModule::new(node);
    for (name, f) in METHODS {
        let (name, f) = (*name, *f);
        m.register_blocking_method(name, move |p, ctx, _| {
            ctx.metrics.inc("rpc_requests_total", &[name]);
            let a = args(&p)?;
            f(&ctx, &a)
        })
        .expect("method names are unique");
    }
    for (sub, notif, unsub, kind) in SUBSCRIPTIONS {
        let kind = *kind;
        m.register_subscription(sub, notif, unsub, move |_p, pending, ctx, _| async move {
            ctx.metrics.inc("rpc_requests_total", &[kind]);
            let mut rx = ctx.events.subscribe();
            let sink = pending.accept().await?;
            loop {
                tokio::select! {
                    _ = sink.closed() => break,
                    ev = rx.recv() => match ev {
                        Ok(e) if e.kind == kind => {
                            let msg = serde_json::value::to_raw_value(&e.data)?;
                            sink.send(msg).await?;
                        }
                        Ok(_) => {}
                        // A slow subscriber misses events; it keeps its subscription.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            Ok::<(), jsonrpsee::core::SubscriptionError>(())
        })
        .expect("subscription names are unique");
    }
    m
}

/// Starts the server on `addr`; returns its bound address and handle.
pub async fn start(
    node: Arc<Node>,
    addr: SocketAddr,
    max_request_bytes: u32,
    max_connections: u32,
) -> Result<(SocketAddr, ServerHandle), String> {
    let cfg = ServerConfig::builder()
        .max_request_body_size(max_request_bytes)
        .max_response_body_size(RPC_RESPONSE_BYTES_MAX)
        .max_connections(max_connections)
        .max_subscriptions_per_connection(SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .build();
    let server = Server::builder()
        .set_config(cfg)
        .build(addr)
        .await
        .map_err(|e| format!("rpc on {addr}: {e}"))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    Ok((local, server.start(module(node))))
}

fn balance(node: &Node, a: &[Value]) -> Res {
    let addr = address(a, 0)?;
    let c = node.core();
    let s = c.db.state();
    let acc = s.account(&addr);
    Ok(json!({
        "address": addr.to_string(),
        "handle": s.handle_of(&addr),
        "nonce": acc.nonce,
        "next_nonce": c.pool.next_nonce(&addr, s),
        "consumer": acc.consumer,
        "industrial": acc.industrial,
        "stake": r::provider(s, &addr).map(|p| p.stake),
        "height": c.db.tip().height,
    }))
}

fn submit_tx(node: &Node, a: &[Value]) -> Res {
    let tx = decode_tx(node, a)?;
    admit(node, tx)
}

fn start_mining(node: &Node, _: &[Value]) -> Res {
    if node.key.is_none() {
        return Err(err(
            ERR_UNAVAILABLE,
            "this node has no key (--key-file): it cannot mine",
        ));
    }
    node.mining.store(true, Ordering::Relaxed);
    Ok(json!({"mining": true}))
}

fn stop_mining(node: &Node, _: &[Value]) -> Res {
    node.mining.store(false, Ordering::Relaxed);
    Ok(json!({"mining": false}))
}

/// The metrics as the exposition text (what `GET /metrics` serves), for clients that
/// reach only the RPC port.
fn metrics(node: &Node, _: &[Value]) -> Res {
    node.refresh_metrics();
    Ok(json!({"format": "prometheus-text-0.0.4", "text": node.metrics.render()}))
}

fn register_handle(node: &Node, a: &[Value]) -> Res {
    let tx = decode_tx(node, a)?;
    if !matches!(tx.payload, TxPayload::RegisterHandle(_)) {
        return Err(bad(
            "register_handle takes a signed RegisterHandle transaction",
        ));
    }
    admit(node, tx)
}

fn resolve_handle(node: &Node, a: &[Value]) -> Res {
    let given = string(a, 0, "handle")?;
    // Handles are stored with their `@`; one given without it gets it.
    let h = if given.starts_with('@') {
        given.to_string()
    } else {
        format!("@{given}")
    };
    let c = node.core();
    Ok(json!({"handle": h, "address": c.db.state().handle_owner(&h).map(|x| x.to_string())}))
}

fn chain_info(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    let p = c.effective_params(&node.params);
    Ok(json!({
        "chain_id": p.chain_id,
        "height": c.db.tip().height,
        "tip": c.db.tip_id().to_hex(),
        "genesis": node.genesis.to_hex(),
        "total_work": c.db.tip_total_work().to_string(),
        "state_root": c.db.tip().state_root.to_hex(),
        "fee_floor_per_byte": c.pool.config().fee_floor_per_byte,
        "block_time_target_ms": p.block_time_target_ms,
        "mining": node.mining.load(Ordering::Relaxed),
        "market": {
            "epoch_blocks": p.market.epoch_blocks,
            "challenge_window_blocks": p.market.challenge_window_blocks,
            "min_stake_micro": p.market.min_stake_micro,
            "challenge_bond_micro": p.market.challenge_bond_micro,
            "blob_chunk_bytes": p.market.blob_chunk_bytes,
            "blob_fee_per_kib_micro": p.market.blob_fee_per_kib_micro,
            "blob_retention_blocks": p.market.blob_retention_blocks,
            "flops_per_unit": p.market.flops_per_unit,
            "heartbeat_interval_blocks": p.market.heartbeat_interval_blocks,
        },
    }))
}

fn chain_head(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    let h = c.db.tip().clone();
    let n =
        c.db.block(&c.db.tip_id())
            .ok()
            .flatten()
            .map_or(0, |b| b.txs.len());
    Ok(json::header(&h, n))
}

fn chain_get_block(node: &Node, a: &[Value]) -> Res {
    let c = node.core();
    let b = match need(a, 0, "height or block id")? {
        Value::Number(n) => {
            let h = n
                .as_u64()
                .ok_or_else(|| bad("parameter 0 (height) must be a non-negative integer"))?;
            c.db.block_at(h)
        }
        Value::String(_) => c.db.block(&id(a, 0, "block id")?),
        _ => return Err(bad("parameter 0 must be a height or a block id")),
    }
    .map_err(|e| err(ERR_UNAVAILABLE, e.to_string()))?
    .ok_or_else(|| err(ERR_NOT_FOUND, "no such block"))?;
    let mut v = json::header(&b.header, b.txs.len());
    v["transactions"] = b.txs.iter().map(json::tx).collect();
    Ok(v)
}

fn chain_get_tx(node: &Node, a: &[Value]) -> Res {
    let t = id(a, 0, "transaction id")?;
    let c = node.core();
    if let Some(tx) = c.pool.get(&t) {
        return Ok(json!({"status": "pending", "tx": json::tx(tx)}));
    }
    let loc =
        c.db.tx_location(&t)
            .map_err(|e| err(ERR_UNAVAILABLE, e.to_string()))?
            .ok_or_else(|| {
                err(
                    ERR_NOT_FOUND,
                    "no such transaction (neither pending nor canonical)",
                )
            })?;
    let b =
        c.db.block(&loc.block)
            .map_err(|e| err(ERR_UNAVAILABLE, e.to_string()))?
            .ok_or_else(|| err(ERR_UNAVAILABLE, "indexed block missing"))?;
    let tx = b
        .txs
        .get(loc.index as usize)
        .ok_or_else(|| err(ERR_UNAVAILABLE, "indexed transaction missing"))?;
    let mut v = json!({
        "status": "included",
        "block": loc.block.to_hex(),
        "height": loc.height,
        "index": loc.index,
        "tx": json::tx(tx),
    });
    if let TxPayload::SubmitJob(_) = tx.payload {
        v["task_id"] = json!(task_id(node.params.chain_id, loc.height, tx).to_hex());
    }
    Ok(v)
}

fn upload_blob(node: &Node, a: &[Value]) -> Res {
    let bytes = hex_bytes(a, 0, "blob")?;
    let sha = node
        .blobs
        .put(&bytes)
        .map_err(|e| err(ERR_UNAVAILABLE, e.to_string()))?;
    Ok(json!({"sha256": json::hex32(&sha), "bytes": bytes.len()}))
}

/// A blob by SHA-256: the node's store first, then the chain's published objects
/// (copied into the store).
pub fn fetch_blob(node: &Node, sha: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
    if let Some(b) = node.blobs.get(sha).map_err(|e| e.to_string())? {
        return Ok(Some(b));
    }
    let b = r::object_bytes(node.core().db.state(), sha);
    if let Some(b) = &b {
        node.blobs.put(b).map_err(|e| e.to_string())?;
    }
    Ok(b)
}

fn get_blob(node: &Node, a: &[Value]) -> Res {
    let sha = id(a, 0, "sha256")?.0;
    if a.len() > 1 {
        return get_blob_range(node, &sha, a);
    }
    // Refuse a published object over the limit before assembling it.
    if let Some(o) = r::object(node.core().db.state(), &sha) {
        if o.total_bytes > RPC_BLOB_BYTES_MAX as u64 {
            return Err(err(
                ERR_UNAVAILABLE,
                format!(
                    "blob of {} bytes is over compute.getBlob's {RPC_BLOB_BYTES_MAX}-byte limit",
                    o.total_bytes
                ),
            ));
        }
    }
    let b = fetch_blob(node, &sha)
        .map_err(|e| err(ERR_UNAVAILABLE, e))?
        .ok_or_else(|| err(ERR_NOT_FOUND, "no such blob here or on chain"))?;
    if b.len() > RPC_BLOB_BYTES_MAX {
        return Err(err(
            ERR_UNAVAILABLE,
            format!(
                "blob of {} bytes is over compute.getBlob's {RPC_BLOB_BYTES_MAX}-byte limit",
                b.len()
            ),
        ));
    }
    Ok(json!({"sha256": json::hex32(&sha), "bytes": b.len(), "hex": hex::encode(&b)}))
}

/// `compute.getBlob [sha, offset, length]`: `length` bytes (at most
/// [`RPC_BLOB_BYTES_MAX`]) from `offset` of a blob of any size, from the blob store or
/// the chain's chunks, without assembling the whole. The caller checks the whole
/// blob's SHA-256 once it has every range.
fn get_blob_range(node: &Node, sha: &[u8; 32], a: &[Value]) -> Res {
    let offset = opt_u64(a, 1, "offset")?.ok_or_else(|| bad("missing parameter 1 (offset)"))?;
    let length = opt_u64(a, 2, "length")?.ok_or_else(|| bad("missing parameter 2 (length)"))?;
    if length == 0 || length > RPC_BLOB_BYTES_MAX as u64 {
        return Err(bad(format!(
            "parameter 2 (length) must be 1..={RPC_BLOB_BYTES_MAX}"
        )));
    }
    let stored = node
        .blobs
        .read_range(sha, offset, length as usize)
        .map_err(|e| err(ERR_UNAVAILABLE, e.to_string()))?;
    let (total, bytes) = match stored {
        Some(x) => x,
        None => {
            let c = node.core();
            let s = c.db.state();
            let o = r::object(s, sha)
                .ok_or_else(|| err(ERR_NOT_FOUND, "no such blob here or on chain"))?;
            if offset > o.total_bytes {
                return Err(bad(format!(
                    "offset {offset} is past the blob's {} bytes",
                    o.total_bytes
                )));
            }
            let n = length.min(o.total_bytes - offset);
            let b = r::object_range(s, sha, offset, n)
                .ok_or_else(|| err(ERR_UNAVAILABLE, "the object's chunks are unreadable"))?;
            (o.total_bytes, b)
        }
    };
    Ok(
        json!({"sha256": json::hex32(sha), "bytes": total, "offset": offset,
              "length": bytes.len(), "hex": hex::encode(&bytes)}),
    )
}

/// `compute.blobStatus [sha, poster?]`: whether an object is available on chain (and
/// until when), stored here, and which chunks of `poster`'s copy are already on chain
/// (what a publication resuming after an interruption skips).
fn blob_status(node: &Node, a: &[Value]) -> Res {
    let sha = id(a, 0, "sha256")?.0;
    let poster = match a.get(1) {
        None | Some(Value::Null) => None,
        Some(_) => Some(address(a, 1)?),
    };
    let c = node.core();
    let s = c.db.state();
    let o = r::object(s, &sha);
    let copy = poster.and_then(|p| query::partial(s, &sha, &p));
    Ok(json!({
        "sha256": json::hex32(&sha),
        "stored": node.blobs.contains(&sha),
        "published": o.is_some(),
        "total_bytes": o.as_ref().map(|o| o.total_bytes),
        "expires": o.as_ref().map(|o| o.expires),
        "is_result": o.as_ref().is_some_and(|o| o.result.is_some()),
        "copy": copy.map(|(p, received)| json!({
            "total_bytes": p.total_bytes,
            "chunk_bytes": p.chunk_bytes,
            "chunks": p.chunks,
            "received": received,
            "expires": p.expires,
        })),
        "height": c.db.tip().height,
    }))
}

fn field_u64(o: &serde_json::Map<String, Value>, k: &str) -> Result<Option<u64>, ErrorObjectOwned> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("field {k} must be a non-negative integer"))),
    }
}

/// `compute.estimate [{flops, max_price, redundancy?, model?, lane?, region?,
/// kernel_digest?, blob_bytes?}]`: what submitting such a job now would meet (a dry
/// run: nothing is submitted). See `tb_chain::market::query::estimate`.
fn estimate(node: &Node, a: &[Value]) -> Res {
    let o = need(a, 0, "job")?
        .as_object()
        .ok_or_else(|| bad("parameter 0 (job) must be an object"))?;
    let flops = field_u64(o, "flops")?.ok_or_else(|| bad("field flops is required"))?;
    let max_price = field_u64(o, "max_price")?.ok_or_else(|| bad("field max_price is required"))?;
    let small =
        |k: &str, v: Option<u64>, max: u64, default: u64| -> Result<u64, ErrorObjectOwned> {
            let v = v.unwrap_or(default);
            if v > max {
                return Err(bad(format!("field {k} is at most {max}")));
            }
            Ok(v)
        };
    let redundancy = small(
        "redundancy",
        field_u64(o, "redundancy")?,
        u32::MAX as u64,
        1,
    )? as u32;
    let model = small("model", field_u64(o, "model")?, u16::MAX as u64, 0)? as u16;
    let lane = small("lane", field_u64(o, "lane")?, u8::MAX as u64, 0)? as u8;
    let region = match field_u64(o, "region")? {
        None => None,
        Some(v) => Some(small("region", Some(v), u16::MAX as u64, 0)? as u16),
    };
    let kernel_digest = match o.get("kernel_digest") {
        None | Some(Value::Null) => [0; 32],
        Some(Value::String(h)) => {
            Id::from_hex(h)
                .ok_or_else(|| bad("field kernel_digest must be 64 hex digits"))?
                .0
        }
        Some(_) => return Err(bad("field kernel_digest must be a string")),
    };
    let blob_bytes = field_u64(o, "blob_bytes")?.unwrap_or(0);
    let c = node.core();
    let p = c.effective_params(&node.params);
    let m = &p.market;
    if lane as usize >= m.lanes() {
        return Err(bad(format!(
            "field lane: the market has {} lanes",
            m.lanes()
        )));
    }
    let spec = tb_chain::tx::JobSpec {
        blob_bytes,
        flops,
        kernel_digest,
        model,
        lane,
        region,
        max_price,
        redundancy,
        ..Default::default()
    };
    let h = c.db.tip().height;
    let e = query::estimate(c.db.state(), m, &spec, h);
    Ok(json!({
        "height": h,
        "capable": e.capable.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "eligible_now": e.eligible_now.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "ineligible": e.ineligible.iter().map(|(a, why)| json!({
            "provider": a.to_string(), "reason": format!("{why:?}")})).collect::<Vec<_>>(),
        "redundancy": redundancy,
        "shortfall": e.shortfall,
        "price_best_micro": e.price_best_micro,
        "price_worst_micro": e.price_worst_micro,
        "escrow_micro": e.escrow_micro,
        "queue_ahead": e.queue_ahead,
        "expected_lease_height": e.expected_lease_height,
        "lease_blocks": m.lane_lease_blocks[lane as usize],
        "sla_window_blocks": m.sla_window_blocks(lane),
        "challenge_window_blocks": m.challenge_window_blocks,
    }))
}

/// Largest result whose bytes `compute.getResult` returns inline (larger ones are read
/// with `compute.getBlob` ranges).
pub const RESULT_INLINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Where a job's answer stands, for a requestor: `pending` (no receipt yet),
/// `provisional` (accepted, its challenge window open), `challenged` (a challenge of it
/// is open), `disputed` (replicas disagree; the referee decides), `final` (verified:
/// the window closed unrefuted), `failed`.
pub fn result_status(j: &r::Job) -> &'static str {
    use r::JobState as S;
    let standing = j.receipts.iter().any(|x| !x.refuted);
    match j.state {
        S::Failed => "failed",
        S::Verified | S::Settled if standing => "final",
        S::Disputed => "disputed",
        S::Proven if j.disputes_open > 0 => "challenged",
        _ if standing => "provisional",
        _ => "pending",
    }
}

/// `compute.getResult [task]`: a job's answer as soon as a receipt is accepted — the
/// standing receipt's result object, checked here against the receipt (every output
/// digest recomputed, and the combined `output_digest_sha256`), with its status
/// (`result_status`). Small results carry their bytes (`hex`); any result can be read
/// with `compute.getBlob [result_sha256, offset, length]` and checked the same way.
fn get_result(node: &Node, a: &[Value]) -> Res {
    let given = id(a, 0, "task id or SubmitJob transaction id")?;
    let t = resolve_task(node, given).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let job =
        r::job(node.core().db.state(), &t).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let status = result_status(&job);
    let mut v = json!({
        "task_id": t.to_hex(),
        "state": json::job_state(job.state),
        "status": status,
        "final": status == "final",
        "window_end": job.window_end,
        "failure": job.failure.map(json::failure),
        "refuted": job.receipts.iter().filter(|x| x.refuted)
            .map(|x| x.provider.to_string()).collect::<Vec<_>>(),
    });
    let Some(rc) = job.receipts.iter().find(|x| !x.refuted) else {
        return Ok(v);
    };
    let bytes = fetch_result(node, &rc.result_sha256)?;
    let res = tb_job::ResultObject::decode(&bytes).map_err(|e| {
        err(
            ERR_UNAVAILABLE,
            format!("the published result does not decode: {e}"),
        )
    })?;
    if res.output_digest() != rc.output_digest || res.outputs.len() != job.spec.outputs.len() {
        return Err(err(
            ERR_UNAVAILABLE,
            "the published result does not match the accepted receipt",
        ));
    }
    let digests = res.digests();
    v["provider"] = json!(rc.provider.to_string());
    v["receipt_hash"] = json!(json::hex32(&rc.receipt_hash));
    v["receipt_height"] = json!(rc.height);
    v["output_digest"] = json!(json::hex32(&rc.output_digest));
    v["result_sha256"] = json!(json::hex32(&rc.result_sha256));
    v["result_bytes"] = json!(bytes.len());
    v["outputs"] = res
        .outputs
        .iter()
        .zip(&digests)
        .map(|(o, d)| {
            json!({"name": o.name, "dtype": format!("{:?}", o.data.dtype()).to_lowercase(),
                   "shape": o.shape, "digest": json::hex32(d)})
        })
        .collect();
    if bytes.len() <= RESULT_INLINE_BYTES_MAX {
        v["hex"] = json!(hex::encode(&bytes));
    }
    Ok(v)
}

/// A result object's bytes: the blob store, the chain, or a peer.
fn fetch_result(node: &Node, sha: &[u8; 32]) -> Result<Vec<u8>, ErrorObjectOwned> {
    crate::p2p::fetch_blob(node, sha)
        .map_err(|e| err(ERR_UNAVAILABLE, e))?
        .ok_or_else(|| {
            err(
                ERR_UNAVAILABLE,
                "the receipt's result object is not available here",
            )
        })
}

fn has_blob(node: &Node, a: &[Value]) -> Res {
    let sha = id(a, 0, "sha256")?.0;
    let stored = node.blobs.contains(&sha);
    let published = r::object(node.core().db.state(), &sha);
    Ok(json!({
        "sha256": json::hex32(&sha),
        "stored": stored,
        "published": published.is_some(),
        "expires": published.map(|o| o.expires),
    }))
}

fn submit_job(node: &Node, a: &[Value]) -> Res {
    let tx = decode_tx(node, a)?;
    if !matches!(tx.payload, TxPayload::SubmitJob(_)) {
        return Err(bad(
            "compute.submitJob takes a signed SubmitJob transaction",
        ));
    }
    admit(node, tx)
}

/// A task id, or the id of the `SubmitJob` transaction that created it.
fn resolve_task(node: &Node, t: Id) -> Option<Id> {
    let c = node.core();
    if r::job(c.db.state(), &t).is_some() {
        return Some(t);
    }
    let loc = c.db.tx_location(&t).ok()??;
    let b = c.db.block(&loc.block).ok()??;
    let tx = b.txs.get(loc.index as usize)?;
    matches!(tx.payload, TxPayload::SubmitJob(_))
        .then(|| task_id(node.params.chain_id, loc.height, tx))
}

fn get_job(node: &Node, a: &[Value]) -> Res {
    let given = id(a, 0, "task id or SubmitJob transaction id")?;
    let t = resolve_task(node, given).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let c = node.core();
    let j = r::job(c.db.state(), &t).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let mut v = json::job(&t, &j);
    v["disputes_detail"] = tb_chain::market::dispute::disputes(c.db.state(), &t)
        .iter()
        .map(json::dispute)
        .collect();
    Ok(v)
}

fn list_jobs(node: &Node, a: &[Value]) -> Res {
    let state = match a.first() {
        None | Some(Value::Null) => None,
        Some(_) => {
            let s = string(a, 0, "state")?;
            Some(json::parse_job_state(s).ok_or_else(|| bad(format!("unknown job state {s:?}")))?)
        }
    };
    let limit = opt_u64(a, 1, "limit")?.unwrap_or(100).min(LIST_MAX as u64) as usize;
    let c = node.core();
    let jobs = query::jobs(c.db.state(), state);
    let total = jobs.len();
    let list: Vec<Value> = jobs
        .iter()
        .rev()
        .take(limit)
        .map(|(t, j)| {
            json!({"task_id": t.to_hex(), "state": json::job_state(j.state),
                   "requester": j.requester.to_string(), "submitted": j.submitted,
                   "receipts": j.receipts.len()})
        })
        .collect();
    Ok(json!({"total": total, "jobs": list}))
}

fn get_receipt(node: &Node, a: &[Value]) -> Res {
    let given = id(a, 0, "task id")?;
    let t = resolve_task(node, given).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let c = node.core();
    Ok(json!({
        "task_id": t.to_hex(),
        "receipts": query::receipts(c.db.state(), &t).iter().map(json::receipt).collect::<Vec<_>>(),
    }))
}

/// Proof latency buckets of `compute.stats`, milliseconds (upper bounds; the last is
/// open).
pub const STATS_LATENCY_BUCKETS_MS: [u64; 5] = [1, 10, 100, 1000, u64::MAX];
/// Blocks `compute.stats` looks back over.
pub const STATS_BLOCKS: u64 = 5;

fn compute_stats(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    let tip = c.db.tip().height;
    let mut blocks = Vec::new();
    for h in (tip.saturating_sub(STATS_BLOCKS - 1)..=tip).rev() {
        let Ok(Some(b)) = c.db.block_at(h) else {
            continue;
        };
        let mut buckets = [0u64; STATS_LATENCY_BUCKETS_MS.len()];
        let mut receipts = Vec::new();
        for tx in &b.txs {
            if let TxPayload::SubmitReceipt(sr) = &tx.payload {
                let rc = &sr.receipt.receipt;
                let i = STATS_LATENCY_BUCKETS_MS
                    .iter()
                    .position(|u| rc.proof_latency_ms <= *u)
                    .unwrap_or(STATS_LATENCY_BUCKETS_MS.len() - 1);
                buckets[i] += 1;
                receipts.push(json!({
                    "task_id": rc.task_id.to_hex(),
                    "provider": rc.provider.to_string(),
                    "fabric": rc.fabric,
                    "kernel_digest": json::hex32(&rc.kernel_variant_digest),
                    "benchmark_commit": rc.benchmark_commit,
                    "proof_latency_ms": rc.proof_latency_ms,
                    "output_digest": json::hex32(&rc.output_digest_sha256),
                }));
            }
        }
        blocks.push(json!({
            "height": h,
            "receipts": receipts,
            "proof_latency_ms_buckets": STATS_LATENCY_BUCKETS_MS.iter().zip(buckets)
                .map(|(u, n)| json!({"le": if *u == u64::MAX { json!("+Inf") } else { json!(u) }, "count": n}))
                .collect::<Vec<_>>(),
        }));
    }
    let lat = tb_chain::telemetry::proof_verification_latency();
    let f = query::fund(c.db.state());
    // The proof verification budget bounds this node's own receipt checks (telemetry:
    // no rule reads it).
    let budget_ms = c
        .effective_params(&node.params)
        .market
        .proof_verification_budget_ms;
    Ok(json!({
        "height": tip,
        "blocks": blocks,
        "receipt_checks": {
            "count": lat.count,
            "p50_us_upper": lat.quantile_upper_us(0.5),
            "p99_us_upper": lat.quantile_upper_us(0.99),
            "budget_ms": budget_ms,
            "over_budget": lat.count_at_least_us(budget_ms.saturating_mul(1000)),
        },
        "queued": f.queued,
        "settlement_queue": f.settle_next.saturating_sub(f.settle_head),
    }))
}

fn list_providers(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    Ok(json!(query::providers(c.db.state())
        .iter()
        .take(LIST_MAX)
        .map(|(a, p)| json::provider(a, p))
        .collect::<Vec<_>>()))
}

fn get_provider(node: &Node, a: &[Value]) -> Res {
    let addr = address(a, 0)?;
    let c = node.core();
    let s = c.db.state();
    let p = r::provider(s, &addr).ok_or_else(|| err(ERR_NOT_FOUND, "not a registered provider"))?;
    let mut v = json::provider(&addr, &p);
    v["balance"] =
        json!({"consumer": s.account(&addr).consumer, "industrial": s.account(&addr).industrial});
    v["slashes"] = query::slashes(s, Some(&addr))
        .iter()
        .rev()
        .take(LIST_MAX)
        .map(json::slash)
        .collect();
    Ok(v)
}

fn fund_balance(node: &Node, _: &[Value]) -> Res {
    Ok(json::fund(&query::fund(node.core().db.state())))
}

fn payouts(node: &Node, a: &[Value]) -> Res {
    let epoch = opt_u64(a, 0, "epoch")?.ok_or_else(|| bad("missing parameter 0 (epoch)"))?;
    let c = node.core();
    let s = c.db.state();
    Ok(json!({
        "epoch": epoch,
        "summary": query::epoch_summary(s, epoch).map(|e| json!({"paid": e.paid,
            "units_milli": e.units_milli, "price_micro": e.price_micro, "carried": e.carried,
            "slashes": e.slashes})),
        "payouts": query::payouts(s, epoch).iter().take(LIST_MAX).map(json::payout).collect::<Vec<_>>(),
    }))
}

fn slashes(node: &Node, a: &[Value]) -> Res {
    let who = match a.first() {
        None | Some(Value::Null) => None,
        Some(_) => Some(address(a, 0)?),
    };
    let c = node.core();
    Ok(json!(query::slashes(c.db.state(), who.as_ref())
        .iter()
        .rev()
        .take(LIST_MAX)
        .map(json::slash)
        .collect::<Vec<_>>()))
}

/// The peer-to-peer network: this node's peer id and addresses, its peers (address,
/// last status, penalty points, agent), the banned peers, and whom it syncs from.
fn net_info(node: &Node, _: &[Value]) -> Res {
    let Some(n) = node.net() else {
        return Ok(json!({"enabled": false}));
    };
    let v = n.view();
    let peers: Vec<Value> = v
        .peers
        .iter()
        .map(|p| {
            json!({
                "peer_id": p.peer_id.to_string(),
                "addr": p.addr.as_ref().map(|a| a.to_string()),
                "height": p.status.as_ref().map(|s| s.height),
                "tip": p.status.as_ref().map(|s| s.tip.to_hex()),
                "total_work": p.status.as_ref().map(|s| s.total_work.to_string()),
                "points": p.points,
                "agent": p.agent,
            })
        })
        .collect();
    Ok(json!({
        "enabled": true,
        "peer_id": n.peer_id.to_string(),
        "listen": v.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "peers": peers,
        "banned": v.banned.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "syncing_from": v.syncing_from.map(|p| p.to_string()),
    }))
}

fn governor_status(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    Ok(json::governor(&tb_chain::governance::status(
        c.db.state(),
        &node.params,
    )))
}

fn governor_intents(node: &Node, _: &[Value]) -> Res {
    let c = node.core();
    let s = tb_chain::governance::status(c.db.state(), &node.params);
    let v = json::governor(&s);
    Ok(json!({"voting": v["voting"], "scheduled": v["scheduled"], "shadowing": v["shadowing"]}))
}
