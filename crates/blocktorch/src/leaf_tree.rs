//! A trace leaf's stream hashed along BLAKE3's own tree. The leaf is BLAKE3 over
//! `prefix ‖ header ‖ elements` (`crate::digest::trace_leaf`); fed to a
//! `blake3::Hasher` as it is laid out in memory — a few head bytes, then the elements —
//! the hasher compresses the first 1 KiB chunk alone (it holds the head) and then, to
//! stay on its tree's boundaries, subtrees of 1, 2, 4, 8 chunks before it reaches its
//! 16-way SIMD: a 16 KiB leaf hashed at 2.4 GB/s where one contiguous stream goes at
//! 5.2 (`blocktorch-bench leaf`, `BENCHMARKS.md`).
//!
//! Here the stream is hashed as the subtrees BLAKE3's tree is made of
//! (`blake3::hazmat`): the left-edge subtree that holds the head, once it is at most
//! [`LEAF_COPY_BYTES`], is copied with the head into one buffer and hashed in one call;
//! every other subtree is hashed in place from the elements, whole; the chaining values
//! merge up the tree. The result is exactly `blake3::hash` of the whole stream (tested
//! against it). The CPU fabric's pieces (`cpu/leaf.rs`) are subtrees of the same
//! tree. Not a kernel source: no op result depends on it.

use crate::storage::HostData;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use std::cell::RefCell;

/// Largest left-edge subtree (the one that holds the head) copied into one buffer with
/// the head and hashed in one call; a whole stream up to this size is hashed that way.
/// Copying 64 KiB costs ~1.3 µs, a tenth of what hashing it costs, and gives BLAKE3
/// whole 16-chunk groups from the first byte.
pub(crate) const LEAF_COPY_BYTES: u64 = 64 * 1024;

/// Elements fed per `update` when a range must be rewritten (an f32 range with a NaN):
/// bounds the copy.
const CANON_BLOCK: usize = 16 * 1024;

