//! The chain database: block import, fork choice, reorgs and queries.

use crate::backend::{CacheUsage, DiskState, StoreConfig, FLUSH_BLOCKS_MAX};
use crate::migrate::check_version;
use crate::schema::*;
use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableTable, Table};
use std::path::Path;
use std::sync::Arc;
use tb_chain::block::{block_encoded_bytes_max, genesis_block, tx_root};
use tb_chain::consensus::TimedHeader;
use tb_chain::forks::{find_fork, is_better, ForkNode};
use tb_chain::market::exec::task_id;
use tb_chain::state::{Changes, Commit};
use tb_chain::{
    build_block_with, execute_block, execute_block_with, validate_header, Block, BlockError,
    BlockHeader, ChainParams, SigCache, SignedTx, State, TxPayload,
};
use tb_primitives::{decode, encode, Address, Id};
use thiserror::Error;

/// `HeaderEntry::status`: header checked, body not yet executed.
pub const STATUS_HEADER_ONLY: u8 = 0;
/// `HeaderEntry::status`: executed and valid.
pub const STATUS_VALID: u8 = 1;
/// `HeaderEntry::status`: it or an ancestor failed execution.
pub const STATUS_INVALID: u8 = 2;

/// What the store knows about a header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HeaderEntry {
    pub header: BlockHeader,
    /// Sum of difficulties from genesis to this block inclusive.
    pub total_work: u128,
    /// 0 = header checked, body not yet executed; 1 = executed and valid;
    /// 2 = invalid (it or an ancestor failed execution).
    pub status: u8,
}

/// Where a canonical transaction sits.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    pub block: Id,
    pub height: u64,
    pub index: u32,
}

/// The result of a successful import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The block extended the best chain.
    Extended { height: u64 },
    /// The block's chain overtook the best chain.
    Reorged {
        ancestor: Id,
        undone: usize,
        applied: usize,
    },
    /// Stored on a side chain with no more work than the best one.
    SideChain,
    /// Already stored.
    AlreadyKnown,
}

/// Why a block was not imported.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("invalid block: {0}")]
    Block(#[from] BlockError),
    #[error("parent {0} is unknown")]
    UnknownParent(Id),
    #[error("block {0} is known to be invalid or descends from an invalid block")]
    KnownInvalid(Id),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("an earlier commit failed; reopen the store")]
    Poisoned,
}

impl From<redb::Error> for ImportError {
    fn from(e: redb::Error) -> Self {
        ImportError::Store(e.into())
    }
}

macro_rules! import_db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for ImportError {
            fn from(e: $t) -> Self {
                ImportError::Store(e.into())
            }
        }
    )*};
}
import_db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Upper bound on a stored header entry.
const ENTRY_BYTES_MAX: usize = 1024;
/// Upper bound on a stored undo record.
const UNDO_BYTES_MAX: usize = 256 * 1024 * 1024;

fn decode_entry(b: &[u8]) -> Result<HeaderEntry, StoreError> {
    decode(b, ENTRY_BYTES_MAX).map_err(|e| StoreError::Corrupt(format!("header entry: {e}")))
}

fn id_from(b: &[u8]) -> Result<Id, StoreError> {
    Ok(Id(b.try_into().map_err(|_| {
        StoreError::Corrupt("id is not 32 bytes".into())
    })?))
}

fn get_entry<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    id: &Id,
) -> Result<Option<HeaderEntry>, StoreError> {
    match t.get(id.0.as_slice())? {
        Some(g) => Ok(Some(decode_entry(g.value())?)),
        None => Ok(None),
    }
}

fn need_entry<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    id: &Id,
) -> Result<HeaderEntry, StoreError> {
    get_entry(t, id)?.ok_or_else(|| StoreError::Corrupt(format!("missing header {id}")))
}

/// Up to `n` timing records ending at `from` (inclusive), oldest first.
fn ancestors<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    from: &HeaderEntry,
    n: usize,
) -> Result<Vec<TimedHeader>, StoreError> {
    let mut out = Vec::with_capacity(n);
    let mut cur = from.header.clone();
    loop {
        out.push(TimedHeader {
            timestamp_ms: cur.timestamp_ms,
            difficulty: cur.difficulty,
        });
        if out.len() == n || cur.height == 0 {
            break;
        }
        cur = need_entry(t, &cur.parent)?.header;
    }
    out.reverse();
    Ok(out)
}

