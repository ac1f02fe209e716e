//! The node's workers: threads beside the RPC server that act on the chain with the
//! node's key. [`miner`] builds and mines blocks; [`provider`] registers, stakes,
//! leases jobs, executes them on its fabric and posts receipts; [`verifier`] replays a
//! share of receipts and challenges a wrong one at its first wrong op. Here: what they
//! share (how they pay fees, how they publish bytes). Blobs come from
//! [`crate::blobs`]; transactions are built with [`tb_chain::builders`].

pub mod miner;
pub mod provider;
pub mod verifier;

use crate::node::Node;
use tb_chain::builders;
use tb_chain::market::records as r;
use tb_chain::tx::FeeSelector;
use tb_chain::TxPayload;
use tb_primitives::Address;

/// Runs `job` on `fabric` with its model's constants from `models` (uploaded once per
/// model and fabric, `tb_job::ModelCache`), counting the lookup in
/// `model_cache_lookups_total` and the cache's size in `model_cache_bytes`.
pub fn execute_cached(
    node: &Node,
    models: &tb_job::ModelCache,
    job: &tb_job::Job,
    fabric: &dyn blocktorch::Fabric,
    opts: tb_job::ExecOptions,
) -> Result<tb_job::ExecResult, tb_job::JobError> {
    let (run, how) = models.execute(job, fabric, opts)?;
    node.metrics
        .inc("model_cache_lookups_total", &[how.label()]);
    node.metrics
        .set("model_cache_bytes", &[], models.usage().1 as f64);
    Ok(run)
}

/// The workers pay their fees in Consumer tokens, so a provider's Industrial balance
/// moves only with its stake, its payouts and its slashes.
pub const FEES: FeeSelector = FeeSelector::Consumer;
/// The `PublishBlob` payloads that publish `bytes` from `from` (fees in Consumer
/// tokens), unless the chain already has the object.
pub fn publish_payloads(node: &Node, from: Address, bytes: &[u8]) -> Vec<TxPayload> {
    let c = node.core();
    let id = tb_primitives::sha256_digest(bytes).0;
    if r::object(c.db.state(), &id).is_some() {
        return vec![];
    }
    let p = c.effective_params(&node.params);
    builders::publish_blob(&p.market, from, bytes, FEES)
}
