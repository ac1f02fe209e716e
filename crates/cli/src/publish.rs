//! Publishing an object on chain (`PublishBlob` chunks) at the pace the chain takes
//! it, resuming where an earlier attempt stopped: `model publish` and `compute submit`.
//!
//! A large object used to fail: its chunks filled the mempool's byte limit back to
//! back, and a retry re-sent chunks already published, which the miner refused with
//! every later transaction of the sender. Now:
//!
//! 1. the sender's transactions still pending from an interrupted run are waited for
//!    (they land, or are dropped), so the chain shows everything sent before;
//! 2. `compute.blobStatus` lists the chunks of the sender's copy already on chain; only
//!    the others are sent (and re-sending one is harmless: publication is idempotent);
//! 3. at most [`IN_FLIGHT_BYTES_MAX`] and [`IN_FLIGHT_TXS_MAX`] are unconfirmed at once
//!    (below a block's 8 MiB and the mempool's per-sender and byte limits), the next
//!    sent as the account's nonce shows earlier ones included;
//! 4. chunks whose transactions vanished (neither pending nor included after
//!    [`STALL_SECS`]) are found again from the chain and re-sent with fresh nonces;
//! 5. progress goes to stderr: a bar on a terminal, else a line per tenth.

use crate::rpc_client::{hid, AccountClient, ChainClient, Client, ComputeClient, Reply as _};
use crate::wallet::Signer;
use crate::wallet::Via;
use crate::CliError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};
use tb_chain::market::objects::blob_fee_min;
use tb_chain::market::MarketParams;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::PublishBlob;
use tb_chain::{ChainParams, TxPayload};
use tb_job::format::JOB_BLOB_BYTES_MAX;

/// Most chunk bytes sent and not yet included (a block holds 8 MiB; the mempool 16 MiB
/// from every sender).
pub const IN_FLIGHT_BYTES_MAX: u64 = 6 * 1024 * 1024;
/// Most chunk transactions sent and not yet included (the mempool keeps 64 per sender).
pub const IN_FLIGHT_TXS_MAX: usize = 32;
/// Time between two polls of the account's nonce.
pub const POLL_MS: u64 = 250;
/// Seconds without progress after which the in-flight chunks are looked up again.
pub const STALL_SECS: u64 = 60;
/// Seconds to wait, at the start, for the sender's pending transactions to land.
pub const PENDING_WAIT_SECS: u64 = 300;
/// Bytes a chunk transaction takes beyond its chunk (fields and signature), for the
/// fee estimate.
pub const CHUNK_TX_OVERHEAD_BYTES: u64 = 256;

/// What a publication did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The object's SHA-256, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Chunks it takes.
    pub chunks: u32,
    /// Chunk transactions this run sent (re-sends included).
    pub sent: u32,
    /// Chunks of the sender's copy found on chain at the start and skipped.
    pub skipped: u32,
    /// The object was available before this run (nothing sent).
    pub already: bool,
    /// When the object expires unless something pins it.
    pub expires: Option<u64>,
}

impl Published {
    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({"sha256": self.sha256, "bytes": self.bytes, "chunks": self.chunks,
               "chunks_sent": self.sent, "chunks_skipped": self.skipped,
               "already_published": self.already, "expires": self.expires})
    }
}

/// The market parameters `publish_payloads` reads, from `chain.info`: the devnet's,
/// with the node's chunk size and blob fee.
pub fn market_params(chain: &Value) -> Result<MarketParams, CliError> {
    let m = chain.field("market")?;
    let mut p = ChainParams::devnet().market;
    p.blob_chunk_bytes = m.u64_at("blob_chunk_bytes")?;
    p.blob_fee_per_kib_micro = m.u64_at("blob_fee_per_kib_micro")?;
    p.blob_retention_blocks = m.u64_at("blob_retention_blocks")?.max(1);
    if p.blob_chunk_bytes == 0 || p.blob_chunk_bytes > JOB_BLOB_BYTES_MAX as u64 {
        return Err(CliError::fail(format!(
            "the node reports a blob chunk size of {} bytes",
            p.blob_chunk_bytes
        )));
    }
    Ok(p)
}

fn status(client: &Client, sha: &str, poster: &str) -> Result<Value, CliError> {
    let sha = hid(sha)?;
    let poster = Some(poster.to_string());
    client.get("compute.blobStatus", |c| {
        ComputeClient::blob_status(c, sha, poster)
    })
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Progress on stderr: a bar on a terminal, else a line at each tenth.
struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
    shown_tenth: u64,
}

