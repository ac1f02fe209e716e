//! The same bits at 1, 2 and 7 threads: every composite (softmax, log-softmax,
//! layer-norm, attention, both GELUs, a batched matmul) on inputs large enough that the
//! parallel paths run (elementwise and reductions split from `PARALLEL_ELEMENTS_MIN`
//! elements, GEMM from 2^20 multiply-adds per thread, both on the persistent workers),
//! and a set of random programs, compared with the reference configuration.

use blocktorch::compose::{self as c, AttentionOptions, FabricBackend};
use blocktorch::cpu::gemm::Simd;
use blocktorch::digest::output_digest_sha256;
use blocktorch::fabric::{Fabric, FabricTensor};
use blocktorch::ops::{Prim, UnaryOp};
use blocktorch::programs::{run_random_programs, ProgramConfig};
use blocktorch::rng::uniform_f32;
use blocktorch::{CpuConfig, CpuFabric, HostData, Result};

fn input(f: &dyn Fabric, seed: u64, shape: &[usize], lo: f32, hi: f32) -> Result<FabricTensor> {
    f.upload(
        &HostData::F32(uniform_f32(seed, shape.iter().product(), lo, hi)),
        shape,
    )
}

type Case = (&'static str, fn(&dyn Fabric) -> Result<FabricTensor>);

const CASES: &[Case] = &[
    ("softmax 64x1024", |f| {
        c::softmax(&FabricBackend(f), &input(f, 1, &[64, 1024], -8.0, 8.0)?, -1)
    }),
    ("log_softmax 48x2048", |f| {
        c::log_softmax(&FabricBackend(f), &input(f, 2, &[48, 2048], -8.0, 8.0)?, -1)
    }),
    ("layer_norm 128x768", |f| {
        c::layer_norm(
            &FabricBackend(f),
            &input(f, 3, &[128, 768], -30.0, 30.0)?,
            1,
            Some(&input(f, 4, &[768], 0.5, 1.5)?),
            Some(&input(f, 5, &[768], -0.1, 0.1)?),
            1e-5,
        )
    }),
    ("attention causal 2x4x128x64", |f| {
        let shape = [2, 4, 128, 64];
        c::attention(
            &FabricBackend(f),
            &input(f, 6, &shape, -1.0, 1.0)?,
            &input(f, 7, &shape, -1.0, 1.0)?,
            &input(f, 8, &shape, -1.0, 1.0)?,
            None,
            None,
            &AttentionOptions {
                scale: None,
                causal: true,
            },
        )
    }),
    ("gelu_tanh 65536", |f| {
        c::unary(
            &FabricBackend(f),
            UnaryOp::GeluTanh,
            &input(f, 9, &[65536], -6.0, 6.0)?,
        )
    }),
    ("gelu_erf 65536", |f| {
        c::unary(
            &FabricBackend(f),
            UnaryOp::GeluErf,
            &input(f, 10, &[65536], -6.0, 6.0)?,
        )
    }),
    ("matmul batched 3x128x384x256", |f| {
        f.execute(
            &Prim::Matmul,
            &[
                &input(f, 11, &[3, 128, 384], -1.0, 1.0)?,
                &input(f, 12, &[3, 384, 256], -1.0, 1.0)?,
            ],
        )
    }),
];

fn digest(f: &dyn Fabric, case: &Case) -> [u8; 32] {
    let out = (case.1)(f).unwrap_or_else(|e| panic!("{}: {e}", case.0));
    let host = f.download(&out).unwrap();
    output_digest_sha256(out.shape(), &host).unwrap()
}

fn configs() -> Vec<CpuConfig> {
    let simd = Simd::detect();
    if simd == Simd::Scalar {
        println!("AVX2/FMA unavailable: the thread counts run on the scalar path");
    }
    [1, 2, 7].map(|t| CpuConfig::new(simd, t)).to_vec()
}

#[test]
fn every_composite_gives_the_same_bits_at_1_2_and_7_threads() {
    let reference = CpuFabric::reference();
    for case in CASES {
        let want = digest(&reference, case);
        for config in configs() {
            let f = CpuFabric::new(config).unwrap();
            assert_eq!(digest(&f, case), want, "{} under {config:?}", case.0);
        }
    }
}

#[test]
fn random_programs_give_the_same_bits_at_1_2_and_7_threads() {
    for config in configs() {
        let f = CpuFabric::new(config).unwrap();
        let cfg = ProgramConfig {
            seed: 0x7417_0007,
            count: 200,
            // The largest shapes the harness makes, so some steps split.
            dim_max: usize::MAX,
            ..ProgramConfig::default()
        };
        let report = run_random_programs(&f, &cfg).unwrap_or_else(|e| panic!("{config:?}: {e}"));
        assert_eq!(report.programs, 200, "{report:?}");
    }
}
