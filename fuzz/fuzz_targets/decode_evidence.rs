//! Any bytes through `EvidenceBundle::decode` and `decode_trace`; the body is
//! `tb_job::fuzzing::decode_evidence`, which also runs on stable in
//! `crates/job/tests/verify.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_job::fuzzing::decode_evidence(data));
