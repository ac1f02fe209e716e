//! Fork choice: the chain with the most cumulative work wins.
//!
//! Work of a block = its difficulty (the expected number of hashes); a chain's
//! work is the sum over its blocks, genesis included. A node switches tips only
//! when a chain has **strictly** more work than its current one, so among
//! equal-work chains it keeps the first it saw. [`find_fork`] computes the
//! path between two tips: what to undo and what to apply.

use tb_primitives::Id;

/// The minimal view of a header that fork choice needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkNode {
    pub id: Id,
    pub parent: Id,
    pub height: u64,
}

/// The blocks to undo (current tip first) and to apply (oldest first) to move
/// from one tip to another, and their common ancestor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkPath {
    pub ancestor: Id,
    pub undo: Vec<Id>,
    pub apply: Vec<Id>,
}

/// True when a chain of `candidate` work should replace one of `current` work.
pub fn is_better(candidate: u128, current: u128) -> bool {
    candidate > current
}

/// Walks both chains back to their common ancestor. `lookup` returns the node
/// for a known id; `None` for an unknown one is reported as `Err(id)`.
pub fn find_fork<E>(
    mut lookup: impl FnMut(&Id) -> Result<ForkNode, E>,
    from: Id,
    to: Id,
) -> Result<ForkPath, E> {
    let mut a = lookup(&from)?;
    let mut b = lookup(&to)?;
    let mut undo = Vec::new();
    let mut apply = Vec::new();
    while a.height > b.height {
        undo.push(a.id);
        a = lookup(&a.parent)?;
    }
    while b.height > a.height {
        apply.push(b.id);
        b = lookup(&b.parent)?;
    }
    while a.id != b.id {
        undo.push(a.id);
        apply.push(b.id);
        a = lookup(&a.parent)?;
        b = lookup(&b.parent)?;
    }
    apply.reverse();
    Ok(ForkPath {
        ancestor: a.id,
        undo,
        apply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn fork_paths() {
        // 0 - 1 - 2 - 3
        //      \- 12 - 13 - 14
        let mut m = HashMap::new();
        for (i, p, h) in [
            (0u8, 0u8, 0u64),
            (1, 0, 1),
            (2, 1, 2),
            (3, 2, 3),
            (12, 1, 2),
            (13, 12, 3),
            (14, 13, 4),
        ] {
            m.insert(
                id(i),
                ForkNode {
                    id: id(i),
                    parent: id(p),
                    height: h,
                },
            );
        }
        let look = |x: &Id| m.get(x).copied().ok_or(*x);
        let p = find_fork(look, id(3), id(14)).unwrap();
        assert_eq!(p.ancestor, id(1));
        assert_eq!(p.undo, vec![id(3), id(2)]);
        assert_eq!(p.apply, vec![id(12), id(13), id(14)]);
        let p = find_fork(look, id(2), id(3)).unwrap();
        assert_eq!((p.undo.len(), p.apply.clone()), (0, vec![id(3)]));
        assert_eq!(find_fork(look, id(3), id(99)), Err(id(99)));
        assert!(is_better(2, 1) && !is_better(1, 1));
    }
}
