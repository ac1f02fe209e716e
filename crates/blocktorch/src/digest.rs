//! The digests of a tensor's value. `output_digest_sha256`, which receipts and result
//! objects commit to: SHA-256 over dtype tag (1 byte), rank (1 byte), each dim as LE
//! u32, then the elements in row-major order as LE bytes with every f32 NaN
//! canonicalised. And `trace_leaf`, which a job's trace commits to for every op output
//! that is not a declared output: BLAKE3 over `TB/job/leaf/v1` and the same bytes.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::layout::Layout;
use crate::leaf_tree::has_nan;
use crate::storage::HostData;
use sha2::{Digest as _, Sha256};

/// SHA-256 of a tensor value (see the module docs). Refuses a data length that does not
/// match the shape, a rank above [`crate::RANK_MAX`] or a dim above `u32::MAX`.
pub fn output_digest_sha256(shape: &[usize], data: &HostData) -> Result<[u8; 32]> {
    check_len(shape, data)?;
    digest_view(shape, data, &Layout::contiguous(shape)?)
}

/// Elements hashed per chunk by the streaming digests (64 KiB of f32: enough for
/// BLAKE3 to hash many 1 KiB chunks at once in SIMD lanes).
const CHUNK: usize = 16384;

/// `output_digest_sha256` of the view `layout` (of logical shape `shape`) over `data`,
/// streamed in chunks: no copy of the tensor is made. Refuses a layout of another shape
/// or one that reaches past `data`.
pub fn digest_view(shape: &[usize], data: &HostData, layout: &Layout) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    stream_view(shape, data, layout, |b| h.update(b))?;
    Ok(h.finalize().into())
}

/// Prefix of a trace content leaf (`docs/spec/job-format-v0.md` §10): the 14 ASCII bytes
/// `TB/job/leaf/v1`.
pub const TRACE_LEAF_PREFIX: &[u8; 14] = b"TB/job/leaf/v1";

/// The trace content leaf of a tensor value: BLAKE3 over [`TRACE_LEAF_PREFIX`] and then
/// exactly the bytes `output_digest_sha256` hashes (header, then the elements row-major,
/// little-endian, every f32 NaN written as `0x7fc00000`). Same refusals as
/// [`output_digest_sha256`].
pub fn trace_leaf(shape: &[usize], data: &HostData) -> Result<[u8; 32]> {
    check_len(shape, data)?;
    trace_leaf_view(shape, data, &Layout::contiguous(shape)?)
}

/// [`trace_leaf`] of the view `layout` over `data`, streamed without a copy (as
/// [`digest_view`]).
pub fn trace_leaf_view(shape: &[usize], data: &HostData, layout: &Layout) -> Result<[u8; 32]> {
    // A contiguous run on a little-endian host: its memory is the stream (but for NaNs),
    // hashed along BLAKE3's tree without a pass of its own (`leaf_tree`).
    if cfg!(target_endian = "little") && layout.is_contiguous() {
        check_view(shape, data, layout)?;
        let head = leaf_head(data.dtype(), shape)?;
        let n = layout.numel();
        let elements =
            crate::leaf_tree::Elements::of(data, if n == 0 { 0 } else { layout.offset() }, n);
        return Ok(crate::leaf_tree::stream_hash(&head, &elements));
    }
    let mut h = blake3::Hasher::new();
    h.update(TRACE_LEAF_PREFIX);
    stream_view(shape, data, layout, |b| {
        h.update(b);
    })?;
    Ok(*h.finalize().as_bytes())
}

fn check_len(shape: &[usize], data: &HostData) -> Result<()> {
    let n = crate::layout::check_shape(shape)?;
    if n != data.len() {
        return Err(TensorError::LengthMismatch {
            shape: shape.to_vec(),
            expected: n,
            got: data.len(),
        });
    }
    Ok(())
}