fn job_id(v: &[u8]) -> Result<Id, StoreError> {
    v.try_into()
        .map(Id)
        .map_err(|_| StoreError::Corrupt(format!("a job index value of {} bytes", v.len())))
}

struct Tables<'t> {
    meta: Table<'t, &'static str, &'static [u8]>,
    headers: Table<'t, &'static [u8], &'static [u8]>,
    bodies: Table<'t, &'static [u8], &'static [u8]>,
    canon: Table<'t, u64, &'static [u8]>,
    undo: Table<'t, &'static [u8], &'static [u8]>,
    tx_index: Table<'t, &'static [u8], &'static [u8]>,
    job_index: Table<'t, &'static [u8], &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(w: &'t redb::WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            meta: w.open_table(META)?,
            headers: w.open_table(HEADERS)?,
            bodies: w.open_table(BODIES)?,
            canon: w.open_table(CANON)?,
            undo: w.open_table(UNDO)?,
            tx_index: w.open_table(TX_INDEX)?,
            job_index: w.open_table(JOB_INDEX)?,
        })
    }

    fn put_entry(&mut self, id: &Id, e: &HeaderEntry) -> Result<(), StoreError> {
        self.headers.insert(id.0.as_slice(), encode(e).as_slice())?;
        Ok(())
    }

    fn load_block(&self, id: &Id) -> Result<Block, StoreError> {
        let header = need_entry(&self.headers, id)?.header;
        let body = self
            .bodies
            .get(id.0.as_slice())?
            .ok_or_else(|| StoreError::Corrupt(format!("missing body {id}")))?;
        Ok(Block {
            header,
            txs: decode_body(body.value())?,
        })
    }

    fn index_txs(&mut self, chain_id: u64, block: &Block, id: &Id) -> Result<(), StoreError> {
        let h = block.header.height;
        for (i, tx) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                block: *id,
                height: h,
                index: i as u32,
            };
            self.tx_index
                .insert(tx.id().0.as_slice(), encode(&loc).as_slice())?;
            if matches!(tx.payload, TxPayload::SubmitJob(_)) {
                let t = task_id(chain_id, h, tx);
                self.job_index
                    .insert(job_position(h, i as u32).as_slice(), t.0.as_slice())?;
            }
        }
        Ok(())
    }

    fn unindex_txs(&mut self, block: &Block) -> Result<(), StoreError> {
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.remove(tx.id().0.as_slice())?;
            if matches!(tx.payload, TxPayload::SubmitJob(_)) {
                self.job_index
                    .remove(job_position(block.header.height, i as u32).as_slice())?;
            }
        }
        Ok(())
    }
}

/// What was done to the in-memory state during an import, to undo it if the
/// import fails.
enum Step {
    /// A canonical block was undone (its forward changes are recomputed to redo it).
    Undone(Box<Block>),
    /// A block was applied; here is its undo list.
    Applied(Changes),
}

/// The chain database. redb holds everything durably; the best chain's state is
/// read through a bounded cache ([`StoreConfig`]). Each import commits its block,
/// undo record and indexes at once; the state changes of the last few blocks are
/// held in memory and flushed to the state tables together (at most
/// [`FLUSH_BLOCKS_MAX`] blocks or half the cache budget, at every reorg, on
/// [`ChainDb::flush`] and on drop), and re-executed from the stored blocks when a
/// store is opened after a crash.
pub struct ChainDb {
    db: Arc<Database>,
    disk: Arc<DiskState>,
    params: ChainParams,
    config: StoreConfig,
    state: State,
    /// Canonical blocks whose state changes are held in memory only.
    unflushed: u32,
    /// Blocks re-executed when the store was opened (their state was not flushed).
    reexecuted: u32,
    tip: HeaderEntry,
    tip_id: Id,
    verify_threads: usize,
    /// Transactions whose signatures were checked already (the mempool's).
    sig_cache: Option<Arc<SigCache>>,
    poisoned: bool,
}

impl std::fmt::Debug for ChainDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainDb")
            .field("tip", &self.tip_id)
            .field("height", &self.tip.header.height)
            .finish()
    }
}

