//! Compute jobs, blobs and results, and the AI Compute Fund.

use super::api::{AicfServer, ComputeServer};
use super::params::{EstimateJob, HexBytes, HexId};
use super::{
    address_or_handle, admit, bad, decode_tx, err, resolve_task, unavailable, Rpc, ERR_NOT_FOUND,
    ERR_UNAVAILABLE, LIST_MAX, RPC_BLOB_BYTES_MAX,
};
use crate::json;
use crate::node::Node;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};
use tb_chain::market::query;
use tb_chain::market::records as r;
use tb_chain::{StateRead, TxPayload};
use tb_primitives::Id;
use tb_rpc_api::results::{BlobPresence, BlobStored, TxAccepted};

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

/// Proof latency buckets of `compute.stats`, milliseconds (upper bounds; the last is
/// open).
pub const STATS_LATENCY_BUCKETS_MS: [u64; 5] = [1, 10, 100, 1000, u64::MAX];
/// Blocks `compute.stats` looks back over.
pub const STATS_BLOCKS: u64 = 5;

/// A result object's bytes: the blob store, the chain, or a peer.
fn fetch_result(node: &Node, sha: &[u8; 32]) -> Result<Vec<u8>, ErrorObjectOwned> {
    crate::blobs::fetch(node, sha)
        .map_err(|e| err(ERR_UNAVAILABLE, e))?
        .ok_or_else(|| {
            err(
                ERR_UNAVAILABLE,
                "the receipt's result object is not available here",
            )
        })
}

fn too_big(bytes: u64) -> ErrorObjectOwned {
    err(
        ERR_UNAVAILABLE,
        format!("blob of {bytes} bytes is over compute.getBlob's {RPC_BLOB_BYTES_MAX}-byte limit"),
    )
}

