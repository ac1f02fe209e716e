//! The authenticated state structure: a crit-bit (binary Patricia) Merkle trie
//! over 256-bit key hashes, whose inner nodes can live on disk.
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
//! left subtree holds the keys whose crit bit is 0.
//!
//! **Storage.** An inner node is named by its *position*, [`NodePos`]: the key
//! prefix its leaves share (the key hash with every bit from the crit bit on set to
//! zero) followed by the crit bit (u16 big-endian). Positions never move: inserting
//! a key adds one node above an existing subtree, removing one deletes its parent,
//! and no other node changes its name. A stored node holds its two children as
//! [`Child`] references, each with the child's hash, so a node is rehashed from its
//! own record without reading its siblings. Leaves are not stored apart: a parent's
//! reference to a leaf carries the key hash and the leaf hash. Updating `k` keys
//! reads and rewrites `O(k · depth)` nodes, with depth about `log2(n)` for `n`
//! random key hashes: proportional to what a block changes, not to the state's size.
//! Positions sort by prefix, so the nodes of one subtree are neighbours on disk.
//!
//! The trie reads committed nodes from a [`NodeSource`] (the store, or nothing for
//! a state held in memory) and keeps the nodes it touched since the last commit in a
//! working set; [`Trie::commit_nodes`] lists what changed and [`Trie::committed`]
//! forgets the working set once the source holds it.

use std::collections::HashMap;
use tb_primitives::{blake3_id, Id};

/// Where an inner node lives: shared key prefix (32 bytes, bits from the crit bit on
/// zero) ‖ crit bit (u16 big-endian).
pub type NodePos = [u8; 34];

/// The inner nodes a walk passed: each position and the side taken (0 left, 1 right).
type Path = Vec<(NodePos, usize)>;

/// Encoded size of a [`Child`].
pub const CHILD_BYTES: usize = 67;
/// Encoded size of an [`InnerNode`].
pub const NODE_BYTES: usize = 2 * CHILD_BYTES;

/// A reference from a parent (or the root) to a child, with the child's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    Leaf { key: [u8; 32], hash: Id },
    Inner { pos: NodePos, hash: Id },
}

impl Child {
    pub fn hash(&self) -> Id {
        match self {
            Child::Leaf { hash, .. } | Child::Inner { hash, .. } => *hash,
        }
    }

    /// `0 ‖ key hash ‖ 0x0000 ‖ leaf hash` or `1 ‖ position ‖ node hash`.
    pub fn encode(&self) -> [u8; CHILD_BYTES] {
        let mut b = [0u8; CHILD_BYTES];
        match self {
            Child::Leaf { key, hash } => {
                b[1..33].copy_from_slice(key);
                b[35..].copy_from_slice(&hash.0);
            }
            Child::Inner { pos, hash } => {
                b[0] = 1;
                b[1..35].copy_from_slice(pos);
                b[35..].copy_from_slice(&hash.0);
            }
        }
        b
    }

    /// `None` for anything but the exact encoding.
    pub fn decode(b: &[u8]) -> Option<Child> {
        if b.len() != CHILD_BYTES {
            return None;
        }
        let hash = Id(b[35..].try_into().ok()?);
        match b[0] {
            0 if b[33..35] == [0, 0] => Some(Child::Leaf {
                key: b[1..33].try_into().ok()?,
                hash,
            }),
            1 => Some(Child::Inner {
                pos: b[1..35].try_into().ok()?,
                hash,
            }),
            _ => None,
        }
    }
}

/// A stored inner node: its two children. Its crit bit is in its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerNode {
    pub children: [Child; 2],
}

impl InnerNode {
    pub fn encode(&self) -> [u8; NODE_BYTES] {
        let mut b = [0u8; NODE_BYTES];
        b[..CHILD_BYTES].copy_from_slice(&self.children[0].encode());
        b[CHILD_BYTES..].copy_from_slice(&self.children[1].encode());
        b
    }

    pub fn decode(b: &[u8]) -> Option<InnerNode> {
        if b.len() != NODE_BYTES {
            return None;
        }
        Some(InnerNode {
            children: [
                Child::decode(&b[..CHILD_BYTES])?,
                Child::decode(&b[CHILD_BYTES..])?,
            ],
        })
    }
}

/// Committed inner nodes, read by position.
pub trait NodeSource {
    fn node(&self, pos: &NodePos) -> Option<InnerNode>;
}

/// A source that holds nothing: the trie of a state kept in memory.
pub struct NoNodes;

impl NodeSource for NoNodes {
    fn node(&self, _: &NodePos) -> Option<InnerNode> {
        None
    }
}

