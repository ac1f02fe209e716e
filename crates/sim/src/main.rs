//! `tb-sim`: runs the seeded multi-node simulation for one seed or many.
#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;
use tb_sim::{run, SimConfig};

/// The seeded multi-node simulation: nodes, network, disks and market parties driven
/// by one seed, invariants checked throughout. A failing seed is printed and replays
/// exactly with `--seed`.
#[derive(Parser, Debug)]
#[command(name = "tb-sim", version)]
struct Args {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds to run, from `--seed` on.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: u64,
    /// Nodes in each run.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=16))]
    nodes: u64,
    /// Simulated seconds with jobs and faults.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    fault_secs: u64,
    /// Keep going after a failing seed.
    #[arg(long)]
    keep_going: bool,
    /// Trace (on stderr) the actors whose address starts with this `tb1…` prefix: their
    /// decisions, the transactions they send, the block templates that pick them.
    #[arg(long, value_name = "ADDRESS_PREFIX")]
    trace: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut failed = Vec::new();
    let t0 = std::time::Instant::now();
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let mut cfg = SimConfig::new(seed);
        cfg.nodes = args.nodes as usize;
        cfg.fault_secs = args.fault_secs;
        cfg.trace = args.trace.clone();
        match run(cfg) {
            Ok(report) => println!("ok   {report}"),
            Err(v) => {
                println!("FAIL {v}");
                failed.push(seed);
                if !args.keep_going {
                    break;
                }
            }
        }
    }
    println!(
        "{} seeds from {} in {:.1} s; failed: {:?}",
        args.seeds,
        args.seed,
        t0.elapsed().as_secs_f64(),
        failed
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
