//! What reaches the swarm task: commands from the handle, the worker and the
//! serving tasks, and the blob fetches in flight.

use crate::peers::Offence;
use crate::wire::*;
use crate::FetchError;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::{self as rr};
use libp2p::{Multiaddr, PeerId};
use std::sync::mpsc::SyncSender;
use std::time::Instant;
use tb_primitives::Id;

/// Messages to the swarm task.
pub(crate) enum Cmd {
    Publish(Topic, Vec<u8>),
    TipChanged,
    FetchBlob([u8; 32], Instant, SyncSender<Result<Vec<u8>, FetchError>>),
    /// A completed fetch's digest was checked (on a blocking task).
    FetchChecked(Box<Fetch>, bool),
    Dial(Multiaddr),
    Stop,
    Validated {
        id: MessageId,
        source: PeerId,
        topic: Topic,
        verdict: Verdict,
    },
    SyncImported {
        peer: PeerId,
        /// The sync job this batch belonged to.
        gen: u64,
        fault: Option<Offence>,
        /// The node could not decide on a block (its store, or a timestamp ahead of
        /// its clock): the rest of the batch was not tried.
        stopped: bool,
    },
    /// A gossip or sync item left the validation queue (its bytes are free again).
    Dequeued(usize),
    Locator {
        peer: PeerId,
        gen: u64,
        locator: Vec<Id>,
    },
    RespondSync(rr::ResponseChannel<SyncResponse>, SyncResponse),
    RespondBlob(rr::ResponseChannel<BlobResponse>, BlobResponse),
}

/// The worker's verdict on a gossip message.
pub(crate) enum Verdict {
    Accept,
    Ignore,
    Reject(Offence),
    /// A block whose parent is unknown: ignored, and the sender's chain is synced.
    Orphan,
}

pub(crate) struct Fetch {
    pub(crate) sha: [u8; 32],
    pub(crate) deadline: Instant,
    pub(crate) reply: SyncSender<Result<Vec<u8>, FetchError>>,
    pub(crate) candidates: Vec<PeerId>,
    pub(crate) peer: PeerId,
    pub(crate) buf: Vec<u8>,
    pub(crate) total: Option<u64>,
}
