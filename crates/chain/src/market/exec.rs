//! The market in block execution: market transactions, and the end-of-block step
//! (unbonding releases, lease expiries, deadlines, challenge windows, the matcher and,
//! at an epoch's end, availability checks and settlement).

use super::keys::{be, id_at, scan_until};
use super::keys::{fee_per_unit, queue_key};
use super::ledger::{credit, dequeue, fail, refund, slash};
use super::matcher::{match_block, JobView, ProviderView};
use super::params::{MarketParams, BPS};
use super::pricing::{self, quote, PendingPayout, Quote};
use super::records::{
    self as r, FailReason, Fund, Job, JobState, Kind, Lease, Provider, ReceiptRecord, SlashReason,
};
use crate::block::BlockHeader;
use crate::context::TxCtx;
use crate::error::TxError;
use crate::params::ChainParams;
use crate::state::{Account, Overlay, StateRead};
use crate::tx::{
    Heartbeat, JobSpec, ProviderCaps, RegisterProvider, SignedTx, StakeChange, SubmitJob,
    SubmitReceipt, FABRIC_NAME_BYTES_MAX, PROVIDER_DIGESTS_MAX, PROVIDER_FABRICS_MAX,
    PROVIDER_MODELS_MAX,
};
use tb_primitives::{blake3_id, encode, Address, Id};

use crate::error::MarketRefusal as K;

fn refuse(k: K, msg: impl Into<String>) -> TxError {
    TxError::market(k, msg)
}

/// Stateless checks of a market transaction's fields.
pub fn check_stateless(p: &MarketParams, tx: &crate::tx::TxPayload) -> Result<(), TxError> {
    use crate::tx::TxPayload as T;
    match tx {
        T::RegisterProvider(rp) => check_caps(p, &rp.caps),
        T::SubmitJob(j) => check_spec(p, &j.spec),
        T::PublishBlob(b) => super::objects::check_publish(p, b),
        _ => Ok(()),
    }
}

fn check_caps(p: &MarketParams, c: &ProviderCaps) -> Result<(), TxError> {
    if c.fabrics.is_empty() || c.fabrics.len() > PROVIDER_FABRICS_MAX {
        return Err(refuse(
            K::Fields,
            format!("a provider declares 1..={PROVIDER_FABRICS_MAX} fabrics"),
        ));
    }
    if c.fabrics
        .iter()
        .any(|f| f.is_empty() || f.len() > FABRIC_NAME_BYTES_MAX)
    {
        return Err(refuse(
            K::Fields,
            format!("fabric names are 1..={FABRIC_NAME_BYTES_MAX} bytes"),
        ));
    }
    if c.kernel_digests.len() > PROVIDER_DIGESTS_MAX {
        return Err(refuse(
            K::Fields,
            format!("at most {PROVIDER_DIGESTS_MAX} kernel digests"),
        ));
    }
    if c.models.is_empty() || c.models.len() > PROVIDER_MODELS_MAX {
        return Err(refuse(
            K::Fields,
            format!("a provider accepts 1..={PROVIDER_MODELS_MAX} model classes"),
        ));
    }
    if c.models
        .iter()
        .any(|m| *m as usize >= p.model_weights_bps.len())
    {
        return Err(refuse(K::Fields, "an unknown model class"));
    }
    if c.max_leases == 0 {
        return Err(refuse(K::Fields, "max_leases must be at least 1"));
    }
    Ok(())
}

fn check_spec(p: &MarketParams, s: &JobSpec) -> Result<(), TxError> {
    if s.lane as usize >= p.lanes() {
        return Err(refuse(
            K::Fields,
            format!("lane {} of {}", s.lane, p.lanes()),
        ));
    }
    if s.model as usize >= p.model_weights_bps.len() {
        return Err(refuse(
            K::Fields,
            format!("unknown model class {}", s.model),
        ));
    }
    if s.redundancy == 0 || s.redundancy > p.redundancy_max {
        return Err(refuse(
            K::Fields,
            format!("redundancy must be 1..={}", p.redundancy_max),
        ));
    }
    if s.flops == 0 || s.flops > p.job_flops_max {
        return Err(refuse(
            K::Fields,
            format!("flops must be 1..={}", p.job_flops_max),
        ));
    }
    if s.blob_bytes == 0 || s.blob_bytes > p.job_blob_bytes_max {
        return Err(refuse(
            K::Fields,
            format!("blob size must be 1..={}", p.job_blob_bytes_max),
        ));
    }
    if s.max_price == 0 {
        return Err(refuse(K::Fields, "max_price must be positive"));
    }
    s.shape()
        .check()
        .map_err(|e| refuse(K::Fields, format!("job shape: {e}")))?;
    if let Some(m) = &s.model_object {
        let max = tb_job::format::MODEL_BYTES_MAX as u64;
        if m.bytes == 0 || m.bytes > max {
            return Err(refuse(K::Fields, format!("a model is 1..={max} bytes")));
        }
    }
    let units = pricing::max_units_milli(p, s.flops, s.model).unwrap_or(u64::MAX);
    if units as u128 > p.gamma_cap_units as u128 * pricing::MILLI as u128 {
        return Err(refuse(
            K::Fields,
            "the job can earn more units than an epoch pays",
        ));
    }
    Ok(())
}

