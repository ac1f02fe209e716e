//! The market's per-block work (issue 5): the matcher over a deep queue and the epoch
//! settlement of as many verified receipts.

use crate::median;
use std::time::Instant;
use tb_chain::market::{
    match_block, quote, settle_epoch, JobView, MarketParams, PendingPayout, ProviderView,
};
use tb_primitives::{blake3_id, Address, Id};

/// `jobs` queued, `providers` registered (varied models, regions, capacity, health).
pub fn bench_market(jobs: usize, providers: usize, runs: usize) -> Result<(), String> {
    let mut m = MarketParams::mainnet();
    m.match_per_block_max = 1_000;
    let h = 1_000u64;
    let pv: Vec<ProviderView> = (0..providers)
        .map(|i| {
            let id = blake3_id(b"bench/provider", &(i as u64).to_le_bytes());
            ProviderView {
                address: Address(id.0),
                stake: m.min_stake_micro * (1 + (i % 3) as u64),
                jailed_until: if i % 50 == 0 { h + 10 } else { 0 },
                last_heartbeat: h - (i % 40) as u64,
                active_leases: (i % 5) as u32,
                max_leases: 8,
                kernel_digests: vec![[(i % 2) as u8; 32]],
                models: vec![(i % 3) as u16],
                region: (i % 4) as u16,
            }
        })
        .collect();
    let jv: Vec<JobView> = (0..jobs)
        .map(|i| JobView {
            task_id: blake3_id(b"bench/job", &(i as u64).to_le_bytes()),
            kernel_digest: [(i % 2) as u8; 32],
            model: (i % 3) as u16,
            lane: (i % 3) as u8,
            region: if i % 10 == 0 {
                Some((i % 4) as u16)
            } else {
                None
            },
            fee_per_unit: (i as u64 * 7919) % 1000,
            submitted_height: (i / 10) as u64,
            size: 1_000 + (i % 100) as u64,
            replicas_needed: 1 + (i % 3) as u32,
            excluded: vec![],
            eligible_from: 0,
        })
        .collect();
    let seed = Id([7; 32]);
    let mut match_times = Vec::new();
    let mut granted = 0;
    for _ in 0..runs {
        let mut ps = pv.clone();
        let t = Instant::now();
        let a = match_block(&m, &jv, &mut ps, &seed, h);
        match_times.push(t.elapsed().as_secs_f64());
        granted = a.len();
    }
    let mut queue: Vec<PendingPayout> = Vec::with_capacity(jobs);
    for (i, j) in jv.iter().enumerate() {
        let flops = 1_000_000_000 * (1 + (i % 50) as u64);
        let q =
            quote(&m, flops, (i % 3) as u16, (i % 12) as u64, 9_950, u64::MAX).ok_or("quote")?;
        queue.push(PendingPayout {
            task_id: j.task_id,
            provider: pv[i % providers].address,
            receipt_hash: [i as u8; 32],
            quote: q,
        });
    }
    let mut settle_times = Vec::new();
    let mut paid = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let s = settle_epoch(&m, &queue);
        settle_times.push(t.elapsed().as_secs_f64());
        paid = s.paid.len();
    }
    println!(
        "{{\"bench\":\"market\",\"jobs\":{jobs},\"providers\":{providers},\"runs\":{runs},\"match_ms\":{:.2},\"leases_granted\":{granted},\"settle_ms\":{:.2},\"receipts_paid\":{paid},\"per_block_ms\":{:.2}}}",
        median(match_times.clone()) * 1e3,
        median(settle_times.clone()) * 1e3,
        (median(match_times) + median(settle_times)) * 1e3
    );
    Ok(())
}
