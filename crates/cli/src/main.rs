//! `tb-cli`: the command line of The Block: BlockTorch jobs offline, and a wallet and
//! operator's console for a node over its JSON-RPC.
//!
//! - `job build` writes an example job blob (`tb_job::examples`).
//! - `job inspect` decodes and validates a blob and prints its header, descriptor, op
//!   table with costs, and hashes.
//! - `job run` executes a blob on the CPU or CUDA fabric and prints the output digests,
//!   the trace root and, with a key seed, a signed compute receipt.
//! - `job referee` plays the challenger's side of the dispute game for one op.
//! - `key ...` keeps Ed25519 keys in a keys directory (`wallet`).
//! - `balance`, `tx`, `handle`, `mine`, `provider`, `governor` (`node_cmds`) and
//!   `compute` (`compute`) talk to a node (`rpc_client`): they read its state, and sign
//!   transactions locally and send them; a key never leaves this process.
//!
//! The binary is thin: decoding, validation, execution, the referee and receipts live
//! in `tb-job`, transactions in `tb-chain`. It must not panic on any input: every
//! failure is one line on stderr (`tb-cli: ...`) and a non-zero exit (2 for a malformed
//! command line).
#![forbid(unsafe_code)]

mod args;
mod compute;
mod events;
mod explore;
mod inspect;
mod job;
mod json;
mod model;
mod node_cmds;
mod publish;
mod referee;
mod results;
mod rpc_client;
mod run;
mod text;
mod verify;
mod wallet;

use std::io::Write as _;
use std::process::ExitCode;

/// Exit status of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a malformed command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `job referee` when the provider's leaf for the op is wrong, and of
/// `job verify` and `compute replay` when a provider's trace differs from the replay.
pub const EXIT_PROVIDER_WRONG: u8 = 3;

const USAGE: &str = "\
jobs (offline):
  tb-cli job build --example NAME -o FILE [--model-out MODEL]
  tb-cli job inspect FILE [--model MODEL] [--json]
  tb-cli job run FILE [--model MODEL] [--fabric cpu|cuda|wgpu] [--threads N] [--cross-fabric]
                      [--json] [--trace-out LEAVES] [--result-out OUT [--format F]]
                      [--receipt-key-seed HEX32 --chain-id N [--benchmark-commit S]]
  tb-cli job run --model MODEL --tokenizer T --text S [--text S]... [--seq-len L]
  tb-cli job build --model MODEL --tokenizer T --text S [--text S]... -o FILE
  tb-cli job referee FILE --op I [--trace LEAVES] [--json]
  tb-cli job verify FILE --trace LEAVES [--fabric cpu|cuda|wgpu] [--bundle-out BUNDLE] [--json]

keys (offline):
  tb-cli key generate NAME | import NAME --seed HEX64 | show NAME|FILE | list

a node (JSON-RPC):
  tb-cli balance ADDRESS|@handle|KEY
  tb-cli tx send --key K --to ADDRESS|@handle --amount TOKENS [--token consumer|industrial]
                 [--memo S]
  tb-cli tx status TXID
  tb-cli handle register @NAME --key K | resolve @NAME
  tb-cli mine start|stop
  tb-cli model import MODEL.onnx|DIR -o OUT [--dim NAME=N]... [--seq-len L] [--batch N]
  tb-cli model publish FILE --key K | info FILE
  tb-cli compute submit FILE --key K --max-price TOKENS [--redundancy N]
                        [--deadline-blocks N] [--by-reference] [--model MODEL]
                        [--force] [--dry-run] [--wait [-o OUT] [--format F]]
  tb-cli compute result TASK [-o OUT] [--format safetensors|npy|json]
  tb-cli compute status|receipts|replay TASK
  tb-cli compute stats
  tb-cli provider register|stake|unstake|status ...
  tb-cli governor status | intents | propose --key K ... | vote --key K ...
  tb-cli chain info | block HEIGHT|ID | tx TXID
  tb-cli jobs list [--state STATE] [--limit N]
  tb-cli payouts EPOCH | slashes [--provider P] | providers
  tb-cli net info
  tb-cli events [--event NAME]... [--count N] [--for SECS]   (WebSocket)
  tb-cli --version

Run `tb-cli COMMAND --help` (or `tb-cli COMMAND SUBCOMMAND --help`) for options.
Amounts are tokens with up to six decimals (1 token = 1000000 micro-tokens).

exit status: 0 success, 1 failure, 2 malformed command line,
             3 `job referee`, `job verify` or `compute replay` found a provider wrong";

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

