//! `output_digest_sha256`: the digest of a tensor's value that receipts and traces commit
//! to. SHA-256 over: dtype tag (1 byte), rank (1 byte), each dim as LE u32, then the
//! elements in row-major order as LE bytes with every f32 NaN canonicalised.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::layout::Layout;
use crate::storage::HostData;
use sha2::{Digest as _, Sha256};

/// SHA-256 of a tensor value (see the module docs). Refuses a data length that does not
/// match the shape, a rank above [`crate::RANK_MAX`] or a dim above `u32::MAX`.
pub fn output_digest_sha256(shape: &[usize], data: &HostData) -> Result<[u8; 32]> {
    let n = crate::layout::check_shape(shape)?;
    if n != data.len() {
        return Err(TensorError::LengthMismatch {
            shape: shape.to_vec(),
            expected: n,
            got: data.len(),
        });
    }
    digest_view(shape, data, &Layout::contiguous(shape)?)
}

/// Elements hashed per chunk by the streaming digest (16 KiB of f32).
const CHUNK: usize = 4096;

/// `output_digest_sha256` of the view `layout` (of logical shape `shape`) over `data`,
/// streamed in chunks: no copy of the tensor is made. Refuses a layout of another shape
/// or one that reaches past `data`.
pub fn digest_view(shape: &[usize], data: &HostData, layout: &Layout) -> Result<[u8; 32]> {
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
    let mut h = Sha256::new();
    h.update(digest_header(data.dtype(), shape)?);
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
                    h.update(&buf);
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
                    h.update(&buf);
                }
            }
        }};
    }
    match data {
        HostData::F32(v) => stream!(v, |x: f32| crate::canonical_f32_bits(x).to_le_bytes()),
        HostData::U8(v) => {
            if contiguous {
                h.update(&v[start..start + n]);
            } else {
                stream!(v, |x: u8| [x])
            }
        }
        HostData::I32(v) => stream!(v, |x: i32| x.to_le_bytes()),
        HostData::U32(v) => stream!(v, |x: u32| x.to_le_bytes()),
    }
    Ok(h.finalize().into())
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
