//! The simulated world: nodes (a real [`ChainDb`] on a [`SimDisk`], a real
//! [`Mempool`]), the network between them, the market's actors, and the faults, all
//! driven by one seed in 100 ms ticks of simulated time. Invariants are checked as it
//! runs and at the end; the first one broken stops the run with a [`Violation`].

use crate::actors::{self, Actor, Catalogue, Challenger, Example, Kind, Provider};
use crate::disk::SimDisk;
use crate::net::{Msg, NetFaults, Network};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tb_chain::market::audit::{check_running_totals, supply};
use tb_chain::market::dispute::disputes;
use tb_chain::market::records::{JobState, Outcome, SlashReason};
use tb_chain::mempool::{Mempool, MempoolConfig};
use tb_chain::state::{account_key, Account, StateRead};
use tb_chain::{mine, Block, ChainParams, SignedTx};
use tb_primitives::{encode, Address, Id, SecretKey, MICRO_PER_TOKEN};
use tb_store::{ChainDb, ImportError, ImportOutcome, StoreConfig};

/// Simulated milliseconds per tick.
pub const TICK_MS: u64 = 100;
/// Orphan blocks a node holds while it fetches their ancestors.
pub const ORPHANS_MAX: usize = 256;
/// Blocks a node sends in answer to one request: the one asked for and its ancestors.
pub const SYNC_BATCH: usize = 16;
/// How long a node remembers a gossiped transaction it has seen and ignores it when
/// it comes again (gossipsub's duplicate cache in `tb-net`: 120 s).
pub const GOSSIP_SEEN_MS: u64 = 120_000;
/// The sender index of the byzantine peer: not a node; it only forges.
const BYZANTINE: usize = usize::MAX;

/// One run's settings. [`SimConfig::new`] gives the defaults CI runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Simulated seconds with jobs and faults.
    pub fault_secs: u64,
    /// At most this many simulated seconds after the last fault and job for the nodes
    /// to agree on one chain and for every job on it to finish (verified, settled or
    /// failed: its deadlines, reveals, windows and disputes over).
    pub settle_secs: u64,
    pub net: NetFaults,
    /// Chance per simulated second that a partition starts (none is in force).
    pub partition_chance: f64,
    /// How long a partition lasts (s).
    pub partition_secs: (u64, u64),
    /// Chance per simulated second that a node is set to crash.
    pub crash_chance: f64,
    /// How long a crashed node stays down (s).
    pub down_secs: (u64, u64),
    /// Chance, for each new block a node gossips, that the byzantine peer races a
    /// forgery of it to the other nodes.
    pub byzantine: f64,
    /// Traces, on stderr, the actors whose address (its `tb1…` text) starts with this:
    /// each decision, each transaction sent, each block template that picked one; and
    /// the job of a slash that breaks an invariant. For diagnosing a failing seed.
    pub trace: Option<String>,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 4,
            fault_secs: 150,
            settle_secs: 300,
            net: NetFaults {
                delay_ms: (5, 400),
                drop: 0.05,
                duplicate: 0.05,
            },
            partition_chance: 0.03,
            partition_secs: (2, 8),
            crash_chance: 0.06,
            down_secs: (1, 6),
            byzantine: 0.3,
            trace: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub height: u64,
    pub blocks_mined: u64,
    pub reorgs: u64,
    pub partitions: u64,
    pub crashes: u64,
    /// Crashes with writes pending on the disk (inside a commit or a flush).
    pub crashes_mid_write: u64,
    pub reexecuted_at_restart: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub jobs: u64,
    /// Forged blocks and transactions the byzantine peer sent, and how many a node
    /// refused (the rest arrived after the honest block, already known).
    pub forgeries: u64,
    pub forgeries_refused: u64,
    /// Cheats caught, by "role/slash reason".
    pub caught: BTreeMap<String, u64>,
    pub lying_challenges_lost: u64,
    pub verifier_challenges_won: u64,
    /// Second versions of a pending nonce that a pool promoted when the pending one
    /// left without being included (the mempool's alternates).
    pub alternates_promoted: u64,
    /// Transactions a pool held for a nonce gap and relayed once it closed.
    pub held_relayed: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: height {}, {} blocks mined, {} reorgs, {} partitions, {} crashes \
             ({} mid-write, {} blocks re-executed at restart), {} messages ({} dropped, \
             {} duplicated), {} forgeries ({} refused), {} jobs, caught {:?}, {} lying \
             challenges lost, {} verifier challenges won, {} alternates promoted, {} held \
             transactions relayed",
            self.seed,
            self.height,
            self.blocks_mined,
            self.reorgs,
            self.partitions,
            self.crashes,
            self.crashes_mid_write,
            self.reexecuted_at_restart,
            self.messages,
            self.dropped,
            self.duplicated,
            self.forgeries,
            self.forgeries_refused,
            self.jobs,
            self.caught,
            self.lying_challenges_lost,
            self.verifier_challenges_won,
            self.alternates_promoted,
            self.held_relayed
        )
    }
}

/// A broken invariant: the seed that replays it, when, and what.
#[derive(Clone, Debug, thiserror::Error)]
#[error("seed {seed} at {at_ms} ms: {what} (replay: {replay})")]
pub struct Violation {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
    /// The command that replays it.
    pub replay: String,
}