/// The options given before the command.
#[derive(Debug, Default)]
pub struct Global {
    /// `--rpc URL`.
    pub rpc: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `--keys-dir DIR`.
    pub keys_dir: Option<String>,
    /// `--admin-token FILE`.
    pub admin_token: Option<String>,
}

/// The options before the command, declared for clap.
fn global_args() -> [clap::Arg; 4] {
    use clap::{Arg, ArgAction};
    [
        Arg::new("rpc").long("rpc").value_name("URL").help(
            "The node's JSON-RPC, http:// or ws:// [default: TB_RPC, else http://127.0.0.1:3030]",
        ),
        Arg::new("json")
            .long("json")
            .action(ArgAction::SetTrue)
            .help("Print JSON instead of text"),
        Arg::new("keys-dir")
            .long("keys-dir")
            .value_name("DIR")
            .help("The keys directory [default: TB_KEYS_DIR, else ~/.the-block/keys]"),
        Arg::new("admin-token")
            .long("admin-token")
            .value_name("FILE")
            .help("The node's admin token file, for `mine` [default: TB_ADMIN_TOKEN_FILE]"),
    ]
}

/// The version line and the long version: crate version, git commit (when the build
/// knew it) and the BlockTorch runtime version stamp.
fn long_version() -> String {
    format!(
        "{}\ncommit {}\nruntime {}",
        env!("CARGO_PKG_VERSION"),
        env!("TB_GIT_COMMIT"),
        blocktorch::RUNTIME_VERSION
    )
}

/// The command groups and what they are for.
const GROUPS: &[(&str, &str)] = &[
    (
        "job",
        "BlockTorch jobs, offline: build, inspect, run, referee, verify",
    ),
    ("key", "Ed25519 keys in the keys directory"),
    (
        "compute",
        "Submit jobs to a node and read their verified results",
    ),
    ("model", "Import, inspect and publish models"),
    ("tx", "Send transfers and follow transactions"),
    ("handle", "Register and resolve @handles"),
    (
        "provider",
        "A compute provider's registration, stake and status",
    ),
    (
        "governor",
        "Governance: status, intents, proposals and votes",
    ),
    ("chain", "The node's chain: info, a block, a transaction"),
    ("jobs", "The jobs on chain"),
    ("net", "The node's peer-to-peer network"),
];

/// The whole command tree (global options, every command with its options, and
/// `completions`), for `--help`, `--version` and completion scripts.
pub fn tree() -> clap::Command {
    let mut root = clap::Command::new("tb-cli")
        .version(env!("CARGO_PKG_VERSION"))
        .long_version(long_version())
        .about("BlockTorch jobs, keys, and a node's wallet and market over JSON-RPC")
        .override_usage("tb-cli [OPTIONS] COMMAND ...")
        .after_help(USAGE)
        .args(global_args())
        .subcommand(
            clap::Command::new("completions")
                .about("Print a shell completion script")
                .arg(
                    clap::Arg::new("shell")
                        .required(true)
                        .value_parser(clap::value_parser!(clap_complete::Shell)),
                ),
        );
    let groups: [&[&args::Spec]; 7] = [
        job::SPECS,
        wallet::SPECS,
        compute::SPECS,
        model::SPECS,
        node_cmds::SPECS,
        explore::SPECS,
        events::SPECS,
    ];
    // `mine` is ["", "mine"]; `compute submit` is ["compute", "submit"].
    let words = |spec: &args::Spec| {
        let mut w: Vec<&str> = spec.command.split(' ').collect();
        if w.len() == 1 {
            w.insert(0, "");
        }
        w
    };
    for spec in groups.into_iter().flatten() {
        let w = words(spec);
        let leaf = spec.command();
        match w.as_slice() {
            ["", _] if root.find_subcommand(spec.name()).is_none() => {
                root = root.subcommand(leaf);
            }
            ["", _] => {}
            [group, _] => {
                let group = group.to_string();
                if root.find_subcommand(&group).is_none() {
                    let about = GROUPS
                        .iter()
                        .find(|(g, _)| *g == group)
                        .map_or("", |(_, a)| *a);
                    root = root.subcommand(
                        clap::Command::new(group.clone())
                            .about(about)
                            .subcommand_required(true),
                    );
                }
                root = root.mut_subcommand(&group, |g| {
                    if g.find_subcommand(spec.name()).is_none() {
                        g.subcommand(leaf)
                    } else {
                        g
                    }
                });
            }
            _ => {}
        }
    }
    root
}

