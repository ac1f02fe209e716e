//! The libp2p swarm a node runs: its protocols (`Behaviour`) and how it is built.

use crate::admission::{Admission, InboundLimits};
use crate::limits::*;
use crate::wire::*;
use crate::NetError;
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::identity::Keypair;
use libp2p::request_response::{self as rr, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{allow_block_list, connection_limits, identify, noise, tcp, yamux, Multiaddr, Swarm};
use std::time::Duration;

/// The protocols a node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub admission: Admission,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub gossip: gossipsub::Behaviour,
    pub sync: rr::Behaviour<FrameCodec<SyncRequest, SyncResponse>>,
    pub blob: rr::Behaviour<FrameCodec<BlobRequest, BlobResponse>>,
}

/// Refuses a TCP listen address whose port another socket holds. libp2p's TCP
/// transport binds with `SO_REUSEPORT`, so a second node on the same port would start
/// and share (or miss) the first's connections; a plain bind here fails instead.
pub(crate) fn check_port_free(a: &Multiaddr) -> Result<(), NetError> {
    use libp2p::multiaddr::Protocol as P;
    let mut it = a.iter();
    let ip: std::net::IpAddr = match it.next() {
        Some(P::Ip4(ip)) => ip.into(),
        Some(P::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    let Some(P::Tcp(port)) = it.next() else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind((ip, port))
        .map(drop)
        .map_err(|e| NetError::Listen {
            addr: a.to_string(),
            msg: format!("TCP port {port} is not free ({e}); is another node running there?"),
        })
}

/// Builds the swarm: TCP + Noise + Yamux, and the protocols with their limits;
/// `inbound`: who may connect in ([`crate::admission`]).
pub fn build_swarm(
    key: Keypair,
    chain_id: u64,
    block_bytes_max: usize,
    inbound: &InboundLimits,
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
        admission: Admission::new(inbound),
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(PEERS_MAX))
                .with_max_established_incoming(Some(PEERS_INCOMING_MAX))
                .with_max_established_per_peer(Some(2)),
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
        .with_connection_timeout(Duration::from_secs(HANDSHAKE_TIMEOUT_SECS))
        .build();
    Ok(swarm)
}