impl Drop for ChainDb {
    fn drop(&mut self) {
        // Best effort: what is not flushed is re-executed at the next open.
        let _ = self.flush();
    }
}

impl ChainDb {
    /// Opens (or creates) the store at `path` for the network `params`, with the
    /// default cache.
    pub fn open(path: impl AsRef<Path>, params: ChainParams) -> Result<ChainDb, StoreError> {
        Self::open_with(path, params, StoreConfig::default())
    }

    /// Opens (or creates) the store at `path` for the network `params`.
    ///
    /// Refuses a newer schema and a different chain id, migrates older schemas,
    /// and checks the stored trie root against the state root of the block the state
    /// tables are at: it reads no state entry and rebuilds nothing, so opening costs
    /// the same at any state size. After a crash it re-executes the (at most
    /// [`FLUSH_BLOCKS_MAX`]) canonical blocks whose state changes were not flushed.
    pub fn open_with(
        path: impl AsRef<Path>,
        params: ChainParams,
        config: StoreConfig,
    ) -> Result<ChainDb, StoreError> {
        let db = config.create_db(path.as_ref())?;
        Self::open_db(db, params, config)
    }

    /// [`ChainDb::open_with`] on a redb storage backend instead of a file: the
    /// simulation's disk (`tb-sim`), which loses what was not synced when it crashes.
    pub fn open_on(
        backend: impl redb::StorageBackend,
        params: ChainParams,
        config: StoreConfig,
    ) -> Result<ChainDb, StoreError> {
        let db = config.create_db_on(backend)?;
        Self::open_db(db, params, config)
    }

    fn open_db(
        db: Database,
        params: ChainParams,
        config: StoreConfig,
    ) -> Result<ChainDb, StoreError> {
        match stored_version(&db)? {
            None => Self::init(&db, &params, &genesis_block(&params))?,
            Some(v) => check_version(&db, v)?,
        }
        Self::finish_open(db, params, config)
    }

