//! Proof of work, difficulty retarget, timestamp rules and emission.

use crate::params::{ChainParams, EmissionParams};
use tb_primitives::Id;

/// True when the id, read as a 256-bit big-endian integer, is at most
/// `floor((2^256 - 1) / difficulty)`. Difficulty 0 is never valid.
pub fn pow_ok(id: &Id, difficulty: u64) -> bool {
    if difficulty == 0 {
        return false;
    }
    // target = (2^256 - 1) / difficulty by long division over u64 limbs.
    let mut target = [0u64; 4];
    let mut rem: u128 = 0;
    for limb in target.iter_mut() {
        let cur = (rem << 64) | u64::MAX as u128;
        *limb = (cur / difficulty as u128) as u64;
        rem = cur % difficulty as u128;
    }
    let mut h = [0u64; 4];
    for (i, limb) in h.iter_mut().enumerate() {
        *limb = u64::from_be_bytes(id.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    }
    h <= target
}

/// One ancestor's timing data, oldest first in the slices below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedHeader {
    pub timestamp_ms: u64,
    pub difficulty: u64,
}

/// Difficulty required of the child of the last entry of `ancestors` (which
/// must end at the parent and hold up to `retarget_window + 1` headers).
///
/// With `n = min(window, len - 1)` intervals: the average difficulty of the
/// last `n` blocks, scaled by `target_ms * n / span_ms`, clamped to
/// `[parent / clamp, parent * clamp]` and to at least `difficulty_min`.
pub fn next_difficulty(params: &ChainParams, ancestors: &[TimedHeader]) -> u64 {
    let Some(parent) = ancestors.last() else {
        return params.difficulty_initial;
    };
    if ancestors.len() < 2 {
        return parent.difficulty.max(params.difficulty_min);
    }
    let n = (params.retarget_window as usize).min(ancestors.len() - 1);
    let window = &ancestors[ancestors.len() - 1 - n..];
    let span_ms = window[n]
        .timestamp_ms
        .saturating_sub(window[0].timestamp_ms)
        .max(1) as u128;
    let avg_difficulty = window[1..]
        .iter()
        .map(|h| h.difficulty as u128)
        .sum::<u128>()
        / n as u128;
    let want = avg_difficulty * params.block_time_target_ms as u128 * n as u128 / span_ms;
    let clamp = params.retarget_clamp.max(1) as u128;
    let lo = (parent.difficulty as u128 / clamp).max(1);
    let hi = parent.difficulty as u128 * clamp;
    let next = want.clamp(lo, hi).max(params.difficulty_min as u128);
    next.min(u64::MAX as u128) as u64
}

/// Median of the given timestamps (the lower middle for an even count).
pub fn median_time_ms(timestamps: &[u64]) -> u64 {
    if timestamps.is_empty() {
        return 0;
    }
    let mut v = timestamps.to_vec();
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

/// Per-block reward of emission epoch `e`, before the cap.
pub fn epoch_reward(p: &EmissionParams, e: u64) -> u64 {
    let mut r = p.initial_reward_micro;
    for _ in 0..e {
        let cut = r as u128 * p.decay_bps as u128 / 10_000;
        if cut == 0 {
            break; // the reward no longer decays: constant from here on
        }
        r -= cut as u64;
    }
    r
}

/// Uncapped issuance of blocks `1..=h` (genesis mints nothing).
fn scheduled_through(p: &EmissionParams, h: u64) -> u128 {
    if p.epoch_blocks == 0 {
        return 0;
    }
    let mut total: u128 = 0;
    let mut r = p.initial_reward_micro;
    let mut start = 1u64; // first height of the current epoch
    while start <= h {
        let end = start.saturating_add(p.epoch_blocks - 1).min(h);
        let cut = r as u128 * p.decay_bps as u128 / 10_000;
        if cut == 0 {
            // Constant from here: one multiplication covers the rest.
            total += r as u128 * (h - start + 1) as u128;
            return total;
        }
        total += r as u128 * (end - start + 1) as u128;
        r -= cut as u64;
        start = match end.checked_add(1) {
            Some(s) => s,
            None => break,
        };
    }
    total
}

/// Total minted by blocks `1..=h`: the schedule, cut at the cap. Computed in
/// `O(epochs)`, not `O(h)`.
pub fn minted_through(p: &EmissionParams, h: u64) -> u64 {
    scheduled_through(p, h).min(p.cap_micro as u128) as u64
}

/// The coinbase of height `h`: `minted_through(h) - minted_through(h - 1)`.
/// Summing it over any prefix telescopes to `minted_through`, which never
/// exceeds the cap.
pub fn block_reward(p: &EmissionParams, h: u64) -> u64 {
    if h == 0 {
        return 0;
    }
    minted_through(p, h) - minted_through(p, h - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_extremes() {
        assert!(pow_ok(&Id([0xff; 32]), 1));
        assert!(!pow_ok(&Id([0xff; 32]), 2));
        assert!(pow_ok(&Id([0x7f; 32]), 2));
        assert!(!pow_ok(&Id::ZERO, 0));
        assert!(pow_ok(&Id::ZERO, u64::MAX));
        let mut just_over = [0u8; 32];
        just_over[7] = 2; // 2^193 > 2^256 / 2^64
        assert!(!pow_ok(&Id(just_over), u64::MAX));
    }

    #[test]
    fn median() {
        assert_eq!(median_time_ms(&[5, 1, 3]), 3);
        assert_eq!(median_time_ms(&[4, 1, 3, 2]), 2);
        assert_eq!(median_time_ms(&[]), 0);
    }
}
