//! Benchmarks of the node behind `BENCHMARKS.md`:
//!
//! - `tb-node-bench rpc [--clients N] [--secs S]`: JSON-RPC throughput of `balance` and
//!   `submit_tx` on an in-process node (the real jsonrpsee server on a loopback port),
//!   driven by N keep-alive HTTP clients; requests per second and latency p50/p99.
//! - `tb-node-bench settle [--jobs N] [--block-interval-ms M]`: jobs settled per minute
//!   end to end on a devnet (the real `the-block devnet` binary beside this one): N
//!   example jobs submitted at once, timed from the first submission to the last
//!   settlement.
#![forbid(unsafe_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
        Some("settle") => settle(opt("--jobs", 20) as usize, opt("--block-interval-ms", 200)),
        _ => Err("usage: tb-node-bench rpc [--clients N] [--secs S] | settle [--jobs N] [--block-interval-ms M]".into()),
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
}

impl Client {
    fn connect(a: SocketAddr) -> Result<Client, String> {
        let s = TcpStream::connect(a).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Client {
            w: s.try_clone().map_err(|e| e.to_string())?,
            r: BufReader::new(s),
        })
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        write!(
            self.w,
            "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
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
        let v: Value = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
        match v.get("error") {
            Some(e) => Err(e.to_string()),
            None => Ok(v["result"].clone()),
        }
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

fn rpc(clients: usize, secs: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let miner = SecretKey::dev("bench-miner");
    let node = Node::open(
        dir.path(),
        tb_chain::ChainParams::devnet(),
        Some(miner.clone()),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (addr, handle) = rt.block_on(the_block::rpc::start(
        node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        8 << 20,
        1024,
    ))?;
    // Fund senders: rewards to the miner, then transfers to 150 senders.
    for _ in 0..30 {
        the_block::miner::mine_one(&node, miner.address())?;
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
                    fee_selector: 0,
                    nonce: 0,
                    memo: vec![],
                })
            })
            .collect();
        node.submit_signed(&miner, p).map_err(|e| e.to_string())?;
        the_block::miner::mine_one(&node, miner.address())?;
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
                    fee_selector: 0,
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

fn settle(jobs: usize, interval_ms: u64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("the-block");
    if !bin.exists() {
        return Err(format!(
            "{} not built (cargo build --release --bin the-block)",
            bin.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(&bin)
        .arg("devnet")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .args(["--block-interval-ms", &interval_ms.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| -> Result<(), String> {
        let t0 = Instant::now();
        let info: Value = loop {
            if let Some(v) = std::fs::read_to_string(dir.path().join("node.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
            {
                break v;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err("the devnet did not start".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let addr: SocketAddr = info["rpc"]
            .as_str()
            .ok_or("no rpc")?
            .parse()
            .map_err(|_| "bad rpc")?;
        let mut c = Client::connect(addr)?;
        let alice = SecretKey::dev("devnet-alice");
        let provider = SecretKey::dev("devnet-provider").address().to_string();
        loop {
            let b = c.call("balance", json!([alice.address().to_string()]))?;
            let p = c.call("aicf.listProviders", json!([]))?;
            let staked = p.as_array().is_some_and(|v| {
                v.iter()
                    .any(|x| x["address"] == provider.as_str() && x["stake"].as_u64() > Some(0))
            });
            if b["industrial"].as_u64() >= Some(100 * MICRO_PER_TOKEN) && staked {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let info = c.call("chain.info", json!([]))?;
        let chain_id = info["chain_id"].as_u64().ok_or("chain id")?;
        let job = tb_job::examples::build_example("mlp").map_err(|e| e.to_string())?;
        let blob = job.encode().map_err(|e| e.to_string())?;
        let h = c.call("chain.head", json!([]))?["height"]
            .as_u64()
            .ok_or("height")?;
        let spec = tb_chain::tx::JobSpec::for_job(&blob, &job, MICRO_PER_TOKEN, 1, h + 2_000)
            .map_err(|e| e.to_string())?;
        let mut payloads: Vec<TxPayload> = tb_chain::market::dispute::publish_payloads(
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
                fee_selector: 1,
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
    let _ = child.kill();
    let _ = child.wait();
    result
}
