//! Device buffers enter BlockTorch's allocation profile like CPU storage. Its own test
//! binary: the profiler is process-global, so no other test may allocate meanwhile.

use blocktorch::profile::{tensor_profile_counters, tensor_profile_reset};
use blocktorch::{DType, Fabric, HostData, Prim, UnaryOp};
use blocktorch_cuda::{probe, CudaConfig, CudaFabric};

/// Says on the terminal that a test skipped and why. Written to stderr directly, not
/// through `println!`, so the test harness does not swallow it.
fn skip(test: &str, why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn fabric(test: &str) -> Option<CudaFabric> {
    if let Err(why) = probe() {
        skip(test, &format!("no usable CUDA GPU here ({why})"));
        return None;
    }
    match CudaFabric::new(CudaConfig::default()) {
        Ok(f) => Some(f),
        Err(e) => panic!("a CUDA device is present but the fabric failed to start: {e}"),
    }
}

#[test]
fn device_buffers_are_profiled() {
    let Some(f) = fabric("device_buffers_are_profiled") else {
        return;
    };
    tensor_profile_reset();
    let before = tensor_profile_counters();
    {
        let x = f
            .upload(&HostData::F32(vec![0.5; 1000]), &[10, 100])
            .expect("upload");
        let y = f.execute(&Prim::Unary(UnaryOp::Exp), &[&x]).expect("exp");
        let during = tensor_profile_counters();
        assert_eq!(during.allocs - before.allocs, 2);
        assert!(during.live_bytes >= before.live_bytes + 8000);
        assert_eq!(y.buffer().device(), "cuda:0");
        assert_eq!(y.dtype(), DType::F32);
    }
    let after = tensor_profile_counters();
    assert_eq!(after.frees - before.frees, 2);
    assert_eq!(after.live_bytes, before.live_bytes);
}
