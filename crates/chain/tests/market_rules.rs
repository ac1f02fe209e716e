//! The market's pure rules: parameter ranges, pricing, the epoch cap with FIFO
//! carry-over, and the matcher's eligibility, ordering, shuffle and quotas.

use proptest::prelude::*;
use tb_chain::market::matcher::{lease_quota, shuffle_key};
use tb_chain::market::pricing::{
    availability_multiplier_bps, latency_multiplier_bps, max_units_milli, work_milli,
};
use tb_chain::market::{
    eligibility, match_block, priority_key, quote, settle_epoch, split, Assignment, Ineligible,
    JobView, MarketParams, PendingPayout, ProviderView,
};
use tb_primitives::{Address, Id};

fn p() -> MarketParams {
    MarketParams::mainnet()
}

#[test]
fn default_parameters_are_in_range_and_bad_ones_are_named() {
    MarketParams::mainnet().validate().unwrap();
    MarketParams::devnet().validate().unwrap();
    type Mutation = Box<dyn Fn(&mut MarketParams)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("block_mint_bps", Box::new(|m| m.block_mint_bps = 10_001)),
        (
            "provider_bps + miner_bps + fund_bps",
            Box::new(|m| m.fund_bps = 400),
        ),
        ("epoch_blocks", Box::new(|m| m.epoch_blocks = 0)),
        ("gamma_cap_units", Box::new(|m| m.gamma_cap_units = 0)),
        (
            "model_weights_bps (count)",
            Box::new(|m| m.model_weights_bps.clear()),
        ),
        (
            "model_weights_bps",
            Box::new(|m| m.model_weights_bps[1] = 0),
        ),
        (
            "latency_buckets.blocks",
            Box::new(|m| m.latency_buckets[1].blocks = 3),
        ),
        (
            "availability_buckets.min_bps",
            Box::new(|m| m.availability_buckets[1].min_bps = 9_990),
        ),
        (
            "lane_lease_blocks (count)",
            Box::new(|m| m.lane_lease_blocks.clear()),
        ),
        (
            "heartbeat_timeout_blocks",
            Box::new(|m| m.heartbeat_timeout_blocks = 5),
        ),
        (
            "slash.lost_dispute_bps",
            Box::new(|m| m.slash.lost_dispute_bps = 10_001),
        ),
        ("min_stake_micro", Box::new(|m| m.min_stake_micro = 0)),
        ("redundancy_max", Box::new(|m| m.redundancy_max = 0)),
        (
            "match_per_block_max",
            Box::new(|m| m.match_per_block_max = 0),
        ),
    ];
    for (name, f) in cases {
        let mut m = p();
        f(&mut m);
        assert_eq!(m.validate().map_err(|e| e.name), Err(name));
    }
}

#[test]
fn pricing_follows_the_formula_exactly() {
    let m = p();
    // 3.2 units of work (3.2·10⁹ FLOPs), llama3-8b (1.0), a 2-block delay (≤ 3: 1.15),
    // availability 99.95 % (≥ 99.9 %: 1.10): 3200 · 1.15 · 1.10 = 4048 milli-units.
    let q = quote(&m, 3_200_000_000, 0, 2, 9_995, u64::MAX).unwrap();
    assert_eq!(q.work_milli, 3_200);
    assert_eq!(
        (q.model_bps, q.latency_bps, q.availability_bps),
        (10_000, 11_500, 11_000)
    );
    assert_eq!(q.units_milli, 4_048);
    assert_eq!(q.price_micro, 4_048 * 15_000 / 1_000);
    // llama3-70b weighs 6.5; the max price clamps.
    let q = quote(&m, 3_200_000_000, 1, 2, 9_995, 100_000).unwrap();
    assert_eq!(
        q.units_milli,
        3_200 * 65_000 / 10_000 * 11_500 / 10_000 * 11_000 / 10_000
    );
    assert_eq!(q.price_micro, 100_000);
    // Unknown model class.
    assert!(quote(&m, 1, 3, 0, 0, 1).is_none());
    // Buckets at their edges.
    for (blocks, bps) in [
        (0, 11_500),
        (3, 11_500),
        (4, 10_000),
        (10, 10_000),
        (11, 8_000),
    ] {
        assert_eq!(latency_multiplier_bps(&m, blocks), bps, "{blocks} blocks");
    }
    for (a, bps) in [
        (10_000, 11_000),
        (9_990, 11_000),
        (9_989, 10_000),
        (9_900, 10_000),
        (9_899, 9_000),
        (0, 9_000),
    ] {
        assert_eq!(availability_multiplier_bps(&m, a), bps, "availability {a}");
    }
    // Tiny jobs still cost one milli-unit of work; max units use the best multipliers.
    assert_eq!(work_milli(&m, 1), 1);
    assert_eq!(
        max_units_milli(&m, 1_000_000_000, 0),
        Some(1_000 * 11_500 / 10_000 * 11_000 / 10_000)
    );
}

