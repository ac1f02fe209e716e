//! Every move of tokens the market makes outside a transaction's own transfer: credits
//! to accounts, escrow refunds, slashes (stake and unbonding to the fund) and failing a
//! job (its escrow back). One small module, so that conservation can be audited in one
//! place (`market::audit` recomputes the supply from the records these write).

use super::keys::be;
use super::params::BPS;
use super::records::{self as r, FailReason, Failure, Job, JobState, Kind, Provider, SlashReason};
use crate::params::ChainParams;
use crate::state::{Overlay, StateRead};
use tb_primitives::{Address, Id};

/// Slashes `pr` (the record of `who`): `bps` of its stake goes to the fund, it is
/// jailed, and a `ComputeSlashReceipt` is written. The caller writes `pr` back.
#[allow(clippy::too_many_arguments)]
pub fn slash(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    h: u64,
    who: &Address,
    pr: &mut Provider,
    reason: SlashReason,
    task_id: Option<Id>,
    output_digest: Option<[u8; 32]>,
) -> u64 {
    let p = &params.market;
    let bps = match reason {
        SlashReason::MissedLease => p.slash.missed_lease_bps,
        SlashReason::ReceiptOutsideLease => p.slash.receipt_outside_lease_bps,
        SlashReason::LatencySla => p.slash.latency_sla_bps,
        SlashReason::Availability => p.slash.availability_bps,
        SlashReason::LostDispute => p.slash.lost_dispute_bps,
        SlashReason::WithheldData => p.slash.withheld_data_bps,
    };
    // The fraction is of everything bonded, stake and unbonding alike, taken from the
    // stake first: unstaking does not escape a slash.
    let bonded = pr.stake as u128 + pr.unbonding as u128;
    let amount = (bonded * bps as u128 / BPS as u128) as u64;
    let from_stake = amount.min(pr.stake);
    let from_unbonding = amount - from_stake;
    pr.stake -= from_stake;
    pr.slashed += amount;
    pr.jailed_until = pr.jailed_until.max(h + p.jail_blocks);
    if from_unbonding > 0 {
        take_unbonding(ov, who, pr, from_unbonding);
    }
    let mut f = r::fund(ov);
    f.stakes -= from_stake;
    f.unbonding -= from_unbonding;
    f.industrial += amount;
    let seq = f.slashes;
    f.slashes += 1;
    ov.put(r::key(Kind::Fund, &[]), &f);
    ov.put(
        r::key(Kind::Slash, &[&be(h), &be(seq)]),
        &r::SlashRecord {
            provider: *who,
            reason,
            task_id,
            output_digest,
            amount,
            height: h,
        },
    );
    amount
}

/// Takes `amount` from `who`'s pending unbonding releases, the latest first.
pub fn take_unbonding(ov: &mut Overlay<'_>, who: &Address, pr: &mut Provider, mut amount: u64) {
    let mut entries: Vec<(Vec<u8>, u64)> = ov
        .scan_prefix(&r::prefix(Kind::Unbonding))
        .into_iter()
        .filter(|(k, _)| k.len() == 42 && k[10..42] == who.0)
        .filter_map(|(k, _)| r::get::<u64, _>(ov, &k).map(|v| (k, v)))
        .collect();
    entries.reverse();
    for (k, v) in entries {
        if amount == 0 {
            break;
        }
        let take = amount.min(v);
        amount -= take;
        pr.unbonding -= take;
        if take == v {
            ov.delete(k);
            pr.unbonding_entries = pr.unbonding_entries.saturating_sub(1);
        } else {
            ov.put(k, &(v - take));
        }
    }
}

/// Adds `industrial` micro-tokens to `a`'s Industrial balance (saturating).
pub fn credit(ov: &mut Overlay<'_>, a: &Address, industrial: u64) {
    let mut acc = ov.account(a);
    acc.industrial = acc.industrial.saturating_add(industrial);
    ov.set_account(a, &acc);
}

/// Refunds what is left of a job's escrow to its requester.
pub fn refund(ov: &mut Overlay<'_>, job: &mut Job) {
    if job.escrow > 0 {
        credit(ov, &job.requester, job.escrow);
        let mut f = r::fund(ov);
        f.escrow -= job.escrow;
        ov.put(r::key(Kind::Fund, &[]), &f);
        job.escrow = 0;
    }
}

/// Takes a job out of the queue.
pub fn dequeue(ov: &mut Overlay<'_>, job: &mut Job) {
    if !job.queue_key.is_empty() {
        ov.delete(std::mem::take(&mut job.queue_key));
        let mut f = r::fund(ov);
        f.queued -= 1;
        ov.put(r::key(Kind::Fund, &[]), &f);
    }
}

/// Ends a job that cannot complete, for `reason` at height `h`: its leases are released
/// (not counted as missed), it leaves the queue, its escrow goes back.
pub fn fail(ov: &mut Overlay<'_>, t: &Id, job: &mut Job, reason: FailReason, h: u64) {
    for l in std::mem::take(&mut job.leases) {
        ov.delete(r::key(
            Kind::LeaseExpiry,
            &[&be(l.expiry), &t.0, &l.provider.0],
        ));
        if let Some(mut pr) = r::provider(ov, &l.provider) {
            pr.active_leases = pr.active_leases.saturating_sub(1);
            ov.put(r::key(Kind::Provider, &[&l.provider.0]), &pr);
        }
    }
    dequeue(ov, job);
    refund(ov, job);
    job.state = JobState::Failed;
    job.failure = Some(Failure { reason, height: h });
}
