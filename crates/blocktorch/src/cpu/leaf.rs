//! The trace leaf of a large contiguous tensor, hashed on several threads: BLAKE3 is a
//! tree of 1 KiB chunks, so the byte stream `crate::digest::trace_leaf` hashes can be cut
//! into subtrees at the places BLAKE3's own tree cuts it, each subtree hashed on a pool
//! worker, and their chaining values merged — giving exactly `blake3::hash` of the
//! whole stream (tested against it). The same pieces can be queued as background work
//! for the pool ([`defer`], behind `Fabric::trace_leaf_deferred`): the executor hands
//! every CPU content leaf over, and the workers hash it between kernels. Not a kernel
//! source: no op result depends on it.

use super::pool::{run_shares, workers, Task};
use super::storage_of;
use crate::digest::leaf_head;
use crate::error::Result;
use crate::fabric::{FabricTensor, PendingLeaf};
use crate::leaf_tree::{subtree_cv, Elements};
use crate::storage::HostData;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, Mode,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Smallest piece of the stream worth a share of its own (32 KiB: hashing it takes
/// ~7 µs with BLAKE3's 16-way SIMD, several times the cost of handing it to a warm
/// worker). A stream is cut only when it is at least twice this.
pub const PAR_LEAF_SUBTREE_BYTES: u64 = 32 * 1024;

/// Most halvings of the stream: up to 2^(⌊log₂ threads⌋ + 3) pieces, so the pool's
/// threads take several each and finish together although BLAKE3's cuts (a power of
/// two of chunks on the left) leave uneven halves.
const CUT_DEPTH_PER_THREAD_LOG: u32 = 3;

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

/// A stream cut into pieces: its head (prefix and header), the pieces (`offset`,
/// `len`) and the tree that merges their chaining values.
struct Cuts {
    head: Vec<u8>,
    pieces: Vec<(u64, u64)>,
    left: Cut,
    right: Cut,
}

impl Cuts {
    /// The cuts of the leaf stream of `shape` over `data_len` bytes of dtype `dtype`
    /// for `threads` threads: up to ⌊log₂ threads⌋ + [`CUT_DEPTH_PER_THREAD_LOG`]
    /// halvings, none below [`PAR_LEAF_SUBTREE_BYTES`]. `None` when the stream is too
    /// short to cut (it is hashed in one piece).
    fn of(
        threads: usize,
        dtype: crate::DType,
        shape: &[usize],
        data_len: usize,
    ) -> Result<Option<Cuts>> {
        let head = leaf_head(dtype, shape)?;
        let total = (head.len() + data_len) as u64;
        let depth = usize::BITS - 1 - threads.max(1).leading_zeros() + CUT_DEPTH_PER_THREAD_LOG;
        let mut pieces = Vec::new();
        Ok(match cut(0, total, depth, &mut pieces) {
            Cut::Parent(left, right) => Some(Cuts {
                head,
                pieces,
                left: *left,
                right: *right,
            }),
            Cut::Leaf(_) => None,
        })
    }

    /// The chaining value of piece `i` of the stream whose data is `data`.
    fn piece(&self, i: usize, data: &Elements<'_>) -> ChainingValue {
        let (offset, len) = self.pieces[i];
        subtree_cv(&self.head, data, offset, offset + len)
    }

    /// The leaf: the pieces' chaining values merged up the tree.
    fn root(&self, cvs: &[ChainingValue]) -> [u8; 32] {
        let root = merge_subtrees_root(
            &chaining_value(&self.left, cvs),
            &chaining_value(&self.right, cvs),
            Mode::Hash,
        );
        *root.as_bytes()
    }
}

/// The trace leaf of `shape` over `data` (of dtype tag `dtype`), hashed on up to
/// `threads` threads: the stream (prefix, header, data) cut into BLAKE3 subtrees of
/// at least [`PAR_LEAF_SUBTREE_BYTES`], each hashed on the pool, their chaining values
/// merged. `None` when the stream is too short to cut (the caller hashes it in one
/// piece).
fn trace_leaf_pieces(
    threads: usize,
    dtype: crate::DType,
    shape: &[usize],
    data: Elements<'_>,
) -> Result<Option<[u8; 32]>> {
    let Some(cuts) = Cuts::of(threads, dtype, shape, data.len())? else {
        return Ok(None);
    };
    let cvs = Mutex::new(vec![[0u8; 32]; cuts.pieces.len()]);
    run_shares(threads, cuts.pieces.len(), |i| {
        let cv = cuts.piece(i, &data);
        cvs.lock().unwrap_or_else(|p| p.into_inner())[i] = cv;
    });
    let cvs = cvs.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(Some(cuts.root(&cvs)))
}

/// The trace leaf of a contiguous run `data[start..start + n]` hashed on `threads`
/// threads, when that is possible here: a little-endian host, two threads or more and
/// a stream long enough to cut. Each piece checks its own f32s for NaN (and hashes
/// their canonical bytes if it finds one), so no pass over the data precedes the hash.
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
    trace_leaf_pieces(threads, data.dtype(), shape, Elements::of(data, start, n))
}

