//! `output_digest_sha256`: the digest of a tensor's value that receipts and traces commit
//! to. SHA-256 over: dtype tag (1 byte), rank (1 byte), each dim as LE u32, then the
//! elements in row-major order as LE bytes with every f32 NaN canonicalised.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
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
    let mut h = Sha256::new();
    h.update(digest_header(data.dtype(), shape)?);
    h.update(data.to_le_bytes_canonical());
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
