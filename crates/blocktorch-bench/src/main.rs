//! `blocktorch-bench`: benchmarks of BlockTorch's CPU kernels.
//!
//! Usage: `blocktorch-bench <SUBCOMMAND> [OPTIONS]`. Each subcommand lives in
//! its own module; add new ones (elementwise, reduce, softmax, ...) to the
//! `match` in [`main`] and to [`USAGE`].
#![deny(unsafe_code)]

mod leaf;
mod openblas;
mod ops;
mod sgemm;

use std::process::ExitCode;

/// The value after flag `name` in `it`, parsed: a clear error if it is missing or
/// does not parse (the subcommands' shared argument rule).
fn flag_value<'a, T: std::str::FromStr>(
    it: &mut impl Iterator<Item = &'a String>,
    name: &str,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    it.next()
        .ok_or(format!("{name} needs a value"))?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

/// Top-level help.
const USAGE: &str = "\
usage: blocktorch-bench <SUBCOMMAND> [OPTIONS]

subcommands:
  sgemm   matrix multiply, ours vs OpenBLAS (run `blocktorch-bench sgemm --help`)
  ops     elementwise and reduction GB/s vs copy bandwidth; softmax, layer-norm,
          attention rows/s  [--threads T] [--runs R] [--elements N] [--scalar] [--json]
  leaf    the trace leaf's hashing rate by tensor size: along BLAKE3's tree vs the
          stream as it lies in memory, and on the fabric's workers  [--threads T] [--runs R]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "sgemm" => sgemm::main(rest),
        "ops" => ops::run(rest),
        "leaf" => leaf::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown subcommand `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