/// A leaf being hashed in the background: what its pieces share.
struct Deferred {
    tensor: FabricTensor,
    /// `None`: hashed in one piece (a short stream, or a strided view).
    cuts: Option<Cuts>,
    cvs: Mutex<Vec<ChainingValue>>,
    /// Pieces not yet hashed.
    remaining: AtomicUsize,
    leaf: Mutex<Option<Result<[u8; 32]>>>,
    done: AtomicBool,
}

impl Deferred {
    /// Hashes piece `i` (or the whole stream, when it is not cut); the last piece
    /// merges the tree and publishes the leaf.
    fn run(&self, i: usize) {
        let result = (|| -> Result<Option<[u8; 32]>> {
            let data = storage_of(&self.tensor)?.data();
            let l = self.tensor.layout();
            let Some(cuts) = &self.cuts else {
                return crate::digest::trace_leaf_view(self.tensor.shape(), data, l).map(Some);
            };
            let cv = cuts.piece(i, &Elements::of(data, l.offset(), l.numel()));
            let mut cvs = self.cvs.lock().unwrap_or_else(|p| p.into_inner());
            cvs[i] = cv;
            Ok((self.remaining.fetch_sub(1, Ordering::AcqRel) == 1).then(|| cuts.root(&cvs)))
        })();
        let leaf = match result {
            Ok(None) => return,
            Ok(Some(leaf)) => Ok(leaf),
            Err(e) => Err(e),
        };
        let mut slot = self.leaf.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(leaf);
            self.done.store(true, Ordering::Release);
        }
    }
}

