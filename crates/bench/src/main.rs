//! `tb-bench`: measured figures for BENCHMARKS.md.
//!
//! ```text
//! tb-bench sig     [--n N] [--runs R]            single vs batched Ed25519 verification
//! tb-bench mempool [--n N] [--runs R]            mempool admission rate
//! tb-bench import  [--txs N] [--runs R] [--threads T]
//!                                                import of an N-transfer block: signatures,
//!                                                execution, state root and the redb commit;
//!                                                cold, and warm (its transfers admitted to
//!                                                a mempool first: signatures checked once)
//! tb-bench job-decode [--mb M] [--runs R]        decode + validate of an M-MiB job blob
//! tb-bench job-exec [--runs R] [--example NAME]   executor vs bare ops: transformer example, and at width 768 (or NAME alone)
//! tb-bench minilm --dir D [--batch B] [--runs R] MiniLM sentences/s at B × 128 tokens, trace on and off
//! tb-bench referee [--runs R]                    the referee on one matmul, 256³..2048³
//! tb-bench jobs [--runs R]                       example jobs on the CPU and (if present) CUDA
//! tb-bench fabrics [--runs R]                    matmul GFLOP/s and the transformer example on
//!                                                every fabric here (CPU, CUDA, wgpu)
//! tb-bench market [--jobs J] [--providers P]      the matcher and epoch settlement per block
//! tb-bench state-create --dir D [--accounts N] [--published-mb M] [--txs T]
//!                                                a store with N accounts and M MiB published
//! tb-bench state-import --dir D [--txs T] [--runs R] [--cache-mb C] [--blocks W]
//!                                                open, cold and warm import on that store
//! tb-bench all                                   everything with defaults
//! ```
//! Every figure is the median of `--runs` runs (default 5), printed as one
//! JSON object per line.
#![forbid(unsafe_code)]

mod job;
mod market;
mod state;
mod verify;

use std::time::Instant;
use tb_chain::mempool::{Mempool, MempoolConfig};
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{SignedTx, Transfer, TxPayload};
use tb_chain::{mine, ChainParams, State, StateRead};
use tb_primitives::{
    signing_bytes, verify_batch, verify_strict_parallel, Address, Domain, SecretKey,
};
use tb_store::ChainDb;

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN timings"));
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name} needs a positive integer")),
    }
}

fn path_arg(args: &[String], name: &str) -> Result<std::path::PathBuf, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .ok_or(format!("{name} needs a path"))
}

fn transfer(key: &SecretKey, to: Address, nonce: u64, chain_id: u64) -> SignedTx {
    SignedTx::sign(
        TxPayload::Transfer(Transfer {
            from: key.address(),
            to,
            amount_consumer: 1_000,
            amount_industrial: 0,
            fee: 1_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce,
            memo: Vec::new(),
        }),
        key,
        chain_id,
    )
}

