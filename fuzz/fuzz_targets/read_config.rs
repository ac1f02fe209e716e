//! Any bytes as the node's TOML configuration file: parsed, checked, written back;
//! never a panic, and a checked configuration reads back the same. The body is
//! `the_block::fuzzing::read_config`, which the node's property tests run too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| the_block::fuzzing::read_config(data));
