//! The authenticated state structure: a crit-bit (binary Patricia) Merkle trie
//! over 256-bit key hashes.
//!
//! The root is a function of the set of `(key, value)` pairs only — the
//! crit-bit trie of a set is unique — so any node that holds the same state
//! computes the same root whatever order the writes arrived in.
//!
//! * key hash   = BLAKE3("TB/state-key/v1", key)
//! * value hash = BLAKE3("TB/state-value/v1", value)
//! * leaf       = BLAKE3("TB/trie-leaf/v1", key hash ‖ value hash)
//! * inner      = BLAKE3("TB/trie-node/v1", crit bit (u16 LE) ‖ left ‖ right)
//! * empty root = 32 zero bytes
//!
//! Bits are numbered from the most significant bit of byte 0. An inner node's
//! left subtree holds the keys whose crit bit is 0. Updating `k` keys costs
//! `O(k · depth)` hashes, with depth about `log2(n)` for `n` random key
//! hashes: proportional to what a block changes, not to the state's size.

use tb_primitives::{blake3_id, Id};

#[derive(Clone, Debug)]
enum Node {
    Leaf {
        key: [u8; 32],
        hash: Id,
    },
    Inner {
        bit: u16,
        child: [u32; 2],
        hash: Id,
        dirty: bool,
    },
}

/// The trie. Holds key hashes and leaf hashes only; values live in `State`.
#[derive(Clone, Debug, Default)]
pub struct Trie {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: Option<u32>,
    len: usize,
}

#[inline]
fn bit_of(key: &[u8; 32], bit: u16) -> usize {
    ((key[(bit / 8) as usize] >> (7 - (bit % 8))) & 1) as usize
}

fn first_diff_bit(a: &[u8; 32], b: &[u8; 32]) -> u16 {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return (i as u16) * 8 + x.leading_zeros() as u16;
        }
    }
    unreachable!("called only for distinct keys")
}

/// Hash of a state key.
pub fn key_hash(key: &[u8]) -> [u8; 32] {
    blake3_id(b"TB/state-key/v1", key).0
}

/// Hash of a state value.
pub fn value_hash(value: &[u8]) -> Id {
    blake3_id(b"TB/state-value/v1", value)
}

fn leaf_hash(key: &[u8; 32], vh: &Id) -> Id {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(key);
    b[32..].copy_from_slice(&vh.0);
    blake3_id(b"TB/trie-leaf/v1", &b)
}

fn inner_hash(bit: u16, l: &Id, r: &Id) -> Id {
    let mut b = [0u8; 66];
    b[..2].copy_from_slice(&bit.to_le_bytes());
    b[2..34].copy_from_slice(&l.0);
    b[34..].copy_from_slice(&r.0);
    blake3_id(b"TB/trie-node/v1", &b)
}

impl Trie {
    pub fn new() -> Trie {
        Trie::default()
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn alloc(&mut self, n: Node) -> u32 {
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = n;
            i
        } else {
            self.nodes.push(n);
            (self.nodes.len() - 1) as u32
        }
    }

    fn set_child(&mut self, parent: Option<(u32, usize)>, to: u32) {
        match parent {
            None => self.root = Some(to),
            Some((p, side)) => {
                if let Node::Inner { child, .. } = &mut self.nodes[p as usize] {
                    child[side] = to;
                }
            }
        }
    }

    fn mark(&mut self, n: u32) {
        if let Node::Inner { dirty, .. } = &mut self.nodes[n as usize] {
            *dirty = true;
        }
    }