/// A node the trie touched since the last commit.
#[derive(Clone, Debug)]
struct Slot {
    /// `None`: deleted.
    node: Option<InnerNode>,
    /// Its children's hashes may be stale (rehash before use).
    dirty: bool,
    /// Differs from the source (write it at the next commit).
    changed: bool,
}

/// The trie: the root reference and the nodes touched since the last commit.
#[derive(Clone, Debug, Default)]
pub struct Trie {
    root: Option<Child>,
    work: HashMap<NodePos, Slot>,
    /// A node the source should hold but does not (the store is damaged).
    missing: Option<NodePos>,
}

#[inline]
fn bit_of(key: &[u8; 32], bit: u16) -> usize {
    ((key[(bit / 8) as usize] >> (7 - (bit % 8))) & 1) as usize
}

/// The first bit where two distinct keys differ.
fn first_diff_bit(a: &[u8; 32], b: &[u8; 32]) -> Option<u16> {
    (0..32).find_map(|i| {
        let x = a[i] ^ b[i];
        (x != 0).then(|| (i as u16) * 8 + x.leading_zeros() as u16)
    })
}

/// The position of the inner node at `bit` above `key`.
pub fn node_pos(key: &[u8; 32], bit: u16) -> NodePos {
    let mut p = [0u8; 34];
    let whole = (bit / 8) as usize;
    p[..whole].copy_from_slice(&key[..whole]);
    if !bit.is_multiple_of(8) {
        p[whole] = key[whole] & (0xFFu8 << (8 - bit % 8));
    }
    p[32..].copy_from_slice(&bit.to_be_bytes());
    p
}

/// The crit bit of the node at `pos`.
pub fn pos_bit(pos: &NodePos) -> u16 {
    u16::from_be_bytes([pos[32], pos[33]])
}

/// Hash of a state key.
pub fn key_hash(key: &[u8]) -> [u8; 32] {
    blake3_id(b"TB/state-key/v1", key).0
}

/// Hash of a state value.
pub fn value_hash(value: &[u8]) -> Id {
    blake3_id(b"TB/state-value/v1", value)
}

/// A leaf's hash.
pub fn leaf_hash(key: &[u8; 32], vh: &Id) -> Id {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(key);
    b[32..].copy_from_slice(&vh.0);
    blake3_id(b"TB/trie-leaf/v1", &b)
}

/// An inner node's hash.
pub fn inner_hash(bit: u16, l: &Id, r: &Id) -> Id {
    let mut b = [0u8; 66];
    b[..2].copy_from_slice(&bit.to_le_bytes());
    b[2..34].copy_from_slice(&l.0);
    b[34..].copy_from_slice(&r.0);
    blake3_id(b"TB/trie-node/v1", &b)
}

impl Trie {
    /// An empty trie.
    pub fn new() -> Trie {
        Trie::default()
    }

    /// The trie whose committed root is `root` (its nodes are in the source).
    pub fn with_root(root: Option<Child>) -> Trie {
        Trie {
            root,
            ..Trie::default()
        }
    }

