//! Benchmarks of the node behind `BENCHMARKS.md`:
//!
//! - `tb-node-bench rpc [--clients N] [--secs S]`: JSON-RPC throughput of `balance` and
//!   `submit_tx` on an in-process node (the real jsonrpsee server on a loopback port),
//!   driven by N keep-alive HTTP clients; requests per second and latency p50/p99.
//! - `tb-node-bench scrape [--conns N] [--rounds R]`: `/metrics` under N concurrent
//!   scrapes (one connection each, all started together), R rounds, on an in-process
//!   node's metrics server: answers served, latency p50/p99/max.
//! - `tb-node-bench settle [--jobs N] [--block-interval-ms M]`: jobs settled per minute
//!   end to end on a devnet (the real `the-block devnet` binary beside this one): N
//!   example jobs submitted at once, timed from the first submission to the last
//!   settlement.
//! - `tb-node-bench sync [--blocks N] [--txs T]`: sync from genesis over the network: a
//!   chain of N blocks with T signed transfers each is built directly in a store, a
//!   node serves it, and a second, empty node (the real binary, bootnoded to the first)
//!   syncs it; blocks/s and MB/s from the empty node's start to its reaching the tip.
//! - `tb-node-bench propagate [--nodes K] [--blocks B] [--block-interval-ms M]`: K nodes
//!   in a line (each bootnoded only to the one before), the first mining; every node's
//!   head is polled every millisecond and each block's first-seen time per node is
//!   compared with the miner's: the propagation delay per hop count.
//! - `tb-node-bench results [--jobs N] [--block-interval-ms M]`: models by reference on
//!   a devnet: for the `mlp` and `transformer` examples, N jobs with distinct inputs
//!   submitted inline (each blob carries the model) and N by reference (the model
//!   published once, each blob carries its input): bytes published and fees paid per
//!   job; then, for the jobs by reference, the blocks and seconds from submission to the
//!   lease, to the verified result (the receipt accepted: `compute.getResult` readable),
//!   to the final result (the challenge window closed) and to settlement.
//! - `tb-node-bench explorer [--blocks N] [--jobs J] [--samples S]`: the explorer's
//!   pages on a store of N blocks and J jobs (see `explorer.rs`): each page's JSON-RPC
//!   calls, exactly as the explorer makes them, timed p50/p99.
//! - `tb-node-bench load [--rate R] [--blocks B] [--block-interval-ms M]`: an honest
//!   provider under R jobs a second for B blocks (see `load.rs`): its slashes (none
//!   expected), heartbeats and the jobs by state.
//! - `tb-node-bench rpc-memory [--clients N] [--mb M] [--rounds R] [--budget-mb B]`:
//!   the node's resident memory under N concurrent M-megabyte requests (see
//!   `memory.rs`).
#![forbid(unsafe_code)]

mod explorer;
mod load;
mod memory;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tb_chain::tx::FeeSelector;
use tb_chain::{SignedTx, StateRead, TxPayload};
use tb_primitives::{SecretKey, MICRO_PER_TOKEN};
use the_block::node::Node;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let r = match args.first().map(String::as_str) {
        Some("rpc") => rpc(opt("--clients", 8) as usize, opt("--secs", 5)),
        Some("scrape") => scrape(opt("--conns", 1000) as usize, opt("--rounds", 5) as usize),
        Some("settle") => settle(opt("--jobs", 20) as usize, opt("--block-interval-ms", 200)),
        Some("sync") => sync(opt("--blocks", 2_000), opt("--txs", 20) as usize),
        Some("propagate") => propagate(
            opt("--nodes", 5) as usize,
            opt("--blocks", 40),
            opt("--block-interval-ms", 250),
        ),
        Some("results") => results(opt("--jobs", 5) as usize, opt("--block-interval-ms", 1000)),
        Some("load") => load::load(
            opt("--rate", 5) as f64,
            opt("--blocks", 1_000),
            opt("--block-interval-ms", 200),
        ),
        Some("rpc-memory") => memory::rpc_memory(
            opt("--clients", 120) as usize,
            opt("--mb", 8),
            opt("--rounds", 3) as usize,
            opt("--budget-mb", 0),
        ),
        Some("explorer") => explorer::explorer(
            opt("--blocks", 100_000),
            opt("--jobs", 10_000) as usize,
            opt("--samples", 200) as usize,
        ),
        _ => Err("usage: tb-node-bench rpc [--clients N] [--secs S] | scrape [--conns N] [--rounds R] | settle [--jobs N] [--block-interval-ms M] | sync [--blocks N] [--txs T] | propagate [--nodes K] [--blocks B] [--block-interval-ms M] | results [--jobs N] [--block-interval-ms M] | explorer [--blocks N] [--jobs J] [--samples S] | load [--rate R] [--blocks B] [--block-interval-ms M] | rpc-memory [--clients N] [--mb M] [--rounds R] [--budget-mb B]".into()),
    };
    if let Err(e) = r {
        eprintln!("tb-node-bench: {e}");
        std::process::exit(1);
    }
}

