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
//! The whole map is held in memory, ordered so index records can be scanned by
//! prefix; `tb-store` keeps the durable copy and rebuilds the trie when it opens.

use crate::trie::{key_hash, value_hash, Trie};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
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

/// Upper bound on a stored value's size (all values are small records).
pub const STATE_VALUE_BYTES_MAX: usize = 1024;

/// A list of writes: `None` deletes. Sorted by key, so it is canonical.
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Read access shared by the state and overlays.
pub trait StateRead {
    fn get_raw(&self, key: &[u8]) -> Option<&[u8]>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;

    /// Every entry with `lo ≤ key < hi`, in key order (only those: an index walked
    /// up to a height costs what is due, not the whole index).
    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;

    fn account(&self, a: &Address) -> Account {
        self.get_raw(&account_key(a))
            .map(|b| decode(b, STATE_VALUE_BYTES_MAX).expect("state holds valid accounts"))
            .unwrap_or_default()
    }

    fn handle_owner(&self, handle: &str) -> Option<Address> {
        self.get_raw(&handle_key(handle))
            .map(|b| decode(b, STATE_VALUE_BYTES_MAX).expect("state holds valid addresses"))
    }

    fn handle_of(&self, a: &Address) -> Option<String> {
        self.get_raw(&reverse_handle_key(a))
            .map(|b| decode(b, STATE_VALUE_BYTES_MAX).expect("state holds valid handles"))
    }

    fn totals(&self) -> Totals {
        self.get_raw(&totals_key())
            .map(|b| decode(b, STATE_VALUE_BYTES_MAX).expect("state holds valid totals"))
            .unwrap_or_default()
    }
}

/// The full ledger state.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Ordered, so that index records can be scanned by prefix.
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    trie: Trie,
}

impl StateRead for State {
    fn get_raw(&self, key: &[u8]) -> Option<&[u8]> {
        self.kv.get(key).map(|v| v.as_slice())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if lo >= hi {
            return vec![];
        }
        self.kv
            .range(lo.to_vec()..hi.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Rebuilds a state from stored entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> State {
        let mut s = State::new();
        for (k, v) in entries {
            s.trie.insert(key_hash(&k), value_hash(&v));
            s.kv.insert(k, v);
        }
        s
    }

    /// Applies writes in order.
    pub fn apply(&mut self, changes: &Changes) {
        for (k, v) in changes {
            match v {
                Some(v) => {
                    self.trie.insert(key_hash(k), value_hash(v));
                    self.kv.insert(k.clone(), v.clone());
                }
                None => {
                    self.trie.remove(&key_hash(k));
                    self.kv.remove(k);
                }
            }
        }
    }

    /// The authenticated state root.
    pub fn root(&mut self) -> Id {
        self.trie.root_hash()
    }

    pub fn len(&self) -> usize {
        self.kv.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kv.is_empty()
    }

    /// Every entry (unordered).
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.kv.iter()
    }

    /// Sum of all account balances: `(consumer, industrial)`.
    pub fn balance_sums(&self) -> (u128, u128) {
        let mut c = 0u128;
        let mut i = 0u128;
        for (k, v) in &self.kv {
            if k.first() == Some(&b'A') {
                let a: Account = decode(v, STATE_VALUE_BYTES_MAX).expect("valid account");
                c += a.consumer as u128;
                i += a.industrial as u128;
            }
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
    fn get_raw(&self, key: &[u8]) -> Option<&[u8]> {
        match self.writes.get(key) {
            Some(v) => v.as_deref(),
            None => self.base.get_raw(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        // The base's entries, overridden (or deleted) by the buffered writes.
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(prefix).into_iter().collect();
        for (k, v) in self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
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

    fn scan_range(&self, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if lo >= hi {
            return vec![];
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_range(lo, hi).into_iter().collect();
        for (k, v) in self.writes.range(lo.to_vec()..hi.to_vec()) {
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
