//! The swarm task: one tokio task owns the libp2p swarm and all peer state; a worker
//! thread validates gossip and imports synced blocks through the [`Host`]; inbound
//! requests are served on blocking tasks (at most [`SERVING_MAX`] at once). Results
//! come back to the swarm task as [`Cmd`]s, so the swarm is never blocked on the chain.

use crate::admission::{address_key, InboundLimits, Refused};
use crate::limits::*;
use crate::peers::{Offence, Scores};
use crate::wire::*;
use crate::Status;
use crate::{FetchError, Host, NetConfig, NetError, NetHandle, NetView, PeerInfo};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self as rr};
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{identify, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tb_primitives::Id;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::cmd::{Cmd, Fetch, Verdict};
use crate::swarm::{build_swarm, check_port_free, Behaviour, BehaviourEvent};
use crate::worker::{worker, Work};
/// How often peers' statuses are refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// How often disconnected bootnodes are redialled.
const REDIAL_INTERVAL: Duration = Duration::from_secs(3);
/// A sync step that has not finished in this long is abandoned.
const SYNC_STALL: Duration = Duration::from_secs(REQUEST_TIMEOUT_SECS + 10);
/// A peer whose sync step failed or brought nothing is not synced from for this long.
const SYNC_BACKOFF: Duration = Duration::from_secs(5);

struct Peer {
    addr: Option<Multiaddr>,
    status: Option<Status>,
    status_at: Option<Instant>,
    status_pending: bool,
    agent: Option<String>,
    /// The last block this peer sent in a sync batch.
    hint: Option<Id>,
    /// Not synced from before this.
    backoff_until: Option<Instant>,
}

struct SyncJob {
    peer: PeerId,
    /// Tells this job's worker results from a cancelled job's.
    gen: u64,
    since: Instant,
    req: Option<rr::OutboundRequestId>,
}

struct Svc {
    swarm: Swarm<Behaviour>,
    cfg: NetConfig,
    host: Arc<dyn Host>,
    work: SyncSender<(Work, usize)>,
    sync_work: SyncSender<(Work, usize)>,
    /// Bytes of gossip waiting in the validation queue.
    queued_bytes: usize,
    /// Local messages published while no peer was subscribed, retried on the tick.
    unpublished: std::collections::VecDeque<(Topic, Vec<u8>)>,
    unpublished_bytes: usize,
    cmd_tx: UnboundedSender<Cmd>,
    view: Arc<Mutex<NetView>>,
    local: Arc<Mutex<Status>>,
    scores: Scores,
    peers: HashMap<PeerId, Peer>,
    topics: HashMap<TopicHash, Topic>,
    sync: Option<SyncJob>,
    sync_gen: u64,
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
    let inbound = InboundLimits {
        per_ip: cfg.inbound_per_ip,
        known: cfg.bootnodes.iter().filter_map(address_key).collect(),
    };
    let mut swarm = build_swarm(key, cfg.chain_id, cfg.block_bytes_max, &inbound)?;
    for a in &cfg.listen {
        check_port_free(a)?;
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
    let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel(4);
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
            .spawn(move || worker(host, sync_rx, work_rx, out))
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
        sync_work: sync_tx,
        queued_bytes: 0,
        unpublished: std::collections::VecDeque::new(),
        unpublished_bytes: 0,
        cmd_tx,
        view,
        local,
        peers: HashMap::new(),
        topics,
        sync: None,
        sync_gen: 0,
        status_reqs: HashMap::new(),
        fetches: HashMap::new(),
        serving: Arc::new(AtomicUsize::new(0)),
        last_redial: Instant::now() - REDIAL_INTERVAL,
    };
    svc.redial();
    let task = tokio::spawn(async move { svc.run(cmd_rx).await });
    Ok((handle, task))
}

/// Logs when the swarm task ends other than by a stop.
pub(crate) async fn watch(task: tokio::task::JoinHandle<()>) {
    if let Err(e) = task.await {
        if e.is_panic() {
            tracing::error!("the network task panicked; the node runs without peers");
        }
    }
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
            tracing::warn!(%peer, offence = o.label(), why = %why, "banning a peer");
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
            // A peer on this chain: its address may use the handshake slots kept for
            // known peers from now on.
            if let Some(a) = &p.addr {
                self.swarm.behaviour_mut().admission.counts.learn(a);
            }
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
            .filter(|(p, x)| {
                !self.scores.is_banned(p, now) && x.backoff_until.is_none_or(|t| t <= now)
            })
            .filter_map(|(p, x)| x.status.as_ref().map(|s| (s.total_work, *p)))
            .filter(|(w, _)| *w > ours)
            .max();
        if let Some((_, peer)) = best {
            let hint = self.peers.get(&peer).and_then(|p| p.hint);
            self.sync_gen += 1;
            let gen = self.sync_gen;
            match self.queue_sync(Work::Locator { peer, gen, hint }) {
                true => {
                    tracing::info!(
                        %peer,
                        ours = %ours,
                        theirs = %best.map(|(w, _)| w).unwrap_or(ours),
                        height = self.local().height,
                        "syncing from a heavier peer"
                    );
                    self.sync = Some(SyncJob {
                        peer,
                        gen,
                        since: now,
                        req: None,
                    })
                }
                false => self.host.count("p2p_queue_full_total", &["sync"], 1),
            }
        }
    }

    /// Ends the sync with `peer` and leaves it alone for [`SYNC_BACKOFF`]; its status is
    /// asked again before it is synced from.
    fn back_off(&mut self, peer: PeerId) {
        if self.sync.as_ref().is_some_and(|s| s.peer == peer) {
            self.sync = None;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.backoff_until = Some(Instant::now() + SYNC_BACKOFF);
            p.status = None;
            p.hint = None;
        }
    }

    /// Queues sync work ahead of gossip and wakes the worker if it waits on gossip.
    fn queue_sync(&mut self, w: Work) -> bool {
        if self.sync_work.try_send((w, 0)).is_err() {
            return false;
        }
        // When the gossip queue is full the worker is busy and sees the sync work next.
        let _ = self.work.try_send((Work::Wake, 0));
        true
    }

    fn redial(&mut self) {
        use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
        self.last_redial = Instant::now();
        let now = Instant::now();
        for a in self.cfg.bootnodes.clone() {
            let Some(id) = a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            }) else {
                continue;
            };
            if id == *self.swarm.local_peer_id() || self.scores.is_banned(&id, now) {
                continue;
            }
            // Not while connected or while a dial is in flight.
            let opts = DialOpts::peer_id(id)
                .addresses(vec![a.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                if !matches!(e, libp2p::swarm::DialError::DialPeerConditionFalse(_)) {
                    tracing::debug!(addr = %a, error = %e, "dial failed");
                }
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
        if let Some(p) = self
            .sync
            .as_ref()
            .filter(|s| now.duration_since(s.since) > SYNC_STALL)
            .map(|s| s.peer)
        {
            self.back_off(p);
        }
        self.maybe_sync();
        let expired: Vec<rr::OutboundRequestId> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(f) = self.fetches.remove(&id) {
                self.host.count("p2p_blob_fetches_total", &["timeout"], 1);
                let _ = f.reply.send(Err(FetchError::Timeout(Duration::ZERO)));
            }
        }
        if !self.peers.is_empty() {
            for _ in 0..self.unpublished.len() {
                let Some((topic, data)) = self.unpublished.pop_front() else {
                    break;
                };
                self.unpublished_bytes -= data.len();
                self.publish(topic, data);
            }
        }
        self.refresh_view();
    }

    /// Publishes a local message; kept for a retry while no peer is subscribed.
    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        let t = IdentTopic::new(topic.name(self.cfg.chain_id));
        match self.swarm.behaviour_mut().gossip.publish(t, data.clone()) {
            Ok(_) => self.host.count("p2p_published_total", &[topic.label()], 1),
            // Blocks are not kept: peers that join later sync them.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) if topic != Topic::Block => {
                self.unpublished_bytes += data.len();
                self.unpublished.push_back((topic, data));
                while self.unpublished.len() > UNPUBLISHED_MAX
                    || self.unpublished_bytes > UNPUBLISHED_BYTES_MAX
                {
                    let Some((_, d)) = self.unpublished.pop_front() else {
                        break;
                    };
                    self.unpublished_bytes -= d.len();
                    self.host.count("p2p_queue_full_total", &["publish"], 1);
                }
            }
            // Already published (a duplicate) or too large: nothing to retry.
            Err(_) => {}
        }
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
            Cmd::Publish(topic, data) => self.publish(topic, data),
            Cmd::Dequeued(bytes) => self.queued_bytes = self.queued_bytes.saturating_sub(bytes),
            Cmd::FetchChecked(f, ok) => {
                let mut f = *f;
                if ok {
                    self.host.count("p2p_blob_fetches_total", &["ok"], 1);
                    let buf = std::mem::take(&mut f.buf);
                    let _ = f.reply.send(Ok(buf));
                } else {
                    self.penalise(f.peer, Offence::BadResponse, "blob digest mismatch");
                    self.fetch_next(f);
                }
            }
            Cmd::TipChanged => {
                // A heavier peer may still be ahead after a local import.
                self.maybe_sync();
            }
            Cmd::Dial(a) => {
                if let Err(e) = self.swarm.dial(a.clone()) {
                    tracing::debug!(addr = %a, error = %e, "dial failed");
                }
            }
            Cmd::FetchBlob(sha, deadline, reply) => {
                let mut candidates: Vec<PeerId> = self.peers.keys().copied().collect();
                candidates.sort();
                candidates.reverse();
                let f = Fetch {
                    sha,
                    deadline,
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
                        // The sender has blocks this node lacks: learn its tip (once).
                        if self.peers.get(&source).is_some_and(|p| !p.status_pending) {
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
            Cmd::Locator { peer, gen, locator } => {
                if self.sync.as_ref().is_none_or(|s| s.gen != gen) {
                    // A cancelled job's: the current one (if any) is not touched.
                } else if self.swarm.is_connected(&peer) {
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
                gen,
                fault,
                stopped,
            } => {
                if let Some(o) = fault {
                    // A fault is charged whichever job the batch belonged to.
                    self.penalise(peer, o, "sync response");
                    self.back_off(peer);
                    return;
                }
                if self.sync.as_ref().is_none_or(|s| s.gen != gen) {
                    return;
                }
                self.sync = None;
                if stopped {
                    // Not the peer's fault; start again later from the best chain.
                    self.back_off(peer);
                } else {
                    // More may follow: ask again, from the last block received (a side
                    // chain is followed until it outweighs the best chain or ends).
                    self.maybe_sync();
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
        if f.deadline <= now {
            self.host.count("p2p_blob_fetches_total", &["timeout"], 1);
            let _ = f.reply.send(Err(FetchError::Timeout(Duration::ZERO)));
            return;
        }
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
                    // Nobody can serve a blob over the limit: the peer lies or the
                    // blob is not for this node.
                    self.host.count("p2p_blob_fetches_total", &["too_large"], 1);
                    self.penalise(f.peer, Offence::BadResponse, "blob over the limit");
                    self.fetch_next(f);
                    return;
                }
                // The server answers exactly min(asked, what is left).
                let at = f.buf.len() as u64;
                let want = total.saturating_sub(at).min(BLOB_CHUNK_BYTES as u64);
                let consistent =
                    f.total.is_none_or(|t| t == total) && at <= total && bytes.len() as u64 == want;
                if !consistent {
                    self.penalise(f.peer, Offence::BadResponse, "inconsistent blob chunk");
                    self.fetch_next(f);
                    return;
                }
                f.total = Some(total);
                f.buf.extend_from_slice(&bytes);
                if f.buf.len() as u64 == total {
                    // Hash off the swarm task (up to the blob limit).
                    let out = self.cmd_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let ok = tb_primitives::sha256_digest(&f.buf).0 == f.sha;
                        let _ = out.send(Cmd::FetchChecked(Box::new(f), ok));
                    });
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
        /// Frees the serving slot however the task ends.
        struct Slot(Arc<AtomicUsize>);
        impl Drop for Slot {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.serving.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(self.serving.clone());
        let host = self.host.clone();
        let out = self.cmd_tx.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let c = f(&*host);
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
                    hint: None,
                    backoff_until: None,
                });
                if new {
                    tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), peers = self.peers.len(), "peer connected");
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
                tracing::info!(peer = %peer_id, peers = self.peers.len(), "peer disconnected");
                if self.sync.as_ref().is_some_and(|s| s.peer == peer_id) {
                    self.sync = None;
                }
                self.refresh_view();
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                let reason = match &error {
                    ListenError::Denied { cause } => match cause.downcast_ref::<Refused>() {
                        Some(r) => r.label(),
                        None => "limits",
                    },
                    _ => "handshake",
                };
                tracing::debug!(addr = %send_back_addr, reason, %error, "inbound connection refused");
                self.host.count("p2p_inbound_refused_total", &[reason], 1);
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
            Ok(w) => {
                let n = m.data.len();
                let fits = self.queued_bytes + n <= VALIDATION_QUEUE_BYTES_MAX;
                if fits && self.work.try_send((w, n)).is_ok() {
                    self.queued_bytes += n;
                    return;
                }
                // Backpressure: not validated, so not relayed; nobody is blamed.
                self.host
                    .count("p2p_gossip_messages_total", &[topic.label(), "dropped"], 1);
                MessageAcceptance::Ignore
            }
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
                    // No answer (a timeout, a closed stream): not synced from for a while,
                    // so a peer that claims work and never answers cannot hold the sync.
                    self.back_off(peer);
                }
                if is_malformed(&error) {
                    self.penalise(peer, Offence::BadResponse, &error.to_string());
                }
            }
            rr::Event::InboundFailure { peer, error, .. } => self.on_inbound_failure(peer, &error),
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
                    w[1].header.parent == w[0].id()
                        && w[0].header.height.checked_add(1) == Some(w[1].header.height)
                });
                if blocks.len() > SYNC_BATCH_BLOCKS_MAX as usize || !linked {
                    self.penalise(peer, Offence::BadResponse, "unlinked sync batch");
                    self.back_off(peer);
                    return;
                }
                let Some(last) = blocks.last().map(|b| b.id()) else {
                    // Nothing after our locator although it claimed more work.
                    self.back_off(peer);
                    return;
                };
                if self.peers.get(&peer).is_some_and(|p| p.hint == Some(last)) {
                    // The same batch again: no progress to be had here now.
                    self.back_off(peer);
                    return;
                }
                let gen = self.sync.as_ref().map_or(0, |s| s.gen);
                match self.queue_sync(Work::SyncBlocks { peer, gen, blocks }) {
                    true => {
                        // Only a queued batch leads the next locator.
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.hint = Some(last);
                        }
                        if let Some(s) = self.sync.as_mut() {
                            s.req = None;
                            s.since = Instant::now();
                        }
                    }
                    false => {
                        self.host.count("p2p_queue_full_total", &["sync"], 1);
                        self.sync = None;
                    }
                }
            }
            SyncResponse::Busy => self.back_off(peer),
            SyncResponse::Status(_) => {
                self.penalise(peer, Offence::BadResponse, "status for a blocks request");
                self.back_off(peer);
            }
        }
    }

    /// An inbound request that did not decode (or broke its frame) is charged.
    fn on_inbound_failure(&mut self, peer: PeerId, error: &rr::InboundFailure) {
        if let rr::InboundFailure::Io(e) = error {
            if e.kind() == std::io::ErrorKind::InvalidData {
                self.penalise(peer, Offence::BadRequest, &e.to_string());
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
            rr::Event::InboundFailure { peer, error, .. } => self.on_inbound_failure(peer, &error),
            rr::Event::ResponseSent { .. } => {}
        }
    }
}

fn is_malformed(e: &rr::OutboundFailure) -> bool {
    matches!(e, rr::OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
}