/// The chain's task id: `BLAKE3("TB/market/task/v1", chain_id ‖ height ‖ tx id ‖ caller ‖
/// payload)`.
pub fn task_id(chain_id: u64, height: u64, tx: &SignedTx) -> Id {
    let mut b = Vec::new();
    b.extend_from_slice(&chain_id.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&tx.id().0);
    b.extend_from_slice(&tx.payload.from().0);
    b.extend_from_slice(&encode(&tx.payload));
    blake3_id(b"TB/market/task/v1", &b)
}

/// Applies a market transaction after the common checks took its fee and its spend
/// (stake or escrow) from `acc`, the sender's account, which it writes back.
pub fn apply_tx(
    ov: &mut Overlay<'_>,
    ctx: &TxCtx<'_>,
    tx: &SignedTx,
    acc: Account,
) -> Result<(), TxError> {
    use crate::tx::TxPayload as T;
    let (params, height) = (ctx.params, ctx.height);
    let p = &params.market;
    let from = tx.payload.from();
    match &tx.payload {
        T::RegisterProvider(RegisterProvider { caps, .. }) => {
            check_caps(p, caps)?;
            let mut pr = r::provider(ov, &from).unwrap_or(Provider {
                registered_at: height,
                epoch_since: height,
                // Registration counts as the first heartbeat; a new provider starts at
                // full availability until it has been measured for an interval.
                heartbeats_epoch: 1,
                availability_prev_bps: BPS,
                ..Provider::default()
            });
            pr.caps = caps.clone();
            pr.last_heartbeat = height;
            ov.put(r::key(Kind::Provider, &[&from.0]), &pr);
        }
        T::Stake(StakeChange { amount, .. }) => {
            let mut pr = r::provider(ov, &from)
                .ok_or(refuse(K::NotProvider, "not a registered provider"))?;
            if *amount == 0 {
                return Err(refuse(K::Fields, "a stake change moves a positive amount"));
            }
            pr.stake = pr
                .stake
                .checked_add(*amount)
                .ok_or(TxError::BalanceOverflow)?;
            let mut f = r::fund(ov);
            f.stakes = f
                .stakes
                .checked_add(*amount)
                .ok_or(TxError::BalanceOverflow)?;
            ov.put(r::key(Kind::Provider, &[&from.0]), &pr);
            ov.put(r::key(Kind::Fund, &[]), &f);
        }
        T::Unstake(StakeChange { amount, .. }) => {
            let mut pr = r::provider(ov, &from)
                .ok_or(refuse(K::NotProvider, "not a registered provider"))?;
            if *amount == 0 || *amount > pr.stake {
                return Err(refuse(
                    K::Stake,
                    format!("unstake {amount} of a stake of {}", pr.stake),
                ));
            }
            if pr.active_leases > 0 {
                return Err(refuse(K::Stake, "a provider holding leases cannot unstake"));
            }
            if pr.unbonding_entries >= r::UNBONDING_ENTRIES_MAX {
                return Err(refuse(K::Stake, "too many unbonding entries pending"));
            }
            let release = height + p.unbonding_blocks.max(1);
            let k = r::key(Kind::Unbonding, &[&be(release), &from.0]);
            let pending: u64 = r::get(ov, &k).unwrap_or(0);
            if pending == 0 {
                pr.unbonding_entries += 1;
            }
            pr.stake -= amount;
            pr.unbonding += amount;
            let mut f = r::fund(ov);
            f.stakes -= amount;
            f.unbonding += amount;
            ov.put(k, &(pending + amount));
            ov.put(r::key(Kind::Provider, &[&from.0]), &pr);
            ov.put(r::key(Kind::Fund, &[]), &f);
        }
        T::Heartbeat(Heartbeat { .. }) => {
            let mut pr = r::provider(ov, &from)
                .ok_or(refuse(K::NotProvider, "not a registered provider"))?;
            // One heartbeat per window counts (a burst cannot stand in for a window),
            // and only in a window that starts inside the epoch: the window holding the
            // epoch's first block started in the previous one (see `availability_bps`).
            let interval = p.heartbeat_interval_blocks.max(1);
            let window = height / interval;
            let new_window = pr.heartbeats_epoch == 0 || pr.last_heartbeat / interval != window;
            if new_window && window * interval >= pr.epoch_since {
                pr.heartbeats_epoch += 1;
            }
            pr.last_heartbeat = height;
            ov.put(r::key(Kind::Provider, &[&from.0]), &pr);
        }
        T::SubmitJob(SubmitJob { spec, .. }) => {
            check_spec(p, spec)?;
            let lease = p.lane_lease_blocks[spec.lane as usize];
            if spec.deadline <= height + lease {
                return Err(refuse(K::Job, "the deadline leaves no room for a lease"));
            }
            if spec.deadline - height > p.deadline_blocks_max {
                return Err(refuse(
                    K::Job,
                    format!(
                        "the deadline is more than {} blocks away",
                        p.deadline_blocks_max
                    ),
                ));
            }
            let mut f = r::fund(ov);
            if f.queued >= p.queue_max as u64 {
                return Err(refuse(K::Job, "the job queue is full"));
            }
            let t = task_id(params.chain_id, height, tx);
            if r::job(ov, &t).is_some() {
                return Err(refuse(K::Job, "task id already exists"));
            }
            // A job that names a model runs it: the model must be on chain now, and
            // stays available until the job's deadline. Keeping it past what its
            // publication paid for is rent, paid by the job's fee.
            if let Some(m) = &spec.model_object {
                let o = match r::object(ov, &m.sha256) {
                    Some(o) if o.total_bytes == m.bytes => o,
                    Some(o) => {
                        return Err(refuse(
                            K::Model,
                            format!(
                                "model {} is published with {} bytes, the spec says {}",
                                tb_primitives::Digest(m.sha256).to_hex(),
                                o.total_bytes,
                                m.bytes
                            ),
                        ))
                    }
                    None => {
                        return Err(refuse(
                            K::Model,
                            format!(
                            "model {} is not published (publish it first: `tb-cli model publish`)",
                            tb_primitives::Digest(m.sha256).to_hex()
                        ),
                        ))
                    }
                };
                let rent = super::pricing::model_rent_micro(p, m.bytes, o.expires, spec.deadline);
                if tx.payload.fee() < rent {
                    return Err(refuse(
                        K::Model,
                        format!(
                            "keeping model {} available until the job's deadline (height {}, \
                         {} blocks past its paid retention) costs {rent} micro-tokens of rent: \
                         the SubmitJob's fee must be at least that",
                            tb_primitives::Digest(m.sha256).to_hex(),
                            spec.deadline,
                            spec.deadline.saturating_sub(o.expires)
                        ),
                    ));
                }
            }
            let escrow = spec.max_price * spec.redundancy as u64;
            let qk = queue_key(p, spec, height, &t);
            let job = Job::queued(from, spec.clone(), escrow, height, qk.clone());
            f.escrow = f
                .escrow
                .checked_add(escrow)
                .ok_or(TxError::BalanceOverflow)?;
            f.queued += 1;
            // Every check passed: write.
            if let Some(m) = &spec.model_object {
                super::objects::pin(ov, &m.sha256, spec.deadline);
            }
            ov.put(qk, &());
            ov.put(r::key(Kind::Deadline, &[&be(spec.deadline), &t.0]), &());
            ov.put(r::key(Kind::Job, &[&t.0]), &job);
            ov.put(r::key(Kind::Fund, &[]), &f);
        }
        T::SubmitReceipt(sr) => apply_receipt(ov, ctx, sr)?,
        T::PublishBlob(b) => super::objects::apply_publish(ov, params, height, b)?,
        T::SealReceipt(sr) => super::dispute::apply_seal(ov, ctx, sr)?,
        T::Challenge(c) => super::dispute::apply_challenge(ov, params, height, c)?,
        T::SupplyEvidence(e) => super::dispute::apply_supply(ov, params, height, e)?,
        T::ReportMalformed(m) => super::dispute::apply_report(ov, params, height, m)?,
        T::Transfer(_) | T::RegisterHandle(_) | T::Propose(_) | T::Vote(_) => {
            return Err(refuse(K::Fields, "not a market transaction"))
        }
    }
    ov.set_account(&from, &acc);
    Ok(())
}

