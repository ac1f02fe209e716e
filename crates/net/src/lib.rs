//! The Block's peer-to-peer layer, on libp2p (TCP, Noise, Yamux).
//!
//! - **Gossip** (gossipsub, signed messages, validation before relay): transactions,
//!   blocks, and the verification game's transactions (receipts, seals, challenges,
//!   evidence) on three topics. A message is relayed only after the node has checked it
//!   ([`Host::admit_tx`], [`Host::import_block`]); invalid data costs its sender points.
//! - **Sync** (request-response `/tb/<chain>/sync/1`): a status handshake, then the
//!   canonical blocks after a locator, from any peer whose chain is heavier. Catch-up
//!   after downtime and reorganisation to the heaviest chain after a partition are the
//!   same path: the store's fork choice (total work) decides.
//! - **Blobs** (request-response `/tb/<chain>/blob/1`): content-addressed job blobs,
//!   traces and dispute bundles in chunks, verified against their SHA-256.
//! - **Peers**: identify, bootnodes redialled while disconnected, a persisted node key,
//!   peer scoring with bans ([`peers`]), connection limits, bounded queues.
//!
//! The node implements [`Host`]; this crate never touches the chain store directly.
//! Everything the host does that may block (imports, store reads) runs on a worker
//! thread or a blocking task, never on the swarm's task.
#![forbid(unsafe_code)]

pub mod admission;
mod cmd;
pub mod fuzzing;
pub mod peers;
mod service;
mod swarm;
pub mod wire;
mod worker;

use libp2p::identity::Keypair;
pub use libp2p::{self, Multiaddr, PeerId};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use swarm::{build_swarm, Behaviour, BehaviourEvent};
use tb_chain::{Block, SignedTx};
pub use wire::Status;

/// Named limits, checked at the boundary (docs/spec/p2p.md lists them).
pub mod limits {
    /// Ids in a sync locator.
    pub const LOCATOR_LEN_MAX: usize = 64;
    /// Blocks asked for (and served) in one sync response.
    pub const SYNC_BATCH_BLOCKS_MAX: u32 = 128;
    /// A sync response stops adding blocks past this many bytes (one block always fits).
    pub const SYNC_RESPONSE_SOFT_BYTES: usize = 8 << 20;
    /// Largest sync request frame.
    pub const SYNC_REQUEST_BYTES_MAX: usize = 16 << 10;
    /// Bytes of a blob served per request.
    pub const BLOB_CHUNK_BYTES: u32 = 1 << 20;
    /// Largest blob request frame.
    pub const BLOB_REQUEST_BYTES_MAX: usize = 128;
    /// Largest blob response frame.
    pub const BLOB_RESPONSE_BYTES_MAX: usize = BLOB_CHUNK_BYTES as usize + 64;
    /// Gossip messages waiting for validation; beyond it new ones are ignored (not
    /// relayed) until the node catches up.
    pub const VALIDATION_QUEUE_MAX: usize = 1024;
    /// Bytes of gossip waiting for validation, likewise.
    pub const VALIDATION_QUEUE_BYTES_MAX: usize = 64 << 20;
    /// Local transactions kept for a retry while no peer is subscribed to their topic
    /// (blocks are not kept: peers sync them).
    pub const UNPUBLISHED_MAX: usize = 4096;
    /// Bytes of such transactions.
    pub const UNPUBLISHED_BYTES_MAX: usize = 16 << 20;
    /// Inbound requests served at once; beyond it the answer is `Busy`.
    pub const SERVING_MAX: usize = 8;
    /// Established connections in all.
    pub const PEERS_MAX: u32 = 64;
    /// Established inbound connections (the rest is kept for dialling bootnodes).
    pub const PEERS_INCOMING_MAX: u32 = 48;
    /// Peers whose penalty points are remembered.
    pub const SCORED_PEERS_MAX: usize = 4096;
    /// How long a request may take before it fails.
    pub const REQUEST_TIMEOUT_SECS: u64 = 30;
    /// How long a connection may take from TCP to a finished Noise and Yamux handshake
    /// (inbound and outbound); past it the connection is dropped.
    pub const HANDSHAKE_TIMEOUT_SECS: u64 = 5;
    /// Inbound connections in their handshake at once ([`crate::admission`]).
    pub const PENDING_INCOMING_MAX: u32 = 64;
    /// Of those, kept for known addresses (bootnodes, peers that answered the status
    /// handshake).
    pub const PENDING_KEPT_FOR_KNOWN: u32 = 16;
    /// Inbound connections in their handshake from one address.
    pub const PENDING_PER_IP_MAX: u32 = 4;
    /// Established inbound connections from one address, unless configured
    /// (`p2p.inbound_per_ip`).
    pub const INBOUND_PER_IP_DEFAULT: u32 = 8;
    /// Addresses remembered as known.
    pub const KNOWN_ADDRESSES_MAX: usize = 1024;
}