    /// A node the source should have held and did not, if any operation met one:
    /// the trie is then unusable (the store is damaged).
    pub fn missing(&self) -> Option<NodePos> {
        self.missing
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Nodes touched since the last commit.
    pub fn working_set(&self) -> usize {
        self.work.len()
    }

    fn load(&mut self, src: &dyn NodeSource, pos: &NodePos) -> Option<InnerNode> {
        if let Some(s) = self.work.get(pos) {
            if s.node.is_none() {
                self.missing = Some(*pos);
            }
            return s.node;
        }
        match src.node(pos) {
            Some(n) => {
                self.work.insert(
                    *pos,
                    Slot {
                        node: Some(n),
                        dirty: false,
                        changed: false,
                    },
                );
                Some(n)
            }
            None => {
                self.missing = Some(*pos);
                None
            }
        }
    }

    fn put(&mut self, pos: NodePos, node: Option<InnerNode>) {
        self.work.insert(
            pos,
            Slot {
                node,
                dirty: node.is_some(),
                changed: true,
            },
        );
    }

    /// Marks a loaded node on the path stale and changed.
    fn touch(&mut self, pos: &NodePos) {
        if let Some(s) = self.work.get_mut(pos) {
            s.dirty = true;
            s.changed = true;
        }
    }

    /// Points `parent`'s child on `side` (or the root) at `to`.
    fn set_child(&mut self, parent: Option<(NodePos, usize)>, to: Child) {
        match parent {
            None => self.root = Some(to),
            Some((p, side)) => {
                if let Some(Slot {
                    node: Some(n),
                    dirty,
                    changed,
                }) = self.work.get_mut(&p)
                {
                    n.children[side] = to;
                    *dirty = true;
                    *changed = true;
                }
            }
        }
    }

    /// The walk from the root towards `key`: the inner nodes passed (position and the
    /// side taken) and the leaf reached. `None` on an empty trie or a missing node.
    fn walk(&mut self, src: &dyn NodeSource, key: &[u8; 32]) -> Option<(Path, [u8; 32])> {
        let mut cur = self.root?;
        let mut path = Vec::with_capacity(40);
        loop {
            match cur {
                Child::Leaf { key: near, .. } => return Some((path, near)),
                Child::Inner { pos, .. } => {
                    let n = self.load(src, &pos)?;
                    let side = bit_of(key, pos_bit(&pos));
                    path.push((pos, side));
                    cur = n.children[side];
                }
            }
        }
    }

    /// Sets the value hash for `key` (a key hash), inserting it if new.
    pub fn insert(&mut self, src: &dyn NodeSource, key: [u8; 32], vh: Id) {
        let leaf = Child::Leaf {
            key,
            hash: leaf_hash(&key, &vh),
        };
        if self.root.is_none() {
            self.root = Some(leaf);
            return;
        }
        let Some((path, near)) = self.walk(src, &key) else {
            return; // a missing node: recorded
        };
        let Some(crit) = first_diff_bit(&key, &near) else {
            // The key is present: replace its leaf.
            for (p, _) in &path {
                self.touch(p);
            }
            self.set_child(path.last().copied(), leaf);
            return;
        };
        // The new node goes above the first node on the path whose bit is past `crit`.
        let j = path
            .iter()
            .position(|(p, _)| pos_bit(p) > crit)
            .unwrap_or(path.len());
        let parent = j.checked_sub(1).map(|i| path[i]);
        let displaced = match parent {
            None => self.root.expect("checked non-empty"),
            Some((p, side)) => {
                self.work
                    .get(&p)
                    .and_then(|s| s.node)
                    .expect("loaded by the walk")
                    .children[side]
            }
        };
        for (p, _) in &path[..j] {
            self.touch(p);
        }
        let pos = node_pos(&key, crit);
        let children = if bit_of(&key, crit) == 0 {
            [leaf, displaced]
        } else {
            [displaced, leaf]
        };
        self.put(pos, Some(InnerNode { children }));
        self.set_child(
            parent,
            Child::Inner {
                pos,
                hash: Id::ZERO,
            },
        );
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, src: &dyn NodeSource, key: &[u8; 32]) -> bool {
        let Some((path, near)) = self.walk(src, key) else {
            return false;
        };
        if &near != key {
            return false;
        }
        let Some(&(p, side)) = path.last() else {
            self.root = None;
            return true;
        };
        let sibling = self
            .work
            .get(&p)
            .and_then(|s| s.node)
            .expect("loaded by the walk")
            .children[1 - side];
        for (q, _) in &path[..path.len() - 1] {
            self.touch(q);
        }
        self.put(p, None);
        let grand = path.len().checked_sub(2).map(|i| path[i]);
        self.set_child(grand, sibling);
        true
    }

    /// `child` with its hash brought up to date (recomputing stale nodes below it).
    fn rehash(&mut self, child: Child) -> Child {
        let Child::Inner { pos, .. } = child else {
            return child;
        };
        let node = match self.work.get(&pos) {
            Some(Slot {
                node: Some(n),
                dirty: true,
                ..
            }) => *n,
            _ => return child,
        };
        let l = self.rehash(node.children[0]);
        let r = self.rehash(node.children[1]);
        let slot = self.work.get_mut(&pos).expect("present");
        slot.node = Some(InnerNode { children: [l, r] });
        slot.dirty = false;
        Child::Inner {
            pos,
            hash: inner_hash(pos_bit(&pos), &l.hash(), &r.hash()),
        }
    }

    /// The root hash, recomputing only the nodes on changed paths.
    pub fn root_hash(&mut self) -> Id {
        match self.root {
            None => Id::ZERO,
            Some(r) => {
                let r = self.rehash(r);
                self.root = Some(r);
                r.hash()
            }
        }
    }

    /// The root reference with its hash up to date.
    pub fn root_child(&mut self) -> Option<Child> {
        self.root_hash();
        self.root
    }

    /// Every node that differs from the source (`None`: delete it), sorted by
    /// position, and the root. The working set is kept until [`Trie::committed`].
    pub fn commit_nodes(&mut self) -> (Vec<(NodePos, Option<InnerNode>)>, Option<Child>) {
        let root = self.root_child();
        let mut v: Vec<_> = self
            .work
            .iter()
            .filter(|(_, s)| s.changed)
            .map(|(p, s)| (*p, s.node))
            .collect();
        v.sort_by_key(|a| a.0);
        (v, root)
    }

    /// The source now holds what [`Trie::commit_nodes`] listed: forget the working set.
    pub fn committed(&mut self) {
        self.root_hash();
        self.work.clear();
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
            let crit = first_diff_bit(&items[0].0, &items[items.len() - 1].0).expect("distinct");
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

    /// A node store in memory, written by commits.
    #[derive(Default)]
    struct Store(HashMap<NodePos, InnerNode>);

    impl NodeSource for Store {
        fn node(&self, pos: &NodePos) -> Option<InnerNode> {
            self.0.get(pos).copied()
        }
    }

    fn next(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 11
    }

    /// One random step on `t` and `model`: over `keys` distinct keys, a removal one
    /// time in `remove_one_in`, an insertion (or overwrite) otherwise.
    fn random_step(
        t: &mut Trie,
        src: &dyn NodeSource,
        model: &mut BTreeMap<[u8; 32], Id>,
        seed: &mut u64,
        keys: u64,
        remove_one_in: u64,
    ) {
        let k = key_hash(&(next(seed) % keys).to_le_bytes());
        if next(seed).is_multiple_of(remove_one_in) {
            assert_eq!(t.remove(src, &k), model.remove(&k).is_some());
        } else {
            let v = value_hash(&next(seed).to_le_bytes());
            t.insert(src, k, v);
            model.insert(k, v);
        }
    }

    #[test]
    fn root_is_order_independent_and_matches_reference() {
        let mut model = BTreeMap::new();
        let mut t = Trie::new();
        let mut t2 = Trie::new();
        let mut seed = 1u64;
        for step in 0..3000 {
            random_step(&mut t, &NoNodes, &mut model, &mut seed, 400, 4);
            if step % 97 == 0 {
                assert_eq!(t.root_hash(), reference_root(&model));
            }
        }
        // Same set inserted in a different order: same root.
        for (k, v) in model.iter().rev() {
            t2.insert(&NoNodes, *k, *v);
        }
        assert_eq!(t.root_hash(), t2.root_hash());
        // Remove everything: empty root.
        for k in model.keys() {
            assert!(t.remove(&NoNodes, k));
        }
        assert_eq!(t.root_hash(), Id::ZERO);
        assert!(t.root_child().is_none());
    }

    /// Committing every few steps to a node store and reading back through it gives
    /// the same roots as the reference; the store ends up with exactly the live nodes.
    #[test]
    fn committed_nodes_read_back_give_the_same_roots() {
        let mut model = BTreeMap::new();
        let mut store = Store::default();
        let mut t = Trie::new();
        let mut seed = 7u64;
        for step in 0..4000 {
            random_step(&mut t, &store, &mut model, &mut seed, 600, 3);
            if step % 13 == 0 {
                let (nodes, root) = t.commit_nodes();
                for (p, n) in nodes {
                    match n {
                        Some(n) => store.0.insert(p, n),
                        None => store.0.remove(&p),
                    };
                }
                t.committed();
                assert_eq!(t.working_set(), 0);
                assert!(t.missing().is_none());
                assert_eq!(root.map_or(Id::ZERO, |c| c.hash()), reference_root(&model));
                // A fresh trie over the store alone has the same root.
                let mut fresh = Trie::with_root(root);
                assert_eq!(fresh.root_hash(), reference_root(&model));
                // n leaves, n − 1 inner nodes.
                assert_eq!(store.0.len(), model.len().saturating_sub(1));
            }
        }
    }

    #[test]
    fn encodings_round_trip_and_refuse_junk() {
        let key = key_hash(b"k");
        let c = [
            Child::Leaf {
                key,
                hash: value_hash(b"v"),
            },
            Child::Inner {
                pos: node_pos(&key, 13),
                hash: value_hash(b"w"),
            },
        ];
        let n = InnerNode { children: c };
        assert_eq!(InnerNode::decode(&n.encode()), Some(n));
        assert_eq!(pos_bit(&node_pos(&key, 13)), 13);
        // Bits from the crit bit on are zero in a position.
        let p = node_pos(&[0xFF; 32], 13);
        assert_eq!(&p[..3], &[0xFF, 0xF8, 0]);
        let mut bad = c[0].encode();
        bad[0] = 2;
        assert_eq!(Child::decode(&bad), None);
        bad[0] = 0;
        bad[33] = 1;
        assert_eq!(Child::decode(&bad), None);
        assert_eq!(InnerNode::decode(&[0u8; NODE_BYTES - 1]), None);
    }
}