fn apply_receipt(ov: &mut Overlay<'_>, ctx: &TxCtx<'_>, sr: &SubmitReceipt) -> Result<(), TxError> {
    let (params, h) = (ctx.params, ctx.height);
    let p = &params.market;
    let rc = &sr.receipt.receipt;
    let checks = crate::telemetry::ReceiptCheck::start();
    if rc.provider != sr.from {
        return Err(refuse(K::Receipt, "the receipt is not the sender's"));
    }
    if rc.task_id != sr.task_id {
        return Err(refuse(K::Receipt, "the receipt is for another task"));
    }
    sr.receipt
        .verify(params.chain_id)
        .map_err(|e| refuse(K::Receipt, format!("receipt signature: {e}")))?;
    let mut job = r::job(ov, &sr.task_id).ok_or(refuse(K::UnknownTask, "unknown task"))?;
    let mut pr =
        r::provider(ov, &sr.from).ok_or(refuse(K::NotProvider, "not a registered provider"))?;
    let receipt_hash: [u8; 32] = tb_primitives::sha256_digest(&sr.receipt.to_bytes()).0;
    // Where the answer was delivered: a redundant job's replica sealed it inside its
    // lease and reveals it now; otherwise it comes inside the live lease (`li`).
    let (lease_start, lease_start_ms, delivered_at, delivered_ms, li) = if job.spec.redundancy > 1 {
        let seal = super::dispute::check_reveal(&job, sr)?;
        (
            seal.lease_start,
            seal.lease_start_ms,
            seal.height,
            seal.sealed_ms,
            None,
        )
    } else {
        let live = job
            .leases
            .iter()
            .position(|l| l.provider == sr.from && l.expiry >= h);
        let Some(li) = live else {
            if !matches!(job.state, JobState::Queued | JobState::Leased) {
                // The job ended (settled, failed, verified, disputed): a late answer is
                // refused, not punished; a replica whose lease `fail` released is
                // honest.
                return Err(refuse(K::Stage, "the job no longer takes receipts"));
            }
            if !job.tried.contains(&sr.from) || job.receipts.iter().any(|x| x.provider == sr.from) {
                return Err(refuse(K::NoLease, "the sender holds no lease of this job"));
            }
            // Its own lease lapsed while the job still runs: accepted as evidence of
            // the fault, slashed, not paid.
            slash(
                ov,
                params,
                h,
                &sr.from,
                &mut pr,
                SlashReason::ReceiptOutsideLease,
                Some(sr.task_id),
                Some(rc.output_digest_sha256),
            );
            ov.put(r::key(Kind::Provider, &[&sr.from.0]), &pr);
            return Ok(());
        };
        (
            job.leases[li].start,
            job.leases[li].start_ms,
            h,
            ctx.timestamp_ms,
            Some(li),
        )
    };
    // The last check; everything below writes.
    super::dispute::check_receipt_data(ov, &job, rc)?;
    checks.done();
    if let Some(li) = li {
        let lease = job.leases.remove(li);
        ov.delete(r::key(
            Kind::LeaseExpiry,
            &[&be(lease.expiry), &sr.task_id.0, &sr.from.0],
        ));
        pr.active_leases = pr.active_leases.saturating_sub(1);
    }
    pr.receipts += 1;
    // The latency SLA, as the chain saw the delivery: lease height to delivery height.
    // (The provider's own `proof_latency_ms` is telemetry; no rule reads it.)
    let latency_blocks = delivered_at.saturating_sub(lease_start);
    // A receipt (k = 1) comes after its trace and result are published: the whole
    // blocks the chain allows for publishing them (`evidence_bytes_per_block` each; a
    // small answer fits in the receipt's own block) do not count against the SLA. (A
    // replica's delivery is its seal, before anything is published.)
    let allowance = if li.is_some() {
        let published: u64 = [rc.trace_sha256, rc.result_sha256]
            .iter()
            .filter_map(|o| r::object(ov, o).map(|x| x.total_bytes))
            .sum();
        published / p.evidence_bytes_per_block.max(1)
    } else {
        0
    };
    let payable = latency_blocks <= p.sla_window_blocks(job.spec.lane) + allowance;
    crate::governance::shadow_receipt(
        ov,
        p,
        crate::governance::ShadowExample {
            task_id: sr.task_id,
            provider: sr.from,
            lane: job.spec.lane,
            latency_blocks,
            height: h,
        },
    );
    if !payable {
        slash(
            ov,
            params,
            h,
            &sr.from,
            &mut pr,
            SlashReason::LatencySla,
            Some(sr.task_id),
            Some(rc.output_digest_sha256),
        );
    }
    job.receipts.push(ReceiptRecord {
        provider: sr.from,
        receipt_hash,
        output_digest: rc.output_digest_sha256,
        trace_root: rc.trace_root,
        latency_blocks,
        latency_ms: delivered_ms.saturating_sub(lease_start_ms),
        height: h,
        payable,
        trace_sha256: rc.trace_sha256,
        result_sha256: rc.result_sha256,
        refuted: false,
    });
    // The trace and the result stay available at least through a reveal, a window and
    // a dispute.
    let until = h + super::objects::pin_span(p);
    super::objects::pin(ov, &rc.trace_sha256, until);
    super::objects::pin(ov, &rc.result_sha256, until);
    let expected = if job.spec.redundancy > 1 {
        job.seals.len()
    } else {
        1
    };
    if job.receipts.len() >= expected {
        if job.spec.redundancy > 1 {
            ov.delete(r::key(
                Kind::Reveal,
                &[&be(job.reveal_deadline), &sr.task_id.0],
            ));
        } else {
            ov.delete(r::key(
                Kind::Deadline,
                &[&be(job.spec.deadline), &sr.task_id.0],
            ));
        }
        ov.put(r::key(Kind::Provider, &[&sr.from.0]), &pr);
        super::dispute::evaluate(ov, params, h, &sr.task_id, &mut job);
    } else {
        ov.put(r::key(Kind::Provider, &[&sr.from.0]), &pr);
    }
    ov.put(r::key(Kind::Job, &[&sr.task_id.0]), &job);
    Ok(())
}