/// What the network asks of the node.
pub trait Host: Send + Sync + 'static {
    /// The node's best chain now.
    fn status(&self) -> Status;
    /// Canonical ids at [`wire::locator_heights`] of the tip.
    fn locator(&self) -> Vec<tb_primitives::Id>;
    /// Whether the block is on the node's best chain.
    fn is_canonical(&self, id: &tb_primitives::Id) -> bool;
    /// Canonical blocks after the first id of `locator` on the best chain: at most
    /// `max_blocks`, stopping past `soft_bytes` (at least one block when there is one).
    fn blocks_after(
        &self,
        locator: &[tb_primitives::Id],
        max_blocks: usize,
        soft_bytes: usize,
    ) -> Vec<Block>;
    /// Validates and imports a block.
    fn import_block(&self, block: &Block) -> BlockVerdict;
    /// Validates and admits a transaction to the mempool.
    fn admit_tx(&self, tx: SignedTx) -> TxVerdict;
    /// `len` bytes at `offset` of the blob with this SHA-256 and its total length, if
    /// the node has it (its blob store or the chain's published objects).
    fn blob_chunk(&self, sha256: &[u8; 32], offset: u64, len: usize) -> Option<(u64, Vec<u8>)>;
    /// Counts an event in the node's metrics (`p2p_*` counters).
    fn count(&self, metric: &'static str, labels: &[&'static str], n: u64);
}

/// What importing a block came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Stored: it extended or reorganised the best chain, or is on a side chain.
    Imported,
    /// Already stored.
    Known,
    /// Its parent is unknown: the sender has blocks the node lacks.
    UnknownParent,
    /// Its header or stateless checks failed (what any relay checks first).
    Invalid(String),
    /// Its body failed execution, or an ancestor's did (a relay that stored it on a
    /// side chain without executing it cannot have known).
    InvalidExecution(String),
    /// The node could not decide (its store failed); nobody is blamed.
    Unavailable(String),
}

/// What admitting a transaction came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxVerdict {
    Admitted,
    /// Valid but not admitted here (a nonce gap, a duplicate, a full pool, a fee below
    /// the floor): not relayed, nobody blamed.
    Ignored(String),
    /// Invalid whatever the state: bad signature, selector, size or syntax.
    Invalid(String),
}

/// The network's settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub chain_id: u64,
    pub genesis: tb_primitives::Id,
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and redialled while disconnected; each
    /// `/ip4|ip6/HOST/tcp/PORT/p2p/PEER_ID` (an address without a peer id is skipped).
    pub bootnodes: Vec<Multiaddr>,
    /// Largest encoded block (the gossip message limit follows it).
    pub block_bytes_max: usize,
    /// Largest encoded transaction.
    pub tx_bytes_max: usize,
    /// Largest blob fetched.
    pub blob_bytes_max: u64,
    /// How long a banned peer stays banned.
    pub ban: Duration,
    /// Established inbound connections from one address ([`admission`]).
    pub inbound_per_ip: u32,
}

/// A connected peer, for RPC and logs.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub addr: Option<Multiaddr>,
    pub status: Option<Status>,
    pub points: u32,
    pub agent: Option<String>,
}

