//! `tb-net-probe`: a misbehaving peer, for tests and operators checking that a node
//! defends itself. It connects to a node of the devnet chain, sends one kind of bad
//! data and reports, as one JSON line, whether the node disconnected it and refused
//! it afterwards.
//!
//! ```text
//! tb-net-probe --target MULTIADDR --mode garbage|invalid-block|bad-request
//!              [--count N] [--secs S]
//! ```
//!
//! - `garbage`: undecodable bytes on the block and transaction topics.
//! - `invalid-block`: well-formed blocks on genesis that fail validation.
//! - `bad-request`: sync requests whose locator is over the limit.
#![forbid(unsafe_code)]

use futures::StreamExt;
use std::time::{Duration, Instant};
use tb_net::libp2p::gossipsub::IdentTopic;
use tb_net::libp2p::swarm::SwarmEvent;
use tb_net::libp2p::Multiaddr;
use tb_net::wire::{SyncRequest, Topic};
use tb_net::{limits::LOCATOR_LEN_MAX, BehaviourEvent};

fn main() {
    if let Err(e) = run() {
        eprintln!("tb-net-probe: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |n: &str| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let target: Multiaddr = get("--target")
        .ok_or("usage: tb-net-probe --target MULTIADDR --mode garbage|invalid-block|bad-request [--count N] [--secs S]")?
        .parse()
        .map_err(|e| format!("--target: {e}"))?;
    let mode = get("--mode").unwrap_or_else(|| "garbage".into());
    if !["garbage", "invalid-block", "bad-request"].contains(&mode.as_str()) {
        return Err(format!("--mode: unknown {mode:?}"));
    }
    let count: u32 = get("--count")
        .map_or(Ok(8), |v| v.parse())
        .map_err(|_| "--count: not a number")?;
    let secs: u64 = get("--secs")
        .map_or(Ok(20), |v| v.parse())
        .map_err(|_| "--secs: not a number")?;
    let params = tb_chain::ChainParams::devnet();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(probe(
        params,
        target,
        mode,
        count,
        Duration::from_secs(secs),
    ))
}

async fn probe(
    params: tb_chain::ChainParams,
    target: Multiaddr,
    mode: String,
    count: u32,
    limit: Duration,
) -> Result<(), String> {
    let key = tb_net::libp2p::identity::Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    let mut swarm = tb_net::build_swarm(
        key,
        params.chain_id,
        tb_chain::block::block_encoded_bytes_max(&params),
        &tb_net::admission::InboundLimits::default(),
    )
    .map_err(|e| e.to_string())?;
    swarm.dial(target.clone()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut peer = None;
    let mut subscribed = false;
    let mut sent = 0u32;
    let mut disconnected = false;
    let mut next_send = Instant::now();
    // Phase 1: connect, wait for the node's subscriptions, misbehave until cut off.
    while t0.elapsed() < limit && !disconnected {
        let ev = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await;
        match ev {
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) => peer = Some(peer_id),
            Ok(SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            }) if Some(peer_id) == peer => disconnected = true,
            Ok(SwarmEvent::Behaviour(BehaviourEvent::Gossip(
                tb_net::libp2p::gossipsub::Event::Subscribed { .. },
            ))) => subscribed = true,
            _ => {}
        }
        let Some(p) = peer else { continue };
        let ready = subscribed || mode == "bad-request";
        if ready && sent < count && Instant::now() >= next_send {
            next_send = Instant::now() + Duration::from_millis(150);
            sent += 1;
            let b = swarm.behaviour_mut();
            match mode.as_str() {
                "garbage" => {
                    let junk: Vec<u8> = (0..64).map(|i| (i as u32 * 31 + sent * 7) as u8).collect();
                    let _ = b.gossip.publish(
                        IdentTopic::new(Topic::Block.name(params.chain_id)),
                        junk.clone(),
                    );
                    let _ = b
                        .gossip
                        .publish(IdentTopic::new(Topic::Tx.name(params.chain_id)), junk);
                }
                "invalid-block" => {
                    let g = tb_chain::genesis_block(&params);
                    let mut blk = g.clone();
                    blk.header.height = 1;
                    blk.header.parent = g.id();
                    blk.header.timestamp_ms = g.header.timestamp_ms + 1000 * sent as u64;
                    blk.header.state_root = tb_primitives::Id([sent as u8; 32]);
                    let _ = b.gossip.publish(
                        IdentTopic::new(Topic::Block.name(params.chain_id)),
                        tb_primitives::encode(&blk),
                    );
                }
                _ => {
                    let locator = vec![tb_primitives::Id([sent as u8; 32]); LOCATOR_LEN_MAX + 1];
                    b.sync.send_request(
                        &p,
                        SyncRequest::Blocks {
                            locator,
                            max_blocks: 1,
                        },
                    );
                }
            }
        }
    }
    // Phase 2: is the node refusing us now? Refused: the redial fails, or the
    // connection it opens is closed before any gossip subscription is exchanged.
    let mut refused = false;
    if disconnected {
        let _ = swarm.dial(target.clone());
        let t1 = Instant::now();
        let mut outcome = None;
        while t1.elapsed() < Duration::from_secs(5) && outcome.is_none() {
            match tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await {
                Ok(SwarmEvent::OutgoingConnectionError { .. }) => outcome = Some(true),
                Ok(SwarmEvent::ConnectionClosed { .. }) => outcome = Some(true),
                Ok(SwarmEvent::Behaviour(BehaviourEvent::Gossip(
                    tb_net::libp2p::gossipsub::Event::Subscribed { .. },
                ))) => outcome = Some(false),
                _ => {}
            }
        }
        refused = outcome == Some(true);
    }
    println!(
        "{{\"peer_id\":\"{me}\",\"connected\":{},\"sent\":{sent},\"disconnected\":{disconnected},\"refused_after\":{refused},\"secs\":{:.1}}}",
        peer.is_some(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
