//! The committed golden digests (`blocktorch::golden`) hold in every CPU configuration.
//!
//! To print the current digests: `GOLDEN_PRINT=1 cargo test -p blocktorch --test golden -- --nocapture`.

use blocktorch::cpu::gemm::Simd;
use blocktorch::golden::{check, digest, CASES};
use blocktorch::{CpuConfig, CpuFabric, RUNTIME_VERSION};

#[test]
fn golden_digests_hold_in_every_configuration() {
    let reference = CpuFabric::reference();
    if std::env::var_os("GOLDEN_PRINT").is_some() {
        println!("runtime {RUNTIME_VERSION}");
        for case in &CASES {
            println!("{:40} {}", case.0, digest(&reference, case).unwrap());
        }
    }
    let mut configs = vec![CpuConfig::reference(), CpuConfig::new(Simd::Scalar, 3)];
    if Simd::Avx2Fma.available() {
        configs.extend([
            CpuConfig::new(Simd::Avx2Fma, 1),
            CpuConfig::new(Simd::Avx2Fma, 2),
            CpuConfig {
                mc: 13,
                kc: 11,
                nc: 40,
                ..CpuConfig::new(Simd::Avx2Fma, 5)
            },
        ]);
    } else {
        println!("SKIPPED the AVX2/FMA configurations: this CPU lacks AVX2 or FMA");
    }
    for config in configs {
        let fabric = CpuFabric::new(config).unwrap();
        if let Err(e) = check(&fabric) {
            panic!("{e} under {config:?}");
        }
    }
}