fn bench_sig(n: usize, runs: usize) {
    let items: Vec<(Address, Vec<u8>, tb_primitives::Signature)> = (0..n)
        .map(|i| {
            let k = SecretKey::dev(&format!("sig{i}"));
            let msg = (i as u64).to_le_bytes();
            (
                k.address(),
                signing_bytes(Domain::Transaction, 1, &msg),
                k.sign(Domain::Transaction, 1, &msg),
            )
        })
        .collect();
    let refs: Vec<(Address, &[u8], tb_primitives::Signature)> = items
        .iter()
        .map(|(a, m, s)| (*a, m.as_slice(), *s))
        .collect();
    let time = |f: &dyn Fn()| {
        median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    n as f64 / t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    let single_1t = time(&|| verify_strict_parallel(&refs, 1).expect("valid"));
    let single_2t = time(&|| verify_strict_parallel(&refs, 2).expect("valid"));
    let batch_1t = time(&|| verify_batch(&items).expect("valid"));
    println!(
        "{{\"bench\":\"sig\",\"n\":{n},\"runs\":{runs},\"strict_single_per_s_1thread\":{single_1t:.0},\"strict_single_per_s_2threads\":{single_2t:.0},\"batch_per_s_1thread\":{batch_1t:.0},\"batch_over_single\":{:.2}}}",
        batch_1t / single_1t
    );
}

fn funded_state(keys: &[SecretKey]) -> State {
    let mut s = State::new();
    let changes = keys
        .iter()
        .map(|k| {
            (
                tb_chain::state::account_key(&k.address()),
                Some(tb_primitives::encode(&tb_chain::Account {
                    nonce: 0,
                    consumer: 1_000_000_000,
                    industrial: 0,
                })),
            )
        })
        .collect();
    s.apply(&changes);
    s
}

fn bench_mempool(n: usize, runs: usize) {
    let params = ChainParams::devnet();
    let senders: Vec<SecretKey> = (0..n / 10)
        .map(|i| SecretKey::dev(&format!("mp{i}")))
        .collect();
    let state = funded_state(&senders);
    let to = SecretKey::dev("sink").address();
    let txs: Vec<SignedTx> = (0..n)
        .map(|i| {
            transfer(
                &senders[i % senders.len()],
                to,
                (i / senders.len()) as u64,
                params.chain_id,
            )
        })
        .collect();
    let rates = (0..runs)
        .map(|_| {
            let mut pool = Mempool::new(
                MempoolConfig {
                    capacity_max: n,
                    bytes_max: usize::MAX,
                    per_sender_max: n,
                    ..MempoolConfig::default()
                },
                params.clone(),
            );
            let t = Instant::now();
            for tx in &txs {
                pool.admit(tx.clone(), &state, 0).expect("admitted");
            }
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "{{\"bench\":\"mempool\",\"n\":{n},\"senders\":{},\"runs\":{runs},\"admitted_per_s\":{:.0}}}",
        senders.len(),
        median(rates)
    );
}

fn bench_import(n: usize, runs: usize, threads: usize) -> Result<(), String> {
    let params = ChainParams::devnet();
    let miner = SecretKey::dev("bench-miner");
    let senders: Vec<SecretKey> = (0..n).map(|i| SecretKey::dev(&format!("s{i}"))).collect();
    let mut totals = Vec::new();
    let mut warm_totals = Vec::new();
    let mut sig_only = Vec::new();
    for _ in 0..runs {
        // The same chain twice (its blocks are deterministic): the measured block
        // imported cold (every signature checked at import) and warm (its transfers
        // admitted to a mempool first, as a node receives them before the block, so
        // import skips their checks).
        for warm in [false, true] {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let mut db = ChainDb::open(dir.path().join("bench.redb"), params.clone())
                .map_err(|e| e.to_string())?;
            db.set_verify_threads(threads);
            let seal_import =
                |db: &mut ChainDb, txs: &[SignedTx]| -> Result<(tb_chain::Block, f64), String> {
                    let now = db.tip().timestamp_ms + 1_000;
                    let mut b = db
                        .build_template(txs.iter(), now, miner.address())
                        .map_err(|e| e.to_string())?;
                    b.header = mine(&b.header, 0, u64::MAX).ok_or("no nonce")?;
                    let t = Instant::now();
                    db.import_block(&b, now).map_err(|e| e.to_string())?;
                    Ok((b, t.elapsed().as_secs_f64()))
                };
            // Fund the senders from the miner's block rewards.
            let need = n as u64 * 10_000 * 2;
            while db.state().account(&miner.address()).consumer < need {
                seal_import(&mut db, &[])?;
            }
            let fund: Vec<SignedTx> = senders
                .iter()
                .enumerate()
                .map(|(i, s)| transfer(&miner, s.address(), i as u64, params.chain_id))
                .map(|mut t| {
                    if let TxPayload::Transfer(x) = &mut t.payload {
                        x.amount_consumer = 10_000;
                    }
                    SignedTx::sign(t.payload, &miner, params.chain_id)
                })
                .collect();
            let (b, _) = seal_import(&mut db, &fund)?;
            if b.txs.len() != n {
                return Err(format!(
                    "funding block holds {} of {n} transfers",
                    b.txs.len()
                ));
            }
            // The measured block: n transfers from n senders to n fresh recipients.
            let txs: Vec<SignedTx> = senders
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    transfer(
                        s,
                        SecretKey::dev(&format!("r{i}")).address(),
                        0,
                        params.chain_id,
                    )
                })
                .collect();
            if warm {
                let cfg = tb_chain::mempool::MempoolConfig {
                    capacity_max: n,
                    fee_floor_per_byte: 0,
                    ..Default::default()
                };
                let mut pool = tb_chain::mempool::Mempool::new(cfg, params.clone());
                let now = db.tip().timestamp_ms;
                for tx in &txs {
                    pool.admit(tx.clone(), db.state(), now)
                        .map_err(|e| format!("admission: {e}"))?;
                }
                db.set_sig_cache(pool.sig_cache());
            }
            let (b, secs) = seal_import(&mut db, &txs)?;
            if b.txs.len() != n {
                return Err(format!(
                    "measured block holds {} of {n} transfers",
                    b.txs.len()
                ));
            }
            if warm {
                warm_totals.push(secs);
                continue;
            }
            totals.push(secs);
            // Breakdown on the same data: signatures alone.
            let msgs: Vec<Vec<u8>> = b
                .txs
                .iter()
                .map(|t| {
                    signing_bytes(
                        Domain::Transaction,
                        params.chain_id,
                        &tb_primitives::encode(&t.payload),
                    )
                })
                .collect();
            let items: Vec<(Address, &[u8], tb_primitives::Signature)> = b
                .txs
                .iter()
                .zip(&msgs)
                .map(|(t, m)| (t.payload.from(), m.as_slice(), t.signature))
                .collect();
            let t = Instant::now();
            verify_strict_parallel(&items, threads).map_err(|i| format!("bad sig {i}"))?;
            sig_only.push(t.elapsed().as_secs_f64());
        }
    }
    let total = median(totals);
    let warm = median(warm_totals);
    println!(
        "{{\"bench\":\"import\",\"txs\":{n},\"runs\":{runs},\"threads\":{threads},\"import_ms\":{:.1},\"transfers_per_s\":{:.0},\"sig_check_ms\":{:.1},\"warm_import_ms\":{:.1},\"warm_transfers_per_s\":{:.0}}}",
        total * 1e3,
        n as f64 / total,
        median(sig_only) * 1e3,
        warm * 1e3,
        n as f64 / warm
    );
    Ok(())
}

