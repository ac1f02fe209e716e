//! Signatures checked once: the ids of transactions whose signature passed the strict
//! check, so block import and block building skip what the mempool already checked.
//!
//! Sound because a transaction id is the BLAKE3 of the whole signed encoding
//! (payload and signature): the same id is the same bytes, and the strict check of
//! the same bytes under the same chain id gives the same answer. Only a successful
//! strict check inserts an id, and the cache holds one chain id's answers. A block
//! whose transactions were never seen here gets every signature checked, as before.
//! Bounded: at most [`SIG_CACHE_ENTRIES_MAX`] ids, the oldest forgotten first.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use tb_primitives::Id;

/// Ids the cache holds at most (chosen: twice the mempool's default capacity of
/// 10,000, so a full mempool's transactions and the next block's survive — the mempool
/// asserts the ratio at compile time; about 100 bytes an id with the set's and the
/// queue's overhead, 2 MB).
pub const SIG_CACHE_ENTRIES_MAX: usize = 20_000;

/// A bounded set of transaction ids whose signatures verified under `chain_id`.
#[derive(Debug)]
pub struct SigCache {
    chain_id: u64,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashSet<Id>,
    /// Insertion order, for forgetting the oldest.
    order: VecDeque<Id>,
    hits: u64,
    misses: u64,
}

impl SigCache {
    /// An empty cache for `chain_id` holding at most `capacity` ids (0 holds none).
    pub fn new(chain_id: u64, capacity: usize) -> SigCache {
        SigCache {
            chain_id,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it leaves a consistent set: keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that transaction `id`'s signature passed the strict check under
    /// `chain_id` (ignored for another chain id).
    pub fn insert(&self, chain_id: u64, id: Id) {
        if chain_id != self.chain_id || self.capacity == 0 {
            return;
        }
        let mut g = self.lock();
        if !g.ids.insert(id) {
            return;
        }
        g.order.push_back(id);
        while g.order.len() > self.capacity {
            if let Some(old) = g.order.pop_front() {
                g.ids.remove(&old);
            }
        }
    }

    /// Whether transaction `id`'s signature is known to pass under `chain_id`.
    pub fn contains(&self, chain_id: u64, id: &Id) -> bool {
        if chain_id != self.chain_id {
            return false;
        }
        let mut g = self.lock();
        let hit = g.ids.contains(id);
        if hit {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        hit
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// Whether it holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found the id, and lookups that did not, since it was made.
    pub fn hits_misses(&self) -> (u64, u64) {
        let g = self.lock();
        (g.hits, g.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> Id {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        Id(b)
    }

    #[test]
    fn holds_at_most_its_capacity_and_forgets_the_oldest() {
        let c = SigCache::new(7, 3);
        for i in 0..5 {
            c.insert(7, id(i));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.contains(7, &id(0)) && !c.contains(7, &id(1)));
        assert!((2..5).all(|i| c.contains(7, &id(i))));
        assert_eq!(c.hits_misses(), (3, 2));
        // A repeated insert neither grows it nor refreshes the order.
        c.insert(7, id(2));
        c.insert(7, id(5));
        assert_eq!(c.len(), 3);
        assert!(!c.contains(7, &id(2)));
    }

    #[test]
    fn answers_only_for_its_chain_id() {
        let c = SigCache::new(7, 10);
        c.insert(8, id(1));
        assert!(c.is_empty());
        c.insert(7, id(1));
        assert!(c.contains(7, &id(1)));
        assert!(!c.contains(8, &id(1)));
        let none = SigCache::new(7, 0);
        none.insert(7, id(1));
        assert!(!none.contains(7, &id(1)));
    }
}
