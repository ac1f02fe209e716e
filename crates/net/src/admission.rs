//! Who may connect in: per-address limits on inbound connections, so that idle or
//! half-open connections from one host cannot crowd out real peers.
//!
//! libp2p's `connection_limits` caps connections in total; alone, 32 idle TCP
//! connections from one host filled its pending-incoming cap and every new inbound
//! peer was refused until they timed out. [`Admission`] adds, before it:
//!
//! - at most [`PENDING_PER_IP_MAX`] inbound connections still in their handshake (TCP
//!   accepted, Noise and Yamux not done) from one address;
//! - at most [`PENDING_INCOMING_MAX`] such connections in all, of which
//!   [`PENDING_KEPT_FOR_KNOWN`] are kept for *known* addresses: the bootnodes' and
//!   those of peers that answered the status handshake on this chain;
//! - at most `per_ip` established inbound connections from one address
//!   ([`InboundLimits::per_ip`], default [`INBOUND_PER_IP_DEFAULT`]).
//!
//! Together with the handshake deadline ([`HANDSHAKE_TIMEOUT_SECS`], the swarm's
//! connection timeout) a connection that never finishes its handshake holds a slot
//! for at most that long, and one host holds at most [`PENDING_PER_IP_MAX`] of them.
//! Outbound dials are not counted here: the slots above [`PEERS_INCOMING_MAX`] stay
//! for the node's own dials (bootnodes).
//!
//! An "address" is an IPv4 address, or an IPv6 /64 prefix (one host commonly holds a
//! whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address.
//!
//! [`PEERS_INCOMING_MAX`]: crate::limits::PEERS_INCOMING_MAX

use crate::limits::*;
use libp2p::core::{transport::PortUse, ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// The per-address limits a node is configured with.
#[derive(Clone, Debug)]
pub struct InboundLimits {
    /// Established inbound connections from one address (several nodes behind one NAT,
    /// or a devnet on loopback, need more than one).
    pub per_ip: u32,
    /// Addresses known from the start (the bootnodes'): they may use the pending slots
    /// kept for known peers.
    pub known: Vec<IpAddr>,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            per_ip: INBOUND_PER_IP_DEFAULT,
            known: Vec::new(),
        }
    }
}

/// Why an inbound connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} handshakes already pending from this address")]
    PendingPerIp(u32),
    #[error("{0} handshakes pending from addresses not known (the rest are kept for known peers)")]
    PendingUnknown(u32),
    #[error("{0} handshakes pending in all")]
    PendingAll(u32),
    #[error("{0} inbound connections already established from this address")]
    InboundPerIp(u32),
}

impl Refused {
    /// The metrics label (`p2p_inbound_refused_total{reason}`).
    pub fn label(&self) -> &'static str {
        match self {
            Refused::PendingPerIp(_) => "pending_per_ip",
            Refused::PendingUnknown(_) => "pending_unknown",
            Refused::PendingAll(_) => "pending_all",
            Refused::InboundPerIp(_) => "inbound_per_ip",
        }
    }
}

/// The address a connection from `ip` counts against: the IPv4 address, or the IPv6
/// /64 (an IPv4-mapped IPv6 address counts as its IPv4 address). The node's RPC port
/// shares it.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// [`ip_key`] of a multiaddr's IP, or `None` for an address without one (not a TCP
/// connection: not limited here).
pub fn address_key(a: &Multiaddr) -> Option<IpAddr> {
    match a.iter().next()? {
        Protocol::Ip4(ip) => Some(ip_key(ip.into())),
        Protocol::Ip6(ip) => Some(ip_key(ip.into())),
        _ => None,
    }
}

/// The counts behind the limits, apart from libp2p so they can be tested alone.
#[derive(Debug, Default)]
pub struct Counts {
    per_ip: u32,
    pending: HashMap<ConnectionId, IpAddr>,
    pending_by_ip: HashMap<IpAddr, u32>,
    inbound: HashMap<ConnectionId, IpAddr>,
    inbound_by_ip: HashMap<IpAddr, u32>,
    /// The bootnodes' addresses (kept for good).
    fixed: HashSet<IpAddr>,
    /// Addresses of peers that answered the status handshake, oldest first; at most
    /// [`KNOWN_ADDRESSES_MAX`].
    learned: VecDeque<IpAddr>,
    learned_set: HashSet<IpAddr>,
}

fn bump(m: &mut HashMap<IpAddr, u32>, ip: IpAddr, up: bool) {
    if up {
        *m.entry(ip).or_insert(0) += 1;
    } else if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}