fn main() {
    blocktorch_wgpu::quiet_device_select_layer();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("all");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = (|| -> Result<(), String> {
        let runs = arg(&args, "--runs", 5)?.max(1);
        match cmd {
            "sig" => bench_sig(arg(&args, "--n", 4_096)?.max(1), runs),
            "mempool" => bench_mempool(arg(&args, "--n", 50_000)?.max(10), runs),
            "import" => bench_import(
                arg(&args, "--txs", 10_000)?.max(1),
                runs,
                arg(&args, "--threads", threads)?.max(1),
            )?,
            "job-decode" => job::bench_decode(arg(&args, "--mb", 100)?.max(1), runs)?,
            "job-exec" => match args.iter().position(|a| a == "--example") {
                Some(i) => job::bench_exec(
                    args.get(i + 1)
                        .ok_or("--example needs a name (an example job or transformer-768)")?,
                    runs,
                )?,
                None => {
                    job::bench_exec("transformer", runs)?;
                    job::bench_exec("transformer-768", runs)?;
                }
            },
            "referee" => job::bench_referee(&[256, 512, 1024, 2048], runs)?,
            "minilm" => {
                let dir = args
                    .iter()
                    .position(|a| a == "--dir")
                    .and_then(|i| args.get(i + 1))
                    .ok_or("minilm needs --dir MODEL_DIR (config.json, model.safetensors, tokenizer.json)")?;
                job::bench_minilm(dir, arg(&args, "--batch", 1)?.max(1), runs)?
            }
            "jobs" => job::bench_jobs(runs)?,
            "fabrics" => job::bench_fabrics(runs)?,
            "state-create" => state::create(
                &path_arg(&args, "--dir")?,
                arg(&args, "--accounts", 1_000_000)?,
                arg(&args, "--published-mb", 0)? as u64,
                arg(&args, "--txs", 10_000)?.max(1),
            )?,
            "state-import" | "state-build" | "state-apply" => {
                let t = state::Target {
                    dir: path_arg(&args, "--dir")?,
                    txs: arg(&args, "--txs", 10_000)?.max(1),
                    cache_mb: arg(&args, "--cache-mb", 256)?.max(1) as u64,
                };
                let warm = arg(&args, "--blocks", 8)?;
                match cmd {
                    "state-import" => state::import(&t, runs, warm)?,
                    "state-build" => state::build_child(&t, &path_arg(&args, "--out")?)?,
                    _ => state::apply_child(&t, &path_arg(&args, "--block")?, warm)?,
                }
            }
            "verify" => {
                verify::bench_receipt_checks(&[64, 1_024, 16_384, 65_536], arg(&args, "--samples", 2_000)?.max(10))?;
                for example in ["mlp", "transformer", "matmul-chain", "train-step", "transformer-768"] {
                    verify::bench_referee_ops(example, runs)?;
                }
            }
            "market" => {
                let (j, p) = (
                    arg(&args, "--jobs", 10_000)?.max(1),
                    arg(&args, "--providers", 1_000)?.max(1),
                );
                market::bench_market(j, p, runs)?;
                for budget in [1_000, 250] {
                    market::bench_market_block(j, p, budget, runs)?;
                }
            }
            "all" => {
                bench_sig(4_096, runs);
                bench_mempool(50_000, runs);
                bench_import(10_000, runs, threads)?;
                job::bench_decode(100, runs)?;
                job::bench_exec("transformer", runs)?;
                job::bench_exec("transformer-768", runs)?;
                job::bench_referee(&[256, 512, 1024, 2048], runs)?;
                market::bench_market(10_000, 1_000, runs)?;
                market::bench_market_block(10_000, 1_000, 1_000, runs)?;
                verify::bench_receipt_checks(&[64, 1_024, 16_384, 65_536], 2_000)?;
                verify::bench_referee_ops("transformer", runs)?;
            }
            other => {
                return Err(format!(
                    "unknown benchmark {other:?}: use sig, mempool, import, state-create, state-import, job-decode, job-exec, referee, jobs, fabrics, market, verify or all"
                ))
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("tb-bench: {e}");
        std::process::exit(2);
    }
}
