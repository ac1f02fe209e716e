//! Ledger state: a key-value map authenticated by the crit-bit trie.
//!
//! Keys (first byte is the record kind):
//!
//! | key                    | value (canonical encoding)        |
//! |------------------------|-----------------------------------|
//! | `A` ‖ address (32)     | [`Account`]                       |
//! | `H` ‖ handle bytes     | owner [`Address`]                 |
//! | `R` ‖ address (32)     | the address's handle (`String`)   |
//! | `T` ‖ `burned`         | [`Totals`] (fees burned)          |
//! | `M` ‖ kind ‖ …         | the compute market (`crate::market::records`) |
//! | `G` ‖ kind ‖ …         | governance: proposals, votes, the active market parameters, schedules, shadow reports (`crate::governance`) |
//!
//! A [`State`] is a view: committed entries and trie nodes come from a
//! [`StateBackend`] (the store's redb tables behind a bounded cache, or nothing for a
//! state held in memory), and the writes since the last commit are held here until
//! the store writes them ([`State::commit_batch`], [`State::committed`]). The crate
//! does no IO: the backend is supplied from outside.

use crate::trie::{key_hash, value_hash, Child, InnerNode, NodePos, NodeSource, Trie};
use borsh::{BorshDeserialize, BorshSerialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use tb_primitives::{decode, encode, Address, Id};

/// A balance-holding account.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Number of transactions this account has sent; the next must carry it.
    pub nonce: u64,
    pub consumer: u64,
    pub industrial: u64,
}

/// Chain-wide running totals kept in state.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Totals {
    pub burned_consumer: u64,
    pub burned_industrial: u64,
}

pub fn account_key(a: &Address) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(b'A');
    k.extend_from_slice(&a.0);
    k
}

pub fn handle_key(h: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + h.len());
    k.push(b'H');
    k.extend_from_slice(h.as_bytes());
    k
}

pub fn reverse_handle_key(a: &Address) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(b'R');
    k.extend_from_slice(&a.0);
    k
}

pub fn totals_key() -> Vec<u8> {
    b"Tburned".to_vec()
}

/// Upper bound on a stored value's size (all values are small records, but for the
/// chunks of published objects, which are read through [`StateRead::get_raw`] alone).
pub const STATE_VALUE_BYTES_MAX: usize = 1024;

/// A list of writes: `None` deletes. Sorted by key, so it is canonical.
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Read access shared by the state and overlays.
pub trait StateRead {
    /// A value: borrowed when it is held in memory, owned when it was read from
    /// the backend.
    fn get_raw(&self, key: &[u8]) -> Option<Cow<'_, [u8]>>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;

    /// Every entry with `lo ≤ key < hi`, in key order (only those: an index walked
    /// up to a height costs what is due, not the whole index).
    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;

    fn account(&self, a: &Address) -> Account {
        self.get_raw(&account_key(a))
            .map(|b| decode(&b, STATE_VALUE_BYTES_MAX).expect("state holds valid accounts"))
            .unwrap_or_default()
    }

    fn handle_owner(&self, handle: &str) -> Option<Address> {
        self.get_raw(&handle_key(handle))
            .map(|b| decode(&b, STATE_VALUE_BYTES_MAX).expect("state holds valid addresses"))
    }

    fn handle_of(&self, a: &Address) -> Option<String> {
        self.get_raw(&reverse_handle_key(a))
            .map(|b| decode(&b, STATE_VALUE_BYTES_MAX).expect("state holds valid handles"))
    }

    fn totals(&self) -> Totals {
        self.get_raw(&totals_key())
            .map(|b| decode(&b, STATE_VALUE_BYTES_MAX).expect("state holds valid totals"))
            .unwrap_or_default()
    }
}