impl Counts {
    pub fn new(limits: &InboundLimits) -> Counts {
        let fixed = limits.known.iter().map(|ip| ip_key(*ip)).collect();
        Counts {
            per_ip: limits.per_ip.max(1),
            fixed,
            ..Counts::default()
        }
    }

    /// Whether connections from `ip` (an [`address_key`]) may use the kept slots.
    pub fn is_known(&self, ip: &IpAddr) -> bool {
        self.fixed.contains(ip) || self.learned_set.contains(ip)
    }

    /// Remembers `addr`'s address as known (its peer answered the status handshake).
    pub fn learn(&mut self, addr: &Multiaddr) {
        let Some(ip) = address_key(addr) else { return };
        if self.is_known(&ip) {
            return;
        }
        if self.learned.len() >= KNOWN_ADDRESSES_MAX {
            if let Some(old) = self.learned.pop_front() {
                self.learned_set.remove(&old);
            }
        }
        self.learned.push_back(ip);
        self.learned_set.insert(ip);
    }

    /// Handshakes pending now, in all.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Established inbound connections now, in all.
    pub fn inbound(&self) -> usize {
        self.inbound.len()
    }

    /// A new inbound TCP connection from `remote`: admitted to its handshake or not.
    pub fn admit_pending(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), Refused> {
        let Some(ip) = address_key(remote) else {
            return Ok(());
        };
        let here = self.pending_by_ip.get(&ip).copied().unwrap_or(0);
        if here >= PENDING_PER_IP_MAX {
            return Err(Refused::PendingPerIp(here));
        }
        let all = self.pending.len() as u32;
        if all >= PENDING_INCOMING_MAX {
            return Err(Refused::PendingAll(all));
        }
        if all >= PENDING_INCOMING_MAX - PENDING_KEPT_FOR_KNOWN && !self.is_known(&ip) {
            return Err(Refused::PendingUnknown(all));
        }
        self.pending.insert(id, ip);
        bump(&mut self.pending_by_ip, ip, true);
        Ok(())
    }

    /// The handshake of `id` is over (done or failed): its pending slot is free.
    pub fn end_pending(&mut self, id: ConnectionId) {
        if let Some(ip) = self.pending.remove(&id) {
            bump(&mut self.pending_by_ip, ip, false);
        }
    }

    /// Whether an inbound connection from `remote` that finished its handshake may stay.
    pub fn check_inbound(&self, remote: &Multiaddr) -> Result<(), Refused> {
        let Some(ip) = address_key(remote) else {
            return Ok(());
        };
        let here = self.inbound_by_ip.get(&ip).copied().unwrap_or(0);
        if here >= self.per_ip {
            return Err(Refused::InboundPerIp(here));
        }
        Ok(())
    }

    /// An inbound connection was established.
    pub fn opened(&mut self, id: ConnectionId, remote: &Multiaddr) {
        self.end_pending(id);
        if let Some(ip) = address_key(remote) {
            if self.inbound.insert(id, ip).is_none() {
                bump(&mut self.inbound_by_ip, ip, true);
            }
        }
    }

    /// A connection closed.
    pub fn closed(&mut self, id: ConnectionId) {
        self.end_pending(id);
        if let Some(ip) = self.inbound.remove(&id) {
            bump(&mut self.inbound_by_ip, ip, false);
        }
    }
}

/// The swarm behaviour that applies [`Counts`] (it opens no streams).
pub struct Admission {
    pub counts: Counts,
}

impl Admission {
    pub fn new(limits: &InboundLimits) -> Admission {
        Admission {
            counts: Counts::new(limits),
        }
    }
}

