//! The trace leaf of a large contiguous tensor, hashed on several threads: BLAKE3 is a
//! tree of 1 KiB chunks, so the byte stream `crate::digest::trace_leaf` hashes can be cut
//! into subtrees at the places BLAKE3's own tree cuts it, each subtree hashed on a pool
//! worker, and their chaining values merged — giving exactly `blake3::hash` of the
//! whole stream (tested against it). Not a kernel source: no op result depends on it.

use super::pool::run_shares;
use crate::digest::{digest_header, TRACE_LEAF_PREFIX};
use crate::error::Result;
use crate::storage::HostData;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use std::sync::Mutex;

/// Smallest subtree worth a share of its own (256 KiB: hashing it takes ~50 µs, well
/// above the cost of handing it to a warm worker).
pub const PAR_LEAF_SUBTREE_BYTES: u64 = 256 * 1024;

/// How the stream is cut: a subtree (`offset`, `len`) or a parent of two.
enum Cut {
    Leaf(usize),
    Parent(Box<Cut>, Box<Cut>),
}

fn cut(offset: u64, len: u64, depth: u32, out: &mut Vec<(u64, u64)>) -> Cut {
    if depth == 0 || len < 2 * PAR_LEAF_SUBTREE_BYTES {
        out.push((offset, len));
        return Cut::Leaf(out.len() - 1);
    }
    // BLAKE3's left subtree: the largest power-of-two number of chunks below `len`.
    let left = left_subtree_len(len);
    Cut::Parent(
        Box::new(cut(offset, left, depth - 1, out)),
        Box::new(cut(offset + left, len - left, depth - 1, out)),
    )
}

fn chaining_value(c: &Cut, cvs: &[ChainingValue]) -> ChainingValue {
    match c {
        Cut::Leaf(i) => cvs[*i],
        Cut::Parent(l, r) => {
            merge_subtrees_non_root(&chaining_value(l, cvs), &chaining_value(r, cvs), Mode::Hash)
        }
    }
}

/// The trace leaf of `shape` over `bytes` (the elements' little-endian bytes, already
/// canonical) of dtype tag `dtype`, hashed on up to `threads` threads; `None` when
/// the stream is too short to cut (the caller hashes it in one piece).
pub(crate) fn trace_leaf_bytes(
    threads: usize,
    dtype: crate::DType,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Option<[u8; 32]>> {
    let mut head = TRACE_LEAF_PREFIX.to_vec();
    head.extend_from_slice(&digest_header(dtype, shape)?);
    let total = (head.len() + bytes.len()) as u64;
    let depth = usize::BITS - 1 - threads.max(1).leading_zeros(); // ⌊log₂ threads⌋
    let mut pieces = Vec::new();
    let Cut::Parent(left, right) = cut(0, total, depth, &mut pieces) else {
        return Ok(None);
    };
    let cvs = Mutex::new(vec![[0u8; 32]; pieces.len()]);
    run_shares(threads, pieces.len(), |i| {
        let (offset, len) = pieces[i];
        let mut h = blake3::Hasher::new();
        h.set_input_offset(offset);
        let (start, end) = (offset as usize, (offset + len) as usize);
        if start < head.len() {
            h.update(&head[start..end.min(head.len())]);
        }
        let (ds, de) = (start.max(head.len()) - head.len(), end - head.len());
        if ds < de {
            h.update(&bytes[ds..de]);
        }
        let cv = h.finalize_non_root();
        cvs.lock().unwrap_or_else(|p| p.into_inner())[i] = cv;
    });
    let cvs = cvs.into_inner().unwrap_or_else(|p| p.into_inner());
    let root = merge_subtrees_root(
        &chaining_value(&left, &cvs),
        &chaining_value(&right, &cvs),
        Mode::Hash,
    );
    Ok(Some(*root.as_bytes()))
}

/// The trace leaf of a contiguous run `data[start..start + n]` hashed on `threads`
/// threads, when that is possible here: a little-endian host, a 4-byte dtype, no f32
/// NaN (whose bits would need canonicalising) and a stream long enough to cut.
pub(crate) fn trace_leaf_contiguous(
    threads: usize,
    shape: &[usize],
    data: &HostData,
    start: usize,
    n: usize,
) -> Result<Option<[u8; 32]>> {
    if threads < 2 || !cfg!(target_endian = "little") {
        return Ok(None);
    }
    let bytes: &[u8] = match data {
        HostData::F32(v) => {
            let run = &v[start..start + n];
            if run.iter().any(|x| x.is_nan()) {
                return Ok(None);
            }
            bytemuck::cast_slice(run)
        }
        HostData::I32(v) => bytemuck::cast_slice(&v[start..start + n]),
        HostData::U32(v) => bytemuck::cast_slice(&v[start..start + n]),
        HostData::U8(v) => &v[start..start + n],
    };
    trace_leaf_bytes(threads, data.dtype(), shape, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    /// The stream as `crate::digest::trace_leaf` hashes it, in one piece.
    fn serial(dtype: DType, shape: &[usize], bytes: &[u8]) -> [u8; 32] {
        let mut s = TRACE_LEAF_PREFIX.to_vec();
        s.extend_from_slice(&digest_header(dtype, shape).unwrap());
        s.extend_from_slice(bytes);
        *blake3::hash(&s).as_bytes()
    }

    #[test]
    fn the_cut_tree_gives_blake3_of_the_whole_stream() {
        // Lengths around every boundary that matters: chunk and subtree sizes, and the
        // smallest stream that is cut.
        let k = PAR_LEAF_SUBTREE_BYTES as usize;
        let lens = [
            2 * k - 100,
            2 * k - 48,
            2 * k,
            2 * k + 1,
            2 * k + 1023,
            3 * k + 17,
            4 * k - 48,
            4 * k,
            8 * k + 5000,
            13 * k + 7,
        ];
        for len in lens {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let shape = [len];
            for threads in [2, 3, 4, 7, 8] {
                match trace_leaf_bytes(threads, DType::U8, &shape, &bytes).unwrap() {
                    Some(leaf) => assert_eq!(
                        leaf,
                        serial(DType::U8, &shape, &bytes),
                        "{len} on {threads}"
                    ),
                    // The stream is the 20 bytes of prefix and header, then the data.
                    None => assert!(len + 20 < 2 * k, "{len} on {threads} was not cut"),
                }
            }
        }
    }

    #[test]
    fn a_nan_or_one_thread_leaves_it_to_the_serial_path() {
        let mut v = vec![1.5f32; 300_000];
        let data = HostData::F32(v.clone());
        assert!(trace_leaf_contiguous(2, &[300_000], &data, 0, 300_000)
            .unwrap()
            .is_some());
        assert!(trace_leaf_contiguous(1, &[300_000], &data, 0, 300_000)
            .unwrap()
            .is_none());
        v[123_456] = f32::NAN;
        let data = HostData::F32(v);
        assert!(trace_leaf_contiguous(2, &[300_000], &data, 0, 300_000)
            .unwrap()
            .is_none());
    }
}
