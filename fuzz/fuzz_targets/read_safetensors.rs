//! Any bytes as a safetensors file through `tb_models::weights::Weights` (the
//! `safetensors` crate's header parser, then every tensor read as f32): never a panic.
//! The body is `tb_models::fuzzing::read_safetensors`, which also runs on stable in
//! `crates/models/tests/readers.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_models::fuzzing::read_safetensors(data));
