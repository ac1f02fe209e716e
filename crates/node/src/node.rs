//! The running node: the chain store and mempool behind one lock, the blob store, the
//! event stream the WebSocket subscriptions read, the metrics, and the signals the
//! workers wait on. RPC handlers and workers share one `Arc<Node>`.
//!
//! Every block that becomes canonical goes through [`Node::import`], which commits it
//! (one redb transaction), brings the mempool to the new tip (included transactions
//! out, orphans swept, the tip's governed parameters in force), and derives the events:
//! `newHeads`, `jobAssigned`, `receiptAccepted`, `challengeOpened`, `challengeRuled`,
//! `jobCompleted`, `jobFailed`, `providerSlashed`, `epochSettled`.

use crate::blobs::store::BlobStore;
use crate::metrics::Metrics;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tb_chain::market::exec::task_id;
use tb_chain::market::query;
use tb_chain::market::records::{self as r, JobState};
use tb_chain::mempool::{AdmissionError, Mempool, MempoolConfig};
use tb_chain::{Block, ChainParams, SignedTx, StateRead, TxPayload};
use tb_primitives::{Id, SecretKey};
use tb_store::{ChainDb, ImportError, ImportOutcome};

/// Events kept for slow WebSocket subscribers before the oldest are dropped.
pub const EVENT_QUEUE_MAX: usize = 4096;
/// Non-terminal jobs the node follows for events and gauges (beyond it, newly submitted
/// jobs are not followed until others finish; the chain and the workers, which read the
/// chain's indexes, are unaffected).
pub const TRACKED_JOBS_MAX: usize = 100_000;

/// One event for subscribers.
#[derive(Clone, Debug)]
pub struct Event {
    /// `newHeads`, `jobAssigned`, `receiptAccepted`, `challengeOpened`,
    /// `challengeRuled`, `jobCompleted`, `jobFailed`, `providerSlashed`, `epochSettled`.
    pub kind: &'static str,
    pub data: Value,
}

/// What the node last saw of a job it follows.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    state: JobState,
    /// Whether its first lease was seen (and its match latency recorded).
    matched: bool,
    leases: usize,
    receipts: usize,
    disputes: u32,
    disputes_open: u32,
}

impl Tracked {
    fn new() -> Tracked {
        Tracked {
            state: JobState::Queued,
            matched: false,
            leases: 0,
            receipts: 0,
            disputes: 0,
            disputes_open: 0,
        }
    }

    fn of(j: &r::Job) -> Tracked {
        Tracked {
            state: j.state,
            matched: !j.leases.is_empty(),
            leases: j.leases.len(),
            receipts: j.receipts.len(),
            disputes: j.disputes,
            disputes_open: j.disputes_open,
        }
    }
}

/// The chain store, the mempool and what the node follows of the market.
pub struct Core {
    pub db: ChainDb,
    pub pool: Mempool,
    /// Non-terminal jobs and what was last seen of them.
    tracked: BTreeMap<Id, Tracked>,
    /// The last epoch whose settlement was announced.
    last_epoch: u64,
    /// Proof-latency SLA slashes on the chain (counted once at open, then per block).
    sla_breaches: u64,
    /// Finished jobs by state (counted once at open, then per block).
    finished: BTreeMap<&'static str, u64>,
}

impl Core {
    /// The parameters in force for the next block (governance applied).
    pub fn effective_params(&self, base: &ChainParams) -> ChainParams {
        tb_chain::governance::effective_params(self.db.state(), base)
    }
}

