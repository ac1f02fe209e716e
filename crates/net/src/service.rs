//! The swarm task: one tokio task owns the libp2p swarm and all peer state; a worker
//! thread validates gossip and imports synced blocks through the [`Host`]; inbound
//! requests are served on blocking tasks (at most [`SERVING_MAX`] at once). Results
//! come back to the swarm task as [`Cmd`]s, so the swarm is never blocked on the chain.

use crate::limits::*;
use crate::peers::{Offence, Scores};
use crate::wire::*;
use crate::{BlockVerdict, FetchError, Host, NetConfig, NetError, NetHandle, NetView, PeerInfo};
use crate::{Status, TxVerdict};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self as rr, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, noise, tcp, yamux, Multiaddr, PeerId, Swarm,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tb_chain::{Block, SignedTx};
use tb_primitives::Id;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// How often peers' statuses are refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// How often disconnected bootnodes are redialled.
const REDIAL_INTERVAL: Duration = Duration::from_secs(3);
/// A sync step that has not finished in this long is abandoned.
const SYNC_STALL: Duration = Duration::from_secs(REQUEST_TIMEOUT_SECS + 10);

/// The protocols a node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub gossip: gossipsub::Behaviour,
    pub sync: rr::Behaviour<FrameCodec<SyncRequest, SyncResponse>>,
    pub blob: rr::Behaviour<FrameCodec<BlobRequest, BlobResponse>>,
}

/// Builds the swarm: TCP + Noise + Yamux, and the protocols with their limits.
pub fn build_swarm(
    key: Keypair,
    chain_id: u64,
    block_bytes_max: usize,
) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: String| NetError::Setup(e);
    let gcfg = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(700))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(block_bytes_max + (64 << 10))
        .duplicate_cache_time(Duration::from_secs(120))
        .message_id_fn(|m: &gossipsub::Message| {
            let mut d = m.topic.as_str().as_bytes().to_vec();
            d.extend_from_slice(&m.data);
            MessageId::from(tb_primitives::blake3_id(b"tb-gossip-id", &d).0.to_vec())
        })
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let mut gossip =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gcfg)
            .map_err(|e| setup(e.to_string()))?;
    for t in Topic::ALL {
        gossip
            .subscribe(&IdentTopic::new(t.name(chain_id)))
            .map_err(|e| setup(e.to_string()))?;
    }
    let rr_cfg = rr::Config::default()
        .with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
        .with_max_concurrent_streams(64);
    let sync_max = SYNC_RESPONSE_SOFT_BYTES + block_bytes_max + 1024;
    let behaviour = Behaviour {
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(PEERS_MAX))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(32)),
        ),
        identify: identify::Behaviour::new(
            identify::Config::new(identify_version(chain_id), key.public())
                .with_agent_version(format!("the-block/{}", env!("CARGO_PKG_VERSION"))),
        ),
        gossip,
        sync: rr::Behaviour::with_codec(
            FrameCodec::new(SYNC_REQUEST_BYTES_MAX, sync_max),
            [(sync_protocol(chain_id), ProtocolSupport::Full)],
            rr_cfg.clone(),
        ),
        blob: rr::Behaviour::with_codec(
            FrameCodec::new(BLOB_REQUEST_BYTES_MAX, BLOB_RESPONSE_BYTES_MAX),
            [(blob_protocol(chain_id), ProtocolSupport::Full)],
            rr_cfg,
        ),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(e.to_string()))?
        .with_behaviour(move |_| behaviour)
        .map_err(|e| setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Messages to the swarm task.
pub(crate) enum Cmd {
    Publish(Topic, Vec<u8>),
    TipChanged,
    FetchBlob([u8; 32], SyncSender<Result<Vec<u8>, FetchError>>),
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
        imported: usize,
        fault: Option<Offence>,
    },
    Locator {
        peer: PeerId,
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

enum Work {
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
        blocks: Vec<Block>,
    },
    Locator {
        peer: PeerId,
    },
}

fn worker(host: Arc<dyn Host>, rx: std::sync::mpsc::Receiver<Work>, out: UnboundedSender<Cmd>) {
    while let Ok(w) = rx.recv() {
        let cmd = match w {
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
                };
                Cmd::Validated {
                    id,
                    source,
                    topic: Topic::Block,
                    verdict,
                }
            }
            Work::SyncBlocks { peer, blocks } => {
                let mut imported = 0;
                let mut fault = None;
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
                        BlockVerdict::Unavailable(_) => break,
                    }
                }
                host.count("p2p_sync_blocks_total", &[], imported as u64);
                Cmd::SyncImported {
                    peer,
                    imported,
                    fault,
                }
            }
            Work::Locator { peer } => Cmd::Locator {
                peer,
                locator: host.locator(),
            },
        };
        if out.send(cmd).is_err() {
            return;
        }
    }
}