impl Progress {
    fn new(what: &str, total: u64, done: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(st) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                b.set_style(st.progress_chars("=> "));
            }
            b.set_message(what.to_string());
            b.set_position(done);
            b
        });
        Progress {
            bar,
            what: what.to_string(),
            total,
            shown_tenth: if quiet { u64::MAX } else { 0 },
        }
    }

    fn set(&mut self, done: u64, chunks_done: u32, chunks: u32) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let tenth = done * 10 / self.total.max(1);
        if self.shown_tenth != u64::MAX && tenth > self.shown_tenth {
            self.shown_tenth = tenth;
            eprintln!(
                "tb-cli: {}: {chunks_done}/{chunks} chunks on chain ({} of {})",
                self.what,
                mib(done),
                mib(self.total)
            );
        }
    }

    fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("tb-cli: {msg}")),
            None if self.shown_tenth != u64::MAX => eprintln!("tb-cli: {msg}"),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Waits until the signer's account has no pending transactions (an interrupted run's
/// chunks land or are dropped), so the chain shows all it will of earlier attempts.
fn settle_pending(s: &mut Signer<'_>, quiet: bool) -> Result<(), CliError> {
    let t0 = Instant::now();
    let mut said = false;
    loop {
        let acc = s.client.get("balance", |c| {
            AccountClient::balance(c, s.address().to_string())
        })?;
        let (nonce, next) = (acc.nonce, acc.next_nonce);
        if next <= nonce {
            s.refresh_nonce()?;
            return Ok(());
        }
        if !said && !quiet {
            eprintln!(
                "tb-cli: waiting for {} pending transaction(s) of {} to land first",
                next - nonce,
                s.address()
            );
            said = true;
        }
        if t0.elapsed() > Duration::from_secs(PENDING_WAIT_SECS) {
            return Err(CliError::fail(format!(
                "{} still has {} pending transaction(s) after {PENDING_WAIT_SECS} s; \
                 try again once they land",
                s.address(),
                next - nonce
            )));
        }
        std::thread::sleep(Duration::from_millis(POLL_MS * 4));
    }
}