/// The node.
pub struct Node {
    /// The network's genesis parameters.
    pub params: ChainParams,
    core: Mutex<Core>,
    pub blobs: BlobStore,
    pub events: tokio::sync::broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub mining: AtomicBool,
    pub stop: Arc<AtomicBool>,
    /// Notified when `admin.shutdown` asks the node to stop (as a signal would).
    pub shutdown_requested: tokio::sync::Notify,
    /// The tip height, signalled on every new tip (workers wait on it).
    head: (Mutex<u64>, Condvar),
    /// The node's key (miner beneficiary, provider, verifier).
    pub key: Option<SecretKey>,
    /// The block at height 0.
    pub genesis: Id,
    /// The peer-to-peer network, once started.
    net: OnceLock<tb_net::NetHandle>,
    /// Where the store and the blob store live (the disk gauges read its file system).
    pub data_dir: std::path::PathBuf,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Node {
    /// Opens the store and blob store under `data_dir`, with the default state cache.
    pub fn open(
        data_dir: &std::path::Path,
        params: ChainParams,
        key: Option<SecretKey>,
    ) -> Result<Arc<Node>, String> {
        Self::open_with(data_dir, params, key, tb_store::StoreConfig::default())
    }

    /// Opens the store (with `store`'s cache bound) and blob store under `data_dir`.
    pub fn open_with(
        data_dir: &std::path::Path,
        params: ChainParams,
        key: Option<SecretKey>,
        store: tb_store::StoreConfig,
    ) -> Result<Arc<Node>, String> {
        Self::open_full(data_dir, params, key, store, MempoolConfig::default())
    }

    /// [`Node::open_with`] with the mempool's limits, fee floor and time to live.
    pub fn open_full(
        data_dir: &std::path::Path,
        params: ChainParams,
        key: Option<SecretKey>,
        store: tb_store::StoreConfig,
        mempool: MempoolConfig,
    ) -> Result<Arc<Node>, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
        let mut db = ChainDb::open_with(data_dir.join("chain.redb"), params.clone(), store)
            .map_err(|e| format!("chain store: {e}"))?;
        let blobs = BlobStore::open(data_dir.join("blobs")).map_err(|e| e.to_string())?;
        let effective = tb_chain::governance::effective_params(db.state(), &params);
        let pool = Mempool::new(mempool, effective);
        // What admission checked, import and block building do not check again.
        db.set_sig_cache(pool.sig_cache());
        let mut tracked = BTreeMap::new();
        let mut finished = BTreeMap::new();
        for (t, j) in query::jobs(db.state(), None) {
            if j.state.is_terminal() {
                *finished.entry(crate::json::job_state(j.state)).or_default() += 1;
            } else {
                tracked.insert(t, Tracked::of(&j));
            }
        }
        let height = db.tip().height;
        let genesis = db
            .canonical_id(0)
            .map_err(|e| format!("chain store: {e}"))?
            .ok_or("chain store: no genesis block")?;
        let sla_breaches = query::slashes(db.state(), None)
            .iter()
            .filter(|x| x.reason == r::SlashReason::LatencySla)
            .count() as u64;
        let epoch_blocks = params.market.epoch_blocks.max(1);
        let core = Core {
            db,
            pool,
            tracked,
            last_epoch: height / epoch_blocks,
            sla_breaches,
            finished,
        };
        let (events, _) = tokio::sync::broadcast::channel(EVENT_QUEUE_MAX);
        let node = Arc::new(Node {
            params,
            core: Mutex::new(core),
            blobs,
            events,
            metrics: Arc::new(Metrics::new()),
            mining: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            shutdown_requested: tokio::sync::Notify::new(),
            head: (Mutex::new(height), Condvar::new()),
            data_dir: data_dir.to_path_buf(),
            key,
            genesis,
            net: OnceLock::new(),
        });
        node.refresh_metrics();
        Ok(node)
    }