/// Why a job whose deadline has come fails: still waiting for replicas (none, or not
/// all, leased) the market did not serve it; leased to every replica, they did not
/// answer in time.
fn deadline_reason(job: &Job) -> FailReason {
    if job.state == JobState::Queued {
        FailReason::Unserved
    } else {
        FailReason::Expired
    }
}

/// Availability of a provider over the epoch so far, in basis points, at height `h`:
/// of the heartbeat windows (aligned: window `w` is blocks `w·I ..= w·I + I − 1`, `I` =
/// `heartbeat_interval_blocks`) that start at or after the epoch's first block
/// `epoch_since` and end by `h`, the share with a heartbeat. A window cut by the epoch's
/// start or still open at `h` is not expected (nor counted), so an honest provider
/// that heartbeats in every window is at 100 % whichever block of a window its
/// heartbeat lands in. Until one such window has ended in the epoch, the previous
/// epoch's figure stands.
pub fn availability_bps(p: &MarketParams, pr: &Provider, h: u64) -> u64 {
    let interval = p.heartbeat_interval_blocks.max(1);
    let first = pr.epoch_since.div_ceil(interval);
    let open = (h + 1) / interval;
    let expected = open.saturating_sub(first);
    if expected == 0 {
        return pr.availability_prev_bps;
    }
    // The heartbeat of the window still open at `h`, counted when it landed, is not
    // one of the expected windows'.
    let in_open = pr.heartbeats_epoch > 0
        && pr.last_heartbeat / interval == open
        && open * interval >= pr.epoch_since;
    let seen = pr.heartbeats_epoch.saturating_sub(in_open as u64);
    (seen.min(expected) * BPS / expected).min(BPS)
}

