//! Any bytes through every decoder of the peer-to-peer wire (sync and blob frames,
//! gossiped transactions and blocks): never a panic, accepted bytes are canonical.
//! The body is `tb_net::fuzzing::decode_p2p`, which the stable property test in
//! `crates/net/src/wire.rs` runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_net::fuzzing::decode_p2p(data));
