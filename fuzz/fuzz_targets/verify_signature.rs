//! Any bytes as an Ed25519 check: key, signature, domain, chain id and payload through
//! `Address::verify` and `verify_strict_parallel` (never a panic, the two agree, a valid
//! signature is bound to its domain and chain id), then a signature made from the same
//! bytes as a seed verifies and with one bit flipped does not. The body is
//! `tb_primitives::fuzz_signature`, which the stable property tests run too
//! (crates/primitives/src/keys.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_primitives::fuzz_signature(data));