/// The end-of-block step. `header` is the block being executed; the matcher is
/// seeded by its parent's hash.
pub fn end_block(ov: &mut Overlay<'_>, params: &ChainParams, header: &BlockHeader) {
    let p = &params.market;
    let h = header.height;
    // 1. Unbonding releases.
    release_unbonding(ov, h);
    // 2. Lease expiries: renewed if the provider heartbeated within the lease, missed
    //    otherwise (requeue with backoff, or fail and slash past the retry budget).
    expire_leases(ov, params, h);
    // 3. Deadlines.
    fail_past_deadlines(ov, h);
    // 4. Verification: reveal deadlines, disputes (adjudicated or past their evidence
    //    deadline), object pruning.
    super::dispute::end_block(ov, params, h);
    // 5. Challenge windows that end with no dispute open: the job is verified; its
    //    payable, unrefuted receipts join the FIFO settlement queue.
    close_challenge_windows(ov, p, h);
    // 6. The matcher.
    run_matcher(ov, params, header);
    // 7. Epoch end.
    if h > 0 && h.is_multiple_of(p.epoch_blocks) {
        end_epoch(ov, params, header);
    }
}

/// Step 1 of [`end_block`]: unbonding entries that mature at `h` go back to their
/// providers' balances.
fn release_unbonding(ov: &mut Overlay<'_>, h: u64) {
    for k in scan_until(ov, Kind::Unbonding, h) {
        let amount: u64 = r::get(ov, &k).unwrap_or(0);
        let mut who = [0u8; 32];
        who.copy_from_slice(&k[10..42]);
        let who = Address(who);
        if let Some(mut pr) = r::provider(ov, &who) {
            pr.unbonding -= amount;
            pr.unbonding_entries = pr.unbonding_entries.saturating_sub(1);
            ov.put(r::key(Kind::Provider, &[&who.0]), &pr);
        }
        let mut f = r::fund(ov);
        f.unbonding -= amount;
        ov.put(r::key(Kind::Fund, &[]), &f);
        credit(ov, &who, amount);
        ov.delete(k);
    }
}

