//! The node's build script (`crates/node/build.rs`), shared: it sets `TB_GIT_COMMIT`
//! for `tb-cli --version`.
include!("../node/build.rs");