/// The smallest key greater than every key that starts with `prefix` (`None`: no
/// such key, the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Committed state, supplied from outside the crate: the store's tables, or nothing.
///
/// Reads cannot fail here: a backend that meets an IO error or a damaged record
/// answers as if the entry were absent and reports it through
/// [`StateBackend::fault`]; the store checks the fault before it commits anything
/// computed from such reads, so a failed read can refuse an import but never make a
/// wrong block valid or a valid block invalid.
pub trait StateBackend: NodeSource + Send + Sync {
    /// A committed value.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Committed entries with `lo ≤ key < hi` (`hi = None`: no upper bound), in key order.
    fn range(&self, lo: &[u8], hi: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The committed trie root.
    fn root(&self) -> Option<Child>;
    /// The first read that failed since the backend was opened, if any.
    fn fault(&self) -> Option<String> {
        None
    }
}

/// The backend of a state held wholly in memory: it holds nothing.
struct Nothing;

impl NodeSource for Nothing {
    fn node(&self, _: &NodePos) -> Option<InnerNode> {
        None
    }
}

impl StateBackend for Nothing {
    fn get(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn range(&self, _: &[u8], _: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
    fn root(&self) -> Option<Child> {
        None
    }
}

/// What the store writes to make its backend hold the state: the entries and trie
/// nodes written since the last commit (`None` deletes) and the new root.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// Sorted by key.
    pub entries: Changes,
    /// Sorted by position.
    pub nodes: Vec<(NodePos, Option<InnerNode>)>,
    pub root: Option<Child>,
}

/// The ledger state: committed entries in a backend, newer writes in memory, and the
/// trie over both.
///
/// A clone shares the backend: it is a snapshot for as long as the store does not
/// commit under it. [`State::new`] is a state held wholly in memory (tests, the dev
/// chain, benchmarks), where nothing is ever committed.
#[derive(Clone)]
pub struct State {
    backend: Arc<dyn StateBackend>,
    /// Writes since the last commit; `None` deletes.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The backend holds something (deletes are then kept as tombstones).
    persistent: bool,
    trie: Trie,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("pending", &self.pending.len())
            .field("persistent", &self.persistent)
            .field("trie_working_set", &self.trie.working_set())
            .finish()
    }
}

impl Default for State {
    fn default() -> State {
        State {
            backend: Arc::new(Nothing),
            pending: BTreeMap::new(),
            persistent: false,
            trie: Trie::new(),
        }
    }
}

/// Merges newer writes (`None` deletes) over older entries, both in key order.
fn merge<'a>(
    base: Vec<(Vec<u8>, Vec<u8>)>,
    over: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut over = over.peekable();
    if over.peek().is_none() {
        return base;
    }
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
    for (k, v) in over {
        match v {
            Some(v) => {
                merged.insert(k.clone(), v.clone());
            }
            None => {
                merged.remove(k);
            }
        }
    }
    merged.into_iter().collect()
}

impl StateRead for State {
    fn get_raw(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        match self.pending.get(key) {
            Some(v) => v.as_deref().map(Cow::Borrowed),
            None => self.backend.get(key).map(Cow::Owned),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let end = prefix_end(prefix);
        merge(
            self.backend.range(prefix, end.as_deref()),
            self.pending
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix)),
        )
    }

    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if lo >= hi {
            return vec![];
        }
        merge(
            self.backend.range(lo, Some(hi)),
            self.pending.range(lo.to_vec()..hi.to_vec()),
        )
    }
}

impl State {
    /// An empty state held in memory.
    pub fn new() -> State {
        State::default()
    }

    /// The state committed in `backend`.
    pub fn with_backend(backend: Arc<dyn StateBackend>) -> State {
        let root = backend.root();
        State {
            backend,
            pending: BTreeMap::new(),
            persistent: true,
            trie: Trie::with_root(root),
        }
    }

    /// A state in memory holding `entries`.
    pub fn from_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> State {
        let mut s = State::new();
        let changes: Changes = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        s.apply(&changes);
        s
    }