/// Step 2 of [`end_block`]: leases expiring at `h` are renewed if the provider
/// heartbeated within the lease, missed otherwise (the job requeued with backoff, or
/// failed and the absent provider slashed past the retry budget).
fn expire_leases(ov: &mut Overlay<'_>, params: &ChainParams, h: u64) {
    let p = &params.market;
    for k in scan_until(ov, Kind::LeaseExpiry, h) {
        let t = id_at(&k, 10);
        let mut who = [0u8; 32];
        who.copy_from_slice(&k[42..74]);
        let who = Address(who);
        ov.delete(k);
        let (Some(mut job), Some(mut pr)) = (r::job(ov, &t), r::provider(ov, &who)) else {
            continue;
        };
        let Some(li) = job.leases.iter().position(|l| l.provider == who) else {
            continue;
        };
        let lease_len = p.lane_lease_blocks[job.spec.lane as usize];
        let lease = job.leases[li].clone();
        if pr.last_heartbeat > lease.start
            && pr.last_heartbeat + lease_len > h
            && h < job.spec.deadline
            && lease.renewals < p.lease_renewals_max
        {
            let expiry = (pr.last_heartbeat + lease_len).min(job.spec.deadline);
            job.leases[li].expiry = expiry;
            job.leases[li].renewals += 1;
            ov.put(r::key(Kind::LeaseExpiry, &[&be(expiry), &t.0, &who.0]), &());
            ov.put(r::key(Kind::Job, &[&t.0]), &job);
            continue;
        }
        // A lease cut short by the job's deadline ends the job for its deadline: it
        // waited for replicas (queued) or had them all and no answer came in time.
        let reason = if h >= job.spec.deadline {
            deadline_reason(&job)
        } else {
            FailReason::LeasesLapsed
        };
        job.leases.remove(li);
        pr.active_leases = pr.active_leases.saturating_sub(1);
        pr.missed_leases += 1;
        job.retries += 1;
        // Slashed only if absent: a provider that heartbeated through its lease but could
        // not deliver (a job that fails at run time, a blob it could not fetch) loses
        // the lease and its pay, not its stake.
        let absent = pr.last_heartbeat + lease_len <= h;
        let exhausted = job.retries > p.retry_budget || !r::room_for_another_round(&job);
        if exhausted && !absent {
            ov.put(r::key(Kind::Provider, &[&who.0]), &pr);
            fail(ov, &t, &mut job, reason, h);
        } else if exhausted {
            slash(
                ov,
                params,
                h,
                &who,
                &mut pr,
                SlashReason::MissedLease,
                Some(t),
                None,
            );
            ov.put(r::key(Kind::Provider, &[&who.0]), &pr);
            fail(ov, &t, &mut job, reason, h);
        } else {
            ov.put(r::key(Kind::Provider, &[&who.0]), &pr);
            job.state = JobState::Queued;
            job.eligible_from = h + 1 + p.backoff_blocks * job.retries as u64;
            if job.queue_key.is_empty() {
                job.queue_key = queue_key(p, &job.spec, job.submitted, &t);
                ov.put(job.queue_key.clone(), &());
                let mut f = r::fund(ov);
                f.queued += 1;
                ov.put(r::key(Kind::Fund, &[]), &f);
            }
        }
        ov.put(r::key(Kind::Job, &[&t.0]), &job);
    }
}

/// Step 3 of [`end_block`]: jobs still queued or leased after their deadline fail.
fn fail_past_deadlines(ov: &mut Overlay<'_>, h: u64) {
    for k in scan_until(ov, Kind::Deadline, h.saturating_sub(1)) {
        let t = id_at(&k, 10);
        ov.delete(k);
        if let Some(mut job) = r::job(ov, &t) {
            if matches!(job.state, JobState::Queued | JobState::Leased) {
                let reason = deadline_reason(&job);
                fail(ov, &t, &mut job, reason, h);
                ov.put(r::key(Kind::Job, &[&t.0]), &job);
            }
        }
    }
}

/// Step 5 of [`end_block`]: a job whose challenge window ends at `h` with no dispute
/// open is verified; its payable, unrefuted receipts join the FIFO settlement queue.
fn close_challenge_windows(ov: &mut Overlay<'_>, p: &MarketParams, h: u64) {
    for k in scan_until(ov, Kind::Challenge, h) {
        let t = id_at(&k, 10);
        ov.delete(k);
        let Some(mut job) = r::job(ov, &t) else {
            continue;
        };
        if job.state != JobState::Proven || job.disputes_open > 0 || job.window_end > h {
            continue;
        }
        job.state = JobState::Verified;
        let mut f = r::fund(ov);
        for rc in job.receipts.iter().filter(|x| x.payable && !x.refuted) {
            let avail = r::provider(ov, &rc.provider)
                .map(|pr| availability_bps(p, &pr, h))
                .unwrap_or(0);
            let Some(q) = quote(
                p,
                job.spec.flops,
                job.spec.model,
                rc.latency_blocks,
                avail,
                job.spec.max_price,
            ) else {
                continue;
            };
            let mut item = pending_record(f.settle_next, h, t, rc, &q);
            item.availability = avail;
            ov.put(r::key(Kind::Settlement, &[&be(f.settle_next)]), &item);
            f.settle_next += 1;
            job.payouts_pending += 1;
        }
        ov.put(r::key(Kind::Fund, &[]), &f);
        if job.payouts_pending == 0 {
            refund(ov, &mut job);
            job.state = JobState::Settled;
        }
        ov.put(r::key(Kind::Job, &[&t.0]), &job);
    }
}

