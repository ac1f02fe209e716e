//! Difficulty retarget and emission schedule.

use tb_chain::consensus::{
    block_reward, epoch_reward, minted_through, next_difficulty, TimedHeader,
};
use tb_chain::params::SUPPLY_CAP_MICRO;
use tb_chain::ChainParams;

fn chain(n: usize, interval_ms: u64, difficulty: u64) -> Vec<TimedHeader> {
    (0..n)
        .map(|i| TimedHeader {
            timestamp_ms: 1_000_000 + i as u64 * interval_ms,
            difficulty,
        })
        .collect()
}

#[test]
fn difficulty_rises_when_fast_falls_when_slow_and_is_clamped() {
    let p = ChainParams::mainnet();
    let d = 1_000_000;
    // On target: unchanged.
    assert_eq!(next_difficulty(&p, &chain(121, 1_000, d)), d);
    // 20% fast: +25%.
    assert_eq!(next_difficulty(&p, &chain(121, 800, d)), d * 5 / 4);
    // 2x slow: halves.
    assert_eq!(next_difficulty(&p, &chain(121, 2_000, d)), d / 2);
    // 100x fast: clamped to 4x.
    assert_eq!(next_difficulty(&p, &chain(121, 10, d)), 4 * d);
    // 100x slow: clamped to 1/4.
    assert_eq!(next_difficulty(&p, &chain(121, 100_000, d)), d / 4);
    // Equal timestamps do not divide by zero.
    assert_eq!(next_difficulty(&p, &chain(121, 0, d)), 4 * d);
    // Only the last 120 intervals count: a slow distant past is ignored.
    let mut c = chain(200, 5_000, d);
    let base = c[79].timestamp_ms;
    for (i, h) in c.iter_mut().enumerate().skip(80) {
        h.timestamp_ms = base + (i as u64 - 79) * 1_000;
    }
    assert_eq!(next_difficulty(&p, &c), d);
    // Short chains use what they have; genesis alone keeps its difficulty.
    assert_eq!(next_difficulty(&p, &chain(1, 1_000, 77)), 77);
    assert_eq!(next_difficulty(&p, &chain(3, 500, d)), 2 * d);
    // The floor holds.
    assert_eq!(next_difficulty(&p, &chain(121, 100_000, 1)), 1);
}

#[test]
fn retarget_converges_under_a_simulated_hash_rate() {
    // Miners with a fixed hash rate: the time of a block is difficulty / rate.
    let p = ChainParams::mainnet();
    let rate_per_ms = 50_000u64; // hashes per ms: the equilibrium difficulty is 50M
    let mut c = vec![TimedHeader {
        timestamp_ms: 0,
        difficulty: p.difficulty_initial,
    }];
    for _ in 0..2_000 {
        let d = next_difficulty(&p, &c[c.len().saturating_sub(121)..]);
        let last = c.last().unwrap().timestamp_ms;
        c.push(TimedHeader {
            timestamp_ms: last + (d / rate_per_ms).max(1),
            difficulty: d,
        });
    }
    let d = c.last().unwrap().difficulty;
    let want = rate_per_ms * p.block_time_target_ms;
    assert!(
        d > want * 9 / 10 && d < want * 11 / 10,
        "difficulty {d}, want ≈ {want}"
    );
}

#[test]
fn emission_never_exceeds_the_cap_over_100_million_heights() {
    for p in [ChainParams::mainnet(), ChainParams::devnet()] {
        let e = &p.emission_consumer;
        assert_eq!(e.cap_micro, SUPPLY_CAP_MICRO);
        // minted_through is computed per epoch, so 100M heights are cheap.
        let mut prev = 0;
        for h in (0..=100_000_000u64)
            .step_by(99_991)
            .chain([100_000_000, u64::MAX / 2])
        {
            let m = minted_through(e, h);
            assert!(m <= e.cap_micro, "height {h}: minted {m} above cap");
            assert!(m >= prev, "minted is monotone");
            prev = m;
        }
        // Block rewards telescope exactly to minted_through across epoch edges.
        for start in [1u64, e.epoch_blocks - 5, 7 * e.epoch_blocks - 3, 99_999_990] {
            let sum: u64 = (start..start + 20).map(|h| block_reward(e, h)).sum();
            assert_eq!(
                sum,
                minted_through(e, start + 19) - minted_through(e, start - 1)
            );
        }
        assert_eq!(block_reward(e, 0), 0);
        assert_eq!(block_reward(e, 1), e.initial_reward_micro);
        // Rewards decay by epoch.
        assert!(epoch_reward(e, 1) < epoch_reward(e, 0));
        assert_eq!(block_reward(e, e.epoch_blocks + 1), epoch_reward(e, 1));
    }
    // Devnet's generous reward hits the cap; past it nothing more is minted.
    let e = ChainParams::devnet().emission_consumer;
    let far = u64::MAX / 4;
    assert_eq!(minted_through(&e, far), e.cap_micro);
    assert_eq!(block_reward(&e, far), 0);
    // Find the first capped height by bisection and check the boundary exactly.
    let (mut lo, mut hi) = (1u64, far);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if minted_through(&e, mid) == e.cap_micro {
            hi = mid
        } else {
            lo = mid + 1
        }
    }
    assert!(block_reward(&e, lo) > 0);
    assert_eq!(block_reward(&e, lo + 1), 0);
    assert_eq!(minted_through(&e, lo), e.cap_micro);
}
