//! Golden digests: fixed seeded cases whose `output_digest_sha256` is committed here.
//! Every fabric and every configuration of it must reproduce them bit for bit: the CPU
//! reference's configurations (`tests/golden.rs`) and the CUDA fabric
//! (`crates/blocktorch-cuda/tests/cuda.rs`). A change that alters any of them alters
//! results: bump `RUNTIME_VERSION` and say so.
//!
//! To print the current digests: `GOLDEN_PRINT=1 cargo test -p blocktorch --test golden -- --nocapture`.

use crate::compose::{self as c, AttentionOptions, FabricBackend};
use crate::digest::output_digest_sha256;
use crate::error::Result;
use crate::fabric::{Fabric, FabricTensor};
use crate::ops::{BinaryOp, UnaryOp};
use crate::rng::uniform_f32;
use crate::storage::HostData;

/// Causal self-attention at the default scale.
const CAUSAL: AttentionOptions = AttentionOptions {
    scale: None,
    causal: true,
};

fn input(f: &dyn Fabric, seed: u64, shape: &[usize], lo: f32, hi: f32) -> Result<FabricTensor> {
    f.upload(
        &HostData::F32(uniform_f32(seed, shape.iter().product(), lo, hi)),
        shape,
    )
}

/// Every f32 from −x to x in `n` steps (inputs for the transcendental sweeps).
fn ramp(f: &dyn Fabric, n: usize, x: f32) -> Result<FabricTensor> {
    let v: Vec<f32> = (0..n)
        .map(|i| -x + 2.0 * x * i as f32 / (n - 1) as f32)
        .collect();
    f.upload(&HostData::F32(v), &[n])
}

/// One golden case: its name, the computation, the committed digest (hex).
pub type Case = (
    &'static str,
    fn(&dyn Fabric) -> Result<FabricTensor>,
    &'static str,
);

