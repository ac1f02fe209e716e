//! Domain-separated binary Merkle trees over 32-byte leaves, with inclusion
//! proofs.
//!
//! * leaf node  = BLAKE3(len ‖ domain ‖ 0x00 ‖ leaf)
//! * inner node = BLAKE3(len ‖ domain ‖ 0x01 ‖ left ‖ right)
//! * a level with an odd count promotes its last node unchanged (no
//!   duplication, so no two leaf lists share a root the way Bitcoin's can);
//! * root = BLAKE3(len ‖ domain ‖ 0x02 ‖ leaf count (u64 LE) ‖ top node), so
//!   the root commits to the number of leaves;
//! * the root of zero leaves is 32 zero bytes.
//!
//! Because the count is committed, a proof for index `i` of an `n`-leaf tree
//! cannot be replayed with another count or shape.

use crate::hash::{blake3_id, Id};
use borsh::{BorshDeserialize, BorshSerialize};

fn leaf_node(domain: &[u8], leaf: &[u8; 32]) -> Id {
    let mut b = [0u8; 33];
    b[1..].copy_from_slice(leaf);
    blake3_id(domain, &b)
}

fn seal(domain: &[u8], count: u64, top: &Id) -> Id {
    let mut b = [0u8; 41];
    b[0] = 2;
    b[1..9].copy_from_slice(&count.to_le_bytes());
    b[9..].copy_from_slice(&top.0);
    blake3_id(domain, &b)
}

fn inner_node(domain: &[u8], l: &Id, r: &Id) -> Id {
    let mut b = [0u8; 65];
    b[0] = 1;
    b[1..33].copy_from_slice(&l.0);
    b[33..].copy_from_slice(&r.0);
    blake3_id(domain, &b)
}

/// Pairs a level's nodes left to right; an odd last node is promoted.
fn next_level(domain: &[u8], level: &[Id]) -> Vec<Id> {
    level
        .chunks(2)
        .map(|p| match p {
            [l, r] => inner_node(domain, l, r),
            [one] => *one,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The Merkle root of `leaves` under `domain`.
pub fn merkle_root(domain: &[u8], leaves: &[[u8; 32]]) -> Id {
    if leaves.is_empty() {
        return Id::ZERO;
    }
    let mut level: Vec<Id> = leaves.iter().map(|l| leaf_node(domain, l)).collect();
    while level.len() > 1 {
        level = next_level(domain, &level);
    }
    seal(domain, leaves.len() as u64, &level[0])
}

/// An inclusion proof: the leaf's index, the tree's leaf count and the sibling
/// hashes from the bottom up (levels where the node was promoted have none).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MerkleProof {
    pub index: u64,
    pub leaf_count: u64,
    pub siblings: Vec<Id>,
}

/// The proof for leaf `index`, or `None` if out of range.
pub fn merkle_proof(domain: &[u8], leaves: &[[u8; 32]], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut level: Vec<Id> = leaves.iter().map(|l| leaf_node(domain, l)).collect();
    let mut i = index;
    let mut siblings = Vec::new();
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            siblings.push(level[sib]);
        }
        level = next_level(domain, &level);
        i /= 2;
    }
    Some(MerkleProof {
        index: index as u64,
        leaf_count: leaves.len() as u64,
        siblings,
    })
}

/// Checks that `leaf` sits at `proof.index` of a tree with root `root`.
pub fn merkle_verify(domain: &[u8], root: &Id, leaf: &[u8; 32], proof: &MerkleProof) -> bool {
    if proof.index >= proof.leaf_count {
        return false;
    }
    let mut h = leaf_node(domain, leaf);
    let (mut i, mut n) = (proof.index, proof.leaf_count);
    let mut sibs = proof.siblings.iter();
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            let Some(s) = sibs.next() else { return false };
            h = if i % 2 == 0 {
                inner_node(domain, &h, s)
            } else {
                inner_node(domain, s, &h)
            };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    sibs.next().is_none() && seal(domain, proof.leaf_count, &h) == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| blake3_id(b"t", &i.to_le_bytes()).0)
            .collect()
    }

    #[test]
    fn proofs_verify_for_every_shape() {
        for n in 0..40 {
            let ls = leaves(n);
            let root = merkle_root(b"D", &ls);
            for i in 0..n {
                let p = merkle_proof(b"D", &ls, i).unwrap();
                assert!(merkle_verify(b"D", &root, &ls[i], &p), "n={n} i={i}");
                // wrong leaf, wrong index, wrong domain, wrong count
                assert!(!merkle_verify(b"D", &root, &[7u8; 32], &p));
                assert!(!merkle_verify(b"E", &root, &ls[i], &p));
                let mut q = p.clone();
                q.index = (q.index + 1) % n as u64;
                if n > 1 {
                    assert!(!merkle_verify(b"D", &root, &ls[i], &q));
                }
                for count in [q.leaf_count + 1, q.leaf_count.saturating_sub(1), 1000] {
                    let mut q = p.clone();
                    q.leaf_count = count;
                    assert!(
                        !merkle_verify(b"D", &root, &ls[i], &q),
                        "n={n} i={i} count={count}"
                    );
                }
            }
            assert!(merkle_proof(b"D", &ls, n).is_none());
        }
    }

    #[test]
    fn no_duplication_collision() {
        let ls = leaves(3);
        let mut dup = ls.clone();
        dup.push(ls[2]);
        assert_ne!(merkle_root(b"D", &ls), merkle_root(b"D", &dup));
        assert_eq!(merkle_root(b"D", &[]), Id::ZERO);
    }
}
