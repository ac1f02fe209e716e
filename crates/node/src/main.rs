//! `the-block`: the node binary.
//!
//! - `run`: a node with its store, JSON-RPC (HTTP and WebSocket), Prometheus metrics and,
//!   as configured, the miner, provider and verifier workers.
//! - `devnet`: a single-node network on the devnet parameters with all three workers.
//! - `demo`: the chain kernel end to end, then the compute loop, in a temporary
//!   directory; exits 0.
#![forbid(unsafe_code)]

use the_block::{demo, run};

const USAGE: &str = "\
usage: the-block COMMAND [OPTIONS]

  run      run a node (see `the-block run --help`)
  devnet   a single-node devnet: mining, a CPU provider and a verifier
           (see `the-block devnet --help`)
  demo     run the chain kernel and the compute loop in a temporary directory; exits 0";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, result) = match args.first().map(String::as_str) {
        Some("demo") => ("demo", demo::run(&args[1..])),
        Some("run") => ("run", run::run_cmd(&args[1..])),
        Some("devnet") => ("devnet", run::devnet_cmd(&args[1..])),
        Some("-h") | Some("--help") | None => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => {
            eprintln!("the-block: unknown command {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("the-block {name}: {e}");
        std::process::exit(1);
    }
}
