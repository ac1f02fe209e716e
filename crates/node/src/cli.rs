//! The `the-block` command line (clap): `run`, `devnet`, `demo`, `completions`, with
//! `--version` naming the build and the logging flags every command shares.

use crate::config::RunArgs;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Most nodes a local devnet starts (`devnet --nodes`).
pub const DEVNET_NODES_MAX: usize = 16;

/// The Block's node: a blockchain whose ledger pays for verified, deterministic tensor
/// compute.
#[derive(Parser, Debug)]
#[command(name = "the-block", version = crate::build_info::VERSION, propagate_version = true)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or RUST_LOG directives
    /// [default: RUST_LOG, else info]
    #[arg(long, global = true, env = "TB_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log lines as text or as one JSON object each
    #[arg(long, global = true, env = "TB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL target: message key=value…`
    Text,
    /// `{"timestamp", "level", "target", "message", …fields}`, one object per line
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node: its store, JSON-RPC, metrics and, as configured, the miner,
    /// provider and verifier
    Run(RunArgs),
    /// A local devnet: one node with every role, or `--nodes N` joined nodes
    Devnet(DevnetArgs),
    /// The chain kernel end to end, then the compute loop, in a temporary directory;
    /// exits 0
    Demo(DemoArgs),
    /// Print a shell completion script
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `devnet`: the devnet's parameters, dev keys funded by the miner, and every role on.
/// Defaults: data dir ./tb-devnet, RPC 127.0.0.1:3030, metrics 127.0.0.1:9898, p2p
/// /ip4/127.0.0.1/tcp/7171. The dev keys' seeds are written to DIR/dev-keys/NAME.key
/// for `tb-cli --key`.
#[derive(Args, Debug, Clone, Default)]
pub struct DevnetArgs {
    /// Start N nodes as child processes on loopback, joined over the peer-to-peer
    /// network (1..=16): node 0 mines and verifies, node N-1 runs the provider; node I
    /// keeps its data, config and log in DIR/node-I, serves RPC on the given port + I
    /// (metrics likewise) and bootnodes to the nodes before it; DIR/devnet.json lists
    /// them. A child that dies is restarted (at most 3 times) and reported.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=DEVNET_NODES_MAX as i64))]
    pub nodes: Option<u16>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DemoArgs {
    /// Keep the demo's data in DIR instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

impl Cli {
    /// The command with its long version: crate version, git commit, runtime version
    /// stamp and CPU kernel variant digest.
    pub fn command_full() -> clap::Command {
        Cli::command().long_version(crate::build_info::long_version())
    }
}

/// Writes the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = Cli::command_full();
    clap_complete::generate(shell, &mut cmd, "the-block", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command_full().debug_assert();
        let c =
            Cli::try_parse_from(["the-block", "devnet", "--nodes", "3", "--mine=false"]).unwrap();
        match c.command {
            Command::Devnet(d) => {
                assert_eq!(d.nodes, Some(3));
                assert_eq!(d.run.mine, Some(false));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["--nodes 0", "--nodes 17", "--nodes x"] {
            let mut a = vec!["the-block", "devnet"];
            a.extend(bad.split_whitespace());
            assert!(Cli::try_parse_from(a).is_err(), "{bad}");
        }
    }
}