impl SimConfig {
    /// The `tb-sim` command that runs this configuration.
    pub fn replay_command(&self) -> String {
        format!(
            "tb-sim --seed {} --nodes {} --fault-secs {}",
            self.seed, self.nodes, self.fault_secs
        )
    }
}

/// The chain parameters of the simulation: devnet's, with a small, fast market.
pub fn params() -> ChainParams {
    let mut p = ChainParams::devnet();
    let m = &mut p.market;
    m.epoch_blocks = 50;
    // Every window is longer than the longest partition and crash (10 s at about a
    // block a second): an honest party cut off for longer than a deadline is rightly
    // slashed, and that is not what the simulation looks for.
    m.challenge_window_blocks = 16;
    m.evidence_deadline_blocks = 20;
    m.reveal_blocks = 20;
    m.lane_lease_blocks = vec![24, 48, 96];
    m.retry_budget = 1;
    m.backoff_blocks = 1;
    m.min_stake_micro = MICRO_PER_TOKEN;
    m.jail_blocks = 10;
    m.flops_per_unit = 1_000_000;
    m.availability_floor_bps = 0;
    m.challenge_bond_micro = 10 * MICRO_PER_TOKEN;
    m.validate()
        .expect("the simulation's market parameters are in range");
    p
}

/// Blocks between a job's submission and its deadline.
const DEADLINE_BLOCKS: u64 = 60;
const FUNDS: u64 = 100_000 * MICRO_PER_TOKEN;

struct Node {
    disk: SimDisk,
    db: Option<ChainDb>,
    pool: Mempool,
    down_until: u64,
    miner: Address,
    /// Blocks waiting for their parent, by id.
    orphans: BTreeMap<Id, Arc<Block>>,
    /// Blocks whose import returned success: they must survive any crash.
    committed: BTreeSet<Id>,
    /// The most total work this node's tip has had.
    best_work: u128,
    /// Gossiped transactions seen, with when: seen again within `GOSSIP_SEEN_MS`, they
    /// are ignored (neither admitted nor relayed), as gossipsub does.
    seen: BTreeMap<Id, u64>,
    skew_ms: u64,
}

struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    nodes: Vec<Node>,
    net: Network,
    cat: Catalogue,
    actors: Vec<Actor>,
    genesis_minted: (u128, u128),
    partition_until: u64,
    /// The genesis timestamp: simulated time 0.
    epoch_ms: u64,
    report: Report,
}

/// Runs one seed to the end, checking every invariant; the report, or the first
/// invariant broken. A panic anywhere in the world (a node importing a block, mining,
/// restarting) is a violation too, reported with its message at the time it happened,
/// so a seed that crashes the code under test replays like any other finding.
pub fn run(cfg: SimConfig) -> Result<Report, Violation> {
    let mut w = World::new(cfg)?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run())) {
        Ok(r) => r?,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            return Err(w.violation(format!("panicked: {msg}")));
        }
    }
    Ok(w.report)
}

impl World {
    fn violation(&self, what: impl Into<String>) -> Violation {
        Violation {
            seed: self.cfg.seed,
            at_ms: self.now,
            what: what.into(),
            replay: self.cfg.replay_command(),
        }
    }