impl NetworkBehaviour for Admission {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.counts
            .admit_pending(id, remote)
            .map_err(ConnectionDenied::new)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.counts.end_pending(id);
        self.counts
            .check_inbound(remote)
            .map_err(ConnectionDenied::new)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let ConnectedPoint::Listener { send_back_addr, .. } = e.endpoint {
                    self.counts.opened(e.connection_id, send_back_addr);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.counts.closed(connection_id)
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.counts.end_pending(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str, port: u16) -> Multiaddr {
        let ip: IpAddr = ip.parse().unwrap();
        Multiaddr::from(ip).with(Protocol::Tcp(port))
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_handshakes() {
        let mut c = Counts::new(&InboundLimits::default());
        let mut ids = Vec::new();
        for i in 0..PENDING_PER_IP_MAX {
            let id = ConnectionId::new_unchecked(i as usize);
            c.admit_pending(id, &at("10.0.0.9", 1000 + i as u16))
                .unwrap();
            ids.push(id);
        }
        let next = ConnectionId::new_unchecked(99);
        assert_eq!(
            c.admit_pending(next, &at("10.0.0.9", 2000)),
            Err(Refused::PendingPerIp(PENDING_PER_IP_MAX))
        );
        // Another address is still admitted; a finished handshake frees a slot.
        c.admit_pending(next, &at("10.0.0.10", 2000)).unwrap();
        c.end_pending(ids[0]);
        c.admit_pending(ConnectionId::new_unchecked(100), &at("10.0.0.9", 2001))
            .unwrap();
        assert_eq!(c.pending(), PENDING_PER_IP_MAX as usize + 1);
    }

    #[test]
    fn the_last_pending_slots_are_kept_for_known_addresses() {
        let boot: IpAddr = "192.0.2.1".parse().unwrap();
        let mut c = Counts::new(&InboundLimits {
            per_ip: 8,
            known: vec![boot],
        });
        let open = PENDING_INCOMING_MAX - PENDING_KEPT_FOR_KNOWN;
        for i in 0..open {
            // Many addresses, one handshake each (a spread-out attacker).
            let ip = format!("10.1.{}.{}", i / 200, i % 200 + 1);
            c.admit_pending(ConnectionId::new_unchecked(i as usize), &at(&ip, 1))
                .unwrap();
        }
        let id = ConnectionId::new_unchecked(10_000);
        assert_eq!(
            c.admit_pending(id, &at("10.9.9.9", 1)),
            Err(Refused::PendingUnknown(open))
        );
        c.admit_pending(id, &at("192.0.2.1", 7171)).unwrap();
        // A peer that answered the status handshake becomes known.
        let learned = at("198.51.100.7", 4000);
        c.learn(&learned);
        c.admit_pending(ConnectionId::new_unchecked(10_001), &learned)
            .unwrap();
        // Known addresses fill the kept slots, up to the total.
        let mut n = 0;
        while c.pending() < PENDING_INCOMING_MAX as usize {
            let a = at(&format!("198.51.100.{}", 10 + n / PENDING_PER_IP_MAX), 1);
            c.learn(&a);
            c.admit_pending(ConnectionId::new_unchecked(20_000 + n as usize), &a)
                .unwrap();
            n += 1;
        }
        assert_eq!(
            c.admit_pending(ConnectionId::new_unchecked(30_000), &at("192.0.2.1", 1)),
            Err(Refused::PendingAll(PENDING_INCOMING_MAX))
        );
    }

    #[test]
    fn established_inbound_connections_are_capped_per_address_and_freed_on_close() {
        let mut c = Counts::new(&InboundLimits {
            per_ip: 2,
            known: vec![],
        });
        let a = at("10.0.0.1", 5);
        for i in 0..2 {
            let id = ConnectionId::new_unchecked(i);
            c.admit_pending(id, &a).unwrap();
            c.check_inbound(&a).unwrap();
            c.opened(id, &a);
        }
        assert_eq!(c.pending(), 0);
        assert_eq!(c.check_inbound(&a), Err(Refused::InboundPerIp(2)));
        c.check_inbound(&at("10.0.0.2", 5)).unwrap();
        c.closed(ConnectionId::new_unchecked(0));
        c.check_inbound(&a).unwrap();
        assert_eq!(c.inbound(), 1);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| address_key(&at(s, 1)).unwrap();
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:10.0.0.1"), k("10.0.0.1"));
        let mut c = Counts::new(&InboundLimits::default());
        for i in 0..PENDING_PER_IP_MAX {
            let a = at(&format!("2001:db8::{:x}", i + 1), 1);
            c.admit_pending(ConnectionId::new_unchecked(i as usize), &a)
                .unwrap();
        }
        let r = c.admit_pending(ConnectionId::new_unchecked(50), &at("2001:db8::ffff", 1));
        assert_eq!(r, Err(Refused::PendingPerIp(PENDING_PER_IP_MAX)));
    }

    #[test]
    fn learned_addresses_are_bounded() {
        let mut c = Counts::new(&InboundLimits::default());
        for i in 0..KNOWN_ADDRESSES_MAX + 10 {
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            c.learn(&at(&ip, 1));
        }
        assert_eq!(c.learned.len(), KNOWN_ADDRESSES_MAX);
        assert!(
            !c.is_known(&"10.0.0.0".parse().unwrap()),
            "the oldest went first"
        );
        assert!(c.is_known(&"10.0.4.9".parse().unwrap()));
    }
}