/// One request of a load run: the client and the item index.
type Request = Arc<dyn Fn(&mut Client, usize) -> Result<(), String> + Send + Sync>;

/// A keep-alive HTTP/1.1 JSON-RPC client.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// `Authorization` header line for the admin methods, when given.
    auth: String,
}

impl Client {
    fn connect(a: SocketAddr) -> Result<Client, String> {
        let s = TcpStream::connect(a).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Client {
            w: s.try_clone().map_err(|e| e.to_string())?,
            r: BufReader::new(s),
            auth: String::new(),
        })
    }

    /// Sends the admin token with every call.
    fn with_token(mut self, token: &str) -> Client {
        self.auth = format!("Authorization: Bearer {token}\r\n");
        self
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let v = self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
        )?;
        match v.get("error") {
            Some(e) => Err(e.to_string()),
            None => Ok(v["result"].clone()),
        }
    }

    /// One JSON-RPC batch: the answers in the calls' order, an error for any call that
    /// failed.
    fn batch(&mut self, calls: &[(&str, Value)]) -> Result<Vec<Value>, String> {
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let v = self.post(&Value::Array(body).to_string())?;
        let mut out = vec![Value::Null; calls.len()];
        for a in v.as_array().ok_or("a batch answer is an array")? {
            let i = a["id"].as_u64().ok_or("an answer's id")? as usize;
            if let Some(e) = a.get("error") {
                return Err(format!("{}: {e}", calls.get(i).map_or("?", |c| c.0)));
            }
            *out.get_mut(i).ok_or("an answer's id out of range")? = a["result"].clone();
        }
        Ok(out)
    }

    /// POSTs `body`, returns the parsed answer.
    fn post(&mut self, body: &str) -> Result<Value, String> {
        write!(
            self.w,
            "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            self.auth
        )
        .map_err(|e| e.to_string())?;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().map_err(|_| "bad content-length")?;
            }
        }
        let mut buf = vec![0; len];
        self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        serde_json::from_slice(&buf).map_err(|e| e.to_string())
    }
}

fn quantile(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1e3
}

/// The items client `c` of `n` sends, in order.
type Schedule = Arc<dyn Fn(usize, usize) -> Box<dyn Iterator<Item = usize>> + Send + Sync>;

