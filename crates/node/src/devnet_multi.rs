//! `the-block devnet --nodes N`: N devnet nodes as child processes on loopback, joined
//! over the peer-to-peer network. Node 0 mines (and funds the dev keys) and verifies;
//! the last node runs the provider; nodes in between only relay and serve. Each node
//! has its own data directory `DIR/node-I`, RPC port and metrics port (consecutive
//! from the given ones, or picked by the system for port 0); each bootnodes to every
//! node started before it. `DIR/devnet.json` lists the nodes; a signal to this process
//! stops them all (SIGTERM to each, then waits).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Most nodes a local devnet starts.
pub const DEVNET_NODES_MAX: usize = 16;

/// Flags this command sets per node (the user's values are the bases).
const PER_NODE: [&str; 4] = ["--data-dir", "--rpc-addr", "--metrics-addr", "--p2p-listen"];

/// The value of `flag` in `args` (`--flag V` or `--flag=V`), last one winning.
fn value_of(args: &[String], flag: &str) -> Option<String> {
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            out = it.next().cloned();
        } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            out = Some(v.to_string());
        }
    }
    out
}

/// `args` without the per-node flags and their values.
fn without_per_node(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if PER_NODE.contains(&a.as_str()) {
            it.next();
        } else if !PER_NODE.iter().any(|f| a.starts_with(&format!("{f}="))) {
            out.push(a.clone());
        }
    }
    out
}

/// `HOST:PORT` shifted by `i` (port 0 stays 0).
fn shifted(addr: &str, i: usize) -> Result<String, String> {
    let a: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?}: expected HOST:PORT"))?;
    let port = if a.port() == 0 {
        0
    } else {
        a.port()
            .checked_add(i as u16)
            .ok_or_else(|| format!("{addr}: port + {i} overflows"))?
    };
    Ok(std::net::SocketAddr::new(a.ip(), port).to_string())
}

/// Parses `--nodes N` out of `args`: `Ok(None)` without it.
pub fn take_nodes(args: &[String]) -> Result<(Option<usize>, Vec<String>), String> {
    let mut rest = Vec::new();
    let mut n = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = if a == "--nodes" {
            Some(it.next().ok_or("--nodes: needs a value")?.clone())
        } else {
            a.strip_prefix("--nodes=").map(String::from)
        };
        match v {
            Some(v) => {
                let k: usize = v
                    .parse()
                    .map_err(|_| format!("--nodes: {v:?} is not a number"))?;
                if !(1..=DEVNET_NODES_MAX).contains(&k) {
                    return Err(format!("--nodes: must be 1..={DEVNET_NODES_MAX}"));
                }
                n = Some(k);
            }
            None => rest.push(a.clone()),
        }
    }
    Ok((n, rest))
}

fn wait_info(child: &mut Child, dir: &Path) -> Result<Value, String> {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "node in {} exited at start ({st}); see its log",
                dir.display()
            ));
        }
        if let Ok(s) = std::fs::read_to_string(dir.join("node.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                return Ok(v);
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(format!("node in {} did not start in 120 s", dir.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(children: &mut [Child]) {
    for c in children.iter() {
        // SIGTERM lets each node save its mempool and stop in order.
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

/// Runs `n` nodes until a signal.
pub fn run(n: usize, args: &[String]) -> Result<(), String> {
    let base = PathBuf::from(value_of(args, "--data-dir").unwrap_or_else(|| "tb-devnet".into()));
    let rpc = value_of(args, "--rpc-addr").unwrap_or_else(|| "127.0.0.1:3030".into());
    let metrics = value_of(args, "--metrics-addr").unwrap_or_else(|| "127.0.0.1:9898".into());
    let rest = without_per_node(args);
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut children: Vec<Child> = Vec::new();
    let mut infos: Vec<Value> = Vec::new();
    let mut bootnodes: Vec<String> = Vec::new();
    for i in 0..n {
        let dir = base.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(dir.join("node.json"));
        let log = std::fs::File::create(dir.join("node.log"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let (mine, provider, verifier) = (i == 0, i == n - 1, i == 0);
        let b = |on: bool| if on { "1" } else { "0" };
        let mut cmd = Command::new(&exe);
        cmd.arg("devnet")
            .args(&rest)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--rpc-addr", &shifted(&rpc, i)?])
            .args(["--metrics-addr", &shifted(&metrics, i)?])
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .env("TB_MINE", b(mine))
            .env("TB_PROVIDER", b(provider))
            .env("TB_VERIFIER", b(verifier))
            .env_remove("TB_BOOTNODES")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if !bootnodes.is_empty() {
            cmd.args(["--bootnode", &bootnodes.join(",")]);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                terminate(&mut children);
                return Err(format!("starting node {i}: {e}"));
            }
        };
        let info = match wait_info(&mut child, &dir) {
            Ok(v) => v,
            Err(e) => {
                children.push(child);
                terminate(&mut children);
                return Err(e);
            }
        };
        children.push(child);
        for a in info["p2p"]["listen"].as_array().into_iter().flatten() {
            if let Some(s) = a.as_str() {
                bootnodes.push(s.to_string());
            }
        }
        let roles: Vec<&str> = [
            (mine, "miner"),
            (provider, "provider"),
            (verifier, "verifier"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, r)| *r)
        .collect();
        println!(
            "node {i}: rpc {} metrics {} p2p {} roles [{}] log {}",
            info["rpc"].as_str().unwrap_or("?"),
            info["metrics"].as_str().unwrap_or("-"),
            info["p2p"]["peer_id"].as_str().unwrap_or("-"),
            roles.join(","),
            dir.join("node.log").display()
        );
        infos.push(json!({"dir": dir.display().to_string(), "roles": roles, "node": info}));
    }
    let path = base.join("devnet.json");
    std::fs::write(&path, json!({ "nodes": infos }).to_string())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "devnet: {n} nodes up (listed in {}); Ctrl-C stops them",
        path.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let r = rt.block_on(crate::run::wait_for_signal());
    println!("devnet: stopping {n} nodes");
    terminate(&mut children);
    let _ = std::fs::remove_file(&path);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn nodes_flag_and_per_node_flags() {
        assert_eq!(
            take_nodes(&v("--nodes 3 --fabric cpu")).unwrap(),
            (Some(3), v("--fabric cpu"))
        );
        assert_eq!(take_nodes(&v("--nodes=2")).unwrap(), (Some(2), vec![]));
        assert_eq!(
            take_nodes(&v("--fabric cpu")).unwrap(),
            (None, v("--fabric cpu"))
        );
        for bad in [
            "--nodes",
            "--nodes 0",
            "--nodes 17",
            "--nodes x",
            "--nodes=-1",
        ] {
            assert!(take_nodes(&v(bad)).is_err(), "{bad}");
        }
        let a = v("--data-dir d --rpc-addr=1.2.3.4:5 --fabric cpu --metrics-addr m --p2p-listen x");
        assert_eq!(without_per_node(&a), v("--fabric cpu"));
        assert_eq!(value_of(&a, "--rpc-addr").unwrap(), "1.2.3.4:5");
        assert_eq!(value_of(&a, "--data-dir").unwrap(), "d");
        assert_eq!(shifted("127.0.0.1:3030", 2).unwrap(), "127.0.0.1:3032");
        assert_eq!(shifted("127.0.0.1:0", 2).unwrap(), "127.0.0.1:0");
        assert!(shifted("127.0.0.1:65535", 1).is_err());
        assert!(shifted("nope", 1).is_err());
    }
}