    fn new(cfg: SimConfig) -> Result<World, Violation> {
        let seed = cfg.seed;
        let replay = cfg.replay_command();
        let fail = |what: String| Violation {
            seed,
            at_ms: 0,
            what,
            replay: replay.clone(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = params();
        let examples = ["train-step", "mlp", "matmul-chain"]
            .into_iter()
            .map(Example::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let n = cfg.nodes.max(2);
        let mut kinds = vec![Kind::Requester, Kind::Requester];
        kinds.extend(
            [
                Provider::Honest,
                Provider::Honest,
                Provider::Honest,
                Provider::Honest,
                Provider::Corrupting,
                Provider::Corrupting,
                Provider::Lazy,
                Provider::Lazy,
                Provider::Withholding,
            ]
            .map(Kind::Provider),
        );
        kinds.extend((0..n).map(|_| Kind::Challenger(Challenger::Verifier)));
        kinds.extend([
            Kind::Challenger(Challenger::Liar),
            Kind::Challenger(Challenger::Withholder),
        ]);
        let actors: Vec<Actor> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Actor {
                key: SecretKey::dev(&format!("sim-{seed}-{i}")),
                kind,
                home: i % n,
                in_flight: None,
            })
            .collect();
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = actors
            .iter()
            .map(|a| {
                (
                    account_key(&a.key.address()),
                    encode(&Account {
                        nonce: 0,
                        consumer: FUNDS,
                        industrial: FUNDS,
                    }),
                )
            })
            .collect();
        entries.sort();
        let minted = FUNDS as u128 * actors.len() as u128;
        let mut nodes = Vec::new();
        for i in 0..n {
            let disk = SimDisk::new();
            let mut db = ChainDb::create_with_genesis_state_on(
                disk.clone(),
                params.clone(),
                StoreConfig::default(),
                [entries.clone()],
            )
            .map_err(|e| fail(format!("node {i}: creating its store: {e}")))?;
            db.set_verify_threads(1);
            let pool = Mempool::new(MempoolConfig::default(), params.clone());
            db.set_sig_cache(pool.sig_cache());
            nodes.push(Node {
                disk,
                db: Some(db),
                pool,
                down_until: 0,
                miner: SecretKey::dev(&format!("sim-{seed}-miner-{i}")).address(),
                orphans: BTreeMap::new(),
                committed: BTreeSet::new(),
                best_work: 0,
                seen: BTreeMap::new(),
                skew_ms: rng.gen_range(0..500),
            });
        }
        Ok(World {
            report: Report {
                seed,
                ..Report::default()
            },
            cfg,
            rng,
            now: 0,
            nodes,
            net: Network::new(),
            cat: Catalogue {
                params: params.clone(),
                examples,
            },
            actors,
            genesis_minted: (minted, minted),
            partition_until: 0,
            epoch_ms: tb_chain::block::genesis_header(&params).timestamp_ms,
        })
    }

    fn faults_on(&self) -> bool {
        self.now < self.cfg.fault_secs * 1000
    }

    fn run(&mut self) -> Result<(), Violation> {
        let end_faults = self.cfg.fault_secs * 1000;
        let end = end_faults + self.cfg.settle_secs * 1000;
        while self.now < end {
            self.now += TICK_MS;
            self.deliver()?;
            self.restart_due()?;
            self.mine()?;
            if self.now.is_multiple_of(1000) {
                self.second()?;
                if self.now >= end_faults && self.converged() && self.settled() {
                    break;
                }
            }
        }
        if !self.converged() {
            let tips: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    n.db.as_ref().map_or("down".into(), |d| {
                        format!(
                            "{} at {} (work {})",
                            d.tip_id(),
                            d.tip().height,
                            d.tip_total_work()
                        )
                    })
                })
                .collect();
            return Err(self.violation(format!(
                "the nodes did not agree on one chain {} s after the faults ended: {tips:?}",
                self.cfg.settle_secs
            )));
        }
        if !self.settled() {
            return Err(self.violation(format!(
                "jobs still open {} s after the faults ended",
                self.cfg.settle_secs
            )));
        }
        self.final_checks()
    }

    /// Every job on node 0's tip finished: verified, settled or failed.
    fn settled(&self) -> bool {
        self.nodes[0].db.as_ref().is_some_and(|db| {
            tb_chain::market::query::jobs(db.state(), None)
                .iter()
                .all(|(_, j)| {
                    matches!(
                        j.state,
                        JobState::Verified | JobState::Settled | JobState::Failed
                    )
                })
        })
    }

    /// Every node up and on the same tip.
    fn converged(&self) -> bool {
        let mut tips = self.nodes.iter().map(|n| n.db.as_ref().map(|d| d.tip_id()));
        let first = tips.next().flatten();
        first.is_some() && tips.all(|t| t == first)
    }

    /// Once a simulated second: status gossip, faults, actors.
    fn second(&mut self) -> Result<(), Violation> {
        let now = self.now;
        for n in &mut self.nodes {
            n.seen.retain(|_, t| now < *t + GOSSIP_SEEN_MS);
        }
        for i in 0..self.nodes.len() {
            if let Some(db) = &self.nodes[i].db {
                let msg = Msg::Status {
                    tip: db.tip_id(),
                    work: db.tip_total_work(),
                };
                self.broadcast(i, msg);
            }
        }
        if self.faults_on() {
            self.faults();
        } else {
            // The faults end: partitions heal, crashes armed and not yet fired are off.
            self.net.heal();
            for n in &self.nodes {
                n.disk.disarm();
            }
        }
        if self.net.partitioned() && self.now >= self.partition_until {
            self.net.heal();
        }
        self.act()
    }

    fn faults(&mut self) {
        let n = self.nodes.len();
        if !self.net.partitioned() && self.rng.gen_bool(self.cfg.partition_chance) {
            let mut sides: Vec<bool> = (0..n).map(|_| self.rng.gen()).collect();
            if sides.iter().all(|s| *s == sides[0]) {
                let i = self.rng.gen_range(0..n);
                sides[i] = !sides[i];
            }
            let secs = self
                .rng
                .gen_range(self.cfg.partition_secs.0..=self.cfg.partition_secs.1);
            self.partition_until = self.now + secs * 1000;
            self.net.partition(sides);
            self.report.partitions += 1;
        }
        if self.rng.gen_bool(self.cfg.crash_chance) {
            let i = self.rng.gen_range(0..n);
            if self.nodes[i].db.is_some() {
                // At a random later write (most often inside the next import's commit
                // or flush), or right now between two operations.
                if self.rng.gen_bool(0.25) {
                    self.nodes[i].disk.crash_now();
                } else {
                    let at = self.rng.gen_range(0..80);
                    self.nodes[i].disk.arm_crash(at);
                }
                self.check_crashed(i);
            }
        }
    }

