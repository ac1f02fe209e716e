//! The trace blob: a provider's leaf list for one job, published content-addressed and
//! named by its receipt (`docs/spec/verification.md`).

use crate::error::{JobError, Result};
use crate::program::OPS_MAX;
use crate::wire::Reader;
use sha2::{Digest as _, Sha256};
use tb_primitives::{Address, Id};

/// Magic of a trace blob.
pub const TRACE_MAGIC: [u8; 4] = *b"BTTR";
/// Its version.
pub const TRACE_VERSION: u8 = 0;
/// Bytes before the leaves: magic, version, task id, provider.
pub const TRACE_HEADER_BYTES: usize = 4 + 1 + 32 + 32;

/// A provider's published trace for one job: the leaves in program order, bound to the
/// job and the provider so that no two replicas (and no two jobs) share a trace object —
/// a replica cannot point at another's publication as its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceBlob {
    /// The chain's task id.
    pub task_id: Id,
    /// The provider.
    pub provider: Address,
    /// The leaves.
    pub leaves: Vec<[u8; 32]>,
}

/// The trace blob bytes: `BTTR`, version 0, task id, provider, then the leaves.
pub fn trace_blob(task_id: Id, provider: Address, leaves: &[[u8; 32]]) -> Vec<u8> {
    let mut b = Vec::with_capacity(TRACE_HEADER_BYTES + 32 * leaves.len());
    b.extend_from_slice(&TRACE_MAGIC);
    b.push(TRACE_VERSION);
    b.extend_from_slice(&task_id.0);
    b.extend_from_slice(&provider.0);
    for l in leaves {
        b.extend_from_slice(l);
    }
    b
}

/// SHA-256 of a trace blob (what a receipt's `trace_sha256` names).
pub fn trace_sha256(task_id: Id, provider: Address, leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRACE_MAGIC);
    h.update([TRACE_VERSION]);
    h.update(task_id.0);
    h.update(provider.0);
    for l in leaves {
        h.update(l);
    }
    h.finalize().into()
}

/// Decodes a trace blob: the header, then 1..=[`OPS_MAX`] leaves of 32 bytes.
pub fn decode_trace(b: &[u8]) -> Result<TraceBlob> {
    let mut r = Reader::new(b, 0);
    let magic: [u8; 4] = r.take("magic", 4)?.try_into().expect("4 bytes");
    if magic != TRACE_MAGIC {
        return Err(JobError::BadMagic {
            field: "magic",
            offset: 0,
            expected: TRACE_MAGIC,
            found: magic,
        });
    }
    let v = r.u8("version")?;
    if v != TRACE_VERSION {
        return Err(JobError::UnknownTag {
            field: "version",
            offset: 4,
            tag: v as u64,
        });
    }
    let task_id = Id(r.array32("task_id")?);
    let provider = Address(r.array32("provider")?);
    let rest = r.remaining();
    if rest == 0 || !rest.is_multiple_of(32) || rest / 32 > OPS_MAX {
        return Err(JobError::Verify(format!(
            "a trace holds 1..={OPS_MAX} leaves of 32 bytes, not {rest} bytes"
        )));
    }
    let leaves = r
        .take("leaves", rest)?
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32-byte chunk"))
        .collect();
    Ok(TraceBlob {
        task_id,
        provider,
        leaves,
    })
}
