//! One `the-block` process for the integration tests of the node and of tb-cli alike:
//! started in a directory on free ports, its bound addresses read from `node.json`, its
//! output in a log file, killed (SIGKILL) when dropped. The binary is a parameter: the
//! node's tests pass their own, tb-cli's the one beside theirs.
#![allow(dead_code)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Node {
    pub child: Child,
    pub dir: PathBuf,
    pub rpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub log: PathBuf,
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `secs` with `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Node {
    /// Starts `BIN COMMAND --data-dir DIR --rpc-addr 127.0.0.1:0 --p2p-listen
    /// /ip4/127.0.0.1/tcp/0 ARGS` (BIN: a `the-block` binary) with `envs`, and waits for
    /// its `node.json`.
    pub fn start_bin(
        bin: &Path,
        command: &str,
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Node {
        let _ = std::fs::remove_file(dir.join("node.json"));
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join(format!("node-{}.log", Instant::now().elapsed().as_nanos()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(command)
            .arg("--data-dir")
            .arg(dir)
            .args(["--rpc-addr", "127.0.0.1:0"])
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for k in [
            "TB_MINE",
            "TB_PROVIDER",
            "TB_VERIFIER",
            "TB_CONFIG",
            "TB_RPC_ADDR",
            "TB_P2P_LISTEN",
            "TB_BOOTNODES",
            "TB_NET_KEY_PATH",
            "TB_NO_P2P",
            "TB_BLOCKTORCH_THREADS",
            "TB_BLOCKTORCH_SIMD",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the-block starts");
        let info: Value = wait_for(60, "node.json", || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "the-block exited early ({st}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let s = std::fs::read_to_string(dir.join("node.json")).ok()?;
            serde_json::from_str(&s).ok()
        });
        Node {
            child,
            dir: dir.to_path_buf(),
            rpc: info["rpc"].as_str().unwrap().parse().unwrap(),
            metrics: info["metrics"].as_str().map(|s| s.parse().unwrap()),
            admin_token: info["admin_token_file"]
                .as_str()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_string()),
            log,
        }
    }

    /// Starts a devnet of `bin` with blocks every 150 ms and metrics.
    pub fn devnet_bin(bin: &Path, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Node {
        let mut a = vec![
            "--block-interval-ms",
            "150",
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        a.extend_from_slice(args);
        Node::start_bin(bin, "devnet", dir, &a, envs)
    }

    /// The node's `node.json`.
    pub fn node_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("node.json")).unwrap()).unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and waits for the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_for(30, "a clean exit", || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