/// Publishes `bytes` from the signer's account, resuming from the chunks of its copy
/// already on chain; returns when the object is available. `what` names it in progress
/// lines; `paying` is the token that pays the chunk fees.
pub fn publish(
    s: &mut Signer<'_>,
    bytes: &[u8],
    what: &str,
    paying: FeeSelector,
    quiet: bool,
) -> Result<Published, CliError> {
    let client = s.client;
    let market = market_params(&s.chain.raw)?;
    let sha_bytes = tb_primitives::sha256_digest(bytes).0;
    let sha = hex::encode(sha_bytes);
    let me = s.address().to_string();
    let chunk = market.blob_chunk_bytes;
    let chunks = (bytes.len() as u64).div_ceil(chunk) as u32;
    let mut out = Published {
        sha256: sha.clone(),
        bytes: bytes.len() as u64,
        chunks,
        sent: 0,
        skipped: 0,
        already: false,
        expires: None,
    };
    let st = status(client, &sha, &me)?;
    if st["published"] == true {
        out.already = true;
        out.expires = st["expires"].as_u64();
        return Ok(out);
    }
    settle_pending(s, quiet)?;
    // Chunk `i`'s transaction payload, made when it is sent (a 512 MiB object is not
    // copied into payloads up front).
    let from = s.address();
    let payload = |i: u32| {
        let start = i as usize * chunk as usize;
        let end = (start + chunk as usize).min(bytes.len());
        let c = &bytes[start..end];
        PublishBlob {
            from,
            object: sha_bytes,
            total_bytes: bytes.len() as u64,
            index: i,
            bytes: c.to_vec(),
            fee: blob_fee_min(&market, c.len()),
            fee_selector: paying.into(),
            nonce: 0,
        }
    };
    let on_chain = |st: &Value| -> Result<BTreeSet<u32>, CliError> {
        let copy = &st["copy"];
        if copy.is_null() {
            return Ok(BTreeSet::new());
        }
        if copy.u64_at("total_bytes")? != bytes.len() as u64 || copy.u64_at("chunk_bytes")? != chunk
        {
            return Err(CliError::fail(format!(
                "{me}'s copy of {sha} on chain was started with another size or chunk \
                 size; it expires at height {}",
                copy.text_at("expires")
            )));
        }
        Ok(copy
            .arr_at("received")
            .iter()
            .filter_map(Value::as_u64)
            .map(|i| i as u32)
            .collect())
    };
    let st = status(client, &sha, &me)?;
    if st["published"] == true {
        out.already = true;
        out.expires = st["expires"].as_u64();
        return Ok(out);
    }
    let have = on_chain(&st)?;
    out.skipped = have.len() as u32;
    let size_of = |i: u32| {
        let start = i as u64 * chunk;
        chunk.min(bytes.len() as u64 - start)
    };
    // The fees of the chunks still to send, against the paying token's balance: a
    // publication that cannot finish is refused before it starts.
    let floor = s.chain.fee_floor_per_byte;
    let fees: u64 = (0..chunks)
        .filter(|i| !have.contains(i))
        .map(|i| {
            blob_fee_min(&market, size_of(i) as usize)
                .max(floor.saturating_mul(size_of(i) + CHUNK_TX_OVERHEAD_BYTES))
        })
        .sum();
    let token = if paying == FeeSelector::Consumer {
        "consumer"
    } else {
        "industrial"
    };
    let balance = if token == "consumer" {
        s.account.consumer
    } else {
        s.account.industrial
    };
    if balance < fees {
        return Err(CliError::fail(format!(
            "publishing {what} ({}, {} of {chunks} chunks to send) costs about {} {token} in \
             fees; {me} holds {}",
            mib(bytes.len() as u64),
            chunks - have.len() as u32,
            crate::wallet::tokens(fees),
            crate::wallet::tokens(balance)
        )));
    }
    let mut done_bytes: u64 = have.iter().map(|i| size_of(*i)).sum();
    let mut done_chunks = have.len() as u32;
    let mut todo: VecDeque<u32> = (0..chunks).filter(|i| !have.contains(i)).collect();
    let mut progress = Progress::new(what, bytes.len() as u64, done_bytes, quiet);
    if out.skipped > 0 {
        progress.note(&format!(
            "{what}: resuming: {} of {chunks} chunks are already on chain",
            out.skipped
        ));
    }
    // (chunk index, nonce, transaction id)
    let mut in_flight: VecDeque<(u32, u64, String)> = VecDeque::new();
    let mut last_progress = Instant::now();
    while !todo.is_empty() || !in_flight.is_empty() {
        // Send while the window allows.
        while let Some(&i) = todo.front() {
            let flying: u64 = in_flight.iter().map(|(j, _, _)| size_of(*j)).sum();
            if in_flight.len() >= IN_FLIGHT_TXS_MAX
                || (!in_flight.is_empty() && flying + size_of(i) > IN_FLIGHT_BYTES_MAX)
            {
                break;
            }
            let nonce = s.next_nonce();
            match s.send(Via::SubmitTx, TxPayload::PublishBlob(payload(i))) {
                Ok(id) => {
                    in_flight.push_back((i, nonce, id));
                    todo.pop_front();
                    out.sent += 1;
                }
                // The mempool is full (of others' transactions too): wait for a block.
                Err(e)
                    if e.message.contains("[pool_full]") || e.message.contains("[sender_full]") =>
                {
                    s.refresh_nonce()?;
                    break;
                }
                Err(e) => {
                    progress.finish();
                    return Err(CliError::fail(format!(
                        "{what}: {done_chunks} of {chunks} chunks on chain, {} in flight; {} \
                         (re-run the command to resume)",
                        in_flight.len(),
                        e.message
                    )));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
        let acc = client.get("balance", |c| AccountClient::balance(c, me.clone()))?;
        let confirmed = acc.nonce;
        while in_flight.front().is_some_and(|(_, n, _)| *n < confirmed) {
            let (i, _, _) = in_flight.pop_front().expect("checked");
            done_bytes += size_of(i);
            done_chunks += 1;
            last_progress = Instant::now();
        }
        progress.set(done_bytes, done_chunks, chunks);
        if last_progress.elapsed() > Duration::from_secs(STALL_SECS) && !in_flight.is_empty() {
            // Anything neither pending nor included was dropped: look again at what
            // the chain holds and send the rest with fresh nonces.
            let mut dropped = false;
            for (_, _, id) in &in_flight {
                let tx = hid(id)?;
                if client
                    .find("chain.getTx", |c| ChainClient::get_tx(c, tx))?
                    .is_none()
                {
                    dropped = true;
                    break;
                }
            }
            last_progress = Instant::now();
            if dropped {
                progress.note(&format!(
                    "{what}: some chunk transactions were dropped; re-reading the chain"
                ));
                settle_pending(s, true)?;
                let st = status(client, &sha, &me)?;
                if st["published"] == true {
                    in_flight.clear();
                    todo.clear();
                    break;
                }
                let have = on_chain(&st)?;
                in_flight.clear();
                todo = (0..chunks).filter(|i| !have.contains(i)).collect();
                done_bytes = have.iter().map(|i| size_of(*i)).sum();
                done_chunks = have.len() as u32;
            }
        }
    }
    progress.finish();
    // The last chunk completes the copy: the whole is hashed and becomes available.
    let t0 = Instant::now();
    loop {
        let st = status(client, &sha, &me)?;
        if st["published"] == true {
            out.expires = st["expires"].as_u64();
            return Ok(out);
        }
        if t0.elapsed() > Duration::from_secs(STALL_SECS) {
            return Err(CliError::fail(format!(
                "every chunk of {sha} was included, but the object is not available \
                 (`tb-cli` sends it again if you re-run the command)"
            )));
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}
