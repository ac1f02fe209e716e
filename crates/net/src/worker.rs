//! The validation worker: gossip and synced blocks checked and imported through the
//! [`Host`], off the swarm task.

use crate::cmd::{Cmd, Verdict};
use crate::limits::*;
use crate::peers::Offence;
use crate::wire::*;
use crate::TxVerdict;
use crate::{BlockVerdict, Host};
use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tb_chain::{Block, SignedTx};
use tb_primitives::Id;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) enum Work {
    Tx {
        id: MessageId,
        source: PeerId,
        topic: Topic,
        tx: SignedTx,
    },
    Block {
        id: MessageId,
        source: PeerId,
        block: Block,
    },
    SyncBlocks {
        peer: PeerId,
        gen: u64,
        blocks: Vec<Block>,
    },
    Locator {
        peer: PeerId,
        gen: u64,
        /// The last block the peer sent in this sync, put first in the locator so a
        /// long side chain is followed to its end.
        hint: Option<Id>,
    },
    /// Nothing: wakes the worker for sync work queued while it waited on gossip.
    Wake,
}

/// The validation worker: sync work first (it is what brings the node to the best
/// chain), then gossip.
pub(crate) fn worker(
    host: Arc<dyn Host>,
    sync_rx: std::sync::mpsc::Receiver<(Work, usize)>,
    gossip_rx: std::sync::mpsc::Receiver<(Work, usize)>,
    out: UnboundedSender<Cmd>,
) {
    loop {
        let next = match sync_rx.try_recv() {
            Ok(w) => w,
            Err(_) => match gossip_rx.recv_timeout(Duration::from_millis(20)) {
                Ok(w) => w,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        let (w, bytes) = next;
        if matches!(w, Work::Wake) {
            continue;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&*host, w)));
        let _ = out.send(Cmd::Dequeued(bytes));
        match r {
            Ok(cmd) => {
                if out.send(cmd).is_err() {
                    return;
                }
            }
            Err(_) => tracing::error!("validating a network item panicked; it was dropped"),
        }
    }
}

fn handle(host: &dyn Host, w: Work) -> Cmd {
    match w {
        // The worker skips it before calling here; nothing to do either way.
        Work::Wake => Cmd::Dequeued(0),
        Work::Tx {
            id,
            source,
            topic,
            tx,
        } => {
            let verdict = match host.admit_tx(tx) {
                TxVerdict::Admitted => Verdict::Accept,
                TxVerdict::Ignored(_) => Verdict::Ignore,
                TxVerdict::Invalid(_) => Verdict::Reject(Offence::InvalidTx),
            };
            Cmd::Validated {
                id,
                source,
                topic,
                verdict,
            }
        }
        Work::Block { id, source, block } => {
            let verdict = match host.import_block(&block) {
                BlockVerdict::Imported => Verdict::Accept,
                BlockVerdict::Known | BlockVerdict::Unavailable(_) => Verdict::Ignore,
                BlockVerdict::UnknownParent => Verdict::Orphan,
                BlockVerdict::Invalid(_) => Verdict::Reject(Offence::InvalidBlock),
                BlockVerdict::InvalidExecution(_) => Verdict::Reject(Offence::InvalidExecution),
            };
            Cmd::Validated {
                id,
                source,
                topic: Topic::Block,
                verdict,
            }
        }
        Work::SyncBlocks { peer, gen, blocks } => {
            let mut imported = 0;
            let mut fault = None;
            let mut stopped = false;
            for b in &blocks {
                match host.import_block(b) {
                    BlockVerdict::Imported => imported += 1,
                    BlockVerdict::Known => {}
                    BlockVerdict::UnknownParent => {
                        fault = Some(Offence::BadResponse);
                        break;
                    }
                    BlockVerdict::Invalid(_) => {
                        fault = Some(Offence::InvalidBlock);
                        break;
                    }
                    BlockVerdict::InvalidExecution(_) => {
                        fault = Some(Offence::InvalidExecution);
                        break;
                    }
                    BlockVerdict::Unavailable(_) => {
                        stopped = true;
                        break;
                    }
                }
            }
            host.count("p2p_sync_blocks_total", &[], imported as u64);
            Cmd::SyncImported {
                peer,
                gen,
                fault,
                stopped,
            }
        }
        Work::Locator { peer, gen, hint } => {
            // A hint on the best chain is no better than the node's own tip.
            let hint = hint.filter(|h| !host.is_canonical(h));
            let mut locator: Vec<Id> = hint.into_iter().collect();
            locator.extend(host.locator());
            // Over the limit only with a hint: drop from the sparse end, keeping
            // genesis last.
            while locator.len() > LOCATOR_LEN_MAX {
                locator.remove(locator.len() - 2);
            }
            Cmd::Locator { peer, gen, locator }
        }
    }
}