thread_local! {
    /// Each thread's buffer for the copied head subtree (at most `LEAF_COPY_BYTES`).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Whether `v` holds a NaN. Scans blocks of 256 without a branch per element (the
/// fold compiles to SIMD compares), stopping at the first block that has one: the
/// digests scan every f32 they hash, so this runs at memory speed, not one element
/// per cycle.
pub(crate) fn has_nan(v: &[f32]) -> bool {
    const BLOCK: usize = 256;
    let mut blocks = v.chunks_exact(BLOCK);
    for b in blocks.by_ref() {
        // |x| > +inf in the bits: exponent all ones and a non-zero fraction.
        if b.iter().fold(0u32, |a, x| {
            a | u32::from(x.to_bits() & 0x7fff_ffff > 0x7f80_0000)
        }) != 0
        {
            return true;
        }
    }
    blocks.remainder().iter().any(|x| x.is_nan())
}

/// The data a leaf streams after its head: the elements' in-memory bytes, which on a
/// little-endian host are the bytes to hash — but for an f32 NaN, hashed as
/// [`crate::CANONICAL_NAN_BITS`].
pub(crate) enum Elements<'a> {
    /// f32 elements (their NaNs canonicalised as they are hashed).
    F32(&'a [f32]),
    /// Elements whose in-memory bytes are hashed as they are.
    Bytes(&'a [u8]),
}

impl<'a> Elements<'a> {
    /// The elements of the contiguous run `data[start..start + n]` (on a little-endian
    /// host: the caller checks). Panics if the run is outside `data` (callers check).
    pub(crate) fn of(data: &'a HostData, start: usize, n: usize) -> Elements<'a> {
        match data {
            HostData::F32(v) => Elements::F32(&v[start..start + n]),
            HostData::I32(v) => Elements::Bytes(bytemuck::cast_slice(&v[start..start + n])),
            HostData::U32(v) => Elements::Bytes(bytemuck::cast_slice(&v[start..start + n])),
            HostData::U8(v) => Elements::Bytes(&v[start..start + n]),
        }
    }

    /// Their length in stream bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Elements::F32(v) => v.len() * 4,
            Elements::Bytes(b) => b.len(),
        }
    }

    /// Calls `f` with the stream bytes `[ds, de)` of the data, in order: the memory
    /// itself where that is the stream, else canonical copies of at most
    /// [`CANON_BLOCK`] elements at a time.
    fn for_bytes(&self, ds: usize, de: usize, mut f: impl FnMut(&[u8])) {
        match self {
            Elements::Bytes(b) => f(&b[ds..de]),
            Elements::F32(v) => {
                // The elements that hold those bytes (a range may start or end inside
                // one when the head's length is not a multiple of 4).
                let (e0, e1) = (ds / 4, de.div_ceil(4));
                let run = &v[e0..e1];
                if !has_nan(run) {
                    let bytes: &[u8] = bytemuck::cast_slice(v);
                    return f(&bytes[ds..de]);
                }
                let mut canon: Vec<u8> = Vec::with_capacity(4 * CANON_BLOCK.min(run.len()));
                for (k, block) in run.chunks(CANON_BLOCK).enumerate() {
                    canon.clear();
                    canon.extend(
                        block
                            .iter()
                            .flat_map(|x| crate::canonical_f32_bits(*x).to_le_bytes()),
                    );
                    // This block's stream bytes, clipped to [ds, de).
                    let b0 = 4 * (e0 + k * CANON_BLOCK);
                    let (s, e) = (ds.max(b0) - b0, de.min(b0 + canon.len()) - b0);
                    f(&canon[s..e]);
                }
            }
        }
    }
}

/// The chaining value of bytes `[start, end)` of the stream `head ‖ data`, which must
/// be a subtree of BLAKE3's tree over the whole stream and not all of it (`start` a
/// multiple of a power-of-two number of chunks that `end − start` does not exceed,
/// as `left_subtree_len` cuts).
pub(crate) fn subtree_cv(head: &[u8], data: &Elements<'_>, start: u64, end: u64) -> ChainingValue {
    let hl = head.len() as u64;
    let mut h = blake3::Hasher::new();
    h.set_input_offset(start);
    if start >= hl {
        data.for_bytes((start - hl) as usize, (end - hl) as usize, |b| {
            h.update(b);
        });
        return h.finalize_non_root();
    }
    if end - start <= LEAF_COPY_BYTES {
        with_copy(head, data, start, end, |b| {
            h.update(b);
        });
        return h.finalize_non_root();
    }
    let left = start + left_subtree_len(end - start);
    merge_subtrees_non_root(
        &subtree_cv(head, data, start, left),
        &subtree_cv(head, data, left, end),
        Mode::Hash,
    )
}

/// `blake3::hash(head ‖ data)`, hashed along the tree (see the module docs).
pub(crate) fn stream_hash(head: &[u8], data: &Elements<'_>) -> [u8; 32] {
    let total = (head.len() + data.len()) as u64;
    if total <= LEAF_COPY_BYTES {
        let mut out = [0u8; 32];
        with_copy(head, data, 0, total, |b| {
            out = *blake3::hash(b).as_bytes();
        });
        return out;
    }
    let left = left_subtree_len(total);
    *merge_subtrees_root(
        &subtree_cv(head, data, 0, left),
        &subtree_cv(head, data, left, total),
        Mode::Hash,
    )
    .as_bytes()
}

/// Calls `f` with bytes `[start, end)` of `head ‖ data` in one buffer (this thread's
/// scratch; a fresh one if a caller up the stack holds it).
fn with_copy(head: &[u8], data: &Elements<'_>, start: u64, end: u64, f: impl FnOnce(&[u8])) {
    let fill = |buf: &mut Vec<u8>| {
        buf.clear();
        let (start, end, hl) = (start as usize, end as usize, head.len());
        if start < hl {
            buf.extend_from_slice(&head[start..end.min(hl)]);
        }
        let (ds, de) = (start.max(hl) - hl, end - hl);
        if ds < de {
            data.for_bytes(ds, de, |b| buf.extend_from_slice(b));
        }
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            fill(&mut buf);
            f(&buf);
        }
        Err(_) => {
            let mut buf = Vec::new();
            fill(&mut buf);
            f(&buf);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(head: &[u8], stream_bytes: &[u8]) -> [u8; 32] {
        let mut s = head.to_vec();
        s.extend_from_slice(stream_bytes);
        *blake3::hash(&s).as_bytes()
    }

    #[test]
    fn the_tree_gives_blake3_of_the_whole_stream() {
        // Heads of several lengths (not multiples of 4 included), lengths around every
        // boundary that matters: a chunk, the copied subtree, powers of two.
        let c = LEAF_COPY_BYTES as usize;
        for head_len in [0usize, 1, 20, 24, 27, 1024, 1030] {
            let head: Vec<u8> = (0..head_len).map(|i| (i * 7 + 3) as u8).collect();
            for len in [
                0,
                1,
                1000,
                1024 - head_len % 1024,
                4096,
                16 * 1024 + 5,
                c - head_len.min(c),
                c - head_len.min(c) + 1,
                c,
                2 * c + 3,
                5 * c + 1021,
                64 * c + 7,
            ] {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let want = reference(&head, &bytes);
                assert_eq!(
                    stream_hash(&head, &Elements::Bytes(&bytes)),
                    want,
                    "head {head_len}, {len} bytes"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any head, any length up to a few copied subtrees, f32 or bytes, NaNs or not.
        #[test]
        fn any_stream_hashes_as_blake3_of_its_bytes(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            n in 0usize..(3 * LEAF_COPY_BYTES as usize / 4 + 300),
            nan_every in 0usize..5000,
            seed in proptest::prelude::any::<u32>(),
        ) {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    if nan_every > 0 && i % nan_every == nan_every - 1 {
                        f32::from_bits(0x7f80_0001 | (i as u32 & 0x3f_fffe) | (i as u32 & 1) << 31)
                    } else {
                        f32::from_bits((i as u32).wrapping_mul(2_654_435_761) ^ seed)
                    }
                })
                .collect();
            let canon: Vec<u8> = v
                .iter()
                .flat_map(|x| crate::canonical_f32_bits(*x).to_le_bytes())
                .collect();
            proptest::prop_assert_eq!(stream_hash(&head, &Elements::F32(&v)), reference(&head, &canon));
            let raw: &[u8] = bytemuck::cast_slice(&v);
            proptest::prop_assert_eq!(stream_hash(&head, &Elements::Bytes(raw)), reference(&head, raw));
        }
    }

    #[test]
    fn f32_nans_are_hashed_canonical_wherever_they_fall() {
        let head = b"TB/job/leaf/v1\x01\x01\x00\x00\x00\x00\x00".to_vec();
        for n in [1usize, 5, 4000, 16_384, 40_000, 200_003] {
            let mut v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            for at in [0, n / 3, n / 2, n - 1] {
                v[at] = f32::from_bits(0xff80_0001 + at as u32);
            }
            let canon: Vec<u8> = v
                .iter()
                .flat_map(|x| crate::canonical_f32_bits(*x).to_le_bytes())
                .collect();
            assert_eq!(
                stream_hash(&head, &Elements::F32(&v)),
                reference(&head, &canon),
                "{n} elements"
            );
        }
    }

    #[test]
    fn has_nan_finds_every_nan_and_nothing_else() {
        let specials = [
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -0.0,
            f32::MIN_POSITIVE / 2.0,
        ];
        for len in [0, 1, 255, 256, 257, 1000] {
            let mut v: Vec<f32> = (0..len).map(|i| specials[i % specials.len()]).collect();
            assert!(!has_nan(&v), "{len}");
            for at in [0, len / 2, len.saturating_sub(1)] {
                if len == 0 {
                    continue;
                }
                for nan in [
                    f32::NAN,
                    f32::from_bits(0xff80_0001),
                    f32::from_bits(0x7fff_ffff),
                ] {
                    let keep = v[at];
                    v[at] = nan;
                    assert!(has_nan(&v), "{len} at {at}");
                    v[at] = keep;
                }
            }
        }
    }
}
