//! The Block's node, as a library: the `the-block` binary's commands and what the
//! integration tests and benchmarks drive directly.
#![forbid(unsafe_code)]

pub mod blobs;
pub mod build_info;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod explorer;
pub mod fuzzing;
pub mod http;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod rpc;
pub mod workers;