impl Global {
    /// Splits the global options off the front of `args` (clap); the rest starts with
    /// the command.
    fn parse(args: &[String]) -> Result<(Global, &[String]), CliError> {
        if matches!(
            args.first().map(String::as_str),
            Some("-h" | "--help" | "-V" | "--version")
        ) {
            return Ok((Global::default(), args));
        }
        let cmd = clap::Command::new("tb-cli")
            .no_binary_name(true)
            .disable_help_flag(true)
            .disable_version_flag(true)
            .allow_external_subcommands(true)
            .args(global_args());
        let m = cmd.try_get_matches_from(args).map_err(|e| {
            CliError::usage(format!("{} (try `tb-cli --help`)", args::clap_one_line(&e)))
        })?;
        // The command and its words are the tail of `args`.
        let rest = match m.subcommand() {
            Some((_, sub)) => {
                let n = sub
                    .get_many::<std::ffi::OsString>("")
                    .into_iter()
                    .flatten()
                    .count();
                &args[args.len() - n - 1..]
            }
            None => &args[args.len()..],
        };
        let g = Global {
            rpc: m.get_one::<String>("rpc").cloned(),
            json: m.get_flag("json"),
            keys_dir: m.get_one::<String>("keys-dir").cloned(),
            admin_token: m.get_one::<String>("admin-token").cloned(),
        };
        Ok((g, rest))
    }

    /// Whether JSON output was asked for, before the command or after it.
    pub fn json(&self, a: &args::Args) -> bool {
        self.json || a.flag("--json")
    }

    /// A client for the node: `--rpc`, else `TB_RPC`, else the default URL.
    pub fn client(&self) -> Result<rpc_client::Client, CliError> {
        let url = match &self.rpc {
            Some(u) => u.clone(),
            None => std::env::var("TB_RPC")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| rpc_client::RPC_URL_DEFAULT.to_string()),
        };
        let mut c = rpc_client::Client::new(&url)?;
        let file = self.admin_token.clone().or_else(|| {
            std::env::var("TB_ADMIN_TOKEN_FILE")
                .ok()
                .filter(|f| !f.is_empty())
        });
        if let Some(f) = file {
            let t = std::fs::read_to_string(&f)
                .map_err(|e| CliError::fail(format!("admin token {f}: {e}")))?;
            c.set_admin_token(t.trim());
        }
        Ok(c)
    }
}

/// Parses `args` with `spec` and runs `f`, or prints the command's help.
pub fn with_spec(
    g: &Global,
    spec: &args::Spec,
    args: &[String],
    f: fn(&Global, &args::Args) -> Result<Outcome, CliError>,
) -> Result<Outcome, CliError> {
    match spec.parse(args)? {
        args::Parsed::Help(h) => Ok(Outcome::ok(h)),
        args::Parsed::Run(a) => f(g, &a),
    }
}

fn dispatch(all: &[String]) -> Result<Outcome, CliError> {
    let (g, args) = Global::parse(all)?;
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            Ok(Outcome::ok(tree().render_long_help().to_string()))
        }
        Some("-V") => Ok(Outcome::ok(tree().render_version().to_string())),
        Some("--version") => Ok(Outcome::ok(tree().render_long_version().to_string())),
        Some("completions") => {
            let shell: clap_complete::Shell = args
                .get(1)
                .ok_or_else(|| {
                    CliError::usage(
                        "completions needs a shell: bash, zsh, fish, elvish or powershell",
                    )
                })?
                .parse()
                .map_err(|e| CliError::usage(format!("completions: {e}")))?;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut tree(), "tb-cli", &mut out);
            Ok(Outcome::ok(String::from_utf8_lossy(&out).into_owned()))
        }
        Some("job") => {
            let mut rest = args[1..].to_vec();
            if g.json && !rest.is_empty() {
                // `tb-cli --json job inspect F` is `tb-cli job inspect --json F`.
                rest.insert(1, "--json".into());
            }
            job::dispatch(&rest)
        }
        Some("key") => wallet::dispatch(&g, &args[1..]),
        Some("compute") => compute::dispatch(&g, &args[1..]),
        Some("model") => model::dispatch(&g, &args[1..]),
        Some(cmd @ ("balance" | "tx" | "handle" | "mine" | "provider" | "governor")) => {
            node_cmds::dispatch(&g, cmd, &args[1..])
        }
        Some("events") => events::dispatch(&g, &args[1..]),
        Some(cmd @ ("chain" | "jobs" | "net" | "payouts" | "slashes" | "providers")) => {
            explore::dispatch(&g, cmd, &args[1..])
        }
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
    // Before any thread starts: see the function's documentation.
    blocktorch_wgpu::quiet_device_select_layer();
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
