//! Signatures checked once: the ids of transactions whose signature passed the strict
//! check, so block import and block building skip what the mempool already checked.
//!
//! Sound because a transaction id is the BLAKE3 of the whole signed encoding
//! (payload and signature): the same id is the same bytes, and the strict check of
//! the same bytes under the same chain id gives the same answer. Only a successful
//! strict check inserts an id, and the cache holds one chain id's answers. A block
//! whose transactions were never seen here gets every signature checked, as before.
//! Bounded: at most [`SIG_CACHE_ENTRIES_MAX`] ids, evicted by quick_cache's S3-FIFO
//! policy (ids looked up again are kept over ids seen once).

use std::sync::atomic::{AtomicU64, Ordering};
use tb_primitives::Id;

/// Ids the cache holds at most (chosen: twice the mempool's default capacity of
/// 10,000, so a full mempool's transactions and the next block's fit — the mempool
/// asserts the ratio at compile time; about 100 bytes an id, 2 MB).
pub const SIG_CACHE_ENTRIES_MAX: usize = 20_000;

/// A bounded set of transaction ids whose signatures verified under `chain_id`.
pub struct SigCache {
    chain_id: u64,
    /// `None` when made with capacity 0 (holds nothing).
    ids: Option<quick_cache::sync::Cache<Id, ()>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigCache")
            .field("chain_id", &self.chain_id)
            .field("len", &self.len())
            .finish()
    }
}

impl SigCache {
    /// An empty cache for `chain_id` holding at most `capacity` ids (0 holds none).
    pub fn new(chain_id: u64, capacity: usize) -> SigCache {
        SigCache {
            chain_id,
            ids: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Records that transaction `id`'s signature passed the strict check under
    /// `chain_id` (ignored for another chain id).
    pub fn insert(&self, chain_id: u64, id: Id) {
        if let (true, Some(ids)) = (chain_id == self.chain_id, &self.ids) {
            ids.insert(id, ());
        }
    }

    /// Whether transaction `id`'s signature is known to pass under `chain_id`.
    pub fn contains(&self, chain_id: u64, id: &Id) -> bool {
        let hit =
            chain_id == self.chain_id && self.ids.as_ref().is_some_and(|ids| ids.get(id).is_some());
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.ids.as_ref().map_or(0, |ids| ids.len())
    }

    /// Whether it holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found the id, and lookups that did not, since it was made.
    pub fn hits_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
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
    fn holds_at_most_its_capacity() {
        let c = SigCache::new(7, 100);
        for i in 0..1_000 {
            c.insert(7, id(i));
        }
        assert!(c.len() <= 100 && !c.is_empty(), "{}", c.len());
        let held = (0..1_000).filter(|&i| c.contains(7, &id(i))).count();
        assert_eq!(held, c.len());
        assert_eq!(c.hits_misses(), (held as u64, 1_000 - held as u64));
        // A repeated insert does not grow it.
        let before = c.len();
        let present = (0..1_000).find(|&i| c.contains(7, &id(i))).unwrap();
        c.insert(7, id(present));
        assert_eq!(c.len(), before);
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