    /// Applies writes in order.
    pub fn apply(&mut self, changes: &Changes) {
        let src: &dyn StateBackend = &*self.backend;
        for (k, v) in changes {
            match v {
                Some(v) => {
                    self.trie.insert(src, key_hash(k), value_hash(v));
                    self.pending.insert(k.clone(), Some(v.clone()));
                }
                None => {
                    self.trie.remove(src, &key_hash(k));
                    if self.persistent {
                        self.pending.insert(k.clone(), None);
                    } else {
                        self.pending.remove(k);
                    }
                }
            }
        }
    }

    /// The authenticated state root.
    pub fn root(&mut self) -> Id {
        self.trie.root_hash()
    }

    /// Why the state cannot be trusted, if a read from the backend failed or a trie
    /// node it should hold was missing. The store refuses to commit from such a state.
    pub fn fault(&self) -> Option<String> {
        if let Some(f) = self.backend.fault() {
            return Some(f);
        }
        self.trie
            .missing()
            .map(|p| format!("trie node {} is missing from the store", hex::encode(p)))
    }

    /// Writes held in memory since the last commit.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Approximate bytes of memory held since the last commit: pending writes and
    /// the trie's working set (a store flushes when this passes its budget).
    pub fn held_bytes(&self) -> u64 {
        // Per item: the key and value, the map's bookkeeping; per trie node: its
        // position, the node and the hash map's slot.
        let entries: usize = self
            .pending
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 64)
            .sum();
        (entries + self.trie.working_set() * 200) as u64
    }

    /// What the store must write to hold this state. Nothing is forgotten until
    /// [`State::committed`], so a failed write loses nothing.
    pub fn commit_batch(&mut self) -> Commit {
        let (nodes, root) = self.trie.commit_nodes();
        Commit {
            entries: self
                .pending
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            nodes,
            root,
        }
    }

    /// The backend now holds the last [`State::commit_batch`]: drop the copies held
    /// here. Only for a state made by [`State::with_backend`].
    pub fn committed(&mut self) {
        debug_assert!(
            self.persistent,
            "a state in memory has nothing to commit to"
        );
        self.pending.clear();
        self.trie.committed();
    }

    /// Every entry, in key order (walks the whole state).
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        merge(self.backend.range(&[], None), self.pending.iter())
    }

    /// Number of entries (walks the whole state).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }

    /// Sum of all account balances: `(consumer, industrial)`.
    pub fn balance_sums(&self) -> (u128, u128) {
        let mut c = 0u128;
        let mut i = 0u128;
        for (_, v) in self.scan_prefix(b"A") {
            let a: Account = decode(&v, STATE_VALUE_BYTES_MAX).expect("valid account");
            c += a.consumer as u128;
            i += a.industrial as u128;
        }
        (c, i)
    }
}

/// Writes buffered over a base state during block execution.
pub struct Overlay<'a> {
    base: &'a State,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl StateRead for Overlay<'_> {
    fn get_raw(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        match self.writes.get(key) {
            Some(v) => v.as_deref().map(Cow::Borrowed),
            None => self.base.get_raw(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        // The base's entries, overridden (or deleted) by the buffered writes.
        merge(
            self.base.scan_prefix(prefix),
            self.writes
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix)),
        )
    }

    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if lo >= hi {
            return vec![];
        }
        merge(
            self.base.scan_range(lo, hi),
            self.writes.range(lo.to_vec()..hi.to_vec()),
        )
    }
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a State) -> Overlay<'a> {
        Overlay {
            base,
            writes: BTreeMap::new(),
        }
    }

    pub fn put<T: BorshSerialize>(&mut self, key: Vec<u8>, v: &T) {
        self.writes.insert(key, Some(encode(v)));
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    pub fn set_account(&mut self, a: &Address, acc: &Account) {
        self.put(account_key(a), acc);
    }

    /// The buffered writes (sorted) and the undo list that restores the base.
    pub fn finish(self) -> (Changes, Changes) {
        let undo = self
            .writes
            .keys()
            .map(|k| (k.clone(), self.base.get_raw(k).map(|v| v.to_vec())))
            .collect();
        (self.writes.into_iter().collect(), undo)
    }
}
