//! The CUDA C sources, how NVRTC compiles them, and the kernel variant digest they
//! define.

use super::*;

/// The CUDA C sources, in the order they are concatenated into one NVRTC program.
pub const KERNEL_FILES: [(&str, &str); 5] = [
    ("kernels/math.cuh", include_str!("../kernels/math.cuh")),
    (
        "kernels/elementwise.cu",
        include_str!("../kernels/elementwise.cu"),
    ),
    ("kernels/reduce.cu", include_str!("../kernels/reduce.cu")),
    ("kernels/index.cu", include_str!("../kernels/index.cu")),
    ("kernels/matmul.cu", include_str!("../kernels/matmul.cu")),
];

/// NVRTC options besides the architecture: no fma contraction, no flush-to-zero, IEEE
/// division and square root. Part of the kernel variant digest.
pub const NVRTC_OPTIONS: [&str; 4] = [
    "--fmad=false",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
];

/// The whole NVRTC program: the kernel files concatenated in order.
pub fn program_source() -> String {
    blocktorch::fabric::concat_sources(&KERNEL_FILES)
}

/// The kernel variant digest of the CUDA fabric: its CUDA sources, its host code, the
/// NVRTC options and the shared BlockTorch semantics sources (everything the CPU
/// fabric's digest covers except the CPU kernels), with the runtime version stamp.
pub fn cuda_kernel_variant_digest() -> [u8; 32] {
    let options = NVRTC_OPTIONS.join(" ");
    let mut sources: Vec<(&str, &str)> = KERNEL_FILES.to_vec();
    sources.push(("blocktorch-cuda/lib.rs", include_str!("lib.rs")));
    sources.push(("nvrtc-options", &options));
    sources.extend(
        SHARED_SOURCES
            .iter()
            .filter(|(name, _)| !name.starts_with("cpu/"))
            .copied(),
    );
    kernel_variant_digest(&sources, RUNTIME_VERSION)
}

/// Compiles the kernels with NVRTC for compute capability `major.minor` (needs only the
/// NVRTC library, no device). Errors carry NVRTC's log.
pub fn compile_kernels(major: i32, minor: i32) -> Result<cudarc::nvrtc::Ptx> {
    if !nvrtc_available() {
        return Err(fabric_err(
            "the NVRTC library (libnvrtc.so) is not installed",
        ));
    }
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture=compute_{major}{minor}"));
    let opts = CompileOptions {
        options,
        name: Some("blocktorch.cu".into()),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(program_source(), opts).map_err(|e| driver_err("NVRTC compilation", e))
}

pub(crate) fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Neg => (0, 0.0),
        UnaryOp::Abs => (1, 0.0),
        UnaryOp::Exp => (2, 0.0),
        UnaryOp::Log => (3, 0.0),
        UnaryOp::Sqrt => (4, 0.0),
        UnaryOp::Rsqrt => (5, 0.0),
        UnaryOp::Recip => (6, 0.0),
        UnaryOp::Tanh => (7, 0.0),
        UnaryOp::Sigmoid => (8, 0.0),
        UnaryOp::Relu => (9, 0.0),
        UnaryOp::GeluTanh => (10, 0.0),
        UnaryOp::GeluErf => (11, 0.0),
        UnaryOp::Erf => (12, 0.0),
        UnaryOp::Sign => (13, 0.0),
        UnaryOp::PowScalar(p) => (14, p),
    }
}
