//! Any bytes as an ONNX file through `tb_models::onnx::import` (prost's decoder, the
//! opset and input checks, the lowering of every node): never a panic, and an import
//! that succeeds validates. The body is `tb_models::fuzzing::import_onnx`, which also
//! runs on stable in `crates/models/tests/readers.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tb_models::fuzzing::import_onnx(data));