    /// Creates a store whose genesis state holds `batches` of entries (written batch
    /// by batch, so memory stays bounded by one batch and the cache), for devnets
    /// with allocations at genesis and for benchmarks of large states. The genesis
    /// header is `genesis_header(params)` with that state's root, so its id differs
    /// from the plain genesis: such a chain syncs only with nodes made the same way.
    /// Refuses a path that already holds a store.
    pub fn create_with_genesis_state(
        path: impl AsRef<Path>,
        params: ChainParams,
        config: StoreConfig,
        batches: impl IntoIterator<Item = Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<ChainDb, StoreError> {
        if path.as_ref().exists() {
            return Err(StoreError::Corrupt(format!(
                "{} already exists: a genesis state is written to a new store only",
                path.as_ref().display()
            )));
        }
        let db = config.create_db(path.as_ref())?;
        Self::create_genesis_in(db, params, config, batches)
    }

    /// [`ChainDb::create_with_genesis_state`] on an empty redb storage backend.
    pub fn create_with_genesis_state_on(
        backend: impl redb::StorageBackend,
        params: ChainParams,
        config: StoreConfig,
        batches: impl IntoIterator<Item = Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<ChainDb, StoreError> {
        let db = config.create_db_on(backend)?;
        if stored_version(&db)?.is_some() {
            return Err(StoreError::Corrupt(
                "the backend already holds a store: a genesis state is written to a new store only"
                    .into(),
            ));
        }
        Self::create_genesis_in(db, params, config, batches)
    }

    fn create_genesis_in(
        db: Database,
        params: ChainParams,
        config: StoreConfig,
        batches: impl IntoIterator<Item = Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<ChainDb, StoreError> {
        let db = Arc::new(db);
        {
            let w = db.begin_write()?;
            create_tables(&w)?;
            w.commit()?;
        }
        let disk = Arc::new(DiskState::open(db.clone(), config)?);
        let mut state = State::with_backend(disk.clone());
        for batch in batches {
            let changes: Changes = batch.into_iter().map(|(k, v)| (k, Some(v))).collect();
            state.apply(&changes);
            let c = state.commit_batch();
            if let Some(f) = state.fault() {
                return Err(StoreError::Corrupt(f));
            }
            let w = db.begin_write()?;
            DiskState::write(&w, &c)?;
            w.commit()?;
            disk.refresh(&c)?;
            state.committed();
        }
        let mut g = genesis_block(&params);
        g.header.state_root = state.root();
        drop((state, disk));
        let db = Arc::into_inner(db)
            .ok_or_else(|| StoreError::Corrupt("the store is still in use".into()))?;
        Self::init(&db, &params, &g)?;
        Self::finish_open(db, params, config)
    }

    fn finish_open(
        db: Database,
        params: ChainParams,
        config: StoreConfig,
    ) -> Result<ChainDb, StoreError> {
        let r = db.begin_read()?;
        let meta = r.open_table(META)?;
        let chain_id = meta
            .get(KEY_CHAIN_ID)?
            .and_then(|g| g.value().try_into().ok().map(u64::from_le_bytes))
            .ok_or_else(|| StoreError::Corrupt("no chain id".into()))?;
        if chain_id != params.chain_id {
            return Err(StoreError::WrongChain {
                found: chain_id,
                expected: params.chain_id,
            });
        }
        let tip_id = id_from(
            meta.get(KEY_TIP)?
                .ok_or_else(|| StoreError::Corrupt("no tip".into()))?
                .value(),
        )?;
        let state_tip = match meta.get(KEY_STATE_TIP)? {
            Some(g) => id_from(g.value())?,
            None => return Err(StoreError::Corrupt("no state tip".into())),
        };
        let headers = r.open_table(HEADERS)?;
        let tip = need_entry(&headers, &tip_id)?;
        let at = need_entry(&headers, &state_tip)?;
        let canon = r.open_table(CANON)?;
        let on_best = canon
            .get(at.header.height)?
            .is_some_and(|g| g.value() == state_tip.0.as_slice());
        if !on_best || at.header.height > tip.header.height {
            return Err(StoreError::Corrupt(format!(
                "the state tables are at {state_tip}, not on the best chain"
            )));
        }
        drop((meta, headers, canon, r));
        let db = Arc::new(db);
        let disk = Arc::new(DiskState::open(db.clone(), config)?);
        let mut state = State::with_backend(disk.clone());
        let root = state.root();
        if root != at.header.state_root {
            return Err(StoreError::Corrupt(format!(
                "state root {root} differs from block {state_tip}'s {} at height {}",
                at.header.state_root, at.header.height
            )));
        }
        let mut chain = ChainDb {
            db,
            disk,
            params,
            config,
            state,
            tip,
            tip_id,
            verify_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sig_cache: None,
            poisoned: false,
            unflushed: 0,
            reexecuted: 0,
        };
        // After a crash: re-execute the blocks whose state was not flushed.
        for h in at.header.height + 1..=chain.tip.header.height {
            let b = chain
                .block_at(h)?
                .ok_or_else(|| StoreError::Corrupt(format!("no canonical block at {h}")))?;
            execute_block(&chain.params, &mut chain.state, &b, chain.verify_threads).map_err(
                |e| StoreError::Corrupt(format!("re-executing block {h} after a restart: {e}")),
            )?;
            chain.unflushed += 1;
            chain.reexecuted += 1;
        }
        chain.flush()?;
        Ok(chain)
    }

    /// Writes the state changes held in memory to the state tables (one
    /// transaction). Imports do this on their own; call it to bound what a crash
    /// would re-execute, as a node does when it stops.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.unflushed == 0 || self.poisoned {
            return Ok(());
        }
        if let Some(f) = self.state.fault() {
            return Err(StoreError::Corrupt(f));
        }
        let w = self.db.begin_write()?;
        let c = self.write_state(&w, self.tip_id)?;
        w.commit()?;
        self.state_written(&c)
    }

    /// Writes the state held in memory into `w` as the state of block `at`; nothing
    /// is forgotten until [`ChainDb::state_written`].
    fn write_state(&mut self, w: &redb::WriteTransaction, at: Id) -> Result<Commit, StoreError> {
        let c = self.state.commit_batch();
        DiskState::write(w, &c)?;
        w.open_table(META)?.insert(KEY_STATE_TIP, at.0.as_slice())?;
        Ok(c)
    }

    /// The transaction holding `c` committed: read through it, drop the copies.
    fn state_written(&mut self, c: &Commit) -> Result<(), StoreError> {
        self.disk.refresh(c)?;
        self.state.committed();
        self.unflushed = 0;
        Ok(())
    }

    /// Canonical blocks whose state changes are held in memory, not yet flushed.
    pub fn unflushed_blocks(&self) -> u32 {
        self.unflushed
    }

    /// The coinbases of the canonical chain summed (consumer, industrial): what was
    /// minted since genesis, for the supply audit. Reads every canonical header.
    pub fn canonical_coinbases(&self) -> Result<(u128, u128), StoreError> {
        let (mut c, mut i) = (0u128, 0u128);
        for h in 0..=self.tip.header.height {
            let id = self
                .canonical_id(h)?
                .ok_or_else(|| StoreError::Corrupt(format!("no canonical block at {h}")))?;
            let e = self
                .header_entry(&id)?
                .ok_or_else(|| StoreError::Corrupt(format!("no header for {id}")))?;
            c += u128::from(e.header.coinbase_consumer);
            i += u128::from(e.header.coinbase_industrial);
        }
        Ok((c, i))
    }

    /// Blocks re-executed when this store was opened: those whose state changes a
    /// crash kept from being flushed.
    pub fn reexecuted_at_open(&self) -> u32 {
        self.reexecuted
    }

    fn init(db: &Database, params: &ChainParams, g: &Block) -> Result<(), StoreError> {
        let id = g.id();
        let w = db.begin_write()?;
        create_tables(&w)?;
        {
            let mut t = Tables::open(&w)?;
            t.put_entry(
                &id,
                &HeaderEntry {
                    header: g.header.clone(),
                    total_work: g.header.difficulty as u128,
                    status: STATUS_VALID,
                },
            )?;
            t.bodies
                .insert(id.0.as_slice(), encode(&g.txs).as_slice())?;
            t.canon.insert(0, id.0.as_slice())?;
            t.meta
                .insert(KEY_CHAIN_ID, params.chain_id.to_le_bytes().as_slice())?;
            t.meta.insert(KEY_TIP, id.0.as_slice())?;
            t.meta.insert(KEY_STATE_TIP, id.0.as_slice())?;
        }
        write_version(&w, SCHEMA_VERSION)?;
        w.commit()?;
        Ok(())
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Threads used for signature checks during import (default: all cores).
    pub fn set_verify_threads(&mut self, n: usize) {
        self.verify_threads = n.max(1);
    }

    /// Skips, on import and when building, the signature checks of transactions
    /// whose ids `cache` holds (the mempool's: `Mempool::sig_cache`). A transaction
    /// it does not hold is checked as always.
    pub fn set_sig_cache(&mut self, cache: Arc<SigCache>) {
        self.sig_cache = Some(cache);
    }

    pub fn tip(&self) -> &BlockHeader {
        &self.tip.header
    }

    pub fn tip_id(&self) -> Id {
        self.tip_id
    }

    pub fn tip_total_work(&self) -> u128 {
        self.tip.total_work
    }

    /// The best chain's current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What the state cache holds, and its hits and misses since opening.
    pub fn cache_usage(&self) -> CacheUsage {
        self.disk.cache_usage()
    }

    /// A stored header entry by id (any chain).
    pub fn header_entry(&self, id: &Id) -> Result<Option<HeaderEntry>, StoreError> {
        let r = self.db.begin_read()?;
        get_entry(&r.open_table(HEADERS)?, id)
    }

    /// The canonical block id at `height`.
    pub fn canonical_id(&self, height: u64) -> Result<Option<Id>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CANON)?;
        let g = t.get(height)?;
        g.map(|g| id_from(g.value())).transpose()
    }