/// Runs `f(client, i)` on `clients` threads, each over its `schedule`, until the
/// schedules end or `limit` passes; returns (elapsed, latencies).
fn drive(
    addr: SocketAddr,
    clients: usize,
    limit: Option<Duration>,
    schedule: Schedule,
    f: Request,
) -> Result<(Duration, Vec<Duration>), String> {
    let t0 = Instant::now();
    let hs: Vec<_> = (0..clients)
        .map(|c| {
            let (f, schedule) = (f.clone(), schedule.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut cl = Client::connect(addr)?;
                let mut lat = Vec::new();
                for i in schedule(c, clients) {
                    if limit.is_some_and(|l| t0.elapsed() >= l) {
                        break;
                    }
                    let t = Instant::now();
                    f(&mut cl, i)?;
                    lat.push(t.elapsed());
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in hs {
        all.extend(h.join().map_err(|_| "a client panicked")??);
    }
    Ok((t0.elapsed(), all))
}

/// The node's real JSON-RPC server (8 MiB requests, 1,024 connections, no admin token,
/// the explorer on) on a loopback port, on a runtime of 2 workers that must outlive it.
fn serve_rpc(
    node: &Arc<Node>,
) -> Result<
    (
        tokio::runtime::Runtime,
        SocketAddr,
        jsonrpsee::server::ServerHandle,
    ),
    String,
> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (addr, handle) = rt.block_on(the_block::rpc::start(
        node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        the_block::rpc::RpcLimits {
            request_bytes: 8 << 20,
            connections: 1024,
            // Every bench client is on 127.0.0.1.
            per_ip: 1024,
            idle: std::time::Duration::from_secs(300),
            request_memory_bytes: 1 << 30,
        },
        None,
        true,
    ))?;
    Ok((rt, addr, handle))
}

/// `scrape`: N concurrent `/metrics` scrapes per round.
fn scrape(conns: usize, rounds: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let node = Node::open(dir.path(), tb_chain::ChainParams::devnet(), None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = {
        let _g = rt.enter();
        the_block::http::bind("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    rt.spawn(the_block::http::serve(
        listener,
        the_block::http::Endpoints::new(node, false),
    ));
    let mut lat = Vec::new();
    let mut served = 0usize;
    for _ in 0..rounds {
        let start = Arc::new(std::sync::Barrier::new(conns));
        let threads: Vec<_> = (0..conns)
            .map(|_| {
                let start = start.clone();
                std::thread::spawn(move || -> Option<Duration> {
                    start.wait();
                    let t0 = Instant::now();
                    let mut s = TcpStream::connect(addr).ok()?;
                    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                        .ok()?;
                    let mut body = Vec::new();
                    s.read_to_end(&mut body).ok()?;
                    (body.starts_with(b"HTTP/1.1 200") && body.ends_with(b"\n"))
                        .then(|| t0.elapsed())
                })
            })
            .collect();
        for t in threads {
            if let Some(d) = t.join().map_err(|_| "scraper panicked")? {
                served += 1;
                lat.push(d);
            }
        }
    }
    lat.sort();
    let q = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    println!(
        "scrape: {served} of {} served ({conns} at once x {rounds} rounds); latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        conns * rounds,
        q(0.5).map_or(0.0, |d| d.as_secs_f64() * 1e3),
        q(0.99).map_or(0.0, |d| d.as_secs_f64() * 1e3),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    Ok(())
}

fn rpc(clients: usize, secs: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let miner = SecretKey::dev("bench-miner");
    let node = Node::open(
        dir.path(),
        tb_chain::ChainParams::devnet(),
        Some(miner.clone()),
    )?;
    let (_rt, addr, handle) = serve_rpc(&node)?;
    // Fund senders: rewards to the miner, then transfers to 150 senders.
    for _ in 0..30 {
        the_block::workers::miner::mine_one(&node, miner.address())?;
    }
    let senders: Vec<SecretKey> = (0..150)
        .map(|i| SecretKey::dev(&format!("bench-sender-{i}")))
        .collect();
    for chunk in senders.chunks(50) {
        let p = chunk
            .iter()
            .map(|s| {
                TxPayload::Transfer(tb_chain::Transfer {
                    from: miner.address(),
                    to: s.address(),
                    amount_consumer: 5 * MICRO_PER_TOKEN,
                    amount_industrial: 0,
                    fee: 0,
                    fee_selector: FeeSelector::Consumer.into(),
                    nonce: 0,
                    memo: vec![],
                })
            })
            .collect();
        node.submit_signed(&miner, p).map_err(|e| e.to_string())?;
        the_block::workers::miner::mine_one(&node, miner.address())?;
    }
    let per = 60usize;
    let chain_id = node.params.chain_id;
    let txs: Vec<String> = senders
        .iter()
        .flat_map(|s| {
            (0..per).map(move |n| {
                let p = TxPayload::Transfer(tb_chain::Transfer {
                    from: s.address(),
                    to: s.address(),
                    amount_consumer: 1,
                    amount_industrial: 0,
                    fee: 0,
                    fee_selector: FeeSelector::Consumer.into(),
                    nonce: n as u64,
                    memo: vec![],
                });
                hex::encode(tb_primitives::encode(&SignedTx::sign_paying_floor(
                    p, s, chain_id, 1,
                )))
            })
        })
        .collect();
    let funded = node
        .core()
        .db
        .state()
        .account(&senders[0].address())
        .consumer;
    if funded == 0 {
        return Err("the senders were not funded".into());
    }
    println!(
        "machine: {} cores; clients {clients}; server: jsonrpsee on 2 tokio workers",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let who = senders[7].address().to_string();
    let f: Request = Arc::new(move |c, _| c.call("balance", json!([who])).map(|_| ()));
    let every: Schedule = Arc::new(|c, n| Box::new((c..).step_by(n)));
    let (el, mut lat) = drive(addr, clients, Some(Duration::from_secs(secs)), every, f)?;
    println!(
        "balance:   {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  ({} requests in {:.1} s)",
        lat.len() as f64 / el.as_secs_f64(),
        quantile(&mut lat, 0.5),
        quantile(&mut lat, 0.99),
        lat.len(),
        el.as_secs_f64()
    );
    // submit_tx: each sender's transactions go through one client, in nonce order.
    let n = txs.len();
    let txs = Arc::new(txs);
    let f: Request = Arc::new(move |c, i| c.call("submit_tx", json!([txs[i]])).map(|_| ()));
    // Client c sends for the senders s ≡ c (mod clients), each in nonce order (index
    // s * per + nonce).
    let nsenders = senders.len();
    let by_sender: Schedule = Arc::new(move |c, n| {
        Box::new(
            (c..nsenders)
                .step_by(n)
                .flat_map(move |s| (0..per).map(move |k| s * per + k)),
        )
    });
    let (el, mut lat) = drive(addr, clients.min(nsenders), None, by_sender, f)?;
    let pool = node.core().pool.len();
    println!(
        "submit_tx: {:>8.0} tx/s   p50 {:.3} ms  p99 {:.3} ms  ({} admitted of {n} in {:.2} s)",
        lat.len() as f64 / el.as_secs_f64(),
        quantile(&mut lat, 0.5),
        quantile(&mut lat, 0.99),
        pool,
        el.as_secs_f64()
    );
    let _ = handle.stop();
    node.shutdown();
    Ok(())
}

/// A `the-block devnet` child process on free ports; killed when dropped.
struct Child {
    child: std::process::Child,
    info: Value,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    /// Starts `the-block devnet` in `dir` with `args` and `envs`; waits for `node.json`.
    fn devnet(
        dir: &std::path::Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.with_file_name("the-block");
        if !bin.exists() {
            return Err(format!(
                "{} not built (cargo build --release --bin the-block)",
                bin.display()
            ));
        }
        let _ = std::fs::remove_file(dir.join("node.json"));
        let child = std::process::Command::new(&bin)
            .arg("devnet")
            .arg("--data-dir")
            .arg(dir)
            .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--p2p-listen", "/ip4/127.0.0.1/tcp/0"])
            .args(args)
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut c = Child {
            child,
            info: Value::Null,
        };
        let t0 = Instant::now();
        c.info = loop {
            if let Some(v) = std::fs::read_to_string(dir.join("node.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
            {
                break v;
            }
            if let Ok(Some(st)) = c.child.try_wait() {
                return Err(format!("the devnet exited at start ({st})"));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err("the devnet did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(c)
    }

    fn rpc(&self) -> Result<SocketAddr, String> {
        self.info["rpc"]
            .as_str()
            .ok_or("no rpc")?
            .parse()
            .map_err(|_| "bad rpc".to_string())
    }

    /// The child's admin token.
    fn token(&self) -> Result<String, String> {
        let p = self.info["admin_token_file"]
            .as_str()
            .ok_or("no admin token file")?;
        Ok(std::fs::read_to_string(p)
            .map_err(|e| format!("{p}: {e}"))?
            .trim()
            .to_string())
    }

    fn p2p(&self) -> Result<String, String> {
        Ok(self.info["p2p"]["listen"][0]
            .as_str()
            .ok_or("no p2p address")?
            .to_string())
    }
}

const WORKERS_OFF: [(&str, &str); 3] =
    [("TB_MINE", "0"), ("TB_PROVIDER", "0"), ("TB_VERIFIER", "0")];

fn height(c: &mut Client) -> Result<(u64, String), String> {
    let h = c.call("chain.head", json!([]))?;
    Ok((
        h["height"].as_u64().ok_or("height")?,
        h["id"].as_str().ok_or("id")?.to_string(),
    ))
}

fn sync(blocks: u64, txs: usize) -> Result<(), String> {
    use tb_chain::{ChainParams, Transfer};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let a_dir = dir.path().join("a");
    let params = ChainParams::devnet();
    let miner = SecretKey::dev("devnet-miner");
    let floor = tb_chain::mempool::MempoolConfig::default().fee_floor_per_byte;
    let t_build = Instant::now();
    let mut bytes_total = 0usize;
    {
        std::fs::create_dir_all(&a_dir).map_err(|e| e.to_string())?;
        let mut db = tb_store::ChainDb::open(a_dir.join("chain.redb"), params.clone())
            .map_err(|e| e.to_string())?;
        let step = params.block_time_target_ms;
        let start = the_block::node::now_ms() - (blocks + 1) * step;
        let mut nonce = 0u64;
        for i in 1..=blocks {
            let mut batch = Vec::new();
            if i > 1 {
                for k in 0..txs {
                    let p = TxPayload::Transfer(Transfer {
                        from: miner.address(),
                        to: SecretKey::dev(&format!("sync-{}", k % 16)).address(),
                        amount_consumer: 1,
                        amount_industrial: 0,
                        fee: 0,
                        fee_selector: FeeSelector::Consumer.into(),
                        nonce,
                        memo: vec![b'm'; 64],
                    });
                    nonce += 1;
                    batch.push(SignedTx::sign_paying_floor(
                        p,
                        &miner,
                        params.chain_id,
                        floor,
                    ));
                }
            }
            let mut b = db
                .build_template(batch.iter(), start + i * step, miner.address())
                .map_err(|e| e.to_string())?;
            if b.txs.len() != batch.len() {
                return Err(format!(
                    "block {i}: {} of {} transfers fit",
                    b.txs.len(),
                    batch.len()
                ));
            }
            b.header = tb_chain::mine(&b.header, 0, u64::MAX).ok_or("no nonce")?;
            bytes_total += tb_primitives::encode(&b).len();
            db.import_block(&b, start + i * step)
                .map_err(|e| e.to_string())?;
        }
    }
    println!(
        "sync: built {blocks} blocks ({txs} transfers each, {:.2} MB) in {:.1} s",
        bytes_total as f64 / 1e6,
        t_build.elapsed().as_secs_f64()
    );
    // The baseline in the same run: the same blocks imported into a fresh store
    // in-process, no network (what the syncing node must do at least).
    let import_s = {
        let src = tb_store::ChainDb::open(a_dir.join("chain.redb"), params.clone())
            .map_err(|e| e.to_string())?;
        let all: Vec<tb_chain::Block> = (1..=blocks)
            .map(|h| src.block_at(h).ok().flatten().ok_or(format!("block {h}")))
            .collect::<Result<_, _>>()?;
        drop(src);
        let d2 = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut db = tb_store::ChainDb::open(d2.path().join("chain.redb"), params.clone())
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        for b in &all {
            db.import_block(b, the_block::node::now_ms())
                .map_err(|e| e.to_string())?;
        }
        t.elapsed().as_secs_f64()
    };
    println!(
        "sync: baseline: the same {blocks} blocks imported in-process into a fresh store in {import_s:.2} s ({:.0} blocks/s)",
        blocks as f64 / import_s
    );
    let a = Child::devnet(&a_dir, &[], &WORKERS_OFF)?;
    let boot = a.p2p()?;
    let t0 = Instant::now();
    let b = Child::devnet(&dir.path().join("b"), &["--bootnode", &boot], &WORKERS_OFF)?;
    let t_started = t0.elapsed();
    let mut c = Client::connect(b.rpc()?)?;
    let mut first: Option<Duration> = None;
    loop {
        let (h, _) = height(&mut c)?;
        if h > 0 && first.is_none() {
            first = Some(t0.elapsed());
        }
        if h >= blocks {
            break;
        }
        if t0.elapsed() > Duration::from_secs(900) {
            return Err(format!("synced {h} of {blocks} blocks in 900 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let el = t0.elapsed().as_secs_f64();
    let (ha, ida) = height(&mut Client::connect(a.rpc()?)?)?;
    let (hb, idb) = height(&mut c)?;
    if (ha, &ida) != (hb, &idb) {
        return Err(format!("tips differ: {ha} {ida} vs {hb} {idb}"));
    }
    println!(
        "sync: an empty node synced {blocks} blocks ({:.2} MB) from one peer in {el:.2} s (process start {:.2} s, first block at {:.2} s): {:.0} blocks/s, {:.2} MB/s",
        bytes_total as f64 / 1e6,
        t_started.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64(),
        blocks as f64 / el,
        bytes_total as f64 / 1e6 / el
    );
    println!(
        "sync: over the network / in-process import = {:.2}",
        el / import_s
    );
    Ok(())
}

fn propagate(nodes: usize, blocks: u64, interval_ms: u64) -> Result<(), String> {
    if nodes < 2 {
        return Err("--nodes: at least 2".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut children: Vec<Child> = Vec::new();
    for i in 0..nodes {
        let d = dir.path().join(format!("n{i}"));
        let interval = interval_ms.to_string();
        let c = if i == 0 {
            Child::devnet(
                &d,
                &["--block-interval-ms", &interval],
                &[("TB_MINE", "0"), ("TB_PROVIDER", "0"), ("TB_VERIFIER", "0")],
            )?
        } else {
            let boot = children[i - 1].p2p()?;
            Child::devnet(&d, &["--bootnode", &boot], &WORKERS_OFF)?
        };
        children.push(c);
    }
    // Wait for the line to form (each node but the ends has two peers).
    let t0 = Instant::now();
    for (i, ch) in children.iter().enumerate() {
        let want = if i == 0 || i == nodes - 1 { 1 } else { 2 };
        let mut c = Client::connect(ch.rpc()?)?;
        loop {
            let n = c.call("net.info", json!([]))?["peers"]
                .as_array()
                .map_or(0, |p| p.len());
            if n >= want {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!("node {i} has {n} peers"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_secs(2)); // gossip meshes graft on heartbeats
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen: Arc<std::sync::Mutex<Vec<std::collections::HashMap<String, Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![Default::default(); nodes]));
    let mut pollers = Vec::new();
    for (i, ch) in children.iter().enumerate() {
        let addr = ch.rpc()?;
        let (stop, seen) = (stop.clone(), seen.clone());
        pollers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut c = Client::connect(addr)?;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, id) = height(&mut c)?;
                let now = Instant::now();
                seen.lock().unwrap()[i].entry(id).or_insert(now);
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }));
    }
    let mut m = Client::connect(children[0].rpc()?)?.with_token(&children[0].token()?);
    let h0 = height(&mut m)?.0;
    m.call("start_mining", json!([]))?;
    loop {
        if height(&mut m)?.0 >= h0 + blocks {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    m.call("stop_mining", json!([]))?;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.join().map_err(|_| "poller panicked")??;
    }
    let seen = seen.lock().unwrap();
    println!(
        "propagate: {nodes} nodes in a line, {blocks} blocks mined at node 0 every {interval_ms} ms; delay from node 0's head to node i's head (ms, polled every 1 ms):"
    );
    for i in 1..nodes {
        let mut d: Vec<Duration> = seen[0]
            .iter()
            .filter_map(|(id, t)| seen[i].get(id).map(|ti| ti.saturating_duration_since(*t)))
            .collect();
        let n = d.len();
        if n == 0 {
            return Err(format!("node {i} saw none of node 0's blocks"));
        }
        let med = quantile(&mut d, 0.5);
        let p90 = quantile(&mut d, 0.9);
        let max = quantile(&mut d, 1.0);
        println!("  {i} hop(s): {n} blocks, median {med:.1}, p90 {p90:.1}, max {max:.1}");
    }
    Ok(())
}

/// Waits until `key` holds 100 Industrial tokens and the devnet's provider has staked.
fn wait_ready(c: &mut Client, key: &SecretKey) -> Result<(), String> {
    let provider = SecretKey::dev("devnet-provider").address().to_string();
    loop {
        let b = c.call("balance", json!([key.address().to_string()]))?;
        let p = c.call("aicf.listProviders", json!([]))?;
        let staked = p.as_array().is_some_and(|v| {
            v.iter()
                .any(|x| x["address"] == provider.as_str() && x["stake"].as_u64() > Some(0))
        });
        if b["industrial"].as_u64() >= Some(100 * MICRO_PER_TOKEN) && staked {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A devnet (the real binary, blocks every `interval_ms`) once devnet-alice is funded
/// and its provider staked: its directory, the process, a client, alice's key and
/// `chain.info`.
fn ready_devnet(
    interval_ms: u64,
) -> Result<(tempfile::TempDir, Child, Client, SecretKey, Value), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let node = Child::devnet(
        dir.path(),
        &["--block-interval-ms", &interval_ms.to_string()],
        &[],
    )?;
    let mut c = Client::connect(node.rpc()?)?;
    let alice = SecretKey::dev("devnet-alice");
    wait_ready(&mut c, &alice)?;
    let info = c.call("chain.info", json!([]))?;
    Ok((dir, node, c, alice, info))
}

fn settle(jobs: usize, interval_ms: u64) -> Result<(), String> {
    let (_dir, node, mut c, alice, info) = ready_devnet(interval_ms)?;
    let result = (|| -> Result<(), String> {
        let chain_id = info["chain_id"].as_u64().ok_or("chain id")?;
        let job = tb_job::examples::build_example("mlp").map_err(|e| e.to_string())?;
        let blob = job.encode().map_err(|e| e.to_string())?;
        let h = c.call("chain.head", json!([]))?["height"]
            .as_u64()
            .ok_or("height")?;
        let spec = tb_chain::tx::JobSpec::for_job(&blob, &job, MICRO_PER_TOKEN, 1, h + 2_000)
            .map_err(|e| e.to_string())?;
        let mut payloads: Vec<TxPayload> = tb_chain::market::objects::publish_payloads(
            &tb_chain::ChainParams::devnet().market,
            alice.address(),
            &blob,
        )
        .into_iter()
        .map(TxPayload::PublishBlob)
        .collect();
        for _ in 0..jobs {
            payloads.push(TxPayload::SubmitJob(tb_chain::tx::SubmitJob {
                from: alice.address(),
                spec: spec.clone(),
                fee: 0,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            }));
        }
        let n0 = c.call("balance", json!([alice.address().to_string()]))?["next_nonce"]
            .as_u64()
            .ok_or("nonce")?;
        let t_submit = Instant::now();
        let mut ids = Vec::new();
        for (i, mut p) in payloads.into_iter().enumerate() {
            *p.nonce_mut() = n0 + i as u64;
            let tx = SignedTx::sign_paying_floor(p, &alice, chain_id, 1);
            let r = c.call(
                "submit_tx",
                json!([hex::encode(tb_primitives::encode(&tx))]),
            )?;
            if matches!(tx.payload, TxPayload::SubmitJob(_)) {
                ids.push(r["id"].as_str().ok_or("id")?.to_string());
            }
        }
        loop {
            let mut settled = 0;
            for id in &ids {
                if let Ok(j) = c.call("compute.getJob", json!([id])) {
                    match j["state"].as_str() {
                        Some("Settled") => settled += 1,
                        Some("Failed") => return Err(format!("job {id} failed")),
                        _ => {}
                    }
                }
            }
            if settled == ids.len() {
                break;
            }
            if t_submit.elapsed() > Duration::from_secs(900) {
                return Err(format!("{settled} of {} settled after 900 s", ids.len()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let el = t_submit.elapsed().as_secs_f64();
        let h1 = c.call("chain.head", json!([]))?["height"]
            .as_u64()
            .ok_or("height")?;
        println!(
            "settle: {jobs} mlp jobs, blocks every {interval_ms} ms, epoch {} blocks, 1 provider (4 leases): all settled in {el:.1} s over {} blocks = {:.1} jobs/min",
            info["market"]["epoch_blocks"],
            h1 - h,
            jobs as f64 * 60.0 / el
        );
        Ok(())
    })();
    drop(node);
    result
}

/// Signs `payloads` from `key`'s next nonce, sends them and waits until all are
/// included; returns (fees paid, chunk bytes published, the last transaction's id).
fn send_all(
    c: &mut Client,
    key: &SecretKey,
    chain_id: u64,
    payloads: Vec<TxPayload>,
) -> Result<(u64, u64, String), String> {
    let who = key.address().to_string();
    let n0 = c.call("balance", json!([who]))?["next_nonce"]
        .as_u64()
        .ok_or("nonce")?;
    let (mut fees, mut bytes, mut last) = (0u64, 0u64, String::new());
    let n = payloads.len() as u64;
    let wait_until = |c: &mut Client, nonce: u64| -> Result<(), String> {
        let t0 = Instant::now();
        while c.call("balance", json!([who]))?["nonce"].as_u64() < Some(nonce) {
            if t0.elapsed() > Duration::from_secs(300) {
                return Err("transactions not included after 300 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    };
    // At most ~6 MiB unconfirmed (a block holds 8 MiB), as `tb-cli` paces.
    let mut in_flight = 0u64;
    for (i, mut p) in payloads.into_iter().enumerate() {
        let nonce = n0 + i as u64;
        *p.nonce_mut() = nonce;
        let len = match &p {
            TxPayload::PublishBlob(b) => b.bytes.len() as u64,
            _ => 0,
        };
        if in_flight + len > 6 << 20 {
            wait_until(c, nonce)?;
            in_flight = 0;
        }
        bytes += len;
        in_flight += len;
        let tx = SignedTx::sign_paying_floor(p, key, chain_id, 1);
        fees += tx.payload.fee();
        let r = c.call(
            "submit_tx",
            json!([hex::encode(tb_primitives::encode(&tx))]),
        )?;
        last = r["id"].as_str().ok_or("id")?.to_string();
    }
    wait_until(c, n0 + n)?;
    Ok((fees, bytes, last))
}

/// One job's heights (submitted, leased, receipt, final, settled) and seconds from
/// submission (to the verified result, to final, to settled).
type Timing = (u64, u64, u64, u64, u64, f64, f64, f64);

/// The example `name` with its input changed by `k` (a distinct job of the same model);
/// `lookup` is `tb_job::examples::lookup_job` with a 100 MiB table.
fn variant(name: &str, k: u8) -> Result<tb_job::Job, String> {
    let mut job = if name == "lookup" {
        tb_job::examples::lookup_job(25_600, 1024, 8, 21)
    } else {
        tb_job::examples::build_example(name)
    }
    .map_err(|e| e.to_string())?;
    match &mut job.input {
        blocktorch::HostData::U8(v) => v[0] = v[0].wrapping_add(k),
        blocktorch::HostData::F32(v) => v[0] += k as f32 * 0.001,
        blocktorch::HostData::I32(v) => v[0] = v[0].wrapping_add(k as i32),
        blocktorch::HostData::U32(v) => v[0] = v[0].wrapping_add(k as u32),
    }
    tb_job::Job::new(job.kernel_digest, job.descriptor, job.program, job.input)
        .map_err(|e| e.to_string())
}

fn results(jobs: usize, interval_ms: u64) -> Result<(), String> {
    let (_dir, node, mut c, alice, info) = ready_devnet(interval_ms)?;
    let result = (|| -> Result<(), String> {
        let chain_id = info["chain_id"].as_u64().ok_or("chain id")?;
        let market = tb_chain::ChainParams::devnet().market;
        let height = |c: &mut Client| -> Result<u64, String> {
            c.call("chain.head", json!([]))?["height"]
                .as_u64()
                .ok_or_else(|| "height".to_string())
        };
        let tok = |m: u64| m as f64 / MICRO_PER_TOKEN as f64;
        // `from`'s chunks publishing `bytes`, then (given a spec) its `SubmitJob`.
        let payloads = |from: &SecretKey, bytes: &[u8], spec: Option<tb_chain::tx::JobSpec>| {
            let mut p: Vec<TxPayload> =
                tb_chain::market::objects::publish_payloads(&market, from.address(), bytes)
                    .into_iter()
                    .map(TxPayload::PublishBlob)
                    .collect();
            if let Some(spec) = spec {
                p.push(TxPayload::SubmitJob(tb_chain::tx::SubmitJob {
                    from: from.address(),
                    spec,
                    fee: 0,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                }));
            }
            p
        };
        for name in ["mlp", "transformer", "lookup"] {
            // The 100 MiB model: one job each way, paid by the miner (the dev keys
            // hold 200 tokens; 100 MiB of chunks costs about 105).
            let (jobs, alice) = if name == "lookup" {
                let miner = SecretKey::dev("devnet-miner");
                while c.call("balance", json!([miner.address().to_string()]))?["industrial"]
                    .as_u64()
                    < Some(300 * MICRO_PER_TOKEN)
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                (1, miner)
            } else {
                (jobs, alice.clone())
            };
            // Inline: every job's blob carries the model.
            let (mut fee_inline, mut bytes_inline) = (0u64, 0u64);
            for k in 0..jobs {
                let job = variant(name, k as u8 + 1)?;
                let blob = job.encode().map_err(|e| e.to_string())?;
                let h = height(&mut c)?;
                let spec =
                    tb_chain::tx::JobSpec::for_job(&blob, &job, MICRO_PER_TOKEN, 1, h + 2_000)
                        .map_err(|e| e.to_string())?;
                let (f, b, _) = send_all(
                    &mut c,
                    &alice,
                    chain_id,
                    payloads(&alice, &blob, Some(spec)),
                )?;
                fee_inline += f;
                bytes_inline += b;
            }
            // By reference: the model once, then each job's input.
            let first = variant(name, 101)?.with_form(tb_job::JobForm::ByReference);
            let model = first.model_bytes().map_err(|e| e.to_string())?;
            let (fee_model, bytes_model, _) =
                send_all(&mut c, &alice, chain_id, payloads(&alice, &model, None))?;
            let (mut fee_ref, mut bytes_ref) = (0u64, 0u64);
            let mut timings = Vec::new();
            for k in 0..jobs {
                let job = variant(name, 101 + k as u8)?.with_form(tb_job::JobForm::ByReference);
                let blob = job.encode().map_err(|e| e.to_string())?;
                let h = height(&mut c)?;
                // A deadline inside the model's paid retention: no rent.
                let spec = tb_chain::tx::JobSpec::for_job(&blob, &job, MICRO_PER_TOKEN, 1, h + 400)
                    .map_err(|e| e.to_string())?;
                let t0 = Instant::now();
                let (f, b, tx) = send_all(
                    &mut c,
                    &alice,
                    chain_id,
                    payloads(&alice, &blob, Some(spec)),
                )?;
                fee_ref += f;
                bytes_ref += b;
                // Follow it: lease, verified result, final, settled.
                let (mut t_result, mut t_final) = (None, None);
                let (mut lease_h, mut receipt_h, mut final_h) = (0, 0, 0);
                let submitted = c.call("chain.getTx", json!([tx]))?["height"]
                    .as_u64()
                    .ok_or("submitted height")?;
                loop {
                    let j = c.call("compute.getJob", json!([tx]))?;
                    if let Some(l) = j["leases"].get(0).or(j["receipts"].get(0)) {
                        if lease_h == 0 {
                            lease_h = l["start"].as_u64().unwrap_or(0);
                        }
                    }
                    let r = c.call("compute.getResult", json!([tx]))?;
                    let status = r["status"].as_str().unwrap_or("");
                    if t_result.is_none() && matches!(status, "provisional" | "final") {
                        // Readable and checked by the node against the receipt.
                        t_result = Some(t0.elapsed().as_secs_f64());
                        receipt_h = r["receipt_height"].as_u64().unwrap_or(0);
                    }
                    if t_final.is_none() && status == "final" {
                        t_final = Some(t0.elapsed().as_secs_f64());
                        final_h = height(&mut c)?;
                    }
                    if j["state"] == "Settled" {
                        break;
                    }
                    if j["state"] == "Failed" {
                        return Err(format!("{name} job {tx} failed: {}", j["failure"]));
                    }
                    if t0.elapsed() > Duration::from_secs(600) {
                        return Err(format!("{name} job {tx} not settled after 600 s"));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                if lease_h == 0 {
                    // The lease closed with the receipt: its start is the receipt's
                    // latency before it.
                    let j = c.call("compute.getJob", json!([tx]))?;
                    let rc = &j["receipts"][0];
                    lease_h = rc["height"].as_u64().unwrap_or(0)
                        - rc["latency_blocks"].as_u64().unwrap_or(0);
                }
                let settled_h = height(&mut c)?;
                timings.push((
                    submitted,
                    lease_h,
                    receipt_h,
                    final_h,
                    settled_h,
                    t_result.unwrap_or(0.0),
                    t_final.unwrap_or(0.0),
                    t0.elapsed().as_secs_f64(),
                ));
            }
            let n = jobs as f64;
            println!(
                "results {name}: {jobs} jobs inline: {:.0} bytes and {:.6} tokens of fees per job; \
                 by reference: {:.0} bytes and {:.6} tokens per job, plus the model once \
                 ({bytes_model} bytes, {:.6} tokens): per-job fee {:.0}x less, bytes {:.0}x less",
                bytes_inline as f64 / n,
                tok(fee_inline) / n,
                bytes_ref as f64 / n,
                tok(fee_ref) / n,
                tok(fee_model),
                fee_inline as f64 / fee_ref as f64,
                bytes_inline as f64 / bytes_ref as f64
            );
            let med = |mut v: Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let d = |f: fn(&Timing) -> f64| med(timings.iter().map(f).collect());
            println!(
                "results {name} (medians of {jobs}, blocks every {interval_ms} ms): \
                 inclusion→lease {:.0} blocks; lease→verified result {:.0} blocks; \
                 lease→final {:.0} blocks; lease→settled {:.0} blocks; \
                 submission→verified result {:.1} s, →final {:.1} s, →settled {:.1} s",
                d(|t| (t.1 - t.0) as f64),
                d(|t| (t.2 - t.1) as f64),
                d(|t| (t.3 - t.1) as f64),
                d(|t| (t.4 - t.1) as f64),
                d(|t| t.5),
                d(|t| t.6),
                d(|t| t.7)
            );
        }
        Ok(())
    })();
    drop(node);
    result
}
