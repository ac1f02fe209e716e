//! The `devnet` command: one node with every role and the dev keys (`devnet_cmd`), or
//! with `--nodes N` several as child processes.
//!
//! `the-block devnet --nodes N`: N devnet nodes as child processes on loopback, joined
//! over the peer-to-peer network. Node 0 mines (and funds the dev keys) and verifies;
//! the last node runs the provider; nodes in between only relay and serve. Each node
//! has its own data directory `DIR/node-I` holding its whole configuration
//! (`node.toml`: the roles are explicit settings there, not environment variables), its
//! log (`node.log`), an RPC port and a metrics port (consecutive from the given ones, or
//! picked by the system for port 0); each bootnodes to every node started before it.
//! `DIR/devnet.json` lists the nodes. A child that exits is reported and restarted with
//! the same configuration, at most [`DEVNET_RESTARTS_MAX`] times; a signal to this
//! process stops them all (SIGTERM to each, then waits).

use super::run::{serve, Keys};
use crate::cli::DevnetArgs;
use crate::config::{self, NodeConfig, RunArgs};
use crate::node::Node;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tb_chain::tx::FeeSelector;
use tb_chain::{StateRead, TxPayload};
use tb_primitives::SecretKey;

/// Restarts of one child before it is left down.
pub const DEVNET_RESTARTS_MAX: u32 = 3;
/// How often the children are checked.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The devnet's named dev keys (the first is the miner's; it funds the others).
pub const DEV_KEYS: [&str; 5] = [
    "devnet-miner",
    "devnet-provider",
    "devnet-verifier",
    "devnet-alice",
    "devnet-bob",
];

/// The devnet's presets under the flags and variables: the devnet's data directory,
/// metrics and loopback p2p addresses, and every role on.
pub fn devnet_config(args: &RunArgs) -> Result<NodeConfig, String> {
    let mut base = NodeConfig {
        data_dir: PathBuf::from("tb-devnet"),
        metrics_addr: Some("127.0.0.1:9898".parse().expect("literal")),
        ..NodeConfig::default()
    };
    base.p2p.listen = vec!["/ip4/127.0.0.1/tcp/7171".into()];
    base.miner.enabled = true;
    base.provider.enabled = true;
    base.verifier.enabled = true;
    let mut cfg = config::load_over(args, base).map_err(|e| e.to_string())?;
    cfg.network = config::Network::Devnet;
    Ok(cfg)
}

