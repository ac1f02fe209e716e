//! The simulated network: messages between nodes delivered at simulated times, each
//! one delayed, dropped or duplicated as the seed draws (delays reorder them), and
//! partitions that cut the nodes into two sides until they heal.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use tb_chain::{Block, SignedTx};
use tb_primitives::Id;

/// What nodes say to each other: gossip, the tip they are on, and block requests.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A block, gossiped or answering [`Msg::GetBlock`].
    Block(Arc<Block>),
    /// A transaction, gossiped.
    Tx(Arc<SignedTx>),
    /// The sender's tip and its total work, sent every simulated second.
    Status { tip: Id, work: u128 },
    /// Asks for the block with this id and its nearest ancestors.
    GetBlock(Id),
    /// The answer to [`Msg::GetBlock`]: the block asked for and up to
    /// `SYNC_BATCH - 1` of its ancestors, oldest first (as `tb-net`'s sync serves
    /// ranges).
    Blocks(Vec<Arc<Block>>),
}

/// How the network misbehaves.
#[derive(Clone, Debug)]
pub struct NetFaults {
    /// Delay of a message, uniform in this range (ms).
    pub delay_ms: (u64, u64),
    /// Chance a message is lost.
    pub drop: f64,
    /// Chance a message is delivered twice (the copy with its own delay).
    pub duplicate: f64,
}

impl NetFaults {
    /// A network that only delays, a little.
    pub fn calm() -> NetFaults {
        NetFaults {
            delay_ms: (5, 60),
            drop: 0.0,
            duplicate: 0.0,
        }
    }
}

/// Messages in flight, in delivery order (time, then send order).
#[derive(Debug, Default)]
pub struct Network {
    queue: BTreeMap<(u64, u64), (usize, usize, Msg)>,
    seq: u64,
    /// The side of each node while a partition lasts; nodes on different sides
    /// cannot reach each other.
    sides: Option<Vec<bool>>,
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub cut: u64,
}

impl Network {
    pub fn new() -> Network {
        Network::default()
    }

    /// Whether `a` and `b` can reach each other now. A sender that is not a node (the
    /// byzantine peer) reaches every side.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.sides
            .as_ref()
            .is_none_or(|s| a >= s.len() || b >= s.len() || s[a] == s[b])
    }

    /// Cuts the network in two (`side[i]`: node i's side).
    pub fn partition(&mut self, side: Vec<bool>) {
        self.sides = Some(side);
    }

    pub fn heal(&mut self) {
        self.sides = None;
    }

    pub fn partitioned(&self) -> bool {
        self.sides.is_some()
    }

    /// Sends `msg` from `from` to `to` at `now`, under `faults`.
    pub fn send(
        &mut self,
        rng: &mut ChaCha8Rng,
        faults: &NetFaults,
        now: u64,
        from: usize,
        to: usize,
        msg: Msg,
    ) {
        self.send_within(rng, faults, faults.delay_ms, now, from, to, msg)
    }

    /// [`Network::send`] with the delay drawn from `delay_ms` (a racing sender's).
    #[allow(clippy::too_many_arguments)]
    pub fn send_within(
        &mut self,
        rng: &mut ChaCha8Rng,
        faults: &NetFaults,
        delay_ms: (u64, u64),
        now: u64,
        from: usize,
        to: usize,
        msg: Msg,
    ) {
        self.sent += 1;
        if !self.connected(from, to) {
            self.cut += 1;
            return;
        }
        if rng.gen_bool(faults.drop) {
            self.dropped += 1;
            return;
        }
        let copies = if rng.gen_bool(faults.duplicate) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + rng.gen_range(delay_ms.0..=delay_ms.1);
            self.seq += 1;
            self.queue.insert((at, self.seq), (from, to, msg.clone()));
        }
    }

    /// The next message due at or before `now`: (from, to, msg). A message whose
    /// ends a partition separated while it was in flight is lost.
    pub fn next_due(&mut self, now: u64) -> Option<(usize, usize, Msg)> {
        loop {
            let (&k, _) = self.queue.first_key_value()?;
            if k.0 > now {
                return None;
            }
            let (from, to, msg) = self.queue.remove(&k)?;
            if self.connected(from, to) {
                return Some((from, to, msg));
            }
            self.cut += 1;
        }
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