    /// Takes node `i` down if its disk crashed.
    fn check_crashed(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.db.is_none() || !node.disk.crashed() {
            return;
        }
        // The process dies: what it held in memory is gone; its drop-time flush
        // fails on the dead disk.
        drop(node.db.take());
        node.pool = Mempool::new(MempoolConfig::default(), self.cat.params.clone());
        node.orphans.clear();
        node.seen.clear();
        let secs = self
            .rng
            .gen_range(self.cfg.down_secs.0..=self.cfg.down_secs.1);
        node.down_until = self.now + secs * 1000;
        self.report.crashes += 1;
        if node.disk.pending() > 0 {
            self.report.crashes_mid_write += 1;
        }
    }

    fn restart_due(&mut self) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].db.is_some() || self.now < self.nodes[i].down_until {
                continue;
            }
            let pending = self.nodes[i].disk.pending();
            let kept = self.rng.gen_range(0..=pending);
            let disk = self.nodes[i].disk.restart(kept);
            let mut db = ChainDb::open_on(disk.clone(), self.cat.params.clone(), StoreConfig::default())
                .map_err(|e| {
                    self.violation(format!(
                        "node {i} does not reopen after a crash ({kept} of {pending} pending writes kept): {e}"
                    ))
                })?;
            db.set_verify_threads(1);
            db.set_sig_cache(self.nodes[i].pool.sig_cache());
            let node = &self.nodes[i];
            for id in &node.committed {
                let stored = db
                    .header_entry(id)
                    .map_err(|e| self.violation(e.to_string()))?;
                if stored.is_none() {
                    return Err(self.violation(format!(
                        "node {i} lost block {id}, committed before its crash"
                    )));
                }
            }
            if db.tip_total_work() < node.best_work {
                return Err(self.violation(format!(
                    "node {i}'s tip went back after a crash: work {} < {}",
                    db.tip_total_work(),
                    node.best_work
                )));
            }
            self.report.reexecuted_at_restart += u64::from(db.reexecuted_at_open());
            let node = &mut self.nodes[i];
            node.disk = disk;
            node.db = Some(db);
            self.check_node(i)?;
        }
        Ok(())
    }

    /// Node `i`'s clock: the genesis timestamp, plus the simulated time, plus its skew.
    fn node_now(&self, i: usize) -> u64 {
        self.epoch_ms + self.now + self.nodes[i].skew_ms
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        let faults = if self.faults_on() {
            self.cfg.net.clone()
        } else {
            NetFaults::calm()
        };
        self.net
            .send(&mut self.rng, &faults, self.now, from, to, msg);
        self.report.messages = self.net.sent;
        self.report.dropped = self.net.dropped;
        self.report.duplicated = self.net.duplicated;
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        while let Some((from, to, msg)) = self.net.next_due(self.now) {
            if self.nodes[to].db.is_none() {
                continue; // a dead node hears nothing
            }
            match msg {
                Msg::Block(b) if from == BYZANTINE => self.receive_forged_block(to, b)?,
                Msg::Tx(tx) if from == BYZANTINE => self.receive_forged_tx(to, (*tx).clone())?,
                Msg::Block(b) => self.receive_block(to, from, b)?,
                Msg::Tx(tx) => self.receive_tx(to, (*tx).clone()),
                Msg::Status { tip, work } => {
                    let Some(db) = &self.nodes[to].db else {
                        continue;
                    };
                    let known = db
                        .header_entry(&tip)
                        .map_err(|e| self.violation(e.to_string()))?
                        .is_some();
                    if work > db.tip_total_work()
                        && !known
                        && !self.nodes[to].orphans.contains_key(&tip)
                    {
                        self.send(to, from, Msg::GetBlock(tip));
                    }
                }
                Msg::GetBlock(id) => {
                    let Some(db) = &self.nodes[to].db else {
                        continue;
                    };
                    let mut batch = Vec::new();
                    let mut cur = id;
                    while batch.len() < SYNC_BATCH {
                        let Ok(Some(b)) = db.block(&cur) else {
                            break;
                        };
                        let genesis = b.header.height == 0;
                        cur = b.header.parent;
                        batch.push(Arc::new(b));
                        if genesis {
                            break;
                        }
                    }
                    if !batch.is_empty() {
                        batch.reverse();
                        self.send(to, from, Msg::Blocks(batch));
                    }
                }
                Msg::Blocks(batch) => {
                    for b in batch {
                        if self.nodes[to].db.is_none() {
                            break;
                        }
                        self.receive_block(to, from, b)?;
                    }
                }
            }
            self.check_crashed(to);
        }
        Ok(())
    }

    fn receive_tx(&mut self, at: usize, tx: SignedTx) {
        let now = self.node_now(at);
        let sim_now = self.now;
        let node = &mut self.nodes[at];
        let Some(db) = &node.db else {
            return;
        };
        if node.seen.contains_key(&tx.id()) {
            return;
        }
        // Remembered whatever the verdict, as gossipsub's duplicate cache does: a
        // transaction refused for a nonce gap is not delivered again (the pool holds
        // it, and relays it when the gap closes).
        node.seen.insert(tx.id(), sim_now);
        let admitted = node.pool.admit(tx.clone(), db.state(), now).is_ok();
        if admitted {
            self.broadcast(at, Msg::Tx(Arc::new(tx)));
        }
        self.relay_ready(at);
    }

    /// Gossips what node `at`'s pool admitted from its held transactions (as the
    /// node's `relay` does).
    fn relay_ready(&mut self, at: usize) {
        for tx in self.nodes[at].pool.take_ready() {
            self.report.held_relayed += 1;
            self.broadcast(at, Msg::Tx(Arc::new(tx)));
        }
    }

    fn receive_block(&mut self, at: usize, from: usize, b: Arc<Block>) -> Result<(), Violation> {
        let mut queue = vec![b];
        while let Some(b) = queue.pop() {
            let now = self.node_now(at);
            let Some(db) = self.nodes[at].db.as_mut() else {
                return Ok(());
            };
            let id = b.id();
            let prev_tip = db.tip_id();
            match db.import_block(&b, now) {
                Ok(out) => {
                    self.nodes[at].orphans.remove(&id);
                    self.imported(at, &b, prev_tip, &out)?;
                    // Its children waiting as orphans come next.
                    let children: Vec<Arc<Block>> = self.nodes[at]
                        .orphans
                        .values()
                        .filter(|o| o.header.parent == id)
                        .cloned()
                        .collect();
                    queue.extend(children);
                }
                Err(ImportError::UnknownParent(p)) => {
                    let node = &mut self.nodes[at];
                    if node.orphans.len() < ORPHANS_MAX {
                        node.orphans.insert(id, b.clone());
                    }
                    self.send(at, from, Msg::GetBlock(p));
                }
                Err(e) => {
                    if self.nodes[at].disk.crashed() {
                        self.check_crashed(at);
                        return Ok(());
                    }
                    // Every miner here is honest: a refused block is a bug.
                    return Err(self.violation(format!(
                        "node {at} refused block {id} at height {}: {e}",
                        b.header.height
                    )));
                }
            }
        }
        Ok(())
    }

    /// The byzantine peer saw node `at` gossip `b`: it races a forgery of it to the
    /// other nodes (delivered within 5 ms, ahead of most honest copies) — the honest
    /// header with a body it does not commit to (a transaction dropped, repeated, or
    /// its signature changed), or a block re-mined with a wrong state root — and a
    /// transaction with a broken signature.
    fn forge(&mut self, at: usize, b: &Block) {
        let mut forged = b.clone();
        let n = forged.txs.len();
        match self.rng.gen_range(0..4) {
            0 if n > 0 => {
                forged.txs.pop();
            }
            1 if n > 0 => {
                let i = self.rng.gen_range(0..n);
                let bit = self.rng.gen_range(0..512);
                forged.txs[i].signature.0[bit / 8] ^= 1 << (bit % 8);
            }
            2 if n > 0 => {
                let i = self.rng.gen_range(0..n);
                let copy = forged.txs[i].clone();
                forged.txs.push(copy);
            }
            _ => {
                forged.header.state_root.0[0] ^= 1;
                match mine(&forged.header, 0, 10_000_000) {
                    Some(h) => forged.header = h,
                    None => return,
                }
            }
        }
        let faults = self.cfg.net.clone();
        let forged = Arc::new(forged);
        let bad_tx = b.txs.first().map(|tx| {
            let mut t = tx.clone();
            t.signature.0[0] ^= 1;
            Arc::new(t)
        });
        for to in (0..self.nodes.len()).filter(|to| *to != at) {
            self.report.forgeries += 1;
            let msg = Msg::Block(forged.clone());
            self.net
                .send_within(&mut self.rng, &faults, (0, 5), self.now, BYZANTINE, to, msg);
            if let Some(t) = &bad_tx {
                self.report.forgeries += 1;
                let msg = Msg::Tx(t.clone());
                self.net
                    .send_within(&mut self.rng, &faults, (0, 5), self.now, BYZANTINE, to, msg);
            }
        }
    }

    /// A forged block must never become a node's tip; refusing it, or keeping a
    /// header with a wrong state root unexecuted on a side chain, is right.
    fn receive_forged_block(&mut self, at: usize, b: Arc<Block>) -> Result<(), Violation> {
        let now = self.node_now(at);
        let Some(db) = self.nodes[at].db.as_mut() else {
            return Ok(());
        };
        match db.import_block(&b, now) {
            Ok(ImportOutcome::Extended { .. } | ImportOutcome::Reorged { .. }) => Err(self
                .violation(format!(
                    "node {at} took a forged block {} as its tip",
                    b.id()
                ))),
            Ok(ImportOutcome::SideChain | ImportOutcome::AlreadyKnown) => Ok(()),
            Err(_) if self.nodes[at].disk.crashed() => {
                self.check_crashed(at);
                Ok(())
            }
            Err(e @ (ImportError::Store(_) | ImportError::Poisoned)) => {
                Err(self.violation(format!("node {at}'s store failed on a forged block: {e}")))
            }
            Err(_) => {
                self.report.forgeries_refused += 1;
                Ok(())
            }
        }
    }

    /// A transaction with a broken signature must never enter a mempool.
    fn receive_forged_tx(&mut self, at: usize, tx: SignedTx) -> Result<(), Violation> {
        let now = self.node_now(at);
        let node = &mut self.nodes[at];
        let Some(db) = &node.db else {
            return Ok(());
        };
        if node.pool.admit(tx.clone(), db.state(), now).is_ok() {
            return Err(self.violation(format!(
                "node {at} admitted a transaction with a broken signature: {}",
                tx.id()
            )));
        }
        self.report.forgeries_refused += 1;
        Ok(())
    }

    /// After a successful import on node `at`: gossip, mempool upkeep, checks.
    fn imported(
        &mut self,
        at: usize,
        b: &Arc<Block>,
        prev_tip: Id,
        out: &ImportOutcome,
    ) -> Result<(), Violation> {
        let id = b.id();
        self.nodes[at].committed.insert(id);
        if matches!(out, ImportOutcome::AlreadyKnown) {
            return Ok(());
        }
        self.broadcast(at, Msg::Block(b.clone()));
        if self.faults_on() && self.rng.gen_bool(self.cfg.byzantine) {
            self.forge(at, b);
        }
        let now = self.node_now(at);
        let node = &mut self.nodes[at];
        let Some(db) = node.db.as_ref() else {
            return Ok(());
        };
        let promoted = node.pool.counters().alternates_promoted_total;
        match out {
            ImportOutcome::Extended { .. } => {
                node.pool.remove_included(&b.txs, db.state());
            }
            ImportOutcome::Reorged { ancestor, .. } => {
                self.report.reorgs += 1;
                let mut undone = Vec::new();
                let mut cur = prev_tip;
                while cur != *ancestor {
                    let Ok(Some(old)) = db.block(&cur) else {
                        break;
                    };
                    cur = old.header.parent;
                    undone.extend(old.txs);
                }
                let from = db
                    .header_entry(ancestor)
                    .ok()
                    .flatten()
                    .map_or(1, |e| e.header.height + 1);
                for h in from..=db.tip().height {
                    if let Ok(Some(nb)) = db.block_at(h) {
                        node.pool.remove_included(&nb.txs, db.state());
                    }
                }
                node.pool.reinsert(&undone, db.state(), now);
            }
            ImportOutcome::SideChain | ImportOutcome::AlreadyKnown => return Ok(()),
        }
        node.pool.sweep_orphans(db.state());
        // As the node does after each new tip.
        node.pool
            .drop_unexecutable(db.state(), db.tip().height + 1, now);
        self.report.alternates_promoted +=
            node.pool.counters().alternates_promoted_total - promoted;
        node.best_work = node.best_work.max(db.tip_total_work());
        self.relay_ready(at);
        self.check_node(at)
    }

    /// The invariants of one node's tip: conservation of tokens, the market's running
    /// totals, and no honest party slashed.
    fn check_node(&self, i: usize) -> Result<(), Violation> {
        let Some(db) = &self.nodes[i].db else {
            return Ok(());
        };
        let state = db.state();
        let (c, ind) = db
            .canonical_coinbases()
            .map_err(|e| self.violation(e.to_string()))?;
        let minted = (self.genesis_minted.0 + c, self.genesis_minted.1 + ind);
        let s = supply(state);
        if s.total() != minted {
            return Err(self.violation(format!(
                "node {i} at height {}: tokens not conserved: accounted {:?}, minted {minted:?}",
                db.tip().height,
                s.total()
            )));
        }
        check_running_totals(state)
            .map_err(|e| self.violation(format!("node {i}: running totals: {e}")))?;
        for x in tb_chain::market::query::slashes(state, None) {
            if self.kind_of(&x.provider).is_some_and(|k| k.honest()) {
                if let (true, Some(t)) = (self.cfg.trace.is_some(), x.task_id) {
                    trace_job(state, &t);
                }
                return Err(self.violation(format!(
                    "node {i} at height {}: an honest provider was slashed: {x:?}",
                    db.tip().height
                )));
            }
        }
        Ok(())
    }

    /// Whether `a`'s decisions and transactions are traced (`SimConfig::trace`).
    fn traced(&self, a: &Address) -> bool {
        traced(&self.cfg.trace, a)
    }

    fn kind_of(&self, a: &Address) -> Option<Kind> {
        self.actors
            .iter()
            .find(|x| x.key.address() == *a)
            .map(|x| x.kind)
    }

    /// Each live node finds a block with a chance that gives one a second in all.
    fn mine(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        let chance = TICK_MS as f64 / 1000.0 / n as f64;
        for i in 0..n {
            if self.nodes[i].db.is_none() || !self.rng.gen_bool(chance) {
                continue;
            }
            let now = self.node_now(i);
            let p = &self.cat.params;
            let trace = &self.cfg.trace;
            let node = &mut self.nodes[i];
            let picked = node.pool.select(p.block_tx_count_max, p.block_bytes_max);
            let Some(db) = node.db.as_mut() else {
                continue;
            };
            let mut block = match db.build_template(picked.iter(), now, node.miner) {
                Ok(b) => b,
                Err(e) => {
                    if node.disk.crashed() {
                        self.check_crashed(i);
                        continue;
                    }
                    return Err(self.violation(format!("node {i} cannot build a block: {e}")));
                }
            };
            for tx in picked.iter().filter(|tx| traced(trace, &tx.payload.from())) {
                eprintln!(
                    "  {} ms: node {i} builds height {}: nonce {} {} {}",
                    self.now,
                    block.header.height,
                    tx.payload.nonce(),
                    payload_name(tx),
                    if block.txs.iter().any(|t| t.id() == tx.id()) {
                        "included"
                    } else {
                        "skipped"
                    }
                );
            }
            // As a node's miner does: what the template skipped at its sender's next
            // nonce would block the sender until its time to live.
            let promoted = node.pool.counters().alternates_promoted_total;
            node.pool.drop_skipped(&picked, &block.txs, db.state());
            self.report.alternates_promoted +=
                node.pool.counters().alternates_promoted_total - promoted;
            block.header = mine(&block.header, 0, 10_000_000)
                .ok_or_else(|| self.violation("devnet difficulty out of reach"))?;
            self.report.blocks_mined += 1;
            self.receive_block(i, i, Arc::new(block))?;
            self.check_crashed(i);
        }
        Ok(())
    }

    /// The actors' turn: each with no batch in flight decides from the tip of its node.
    fn act(&mut self) -> Result<(), Violation> {
        let requesting = self.faults_on();
        for a in 0..self.actors.len() {
            let n = self.nodes.len();
            let home = self.actors[a].home;
            let Some(at) = (0..n)
                .map(|k| (home + k) % n)
                .find(|i| self.nodes[*i].db.is_some())
            else {
                return Ok(());
            };
            let me = self.actors[a].key.address();
            let db = self.nodes[at].db.as_ref().expect("live");
            let state = db.state();
            let nonce = state.account(&me).nonce;
            let tr = self.traced(&me);
            if tr {
                eprintln!(
                    "{} ms: {} {me} at node {at} (height {}): account nonce {nonce}, pool's next {}, in flight {:?}",
                    self.now,
                    self.actors[a].kind.label(),
                    db.tip().height,
                    self.nodes[at].pool.next_nonce(&me, state),
                    self.actors[a].in_flight
                );
            }
            if let Some((last, sent, via)) = self.actors[a].in_flight {
                // Waiting while the rest of the batch is pending at the node it went
                // to. Given up after 8 s, at once when that node went down, or when
                // part of the batch left its pool without landing (a reorganisation
                // undid it and it no longer applies, a miner dropped it).
                let pending = self.nodes[at].pool.next_nonce(&me, state) > last;
                if nonce <= last && pending && self.now < sent + 8_000 && via == at {
                    // Still waiting: send its pending transactions around again, as
                    // a wallet does when a node may have missed them.
                    let again: Vec<SignedTx> = self.nodes[at]
                        .pool
                        .iter()
                        .filter(|tx| tx.payload.from() == me)
                        .cloned()
                        .collect();
                    for tx in again {
                        self.broadcast(at, Msg::Tx(Arc::new(tx)));
                    }
                    continue;
                }
                self.actors[a].in_flight = None;
            }
            if !actors::funded(state, &me) {
                continue;
            }
            let h = db.tip().height + 1;
            let key = &self.actors[a].key;
            let payloads = match self.actors[a].kind {
                Kind::Requester => {
                    if !requesting || !self.rng.gen_bool(0.5) {
                        continue;
                    }
                    self.report.jobs += 1;
                    actors::requester_step(&self.cat, state, key, h, DEADLINE_BLOCKS, &mut self.rng)
                }
                Kind::Provider(role) => {
                    if tb_chain::market::records::provider(state, &me).is_none() {
                        tb_chain::devchain::provider_payloads(me, 4, 1_000 * MICRO_PER_TOKEN)
                    } else {
                        let jobs = tb_chain::market::query::jobs(state, None);
                        actors::provider_step(&self.cat, state, key, role, h, &jobs)
                    }
                }
                Kind::Challenger(role) => {
                    // Liars stop with the faults; verifiers watch to the end.
                    if role != Challenger::Verifier && !requesting {
                        continue;
                    }
                    let jobs = tb_chain::market::query::jobs(state, None);
                    actors::challenger_step(&self.cat, state, key, role, h, &jobs, &mut self.rng)
                }
            };
            if payloads.is_empty() {
                continue;
            }
            let now = self.node_now(at);
            let chain_id = self.cat.params.chain_id;
            let node = &mut self.nodes[at];
            let db = node.db.as_ref().expect("live");
            let first = node.pool.next_nonce(&me, db.state());
            let floor = node.pool.config().fee_floor_per_byte;
            let mut sent = Vec::new();
            for (next, mut p) in (first..).zip(payloads) {
                *p.nonce_mut() = next;
                let tx = SignedTx::sign_paying_floor(p, &self.actors[a].key, chain_id, floor);
                if let Err(e) = node.pool.admit(tx.clone(), db.state(), now) {
                    if tr {
                        eprintln!("    refused: nonce {next} {}: {e}", payload_name(&tx));
                    }
                    break;
                }
                if tr {
                    eprintln!("    sent: nonce {next} {}", payload_name(&tx));
                }
                node.seen.insert(tx.id(), self.now);
                sent.push(tx);
            }
            if let Some(last) = sent.last() {
                self.actors[a].in_flight = Some((last.payload.nonce(), self.now, at));
            }
            for tx in sent {
                self.broadcast(at, Msg::Tx(Arc::new(tx)));
            }
            self.relay_ready(at);
        }
        Ok(())
    }

    /// After the nodes agree: every cheat on the chain slashed, every lying challenge
    /// lost, every verifier challenge won, and the invariants of each node.
    fn final_checks(&mut self) -> Result<(), Violation> {
        for i in 0..self.nodes.len() {
            self.check_node(i)?;
        }
        let db = self.nodes[0]
            .db
            .as_ref()
            .expect("converged: every node is up");
        let state = db.state();
        self.report.height = db.tip().height;
        let slashes = tb_chain::market::query::slashes(state, None);
        let mut caught: BTreeMap<String, u64> = BTreeMap::new();
        for (t, job) in tb_chain::market::query::jobs(state, None) {
            // A seal is a cheat once every replica has sealed (reveals are then due).
            let all_sealed = job.seals.len() as u64 >= u64::from(job.spec.redundancy);
            let cheats: BTreeSet<Address> = job
                .receipts
                .iter()
                .map(|x| x.provider)
                .chain(job.seals.iter().filter(|_| all_sealed).map(|s| s.provider))
                .filter(|a| self.kind_of(a).is_some_and(|k| !k.honest()))
                .collect();
            for a in cheats {
                let kind = self.kind_of(&a).map_or("unknown", |k| k.label());
                if self.cfg.trace.is_some()
                    && !slashes
                        .iter()
                        .any(|s| s.provider == a && s.task_id == Some(t))
                {
                    trace_job(state, &t);
                }
                let s = slashes
                    .iter()
                    .find(|s| s.provider == a && s.task_id == Some(t))
                    .ok_or_else(|| {
                        self.violation(format!(
                            "{kind} {a} cheated on job {t} and was not slashed (job {:?})",
                            job.state
                        ))
                    })?;
                if !matches!(
                    s.reason,
                    SlashReason::LostDispute | SlashReason::WithheldData
                ) {
                    return Err(
                        self.violation(format!("a cheat slashed for {:?}: {s:?}", s.reason))
                    );
                }
                *caught.entry(format!("{kind}/{:?}", s.reason)).or_default() += 1;
            }
            for d in disputes(state, &t) {
                let Some((c, _)) = d.challenger else {
                    continue;
                };

                match (self.kind_of(&c), d.ruling) {
                    (Some(Kind::Challenger(Challenger::Verifier)), Some(Outcome::Referee(x)))
                        if x != d.accused.leaf =>
                    {
                        self.report.verifier_challenges_won += 1
                    }
                    // Another challenge refuted the receipts first (several verifiers
                    // watch the same jobs): the bond went back.
                    (
                        Some(Kind::Challenger(Challenger::Verifier)),
                        Some(Outcome::NoHonestLeaf | Outcome::Moot),
                    ) => {}
                    (Some(Kind::Challenger(Challenger::Verifier)), r) => {
                        return Err(self.violation(format!(
                            "the honest verifier's challenge of {t} ended {r:?}"
                        )))
                    }
                    (Some(Kind::Challenger(_)), Some(Outcome::Withheld)) => {
                        self.report.lying_challenges_lost += 1
                    }
                    (Some(Kind::Challenger(_)), Some(Outcome::Referee(x)))
                        if x == d.accused.leaf =>
                    {
                        self.report.lying_challenges_lost += 1
                    }
                    (Some(Kind::Challenger(_)), r) => {
                        return Err(self.violation(format!("a lying challenge of {t} ended {r:?}")))
                    }
                    _ => {}
                }
            }
        }
        self.report.caught = caught;
        Ok(())
    }
}

