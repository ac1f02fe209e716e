//! Peer scoring: every piece of invalid data a peer sends costs it penalty points;
//! points decay with time; a peer that reaches [`BAN_THRESHOLD`] is banned (its
//! connections closed, new ones refused) for the ban period, then forgiven.
//!
//! Penalties are deliberately coarse and documented (docs/spec/p2p.md): undecodable
//! data costs more than a well-formed but invalid transaction (which an honest peer on
//! a slightly different tip could relay), and a block that fails validation costs the
//! most, since PoW makes honest invalid blocks impossible.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Points at which a peer is banned.
pub const BAN_THRESHOLD: u32 = 100;
/// Points forgiven per second of good behaviour.
pub const DECAY_PER_SEC: u32 = 1;

/// What a peer did wrong, and what it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// Gossip or a response that does not decode.
    Malformed,
    /// A transaction whose signature, selector, size or syntax is invalid.
    InvalidTx,
    /// A block whose header or stateless checks fail.
    InvalidBlock,
    /// A block whose body fails execution (or descends from one that did): a relay may
    /// have stored it on a side chain unexecuted, so it costs less.
    InvalidExecution,
    /// A request that does not decode, or a stream that breaks the protocol.
    BadRequest,
    /// A sync response that does not answer the request (unconnected blocks).
    BadResponse,
    /// Another chain's genesis, or another protocol version.
    WrongNetwork,
}

impl Offence {
    /// Every offence.
    pub const ALL: [Offence; 7] = [
        Offence::Malformed,
        Offence::InvalidTx,
        Offence::InvalidBlock,
        Offence::InvalidExecution,
        Offence::BadRequest,
        Offence::BadResponse,
        Offence::WrongNetwork,
    ];

    pub fn points(self) -> u32 {
        match self {
            Offence::Malformed => 25,
            Offence::InvalidTx => 10,
            Offence::InvalidBlock => 50,
            Offence::InvalidExecution => 10,
            Offence::BadRequest => 25,
            Offence::BadResponse => 25,
            Offence::WrongNetwork => BAN_THRESHOLD,
        }
    }

    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Offence::Malformed => "malformed",
            Offence::InvalidTx => "invalid_tx",
            Offence::InvalidBlock => "invalid_block",
            Offence::InvalidExecution => "invalid_execution",
            Offence::BadRequest => "bad_request",
            Offence::BadResponse => "bad_response",
            Offence::WrongNetwork => "wrong_network",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    points: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

/// The score table.
#[derive(Debug)]
pub struct Scores {
    ban: Duration,
    peers: HashMap<PeerId, Entry>,
}

impl Scores {
    pub fn new(ban: Duration) -> Scores {
        Scores {
            ban,
            peers: HashMap::new(),
        }
    }

    fn decayed(e: &mut Entry, now: Instant) {
        let secs = now.saturating_duration_since(e.last).as_secs();
        if secs > 0 {
            let forgiven = u32::try_from(secs)
                .unwrap_or(u32::MAX)
                .saturating_mul(DECAY_PER_SEC);
            e.points = e.points.saturating_sub(forgiven);
            // Whole seconds only: the part-second carries to the next decay.
            e.last += Duration::from_secs(secs);
        }
    }

    /// Charges `peer` for `o`; `true` when this makes it banned (from now until now plus
    /// the ban period).
    pub fn penalise(&mut self, peer: PeerId, o: Offence, now: Instant) -> bool {
        if !self.peers.contains_key(&peer) && self.peers.len() >= crate::limits::SCORED_PEERS_MAX {
            // Make room: forget one peer that is not banned (bans are only lifted by
            // `expire`, which reports them so their blocks are removed too).
            {
                let victim = self
                    .peers
                    .iter()
                    .find(|(_, e)| e.banned_until.is_none())
                    .map(|(p, _)| *p);
                match victim {
                    Some(v) => {
                        self.peers.remove(&v);
                    }
                    // Every remembered peer is banned: this one is not recorded.
                    None => return false,
                }
            }
        }
        let e = self.peers.entry(peer).or_insert(Entry {
            points: 0,
            last: now,
            banned_until: None,
        });
        Self::decayed(e, now);
        if e.banned_until.is_some() {
            return false;
        }
        e.points = e.points.saturating_add(o.points());
        if e.points >= BAN_THRESHOLD {
            e.banned_until = Some(now + self.ban);
            return true;
        }
        false
    }

    /// The peer's current points (after decay).
    pub fn points(&mut self, peer: &PeerId, now: Instant) -> u32 {
        match self.peers.get_mut(peer) {
            Some(e) => {
                Self::decayed(e, now);
                e.points
            }
            None => 0,
        }
    }

    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get(peer)
            .and_then(|e| e.banned_until)
            .is_some_and(|t| t > now)
    }

    /// The banned peers.
    pub fn banned(&self, now: Instant) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.banned_until.is_some_and(|t| t > now))
            .map(|(p, _)| *p)
            .collect();
        v.sort();
        v
    }

    /// Ends expired bans (returns the peers forgiven) and forgets peers with no points.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let mut freed = Vec::new();
        for (p, e) in self.peers.iter_mut() {
            if e.banned_until.is_some_and(|t| t <= now) {
                e.banned_until = None;
                e.points = 0;
                e.last = now;
                freed.push(*p);
            }
            Self::decayed(e, now);
        }
        self.peers
            .retain(|_, e| e.points > 0 || e.banned_until.is_some());
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_offences_ban_and_the_ban_expires() {
        let t0 = Instant::now();
        let mut s = Scores::new(Duration::from_secs(60));
        let p = PeerId::random();
        let q = PeerId::random();
        for i in 0..3 {
            assert!(!s.penalise(p, Offence::Malformed, t0), "offence {i}");
        }
        assert_eq!(s.points(&p, t0), 75);
        assert!(s.penalise(p, Offence::Malformed, t0));
        assert!(s.is_banned(&p, t0));
        assert!(!s.is_banned(&q, t0));
        assert_eq!(s.banned(t0), vec![p]);
        // Further offences while banned do not re-ban.
        assert!(!s.penalise(p, Offence::InvalidBlock, t0));
        assert!(s.expire(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(s.expire(t0 + Duration::from_secs(61)), vec![p]);
        assert!(!s.is_banned(&p, t0 + Duration::from_secs(61)));
        assert_eq!(s.points(&p, t0 + Duration::from_secs(61)), 0);
    }

    #[test]
    fn points_decay_so_rare_mistakes_are_forgiven() {
        let t0 = Instant::now();
        let mut s = Scores::new(Duration::from_secs(60));
        let p = PeerId::random();
        // An invalid transaction every 10 s never reaches the threshold.
        for i in 0..100u64 {
            assert!(!s.penalise(p, Offence::InvalidTx, t0 + Duration::from_secs(10 * i)));
        }
        assert!(s.points(&p, t0 + Duration::from_secs(1000)) <= 10);
        // Another network is banned at once.
        assert!(s.penalise(PeerId::random(), Offence::WrongNetwork, t0));
        // Two invalid blocks ban.
        let b = PeerId::random();
        assert!(!s.penalise(b, Offence::InvalidBlock, t0));
        assert!(s.penalise(b, Offence::InvalidBlock, t0));
    }
}