struct Peer {
    addr: Option<Multiaddr>,
    status: Option<Status>,
    status_at: Option<Instant>,
    status_pending: bool,
    agent: Option<String>,
}

struct SyncJob {
    peer: PeerId,
    since: Instant,
    req: Option<rr::OutboundRequestId>,
}

struct Fetch {
    sha: [u8; 32],
    reply: SyncSender<Result<Vec<u8>, FetchError>>,
    candidates: Vec<PeerId>,
    peer: PeerId,
    buf: Vec<u8>,
    total: Option<u64>,
}

struct Svc {
    swarm: Swarm<Behaviour>,
    cfg: NetConfig,
    host: Arc<dyn Host>,
    work: SyncSender<Work>,
    cmd_tx: UnboundedSender<Cmd>,
    view: Arc<Mutex<NetView>>,
    local: Arc<Mutex<Status>>,
    scores: Scores,
    peers: HashMap<PeerId, Peer>,
    topics: HashMap<TopicHash, Topic>,
    sync: Option<SyncJob>,
    status_reqs: HashMap<rr::OutboundRequestId, PeerId>,
    fetches: HashMap<rr::OutboundRequestId, Fetch>,
    serving: Arc<AtomicUsize>,
    last_redial: Instant,
}

pub(crate) async fn start(
    cfg: NetConfig,
    key: Keypair,
    host: Arc<dyn Host>,
) -> Result<(NetHandle, tokio::task::JoinHandle<()>), NetError> {
    let peer_id = key.public().to_peer_id();
    let mut swarm = build_swarm(key, cfg.chain_id, cfg.block_bytes_max)?;
    for a in &cfg.listen {
        swarm.listen_on(a.clone()).map_err(|e| NetError::Listen {
            addr: a.to_string(),
            msg: e.to_string(),
        })?;
    }
    // Wait for the listeners to report their addresses (port 0 resolves here).
    let mut listen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listen.len() < cfg.listen.len() {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetError::Setup(error.to_string()))
            }
            Ok(_) => {}
            Err(_) => return Err(NetError::Setup("listeners did not start in 5 s".into())),
        }
    }
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel(VALIDATION_QUEUE_MAX);
    let local = Arc::new(Mutex::new(host.status()));
    let view = Arc::new(Mutex::new(NetView {
        listen: listen.clone(),
        ..NetView::default()
    }));
    {
        let host = host.clone();
        let out = cmd_tx.clone();
        std::thread::Builder::new()
            .name("tb-net-validate".into())
            .spawn(move || worker(host, work_rx, out))
            .map_err(|e| NetError::Setup(e.to_string()))?;
    }
    let topics = Topic::ALL
        .iter()
        .map(|t| (IdentTopic::new(t.name(cfg.chain_id)).hash(), *t))
        .collect();
    let handle = NetHandle {
        peer_id,
        cmd: cmd_tx.clone(),
        view: view.clone(),
        local: local.clone(),
    };
    let mut svc = Svc {
        swarm,
        scores: Scores::new(cfg.ban),
        cfg,
        host,
        work: work_tx,
        cmd_tx,
        view,
        local,
        peers: HashMap::new(),
        topics,
        sync: None,
        status_reqs: HashMap::new(),
        fetches: HashMap::new(),
        serving: Arc::new(AtomicUsize::new(0)),
        last_redial: Instant::now() - REDIAL_INTERVAL,
    };
    svc.redial();
    let task = tokio::spawn(async move { svc.run(cmd_rx).await });
    Ok((handle, task))
}

