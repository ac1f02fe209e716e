//! One byte-mutation strategy for the property tests of every decoder of outside
//! bytes (transactions, blocks, records, job blobs, receipts): a valid encoding edited
//! by a few [`Mutation`]s must decode to a typed error or to something canonical, never
//! panic. Behind the `proptest` feature, which only test builds enable.

use proptest::prelude::*;
use proptest::sample::Index;

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR one byte with `mask`.
    Flip { at: Index, mask: u8 },
    /// Set one byte (0, 1, 2, 9, 0xff or any).
    Set { at: Index, byte: u8 },
    /// Overwrite four bytes with a little-endian `u32` (a length, a count, a tag).
    SetU32 { at: Index, value: u32 },
    /// Insert bytes.
    Insert { at: Index, bytes: Vec<u8> },
    /// Remove up to `len` bytes.
    Remove { at: Index, len: usize },
    /// Cut the tail.
    Truncate { at: Index },
    /// Add bytes at the end.
    Append { bytes: Vec<u8> },
}

/// Any [`Mutation`], with the `u32`s and bytes that hit limits most often.
pub fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(8),
        Just(9),
        Just(64),
        Just(65),
        Just(4097),
        Just(46_340),
        Just(1 << 31),
        Just(u32::MAX),
        any::<u32>(),
    ];
    let byte = prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(9),
        Just(0xff),
        any::<u8>()
    ];
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<Index>(), byte).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<Index>(), interesting).prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<Index>(), 1..16usize).prop_map(|(at, len)| Mutation::Remove { at, len }),
        any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

/// Applies `m` to `bytes` (an edit that does not fit, on too short a string, is
/// skipped).
pub fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, mask } => {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
        }
        Mutation::Set { at, byte } => {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
        }
        Mutation::SetU32 { at, value } => {
            if bytes.len() >= 4 {
                let i = at.index(bytes.len() - 3);
                bytes[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Insert { at, bytes: ins } => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, ins.iter().copied());
        }
        Mutation::Remove { at, len } => {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
        }
        Mutation::Truncate { at } => {
            let n = at.index(bytes.len() + 1);
            bytes.truncate(n);
        }
        Mutation::Append { bytes: extra } => bytes.extend_from_slice(extra),
    }
}