/// Replicas delivered: sealed answers of a redundant job, else receipts.
fn delivered(job: &Job) -> u32 {
    if job.spec.redundancy > 1 {
        job.seals.len() as u32
    } else {
        job.receipts.len() as u32
    }
}

fn pending_record(seq: u64, h: u64, t: Id, rc: &ReceiptRecord, q: &Quote) -> r::PendingRecord {
    r::PendingRecord {
        seq,
        verified_at: h,
        task_id: t,
        provider: rc.provider,
        receipt_hash: rc.receipt_hash,
        work_milli: q.work_milli,
        model_bps: q.model_bps,
        latency_bps: q.latency_bps,
        availability: 0,
        availability_bps: q.availability_bps,
        units_milli: q.units_milli,
        price_micro: q.price_micro,
    }
}

/// Queued jobs decoded per matcher pass.
const MATCH_CHUNK: usize = 1024;

fn run_matcher(ov: &mut Overlay<'_>, params: &ChainParams, header: &BlockHeader) {
    let p = &params.market;
    let h = header.height;
    let queued = ov.scan_prefix(&r::prefix(Kind::Queue));
    if queued.is_empty() {
        return;
    }
    let provs = ov.scan_prefix(&r::prefix(Kind::Provider));
    let mut views: Vec<ProviderView> = Vec::with_capacity(provs.len());
    for (k, _) in &provs {
        let mut a = [0u8; 32];
        a.copy_from_slice(&k[2..34]);
        let a = Address(a);
        if let Some(pr) = r::provider(ov, &a) {
            views.push(ProviderView::of(a, &pr));
        }
    }
    // The queue's keys are already in priority order: decode jobs a chunk at a time and
    // stop once the block's lease budget or the providers' capacity is spent. Matching
    // consecutive chunks in turn gives exactly the leases of one pass over the queue.
    let before: Vec<u32> = views.iter().map(|v| v.active_leases).collect();
    let mut grants = Vec::new();
    let mut chunk_params = p.clone();
    for chunk in queued.chunks(MATCH_CHUNK) {
        let budget = p.match_per_block_max as usize - grants.len();
        let free: u64 = views
            .iter()
            .map(|v| super::matcher::lease_quota(p, v).saturating_sub(v.active_leases) as u64)
            .sum();
        if budget == 0 || free == 0 {
            break;
        }
        chunk_params.match_per_block_max = budget as u32;
        let mut jobs: Vec<JobView> = Vec::with_capacity(chunk.len());
        for (k, _) in chunk {
            let t = id_at(k, k.len() - 32);
            let Some(job) = r::job(ov, &t) else { continue };
            // A lease must fit before the deadline, or an honest provider could not
            // answer inside it.
            if job.spec.deadline < h + p.lane_lease_blocks[job.spec.lane as usize] {
                continue;
            }
            {
                jobs.push(JobView {
                    task_id: t,
                    kernel_digest: job.spec.kernel_digest,
                    model: job.spec.model,
                    lane: job.spec.lane,
                    region: job.spec.region,
                    fee_per_unit: fee_per_unit(p, &job.spec),
                    submitted_height: job.submitted,
                    size: job.spec.blob_bytes,
                    replicas_needed: job
                        .spec
                        .redundancy
                        .saturating_sub(job.leases.len() as u32 + delivered(&job)),
                    excluded: job.tried.clone(),
                    eligible_from: job.eligible_from,
                });
            }
        }
        grants.extend(match_block(
            &chunk_params,
            &jobs,
            &mut views,
            &header.parent,
            h,
        ));
    }
    for g in &grants {
        let Some(mut job) = r::job(ov, &g.task_id) else {
            continue;
        };
        let expiry = (h + p.lane_lease_blocks[job.spec.lane as usize]).min(job.spec.deadline);
        job.leases.push(Lease {
            provider: g.provider,
            start: h,
            start_ms: header.timestamp_ms,
            expiry,
            renewals: 0,
        });
        job.tried.push(g.provider);
        ov.put(
            r::key(
                Kind::LeaseExpiry,
                &[&be(expiry), &g.task_id.0, &g.provider.0],
            ),
            &(),
        );
        if job.leases.len() as u32 + delivered(&job) >= job.spec.redundancy {
            job.state = JobState::Leased;
            dequeue(ov, &mut job);
        }
        ov.put(r::key(Kind::Job, &[&g.task_id.0]), &job);
    }
    for (v, b) in views.iter().zip(before) {
        if v.active_leases != b {
            if let Some(mut pr) = r::provider(ov, &v.address) {
                pr.active_leases = v.active_leases;
                ov.put(r::key(Kind::Provider, &[&v.address.0]), &pr);
            }
        }
    }
}

