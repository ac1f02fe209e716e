//! `the-block`: the node binary (`run`, `devnet`, `demo`, `completions`; see
//! `the-block --help`).
#![forbid(unsafe_code)]

use clap::FromArgMatches;
use the_block::cli::{Cli, Command};
use the_block::cmd::{demo, devnet, run};

fn main() {
    // Before any thread starts: see the function's documentation.
    blocktorch_wgpu::quiet_device_select_layer();
    let matches = Cli::command_full().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = the_block::logging::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("the-block: {e}");
        std::process::exit(2);
    }
    let json = cli.log_format == the_block::cli::LogFormat::Json;
    let (name, result) = match cli.command {
        Command::Run(a) => ("run", run::run_cmd(&a)),
        Command::Devnet(a) => ("devnet", devnet::devnet_cmd(&a)),
        Command::Demo(a) => ("demo", demo::run(a.keep)),
        Command::Completions { shell } => {
            the_block::cli::completions(shell);
            return;
        }
    };
    if let Err(e) = result {
        // One line on stderr: JSON like every other line when asked for, else text.
        if json {
            tracing::error!(command = name, "{e}");
        } else {
            eprintln!("the-block {name}: {e}");
        }
        std::process::exit(1);
    }
}