proptest! {
    #[test]
    fn split_shares_sum_to_the_price(price in any::<u64>()) {
        let s = split(&p(), price);
        prop_assert_eq!(s.provider as u128 + s.miner as u128 + s.fund as u128, price as u128);
        prop_assert_eq!(s.provider, (price as u128 * 8_000 / 10_000) as u64);
        prop_assert_eq!(s.miner, (price as u128 * 1_500 / 10_000) as u64);
    }

    /// Epoch after epoch over a FIFO queue: the cap is never exceeded, nothing is paid
    /// out of turn, an epoch stops only at an item that does not fit, and everything
    /// is eventually paid.
    #[test]
    fn epoch_cap_is_never_exceeded_and_carry_over_is_fifo(
        cap in 1u64..50,
        units in proptest::collection::vec(1u64..=50_000, 0..200),
    ) {
        let mut m = p();
        m.gamma_cap_units = cap;
        let queue: Vec<PendingPayout> = units
            .iter()
            .enumerate()
            .filter(|(_, u)| **u <= cap * 1_000) // admission keeps every item under the cap
            .map(|(i, u)| PendingPayout {
                task_id: Id([i as u8; 32]),
                provider: Address([7; 32]),
                receipt_hash: [i as u8; 32],
                quote: tb_chain::market::Quote {
                    work_milli: *u,
                    model_bps: 10_000,
                    latency_bps: 10_000,
                    availability_bps: 10_000,
                    units_milli: *u,
                    price_micro: *u * 15,
                },
            })
            .collect();
        let mut rest: &[PendingPayout] = &queue;
        let mut paid_in_order = Vec::new();
        let mut epochs = 0;
        while !rest.is_empty() {
            let s = settle_epoch(&m, rest);
            prop_assert!(s.units_milli <= cap * 1_000);
            prop_assert!(!s.paid.is_empty(), "an empty epoch pays at least the first item");
            prop_assert_eq!(s.paid.len(), s.carried_from);
            if s.carried_from < rest.len() {
                prop_assert!(s.units_milli + rest[s.carried_from].quote.units_milli > cap * 1_000);
            }
            paid_in_order.extend(s.paid.iter().map(|(x, _)| x.task_id));
            rest = &rest[s.carried_from..];
            epochs += 1;
            prop_assert!(epochs <= queue.len());
        }
        prop_assert_eq!(paid_in_order, queue.iter().map(|x| x.task_id).collect::<Vec<_>>());
    }
}

fn provider(n: u8) -> ProviderView {
    ProviderView {
        address: Address([n; 32]),
        stake: p().min_stake_micro,
        jailed_until: 0,
        last_heartbeat: 100,
        active_leases: 0,
        max_leases: 4,
        kernel_digests: vec![[0xaa; 32]],
        models: vec![0, 1],
        region: 1,
    }
}

fn job(n: u8) -> JobView {
    JobView {
        task_id: Id([n; 32]),
        kernel_digest: [0xaa; 32],
        model: 0,
        lane: 0,
        region: None,
        fee_per_unit: 100,
        submitted_height: 50,
        size: 1_000,
        replicas_needed: 1,
        excluded: vec![],
        eligible_from: 0,
    }
}

