//! Pricing and epoch settlement arithmetic: integer-only, exact, with every rounding
//! written down. Amounts are Industrial micro-tokens; units are counted in
//! milli-units so the seed's fractional units (3.2) survive.

use super::params::{MarketParams, BPS};
use tb_primitives::{Address, Id};

/// Milli-units per unit.
pub const MILLI: u64 = 1_000;

/// The multiplier (bps) of a lease-to-receipt delay of `blocks`.
pub fn latency_multiplier_bps(p: &MarketParams, blocks: u64) -> u64 {
    p.latency_buckets
        .iter()
        .find(|b| blocks <= b.blocks)
        .map(|b| b.multiplier_bps)
        .unwrap_or(p.latency_else_bps)
}

/// The multiplier (bps) of an availability of `availability_bps`.
pub fn availability_multiplier_bps(p: &MarketParams, availability_bps: u64) -> u64 {
    p.availability_buckets
        .iter()
        .find(|b| availability_bps >= b.min_bps)
        .map(|b| b.multiplier_bps)
        .unwrap_or(p.availability_else_bps)
}

/// Work of a job in milli-units: `floor(flops · 1000 / flops_per_unit)`, at least 1.
pub fn work_milli(p: &MarketParams, flops: u64) -> u64 {
    let w = flops as u128 * MILLI as u128 / p.flops_per_unit.max(1) as u128;
    (w.min(u64::MAX as u128) as u64).max(1)
}

/// The model weight (bps) of a class, `None` for an unknown class.
pub fn model_weight_bps(p: &MarketParams, model: u16) -> Option<u64> {
    p.model_weights_bps.get(model as usize).copied()
}

/// What one receipt is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Work in milli-units (from FLOPs).
    pub work_milli: u64,
    /// Model weight applied, bps.
    pub model_bps: u64,
    /// Latency multiplier applied, bps.
    pub latency_bps: u64,
    /// Availability multiplier applied, bps.
    pub availability_bps: u64,
    /// `floor(work · model · latency · availability / 10⁴³)` milli-units.
    pub units_milli: u64,
    /// `min(floor(units_milli · base_rate / 1000), max_price)` micro-tokens.
    pub price_micro: u64,
}

/// Prices one receipt: `units = work × model weight × latency × availability`, `price =
/// units × base rate`, never above the requester's `max_price` per replica. `None`
/// for an unknown model class.
pub fn quote(
    p: &MarketParams,
    flops: u64,
    model: u16,
    latency_blocks: u64,
    availability_bps: u64,
    max_price: u64,
) -> Option<Quote> {
    let work = work_milli(p, flops);
    let model_bps = model_weight_bps(p, model)?;
    let latency_bps = latency_multiplier_bps(p, latency_blocks);
    let avail_bps = availability_multiplier_bps(p, availability_bps);
    let bps = BPS as u128;
    let units = work as u128 * model_bps as u128 * latency_bps as u128 * avail_bps as u128
        / (bps * bps * bps);
    let units_milli = units.min(u64::MAX as u128) as u64;
    let price = units_milli as u128 * p.base_rate_micro_per_unit as u128 / MILLI as u128;
    Some(Quote {
        work_milli: work,
        model_bps,
        latency_bps,
        availability_bps: avail_bps,
        units_milli,
        price_micro: price.min(max_price as u128) as u64,
    })
}

/// The most milli-units a job can earn per replica (best multipliers): what must fit
/// under the epoch cap for it to be admitted.
pub fn max_units_milli(p: &MarketParams, flops: u64, model: u16) -> Option<u64> {
    let best_latency = p
        .latency_buckets
        .iter()
        .map(|b| b.multiplier_bps)
        .chain([p.latency_else_bps])
        .max()
        .unwrap_or(BPS);
    let best_avail = p
        .availability_buckets
        .iter()
        .map(|b| b.multiplier_bps)
        .chain([p.availability_else_bps])
        .max()
        .unwrap_or(BPS);
    let bps = BPS as u128;
    let u = work_milli(p, flops) as u128
        * model_weight_bps(p, model)? as u128
        * best_latency as u128
        * best_avail as u128
        / (bps * bps * bps);
    Some(u.min(u64::MAX as u128) as u64)
}

/// A price split: provider, miner and fund shares that sum to the price exactly (the
/// fund takes the rounding remainder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Provider share.
    pub provider: u64,
    /// Miner share.
    pub miner: u64,
    /// Fund share.
    pub fund: u64,
}

/// Splits `price` by `provider_bps` / `miner_bps` / the rest to the fund.
pub fn split(p: &MarketParams, price: u64) -> Split {
    let provider = (price as u128 * p.provider_bps as u128 / BPS as u128) as u64;
    let miner = (price as u128 * p.miner_bps as u128 / BPS as u128) as u64;
    Split {
        provider,
        miner,
        fund: price - provider - miner,
    }
}

/// One verified receipt waiting to be paid, in the FIFO settlement queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPayout {
    /// The job.
    pub task_id: Id,
    /// Who earned it.
    pub provider: Address,
    /// SHA-256 of the receipt.
    pub receipt_hash: [u8; 32],
    /// What it is worth.
    pub quote: Quote,
}

/// The outcome of an epoch's settlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochSettlement {
    /// Paid, in queue order, with their split.
    pub paid: Vec<(PendingPayout, Split)>,
    /// Milli-units paid (never above the cap).
    pub units_milli: u64,
    /// Index in the queue of the first item carried over to the next epoch.
    pub carried_from: usize,
}

/// Pays the queue strictly in order until the next item would take the epoch past
/// `gamma_cap_units`; that item and everything after it carry over (FIFO: nothing is
/// paid out of turn). Admission keeps every item at most the cap, so an empty epoch
/// always pays at least one.
pub fn settle_epoch(p: &MarketParams, queue: &[PendingPayout]) -> EpochSettlement {
    let cap = p.gamma_cap_units as u128 * MILLI as u128;
    let mut used: u128 = 0;
    let mut paid = Vec::new();
    let mut carried_from = queue.len();
    for (i, item) in queue.iter().enumerate() {
        let u = item.quote.units_milli as u128;
        if used + u > cap {
            carried_from = i;
            break;
        }
        used += u;
        paid.push((item.clone(), split(p, item.quote.price_micro)));
    }
    EpochSettlement {
        paid,
        units_milli: used as u64,
        carried_from,
    }
}

/// The rent of keeping a published model of `bytes` available from its current expiry
/// `expires` until `until`, micro-tokens: its publication fee
/// (`⌈bytes / 1024⌉ · blob_fee_per_kib_micro`) bought `blob_retention_blocks`; each
/// further block costs the same per block, rounded up. Zero when it is available that
/// long already. (A job that names the model pays it in its fee; `market.md`.)
pub fn model_rent_micro(p: &MarketParams, bytes: u64, expires: u64, until: u64) -> u64 {
    let extension = until.saturating_sub(expires) as u128;
    if extension == 0 {
        return 0;
    }
    let fee = bytes.div_ceil(1024) as u128 * p.blob_fee_per_kib_micro as u128;
    (fee * extension)
        .div_ceil(p.blob_retention_blocks.max(1) as u128)
        .min(u64::MAX as u128) as u64
}
