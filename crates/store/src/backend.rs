//! The state on disk: the [`StateBackend`] that `tb-chain`'s `State` reads through,
//! over redb tables and a bounded cache.
//!
//! * `state`: every entry by key. A chunk of a published object (`Mb ‖ …`) holds
//!   only its value hash (32 bytes); the bytes live in `chunks`, keyed by that hash,
//!   with the number of state keys naming them in `chunk_refs`. The trie commits to
//!   the same value hash, so where the bytes live does not touch the state root.
//! * `trie`: inner nodes by position; `meta.trie_root` the root reference.
//!
//! Reads go through a read snapshot, taken again after every flush (the only
//! commits that change these tables), and a cache of entries and trie nodes bounded
//! in bytes ([`StoreConfig::cache_bytes`]). A read that fails
//! answers "absent" and is latched in [`DiskState::fault`], which the chain database
//! checks before it commits anything computed from such a read.

use crate::schema::*;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use redb::{Database, ReadOnlyTable, ReadableTable, WriteTransaction};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tb_chain::market::records::is_chunk_key;
use tb_chain::state::{Commit, StateBackend};
use tb_chain::trie::{value_hash, Child, InnerNode, NodePos, NodeSource};

/// Tuning of the state on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Bytes of memory the state may hold: a quarter in redb's page cache, an
    /// eighth each for decoded state entries and trie nodes, and half for the
    /// state written by blocks since the last flush (see [`FLUSH_BLOCKS_MAX`]).
    /// Published chunks are never held in the entry cache: they are read from disk
    /// when asked for.
    pub cache_bytes: u64,
}

/// Most blocks whose state changes are held in memory before they are written to
/// the state tables (their blocks and undo records are written at once): it bounds
/// the blocks a restart after a crash re-executes.
pub const FLUSH_BLOCKS_MAX: u32 = 64;

impl StoreConfig {
    fn budget(&self) -> u64 {
        self.cache_bytes.max(CACHE_BYTES_MIN)
    }

    /// redb's page cache.
    pub(crate) fn page_cache_bytes(&self) -> usize {
        (self.budget() / 4) as usize
    }

    /// Each of the entry and node caches.
    fn item_cache_bytes(&self) -> u64 {
        self.budget() / 8
    }

    /// The state changes held in memory before a flush.
    pub(crate) fn unflushed_bytes(&self) -> u64 {
        self.budget() / 2
    }

    /// Opens or creates the redb file with this page cache.
    pub(crate) fn create_db(&self, path: &std::path::Path) -> Result<redb::Database, StoreError> {
        Ok(redb::Builder::new()
            .set_cache_size(self.page_cache_bytes())
            .create(path)?)
    }

    /// Opens or creates a redb database on `backend` with this page cache.
    pub(crate) fn create_db_on(
        &self,
        backend: impl redb::StorageBackend,
    ) -> Result<redb::Database, StoreError> {
        Ok(redb::Builder::new()
            .set_cache_size(self.page_cache_bytes())
            .create_with_backend(backend)?)
    }
}

/// Default cache: 256 MiB.
pub const CACHE_BYTES_DEFAULT: u64 = 256 << 20;
/// Smallest cache accepted (1 MiB): the cache is an optimisation, the tables are
/// the truth, so any size is correct; this keeps the shards meaningful.
pub const CACHE_BYTES_MIN: u64 = 1 << 20;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: CACHE_BYTES_DEFAULT,
        }
    }
}

/// Approximate bytes a cached item holds (key, value, bookkeeping).
#[derive(Clone)]
struct Bytes;

impl Weighter<Vec<u8>, Option<Vec<u8>>> for Bytes {
    fn weight(&self, k: &Vec<u8>, v: &Option<Vec<u8>>) -> u64 {
        (k.len() + v.as_ref().map_or(0, |v| v.len()) + 64) as u64
    }
}

impl Weighter<NodePos, InnerNode> for Bytes {
    fn weight(&self, _: &NodePos, _: &InnerNode) -> u64 {
        (std::mem::size_of::<NodePos>() + std::mem::size_of::<InnerNode>() + 32) as u64
    }
}

