//! What this binary is: crate version, git commit, BlockTorch runtime version stamp and
//! the CPU fabric's kernel variant digest. `--version`, the `tb_build_info` metric and
//! the `benchmark_commit` of the node's receipts all read it from here.

use blocktorch::Fabric;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (12 hex digits), or `unknown` (see
/// `build.rs`).
pub const GIT_COMMIT: &str = env!("TB_GIT_COMMIT");
/// The BlockTorch runtime version stamp.
pub const RUNTIME_VERSION: &str = blocktorch::RUNTIME_VERSION;

/// The CPU fabric's kernel variant digest, hex.
pub fn cpu_kernel_digest() -> String {
    hex::encode(blocktorch::cpu::default_fabric().kernel_variant_digest())
}

/// The `benchmark_commit` the node's receipts carry: `the-block VERSION (COMMIT)`.
pub fn benchmark_commit() -> String {
    format!("the-block {VERSION} ({GIT_COMMIT})")
}

/// The long `--version` text.
pub fn long_version() -> String {
    format!(
        "{VERSION}\ncommit {GIT_COMMIT}\nruntime {RUNTIME_VERSION}\nkernel variant digest (cpu) {}",
        cpu_kernel_digest()
    )
}
