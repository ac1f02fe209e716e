//! The example jobs: they build, round-trip through the codec, validate and run with the
//! same digests on every CPU configuration.

use blocktorch::cpu::gemm::Simd;
use blocktorch::{CpuConfig, CpuFabric};
use tb_job::examples::{build_example, EXAMPLES};
use tb_job::{execute, validate, ExecOptions, Job};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn examples_run_identically_on_every_cpu_configuration() {
    for name in EXAMPLES {
        let job = build_example(name).unwrap();
        let blob = job.encode().unwrap();
        assert_eq!(Job::decode(&blob).unwrap(), job, "{name} round-trips");
        let plan = validate(&job).unwrap();
        let reference = execute(&job, &CpuFabric::reference(), ExecOptions::default()).unwrap();
        println!(
            "{name}: {} bytes, {} ops, {} flops, output {} trace {}",
            blob.len(),
            reference.n_ops,
            plan.total.flops,
            hex(&reference.output_digest),
            reference.trace_root.to_hex()
        );
        let mut configs = vec![CpuConfig::new(Simd::Scalar, 3)];
        if Simd::Avx2Fma.available() {
            configs.push(CpuConfig::new(Simd::Avx2Fma, 2));
        }
        for cfg in configs {
            let r = execute(&job, &CpuFabric::new(cfg).unwrap(), ExecOptions::default()).unwrap();
            assert_eq!(r.output_digest, reference.output_digest, "{name} {cfg:?}");
            assert_eq!(r.trace_root, reference.trace_root, "{name} {cfg:?}");
            assert_eq!(r.op_digests, reference.op_digests, "{name} {cfg:?}");
        }
    }
}