fn end_epoch(ov: &mut Overlay<'_>, params: &ChainParams, header: &BlockHeader) {
    let p = &params.market;
    let h = header.height;
    let epoch = h / p.epoch_blocks;
    let mut summary = r::EpochSummary::default();
    // Availability: a staked provider below the floor is slashed; counters restart.
    for (k, _) in ov.scan_prefix(&r::prefix(Kind::Provider)) {
        let mut a = [0u8; 32];
        a.copy_from_slice(&k[2..34]);
        let a = Address(a);
        let Some(mut pr) = r::provider(ov, &a) else {
            continue;
        };
        let availability = availability_bps(p, &pr, h);
        pr.availability_prev_bps = availability;
        if pr.stake > 0 && availability < p.availability_floor_bps {
            slash(
                ov,
                params,
                h,
                &a,
                &mut pr,
                SlashReason::Availability,
                None,
                None,
            );
        }
        pr.heartbeats_epoch = 0;
        pr.epoch_since = h + 1;
        ov.put(k, &pr);
    }
    // Settlement, FIFO under the cap.
    let queue: Vec<(Vec<u8>, r::PendingRecord)> = ov
        .scan_prefix(&r::prefix(Kind::Settlement))
        .into_iter()
        .filter_map(|(k, _)| r::get(ov, &k).map(|v| (k, v)))
        .collect();
    let items: Vec<PendingPayout> = queue
        .iter()
        .map(|(_, x)| PendingPayout {
            task_id: x.task_id,
            provider: x.provider,
            receipt_hash: x.receipt_hash,
            quote: Quote {
                work_milli: x.work_milli,
                model_bps: x.model_bps,
                latency_bps: x.latency_bps,
                availability_bps: x.availability_bps,
                units_milli: x.units_milli,
                price_micro: x.price_micro,
            },
        })
        .collect();
    let s = pricing::settle_epoch(p, &items);
    for (i, (item, split)) in s.paid.iter().enumerate() {
        let (k, rec) = &queue[i];
        ov.delete(k.clone());
        credit(ov, &item.provider, split.provider);
        credit(ov, &header.beneficiary, split.miner);
        let mut f = r::fund(ov);
        f.industrial += split.fund;
        f.escrow -= item.quote.price_micro;
        f.settle_head += 1;
        let seq = f.payouts;
        f.payouts += 1;
        ov.put(r::key(Kind::Fund, &[]), &f);
        ov.put(
            r::key(Kind::Payout, &[&be(epoch), &be(seq)]),
            &r::PayoutRecord {
                item: rec.clone(),
                provider_micro: split.provider,
                miner_micro: split.miner,
                fund_micro: split.fund,
                miner: header.beneficiary,
                base_rate_micro_per_unit: p.base_rate_micro_per_unit,
                epoch,
            },
        );
        if let Some(mut job) = r::job(ov, &item.task_id) {
            job.escrow -= item.quote.price_micro;
            job.payouts_pending -= 1;
            if job.payouts_pending == 0 {
                refund(ov, &mut job);
                job.state = JobState::Settled;
            }
            ov.put(r::key(Kind::Job, &[&item.task_id.0]), &job);
        }
        summary.paid += 1;
        summary.price_micro += item.quote.price_micro;
    }
    summary.units_milli = s.units_milli;
    summary.carried = (items.len() - s.paid.len()) as u64;
    // Every slash of the epoch, whatever its reason: the slash records written since the
    // last epoch's end (the fund's running count), this block's availability slashes
    // included.
    let mut f = r::fund(ov);
    summary.slashes = f.slashes - f.slashes_epoch_start;
    f.slashes_epoch_start = f.slashes;
    ov.put(r::key(Kind::Fund, &[]), &f);
    ov.put(r::key(Kind::Epoch, &[&be(epoch)]), &summary);
}

/// The treasury's share of a block's issuance and fees, per token: what moves into the
/// fund instead of to the miner.
pub fn treasury_shares(params: &ChainParams, header: &BlockHeader, fees: (u64, u64)) -> (u64, u64) {
    let p = &params.market;
    let share = |v: u64, bps: u64| (v as u128 * bps as u128 / BPS as u128) as u64;
    (
        share(header.coinbase_consumer, p.block_mint_bps) + share(fees.0, p.fee_share_bps),
        share(header.coinbase_industrial, p.block_mint_bps) + share(fees.1, p.fee_share_bps),
    )
}

/// Adds the treasury's shares to the fund.
pub fn pay_treasury(ov: &mut Overlay<'_>, shares: (u64, u64)) {
    if shares == (0, 0) {
        return;
    }
    let mut f: Fund = r::fund(ov);
    f.consumer += shares.0;
    f.industrial += shares.1;
    ov.put(r::key(Kind::Fund, &[]), &f);
}
