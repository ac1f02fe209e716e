//! `the-block`: the node binary. In this release it has one command, `demo`, which
//! runs the chain kernel end to end on the embedded devnet defaults, then the compute
//! loop (submit, execute, receipt, verify, settle and slash).
#![forbid(unsafe_code)]

mod compute_demo;
mod demo;

const USAGE: &str = "usage: the-block demo [--keep <dir>]\n\n  demo   run the chain kernel end to end in a temporary directory and exit 0";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("demo") => match demo::run(&args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("the-block demo failed: {e}");
                1
            }
        },
        Some("-h") | Some("--help") | None => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("the-block: unknown command {other:?}\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
