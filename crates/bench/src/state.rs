//! The state on disk at scale: a store created with `--accounts N` accounts and
//! `--published-mb M` MiB of published chunks in its genesis state, then opened and
//! extended by fresh processes, so every figure starts from a cold state cache.
//!
//! ```text
//! tb-bench state-create --dir D [--accounts N] [--published-mb M] [--txs T]
//! tb-bench state-import --dir D [--txs T] [--runs R] [--cache-mb C] [--blocks W]
//! ```
//! `state-import` runs, per run, two child processes: one builds and seals a block of
//! `T` transfers (to fresh accounts) on the tip without importing it; one opens the
//! store (timing the open and measuring its memory), imports that block with a cold
//! cache, builds and imports `W` more (a miner's path: the template's execution warms
//! the cache, as in `tb-bench import`), and flushes the state. The figure to compare
//! is `per_block_ms`: every import and the flush, over the blocks imported.

use crate::median;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tb_chain::market::records::{key, Kind};
use tb_chain::tx::SignedTx;
use tb_chain::{mine, Block, ChainParams, StateRead};
use tb_primitives::{decode, encode, Address, SecretKey};
use tb_store::{ChainDb, StoreConfig};

/// Entries per batch written while creating the genesis state.
const BATCH_ENTRIES: usize = 250_000;
/// Chunks per published object.
const OBJECT_CHUNKS: u64 = 16;

fn params() -> ChainParams {
    ChainParams::devnet()
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("chain.redb")
}

fn sender(i: usize) -> SecretKey {
    SecretKey::dev(&format!("state-s{i}"))
}

fn account(consumer: u64) -> Vec<u8> {
    encode(&tb_chain::Account {
        nonce: 0,
        consumer,
        industrial: 0,
    })
}

/// A pseudo-random 32 bytes, the `i`th of stream `tag`.
fn h32(tag: &str, i: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(i.to_le_bytes());
    h.finalize().into()
}