#[test]
fn each_eligibility_rule_refuses_with_its_reason() {
    let m = p();
    let (j, v, h) = (job(1), provider(1), 110);
    assert_eq!(eligibility(&m, &j, &v, h), Ok(()));
    let cases: Vec<(Ineligible, JobView, ProviderView)> = vec![
        (
            Ineligible::Jailed,
            j.clone(),
            ProviderView {
                jailed_until: 111,
                ..v.clone()
            },
        ),
        (
            Ineligible::StakeBelowMin,
            j.clone(),
            ProviderView {
                stake: m.min_stake_micro - 1,
                ..v.clone()
            },
        ),
        (
            Ineligible::Unhealthy,
            j.clone(),
            ProviderView {
                last_heartbeat: h - m.heartbeat_timeout_blocks - 1,
                ..v.clone()
            },
        ),
        (
            Ineligible::NoCapacity,
            j.clone(),
            ProviderView {
                active_leases: 4,
                ..v.clone()
            },
        ),
        (
            Ineligible::NoCapacity,
            j.clone(),
            ProviderView {
                max_leases: 1000,
                active_leases: m.max_leases_per_provider,
                ..v.clone()
            },
        ),
        (
            Ineligible::KernelDigest,
            JobView {
                kernel_digest: [0xbb; 32],
                ..j.clone()
            },
            v.clone(),
        ),
        (
            Ineligible::Model,
            JobView {
                model: 2,
                ..j.clone()
            },
            v.clone(),
        ),
        (
            Ineligible::Region,
            JobView {
                region: Some(2),
                ..j.clone()
            },
            v.clone(),
        ),
        (
            Ineligible::AlreadyAssigned,
            JobView {
                excluded: vec![v.address],
                ..j.clone()
            },
            v.clone(),
        ),
    ];
    for (want, j, v) in cases {
        assert_eq!(eligibility(&m, &j, &v, h), Err(want));
    }
    // Boundaries: exactly the timeout is healthy; jail ends at its height; a zero
    // kernel digest means any fabric; the job's own region matches.
    assert!(eligibility(
        &m,
        &j,
        &ProviderView {
            last_heartbeat: h - m.heartbeat_timeout_blocks,
            ..v.clone()
        },
        h
    )
    .is_ok());
    assert!(eligibility(
        &m,
        &j,
        &ProviderView {
            jailed_until: h,
            ..v.clone()
        },
        h
    )
    .is_ok());
    assert!(eligibility(
        &m,
        &JobView {
            kernel_digest: [0; 32],
            ..j.clone()
        },
        &v,
        h
    )
    .is_ok());
    assert!(eligibility(
        &m,
        &JobView {
            region: Some(1),
            ..j.clone()
        },
        &v,
        h
    )
    .is_ok());
    assert_eq!(
        lease_quota(
            &m,
            &ProviderView {
                max_leases: 1000,
                ..v
            }
        ),
        m.max_leases_per_provider
    );
}

#[test]
fn queue_order_is_lane_fee_age_size_then_fifo() {
    let base = job(0);
    let mut jobs = [
        JobView {
            task_id: Id([1; 32]),
            lane: 1,
            fee_per_unit: 1_000,
            ..base.clone()
        },
        JobView {
            task_id: Id([2; 32]),
            fee_per_unit: 50,
            ..base.clone()
        },
        JobView {
            task_id: Id([3; 32]),
            fee_per_unit: 200,
            ..base.clone()
        },
        JobView {
            task_id: Id([4; 32]),
            submitted_height: 40,
            ..base.clone()
        },
        JobView {
            task_id: Id([5; 32]),
            size: 10,
            ..base.clone()
        },
        JobView {
            task_id: Id([6; 32]),
            ..base.clone()
        },
    ];
    jobs.sort_by_key(priority_key);
    let order: Vec<u8> = jobs.iter().map(|j| j.task_id.0[0]).collect();
    // lane 0 first; among them fee 200, then fee 100 (older 40 first, then size 10,
    // then the task id), then fee 50; lane 1 last despite its fee.
    assert_eq!(order, vec![3, 4, 5, 6, 2, 1]);
}

