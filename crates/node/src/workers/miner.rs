//! The miner worker: while mining is on, every `block_interval_ms` it builds a block on
//! the tip from the mempool (the governed parameters' limits), searches the PoW nonce in
//! slices (so a stop, or a new tip from elsewhere, is noticed within one slice), and
//! imports it through [`Node::import`].

use crate::node::{now_ms, Core, Node};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tb_primitives::Address;

/// Nonces tried between checks for a stop or a new tip.
pub const NONCE_SLICE: u64 = 50_000;

/// Runs until the node stops.
pub fn run(node: Arc<Node>, beneficiary: Address, interval: Duration) {
    let mut last = Instant::now() - interval;
    while !node.stopping() {
        if !node.mining.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let since = last.elapsed();
        if since < interval {
            std::thread::sleep((interval - since).min(Duration::from_millis(50)));
            continue;
        }
        last = Instant::now();
        if let Err(e) = mine_one(&node, beneficiary) {
            tracing::warn!(error = %e, "mining a block failed");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Builds, seals and imports one block; `Ok(None)` when abandoned (stop or new tip).
pub fn mine_one(node: &Node, beneficiary: Address) -> Result<Option<u64>, String> {
    let mut block = {
        let mut c = node.core();
        let p = c.effective_params(&node.params);
        let picked = c.pool.select(p.block_tx_count_max, p.block_bytes_max);
        let now = now_ms();
        let block =
            c.db.build_template(picked.iter(), now, beneficiary)
                .map_err(|e| e.to_string())?;
        // A picked transaction the template skipped at its sender's next nonce does not
        // execute on the tip: dropped, or the sender is blocked until its time to live.
        let Core { db, pool, .. } = &mut *c;
        let skipped = pool.drop_skipped(&picked, &block.txs, db.state());
        node.metrics
            .inc_by("orphan_sweep_total", &[], skipped as u64);
        block
    };
    let parent = block.header.parent;
    let mut start = 0u64;
    let header = loop {
        if let Some(h) = tb_chain::mine(&block.header, start, NONCE_SLICE) {
            break h;
        }
        start = start.wrapping_add(NONCE_SLICE);
        if node.stopping() || node.core().db.tip_id() != parent {
            return Ok(None);
        }
    };
    block.header = header;
    let height = block.header.height;
    let _span = tracing::info_span!("mined", height, txs = block.txs.len()).entered();
    node.import(&block).map_err(|e| e.to_string())?;
    node.metrics.inc("blocks_mined_total", &[]);
    if let Some(n) = node.net() {
        n.publish_block(&block);
    }
    Ok(Some(height))
}
