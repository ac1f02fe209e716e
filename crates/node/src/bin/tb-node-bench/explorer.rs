//! `tb-node-bench explorer [--blocks N] [--jobs J] [--samples S]`: the explorer's pages
//! on a large store. A chain of N blocks (one signed transfer each, three registered
//! providers, J jobs submitted 100 a block, half with deadlines that pass during the
//! build) is built directly in a store; an in-process node serves it over the real
//! jsonrpsee server, and each explorer page is loaded S times with exactly the
//! JSON-RPC calls and batches `crates/node/explorer/app.js` sends for it (one after
//! another, as the browser does), at varied pages, heights and ids: the time of a
//! whole page's answers, p50/p99/max.

use super::{quantile, Client};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tb_chain::builders;
use tb_chain::tx::{FeeSelector, ProviderCaps};
use tb_chain::{ChainParams, SignedTx, Transfer, TxPayload};
use tb_primitives::{Id, SecretKey, MICRO_PER_TOKEN};
use the_block::node::Node;

/// Jobs submitted per block while the build submits them.
const JOBS_PER_BLOCK: usize = 100;
/// The explorer's page size (`PAGE` in app.js).
const PAGE: u64 = 25;

/// A small deterministic generator (xorshift64*) for the pages, heights and ids asked.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// What the build wrote that the pages ask about.
struct Built {
    blocks: u64,
    transfers: Vec<Id>,
    jobs: Vec<Id>,
    providers: Vec<String>,
    accounts: Vec<String>,
}

