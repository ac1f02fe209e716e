//! Any bytes through `ResultObject::decode` and the streaming `ResultScanner` (which
//! must agree); the body is `tb_job::fuzzing::decode_result`, which also runs on
//! stable in `crates/job/tests/result.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_job::fuzzing::decode_result(data));
