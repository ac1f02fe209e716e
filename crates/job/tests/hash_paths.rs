//! The executor's two ways of computing trace leaves — on the thread that runs the ops
//! (a fabric that `hashes_on_its_workers`, the CPU) and on a hashing thread beside them
//! (every other fabric) — give the same leaves, trace root and outputs.

use blocktorch::fabric::Fabric;
use blocktorch::{CpuFabric, FabricTensor, HostData, Prim, Result};
use tb_job::examples::{build_example, transformer_job, EXAMPLES};
use tb_job::{execute, ExecOptions, ReplayMode};

/// The CPU fabric, but asking for the hashing thread (as a device fabric does).
struct Beside(CpuFabric);

impl Fabric for Beside {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn device_description(&self) -> String {
        format!(
            "{} (leaves hashed beside the ops)",
            self.0.device_description()
        )
    }
    fn kernel_variant_digest(&self) -> [u8; 32] {
        self.0.kernel_variant_digest()
    }
    fn upload(&self, data: &HostData, shape: &[usize]) -> Result<FabricTensor> {
        self.0.upload(data, shape)
    }
    fn download(&self, tensor: &FabricTensor) -> Result<HostData> {
        self.0.download(tensor)
    }
    fn execute(&self, prim: &Prim, inputs: &[&FabricTensor]) -> Result<FabricTensor> {
        self.0.execute(prim, inputs)
    }
    fn trace_leaf(&self, tensor: &FabricTensor) -> Result<[u8; 32]> {
        self.0.trace_leaf(tensor)
    }
}

#[test]
fn leaves_hashed_inline_and_beside_the_ops_agree() {
    let cpu = CpuFabric::new(blocktorch::CpuConfig::new(
        blocktorch::cpu::gemm::Simd::detect(),
        2,
    ))
    .unwrap();
    assert!(cpu.hashes_on_its_workers());
    let beside = Beside(cpu.clone());
    assert!(!beside.hashes_on_its_workers());
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let mut jobs: Vec<_> = EXAMPLES.iter().map(|n| build_example(n).unwrap()).collect();
    // Outputs above the inline size (64 KiB), so the hashing thread takes them.
    jobs.push(transformer_job(2, 64, 128, 4, 256).unwrap());
    for job in &jobs {
        let a = execute(job, &cpu, opts).unwrap();
        let b = execute(job, &beside, opts).unwrap();
        assert_eq!(a.op_digests, b.op_digests);
        assert_eq!(a.trace_root, b.trace_root);
        assert_eq!(a.output_digest, b.output_digest);
        assert_eq!(a.outputs, b.outputs);
    }
}