/// The committed cases.
pub const CASES: [Case; 14] = [
    (
        "matmul 67x131x45",
        |f| {
            f.execute(
                &crate::ops::Prim::Matmul,
                &[
                    &input(f, 1, &[67, 131], -1.0, 1.0)?,
                    &input(f, 2, &[131, 45], -1.0, 1.0)?,
                ],
            )
        },
        "30e5a68dba4702c9d076702b298f97c9ee421eb788e6654ec5aae00e94e3bacd",
    ),
    (
        "matmul batched broadcast 3x17x300x9",
        |f| {
            f.execute(
                &crate::ops::Prim::Matmul,
                &[
                    &input(f, 3, &[3, 17, 300], -2.0, 2.0)?,
                    &input(f, 4, &[1, 300, 9], -2.0, 2.0)?,
                ],
            )
        },
        "e341dc84a89268f5c7a2b1065366a88423908bc40c57a17ba7b642a6b195db24",
    ),
    (
        "sum 100003",
        |f| {
            c::sum(
                &FabricBackend(f),
                &input(f, 5, &[100_003], -1.0, 1.0)?,
                &[],
                false,
            )
        },
        "a611d50221070abe78c2997b8f0ecb380f86038e1c523172b86eb78d2107e2ce",
    ),
    (
        "sum axis0 37x129",
        |f| {
            c::sum(
                &FabricBackend(f),
                &input(f, 6, &[37, 129], -1.0, 1.0)?,
                &[0],
                false,
            )
        },
        "4598c76e2091c521b673dcf7abb8622aa90b77ad017a166ad5c40562c65e4950",
    ),
    (
        "exp ramp",
        |f| c::unary(&FabricBackend(f), UnaryOp::Exp, &ramp(f, 40_001, 100.0)?),
        "e8fc0334a6522d0c530978f059fb80e2361993002cbc7a3acfb384b02a34f620",
    ),
    (
        "log ramp",
        |f| {
            c::unary(
                &FabricBackend(f),
                UnaryOp::Log,
                &c::unary(&FabricBackend(f), UnaryOp::Exp, &ramp(f, 40_001, 90.0)?)?,
            )
        },
        "2809632000ab1606ff662a43265de8a4d80967f8c20228d526c0dfd13f18604c",
    ),
    (
        "tanh ramp",
        |f| c::unary(&FabricBackend(f), UnaryOp::Tanh, &ramp(f, 40_001, 12.0)?),
        "05d3400084c756841472b00d33d53af1888604dc1091dcbe4b369617f654742d",
    ),
    (
        "erf ramp",
        |f| c::unary(&FabricBackend(f), UnaryOp::Erf, &ramp(f, 40_001, 6.0)?),
        "1dbe019ad499d362f44acab89f315e573cc017f2e2a007a781e956678f8279a4",
    ),
    (
        "gelu_tanh ramp",
        |f| {
            c::unary(
                &FabricBackend(f),
                UnaryOp::GeluTanh,
                &ramp(f, 40_001, 12.0)?,
            )
        },
        "e795ad902a1d468eb559ce28eb21400904eb07fc27d92a80c0c551760c082f9b",
    ),
    (
        "gelu_erf ramp",
        |f| c::unary(&FabricBackend(f), UnaryOp::GeluErf, &ramp(f, 40_001, 12.0)?),
        "eafaf583ec2e545ff60b6185baaa571d24fa9886217ca07848c8a70a9ab30cf9",
    ),
    (
        "sigmoid ramp",
        |f| {
            c::unary(
                &FabricBackend(f),
                UnaryOp::Sigmoid,
                &ramp(f, 40_001, 110.0)?,
            )
        },
        "31fb655a9e12b6327a384e1f01879a17ef0d555d1f85eb053bddc55e3b2324de",
    ),
    (
        "softmax 33x250",
        |f| c::softmax(&FabricBackend(f), &input(f, 7, &[33, 250], -8.0, 8.0)?, -1),
        "4a967ed57ec661e9e171ad59e053d2bb46876ae5781b2dfa862da38c458ecfe3",
    ),
    (
        "layer_norm 19x768",
        |f| {
            let b = FabricBackend(f);
            let x = c::binary_scalar(
                &b,
                BinaryOp::Mul,
                &input(f, 8, &[19, 768], -3.0, 3.0)?,
                10.0,
            )?;
            c::layer_norm(
                &b,
                &x,
                1,
                Some(&input(f, 9, &[768], 0.5, 1.5)?),
                Some(&input(f, 10, &[768], -0.1, 0.1)?),
                1e-5,
            )
        },
        "d7599c3d7bc6f9b56e50409be647dc8e877115bb2bf8b6512468b29f2a45e181",
    ),
    (
        "attention causal 2x4x23x16",
        |f| {
            let b = FabricBackend(f);
            let (q, k, v) = (
                input(f, 11, &[2, 4, 23, 16], -1.0, 1.0)?,
                input(f, 12, &[2, 4, 23, 16], -1.0, 1.0)?,
                input(f, 13, &[2, 4, 23, 16], -1.0, 1.0)?,
            );
            c::attention(&b, &q, &k, &v, None, None, &CAUSAL)
        },
        "925003365ff50c558d4664cdc1f17fa61949b744822977cebf993a2d19f3e0f2",
    ),
];

/// The digest (hex) `fabric` gives for `case`.
pub fn digest(fabric: &dyn Fabric, case: &Case) -> Result<String> {
    let out = (case.1)(fabric)?;
    let host = fabric.download(&out)?;
    let d = output_digest_sha256(out.shape(), &host)?;
    Ok(d.iter().map(|x| format!("{x:02x}")).collect())
}

/// Runs every case on `fabric`; `Err` names the first case whose digest differs from
/// the committed one (or that failed).
pub fn check(fabric: &dyn Fabric) -> std::result::Result<usize, String> {
    for case in &CASES {
        let got = digest(fabric, case).map_err(|e| format!("{}: {e}", case.0))?;
        if got != case.2 {
            return Err(format!("{}: digest {got}, committed {}", case.0, case.2));
        }
    }
    Ok(CASES.len())
}