    /// Sets the value hash for `key` (a key hash), inserting it if new.
    pub fn insert(&mut self, key: [u8; 32], vh: Id) {
        let hash = leaf_hash(&key, &vh);
        let Some(root) = self.root else {
            let l = self.alloc(Node::Leaf { key, hash });
            self.root = Some(l);
            self.len = 1;
            return;
        };
        // Closest existing leaf.
        let mut n = root;
        while let Node::Inner { bit, child, .. } = &self.nodes[n as usize] {
            n = child[bit_of(&key, *bit)];
        }
        let Node::Leaf { key: near, .. } = self.nodes[n as usize] else {
            unreachable!("the walk ends at a leaf")
        };
        let crit = if near == key {
            None
        } else {
            Some(first_diff_bit(&key, &near))
        };
        // Walk again, marking the path, down to the slot.
        let limit = crit.unwrap_or(u16::MAX);
        let mut parent = None;
        let mut n = root;
        while let Node::Inner { bit, child, .. } = self.nodes[n as usize] {
            if bit >= limit {
                break;
            }
            self.mark(n);
            let side = bit_of(&key, bit);
            parent = Some((n, side));
            n = child[side];
        }
        match crit {
            None => self.nodes[n as usize] = Node::Leaf { key, hash },
            Some(crit) => {
                let leaf = self.alloc(Node::Leaf { key, hash });
                let child = if bit_of(&key, crit) == 0 {
                    [leaf, n]
                } else {
                    [n, leaf]
                };
                let inner = self.alloc(Node::Inner {
                    bit: crit,
                    child,
                    hash: Id::ZERO,
                    dirty: true,
                });
                self.set_child(parent, inner);
                self.len += 1;
            }
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &[u8; 32]) -> bool {
        let Some(root) = self.root else { return false };
        let mut grand: Option<(u32, usize)> = None;
        let mut parent: Option<(u32, usize)> = None;
        let mut n = root;
        let mut path = Vec::new();
        while let Node::Inner { bit, child, .. } = self.nodes[n as usize] {
            let side = bit_of(key, bit);
            grand = parent;
            parent = Some((n, side));
            path.push(n);
            n = child[side];
        }
        match &self.nodes[n as usize] {
            Node::Leaf { key: k, .. } if k == key => {}
            _ => return false,
        }
        for p in path {
            self.mark(p);
        }
        self.free.push(n);
        self.len -= 1;
        match parent {
            None => self.root = None,
            Some((p, side)) => {
                let Node::Inner { child, .. } = self.nodes[p as usize] else {
                    unreachable!("parents are inner nodes")
                };
                let sibling = child[1 - side];
                self.set_child(grand, sibling);
                self.free.push(p);
            }
        }
        true
    }

    fn rehash(&mut self, n: u32) -> Id {
        match self.nodes[n as usize] {
            Node::Leaf { hash, .. } => hash,
            Node::Inner {
                hash, dirty: false, ..
            } => hash,
            Node::Inner {
                bit,
                child,
                dirty: true,
                ..
            } => {
                let l = self.rehash(child[0]);
                let r = self.rehash(child[1]);
                let h = inner_hash(bit, &l, &r);
                self.nodes[n as usize] = Node::Inner {
                    bit,
                    child,
                    hash: h,
                    dirty: false,
                };
                h
            }
        }
    }

    /// The root hash, recomputing only the nodes on changed paths.
    pub fn root_hash(&mut self) -> Id {
        match self.root {
            None => Id::ZERO,
            Some(r) => self.rehash(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Reference root: build the crit-bit tree of a sorted set recursively.
    fn reference_root(items: &BTreeMap<[u8; 32], Id>) -> Id {
        fn go(items: &[([u8; 32], Id)]) -> Id {
            if items.len() == 1 {
                return leaf_hash(&items[0].0, &items[0].1);
            }
            let crit = first_diff_bit(&items[0].0, &items[items.len() - 1].0);
            let split = items.partition_point(|(k, _)| bit_of(k, crit) == 0);
            inner_hash(crit, &go(&items[..split]), &go(&items[split..]))
        }
        let v: Vec<_> = items.iter().map(|(k, v)| (*k, *v)).collect();
        if v.is_empty() {
            Id::ZERO
        } else {
            go(&v)
        }
    }

    #[test]
    fn root_is_order_independent_and_matches_reference() {
        let mut model = BTreeMap::new();
        let mut t = Trie::new();
        let mut t2 = Trie::new();
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed
        };
        for step in 0..3000 {
            let k = key_hash(&(next() % 400).to_le_bytes());
            if next() % 4 == 0 {
                assert_eq!(t.remove(&k), model.remove(&k).is_some());
            } else {
                let v = value_hash(&next().to_le_bytes());
                t.insert(k, v);
                model.insert(k, v);
            }
            if step % 97 == 0 {
                assert_eq!(t.root_hash(), reference_root(&model));
                assert_eq!(t.len(), model.len());
            }
        }
        // Same set inserted in a different order: same root.
        for (k, v) in model.iter().rev() {
            t2.insert(*k, *v);
        }
        assert_eq!(t.root_hash(), t2.root_hash());
        // Remove everything: empty root.
        for k in model.keys() {
            assert!(t.remove(k));
        }
        assert_eq!(t.root_hash(), Id::ZERO);
        assert!(t.is_empty());
    }
}
