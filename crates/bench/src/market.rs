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

/// The whole per-block market step inside a real block template: `build_block` with no
/// transactions over a state holding `jobs` queued jobs and `providers` providers
/// (records read from the state, leases written back, the state root recomputed).
pub fn bench_market_block(
    jobs: usize,
    providers: usize,
    budget: u32,
    runs: usize,
) -> Result<(), String> {
    use tb_chain::block::genesis_header;
    use tb_chain::market::keys::queue_key;
    use tb_chain::market::records::{self as r, Fund, Job, Kind, Provider};
    use tb_chain::tx::{JobSpec, ProviderCaps};
    use tb_primitives::encode;
    let mut params = tb_chain::ChainParams::devnet();
    params.market.match_per_block_max = budget;
    let m = &params.market;
    let h0 = 1_000u64;
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..providers {
        let a = Address(blake3_id(b"bench/provider", &(i as u64).to_le_bytes()).0);
        let p = Provider {
            caps: ProviderCaps {
                fabrics: vec!["cpu".into()],
                kernel_digests: vec![[(i % 2) as u8; 32]],
                models: vec![(i % 3) as u16],
                region: (i % 4) as u16,
                max_leases: 8,
            },
            stake: m.min_stake_micro * 2,
            last_heartbeat: h0,
            registered_at: 1,
            ..Provider::default()
        };
        entries.push((r::key(Kind::Provider, &[&a.0]), encode(&p)));
    }
    for i in 0..jobs {
        let t = blake3_id(b"bench/job", &(i as u64).to_le_bytes());
        let spec = JobSpec {
            blob_sha256: t.0,
            blob_bytes: 1_000 + (i % 100) as u64,
            flops: 1_000_000_000 * (1 + (i % 50) as u64),
            kernel_digest: [(i % 2) as u8; 32],
            model: (i % 3) as u16,
            lane: (i % 3) as u8,
            region: None,
            max_price: 1_000_000 + (i as u64 * 7919) % 1_000_000,
            redundancy: 1 + (i % 3) as u32,
            deadline: h0 + 10_000,
            n_ops: 1,
            outputs: vec![0],
            model_object: None,
        };
        let qk = queue_key(m, &spec, (i / 10) as u64, &t);
        let escrow = spec.max_price * spec.redundancy as u64;
        let mut job = Job::queued(Address([1; 32]), spec, escrow, (i / 10) as u64, qk.clone());
        job.eligible_from = 0;
        entries.push((qk, encode(&())));
        entries.push((r::key(Kind::Job, &[&t.0]), encode(&job)));
    }
    entries.push((
        r::key(Kind::Fund, &[]),
        encode(&Fund {
            queued: jobs as u64,
            ..Fund::default()
        }),
    ));
    let mut state = tb_chain::State::from_entries(entries);
    let mut parent = genesis_header(&params);
    parent.height = h0;
    let ancestors = vec![tb_chain::consensus::TimedHeader {
        timestamp_ms: parent.timestamp_ms,
        difficulty: parent.difficulty,
    }];
    {
        // Where the time goes: the queue scan, decoding every queued job, and the state
        // commitment of 3000 writes (what granting 1000 leases writes).
        let ov = tb_chain::state::Overlay::new(&state);
        let t = Instant::now();
        let q = tb_chain::StateRead::scan_prefix(&ov, &r::prefix(Kind::Queue));
        let scan = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (k, _) in &q {
            let mut id = [0u8; 32];
            id.copy_from_slice(&k[k.len() - 32..]);
            std::hint::black_box(r::job(&ov, &tb_primitives::Id(id)));
        }
        let decode = t.elapsed().as_secs_f64();
        let mut st2 = state.clone();
        let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = q
            .iter()
            .take(3000)
            .map(|(k, _)| (k.clone(), Some(vec![1u8; 200])))
            .collect();
        let t = Instant::now();
        st2.apply(&changes);
        std::hint::black_box(st2.root());
        let trie = t.elapsed().as_secs_f64();
        println!(
            "{{\"bench\":\"market-block-parts\",\"queue_scan_ms\":{:.2},\"decode_all_jobs_ms\":{:.2},\"writes_3000_and_root_ms\":{:.2}}}",
            scan * 1e3,
            decode * 1e3,
            trie * 1e3
        );
    }
    let mut times = Vec::new();
    let mut leases = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let b = tb_chain::build_block(
            &params,
            &mut state,
            &parent,
            &ancestors,
            [],
            parent.timestamp_ms + 1000,
            Address([2; 32]),
        );
        times.push(t.elapsed().as_secs_f64());
        leases = b.header.height; // the state is unchanged by build_block
    }
    let _ = leases;
    println!(
        "{{\"bench\":\"market-block\",\"jobs\":{jobs},\"providers\":{providers},\"lease_budget\":{budget},\"runs\":{runs},\"block_template_ms\":{:.2}}}",
        median(times) * 1e3
    );
    Ok(())
}
