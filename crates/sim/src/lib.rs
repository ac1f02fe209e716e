//! A seeded multi-node simulation of The Block, in the style of TigerBeetle's VOPR.
//!
//! Several nodes run in one process, each a real [`tb_store::ChainDb`] (on a simulated
//! disk, [`disk::SimDisk`]) with a real [`tb_chain::mempool::Mempool`], mining, gossiping
//! blocks and transactions, and fetching what they miss, over a simulated network
//! ([`net::Network`]) and clock. One seed draws everything: message delays, drops,
//! duplicates (and so their order), partitions that come and heal, crashes at any
//! write of a block import or a flush (the disk then keeps what was synced and a
//! prefix of the rest), and the market's parties — honest, corrupting, lazy and
//! withholding providers, honest verifiers, lying challengers and challengers that
//! withhold their evidence — acting together.
//!
//! Checked as it runs ([`world::run`]): tokens conserved on every node after every
//! import; the market's running totals; no honest party slashed; every block a node
//! committed still there after its crash and its tip never behind what it reported.
//! Checked at the end, once the faults stop: the nodes agree on one chain; every cheat
//! on it was slashed for it; every lying challenge lost its bond; every verifier
//! challenge won. A broken invariant is a [`world::Violation`] naming the seed that
//! replays it exactly: `tb-sim --seed N`.
#![forbid(unsafe_code)]

pub mod actors;
pub mod disk;
pub mod net;
pub mod world;

pub use world::{run, Report, SimConfig, Violation};