#[test]
fn matcher_follows_the_shuffle_quotas_and_budget() {
    let m = p();
    let seed = Id([9; 32]);
    let mut providers: Vec<ProviderView> = (1..=6).map(provider).collect();
    // The shuffle order is the order of BLAKE3(seed ‖ address).
    let mut want: Vec<Address> = providers.iter().map(|v| v.address).collect();
    want.sort_by_key(|a| shuffle_key(&seed, a));
    let jobs = vec![JobView {
        replicas_needed: 3,
        ..job(1)
    }];
    let got = match_block(&m, &jobs, &mut providers.clone(), &seed, 110);
    assert_eq!(
        got.iter().map(|a| a.provider).collect::<Vec<_>>(),
        want[..3].to_vec()
    );
    // Another seed, another order; the same seed, the same leases.
    let other = match_block(&m, &jobs, &mut providers.clone(), &Id([10; 32]), 110);
    assert_ne!(other, got);
    assert_eq!(
        match_block(&m, &jobs, &mut providers.clone(), &seed, 110),
        got
    );
    // Quotas: 6 providers × 4 leases = 24 slots for 40 single-replica jobs.
    let jobs: Vec<JobView> = (0..40)
        .map(|i| JobView {
            task_id: Id([i; 32]),
            ..job(0)
        })
        .collect();
    let got = match_block(&m, &jobs, &mut providers, &seed, 110);
    assert_eq!(got.len(), 24);
    assert!(providers.iter().all(|v| v.active_leases == 4));
    // The per-block budget.
    let mut small = p();
    small.match_per_block_max = 5;
    let got = match_block(
        &small,
        &jobs,
        &mut (1..=6).map(provider).collect::<Vec<_>>(),
        &seed,
        110,
    );
    assert_eq!(got.len(), 5);
    // Backoff: a job not yet eligible is skipped.
    let later = vec![JobView {
        eligible_from: 111,
        ..job(1)
    }];
    assert!(match_block(
        &m,
        &later,
        &mut (1..=6).map(provider).collect::<Vec<_>>(),
        &seed,
        110
    )
    .is_empty());
}

/// The matcher by its definition, with no index: every job in queue order scans every
/// provider in shuffle order.
fn reference_match(
    m: &MarketParams,
    jobs: &[JobView],
    providers: &mut [ProviderView],
    seed: &Id,
    h: u64,
) -> Vec<Assignment> {
    let mut order: Vec<usize> = (0..providers.len()).collect();
    order.sort_by_key(|i| {
        (
            shuffle_key(seed, &providers[*i].address),
            providers[*i].address,
        )
    });
    let mut q: Vec<&JobView> = jobs
        .iter()
        .filter(|j| j.replicas_needed > 0 && j.eligible_from <= h)
        .collect();
    q.sort_by_key(|j| priority_key(j));
    let mut out = Vec::new();
    for j in q {
        let mut need = j.replicas_needed;
        let mut taken = Vec::new();
        for &i in &order {
            if need == 0 || out.len() >= m.match_per_block_max as usize {
                break;
            }
            if taken.contains(&providers[i].address) || eligibility(m, j, &providers[i], h).is_err()
            {
                continue;
            }
            taken.push(providers[i].address);
            out.push(Assignment {
                task_id: j.task_id,
                provider: providers[i].address,
            });
            providers[i].active_leases += 1;
            need -= 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn matcher_equals_its_definition(
        seed in any::<[u8; 32]>(),
        ps in proptest::collection::vec((0u8..3, 0u32..3, 0u64..40, any::<bool>(), 0u16..3), 1..30),
        js in proptest::collection::vec((0u16..3, 0u8..2, 0u64..5, 1u32..4, 0u64..3, any::<bool>()), 0..60),
        budget in 1u32..40,
    ) {
        let mut m = p();
        m.match_per_block_max = budget;
        let h = 100;
        let mut providers: Vec<ProviderView> = ps.iter().enumerate().map(|(i, (models, max, hb, jailed, region))| ProviderView {
            address: Address([i as u8 + 1; 32]),
            stake: m.min_stake_micro,
            jailed_until: if *jailed { 101 } else { 0 },
            last_heartbeat: h - hb,
            active_leases: 0,
            max_leases: *max,
            kernel_digests: vec![[0xaa; 32]],
            models: (0..=*models as u16).collect(),
            region: *region,
        }).collect();
        let jobs: Vec<JobView> = js.iter().enumerate().map(|(i, (model, lane, fee, k, age, regional))| JobView {
            task_id: Id([i as u8; 32]),
            kernel_digest: if i % 5 == 0 { [0; 32] } else { [0xaa; 32] },
            model: *model,
            lane: *lane,
            region: if *regional { Some(1) } else { None },
            fee_per_unit: *fee,
            submitted_height: *age,
            size: 1,
            replicas_needed: *k,
            excluded: if i % 7 == 0 { vec![Address([1; 32])] } else { vec![] },
            eligible_from: 0,
        }).collect();
        let mut a = providers.clone();
        let got = match_block(&m, &jobs, &mut a, &Id(seed), h);
        let want = reference_match(&m, &jobs, &mut providers, &Id(seed), h);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(a, providers);
        prop_assert!(got.len() <= budget as usize);
    }
}
