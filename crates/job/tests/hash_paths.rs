//! The executor's two ways of computing trace leaves — in the background on the
//! fabric's own workers (a fabric that `hashes_on_its_workers`, the CPU:
//! `Fabric::trace_leaf_deferred`) and on a hashing thread beside the ops (every other
//! fabric) — give the same leaves, trace root and outputs, on every thread count.

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
fn leaves_hashed_on_the_workers_and_beside_the_ops_agree() {
    let opts = ExecOptions {
        replay: ReplayMode::CrossFabric,
        profile: false,
    };
    let mut jobs: Vec<_> = EXAMPLES.iter().map(|n| build_example(n).unwrap()).collect();
    // Outputs above the inline size (64 KiB), so the hashing thread takes them, and
    // above the size the CPU cuts into pieces (64 KiB of stream).
    jobs.push(transformer_job(2, 64, 128, 4, 256).unwrap());
    // Leaves of 1 MiB and more in all than DEFERRED_HASH_BYTES_MAX, so the executor
    // waits for older leaves while newer ones are hashed.
    let big = transformer_job(2, 128, 256, 4, 2048).unwrap();
    let plan = tb_job::validate(&big).unwrap();
    let kinds = tb_job::leaves::TracePlan::of(&big.program, &plan).kinds;
    let nc = big.program.consts.len();
    let content: Vec<usize> = (0..kinds.len())
        .filter(|i| kinds[*i] == tb_job::leaves::LeafKind::Content)
        .map(|i| plan.values[nc + i].layout.numel() * 4)
        .collect();
    assert!(content.iter().sum::<usize>() > tb_job::exec::DEFERRED_HASH_BYTES_MAX);
    assert!(content.iter().any(|b| *b >= 1 << 20));
    jobs.push(big);
    let mut reference = None;
    for threads in [1, 2, 7] {
        let cpu = CpuFabric::new(blocktorch::CpuConfig::new(
            blocktorch::cpu::gemm::Simd::detect(),
            threads,
        ))
        .unwrap();
        assert!(cpu.hashes_on_its_workers());
        let beside = Beside(cpu.clone());
        assert!(!beside.hashes_on_its_workers());
        let runs: Vec<_> = jobs
            .iter()
            .map(|job| {
                let a = execute(job, &cpu, opts).unwrap();
                let b = execute(job, &beside, opts).unwrap();
                assert_eq!(a.op_digests, b.op_digests, "{threads} threads");
                assert_eq!(a.trace_root, b.trace_root);
                assert_eq!(a.output_digest, b.output_digest);
                assert_eq!(a.outputs, b.outputs);
                (a.op_digests, a.trace_root)
            })
            .collect();
        match &reference {
            None => reference = Some(runs),
            Some(r) => assert_eq!(r, &runs, "{threads} threads against 1"),
        }
    }
}