fn build(dir: &std::path::Path, blocks: u64, jobs: usize) -> Result<Built, String> {
    let params = ChainParams::devnet();
    let market = params.market.clone();
    let chain_id = params.chain_id;
    let miner = SecretKey::dev("explorer-miner");
    let providers: Vec<SecretKey> = (0..3)
        .map(|k| SecretKey::dev(&format!("explorer-provider-{k}")))
        .collect();
    let payees: Vec<SecretKey> = (0..64)
        .map(|k| SecretKey::dev(&format!("explorer-payee-{k}")))
        .collect();
    let floor = tb_chain::mempool::MempoolConfig::default().fee_floor_per_byte;
    let job = tb_job::examples::build_example("mlp").map_err(|e| e.to_string())?;
    let blob = job.encode().map_err(|e| e.to_string())?;
    // The jobs start once the miner's rewards cover every job's escrow (twice over:
    // fees). The providers are funded and registered at the end: while a provider
    // has free leases, every block's matcher decodes the whole queue, and these jobs
    // are never matched (a cost of the chain's rules this build need not pay for
    // 100,000 blocks).
    let escrow = MICRO_PER_TOKEN / 10;
    let reward = params.emission_industrial.initial_reward_micro.max(1);
    let fund = market.min_stake_micro + MICRO_PER_TOKEN;
    let first_job_block = 3 + (2 * jobs as u64 * escrow).div_ceil(reward);
    let fund_at = blocks.saturating_sub(2);
    let register_at = fund_at + 1;
    let need = first_job_block + (jobs as u64).div_ceil(JOBS_PER_BLOCK as u64) + 3;
    if blocks < need {
        return Err(format!("{jobs} jobs need at least {need} blocks"));
    }
    let mut db = tb_store::ChainDb::open(dir.join("chain.redb"), params.clone())
        .map_err(|e| e.to_string())?;
    let step = params.block_time_target_ms;
    let start = the_block::node::now_ms() - (blocks + 1) * step;
    let mut nonces = std::collections::BTreeMap::new();
    let mut sign = |p: TxPayload, k: &SecretKey| {
        let n = nonces.entry(k.address()).or_insert(0u64);
        let mut p = p;
        *p.nonce_mut() = *n;
        *n += 1;
        SignedTx::sign_paying_floor(p, k, chain_id, floor)
    };
    let mut out = Built {
        blocks,
        transfers: Vec::new(),
        jobs: Vec::new(),
        providers: providers.iter().map(|k| k.address().to_string()).collect(),
        accounts: std::iter::once(&miner)
            .chain(&payees)
            .map(|k| k.address().to_string())
            .collect(),
    };
    let t0 = Instant::now();
    let mut submitted = 0usize;
    for i in 1..=blocks {
        let mut batch = Vec::new();
        let transfer = |to: &SecretKey, consumer: u64, industrial: u64| {
            TxPayload::Transfer(Transfer {
                from: miner.address(),
                to: to.address(),
                amount_consumer: consumer,
                amount_industrial: industrial,
                fee: 0,
                fee_selector: FeeSelector::Consumer.into(),
                nonce: 0,
                memo: vec![],
            })
        };
        match i {
            1 => {}
            _ if i == fund_at => {
                for p in &providers {
                    batch.push(sign(transfer(p, fund, fund), &miner));
                }
                for p in
                    builders::publish_blob(&market, miner.address(), &blob, FeeSelector::Consumer)
                {
                    batch.push(sign(p, &miner));
                }
            }
            _ if i == register_at => {
                for p in &providers {
                    // Model class 2: registered and staked, never matched to the jobs
                    // (model class 0), so the jobs stay queued or expire.
                    let caps = ProviderCaps {
                        models: vec![2],
                        ..builders::cpu_caps(4)
                    };
                    batch.push(sign(
                        builders::register_provider(p.address(), caps, FeeSelector::Consumer),
                        p,
                    ));
                    batch.push(sign(
                        builders::stake(p.address(), market.min_stake_micro, FeeSelector::Consumer),
                        p,
                    ));
                }
            }
            _ => {
                let tx = sign(transfer(&payees[i as usize % payees.len()], 1, 0), &miner);
                if i % 97 == 0 {
                    out.transfers.push(tx.id());
                }
                batch.push(tx);
            }
        }
        if i >= first_job_block && submitted < jobs {
            let n = JOBS_PER_BLOCK.min(jobs - submitted);
            for k in 0..n {
                // Half pass their deadline during the build; half stay queued.
                let deadline = if k % 2 == 0 {
                    i + 200
                } else {
                    i + market.deadline_blocks_max - 1
                };
                let spec = tb_chain::tx::JobSpec::for_job(&blob, &job, escrow, 1, deadline)
                    .map_err(|e| e.to_string())?;
                let tx = sign(
                    TxPayload::SubmitJob(tb_chain::tx::SubmitJob {
                        from: miner.address(),
                        spec,
                        fee: 0,
                        fee_selector: FeeSelector::Industrial.into(),
                        nonce: 0,
                    }),
                    &miner,
                );
                out.jobs.push(tx.id());
                batch.push(tx);
            }
            submitted += n;
        }
        let mut b = db
            .build_template(batch.iter(), start + i * step, miner.address())
            .map_err(|e| e.to_string())?;
        if b.txs.len() != batch.len() {
            return Err(format!(
                "block {i}: {} of {} transactions applied",
                b.txs.len(),
                batch.len()
            ));
        }
        b.header = tb_chain::mine(&b.header, 0, u64::MAX).ok_or("no nonce")?;
        db.import_block(&b, start + i * step)
            .map_err(|e| e.to_string())?;
        if i % 10_000 == 0 {
            eprintln!(
                "explorer: built {i} of {blocks} blocks ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "explorer: built {blocks} blocks, {} jobs, {} transfers in {:.0} s",
        out.jobs.len(),
        blocks.saturating_sub(3),
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// One explorer page: its name and how to load it once (the calls app.js makes).
type Page = (
    &'static str,
    fn(&mut Client, &mut Rng, &Built) -> Result<(), String>,
);

fn ok(v: Vec<Value>) -> Result<(), String> {
    if v.iter().any(Value::is_null) {
        return Err("a call answered null".into());
    }
    Ok(())
}

const PAGES: &[Page] = &[
    ("overview", |c, _, _| {
        let first = c.batch(&[
            ("chain.info", json!([])),
            ("chain.head", json!([])),
            ("aicf.getBalance", json!([])),
            ("aicf.listProviders", json!([])),
            ("net.info", json!([])),
        ])?;
        let tip = first[1]["height"].as_u64().ok_or("height")?;
        let calls: Vec<_> = (0..10)
            .map(|k| ("chain.getBlock", json!([tip - k])))
            .collect();
        ok(c.batch(&calls)?)
    }),
    ("blocks (a page of 25)", |c, r, b| {
        let tip = c.call("chain.head", json!([]))?["height"]
            .as_u64()
            .ok_or("height")?;
        let page = 1 + r.below(b.blocks / PAGE);
        let top = tip - (page - 1) * PAGE;
        let calls: Vec<_> = (0..PAGE.min(top + 1))
            .map(|k| ("chain.getBlock", json!([top - k])))
            .collect();
        ok(c.batch(&calls)?)
    }),
    ("block", |c, r, b| {
        c.call("chain.getBlock", json!([1 + r.below(b.blocks)]))
            .map(drop)
    }),
    ("transaction", |c, r, b| {
        c.call("chain.getTx", json!([r.pick(&b.transfers).to_hex()]))
            .map(drop)
    }),
    ("account", |c, r, b| {
        c.call("balance", json!([r.pick(&b.accounts)])).map(drop)
    }),
    ("jobs (a page of 25)", |c, r, b| {
        let offset = r.below(b.jobs.len() as u64 / PAGE) * PAGE;
        let v = c.call("compute.listJobs", json!([null, PAGE, offset]))?;
        (v["jobs"].as_array().map_or(0, Vec::len) as u64 == PAGE)
            .then_some(())
            .ok_or_else(|| format!("a short page at {offset}: {v}"))
    }),
    ("jobs by state (Queued)", |c, r, b| {
        let offset = r.below(b.jobs.len() as u64 / 2 / PAGE) * PAGE;
        c.call("compute.listJobs", json!(["Queued", PAGE, offset]))
            .map(drop)
    }),
    ("job", |c, r, b| {
        let id = r.pick(&b.jobs).to_hex();
        c.call("compute.getJob", json!([id]))?;
        ok(c.batch(&[
            ("compute.getReceipt", json!([id])),
            ("compute.getResult", json!([id])),
        ])?)
    }),
    ("providers", |c, _, _| {
        c.call("aicf.listProviders", json!([])).map(drop)
    }),
    ("provider", |c, r, b| {
        c.call("aicf.getProvider", json!([r.pick(&b.providers)]))
            .map(drop)
    }),
    ("epochs (a page of 25)", |c, r, _| {
        let info = c.call("chain.info", json!([]))?;
        let per = info["market"]["epoch_blocks"]
            .as_u64()
            .ok_or("epoch_blocks")?;
        let current = info["height"].as_u64().ok_or("height")? / per.max(1);
        let page = 1 + r.below(current / PAGE);
        let top = current - 1 - (page - 1) * PAGE;
        let calls: Vec<_> = (0..PAGE.min(top + 1))
            .map(|k| ("aicf.payouts", json!([top - k])))
            .collect();
        ok(c.batch(&calls)?)
    }),
    ("epoch", |c, r, b| {
        c.call("aicf.payouts", json!([r.below(b.blocks / 50)]))
            .map(drop)
    }),
    ("governance", |c, _, _| {
        c.call("governor.status", json!([])).map(drop)
    }),
    ("search (a hash)", |c, r, b| {
        let id = r.pick(&b.transfers).to_hex();
        // Two of the three answer "not found": the batch carries errors, by design.
        let body = c.post(
            &json!([
                {"jsonrpc": "2.0", "id": 0, "method": "compute.getJob", "params": [id]},
                {"jsonrpc": "2.0", "id": 1, "method": "chain.getTx", "params": [id]},
                {"jsonrpc": "2.0", "id": 2, "method": "chain.getBlock", "params": [id]},
            ])
            .to_string(),
        )?;
        (body.as_array().map_or(0, Vec::len) == 3)
            .then_some(())
            .ok_or_else(|| format!("search answered {body}"))
    }),
];

pub fn explorer(blocks: u64, jobs: usize, samples: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let built = build(dir.path(), blocks, jobs)?;
    let t_open = Instant::now();
    let node = Node::open(dir.path(), ChainParams::devnet(), None)?;
    println!(
        "explorer: node opened the store in {:.2} s",
        t_open.elapsed().as_secs_f64()
    );
    let (_rt, addr, handle) = super::serve_rpc(&node)?;
    let mut c = Client::connect(addr)?;
    let total = c.call("compute.listJobs", json!([null, 1]))?["total"].clone();
    let queued = c.call("compute.listJobs", json!(["Queued", 1]))?["total"].clone();
    println!(
        "explorer: {} cores; tip {}; {total} jobs ({queued} queued); {samples} loads of each page, one client",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        c.call("chain.head", json!([]))?["height"]
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut worst = (0.0f64, "");
    for (name, load) in PAGES {
        let mut lat: Vec<Duration> = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            load(&mut c, &mut rng, &built).map_err(|e| format!("{name}: {e}"))?;
            lat.push(t.elapsed());
        }
        let p99 = quantile(&mut lat, 0.99);
        println!(
            "explorer: {name:<24} p50 {:>7.2} ms  p99 {p99:>7.2} ms  max {:>7.2} ms",
            quantile(&mut lat, 0.5),
            lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        );
        if p99 > worst.0 {
            worst = (p99, name);
        }
    }
    println!(
        "explorer: slowest page at p99: {} ({:.2} ms)",
        worst.1, worst.0
    );
    let _ = handle.stop();
    node.shutdown();
    Ok(())
}