/// What the running network shows (refreshed every tick).
#[derive(Clone, Debug, Default)]
pub struct NetView {
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<PeerInfo>,
    pub banned: Vec<PeerId>,
    /// Whether a sync is in flight, and with whom.
    pub syncing_from: Option<PeerId>,
}

/// Why the network did not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network key {path}: {msg}")]
    Key { path: String, msg: String },
    #[error("listen on {addr}: {msg}")]
    Listen { addr: String, msg: String },
    #[error("network setup: {0}")]
    Setup(String),
}

/// Why a blob fetch failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("no connected peer has the blob")]
    NotFound,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the network has stopped")]
    Stopped,
}

/// Loads the network key (an Ed25519 secret, 64 hex characters) from `path`, creating
/// it (mode 0600) when the file does not exist. A file that exists but does not hold a
/// key is an error, never overwritten.
pub fn load_or_create_key(path: &Path) -> Result<Keypair, NetError> {
    let err = |msg: String| NetError::Key {
        path: path.display().to_string(),
        msg,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            if t.len() != 64 {
                return Err(err(format!(
                    "expected 64 hex characters, found {} characters",
                    t.len()
                )));
            }
            let mut bytes = hex::decode(t).map_err(|e| err(format!("not hex: {e}")))?;
            Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| err(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = libp2p::identity::ed25519::Keypair::generate();
            let secret = hex::encode(kp.secret().as_ref());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            write_private(path, &format!("{secret}\n")).map_err(|e| err(e.to_string()))?;
            Ok(Keypair::from(kp))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// A handle on the running network: publish, fetch blobs, look at peers, stop.
#[derive(Clone)]
pub struct NetHandle {
    pub peer_id: PeerId,
    cmd: tokio::sync::mpsc::UnboundedSender<cmd::Cmd>,
    view: Arc<Mutex<NetView>>,
    local: Arc<Mutex<Status>>,
}

impl NetHandle {
    /// Gossips a transaction the node admitted (its topic by payload kind).
    pub fn publish_tx(&self, tx: &SignedTx) {
        let topic = wire::Topic::of_tx(tx);
        let _ = self
            .cmd
            .send(cmd::Cmd::Publish(topic, tb_primitives::encode(tx)));
    }

    /// Gossips a block the node mined.
    pub fn publish_block(&self, block: &Block) {
        let _ = self.cmd.send(cmd::Cmd::Publish(
            wire::Topic::Block,
            tb_primitives::encode(block),
        ));
    }

    /// Tells the network the node's new best chain (after every import).
    pub fn set_status(&self, s: Status) {
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = s;
        let _ = self.cmd.send(cmd::Cmd::TipChanged);
    }

    /// Fetches a blob by SHA-256 from the connected peers, one after another, checking
    /// its digest; blocks the calling thread up to `timeout`. Not for async contexts.
    pub fn fetch_blob(&self, sha256: [u8; 32], timeout: Duration) -> Result<Vec<u8>, FetchError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        self.cmd
            .send(cmd::Cmd::FetchBlob(sha256, deadline, tx))
            .map_err(|_| FetchError::Stopped)?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(FetchError::Timeout(timeout)),
            Err(_) => Err(FetchError::Stopped),
        }
    }

    /// Dials an address (a peer added at run time).
    pub fn dial(&self, addr: Multiaddr) {
        let _ = self.cmd.send(cmd::Cmd::Dial(addr));
    }

    /// What the network shows now.
    pub fn view(&self) -> NetView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the swarm (connections close).
    pub fn shutdown(&self) {
        let _ = self.cmd.send(cmd::Cmd::Stop);
    }
}

/// Starts the network on the current tokio runtime: binds the listen addresses, dials
/// the bootnodes and spawns the swarm task and the validation worker thread.
pub async fn start(
    cfg: NetConfig,
    key: Keypair,
    host: Arc<dyn Host>,
) -> Result<(NetHandle, tokio::task::JoinHandle<()>), NetError> {
    service::start(cfg, key, host).await
}

/// Logs when the network task ends by a panic (spawn it beside [`start`]'s task).
pub async fn watch(task: tokio::task::JoinHandle<()>) {
    service::watch(task).await
}