impl Svc {
    async fn run(mut self, mut cmd_rx: UnboundedReceiver<Cmd>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                c = cmd_rx.recv() => match c {
                    Some(Cmd::Stop) | None => break,
                    Some(c) => self.on_cmd(c),
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        for (_, f) in self.fetches.drain() {
            let _ = f.reply.send(Err(FetchError::Stopped));
        }
    }

    fn local(&self) -> Status {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn penalise(&mut self, peer: PeerId, o: Offence, why: &str) {
        self.host.count("p2p_penalties_total", &[o.label()], 1);
        if self.scores.penalise(peer, o, Instant::now()) {
            eprintln!("the-block: p2p: banning {peer} ({}: {why})", o.label());
            self.host.count("p2p_peers_banned_total", &[], 1);
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(peer);
            b.gossip.blacklist_peer(&peer);
            if self.sync.as_ref().is_some_and(|s| s.peer == peer) {
                self.sync = None;
            }
        }
    }

    fn send_status(&mut self, peer: PeerId) {
        let st = self.local();
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Status(st));
        self.status_reqs.insert(id, peer);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status_pending = true;
        }
    }

    fn note_status(&mut self, peer: PeerId, s: Status) {
        if s.genesis != self.cfg.genesis {
            self.penalise(peer, Offence::WrongNetwork, "another genesis");
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.status = Some(s);
            p.status_at = Some(Instant::now());
        }
        self.maybe_sync();
    }

    /// Starts syncing from the heaviest peer when it is heavier than the node.
    fn maybe_sync(&mut self) {
        if self.sync.is_some() {
            return;
        }
        let ours = self.local().total_work;
        let now = Instant::now();
        let best = self
            .peers
            .iter()
            .filter(|(p, _)| !self.scores.is_banned(p, now))
            .filter_map(|(p, x)| x.status.as_ref().map(|s| (s.total_work, *p)))
            .filter(|(w, _)| *w > ours)
            .max();
        if let Some((_, peer)) = best {
            match self.work.try_send(Work::Locator { peer }) {
                Ok(()) => {
                    self.sync = Some(SyncJob {
                        peer,
                        since: now,
                        req: None,
                    })
                }
                Err(_) => self.host.count("p2p_queue_full_total", &["sync"], 1),
            }
        }
    }