/// Fills `out` with cheap pseudo-random bytes from `seed` (xorshift64*).
fn fill(out: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for c in out.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

/// Resident and peak memory of this process, MiB (Linux; 0 elsewhere).
pub(crate) fn rss_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bytes this process has written through syscalls so far (Linux `wchar`).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Creates the store: `accounts` random accounts plus `senders` funded ones, then
/// `published_mb` MiB of published chunks, written in key order batch by batch.
pub fn create(
    dir: &Path,
    accounts: usize,
    published_mb: u64,
    senders: usize,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let p = params();
    let t = Instant::now();
    let mut addrs: Vec<[u8; 32]> = (0..accounts as u64).map(|i| h32("acct", i)).collect();
    let funded: Vec<[u8; 32]> = (0..senders).map(|i| sender(i).address().0).collect();
    addrs.extend_from_slice(&funded);
    addrs.sort_unstable();
    addrs.dedup();
    let funded: std::collections::HashSet<[u8; 32]> = funded.into_iter().collect();
    let n_accounts = addrs.len();
    let account_batches = addrs.chunks(BATCH_ENTRIES).map(|c| {
        c.iter()
            .map(|a| {
                let k = tb_chain::state::account_key(&Address(*a));
                let v = account(if funded.contains(a) {
                    1 << 40
                } else {
                    (a[0] as u64 + 1) * 1_000
                });
                (k, v)
            })
            .collect::<Vec<_>>()
    });
    // Published chunks: distinct pseudo-random bytes, 16 chunks an object, objects in
    // key order.
    let chunk = p.market.blob_chunk_bytes;
    let chunks_total = (published_mb << 20).div_ceil(chunk);
    let mut objects: Vec<[u8; 32]> = (0..chunks_total.div_ceil(OBJECT_CHUNKS))
        .map(|i| h32("object", i))
        .collect();
    objects.sort_unstable();
    let poster = sender(0).address();
    let per_batch = ((256u64 << 20) / chunk).max(1) as usize;
    let chunk_keys: Vec<(usize, u64)> = (0..chunks_total)
        .map(|c| ((c / OBJECT_CHUNKS) as usize, c % OBJECT_CHUNKS))
        .collect();
    let chunk_batches = chunk_keys.chunks(per_batch).map(|c| {
        c.iter()
            .map(|&(o, i)| {
                let mut bytes = vec![0u8; chunk as usize];
                fill(&mut bytes, (o as u64) << 8 | i);
                let k = key(
                    Kind::Chunk,
                    &[&objects[o], &poster.0, &(i as u32).to_be_bytes()],
                );
                (k, encode(&bytes))
            })
            .collect::<Vec<_>>()
    });
    let db = ChainDb::create_with_genesis_state(
        store_path(dir),
        p,
        StoreConfig::default(),
        account_batches.chain(chunk_batches),
    )
    .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let root = db.tip().state_root;
    drop(db);
    println!(
        "{}",
        serde_json::json!({
            "bench": "state-create",
            "accounts": n_accounts,
            "published_mb": published_mb,
            "chunks": chunks_total,
            "create_s": r1(secs),
            "store_mb": (dir_bytes(dir) as f64 / (1u64 << 20) as f64).round(),
            "peak_rss_mb": rss_mib().1.round(),
            "root": root.to_hex(),
        })
    );
    Ok(())
}

/// A block of `txs` transfers from the funded senders (their next nonces) to fresh
/// accounts (named by the block's height, so never reused), sealed on the tip.
fn build(db: &mut ChainDb, txs: usize) -> Result<Block, String> {
    let chain_id = db.params().chain_id;
    let salt = db.tip().height + 1;
    let list: Vec<SignedTx> = (0..txs)
        .map(|i| {
            let k = sender(i);
            let nonce = db.state().account(&k.address()).nonce;
            let to = Address(h32("fresh", salt << 32 | i as u64));
            crate::transfer(&k, to, nonce, chain_id)
        })
        .collect();
    let now = db.tip().timestamp_ms + 1_000;
    let mut b = db
        .build_template(list.iter(), now, sender(0).address())
        .map_err(|e| e.to_string())?;
    if b.txs.len() != txs {
        return Err(format!(
            "the block holds {} of {txs} transfers",
            b.txs.len()
        ));
    }
    b.header = mine(&b.header, 0, u64::MAX).ok_or("no nonce")?;
    Ok(b)
}

/// The store a benchmark runs on, and the block size and cache it runs with.
pub struct Target {
    pub dir: PathBuf,
    pub txs: usize,
    pub cache_mb: u64,
}

impl Target {
    fn open(&self) -> Result<ChainDb, String> {
        let path = store_path(&self.dir);
        if !path.exists() {
            return Err(format!(
                "no store at {}: make one with `tb-bench state-create --dir {}`",
                path.display(),
                self.dir.display()
            ));
        }
        let config = StoreConfig {
            cache_bytes: self.cache_mb << 20,
        };
        ChainDb::open_with(path, params(), config).map_err(|e| e.to_string())
    }

    /// A child process's command line: `cmd`, this target, then `extra`.
    fn child(&self, cmd: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
        let mut args = vec![
            cmd.to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--txs".into(),
            self.txs.to_string(),
            "--cache-mb".into(),
            self.cache_mb.to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .args(&args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        match text.trim() {
            "" => Ok(serde_json::Value::Null),
            line => {
                serde_json::from_str(line).map_err(|e| format!("{args:?} printed {line:?}: {e}"))
            }
        }
    }
}

/// Rounded to a tenth, for printing.
fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Child: builds the next block and writes it to `out`.
pub fn build_child(t: &Target, out: &Path) -> Result<(), String> {
    let mut db = t.open()?;
    let b = build(&mut db, t.txs)?;
    std::fs::write(out, encode(&b)).map_err(|e| e.to_string())
}

/// Child: opens the store, imports the block in `block` with a cold cache, then
/// builds and imports `warm` more (a miner's path), then flushes the state; prints
/// one JSON line. `per_block_ms` is everything (imports and the flush) over the
/// blocks imported; `written_mb_per_block` likewise.
pub fn apply_child(t: &Target, block: &Path, warm: usize) -> Result<(), String> {
    let (rss0, _) = rss_mib();
    let clock = Instant::now();
    let mut db = t.open()?;
    let open_ms = clock.elapsed().as_secs_f64() * 1e3;
    let (rss_open, _) = rss_mib();
    let bytes = std::fs::read(block).map_err(|e| e.to_string())?;
    let b: Block = decode(&bytes, usize::MAX).map_err(|e| e.to_string())?;
    let (clock, w0) = (Instant::now(), written_bytes());
    db.import_block(&b, b.header.timestamp_ms)
        .map_err(|e| e.to_string())?;
    let cold_ms = clock.elapsed().as_secs_f64() * 1e3;
    let mut total_ms = cold_ms;
    let (mut templates, mut imports, mut flushes) = (Vec::new(), Vec::new(), 0);
    let mut held_mb: f64 = 0.0;
    for _ in 0..warm {
        let clock = Instant::now();
        let b = build(&mut db, t.txs)?;
        templates.push(clock.elapsed().as_secs_f64() * 1e3);
        let before = db.unflushed_blocks();
        let clock = Instant::now();
        db.import_block(&b, b.header.timestamp_ms)
            .map_err(|e| e.to_string())?;
        let ms = clock.elapsed().as_secs_f64() * 1e3;
        held_mb = held_mb.max(db.state().held_bytes() as f64 / (1u64 << 20) as f64);
        if db.unflushed_blocks() <= before {
            flushes += 1;
        }
        imports.push(ms);
        total_ms += ms;
    }
    let clock = Instant::now();
    db.flush().map_err(|e| e.to_string())?;
    let flush_ms = clock.elapsed().as_secs_f64() * 1e3;
    total_ms += flush_ms;
    let blocks = (warm + 1) as f64;
    let written_mb = (written_bytes() - w0) as f64 / (1u64 << 20) as f64;
    let (rss_end, peak) = rss_mib();
    let c = db.cache_usage();
    let median_or_0 = |v: Vec<f64>| if v.is_empty() { 0.0 } else { median(v) };
    println!(
        "{}",
        serde_json::json!({
            "open_ms": r1(open_ms),
            "rss_open_mb": r1(rss_open - rss0),
            "import_cold_ms": r1(cold_ms),
            "template_ms": r1(median_or_0(templates)),
            "import_warm_ms": r1(median_or_0(imports)),
            "flushes_in_imports": flushes,
            "held_mb_max": held_mb.round(),
            "final_flush_ms": r1(flush_ms),
            "per_block_ms": r1(total_ms / blocks),
            "written_mb_per_block": r1(written_mb / blocks),
            "rss_end_mb": rss_end.round(),
            "peak_rss_mb": peak.round(),
            "cache_mb": r1(c.bytes as f64 / (1u64 << 20) as f64),
            "misses": c.misses,
            "hits": c.hits,
        })
    );
    Ok(())
}

/// Parent: `runs` rounds of build → cold import → `warm` imports → flush, medians.
pub fn import(t: &Target, runs: usize, warm: usize) -> Result<(), String> {
    let block = t.dir.join("next-block.bin");
    let b = block.display().to_string();
    let wm = warm.to_string();
    let mut rows = Vec::new();
    for run in 0..runs {
        t.child("state-build", &["--out", &b])?;
        let row = t.child("state-apply", &["--block", &b, "--blocks", &wm])?;
        eprintln!("run {run}: {row}");
        rows.push(row);
    }
    let _ = std::fs::remove_file(&block);
    let med = |name: &str| -> Result<f64, String> {
        let v = rows
            .iter()
            .map(|r| r[name].as_f64().ok_or(format!("no {name} in {r}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(median(v))
    };
    let per_block = med("per_block_ms")?;
    println!(
        "{}",
        serde_json::json!({
            "bench": "state-import",
            "txs": t.txs,
            "runs": runs,
            "blocks_per_run": warm + 1,
            "cache_mb": t.cache_mb,
            "open_ms": med("open_ms")?,
            "rss_after_open_mb": med("rss_open_mb")?,
            "import_cold_ms": med("import_cold_ms")?,
            "import_warm_ms": med("import_warm_ms")?,
            "per_block_ms": per_block,
            "transfers_per_s": (t.txs as f64 / per_block * 1e3).round(),
            "written_mb_per_block": med("written_mb_per_block")?,
            "peak_rss_mb": med("peak_rss_mb")?,
            "store_mb": (dir_bytes(&t.dir) as f64 / (1u64 << 20) as f64).round(),
        })
    );
    Ok(())
}
