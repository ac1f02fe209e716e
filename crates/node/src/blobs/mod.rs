//! Where blobs come from: the one answer for job blobs, models, traces, results and
//! evidence bundles. [`local`] reads this node's blob store, then the chain's published
//! objects; [`fetch`] adds the connected peers (workers only: it may block). Whatever
//! is found elsewhere is checked against its SHA-256 and kept in the store, so each
//! blob travels once. The store itself is [`store::BlobStore`].

pub mod store;

pub use store::{BlobStore, BLOB_BYTES_MAX};

use crate::node::Node;
use std::time::Duration;
use tb_chain::market::records::{self as r, Job};

/// How long a worker waits for a blob from peers.
pub const BLOB_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A blob by SHA-256 from this node: its blob store first, then the chain's published
/// objects (copied into the store). Never touches the network.
pub fn local(node: &Node, sha: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
    if let Some(b) = node.blobs.get(sha).map_err(|e| e.to_string())? {
        return Ok(Some(b));
    }
    let b = r::object_bytes(node.core().db.state(), sha);
    if let Some(b) = &b {
        node.blobs.put(b).map_err(|e| e.to_string())?;
    }
    Ok(b)
}

/// A blob by SHA-256 from this node ([`local`]) or, when the network runs, the
/// connected peers (checked against its SHA-256 and stored). For worker threads: a
/// network fetch blocks up to [`BLOB_FETCH_TIMEOUT`].
pub fn fetch(node: &Node, sha: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
    if let Some(b) = local(node, sha)? {
        return Ok(Some(b));
    }
    let Some(net) = node.net() else {
        return Ok(None);
    };
    match net.fetch_blob(*sha, BLOB_FETCH_TIMEOUT) {
        Ok(b) => {
            node.blobs.put(&b).map_err(|e| e.to_string())?;
            Ok(Some(b))
        }
        Err(tb_net::FetchError::NotFound) => Ok(None),
        Err(e) => Err(format!(
            "fetching blob {} from peers: {e}",
            hex::encode(sha)
        )),
    }
}

/// The bytes of the model a job names (`None` when its blob carries its program),
/// from wherever [`fetch`] finds them; kept in the blob store, so each model is fetched
/// once.
pub fn job_model(node: &Node, job: &Job) -> Result<Option<Vec<u8>>, String> {
    let Some(m) = &job.spec.model_object else {
        return Ok(None);
    };
    let bytes = fetch(node, &m.sha256)?.ok_or_else(|| {
        format!(
            "the job's model {} is neither here, nor published, nor at a peer",
            hex::encode(m.sha256)
        )
    })?;
    Ok(Some(bytes))
}
