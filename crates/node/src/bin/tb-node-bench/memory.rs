//! `tb-node-bench rpc-memory [--clients N] [--mb M] [--rounds R] [--budget-mb B]`:
//! the node's resident memory under N concurrent M-megabyte JSON-RPC requests.
//!
//! A `the-block devnet` child (workers off) is configured to let every client in
//! (`rpc_max_connections` and `rpc_connections_per_ip` above N, requests up to
//! M MB + 1 MiB) with `rpc_request_memory_mb` = B (default: the node's default). Each
//! round, N threads each POST one `submit_tx` whose hex parameter makes the body M
//! MB (the node decodes it and refuses the transaction as too large), all released
//! together; the answers are counted by HTTP status. The child's `VmRSS` and `VmHWM`
//! (peak) from `/proc` are printed before, after each round, and 3 s after it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `VmRSS` and `VmHWM` of `pid`, MiB.
fn rss(pid: u32) -> Result<(f64, f64), String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |name: &str| -> f64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// POSTs `body` on a fresh connection; the answer's HTTP status (0: no answer).
fn post(addr: SocketAddr, body: &[u8]) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let head = format!(
        "POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    std::str::from_utf8(answer.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub fn rpc_memory(clients: usize, mb: u64, rounds: usize, budget_mb: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bytes = mb * 1_000_000;
    let mut cfg = format!(
        "rpc_max_request_bytes = {}\nrpc_max_connections = {}\nrpc_connections_per_ip = {}\n",
        bytes + (1 << 20),
        clients + 16,
        clients + 16
    );
    if budget_mb > 0 {
        cfg += &format!("rpc_request_memory_mb = {budget_mb}\n");
    }
    let cfg_path = dir.path().join("bench.toml");
    std::fs::write(&cfg_path, &cfg).map_err(|e| e.to_string())?;
    let node = super::Child::devnet(
        &dir.path().join("node"),
        &["--config", cfg_path.to_str().ok_or("a path")?],
        &super::WORKERS_OFF,
    )?;
    let addr = node.rpc()?;
    let pid = node.child.id();
    // `submit_tx` with a hex string making the body `bytes` long.
    let frame = r#"{"jsonrpc":"2.0","id":1,"method":"submit_tx","params":[""]}"#;
    let hex_len = (bytes as usize - frame.len()) & !1;
    let body: Arc<Vec<u8>> = Arc::new(
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"submit_tx","params":["{}"]}}"#,
            "ab".repeat(hex_len / 2)
        )
        .into_bytes(),
    );
    let (r0, _) = rss(pid)?;
    println!(
        "rpc-memory: {clients} clients x {:.1} MB bodies, rpc_request_memory_mb = {}, before: RSS {r0:.0} MiB",
        body.len() as f64 / 1e6,
        if budget_mb > 0 { budget_mb.to_string() } else { "default".into() }
    );
    for round in 1..=rounds {
        let start = Arc::new(std::sync::Barrier::new(clients));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (start, body) = (start.clone(), body.clone());
                std::thread::spawn(move || {
                    start.wait();
                    post(addr, &body)
                })
            })
            .collect();
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        for t in threads {
            *by_status
                .entry(t.join().map_err(|_| "a client panicked")?)
                .or_default() += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        let (now, peak) = rss(pid)?;
        std::thread::sleep(Duration::from_secs(3));
        let (later, _) = rss(pid)?;
        println!(
            "round {round}: {secs:.1} s, answers by status {by_status:?}; RSS {now:.0} MiB, peak {peak:.0} MiB, 3 s later {later:.0} MiB"
        );
    }
    Ok(())
}
