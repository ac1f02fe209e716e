//! The market's keys: how records are ordered under `M` (big-endian heights, the job
//! queue's priority order) and read back. Shared by block execution, disputes and the
//! read-only queries.

use super::params::MarketParams;
use super::pricing;
use super::records::{self as r, Kind};
use crate::state::{Overlay, StateRead};
use crate::tx::JobSpec;
use tb_primitives::Id;

/// A height or count as key bytes (big-endian, so keys sort by it).
pub fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Fee per milli-unit of best-case work, scaled by 10⁶: the queue's price signal.
pub fn fee_per_unit(p: &MarketParams, s: &JobSpec) -> u64 {
    let units = pricing::max_units_milli(p, s.flops, s.model)
        .unwrap_or(1)
        .max(1);
    (s.max_price as u128 * 1_000_000 / units as u128).min(u64::MAX as u128) as u64
}

/// A queued job's key: lane, then fee per unit descending, age, size, task id, so a
/// prefix scan walks the queue in priority order.
pub fn queue_key(p: &MarketParams, s: &JobSpec, submitted: u64, t: &Id) -> Vec<u8> {
    r::key(
        Kind::Queue,
        &[
            &[s.lane],
            &be(u64::MAX - fee_per_unit(p, s)),
            &be(submitted),
            &be(s.blob_bytes),
            &t.0,
        ],
    )
}

/// The keys of the height-ordered index `kind` at heights up to `h`.
pub fn scan_until(ov: &Overlay<'_>, kind: Kind, h: u64) -> Vec<Vec<u8>> {
    // Keys are `M ‖ kind ‖ height (BE) ‖ …`: everything below `M ‖ kind ‖ h + 1`.
    let lo = r::prefix(kind);
    let hi = match h.checked_add(1) {
        Some(next) => r::key(kind, &[&be(next)]),
        None => vec![r::MARKET_PREFIX, kind as u8 + 1],
    };
    ov.scan_range(&lo, &hi)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.len() >= 10)
        .collect()
}

/// The id at byte `at` of a key.
pub fn id_at(k: &[u8], at: usize) -> Id {
    let mut a = [0u8; 32];
    a.copy_from_slice(&k[at..at + 32]);
    Id(a)
}
