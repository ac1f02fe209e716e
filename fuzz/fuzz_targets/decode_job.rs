//! Any bytes through `Job::decode`, `validate` and (when cheap) `execute`; the body is
//! `tb_job::fuzzing::decode_job`, which also runs on stable in `crates/job/tests/props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_job::fuzzing::decode_job(data));
