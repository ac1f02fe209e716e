//! The Block's node, as a library: the `the-block` binary's commands and what the
//! integration tests and benchmarks drive directly.
#![forbid(unsafe_code)]

pub mod blobs;
pub mod build_info;
pub mod cli;
pub mod compute_demo;
pub mod config;
pub mod demo;
pub mod devnet_multi;
pub mod http;
pub mod json;
pub mod logging;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod p2p;
pub mod provider;
pub mod rpc;
pub mod run;
pub mod verifier;
