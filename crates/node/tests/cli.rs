//! The `the-block` command line through the binary: `--version` names the build,
//! completions, the configuration's precedence (flag over variable over file), and
//! JSON log lines with the documented fields, refusal codes included.

mod support;

use serde_json::{json, Value};
use std::process::Command;

fn the_block() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_the-block"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TB_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// `the-block run --print-config ARGS` with `envs`: the effective configuration.
fn print_config(args: &[&str], envs: &[(&str, &str)]) -> toml::Table {
    let out = the_block()
        .args(["run", "--print-config"])
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

#[test]
fn version_names_the_build_and_completions_are_printed() {
    let out = the_block().arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("the-block {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    for needle in [
        "commit ",
        "runtime blocktorch-",
        "kernel variant digest (cpu) ",
    ] {
        assert!(v.contains(needle), "{needle}: {v}");
    }
    let digest = v.lines().last().unwrap().rsplit(' ').next().unwrap();
    assert_eq!(digest.len(), 64, "{v}");
    for shell in ["bash", "zsh", "fish"] {
        let out = the_block().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("the-block") && s.contains("devnet"), "{shell}");
    }
    // Every subcommand has help.
    for sub in ["run", "devnet", "demo", "completions"] {
        let out = the_block().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: the-block"));
    }
}

#[test]
fn a_flag_beats_its_variable_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("node.toml");
    std::fs::write(
        &f,
        "rpc_addr = \"127.0.0.1:4000\"\nstate_cache_mb = 9\n[miner]\nblock_interval_ms = 300\n[mempool]\nttl_secs = 60\n",
    )
    .unwrap();
    let fp = f.display().to_string();
    let cfg = |envs: &[(&str, &str)], args: &[&str]| {
        let mut all = vec!["--config", fp.as_str()];
        all.extend_from_slice(args);
        print_config(&all, envs)
    };
    let c = cfg(&[], &[]);
    assert_eq!(c["rpc_addr"].as_str(), Some("127.0.0.1:4000"));
    assert_eq!(c["miner"]["block_interval_ms"].as_integer(), Some(300));
    assert_eq!(c["mempool"]["ttl_secs"].as_integer(), Some(60));
    let env = [
        ("TB_RPC_ADDR", "127.0.0.1:5000"),
        ("TB_BLOCK_INTERVAL_MS", "400"),
        ("TB_MINE", "0"),
    ];
    let c = cfg(&env, &[]);
    assert_eq!(c["rpc_addr"].as_str(), Some("127.0.0.1:5000"));
    assert_eq!(c["miner"]["block_interval_ms"].as_integer(), Some(400));
    let c = cfg(
        &env,
        &["--block-interval-ms", "500", "--mempool-ttl-secs", "7"],
    );
    assert_eq!(c["rpc_addr"].as_str(), Some("127.0.0.1:5000"));
    assert_eq!(c["miner"]["block_interval_ms"].as_integer(), Some(500));
    assert_eq!(c["mempool"]["ttl_secs"].as_integer(), Some(7));
    assert_eq!(c["state_cache_mb"].as_integer(), Some(9));
    // A bad variable is clap's usage error (exit 2) naming it.
    let out = the_block()
        .args(["run", "--print-config"])
        .env("TB_MINE", "maybe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mine"));
}

#[test]
fn json_log_lines_parse_with_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::Node::start(
        "run",
        &dir.path().join("data"),
        &["--log-format", "json", "--no-p2p"],
        &[],
    );
    // A refused transaction logs its op, reason and code.
    let (k, tx_hex) = support::unfunded_transfer_hex(3);
    let e = node.call("submit_tx", json!([tx_hex])).unwrap_err();
    let code = e["data"]["code"].as_u64().unwrap();
    let lines: Vec<Value> = support::wait_for(10, "the refusal's log line", || {
        let text = node.log_text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        lines.iter().any(|l| l["op"] == "reject").then_some(lines)
    });
    for l in &lines {
        for f in ["timestamp", "level", "target", "message"] {
            assert!(l.get(f).is_some(), "{f} missing: {l}");
        }
    }
    let r = lines.iter().find(|l| l["op"] == "reject").unwrap();
    assert_eq!(r["code"].as_u64(), Some(code), "{r}");
    assert_eq!(r["reason"], e["data"]["reason"], "{r}");
    assert_eq!(r["sender"], k.address().to_string(), "{r}");
    assert!(lines.iter().any(|l| l["message"] == "node started"));
}

/// `etc/node.example.toml` is a valid configuration, equal to the defaults apart from
/// its data directory and metrics address.
#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/node.example.toml");
    let print = |args: &[&str]| print_config(args, &[]);
    let mut from_example = print(&["--config", example]);
    let defaults = print(&[]);
    assert_eq!(
        from_example.remove("data_dir").unwrap().as_str(),
        Some("/var/lib/the-block")
    );
    assert_eq!(
        from_example.remove("metrics_addr").unwrap().as_str(),
        Some("127.0.0.1:9898")
    );
    let mut defaults = defaults;
    defaults.remove("data_dir");
    assert_eq!(from_example, defaults);
}
