//! The CPU fabric passes the conformance suite in every SIMD path, thread count and tile
//! configuration: bit-identical to the scalar single-thread reference.

#[path = "support/skewed.rs"]
mod skewed;

use blocktorch::conformance::{run_conformance, ConformanceConfig};
use blocktorch::cpu::gemm::Simd;
use blocktorch::{CpuConfig, CpuFabric};
use blocktorch::{Prim, UnaryOp};
use skewed::Skewed;

fn configs() -> Vec<CpuConfig> {
    let mut simds = vec![Simd::Scalar];
    if Simd::Avx2Fma.available() {
        simds.push(Simd::Avx2Fma);
    } else {
        println!("SKIPPED the AVX2/FMA configurations: this CPU lacks AVX2 or FMA");
    }
    let mut out = Vec::new();
    for simd in simds {
        for threads in [1, 2, 3, 7] {
            out.push(CpuConfig::new(simd, threads));
            // Odd, tiny tiles: results must not depend on blocking.
            out.push(CpuConfig {
                mc: 5,
                kc: 7,
                nc: 9,
                ..CpuConfig::new(simd, threads)
            });
        }
    }
    out
}

#[test]
fn cpu_fabric_conforms_in_every_configuration() {
    let cfg = ConformanceConfig::default();
    for config in configs() {
        let fabric = CpuFabric::new(config).expect("valid config");
        let report = run_conformance(&fabric, &cfg).unwrap_or_else(|e| panic!("{config:?}: {e}"));
        assert!(report.cases > 300, "suite ran only {} cases", report.cases);
        assert!(
            report.elements > 100_000,
            "suite compared only {} elements",
            report.elements
        );
    }
}

#[test]
fn suite_detects_a_fabric_that_differs() {
    // A fabric that is off by one ulp in one primitive must fail the suite.
    let skewed = Skewed::new(Prim::Unary(UnaryOp::Exp), |v| {
        for x in v.iter_mut().filter(|x| x.is_finite() && **x > 1.0) {
            *x = f32::from_bits(x.to_bits() + 1);
        }
    });
    let err = run_conformance(&skewed, &ConformanceConfig::default()).expect_err("must fail");
    assert!(err.case.contains("Exp"), "{err}");
}
