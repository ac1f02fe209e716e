//! BlockTorch: the deterministic tensor runtime of The Block.
//!
//! Every result is bit-identical on every fabric, thread count, SIMD path and tile size,
//! so a job's output and its per-op trace can be replayed and refereed exactly.
//!
//! - [`Tensor`] (f32, u8, i32, u32; rank 0..=[`RANK_MAX`]) is a [`Layout`] over
//!   reference-counted [`Storage`]; views copy nothing. It records an autograd graph.
//! - [`ops::Prim`] is the closed primitive set a [`Fabric`] implements; everything else
//!   (softmax, layer-norm, attention, …) is composed from it once, in [`compose`].
//! - [`math`] holds the crate's own transcendentals (only +, ×, fma, ÷, √ and bit
//!   operations); kernels never call libm.
//! - [`cpu::CpuFabric`] is the reference fabric (scalar or AVX2/FMA, multi-threaded);
//!   [`conformance`] proves any fabric bit-identical to it op by op, and [`programs`]
//!   over seeded random chains of ops.
//! - [`profile`] records every storage allocation and free.
//!
//! The exact semantics are specified in `docs/spec/blocktorch-semantics.md` and
//! `docs/spec/blocktorch-math.md`. This crate does no IO except the opt-in profile log.
#![deny(unsafe_code)]

mod autograd;
pub mod compose;
pub mod conformance;
pub mod cpu;
pub mod digest;
pub mod dtype;
pub mod error;
pub mod fabric;
pub mod golden;
pub mod layout;
mod leaf_tree;
pub mod math;
pub mod ops;
pub mod profile;
pub mod programs;
pub mod rng;
pub mod scalar;
pub mod storage;
pub mod tensor;

pub use compose::AttentionOptions;
pub use cpu::{CpuConfig, CpuFabric};
pub use digest::{output_digest_sha256, trace_leaf};
pub use dtype::DType;
pub use error::{Result, TensorError};
pub use fabric::{kernel_variant_digest, Fabric, FabricTensor, PendingLeaf};
pub use layout::Layout;
pub use ops::{BinaryOp, CompareOp, Prim, ReduceOp, UnaryOp};
pub use profile::{
    tensor_profile_clear_log, tensor_profile_counters, tensor_profile_epoch, tensor_profile_reset,
    tensor_profile_set_log, ProfileCounters,
};
pub use scalar::{canonical_f32_bits, CANONICAL_NAN_BITS};
pub use storage::{HostData, Storage};
pub use tensor::Tensor;

/// The runtime version stamp. It enters every `kernel_variant_digest`; bump it whenever a
/// change alters any result bit or the trace's definition (and say so in the commit).
/// 0.2.0: trace v1 (BLAKE3 content leaves, declared outputs' leaves their SHA-256
/// digest, ops their one reader recomputes a fixed leaf; `docs/spec/job-format-v0.md`
/// §10).
pub const RUNTIME_VERSION: &str = "blocktorch-0.2.0+sem1";

/// Largest tensor rank. Rank 9 and above is refused with [`TensorError::RankTooLarge`].
pub const RANK_MAX: usize = 8;

/// Largest element count of one tensor (2³¹ − 1: indices fit in i32).
pub const ELEMENTS_MAX: usize = (1 << 31) - 1;