/// Refuses a view of another shape than `shape` (or beyond the limits) or one that
/// reaches past `data`.
fn check_view(shape: &[usize], data: &HostData, layout: &Layout) -> Result<()> {
    crate::layout::check_shape(shape)?;
    if layout.shape() != shape {
        return Err(TensorError::ShapeMismatch {
            op: "digest",
            lhs: shape.to_vec(),
            rhs: layout.shape().to_vec(),
        });
    }
    if let Some(max) = layout.max_offset() {
        if max >= data.len() {
            return Err(TensorError::LengthMismatch {
                shape: shape.to_vec(),
                expected: max.saturating_add(1),
                got: data.len(),
            });
        }
    }
    Ok(())
}

/// Feeds `update` the digest header of `shape`, then the elements `layout` shows over
/// `data` in row-major logical order, little-endian, f32 NaNs canonical — in chunks.
fn stream_view(
    shape: &[usize],
    data: &HostData,
    layout: &Layout,
    mut update: impl FnMut(&[u8]),
) -> Result<()> {
    check_view(shape, data, layout)?;
    update(&digest_header(data.dtype(), shape)?);
    let n = layout.numel();
    let contiguous = layout.is_contiguous();
    let start = layout.offset();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 4);
    macro_rules! stream {
        ($v:expr, $bytes:expr) => {{
            if contiguous {
                for chunk in $v[start..start + n].chunks(CHUNK) {
                    buf.clear();
                    chunk
                        .iter()
                        .for_each(|x| buf.extend_from_slice(&$bytes(*x)));
                    update(&buf);
                }
            } else {
                let mut offsets = layout.offsets();
                loop {
                    buf.clear();
                    for o in offsets.by_ref().take(CHUNK) {
                        buf.extend_from_slice(&$bytes($v[o]));
                    }
                    if buf.is_empty() {
                        break;
                    }
                    update(&buf);
                }
            }
        }};
    }
    // On a little-endian host the in-memory bytes of a contiguous run are the bytes
    // to hash (for f32, when the chunk holds no NaN): they are fed without a copy.
    let native = cfg!(target_endian = "little") && contiguous;
    match data {
        HostData::F32(v) if native => {
            for chunk in v[start..start + n].chunks(CHUNK) {
                if has_nan(chunk) {
                    buf.clear();
                    chunk.iter().for_each(|x| {
                        buf.extend_from_slice(&crate::canonical_f32_bits(*x).to_le_bytes())
                    });
                    update(&buf);
                } else {
                    update(bytemuck::cast_slice(chunk));
                }
            }
        }
        HostData::I32(v) if native => update(bytemuck::cast_slice(&v[start..start + n])),
        HostData::U32(v) if native => update(bytemuck::cast_slice(&v[start..start + n])),
        HostData::F32(v) => stream!(v, |x: f32| crate::canonical_f32_bits(x).to_le_bytes()),
        HostData::U8(v) => {
            if contiguous {
                update(&v[start..start + n]);
            } else {
                stream!(v, |x: u8| [x])
            }
        }
        HostData::I32(v) => stream!(v, |x: i32| x.to_le_bytes()),
        HostData::U32(v) => stream!(v, |x: u32| x.to_le_bytes()),
    }
    Ok(())
}

/// What a trace leaf's stream starts with: [`TRACE_LEAF_PREFIX`], then the digest
/// header of `dtype` and `shape` ([`digest_header`]).
pub(crate) fn leaf_head(dtype: DType, shape: &[usize]) -> Result<Vec<u8>> {
    let mut head = TRACE_LEAF_PREFIX.to_vec();
    head.extend_from_slice(&digest_header(dtype, shape)?);
    Ok(head)
}

/// The digest's header for a dtype and shape (exposed for streaming implementations);
/// refuses shapes beyond the limits, so the u8 rank and u32 dims never truncate.
pub fn digest_header(dtype: DType, shape: &[usize]) -> Result<Vec<u8>> {
    crate::layout::check_shape(shape)?;
    let mut out = vec![dtype.tag(), shape.len() as u8];
    for &d in shape {
        out.extend_from_slice(&(d as u32).to_le_bytes());
    }
    Ok(out)
}