    /// A stored block by id (any chain).
    pub fn block(&self, id: &Id) -> Result<Option<Block>, StoreError> {
        let r = self.db.begin_read()?;
        let headers = r.open_table(HEADERS)?;
        let Some(e) = get_entry(&headers, id)? else {
            return Ok(None);
        };
        let bodies = r.open_table(BODIES)?;
        let body = bodies
            .get(id.0.as_slice())?
            .ok_or_else(|| StoreError::Corrupt(format!("missing body {id}")))?;
        Ok(Some(Block {
            header: e.header,
            txs: decode_body(body.value())?,
        }))
    }

    /// The canonical block at `height`.
    pub fn block_at(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self.canonical_id(height)? {
            Some(id) => self.block(&id),
            None => Ok(None),
        }
    }

    /// Where a transaction sits on the canonical chain.
    pub fn tx_location(&self, tx: &Id) -> Result<Option<TxLocation>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TX_INDEX)?;
        let g = t.get(tx.0.as_slice())?;
        g.map(|g| {
            decode(g.value(), 64).map_err(|e| StoreError::Corrupt(format!("tx location: {e}")))
        })
        .transpose()
    }

    /// The canonical chain's jobs, newest first (by submission: height, then place in
    /// the block), skipping `offset`, at most `limit`; with how many there are. Reads
    /// the job index: the cost grows with `offset + limit`, not with every job.
    pub fn jobs_newest(&self, offset: u64, limit: usize) -> Result<(u64, Vec<Id>), StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(JOB_INDEX)?;
        let total = redb::ReadableTableMetadata::len(&t)?;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for e in t.iter()?.rev().skip(skip).take(limit) {
            out.push(job_id(e?.1.value())?);
        }
        Ok((total, out))
    }

    /// Calls `f` with each of the canonical chain's jobs, newest first, until it
    /// returns `false`.
    pub fn for_each_job_newest(&self, mut f: impl FnMut(Id) -> bool) -> Result<(), StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(JOB_INDEX)?;
        for e in t.iter()?.rev() {
            if !f(job_id(e?.1.value())?) {
                break;
            }
        }
        Ok(())
    }

    /// Timing records of the tip and its ancestors, enough for the retarget.
    pub fn tip_ancestors(&self) -> Result<Vec<TimedHeader>, StoreError> {
        let r = self.db.begin_read()?;
        ancestors(
            &r.open_table(HEADERS)?,
            &self.tip,
            self.params.retarget_window as usize + 1,
        )
    }

    /// A block template on the tip from `candidates` (unsealed: see `tb_chain::mine`).
    pub fn build_template<'a>(
        &mut self,
        candidates: impl IntoIterator<Item = &'a SignedTx>,
        now_ms: u64,
        beneficiary: Address,
    ) -> Result<Block, StoreError> {
        let anc = self.tip_ancestors()?;
        let tip = self.tip.header.clone();
        Ok(build_block_with(
            &self.params,
            &mut self.state,
            &tip,
            &anc,
            candidates,
            now_ms,
            beneficiary,
            self.sig_cache.as_deref(),
        ))
    }

    /// Imports one block. On success everything it changed is committed in one
    /// redb transaction; on failure nothing is, except a record that the
    /// block is invalid when its body failed execution.
    pub fn import_block(
        &mut self,
        block: &Block,
        now_ms: u64,
    ) -> Result<ImportOutcome, ImportError> {
        if self.poisoned {
            return Err(ImportError::Poisoned);
        }
        let enc_len = encode(block).len();
        if enc_len > block_encoded_bytes_max(&self.params) {
            return Err(BlockError::TooLarge {
                got: enc_len,
                max: block_encoded_bytes_max(&self.params),
            }
            .into());
        }
        // A body that is not the one the header commits to says nothing about the
        // header: refused before anything is stored, so a peer cannot store it under
        // the honest block's id (which it shares) or have that id marked invalid.
        if tx_root(&block.txs) != block.header.tx_root {
            return Err(BlockError::BadTxRoot.into());
        }
        let id = block.id();
        let w = self.db.begin_write()?;
        let mut steps: Vec<Step> = Vec::new();
        let result = self.import_in(&w, block, id, now_ms, &mut steps);
        if let Some(f) = self.state.fault() {
            // A read of the state failed: nothing computed from it is trusted,
            // neither a new tip nor a verdict that the block is invalid.
            drop(w);
            self.poisoned = true;
            return Err(StoreError::Corrupt(f).into());
        }
        match result {
            Ok((outcome, new_tip)) => {
                // The state is flushed with this block when a reorg removed undo
                // records (a restart re-executes canonical blocks only), when
                // enough blocks wait, or when they hold enough memory.
                let flush = new_tip.is_some()
                    && (matches!(outcome, ImportOutcome::Reorged { .. })
                        || self.unflushed + 1 >= FLUSH_BLOCKS_MAX
                        || self.state.held_bytes() >= self.config.unflushed_bytes());
                let written = (|| -> Result<Option<Commit>, StoreError> {
                    let commit = if flush {
                        Some(self.write_state(&w, id)?)
                    } else {
                        None
                    };
                    w.commit()?;
                    Ok(commit)
                })();
                let commit = match written {
                    Ok(c) => c,
                    Err(e) => {
                        // Memory goes back to the old tip; the store may be
                        // damaged, so refuse further imports until reopened.
                        self.poisoned = true;
                        self.rollback_memory(steps)?;
                        return Err(e.into());
                    }
                };
                if let Some(c) = &commit {
                    if let Err(e) = self.state_written(c) {
                        self.poisoned = true;
                        return Err(e.into());
                    }
                } else if new_tip.is_some() {
                    self.unflushed += 1;
                }
                if let Some(tip) = new_tip {
                    self.tip = tip;
                    self.tip_id = id;
                }
                Ok(outcome)
            }
            Err(ImportFail::Plain(e)) => {
                drop(w); // abort
                self.rollback_memory(steps)?;
                Err(e)
            }
            Err(ImportFail::BadBody { bad, error }) => {
                drop(w); // abort
                self.rollback_memory(steps)?;
                self.record_invalid(block, id, bad)?;
                Err(ImportError::Block(error))
            }
            Err(ImportFail::InvalidAncestor { bad }) => {
                drop(w); // abort
                self.rollback_memory(steps)?;
                self.record_invalid(block, id, bad)?;
                Err(ImportError::KnownInvalid(bad))
            }
        }
    }

    fn rollback_memory(&mut self, steps: Vec<Step>) -> Result<(), ImportError> {
        for s in steps.into_iter().rev() {
            match s {
                Step::Applied(undo) => self.state.apply(&undo),
                Step::Undone(block) => {
                    // A block of the best chain: it executed before, it executes again.
                    execute_block(&self.params, &mut self.state, &block, self.verify_threads)
                        .map_err(|e| {
                            self.poisoned = true;
                            StoreError::Corrupt(format!(
                                "re-applying a canonical block failed: {e}"
                            ))
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Stores `block` and marks `bad` (and `block`, which descends from it or is it) invalid.
    fn record_invalid(&mut self, block: &Block, id: Id, bad: Id) -> Result<(), ImportError> {
        let w = self.db.begin_write()?;
        {
            let mut t = Tables::open(&w)?;
            for x in [bad, id] {
                let mut e = match get_entry(&t.headers, &x)? {
                    Some(e) => e,
                    None => {
                        let parent = need_entry(&t.headers, &block.header.parent)?;
                        t.bodies
                            .insert(id.0.as_slice(), encode(&block.txs).as_slice())?;
                        HeaderEntry {
                            header: block.header.clone(),
                            total_work: parent.total_work + block.header.difficulty as u128,
                            status: STATUS_INVALID,
                        }
                    }
                };
                e.status = STATUS_INVALID;
                t.put_entry(&x, &e)?;
            }
        }
        w.commit().map_err(StoreError::from)?;
        Ok(())
    }

    fn import_in(
        &mut self,
        w: &redb::WriteTransaction,
        block: &Block,
        id: Id,
        now_ms: u64,
        steps: &mut Vec<Step>,
    ) -> Result<(ImportOutcome, Option<HeaderEntry>), ImportFail> {
        let mut t = Tables::open(w).map_err(ImportError::from)?;
        if let Some(e) = get_entry(&t.headers, &id).map_err(ImportError::from)? {
            return if e.status == STATUS_INVALID {
                Err(ImportError::KnownInvalid(id).into())
            } else {
                Ok((ImportOutcome::AlreadyKnown, None))
            };
        }
        let parent = get_entry(&t.headers, &block.header.parent)
            .map_err(ImportError::from)?
            .ok_or(ImportError::UnknownParent(block.header.parent))?;
        if parent.status == STATUS_INVALID {
            return Err(ImportError::KnownInvalid(block.header.parent).into());
        }
        let anc = ancestors(
            &t.headers,
            &parent,
            self.params.retarget_window as usize + 1,
        )
        .map_err(ImportError::from)?;
        validate_header(&self.params, &block.header, &parent.header, &anc, now_ms)
            .map_err(ImportError::from)?;
        let mut entry = HeaderEntry {
            header: block.header.clone(),
            total_work: parent.total_work + block.header.difficulty as u128,
            status: STATUS_HEADER_ONLY,
        };
        t.put_entry(&id, &entry).map_err(ImportError::from)?;
        t.bodies
            .insert(id.0.as_slice(), encode(&block.txs).as_slice())
            .map_err(|e| ImportError::from(StoreError::from(e)))?;
        if !is_better(entry.total_work, self.tip.total_work) {
            return Ok((ImportOutcome::SideChain, None));
        }

        let lookup = |x: &Id| -> Result<ForkNode, StoreError> {
            let e = need_entry(&t.headers, x)?;
            Ok(ForkNode {
                id: *x,
                parent: e.header.parent,
                height: e.header.height,
            })
        };
        let path = find_fork(lookup, self.tip_id, id).map_err(ImportError::from)?;
        let s = |e: StoreError| ImportFail::Plain(e.into());
        // A branch through a block known to be invalid is refused before
        // anything is undone.
        for aid in &path.apply {
            if need_entry(&t.headers, aid).map_err(s)?.status == STATUS_INVALID {
                return Err(ImportFail::InvalidAncestor { bad: *aid });
            }
        }

        for uid in &path.undo {
            let old = t.load_block(uid).map_err(s)?;
            let undo: Changes = {
                let g = t
                    .undo
                    .get(uid.0.as_slice())
                    .map_err(|e| s(e.into()))?
                    .ok_or_else(|| s(StoreError::Corrupt(format!("no undo for {uid}"))))?;
                decode(g.value(), UNDO_BYTES_MAX)
                    .map_err(|e| s(StoreError::Corrupt(format!("undo: {e}"))))?
            };
            #[cfg(feature = "planted-bugs")]
            let undo = crate::planted::skip_market_undo(undo);
            self.state.apply(&undo);
            steps.push(Step::Undone(Box::new(old.clone())));
            t.undo.remove(uid.0.as_slice()).map_err(|e| s(e.into()))?;
            t.canon.remove(old.header.height).map_err(|e| s(e.into()))?;
            t.unindex_txs(&old).map_err(s)?;
        }
        for aid in &path.apply {
            let blk = if *aid == id {
                block.clone()
            } else {
                t.load_block(aid).map_err(s)?
            };
            let eff = match execute_block_with(
                &self.params,
                &mut self.state,
                &blk,
                self.verify_threads,
                self.sig_cache.as_deref(),
            ) {
                Ok(eff) => eff,
                Err(error) => return Err(ImportFail::BadBody { bad: *aid, error }),
            };
            steps.push(Step::Applied(eff.undo.clone()));
            t.undo
                .insert(aid.0.as_slice(), encode(&eff.undo).as_slice())
                .map_err(|e| s(e.into()))?;
            t.canon
                .insert(blk.header.height, aid.0.as_slice())
                .map_err(|e| s(e.into()))?;
            t.index_txs(self.params.chain_id, &blk, aid).map_err(s)?;
            let mut e = need_entry(&t.headers, aid).map_err(s)?;
            e.status = STATUS_VALID;
            t.put_entry(aid, &e).map_err(s)?;
            if *aid == id {
                entry = e;
            }
        }
        t.meta
            .insert(KEY_TIP, id.0.as_slice())
            .map_err(|e| s(e.into()))?;
        let outcome = if path.undo.is_empty() {
            ImportOutcome::Extended {
                height: block.header.height,
            }
        } else {
            ImportOutcome::Reorged {
                ancestor: path.ancestor,
                undone: path.undo.len(),
                applied: path.apply.len(),
            }
        };
        Ok((outcome, Some(entry)))
    }
}

enum ImportFail {
    Plain(ImportError),
    BadBody { bad: Id, error: BlockError },
    InvalidAncestor { bad: Id },
}

impl From<ImportError> for ImportFail {
    fn from(e: ImportError) -> Self {
        ImportFail::Plain(e)
    }
}