pub fn devnet_cmd(args: &DevnetArgs) -> Result<(), String> {
    let mut cfg = devnet_config(&args.run)?;
    if let Some(n) = args.nodes.filter(|n| *n > 1) {
        return run(n as usize, cfg);
    }
    let dir = cfg.data_dir.join("dev-keys");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in DEV_KEYS {
        let p = dir.join(format!("{name}.key"));
        if !p.exists() {
            config::write_key(&p, &SecretKey::dev(name))
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    if cfg.key_file.is_none() {
        cfg.key_file = Some(dir.join("devnet-miner.key"));
    }
    cfg.check().map_err(|e| e.to_string())?;
    if args.run.print_config {
        print!("{}", config::to_toml(&cfg));
        return Ok(());
    }
    let node_key = cfg.node_key().map_err(|e| e.to_string())?;
    for name in DEV_KEYS {
        tracing::info!(
            key = name,
            address = %SecretKey::dev(name).address(),
            seed_file = %dir.join(format!("{name}.key")).display(),
            "devnet key"
        );
    }
    let keys = Keys {
        miner: Some(SecretKey::dev(DEV_KEYS[0]).address()),
        provider: cfg
            .provider
            .enabled
            .then(|| SecretKey::dev("devnet-provider")),
        verifier: cfg
            .verifier
            .enabled
            .then(|| SecretKey::dev("devnet-verifier")),
    };
    // Only the mining node funds the dev keys (its transfers reach the others by gossip).
    let extra: Option<fn(Arc<Node>)> = cfg.miner.enabled.then_some(fund_dev_keys);
    serve(cfg, node_key, keys, extra)
}

/// Tokens of each kind the devnet's miner transfers to each other dev key.
pub const DEV_FUNDING_TOKENS: u64 = 200;

/// The devnet's prefunding: once the miner key (the block rewards' beneficiary) holds
/// enough, it sends `DEV_FUNDING_TOKENS` of both tokens to every other dev key that has
/// nothing yet (so a restarted devnet does not pay twice).
fn fund_dev_keys(node: Arc<Node>) {
    let miner = SecretKey::dev(DEV_KEYS[0]);
    let amount = DEV_FUNDING_TOKENS * tb_primitives::MICRO_PER_TOKEN;
    let mut seen = 0;
    let mut sent_at: Option<u64> = None;
    while !node.stopping() {
        let h = node.wait_head(seen, Duration::from_millis(500));
        if h == seen {
            continue;
        }
        seen = h;
        let (todo, have) = {
            let c = node.core();
            let s = c.db.state();
            let todo: Vec<_> = DEV_KEYS[1..]
                .iter()
                .map(|n| SecretKey::dev(n).address())
                .filter(|a| s.account(a) == tb_chain::Account::default())
                .collect();
            (todo, s.account(&miner.address()))
        };
        if todo.is_empty() {
            return;
        }
        let need = amount * todo.len() as u64 + tb_primitives::MICRO_PER_TOKEN;
        if sent_at.is_some_and(|t| h < t + 10) || have.consumer < need || have.industrial < need {
            continue;
        }
        sent_at = Some(h);
        let payloads = todo
            .iter()
            .map(|to| {
                TxPayload::Transfer(tb_chain::Transfer {
                    from: miner.address(),
                    to: *to,
                    amount_consumer: amount,
                    amount_industrial: amount,
                    fee: 0,
                    fee_selector: FeeSelector::Consumer.into(),
                    nonce: 0,
                    memo: b"devnet prefunding".to_vec(),
                })
            })
            .collect();
        match node.submit_signed(&miner, payloads) {
            Ok(_) => tracing::info!(
                keys = todo.len(),
                tokens = DEV_FUNDING_TOKENS,
                "devnet: funding the dev keys"
            ),
            Err(e) => tracing::warn!(error = %e, code = e.code(), "devnet funding refused"),
        }
    }
}

/// `addr` with its port shifted by `i` (port 0 stays 0).
fn shifted(a: std::net::SocketAddr, i: usize) -> Result<std::net::SocketAddr, String> {
    let port = if a.port() == 0 {
        0
    } else {
        u16::try_from(a.port() as usize + i).map_err(|_| format!("{a}: port + {i} overflows"))?
    };
    Ok(std::net::SocketAddr::new(a.ip(), port))
}

/// The roles of node `i` of `n`: (miner, provider, verifier).
fn roles(i: usize, n: usize) -> (bool, bool, bool) {
    (i == 0, i == n - 1, i == 0)
}

/// Node `i`'s configuration: `base` with its own directory, ports, roles and bootnodes.
fn node_config(
    base: &NodeConfig,
    i: usize,
    n: usize,
    bootnodes: &[String],
) -> Result<NodeConfig, String> {
    let mut c = base.clone();
    c.data_dir = base.data_dir.join(format!("node-{i}"));
    c.rpc_addr = shifted(base.rpc_addr, i)?;
    c.metrics_addr = base.metrics_addr.map(|a| shifted(a, i)).transpose()?;
    c.p2p.enabled = true;
    c.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.p2p.bootnodes = bootnodes.to_vec();
    // Every member connects from 127.0.0.1: one address holds them all.
    c.p2p.inbound_per_ip = c.p2p.inbound_per_ip.max(n as u32);
    (c.miner.enabled, c.provider.enabled, c.verifier.enabled) = roles(i, n);
    Ok(c)
}

/// One child: its directory, configuration file and process.
struct Member {
    dir: PathBuf,
    child: Child,
    info: Value,
    roles: Vec<&'static str>,
    restarts: u32,
    down: bool,
}

fn spawn(exe: &Path, dir: &Path) -> Result<Child, String> {
    let _ = std::fs::remove_file(dir.join("node.json"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("devnet")
        .arg("--config")
        .arg(dir.join("node.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    // The configuration file is the whole truth: the parent's TB_* settings are in it
    // already (the log settings pass through).
    for (k, _) in std::env::vars() {
        if k.starts_with("TB_") && k != "TB_LOG_LEVEL" && k != "TB_LOG_FORMAT" {
            cmd.env_remove(k);
        }
    }
    cmd.spawn()
        .map_err(|e| format!("starting {}: {e}", dir.display()))
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

fn terminate(members: &mut [Member]) {
    for m in members.iter() {
        // SIGTERM lets each node save its mempool and stop in order.
        let _ = Command::new("kill")
            .args(["-TERM", &m.child.id().to_string()])
            .status();
    }
    for m in members.iter_mut() {
        let _ = m.child.wait();
    }
}

fn write_listing(path: &Path, members: &[Member]) -> Result<(), String> {
    let nodes: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({"dir": m.dir.display().to_string(), "roles": m.roles, "node": m.info,
                   "restarts": m.restarts, "down": m.down})
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({ "nodes": nodes }).to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Restarts or gives up on the children that exited; whether the listing changed.
fn watch(exe: &Path, members: &mut [Member]) -> bool {
    let mut changed = false;
    for (i, m) in members.iter_mut().enumerate() {
        if m.down {
            continue;
        }
        let Ok(Some(status)) = m.child.try_wait() else {
            continue;
        };
        changed = true;
        if m.restarts >= DEVNET_RESTARTS_MAX {
            tracing::error!(
                node = i,
                %status,
                log = %m.dir.join("node.log").display(),
                "devnet node exited again; left down after {DEVNET_RESTARTS_MAX} restarts"
            );
            m.down = true;
            continue;
        }
        m.restarts += 1;
        tracing::error!(
            node = i,
            %status,
            restart = m.restarts,
            log = %m.dir.join("node.log").display(),
            "devnet node exited; restarting it"
        );
        match spawn(exe, &m.dir).and_then(|mut c| wait_info(&mut c, &m.dir).map(|info| (c, info))) {
            Ok((c, info)) => {
                m.child = c;
                m.info = info;
                tracing::info!(
                    node = i,
                    rpc = m.info["rpc"].as_str().unwrap_or("?"),
                    "devnet node restarted"
                );
            }
            Err(e) => {
                tracing::error!(node = i, error = %e, "devnet node did not restart; left down");
                m.down = true;
            }
        }
    }
    changed
}

/// Runs `n` nodes configured from `base` (the devnet's presets under the flags) until
/// a signal.
pub fn run(n: usize, base: NodeConfig) -> Result<(), String> {
    let root = base.data_dir.clone();
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut members: Vec<Member> = Vec::new();
    let mut bootnodes: Vec<String> = Vec::new();
    for i in 0..n {
        let cfg = node_config(&base, i, n, &bootnodes)?;
        let dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join("node.toml");
        std::fs::write(&file, config::to_toml(&cfg))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let started = spawn(&exe, &dir).and_then(|mut c| match wait_info(&mut c, &dir) {
            Ok(info) => Ok((c, info)),
            Err(e) => {
                let _ = c.kill();
                let _ = c.wait();
                Err(e)
            }
        });
        let (child, info) = match started {
            Ok(x) => x,
            Err(e) => {
                terminate(&mut members);
                return Err(e);
            }
        };
        for a in info["p2p"]["listen"].as_array().into_iter().flatten() {
            if let Some(s) = a.as_str() {
                bootnodes.push(s.to_string());
            }
        }
        let (mine, provider, verifier) = roles(i, n);
        let roles: Vec<&'static str> = [
            (mine, "miner"),
            (provider, "provider"),
            (verifier, "verifier"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, r)| *r)
        .collect();
        tracing::info!(
            node = i,
            rpc = info["rpc"].as_str().unwrap_or("?"),
            metrics = info["metrics"].as_str().unwrap_or("-"),
            peer_id = info["p2p"]["peer_id"].as_str().unwrap_or("-"),
            roles = %roles.join(","),
            config = %file.display(),
            log = %dir.join("node.log").display(),
            "devnet node up"
        );
        members.push(Member {
            dir,
            child,
            info,
            roles,
            restarts: 0,
            down: false,
        });
    }
    let path = root.join("devnet.json");
    write_listing(&path, &members)?;
    tracing::info!(nodes = n, listing = %path.display(), "devnet up; Ctrl-C stops it");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let r = rt.block_on(async {
        let signal = super::run::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                r = &mut signal => return r,
                _ = tokio::time::sleep(WATCH_INTERVAL) => {
                    if watch(&exe, &mut members) {
                        if let Err(e) = write_listing(&path, &members) {
                            tracing::warn!(error = %e, "devnet listing not updated");
                        }
                    }
                }
            }
        }
    });
    tracing::info!(nodes = n, "devnet: stopping");
    terminate(&mut members);
    let _ = std::fs::remove_file(&path);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_its_directory_ports_roles_and_bootnodes() {
        let mut base = NodeConfig {
            data_dir: "net".into(),
            rpc_addr: "127.0.0.1:3030".parse().unwrap(),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..NodeConfig::default()
        };
        base.miner.enabled = true;
        base.provider.enabled = true;
        let c = node_config(&base, 2, 3, &["/b".into()]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("net/node-2"));
        assert_eq!(c.rpc_addr.port(), 3032);
        assert_eq!(c.metrics_addr.unwrap().port(), 0);
        assert_eq!(c.p2p.bootnodes, vec!["/b".to_string()]);
        assert_eq!(
            (c.miner.enabled, c.provider.enabled, c.verifier.enabled),
            (false, true, false)
        );
        let c = node_config(&base, 0, 3, &[]).unwrap();
        assert_eq!(
            (c.miner.enabled, c.provider.enabled, c.verifier.enabled),
            (true, false, true)
        );
        // The file round-trips.
        let back: NodeConfig = toml::from_str(&config::to_toml(&c)).unwrap();
        assert_eq!(back.rpc_addr, c.rpc_addr);
        assert!(shifted("127.0.0.1:65535".parse().unwrap(), 1).is_err());
    }
}