type Bin = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A consistent read view of the committed state.
struct Snapshot {
    state: Bin,
    trie: Bin,
    chunks: Bin,
    root: Option<Child>,
}

impl Snapshot {
    fn take(db: &Database) -> Result<Snapshot, StoreError> {
        let r = db.begin_read()?;
        let meta = r.open_table(META)?;
        let root = match meta.get(KEY_TRIE_ROOT)? {
            None => None,
            Some(g) => Some(
                Child::decode(g.value())
                    .ok_or_else(|| StoreError::Corrupt("trie root is malformed".into()))?,
            ),
        };
        Ok(Snapshot {
            state: r.open_table(STATE)?,
            trie: r.open_table(TRIE)?,
            chunks: r.open_table(CHUNKS)?,
            root,
        })
    }
}

/// The committed state in redb, behind a bounded cache.
pub(crate) struct DiskState {
    db: Arc<Database>,
    snap: RwLock<Snapshot>,
    entries: Cache<Vec<u8>, Option<Vec<u8>>, Bytes>,
    nodes: Cache<NodePos, InnerNode, Bytes>,
    hits: AtomicU64,
    misses: AtomicU64,
    fault: Mutex<Option<String>>,
}

impl DiskState {
    pub(crate) fn open(db: Arc<Database>, config: StoreConfig) -> Result<DiskState, StoreError> {
        let snap = Snapshot::take(&db)?;
        let q = config.item_cache_bytes();
        Ok(DiskState {
            db,
            snap: RwLock::new(snap),
            entries: Cache::with_weighter((q / 128) as usize, q, Bytes),
            nodes: Cache::with_weighter((q / 230) as usize, q, Bytes),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fault: Mutex::new(None),
        })
    }