    fn redial(&mut self) {
        self.last_redial = Instant::now();
        let now = Instant::now();
        for a in self.cfg.bootnodes.clone() {
            let id = a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            });
            if let Some(id) = id {
                if id == *self.swarm.local_peer_id()
                    || self.swarm.is_connected(&id)
                    || self.scores.is_banned(&id, now)
                {
                    continue;
                }
            } else if !self.peers.is_empty() {
                // Without a peer id a bootnode cannot be told apart; dial it only while
                // the node has no peers.
                continue;
            }
            if let Err(e) = self.swarm.dial(a.clone()) {
                eprintln!("the-block: p2p: dial {a}: {e}");
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for p in self.scores.expire(now) {
            let b = self.swarm.behaviour_mut();
            b.blocked.unblock_peer(p);
            b.gossip.remove_blacklisted_peer(&p);
        }
        if now.duration_since(self.last_redial) >= REDIAL_INTERVAL {
            self.redial();
        }
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.status_pending
                    && p.status_at
                        .is_none_or(|t| now.duration_since(t) >= STATUS_INTERVAL)
            })
            .map(|(id, _)| *id)
            .collect();
        for p in due {
            self.send_status(p);
        }
        if self
            .sync
            .as_ref()
            .is_some_and(|s| now.duration_since(s.since) > SYNC_STALL)
        {
            self.sync = None;
        }
        self.maybe_sync();
        self.refresh_view();
    }

    fn refresh_view(&mut self) {
        let now = Instant::now();
        let mut peers: Vec<PeerInfo> = Vec::new();
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let points = self.scores.points(&id, now);
            let p = &self.peers[&id];
            peers.push(PeerInfo {
                peer_id: id,
                addr: p.addr.clone(),
                status: p.status.clone(),
                points,
                agent: p.agent.clone(),
            });
        }
        peers.sort_by_key(|p| p.peer_id);
        let listen: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        v.peers = peers;
        v.banned = self.scores.banned(now);
        v.syncing_from = self.sync.as_ref().map(|s| s.peer);
        if !listen.is_empty() {
            v.listen = listen;
        }
    }

    fn on_cmd(&mut self, c: Cmd) {
        match c {
            Cmd::Stop => {}
            Cmd::Publish(topic, data) => {
                let t = IdentTopic::new(topic.name(self.cfg.chain_id));
                // An error is no peers yet, or the same message again: nothing to do.
                if self.swarm.behaviour_mut().gossip.publish(t, data).is_ok() {
                    self.host.count("p2p_published_total", &[topic.label()], 1);
                }
            }
            Cmd::TipChanged => {
                // A heavier peer may still be ahead after a local import.
                self.maybe_sync();
            }
            Cmd::Dial(a) => {
                if let Err(e) = self.swarm.dial(a.clone()) {
                    eprintln!("the-block: p2p: dial {a}: {e}");
                }
            }
            Cmd::FetchBlob(sha, reply) => {
                let mut candidates: Vec<PeerId> = self.peers.keys().copied().collect();
                candidates.sort();
                candidates.reverse();
                let f = Fetch {
                    sha,
                    reply,
                    candidates,
                    peer: PeerId::random(),
                    buf: Vec::new(),
                    total: None,
                };
                self.fetch_next(f);
            }
            Cmd::Validated {
                id,
                source,
                topic,
                verdict,
            } => {
                let (acceptance, result) = match verdict {
                    Verdict::Accept => (MessageAcceptance::Accept, "accept"),
                    Verdict::Ignore => (MessageAcceptance::Ignore, "ignore"),
                    Verdict::Orphan => {
                        if self.peers.contains_key(&source) {
                            self.send_status(source);
                        }
                        (MessageAcceptance::Ignore, "orphan")
                    }
                    Verdict::Reject(o) => {
                        self.penalise(source, o, "gossip failed validation");
                        (MessageAcceptance::Reject, "reject")
                    }
                };
                self.host
                    .count("p2p_gossip_messages_total", &[topic.label(), result], 1);
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Cmd::Locator { peer, locator } => {
                if self.sync.as_ref().is_some_and(|s| s.peer == peer)
                    && self.swarm.is_connected(&peer)
                {
                    let id = self.swarm.behaviour_mut().sync.send_request(
                        &peer,
                        SyncRequest::Blocks {
                            locator,
                            max_blocks: SYNC_BATCH_BLOCKS_MAX,
                        },
                    );
                    if let Some(s) = self.sync.as_mut() {
                        s.req = Some(id);
                        s.since = Instant::now();
                    }
                } else {
                    self.sync = None;
                }
            }
            Cmd::SyncImported {
                peer,
                imported,
                fault,
            } => {
                self.sync = None;
                if let Some(o) = fault {
                    self.penalise(peer, o, "sync response");
                } else if imported > 0 {
                    // More may follow: ask again from the new tip.
                    self.maybe_sync();
                } else if self.peers.contains_key(&peer) {
                    // Nothing new: learn the peer's current tip before trying again.
                    self.send_status(peer);
                }
            }
            Cmd::RespondSync(ch, r) => {
                let _ = self.swarm.behaviour_mut().sync.send_response(ch, r);
            }
            Cmd::RespondBlob(ch, r) => {
                let _ = self.swarm.behaviour_mut().blob.send_response(ch, r);
            }
        }
    }

    fn fetch_next(&mut self, mut f: Fetch) {
        let now = Instant::now();
        while let Some(p) = f.candidates.pop() {
            if !self.swarm.is_connected(&p) || self.scores.is_banned(&p, now) {
                continue;
            }
            f.peer = p;
            f.buf.clear();
            f.total = None;
            let id = self.swarm.behaviour_mut().blob.send_request(
                &p,
                BlobRequest {
                    sha256: f.sha,
                    offset: 0,
                    len: BLOB_CHUNK_BYTES,
                },
            );
            self.fetches.insert(id, f);
            return;
        }
        self.host.count("p2p_blob_fetches_total", &["not_found"], 1);
        let _ = f.reply.send(Err(FetchError::NotFound));
    }

    fn on_blob_response(&mut self, id: rr::OutboundRequestId, r: BlobResponse) {
        let Some(mut f) = self.fetches.remove(&id) else {
            return;
        };
        match r {
            BlobResponse::NotFound | BlobResponse::Busy => self.fetch_next(f),
            BlobResponse::Chunk { total, bytes } => {
                if total > self.cfg.blob_bytes_max {
                    self.host.count("p2p_blob_fetches_total", &["too_large"], 1);
                    let _ = f.reply.send(Err(FetchError::TooLarge(total)));
                    return;
                }
                let consistent = f.total.is_none_or(|t| t == total)
                    && (f.buf.len() + bytes.len()) as u64 <= total
                    && (!bytes.is_empty() || total == 0)
                    && bytes.len() <= BLOB_CHUNK_BYTES as usize;
                if !consistent {
                    self.penalise(f.peer, Offence::BadResponse, "inconsistent blob chunk");
                    self.fetch_next(f);
                    return;
                }
                f.total = Some(total);
                f.buf.extend_from_slice(&bytes);
                if f.buf.len() as u64 == total {
                    if tb_primitives::sha256_digest(&f.buf).0 == f.sha {
                        self.host.count("p2p_blob_fetches_total", &["ok"], 1);
                        let buf = std::mem::take(&mut f.buf);
                        let _ = f.reply.send(Ok(buf));
                    } else {
                        self.penalise(f.peer, Offence::BadResponse, "blob digest mismatch");
                        self.fetch_next(f);
                    }
                    return;
                }
                let left = total - f.buf.len() as u64;
                let req = BlobRequest {
                    sha256: f.sha,
                    offset: f.buf.len() as u64,
                    len: left.min(BLOB_CHUNK_BYTES as u64) as u32,
                };
                let peer = f.peer;
                let id = self.swarm.behaviour_mut().blob.send_request(&peer, req);
                self.fetches.insert(id, f);
            }
        }
    }

    /// Whether inbound requests are at their limit (the answer is then `Busy`).
    fn busy(&self) -> bool {
        let b = self.serving.load(Ordering::Relaxed) >= SERVING_MAX;
        if b {
            self.host.count("p2p_requests_busy_total", &[], 1);
        }
        b
    }

    /// Runs `f` on a blocking task and sends its answer back to the swarm task.
    fn serve<F>(&mut self, f: F)
    where
        F: FnOnce(&dyn Host) -> Cmd + Send + 'static,
    {
        self.serving.fetch_add(1, Ordering::Relaxed);
        let host = self.host.clone();
        let serving = self.serving.clone();
        let out = self.cmd_tx.clone();
        tokio::task::spawn_blocking(move || {
            let c = f(&*host);
            serving.fetch_sub(1, Ordering::Relaxed);
            let _ = out.send(c);
        });
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let addr = endpoint.get_remote_address().clone();
                let new = !self.peers.contains_key(&peer_id);
                self.peers.entry(peer_id).or_insert(Peer {
                    addr: Some(addr),
                    status: None,
                    status_at: None,
                    status_pending: false,
                    agent: None,
                });
                if new {
                    self.send_status(peer_id);
                    self.refresh_view();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peers.remove(&peer_id);
                if self.sync.as_ref().is_some_and(|s| s.peer == peer_id) {
                    self.sync = None;
                }
                self.refresh_view();
            }
            SwarmEvent::Behaviour(b) => self.on_behaviour(b),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocol_version != identify_version(self.cfg.chain_id) {
                    self.penalise(peer_id, Offence::WrongNetwork, "identify protocol version");
                } else if let Some(p) = self.peers.get_mut(&peer_id) {
                    p.agent = Some(info.agent_version);
                }
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Sync(e) => self.on_sync(e),
            BehaviourEvent::Blob(e) => self.on_blob(e),
            _ => {}
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: MessageId, m: gossipsub::Message) {
        let Some(topic) = self.topics.get(&m.topic).copied() else {
            return;
        };
        let work = match topic {
            Topic::Tx | Topic::Market => {
                decode_tx(&m.data, self.cfg.tx_bytes_max).map(|tx| Work::Tx {
                    id: id.clone(),
                    source,
                    topic,
                    tx,
                })
            }
            Topic::Block => {
                decode_block(&m.data, self.cfg.block_bytes_max).map(|block| Work::Block {
                    id: id.clone(),
                    source,
                    block,
                })
            }
        };
        let acceptance = match work {
            Err(e) => {
                self.host.count(
                    "p2p_gossip_messages_total",
                    &[topic.label(), "malformed"],
                    1,
                );
                self.penalise(source, Offence::Malformed, &e);
                MessageAcceptance::Reject
            }
            Ok(w) => match self.work.try_send(w) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.host
                        .count("p2p_gossip_messages_total", &[topic.label(), "dropped"], 1);
                    MessageAcceptance::Ignore
                }
            },
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&id, &source, acceptance);
    }

    fn on_sync(&mut self, ev: rr::Event<SyncRequest, SyncResponse>) {
        match ev {
            rr::Event::Message { peer, message, .. } => match message {
                rr::Message::Request {
                    request, channel, ..
                } => match request {
                    SyncRequest::Status(s) => {
                        let ours = self.local();
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, SyncResponse::Status(ours));
                        self.note_status(peer, s);
                    }
                    SyncRequest::Blocks {
                        locator,
                        max_blocks,
                    } => {
                        if locator.is_empty() || locator.len() > LOCATOR_LEN_MAX {
                            self.penalise(peer, Offence::BadRequest, "locator length");
                            return;
                        }
                        let max = max_blocks.min(SYNC_BATCH_BLOCKS_MAX) as usize;
                        if self.busy() {
                            let _ = self
                                .swarm
                                .behaviour_mut()
                                .sync
                                .send_response(channel, SyncResponse::Busy);
                            return;
                        }
                        self.host.count("p2p_requests_served_total", &["sync"], 1);
                        self.serve(move |h| {
                            let blocks = h.blocks_after(&locator, max, SYNC_RESPONSE_SOFT_BYTES);
                            Cmd::RespondSync(channel, SyncResponse::Blocks(blocks))
                        });
                    }
                },
                rr::Message::Response {
                    request_id,
                    response,
                } => self.on_sync_response(peer, request_id, response),
            },
            rr::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.status_reqs.remove(&request_id).is_some() {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.status_pending = false;
                        p.status_at = Some(Instant::now());
                    }
                }
                if self
                    .sync
                    .as_ref()
                    .is_some_and(|s| s.req == Some(request_id))
                {
                    self.sync = None;
                }
                if is_malformed(&error) {
                    self.penalise(peer, Offence::BadResponse, &error.to_string());
                }
            }
            rr::Event::InboundFailure { peer, error, .. } => {
                if let rr::InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.penalise(peer, Offence::BadRequest, &e.to_string());
                    }
                }
            }
            rr::Event::ResponseSent { .. } => {}
        }
    }

    fn on_sync_response(&mut self, peer: PeerId, id: rr::OutboundRequestId, r: SyncResponse) {
        if self.status_reqs.remove(&id).is_some() {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.status_pending = false;
                p.status_at = Some(Instant::now());
            }
            match r {
                SyncResponse::Status(s) => self.note_status(peer, s),
                SyncResponse::Busy => {}
                SyncResponse::Blocks(_) => {
                    self.penalise(peer, Offence::BadResponse, "blocks for a status request")
                }
            }
            return;
        }
        if self.sync.as_ref().is_none_or(|s| s.req != Some(id)) {
            return;
        }
        match r {
            SyncResponse::Blocks(blocks) => {
                let linked = blocks.windows(2).all(|w| {
                    w[1].header.parent == w[0].id() && w[1].header.height == w[0].header.height + 1
                });
                if blocks.len() > SYNC_BATCH_BLOCKS_MAX as usize || !linked {
                    self.sync = None;
                    self.penalise(peer, Offence::BadResponse, "unlinked sync batch");
                    return;
                }
                if blocks.is_empty() {
                    self.sync = None;
                    return;
                }
                match self.work.try_send(Work::SyncBlocks { peer, blocks }) {
                    Ok(()) => {
                        if let Some(s) = self.sync.as_mut() {
                            s.req = None;
                            s.since = Instant::now();
                        }
                    }
                    Err(_) => {
                        self.host.count("p2p_queue_full_total", &["sync"], 1);
                        self.sync = None;
                    }
                }
            }
            SyncResponse::Busy => self.sync = None,
            SyncResponse::Status(_) => {
                self.sync = None;
                self.penalise(peer, Offence::BadResponse, "status for a blocks request");
            }
        }
    }

    fn on_blob(&mut self, ev: rr::Event<BlobRequest, BlobResponse>) {
        match ev {
            rr::Event::Message { peer, message, .. } => match message {
                rr::Message::Request {
                    request, channel, ..
                } => {
                    if request.len > BLOB_CHUNK_BYTES {
                        self.penalise(peer, Offence::BadRequest, "blob chunk length");
                        return;
                    }
                    if self.busy() {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .blob
                            .send_response(channel, BlobResponse::Busy);
                        return;
                    }
                    self.host.count("p2p_requests_served_total", &["blob"], 1);
                    self.serve(move |h| {
                        let r = match h.blob_chunk(
                            &request.sha256,
                            request.offset,
                            request.len as usize,
                        ) {
                            Some((total, bytes)) => BlobResponse::Chunk { total, bytes },
                            None => BlobResponse::NotFound,
                        };
                        Cmd::RespondBlob(channel, r)
                    });
                }
                rr::Message::Response {
                    request_id,
                    response,
                } => self.on_blob_response(request_id, response),
            },
            rr::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if is_malformed(&error) {
                    self.penalise(peer, Offence::BadResponse, &error.to_string());
                }
                if let Some(f) = self.fetches.remove(&request_id) {
                    self.fetch_next(f);
                }
            }
            rr::Event::InboundFailure { peer, error, .. } => {
                if let rr::InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.penalise(peer, Offence::BadRequest, &e.to_string());
                    }
                }
            }
            rr::Event::ResponseSent { .. } => {}
        }
    }
}

fn is_malformed(e: &rr::OutboundFailure) -> bool {
    matches!(e, rr::OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
}