/// Whether `a` is traced under `trace` (an address prefix).
fn traced(trace: &Option<String>, a: &Address) -> bool {
    trace
        .as_ref()
        .is_some_and(|p| a.to_string().starts_with(p.as_str()))
}

/// A transaction's kind, for traces.
fn payload_name(tx: &SignedTx) -> String {
    format!("{:?}", tx.payload)
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A job's record and disputes on stderr (traces).
fn trace_job(state: &tb_chain::State, t: &Id) {
    let Some(j) = tb_chain::market::records::job(state, t) else {
        return;
    };
    eprintln!(
        "  job {t}: {:?}, redundancy {}, submitted {}, deadline {}, reveal deadline {}, \
         window end {}; leases {:?}; seals {:?}; receipts {:?}",
        j.state,
        j.spec.redundancy,
        j.submitted,
        j.spec.deadline,
        j.reveal_deadline,
        j.window_end,
        j.leases
            .iter()
            .map(|l| (l.provider, l.start, l.expiry))
            .collect::<Vec<_>>(),
        j.seals
            .iter()
            .map(|x| (x.provider, x.height))
            .collect::<Vec<_>>(),
        j.receipts
            .iter()
            .map(|x| (x.provider, x.height))
            .collect::<Vec<_>>()
    );
    for d in disputes(state, t) {
        eprintln!(
            "  dispute {}: op {}, owed {:?}, bundles {:?}, ruling {:?}, deadline {}",
            d.index, d.op, d.owed, d.bundles, d.ruling, d.deadline
        );
    }
}