    fn latch(&self, what: String) {
        let mut f = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(what);
        }
    }

    fn snap(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snap.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes of a chunk whose state entry holds `stub` (its value hash).
    fn chunk_bytes(&self, snap: &Snapshot, key: &[u8], stub: &[u8]) -> Option<Vec<u8>> {
        match snap.chunks.get(stub) {
            Ok(Some(g)) => Some(g.value().to_vec()),
            Ok(None) => {
                self.latch(format!(
                    "the bytes of chunk entry {} are missing",
                    hex::encode(key)
                ));
                None
            }
            Err(e) => {
                self.latch(format!("reading a chunk: {e}"));
                None
            }
        }
    }

    /// Writes `c` inside `w` (the caller commits). Chunk bytes are stored once per
    /// distinct content and counted; the last reference removes them.
    pub(crate) fn write(w: &WriteTransaction, c: &Commit) -> Result<(), StoreError> {
        let mut state = w.open_table(STATE)?;
        let mut chunks = w.open_table(CHUNKS)?;
        let mut refs = w.open_table(CHUNK_REFS)?;
        let release = |refs: &mut redb::Table<&[u8], u64>,
                       chunks: &mut redb::Table<&[u8], &[u8]>,
                       stub: &[u8]|
         -> Result<(), StoreError> {
            let n = refs.get(stub)?.map_or(0, |g| g.value());
            if n <= 1 {
                refs.remove(stub)?;
                chunks.remove(stub)?;
            } else {
                refs.insert(stub, n - 1)?;
            }
            Ok(())
        };
        for (k, v) in &c.entries {
            if !is_chunk_key(k) {
                match v {
                    Some(v) => state.insert(k.as_slice(), v.as_slice())?,
                    None => state.remove(k.as_slice())?,
                };
                continue;
            }
            let old = state.get(k.as_slice())?.map(|g| g.value().to_vec());
            let new = v.as_ref().map(|v| (value_hash(v), v));
            if let (Some(o), Some((h, _))) = (&old, &new) {
                if o.as_slice() == h.0.as_slice() {
                    continue; // the same bytes again
                }
            }
            if let Some(o) = old {
                release(&mut refs, &mut chunks, &o)?;
            }
            match new {
                Some((h, bytes)) => {
                    let stub = h.0.as_slice();
                    let n = refs.get(stub)?.map_or(0, |g| g.value());
                    if n == 0 {
                        chunks.insert(stub, bytes.as_slice())?;
                    }
                    refs.insert(stub, n + 1)?;
                    state.insert(k.as_slice(), stub)?;
                }
                None => {
                    state.remove(k.as_slice())?;
                }
            }
        }
        let mut trie = w.open_table(TRIE)?;
        for (p, n) in &c.nodes {
            match n {
                Some(n) => trie.insert(p.as_slice(), n.encode().as_slice())?,
                None => trie.remove(p.as_slice())?,
            };
        }
        let mut meta = w.open_table(META)?;
        match &c.root {
            Some(r) => meta.insert(KEY_TRIE_ROOT, r.encode().as_slice())?,
            None => meta.remove(KEY_TRIE_ROOT)?,
        };
        Ok(())
    }

    /// After `c` was committed: a new read snapshot, and the cache brought up to date.
    pub(crate) fn refresh(&self, c: &Commit) -> Result<(), StoreError> {
        let snap = Snapshot::take(&self.db)?;
        *self.snap.write().unwrap_or_else(|p| p.into_inner()) = snap;
        for (k, v) in &c.entries {
            if !is_chunk_key(k) {
                self.entries.insert(k.clone(), v.clone());
            }
        }
        for (p, n) in &c.nodes {
            match n {
                Some(n) => self.nodes.insert(*p, *n),
                None => {
                    self.nodes.remove(p);
                }
            }
        }
        Ok(())
    }

    /// Bytes and items held by the cache.
    pub(crate) fn cache_usage(&self) -> CacheUsage {
        CacheUsage {
            entries: self.entries.len(),
            nodes: self.nodes.len(),
            bytes: self.entries.weight() + self.nodes.weight(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// What the state cache holds and how well it serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: usize,
    pub nodes: usize,
    /// Approximate bytes held.
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

impl NodeSource for DiskState {
    fn node(&self, pos: &NodePos) -> Option<InnerNode> {
        if let Some(n) = self.nodes.get(pos) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(n);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let got = self.snap().trie.get(pos.as_slice());
        match got {
            Ok(Some(g)) => match InnerNode::decode(g.value()) {
                Some(n) => {
                    self.nodes.insert(*pos, n);
                    Some(n)
                }
                None => {
                    self.latch(format!("trie node {} is malformed", hex::encode(pos)));
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.latch(format!("reading trie node {}: {e}", hex::encode(pos)));
                None
            }
        }
    }
}

impl StateBackend for DiskState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let chunk = is_chunk_key(key);
        if !chunk {
            if let Some(v) = self.entries.get(key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return v;
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        let snap = self.snap();
        let v = match snap.state.get(key) {
            Ok(v) => v.map(|g| g.value().to_vec()),
            Err(e) => {
                self.latch(format!("reading state entry {}: {e}", hex::encode(key)));
                return None;
            }
        };
        if chunk {
            return v.and_then(|stub| self.chunk_bytes(&snap, key, &stub));
        }
        self.entries.insert(key.to_vec(), v.clone());
        v
    }

    fn range(&self, lo: &[u8], hi: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let snap = self.snap();
        let upper = match hi {
            Some(h) => Bound::Excluded(h),
            None => Bound::Unbounded,
        };
        let iter = match snap.state.range::<&[u8]>((Bound::Included(lo), upper)) {
            Ok(i) => i,
            Err(e) => {
                self.latch(format!("scanning the state: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in iter {
            match e {
                Ok((k, v)) => {
                    let k = k.value().to_vec();
                    let v = if is_chunk_key(&k) {
                        match self.chunk_bytes(&snap, &k, v.value()) {
                            Some(b) => b,
                            None => continue,
                        }
                    } else {
                        v.value().to_vec()
                    };
                    out.push((k, v));
                }
                Err(e) => {
                    self.latch(format!("scanning the state: {e}"));
                    break;
                }
            }
        }
        out
    }

    fn root(&self) -> Option<Child> {
        self.snap().root
    }

    fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
