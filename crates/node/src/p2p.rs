//! The node's side of the peer-to-peer layer: [`tb_net::Host`] for [`Node`] (imports,
//! admissions, sync reads and blob reads, all through the same paths as local work),
//! and starting the network from the configuration.

use crate::config::NodeConfig;
use crate::node::Node;
use std::sync::Arc;
use std::time::Duration;
use tb_chain::market::records as r;
use tb_chain::mempool::AdmissionError;
use tb_chain::{Block, BlockError, SignedTx};
use tb_net::{BlockVerdict, Host, Status, TxVerdict};
use tb_primitives::Id;
use tb_store::{ImportError, ImportOutcome};

/// The node as the network sees it.
pub struct NodeHost(pub Arc<Node>);

impl Host for NodeHost {
    fn status(&self) -> Status {
        self.0.net_status()
    }

    fn locator(&self) -> Vec<Id> {
        let c = self.0.core();
        tb_net::wire::locator_heights(c.db.tip().height)
            .into_iter()
            .filter_map(|h| c.db.canonical_id(h).ok().flatten())
            .collect()
    }

    fn is_canonical(&self, id: &Id) -> bool {
        let c = self.0.core();
        let Ok(Some(e)) = c.db.header_entry(id) else {
            return false;
        };
        c.db.canonical_id(e.header.height).ok().flatten() == Some(*id)
    }

    fn blocks_after(&self, locator: &[Id], max_blocks: usize, soft_bytes: usize) -> Vec<Block> {
        let c = self.0.core();
        let start = locator.iter().find_map(|id| {
            let e = c.db.header_entry(id).ok()??;
            (c.db.canonical_id(e.header.height).ok()? == Some(*id)).then_some(e.header.height)
        });
        let Some(h0) = start else {
            return Vec::new();
        };
        let tip = c.db.tip().height;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for h in h0.saturating_add(1)..=tip {
            if out.len() >= max_blocks {
                break;
            }
            let Ok(Some(b)) = c.db.block_at(h) else {
                break;
            };
            let n = tb_primitives::encode(&b).len();
            if !out.is_empty() && bytes + n > soft_bytes {
                break;
            }
            bytes += n;
            out.push(b);
        }
        out
    }

    fn import_block(&self, block: &Block) -> BlockVerdict {
        match self.0.import(block) {
            Ok(ImportOutcome::AlreadyKnown) => BlockVerdict::Known,
            Ok(_) => BlockVerdict::Imported,
            Err(ImportError::UnknownParent(_)) => BlockVerdict::UnknownParent,
            // Depends on the local clock: the sender's may differ; nobody is blamed.
            Err(e @ ImportError::Block(BlockError::TimestampInFuture { .. })) => {
                BlockVerdict::Unavailable(e.to_string())
            }
            // Found by executing the body (this block's or an ancestor's).
            Err(
                e @ (ImportError::KnownInvalid(_)
                | ImportError::Block(
                    BlockError::BadStateRoot { .. }
                    | BlockError::BadReceiptsRoot
                    | BlockError::Tx { .. }
                    | BlockError::CoinbaseOverflow,
                )),
            ) => BlockVerdict::InvalidExecution(e.to_string()),
            Err(e @ ImportError::Block(_)) => BlockVerdict::Invalid(e.to_string()),
            Err(e @ (ImportError::Store(_) | ImportError::Poisoned)) => {
                BlockVerdict::Unavailable(e.to_string())
            }
        }
    }

    fn admit_tx(&self, tx: SignedTx) -> TxVerdict {
        match self.0.admit_from_peer(tx) {
            Ok(_) => TxVerdict::Admitted,
            Err(
                e @ (AdmissionError::BadSignature
                | AdmissionError::InvalidSelector(_)
                | AdmissionError::MemoTooLarge { .. }
                | AdmissionError::TxTooLarge { .. }
                | AdmissionError::InvalidHandle(_)),
            ) => TxVerdict::Invalid(e.to_string()),
            Err(e) => TxVerdict::Ignored(e.to_string()),
        }
    }

    fn blob_chunk(&self, sha256: &[u8; 32], offset: u64, len: usize) -> Option<(u64, Vec<u8>)> {
        if let Ok(Some(x)) = self.0.blobs.read_range(sha256, offset, len) {
            return Some(x);
        }
        let c = self.0.core();
        let s = c.db.state();
        let o = r::object(s, sha256)?;
        if offset > o.total_bytes {
            return None;
        }
        let n = (o.total_bytes - offset).min(len as u64);
        let bytes = r::object_range(s, sha256, offset, n)?;
        Some((o.total_bytes, bytes))
    }

    fn count(&self, metric: &'static str, labels: &[&'static str], n: u64) {
        self.0.metrics.inc_by(metric, labels, n);
    }
}

/// Starts the network when the configuration enables it; the handle is also set on
/// the node (so local transactions and mined blocks are gossiped).
pub async fn start(
    node: &Arc<Node>,
    cfg: &NodeConfig,
) -> Result<Option<tb_net::NetHandle>, String> {
    if !cfg.p2p.enabled {
        return Ok(None);
    }
    let (listen, bootnodes) = cfg.p2p.addrs().map_err(|e| e.to_string())?;
    let key =
        tb_net::load_or_create_key(&cfg.p2p.key_path(&cfg.data_dir)).map_err(|e| e.to_string())?;
    let p = &node.params;
    let net_cfg = tb_net::NetConfig {
        chain_id: p.chain_id,
        genesis: node.net_status().genesis,
        listen,
        bootnodes,
        block_bytes_max: tb_chain::block::block_encoded_bytes_max(p),
        tx_bytes_max: p.tx_decode_bytes_max(),
        blob_bytes_max: crate::blobs::BLOB_BYTES_MAX,
        ban: Duration::from_secs(cfg.p2p.ban_secs),
        inbound_per_ip: cfg.p2p.inbound_per_ip,
    };
    let (handle, task) = tb_net::start(net_cfg, key, Arc::new(NodeHost(node.clone())))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(tb_net::watch(task));
    node.set_net(handle.clone());
    // Blocks the network imported before the handle was set did not announce.
    handle.set_status(node.net_status());
    Ok(Some(handle))
}
