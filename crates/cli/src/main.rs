//! `tb-cli`: the command line of The Block for BlockTorch jobs.
//!
//! - `job build` writes an example job blob (`tb_job::examples`).
//! - `job inspect` decodes and validates a blob and prints its header, descriptor, op
//!   table with costs, and hashes.
//! - `job run` executes a blob on the CPU or CUDA fabric and prints the output digests,
//!   the trace root and, with a key seed, a signed compute receipt.
//! - `job referee` plays the challenger's side of the dispute game for one op.
//!
//! The binary is thin: decoding, validation, execution, the referee and receipts live
//! in `tb-job`. It must not panic on any input: every failure is one line on stderr
//! (`tb-cli: ...`) and a non-zero exit (2 for a malformed command line).
#![forbid(unsafe_code)]

mod args;
mod inspect;
mod job;
mod json;
mod referee;
mod run;
mod verify;

use std::io::Write as _;
use std::process::ExitCode;

/// Exit status of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a malformed command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `job referee` when the provider's leaf for the op is wrong, and of
/// `job verify` when the provider's trace differs from the replay.
pub const EXIT_PROVIDER_WRONG: u8 = 3;

const USAGE: &str = "\
tb-cli: build, inspect, run and referee BlockTorch jobs

usage:
  tb-cli job build --example NAME -o FILE
  tb-cli job inspect FILE [--json]
  tb-cli job run FILE [--fabric cpu|cuda] [--threads N] [--cross-fabric] [--json]
                      [--trace-out LEAVES]
                      [--receipt-key-seed HEX32 --chain-id N [--benchmark-commit S]]
  tb-cli job referee FILE --op I [--trace LEAVES] [--json]
  tb-cli job verify FILE --trace LEAVES [--fabric cpu|cuda] [--bundle-out BUNDLE] [--json]
  tb-cli --version

Run `tb-cli job COMMAND --help` for a command's options.

exit status: 0 success, 1 failure, 2 malformed command line,
             3 `job referee` or `job verify` found the provider wrong";

/// A failed command: one line for stderr and the exit status.
#[derive(Debug)]
pub struct CliError {
    /// Exit status.
    pub code: u8,
    /// What went wrong (printed after `tb-cli: `).
    pub message: String,
}

impl CliError {
    /// A malformed command line (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A failed command (exit 1).
    pub fn fail(message: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

/// What a command prints on success, and its exit status (0, or
/// [`EXIT_PROVIDER_WRONG`] for a referee verdict against the provider).
pub struct Outcome {
    /// Text for stdout.
    pub stdout: String,
    /// Exit status.
    pub code: u8,
}

impl Outcome {
    /// Success with `stdout`.
    pub fn ok(stdout: String) -> Outcome {
        Outcome { stdout, code: 0 }
    }
}

fn dispatch(args: &[String]) -> Result<Outcome, CliError> {
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => Ok(Outcome::ok(format!("{USAGE}\n"))),
        Some("-V") | Some("--version") => Ok(Outcome::ok(format!(
            "tb-cli {} (runtime {})\n",
            env!("CARGO_PKG_VERSION"),
            blocktorch::RUNTIME_VERSION
        ))),
        Some("job") => job::dispatch(&args[1..]),
        Some(other) => Err(CliError::usage(format!(
            "unknown command {other:?} (try `tb-cli --help`)"
        ))),
    }
}

/// Makes `message` one line: the contract is exactly one line on stderr.
fn one_line(message: &str) -> String {
    message
        .split(['\n', '\r'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn main() -> ExitCode {
    // A panic is a bug in this program or a library; it still gets one line, not a
    // backtrace, so that scripts reading stderr see the same shape of failure.
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "tb-cli: internal error{at}: {} (this is a bug; please report it)",
            one_line(&payload)
        );
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|()| stdout.flush())
            {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("tb-cli: cannot write to stdout: {e}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
            ExitCode::from(out.code)
        }
        Err(e) => {
            eprintln!("tb-cli: {}", one_line(&e.message));
            ExitCode::from(e.code)
        }
    }
}