/// `length` bytes (at most [`RPC_BLOB_BYTES_MAX`]) from `offset` of a blob of any
/// size, from the blob store or the chain's chunks, without assembling the whole. The
/// caller checks the whole blob's SHA-256 once it has every range.
fn get_blob_range(node: &Node, sha: &[u8; 32], offset: u64, length: u64) -> RpcResult<Value> {
    if length == 0 || length > RPC_BLOB_BYTES_MAX as u64 {
        return Err(bad(format!("length must be 1..={RPC_BLOB_BYTES_MAX}")));
    }
    let stored = node
        .blobs
        .read_range(sha, offset, length as usize)
        .map_err(unavailable)?;
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

fn get_job(node: &Node, task: HexId) -> RpcResult<Value> {
    let t = resolve_task(node, task.0).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let c = node.core();
    let j = r::job(c.db.state(), &t).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
    let mut v = json::job(&t, &j);
    v["disputes_detail"] = tb_chain::market::dispute::disputes(c.db.state(), &t)
        .iter()
        .map(json::dispute)
        .collect();
    Ok(v)
}

/// Settled epochs a provider's `earned_micro` sums (`aicf.getProvider`), the newest.
pub const EARNINGS_EPOCHS: u64 = 64;

fn list_jobs(
    node: &Node,
    state: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
) -> RpcResult<Value> {
    let state = match state {
        None => None,
        Some(s) => {
            Some(json::parse_job_state(&s).ok_or_else(|| bad(format!("unknown job state {s:?}")))?)
        }
    };
    let limit = limit.unwrap_or(100).min(LIST_MAX as u64) as usize;
    // An offset past the end is an empty page, not an error (`total` says why).
    let offset = offset.unwrap_or(0);
    let row = |t: &Id, j: &r::Job| {
        json!({"task_id": t.to_hex(), "state": json::job_state(j.state),
               "requester": j.requester.to_string(), "submitted": j.submitted,
               "receipts": j.receipts.len()})
    };
    let c = node.core();
    let s = c.db.state();
    let (total, list) = match state {
        // The job index gives the page: the cost grows with the offset, not the jobs.
        None => {
            let (total, ids) = c.db.jobs_newest(offset, limit).map_err(unavailable)?;
            let list: Vec<Value> = ids
                .iter()
                .filter_map(|t| r::job(s, t).map(|j| row(t, &j)))
                .collect();
            (total, list)
        }
        // A state's jobs are counted and paged by reading every job's record.
        Some(st) => {
            let (mut total, mut list) = (0u64, Vec::new());
            c.db.for_each_job_newest(|t| {
                if let Some(j) = r::job(s, &t).filter(|j| j.state == st) {
                    if total >= offset && list.len() < limit {
                        list.push(row(&t, &j));
                    }
                    total += 1;
                }
                true
            })
            .map_err(unavailable)?;
            (total, list)
        }
    };
    Ok(json!({"total": total, "jobs": list}))
}

/// Elements of each output `compute.getResult` shows as `preview`.
pub const RESULT_PREVIEW_ELEMENTS: usize = 8;

/// The first [`RESULT_PREVIEW_ELEMENTS`] elements as JSON numbers (a NaN or an infinity
/// is `null`: JSON has no such number).
fn preview(d: &blocktorch::HostData) -> Value {
    use blocktorch::HostData as D;
    let n = RESULT_PREVIEW_ELEMENTS;
    match d {
        D::F32(v) => json!(v.iter().take(n).collect::<Vec<_>>()),
        D::U8(v) => json!(v.iter().take(n).collect::<Vec<_>>()),
        D::I32(v) => json!(v.iter().take(n).collect::<Vec<_>>()),
        D::U32(v) => json!(v.iter().take(n).collect::<Vec<_>>()),
    }
}

/// The receipt `provider` signed for `task`, from the `SubmitReceipt` transaction in the
/// block at `height` that accepted it.
fn signed_receipt(
    c: &crate::node::Core,
    height: u64,
    task: &Id,
    provider: &tb_primitives::Address,
) -> Option<tb_job::Receipt> {
    let b = c.db.block_at(height).ok()??;
    b.txs.iter().find_map(|tx| match &tx.payload {
        TxPayload::SubmitReceipt(sr)
            if sr.receipt.receipt.task_id == *task && sr.receipt.receipt.provider == *provider =>
        {
            Some(sr.receipt.receipt.clone())
        }
        _ => None,
    })
}

impl ComputeServer for Rpc {
    fn upload_blob(&self, blob: HexBytes) -> RpcResult<BlobStored> {
        let node = &self.node;
        let sha = node.blobs.put(&blob.0).map_err(unavailable)?;
        Ok(BlobStored {
            sha256: HexId(Id(sha)),
            bytes: blob.0.len() as u64,
        })
    }

    fn get_blob(
        &self,
        sha256: HexId,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> RpcResult<Value> {
        let node = &self.node;
        let sha = sha256.0 .0;
        match (offset, length) {
            (None, None) => {}
            (Some(o), Some(l)) => return get_blob_range(node, &sha, o, l),
            _ => return Err(bad("a range needs both offset and length")),
        }
        // Refuse a published object over the limit before assembling it.
        if let Some(o) = r::object(node.core().db.state(), &sha) {
            if o.total_bytes > RPC_BLOB_BYTES_MAX as u64 {
                return Err(too_big(o.total_bytes));
            }
        }
        let b = crate::blobs::local(node, &sha)
            .map_err(unavailable)?
            .ok_or_else(|| err(ERR_NOT_FOUND, "no such blob here or on chain"))?;
        if b.len() > RPC_BLOB_BYTES_MAX {
            return Err(too_big(b.len() as u64));
        }
        Ok(json!({"sha256": json::hex32(&sha), "bytes": b.len(), "hex": hex::encode(&b)}))
    }

    fn has_blob(&self, sha256: HexId) -> RpcResult<BlobPresence> {
        let node = &self.node;
        let sha = sha256.0 .0;
        let published = r::object(node.core().db.state(), &sha);
        Ok(BlobPresence {
            sha256,
            stored: node.blobs.contains(&sha),
            published: published.is_some(),
            expires: published.map(|o| o.expires),
        })
    }

    /// Whether an object is available on chain (and until when), stored here, and which
    /// chunks of `poster`'s copy are already on chain (what a publication resuming
    /// after an interruption skips).
    fn blob_status(&self, sha256: HexId, poster: Option<String>) -> RpcResult<Value> {
        let node = &self.node;
        let sha = sha256.0 .0;
        let poster = poster.map(|p| address_or_handle(node, &p)).transpose()?;
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

    /// What submitting such a job now would meet (a dry run: nothing is submitted). See
    /// `tb_chain::market::query::estimate`.
    fn estimate(&self, job: EstimateJob) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        let p = c.effective_params(&node.params);
        let m = &p.market;
        if job.lane as usize >= m.lanes() {
            return Err(bad(format!(
                "field lane: the market has {} lanes",
                m.lanes()
            )));
        }
        let spec = tb_chain::tx::JobSpec {
            blob_bytes: job.blob_bytes,
            flops: job.flops,
            kernel_digest: job.kernel_digest.map_or([0; 32], |d| d.0 .0),
            model: job.model,
            lane: job.lane,
            region: job.region,
            max_price: job.max_price,
            redundancy: job.redundancy,
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
            "redundancy": job.redundancy,
            "shortfall": e.shortfall,
            "price_best_micro": e.price_best_micro,
            "price_worst_micro": e.price_worst_micro,
            "escrow_micro": e.escrow_micro,
            "queue_ahead": e.queue_ahead,
            "expected_lease_height": e.expected_lease_height,
            "lease_blocks": m.lane_lease_blocks[job.lane as usize],
            "sla_window_blocks": m.sla_window_blocks(job.lane),
            "challenge_window_blocks": m.challenge_window_blocks,
        }))
    }

    fn submit_job(&self, tx: HexBytes) -> RpcResult<TxAccepted> {
        let node = &self.node;
        let tx = decode_tx(node, &tx.0)?;
        if !matches!(tx.payload, TxPayload::SubmitJob(_)) {
            return Err(bad(
                "compute.submitJob takes a signed SubmitJob transaction",
            ));
        }
        admit(node, tx)
    }

    /// A job's answer as soon as a receipt is accepted — the standing receipt's result
    /// object, checked here against the receipt (every output digest recomputed, and
    /// the combined `output_digest_sha256`), with its status (`result_status`). Small
    /// results carry their bytes (`hex`); any result can be read with
    /// `compute.getBlob [result_sha256, offset, length]` and checked the same way.
    fn get_result(&self, task: HexId) -> RpcResult<Value> {
        let node = &self.node;
        let t = resolve_task(node, task.0).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
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
                       "shape": o.shape, "digest": json::hex32(d),
                       "elements": o.data.len(), "preview": preview(&o.data)})
            })
            .collect();
        if bytes.len() <= RESULT_INLINE_BYTES_MAX {
            v["hex"] = json!(hex::encode(&bytes));
        }
        Ok(v)
    }

    fn get_job(&self, task: HexId) -> RpcResult<Value> {
        get_job(&self.node, task)
    }

    fn list_jobs(
        &self,
        state: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Value> {
        list_jobs(&self.node, state, limit, offset)
    }

    fn get_receipt(&self, task: HexId) -> RpcResult<Value> {
        let node = &self.node;
        let t = resolve_task(node, task.0).ok_or_else(|| err(ERR_NOT_FOUND, "no such job"))?;
        let c = node.core();
        let receipts: Vec<Value> = query::receipts(c.db.state(), &t)
            .iter()
            .map(|x| {
                let mut v = json::receipt(x);
                // What the record leaves out (the fabric, the kernel build, the proof
                // latency) is in the signed receipt, in the block that accepted it.
                if let Some(rc) = signed_receipt(&c, x.height, &t, &x.provider) {
                    v["fabric"] = json!(rc.fabric);
                    v["kernel_variant_digest"] = json!(json::hex32(&rc.kernel_variant_digest));
                    v["benchmark_commit"] = json!(rc.benchmark_commit);
                    v["proof_latency_ms"] = json!(rc.proof_latency_ms);
                    v["device_hash"] = json!(json::hex32(&rc.device_hash));
                }
                v
            })
            .collect();
        Ok(json!({"task_id": t.to_hex(), "receipts": receipts}))
    }

    fn stats(&self) -> RpcResult<Value> {
        let node = &self.node;
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
        // The proof verification budget bounds this node's own receipt checks
        // (telemetry: no rule reads it).
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
}

impl AicfServer for Rpc {
    fn list_providers(&self) -> RpcResult<Value> {
        let node = &self.node;
        let c = node.core();
        Ok(json!(query::providers(c.db.state())
            .iter()
            .take(LIST_MAX)
            .map(|(a, p)| json::provider(a, p))
            .collect::<Vec<_>>()))
    }

    fn get_provider(&self, address: String) -> RpcResult<Value> {
        let node = &self.node;
        let addr = address_or_handle(node, &address)?;
        let c = node.core();
        let s = c.db.state();
        let p =
            r::provider(s, &addr).ok_or_else(|| err(ERR_NOT_FOUND, "not a registered provider"))?;
        let mut v = json::provider(&addr, &p);
        v["balance"] = json!({"consumer": s.account(&addr).consumer,
                              "industrial": s.account(&addr).industrial});
        let tip = c.db.tip().height;
        let market = &c.effective_params(&node.params).market;
        v["availability"] =
            json!(tb_chain::market::exec::availability_bps(market, &p, tip) as f64 / 10_000.0);
        // Paid at each epoch's end: the settled epochs before the current one.
        let current = tip / market.epoch_blocks.max(1);
        let from = current.saturating_sub(EARNINGS_EPOCHS);
        let earned: u64 = (from..current)
            .flat_map(|e| query::payouts(s, e))
            .filter(|x| x.item.provider == addr)
            .map(|x| x.provider_micro)
            .fold(0u64, u64::saturating_add);
        v["earned_micro"] = json!(earned);
        v["earned_epochs"] = json!({"from": from, "to": current.saturating_sub(1)});
        v["slashes"] = query::slashes(s, Some(&addr))
            .iter()
            .rev()
            .take(LIST_MAX)
            .map(json::slash)
            .collect();
        Ok(v)
    }

    fn list_jobs(
        &self,
        state: Option<String>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> RpcResult<Value> {
        list_jobs(&self.node, state, limit, offset)
    }

    fn get_job(&self, task: HexId) -> RpcResult<Value> {
        get_job(&self.node, task)
    }

    fn get_balance(&self) -> RpcResult<Value> {
        let node = &self.node;
        Ok(json::fund(&query::fund(node.core().db.state())))
    }

    fn payouts(&self, epoch: u64) -> RpcResult<Value> {
        let node = &self.node;
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

    fn slashes(&self, provider: Option<String>) -> RpcResult<Value> {
        let node = &self.node;
        let who = provider.map(|p| address_or_handle(node, &p)).transpose()?;
        let c = node.core();
        Ok(json!(query::slashes(c.db.state(), who.as_ref())
            .iter()
            .rev()
            .take(LIST_MAX)
            .map(json::slash)
            .collect::<Vec<_>>()))
    }
}
