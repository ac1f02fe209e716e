//! Published objects: the chain's data-availability layer of traces, result objects,
//! models, evidence bundles and job blobs (`docs/spec/verification.md`, "Published
//! objects"). Chunks published idempotently, each poster's copy assembled apart until
//! complete, objects pinned while something relies on them and pruned when their
//! retention ends.

use super::keys::{be, id_at, scan_until};
use super::records::{self as r, Kind, Object, Partial};
use crate::error::MarketRefusal as K;
use crate::error::TxError;
use crate::params::ChainParams;
use crate::state::{Overlay, StateRead};
use crate::tx::FeeSelector;
use crate::tx::PublishBlob;
use sha2::{Digest as _, Sha256};
use tb_primitives::Address;

fn refuse(k: K, msg: impl Into<String>) -> TxError {
    TxError::market(k, msg)
}

const NO_POSTER: Address = Address([0; 32]);

/// Least fee of a published chunk of `len` bytes.
pub fn blob_fee_min(p: &super::MarketParams, len: usize) -> u64 {
    (len as u64)
        .div_ceil(1024)
        .saturating_mul(p.blob_fee_per_kib_micro)
}

/// Stateless checks of a `PublishBlob`.
pub fn check_publish(p: &super::MarketParams, b: &PublishBlob) -> Result<(), TxError> {
    // A fixed cap (tb-job's), not the governable `job_blob_bytes_max`: lowering that
    // must not make the blob of a job already in flight unpublishable.
    let max = tb_job::format::JOB_BLOB_BYTES_MAX as u64;
    if b.total_bytes == 0 || b.total_bytes > max {
        return Err(refuse(K::Fields, format!("an object is 1..={max} bytes")));
    }
    if b.bytes.is_empty() || b.bytes.len() as u64 > p.blob_chunk_bytes {
        return Err(refuse(
            K::Fields,
            format!("a chunk is 1..={} bytes", p.blob_chunk_bytes),
        ));
    }
    if b.fee < blob_fee_min(p, b.bytes.len()) {
        return Err(refuse(
            K::Fields,
            format!(
                "a chunk of {} bytes pays at least {} in fees",
                b.bytes.len(),
                blob_fee_min(p, b.bytes.len())
            ),
        ));
    }
    Ok(())
}

/// The `PublishBlob` payloads that publish `bytes` (nonces 0: the sender sets them),
/// each paying the least fee.
pub fn publish_payloads(p: &super::MarketParams, from: Address, bytes: &[u8]) -> Vec<PublishBlob> {
    let object: [u8; 32] = Sha256::digest(bytes).into();
    bytes
        .chunks(p.blob_chunk_bytes as usize)
        .enumerate()
        .map(|(i, c)| PublishBlob {
            from,
            object,
            total_bytes: bytes.len() as u64,
            index: i as u32,
            bytes: c.to_vec(),
            fee: blob_fee_min(p, c.len()),
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        })
        .collect()
}

fn expiry_key(expires: u64, object: &[u8; 32], poster: &Address) -> Vec<u8> {
    r::key(Kind::ObjectExpiry, &[&be(expires), object, &poster.0])
}

fn chunk_key(object: &[u8; 32], poster: &Address, index: u32) -> Vec<u8> {
    r::key(Kind::Chunk, &[object, &poster.0, &index.to_be_bytes()])
}