/// The trace leaf of `t`, hashed in the background by the workers of `threads`
/// ([`Workers::defer`]): in pieces, as [`trace_leaf_contiguous`] cuts them, when `t`
/// is contiguous and its stream long enough, else in one. `None` where there are no
/// workers (one thread) or the host is big-endian: the caller hashes it now.
pub(crate) fn defer(threads: usize, t: &FabricTensor) -> Result<Option<PendingLeaf>> {
    let Some(workers) = workers(threads) else {
        return Ok(None);
    };
    if !cfg!(target_endian = "little") {
        return Ok(None);
    }
    let data = storage_of(t)?.data();
    let l = t.layout();
    let contiguous = l.is_contiguous() && l.max_offset().is_none_or(|m| m < data.len());
    let cuts = match contiguous {
        true => Cuts::of(
            threads,
            data.dtype(),
            t.shape(),
            l.numel() * data.dtype().size_bytes(),
        )?,
        false => None,
    };
    let pieces = cuts.as_ref().map_or(1, |c| c.pieces.len());
    let state = Arc::new(Deferred {
        tensor: t.clone(),
        cuts,
        cvs: Mutex::new(vec![[0u8; 32]; pieces]),
        remaining: AtomicUsize::new(pieces),
        leaf: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let tasks: Vec<Task> = (0..pieces)
        .map(|i| {
            let state = state.clone();
            Box::new(move || state.run(i)) as Task
        })
        .collect();
    workers.defer(tasks);
    Ok(Some(PendingLeaf::deferred(move || {
        workers.wait_until(|| state.done.load(Ordering::Acquire));
        let leaf = state.leaf.lock().unwrap_or_else(|p| p.into_inner()).take();
        leaf.unwrap_or_else(|| {
            Err(crate::TensorError::Fabric {
                fabric: "cpu".into(),
                message: "a deferred trace leaf was taken twice".into(),
            })
        })
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{digest_header, TRACE_LEAF_PREFIX};
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
        // Lengths around every boundary that matters: chunk and piece sizes, and the
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
            97 * k + 3,
        ];
        for len in lens {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let shape = [len];
            for threads in [2, 3, 4, 7, 8] {
                match trace_leaf_pieces(threads, DType::U8, &shape, Elements::Bytes(&bytes))
                    .unwrap()
                {
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
    fn nans_are_hashed_canonical_in_every_piece() {
        // NaNs of several payloads and signs, in the first piece, on piece boundaries
        // (every 1 KiB chunk is one) and in the last element.
        let n = 300_000;
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut with_nans = v.clone();
        let nans = [
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffff_ffff),
        ];
        for (j, at) in [0, 1, 251, 8187, 8188, 65_531, 150_000, n - 1]
            .iter()
            .enumerate()
        {
            with_nans[*at] = nans[j % nans.len()];
        }
        for data in [v, with_nans] {
            let data = HostData::F32(data);
            let expected = crate::digest::trace_leaf(&[n], &data).unwrap();
            for threads in [2, 3, 7] {
                let leaf = trace_leaf_contiguous(threads, &[n], &data, 0, n).unwrap();
                assert_eq!(leaf, Some(expected), "{threads} threads");
            }
            // A run inside a larger buffer, as a contiguous view with an offset gives.
            let leaf = trace_leaf_contiguous(2, &[n - 1000], &data, 1000, n - 1000).unwrap();
            let HostData::F32(all) = &data else {
                unreachable!()
            };
            let inner = HostData::F32(all[1000..].to_vec());
            assert_eq!(
                leaf,
                Some(crate::digest::trace_leaf(&[n - 1000], &inner).unwrap())
            );
        }
    }

    #[test]
    fn one_thread_or_a_short_stream_is_left_to_the_serial_path() {
        let data = HostData::F32(vec![1.5f32; 300_000]);
        assert!(trace_leaf_contiguous(1, &[300_000], &data, 0, 300_000)
            .unwrap()
            .is_none());
        let short = (PAR_LEAF_SUBTREE_BYTES / 4) as usize;
        let data = HostData::F32(vec![1.5f32; short]);
        assert!(trace_leaf_contiguous(2, &[short], &data, 0, short)
            .unwrap()
            .is_none());
    }

    #[test]
    fn deferred_leaves_equal_the_serial_leaf() {
        use crate::fabric::Fabric;
        let n = 96 * 1024 + 5;
        let mut v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        v[77_777] = f32::from_bits(0xffc0_1234);
        let host = HostData::F32(v);
        for threads in [1, 2, 3, 7] {
            let cpu = crate::CpuFabric::new(crate::CpuConfig::new(
                super::super::gemm::Simd::detect(),
                threads,
            ))
            .unwrap();
            let big = cpu.upload(&host, &[n]).unwrap();
            let small = cpu
                .upload(&HostData::U32((0..100).collect()), &[10, 10])
                .unwrap();
            // A strided view (a transpose) is hashed in one piece.
            let mut w: Vec<f32> = (0..5 * 20_000).map(|i| i as f32 * 0.5).collect();
            w[12_345] = f32::NAN;
            let wide = cpu.upload(&HostData::F32(w), &[5, 20_000]).unwrap();
            let t = wide
                .with_layout(wide.layout().permute(&[1, 0]).unwrap())
                .unwrap();
            // Queue them all before waiting, as the executor does.
            let tensors = [&big, &small, &t, &big];
            let pending: Vec<_> = tensors.iter().map(|x| cpu.trace_leaf_deferred(x)).collect();
            for (x, p) in tensors.iter().zip(pending) {
                let host = cpu.download(x).unwrap();
                let expected = crate::digest::trace_leaf(x.shape(), &host).unwrap();
                assert_eq!(
                    p.wait().unwrap(),
                    expected,
                    "{threads} threads, {:?}",
                    x.shape()
                );
            }
        }
    }
}