    /// The chain and mempool, locked. A worker that panicked while holding the lock
    /// leaves consistent data (every mutation is one committed import or one admit),
    /// so a poisoned lock is taken over.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks every worker and server to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.head.1.notify_all();
    }

    /// Waits until the tip is above `seen` (returns the new height), the timeout
    /// passes, or the node stops.
    /// The canonical tip's height as last published (without the chain's lock).
    pub fn head_height(&self) -> u64 {
        *self.head.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wait_head(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self.head.0.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self
            .head
            .1
            .wait_timeout_while(g, timeout, |h| *h <= seen && !self.stopping())
            .unwrap_or_else(|p| p.into_inner());
        *g
    }

    /// Sets the network handle (once; later calls are ignored).
    pub fn set_net(&self, h: tb_net::NetHandle) {
        let _ = self.net.set(h);
    }

    /// The peer-to-peer network, when running.
    pub fn net(&self) -> Option<&tb_net::NetHandle> {
        self.net.get()
    }

    /// The best chain as the network's status handshake shows it.
    pub fn net_status(&self) -> tb_net::Status {
        let c = self.core();
        tb_net::Status {
            genesis: self.genesis,
            tip: c.db.tip_id(),
            height: c.db.tip().height,
            total_work: c.db.tip_total_work(),
        }
    }

    /// Admits a transaction submitted here (RPC, workers, the saved mempool) and
    /// gossips it.
    pub fn submit(&self, tx: SignedTx) -> Result<Id, AdmissionError> {
        let mut c = self.core();
        let r = self.admit(&mut c, tx.clone());
        let ready = c.pool.take_ready();
        drop(c);
        self.relay(&ready);
        let id = r?;
        if let Some(n) = self.net() {
            n.publish_tx(&tx);
        }
        Ok(id)
    }

    /// Admits a transaction a peer gossiped (gossipsub relays it once accepted).
    pub fn admit_from_peer(&self, tx: SignedTx) -> Result<Id, AdmissionError> {
        let mut c = self.core();
        let r = self.admit(&mut c, tx);
        let ready = c.pool.take_ready();
        drop(c);
        self.relay(&ready);
        r
    }

    /// Gossips transactions the mempool held for a nonce gap and admitted once the
    /// gap closed (`Mempool::take_ready`): when they arrived they were refused, so
    /// not relayed.
    fn relay(&self, ready: &[SignedTx]) {
        if let Some(n) = self.net() {
            for tx in ready {
                n.publish_tx(tx);
            }
        }
    }

    fn admit(&self, c: &mut Core, tx: SignedTx) -> Result<Id, AdmissionError> {
        let id = tx.id();
        let (sender, nonce) = (tx.payload.from(), tx.payload.nonce());
        let Core { db, pool, .. } = c;
        match pool.admit(tx, db.state(), now_ms()) {
            Ok(_) => {
                self.metrics.inc("tx_admitted_total", &[]);
                tracing::debug!(op = "admit", %sender, nonce, id = %id, "transaction admitted");
                Ok(id)
            }
            Err(e) => {
                self.metrics.inc("tx_rejected_total", &[e.reason()]);
                tracing::info!(
                    op = "reject",
                    %sender,
                    nonce,
                    reason = e.reason(),
                    code = e.code(),
                    "transaction refused: {e}"
                );
                Err(e)
            }
        }
    }

    /// Drops the mempool entries whose time to live ran out; how many.
    pub fn purge_mempool(&self) -> usize {
        let dropped = self.core().pool.purge_expired(now_ms());
        self.metrics.inc_by("ttl_drop_total", &[], dropped as u64);
        dropped
    }

    /// Signs `payloads` with `key` (consecutive nonces after the account's pending
    /// ones, fees raised to the mempool's floor) and admits them in order; stops at the
    /// first refusal.
    pub fn submit_signed(
        &self,
        key: &SecretKey,
        payloads: Vec<TxPayload>,
    ) -> Result<Vec<Id>, AdmissionError> {
        let mut c = self.core();
        let n0 = c.pool.next_nonce(&key.address(), c.db.state());
        let floor = c.pool.config().fee_floor_per_byte;
        let chain_id = self.params.chain_id;
        let mut ids = Vec::new();
        let mut admitted = Vec::new();
        let mut result = Ok(());
        for (i, mut p) in payloads.into_iter().enumerate() {
            *p.nonce_mut() = n0 + i as u64;
            let tx = SignedTx::sign_paying_floor(p, key, chain_id, floor);
            match self.admit(&mut c, tx.clone()) {
                Ok(id) => {
                    ids.push(id);
                    admitted.push(tx);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let ready = c.pool.take_ready();
        drop(c);
        if let Some(n) = self.net() {
            for tx in &admitted {
                n.publish_tx(tx);
            }
        }
        self.relay(&ready);
        result.map(|_| ids)
    }

    /// Imports a block; on a new tip, updates the mempool and publishes events.
    pub fn import(&self, block: &Block) -> Result<ImportOutcome, ImportError> {
        let _span = tracing::info_span!(
            "block_import",
            height = block.header.height,
            txs = block.txs.len()
        )
        .entered();
        let t0 = std::time::Instant::now();
        let mut c = self.core();
        let prev_height = c.db.tip().height;
        let prev_tip = c.db.tip_id();
        let out = match c.db.import_block(block, now_ms()) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "block refused");
                return Err(e);
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        self.metrics.observe("block_import_seconds", &[], secs);
        let outcome = match &out {
            ImportOutcome::Extended { .. } => "extended",
            ImportOutcome::Reorged { .. } => "reorganised",
            ImportOutcome::SideChain => "side_chain",
            ImportOutcome::AlreadyKnown => "known",
        };
        tracing::info!(
            id = %block.header.id(),
            outcome,
            ms = (secs * 1e3) as u64,
            "block imported"
        );
        self.metrics.inc("blocks_imported_total", &[]);
        let mut undone_txs = Vec::new();
        let from = match &out {
            ImportOutcome::Extended { .. } => prev_height + 1,
            ImportOutcome::Reorged { ancestor, .. } => {
                self.metrics.inc("chain_reorgs_total", &[]);
                // The undone blocks' transactions, walking the old branch back from the
                // old tip to the common ancestor (stored blocks stay readable).
                let mut id = prev_tip;
                while id != *ancestor {
                    let Ok(Some(b)) = c.db.block(&id) else {
                        break;
                    };
                    id = b.header.parent;
                    undone_txs.extend(b.txs);
                }
                // The new branch's blocks, from the common ancestor's child.
                match c.db.header_entry(ancestor) {
                    Ok(Some(e)) => e.header.height + 1,
                    _ => 1,
                }
            }
            ImportOutcome::SideChain | ImportOutcome::AlreadyKnown => return Ok(out),
        };
        let tip = c.db.tip().height;
        for h in from..=tip {
            let Ok(Some(b)) = c.db.block_at(h) else {
                continue;
            };
            self.after_block(&mut c, &b);
        }
        let now = now_ms();
        let Core { db, pool, .. } = &mut *c;
        if !undone_txs.is_empty() {
            // Back into the pool what the new branch did not include.
            pool.reinsert(&undone_txs, db.state(), now);
        }
        let swept = pool.sweep_orphans(db.state());
        self.metrics.inc_by("orphan_sweep_total", &[], swept as u64);
        let expired = pool.purge_expired(now);
        self.metrics.inc_by("ttl_drop_total", &[], expired as u64);
        pool.set_params(tb_chain::governance::effective_params(
            db.state(),
            &self.params,
        ));
        // A sender's next transaction that no longer executes on this tip (decided on
        // a branch that lost) would block its later ones until its time to live.
        let stale = pool.drop_unexecutable(db.state(), tip + 1, now);
        self.metrics.inc_by("orphan_sweep_total", &[], stale as u64);
        let status = tb_net::Status {
            genesis: self.genesis,
            tip: db.tip_id(),
            height: tip,
            total_work: db.tip_total_work(),
        };
        // Under the lock, so concurrent imports announce in commit order (it only
        // stores the status and wakes the network task: it never blocks).
        if let Some(n) = self.net() {
            n.set_status(status);
        }
        let ready = c.pool.take_ready();
        drop(c);
        self.relay(&ready);
        {
            let mut h = self.head.0.lock().unwrap_or_else(|p| p.into_inner());
            *h = tip;
        }
        self.head.1.notify_all();
        Ok(out)
    }

    fn publish(&self, kind: &'static str, data: Value) {
        self.metrics.inc("events_published_total", &[kind]);
        // No subscribers is not an error.
        let _ = self.events.send(Event { kind, data });
    }

    /// Mempool and events for one block that became canonical.
    fn after_block(&self, c: &mut Core, b: &Block) {
        let h = b.header.height;
        {
            let Core { db, pool, .. } = &mut *c;
            pool.remove_included(&b.txs, db.state());
        }
        self.publish("newHeads", crate::json::header(&b.header, b.txs.len()));
        let chain_id = self.params.chain_id;
        for tx in &b.txs {
            if let TxPayload::SubmitJob(_) = tx.payload {
                let t = task_id(chain_id, h, tx);
                if c.tracked.len() < TRACKED_JOBS_MAX {
                    c.tracked.insert(t, Tracked::new());
                }
            }
        }
        let Core {
            db,
            tracked,
            finished: c_finished,
            ..
        } = &mut *c;
        let state = db.state();
        let mut done = Vec::new();
        for (t, seen) in tracked.iter_mut() {
            let Some(j) = r::job(state, t) else {
                done.push(*t);
                continue;
            };
            let leased_now = j.leases.iter().any(|l| l.start == h);
            if leased_now && !seen.matched {
                // Chain time from the submission's block to the first lease's.
                if let Ok(Some(sub)) = db.block_at(j.submitted) {
                    let ms = b
                        .header
                        .timestamp_ms
                        .saturating_sub(sub.header.timestamp_ms);
                    let lane = j.spec.lane.to_string();
                    self.metrics.observe(
                        "market_match_latency_seconds",
                        &[&lane],
                        ms as f64 / 1000.0,
                    );
                }
            }
            let matched = seen.matched || leased_now;
            for l in j.leases.iter().filter(|l| l.start == h) {
                self.publish(
                    "jobAssigned",
                    json!({"task_id": t.to_hex(), "provider": l.provider.to_string(),
                           "height": h, "expiry": l.expiry}),
                );
            }
            // Receipts accepted since (a requeue clears the list: count from zero).
            let from = if j.receipts.len() < seen.receipts {
                0
            } else {
                seen.receipts
            };
            for x in j.receipts.iter().skip(from).filter(|x| x.height == h) {
                let mut v = crate::json::receipt(x);
                v["task_id"] = json!(t.to_hex());
                self.publish("receiptAccepted", v);
            }
            if j.disputes != seen.disputes || j.disputes_open != seen.disputes_open {
                for d in tb_chain::market::dispute::disputes(state, t) {
                    if d.opened == h {
                        self.publish("challengeOpened", crate::json::dispute(&d));
                    }
                    if d.ruling.is_some() && d.ruled_at == h {
                        self.publish("challengeRuled", crate::json::dispute(&d));
                    }
                }
            }
            if j.state != seen.state && j.state.is_terminal() {
                self.publish(
                    "jobCompleted",
                    json!({"task_id": t.to_hex(), "state": crate::json::job_state(j.state),
                           "height": h, "receipts": j.receipts.len()}),
                );
                if let Some(f) = j.failure {
                    self.publish(
                        "jobFailed",
                        json!({"task_id": t.to_hex(), "reason": f.reason.name(),
                               "description": f.reason.describe(), "height": f.height,
                               "receipts": j.receipts.len(),
                               "requester": j.requester.to_string()}),
                    );
                }
                done.push(*t);
                *c_finished
                    .entry(crate::json::job_state(j.state))
                    .or_default() += 1;
            }
            *seen = Tracked::of(&j);
            seen.matched |= matched;
        }
        for t in done {
            c.tracked.remove(&t);
        }
        let state = c.db.state();
        for (_, v) in state.scan_prefix(&r::key(r::Kind::Slash, &[&h.to_be_bytes()])) {
            if let Ok(s) = tb_primitives::decode::<r::SlashRecord>(&v, r::MARKET_RECORD_BYTES_MAX) {
                if s.reason == r::SlashReason::LatencySla {
                    c.sla_breaches += 1;
                }
                self.publish("providerSlashed", crate::json::slash(&s));
            }
        }
        let epoch_blocks = c.effective_params(&self.params).market.epoch_blocks.max(1);
        let epoch = h / epoch_blocks;
        if epoch > c.last_epoch {
            if let Some(s) = query::epoch_summary(state, epoch) {
                let paid: u64 = query::payouts(state, epoch)
                    .iter()
                    .map(|p| p.provider_micro)
                    .sum();
                self.metrics.inc_by("payouts_paid_micro_total", &[], paid);
                self.publish(
                    "epochSettled",
                    json!({"epoch": epoch, "height": h, "receipts_paid": s.paid,
                           "units_milli": s.units_milli, "price_micro": s.price_micro,
                           "provider_paid_micro": paid, "carried": s.carried, "slashes": s.slashes}),
                );
            }
            c.last_epoch = epoch;
        }
    }

    /// Updates the chain-derived gauges (before `/metrics` renders).
    pub fn refresh_metrics(&self) {
        let c = self.core();
        let m = &self.metrics;
        let s = c.db.state();
        let tip = c.db.tip();
        m.set("block_height", &[], tip.height as f64);
        m.set("block_difficulty", &[], tip.difficulty as f64);
        m.set(
            "block_timestamp_seconds",
            &[],
            tip.timestamp_ms as f64 / 1000.0,
        );
        m.set(
            "block_time_target_seconds",
            &[],
            c.effective_params(&self.params).block_time_target_ms as f64 / 1000.0,
        );
        // The file system of the data directory (statvfs): what an operator must
        // watch before the store fills it.
        if let Ok(fs) = rustix::fs::statvfs(&self.data_dir) {
            m.set(
                "disk_available_bytes",
                &[],
                fs.f_bavail as f64 * fs.f_frsize as f64,
            );
            m.set(
                "disk_size_bytes",
                &[],
                fs.f_blocks as f64 * fs.f_frsize as f64,
            );
        }
        if tip.height > 0 {
            if let Ok(Some(e)) = c.db.header_entry(&tip.parent) {
                let dt = tip.timestamp_ms.saturating_sub(e.header.timestamp_ms);
                m.set("block_time_seconds", &[], dt as f64 / 1000.0);
            }
        }
        m.set("mempool_transactions", &[], c.pool.len() as f64);
        m.set_counter(
            "mempool_evictions_total",
            &[],
            c.pool.counters().evictions_total,
        );
        m.set(
            "p2p_peers",
            &[],
            self.net().map_or(0, |n| n.view().peers.len()) as f64,
        );
        m.set("mempool_bytes", &[], c.pool.bytes() as f64);
        let cache = c.db.cache_usage();
        m.set("state_cache_bytes", &[], cache.bytes as f64);
        m.set("state_cache_items", &["entry"], cache.entries as f64);
        m.set("state_cache_items", &["node"], cache.nodes as f64);
        m.set_counter("state_cache_lookups_total", &["hit"], cache.hits);
        m.set_counter("state_cache_lookups_total", &["miss"], cache.misses);
        let f = query::fund(s);
        let tokens = |micro: u64| micro as f64 / tb_primitives::MICRO_PER_TOKEN as f64;
        m.set("fund_balance_tokens", &["consumer"], tokens(f.consumer));
        m.set("fund_balance_tokens", &["industrial"], tokens(f.industrial));
        m.set("escrow_tokens", &[], tokens(f.escrow));
        m.set("bonds_tokens", &[], tokens(f.bonds));
        m.set("provider_stake_tokens", &[], tokens(f.stakes));
        m.set("slashes", &[], f.slashes as f64);
        m.set(
            "receipt_drain_depth",
            &[],
            f.settle_next.saturating_sub(f.settle_head) as f64,
        );
        m.set(
            "mining",
            &[],
            u8::from(self.mining.load(Ordering::Relaxed)) as f64,
        );
        let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        for st in JobState::ALL {
            by_state.insert(crate::json::job_state(st), 0);
        }
        let mut leases = 0usize;
        let mut disputes = 0u64;
        for seen in c.tracked.values() {
            *by_state
                .entry(crate::json::job_state(seen.state))
                .or_default() += 1;
            leases += seen.leases;
            disputes += seen.disputes_open as u64;
        }
        for (k, v) in &c.finished {
            *by_state.entry(k).or_default() += v;
        }
        for (k, v) in by_state {
            m.set("jobs", &[k], v as f64);
        }
        m.set("leases_active", &[], leases as f64);
        m.set("disputes_open", &[], disputes as f64);
        let providers = query::providers(s);
        m.set("providers", &[], providers.len() as f64);
        let market = &c.effective_params(&self.params).market;
        for (a, p) in providers.iter().take(crate::metrics::PROVIDER_SERIES_MAX) {
            let a = a.to_string();
            let avail = tb_chain::market::exec::availability_bps(market, p, tip.height);
            m.set(
                "provider_availability_ratio",
                &[&a],
                avail as f64 / 10_000.0,
            );
            let tried = p.receipts + p.missed_leases;
            let success = if tried == 0 {
                1.0
            } else {
                p.receipts as f64 / tried as f64
            };
            m.set("provider_success_ratio", &[&a], success);
        }
        m.set("sla_breaches", &[], c.sla_breaches as f64);
        m.record_receipt_checks();
    }
}
