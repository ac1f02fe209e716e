//! Drives the real `tb-cli` binary, and the real `the-block` beside it: a command's
//! exit status, stdout and one-line stderr; fake JSON-RPC endpoints; a devnet on free
//! ports, killed when dropped.
#![allow(dead_code)]

#[path = "../../../node/tests/support/process.rs"]
mod process;
pub use process::Node;

use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tb_primitives::SecretKey;
use tempfile::TempDir;

/// What one run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tb-cli` with a clean environment for its variables; `env` adds some back.
pub fn tb_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tb-cli"));
    c.args(args)
        .env_remove("TB_RPC")
        .env_remove("TB_KEYS_DIR")
        .env_remove("TB_BLOCKTORCH_THREADS")
        .env_remove("TB_BLOCKTORCH_SIMD")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("the binary starts");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn tb(args: &[&str]) -> Run {
    tb_env(args, &[])
}

/// Expects success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let r = tb(args);
    assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
    r.stdout
}

/// Expects exit `code` with exactly one `tb-cli: ` line on stderr containing
/// `fragment`; returns that line.
pub fn fails_env(args: &[&str], env: &[(&str, &str)], code: i32, fragment: &str) -> String {
    let r = tb_env(args, env);
    assert_eq!(
        r.code, code,
        "{args:?}: stdout {:?} stderr {:?}",
        r.stdout, r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{args:?} panicked: {}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: stderr is not one line: {:?}",
        r.stderr
    );
    assert!(lines[0].starts_with("tb-cli: "), "{args:?}: {}", lines[0]);
    assert!(
        !lines[0].contains("internal error"),
        "{args:?} panicked: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(fragment),
        "{args:?}: {:?} lacks {fragment:?}",
        lines[0]
    );
    lines[0].to_string()
}

pub fn fails(args: &[&str], code: i32, fragment: &str) -> String {
    fails_env(args, &[], code, fragment)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// An address no one holds the key of, for commands that need one.
pub fn some_address() -> String {
    SecretKey::dev("tb-cli-rpc-test").address().to_string()
}

/// A local port with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Reads one HTTP request (its headers, then `Content-Length` bytes); returns the body.
fn read_body(r: &mut BufReader<std::net::TcpStream>) -> Vec<u8> {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    body
}

/// A one-connection HTTP server that answers any request with `response` (status and
/// body); `"id":ID` in the body becomes the request's id. Returns its URL.
pub fn fake_server(response: (String, String)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((stream, _)) = l.accept() else { return };
        let mut r = BufReader::new(stream);
        let req: Value = serde_json::from_slice(&read_body(&mut r)).unwrap_or(Value::Null);
        let (status, body) = response;
        let body = body.replace("\"id\":ID", &format!("\"id\":{}", req["id"]));
        let _ = r.get_mut().write_all(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    });
    url
}

/// A status line's text and a body for [`fake_server`].
pub fn http(status: &str, body: &str) -> (String, String) {
    (status.to_string(), body.to_string())
}

/// The node's binary beside this one; built (same profile and target directory) when
/// missing.
pub fn node_binary() -> PathBuf {
    let here = Path::new(env!("CARGO_BIN_EXE_tb-cli"));
    let dir = here.parent().expect("the binary has a directory");
    let bin = dir.join(format!("the-block{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return bin;
    }
    let target = dir
        .parent()
        .expect("a profile directory inside the target directory");
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "-p",
            "the-block",
            "--bin",
            "the-block",
            "--target-dir",
        ])
        .arg(target);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            c.arg("--release");
        }
        Some(other) => {
            c.args(["--profile", other]);
        }
        None => {}
    }
    let status = c.status().expect("cargo starts");
    assert!(status.success(), "building the-block failed");
    assert!(bin.is_file(), "no {} after the build", bin.display());
    bin
}

/// A running devnet (the node's own test harness, `process::Node`), killed when
/// dropped (also when the test fails).
pub struct Devnet {
    pub node: Node,
    pub dir: TempDir,
    pub rpc: String,
}

impl Devnet {
    /// Starts `the-block devnet` with 200 ms blocks, on free ports, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Devnet {
        let dir = TempDir::new().unwrap();
        let mut args = vec![
            "--metrics-addr",
            "127.0.0.1:0",
            "--block-interval-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        let node = Node::start_bin(
            &node_binary(),
            "devnet",
            &dir.path().join("data"),
            &args,
            &[],
        );
        let rpc = format!("http://{}", node.rpc);
        Devnet { node, dir, rpc }
    }

    pub fn log(&self) -> String {
        self.node.log_text()
    }

    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.node.child.try_wait() {
            panic!("the devnet exited ({status}):\n{}", self.log());
        }
    }

    /// Waits until devnet-alice (funded by the miner) holds 20 Industrial tokens and the
    /// devnet's provider has staked (`compute submit` refuses a job no provider could
    /// serve); returns her key file's path.
    pub fn funded_alice(&mut self) -> String {
        let alice_s = s(&self.key("devnet-alice")).to_string();
        self.wait_for(
            "20 industrial tokens for alice",
            Duration::from_secs(120),
            |n| {
                let r = n.tb(&["--json", "balance", &alice_s]);
                let v: Value = serde_json::from_str(&r.stdout).ok()?;
                (v["industrial"].as_u64()? >= 20_000_000).then_some(())
            },
        );
        let provider = s(&self.key("devnet-provider")).to_string();
        self.wait_for(
            "the devnet's provider staked",
            Duration::from_secs(120),
            |n| {
                let r = n.tb(&["--json", "provider", "status", &provider]);
                let v: Value = serde_json::from_str(&r.stdout).ok()?;
                (v["stake"].as_u64()? >= 100_000_000).then_some(())
            },
        );
        alice_s
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("data")
            .join("dev-keys")
            .join(format!("{name}.key"))
    }

    /// Polls `f` every 200 ms until it gives a value.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        f: impl Fn(&mut Devnet) -> Option<T>,
    ) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            self.check_alive();
            assert!(
                t0.elapsed() < limit,
                "no {what} after {limit:?}; node log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `tb-cli --rpc URL ARGS...`.
    pub fn tb(&self, args: &[&str]) -> Run {
        let mut full = vec!["--rpc", self.rpc.as_str()];
        full.extend_from_slice(args);
        tb(&full)
    }

    /// Runs and expects exit `code`; returns stdout.
    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let r = self.tb(args);
        assert_eq!(
            r.code,
            code,
            "{args:?}: stdout {}\nstderr {}\nnode log:\n{}",
            r.stdout,
            r.stderr,
            self.log()
        );
        r.stdout
    }
}

/// The `mlp` example built by `tb-cli job build` into `dir`.
pub fn build_mlp(dir: &std::path::Path) -> PathBuf {
    let blob = dir.join("mlp.btj");
    ok(&["job", "build", "--example", "mlp", "-o", s(&blob)]);
    blob
}

/// A JSON-RPC endpoint that answers each method with a canned result (any number of
/// requests); returns its URL.
pub fn fake_node(answers: Vec<(&'static str, Value)>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(stream) = stream else { return };
            let mut r = BufReader::new(stream);
            let body = read_body(&mut r);
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let method = req["method"].as_str().unwrap_or("");
            let reply = match answers.iter().find(|(m, _)| *m == method) {
                Some((_, v)) => json!({"jsonrpc": "2.0", "id": req["id"], "result": v}),
                None => json!({"jsonrpc": "2.0", "id": req["id"],
                               "error": {"code": -32601, "message": "no such method"}}),
            }
            .to_string();
            let _ = r.get_mut().write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    url
}