/// Applies one published chunk. The chunk that completes a poster's copy checks the
/// whole against the object's SHA-256: a match makes the object available, a mismatch
/// discards that poster's copy (another poster's copy is never affected).
///
/// Publication is idempotent: a chunk of an object that is already available, or one
/// this poster already sent, is accepted and changes nothing but the fee it pays. So a
/// client that re-sends after an interruption, or two replicas publishing the same
/// result object in one block, never have a transaction refused (which would drop the
/// sender's later transactions with it).
pub fn apply_publish(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    h: u64,
    b: &PublishBlob,
) -> Result<(), TxError> {
    let p = &params.market;
    check_publish(p, b)?;
    if r::object(ov, &b.object).is_some() {
        return Ok(());
    }
    let pk = r::key(Kind::Partial, &[&b.object, &b.from.0]);
    let mut part: Partial = match r::get(ov, &pk) {
        Some(x) => x,
        None => {
            let chunks = b.total_bytes.div_ceil(p.blob_chunk_bytes);
            Partial {
                total_bytes: b.total_bytes,
                chunk_bytes: p.blob_chunk_bytes,
                chunks: chunks as u32,
                received: 0,
                expires: h + p.blob_retention_blocks,
            }
        }
    };
    if part.total_bytes != b.total_bytes {
        return Err(refuse(
            K::Chunk,
            format!(
                "this copy of the object was declared {} bytes",
                part.total_bytes
            ),
        ));
    }
    if b.index >= part.chunks {
        return Err(refuse(
            K::Chunk,
            format!("chunk {} of an object of {} chunks", b.index, part.chunks),
        ));
    }
    let start = b.index as u64 * part.chunk_bytes;
    let want = part.chunk_bytes.min(part.total_bytes - start);
    if b.bytes.len() as u64 != want {
        return Err(refuse(
            K::Chunk,
            format!("chunk {} is {want} bytes, not {}", b.index, b.bytes.len()),
        ));
    }
    let ck = chunk_key(&b.object, &b.from, b.index);
    if ov.get_raw(&ck).is_some() {
        return Ok(());
    }
    // All checks passed: write.
    if part.received == 0 {
        ov.put(expiry_key(part.expires, &b.object, &b.from), &());
    }
    ov.put(ck, &b.bytes);
    part.received += 1;
    if part.received < part.chunks {
        ov.put(pk, &part);
        return Ok(());
    }
    ov.delete(pk);
    ov.delete(expiry_key(part.expires, &b.object, &b.from));
    let mut hasher = Sha256::new();
    // A well-formed trace blob also gets its header and Merkle root read, once; a
    // result object its output digests, streamed over the chunks.
    let trace_sized = part.total_bytes
        <= (tb_job::verify::TRACE_HEADER_BYTES + 32 * tb_job::program::OPS_MAX) as u64;
    let mut whole = Vec::new();
    let mut result: Option<tb_job::ResultScanner> = None;
    for i in 0..part.chunks {
        let c = r::chunk(ov, &b.object, &b.from, i).unwrap_or_default();
        hasher.update(&c);
        if i == 0 && c.starts_with(&tb_job::result::RESULT_MAGIC) {
            result = Some(tb_job::ResultScanner::new());
        }
        if let Some(sc) = result.as_mut() {
            sc.feed(&c);
        }
        if trace_sized {
            whole.extend_from_slice(&c);
        }
    }
    let got: [u8; 32] = hasher.finalize().into();
    if got != b.object {
        for i in 0..part.chunks {
            ov.delete(chunk_key(&b.object, &b.from, i));
        }
        return Ok(());
    }
    let trace = if trace_sized && whole.starts_with(&tb_job::verify::TRACE_MAGIC) {
        tb_job::decode_trace(&whole).ok().map(|t| r::TraceInfo {
            task_id: t.task_id,
            provider: t.provider,
            leaves: t.leaves.len() as u32,
            root: tb_job::trace_root(&t.leaves),
        })
    } else {
        None
    };
    let result = result
        .and_then(|sc| sc.finish().ok())
        .map(|sum| r::ResultInfo {
            outputs: sum.outputs,
            output_digest: sum.output_digest,
        });
    let o = Object {
        total_bytes: part.total_bytes,
        chunks: part.chunks,
        poster: b.from,
        height: h,
        expires: h + p.blob_retention_blocks,
        trace,
        result,
    };
    ov.put(expiry_key(o.expires, &b.object, &NO_POSTER), &());
    ov.put(r::key(Kind::Object, &[&b.object]), &o);
    Ok(())
}

/// Keeps a complete object at least until `until`.
pub fn pin(ov: &mut Overlay<'_>, object: &[u8; 32], until: u64) {
    if let Some(mut o) = r::object(ov, object) {
        if o.expires < until {
            ov.delete(expiry_key(o.expires, object, &NO_POSTER));
            o.expires = until;
            ov.put(expiry_key(o.expires, object, &NO_POSTER), &());
            ov.put(r::key(Kind::Object, &[object]), &o);
        }
    }
}

/// Blocks a job's data stay pinned past an event: long enough for a full reveal,
/// challenge window and a dispute after it.
pub(super) fn pin_span(p: &super::MarketParams) -> u64 {
    p.reveal_blocks
        + p.challenge_window_blocks
        + 2 * p.evidence_deadline_blocks
        + p.blob_retention_blocks
}

/// Drops the objects and abandoned partial copies whose retention ends at `h`.
pub(super) fn prune_objects(ov: &mut Overlay<'_>, h: u64) {
    for k in scan_until(ov, Kind::ObjectExpiry, h) {
        let object = id_at(&k, 10).0;
        let poster = Address(id_at(&k, 42).0);
        ov.delete(k);
        if poster == NO_POSTER {
            if let Some(o) = r::object(ov, &object) {
                if o.expires <= h {
                    for i in 0..o.chunks {
                        ov.delete(chunk_key(&object, &o.poster, i));
                    }
                    ov.delete(r::key(Kind::Object, &[&object]));
                }
            }
        } else {
            let pk = r::key(Kind::Partial, &[&object, &poster.0]);
            if r::get::<Partial, _>(ov, &pk).is_some() {
                // Only the chunks received (an abandoned copy may declare many more).
                for (ck, _) in ov.scan_prefix(&r::key(Kind::Chunk, &[&object, &poster.0])) {
                    ov.delete(ck);
                }
                ov.delete(pk);
            }
        }
    }
}
