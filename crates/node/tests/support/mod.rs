//! Drives the real `the-block` binary: starts it in a temporary directory on port 0
//! (`process.rs`, shared with tb-cli's tests), talks JSON-RPC over plain HTTP and
//! WebSocket, scrapes `/metrics`, and kills it (SIGKILL) when dropped.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{JobSpec, SubmitJob};
use tb_chain::{SignedTx, TxPayload};
use tb_primitives::{SecretKey, MICRO_PER_TOKEN};

mod process;
pub use process::{wait_for, Node};

/// A signed transfer, as hex, from a key that holds nothing (`SecretKey::dev("nobody")`,
/// on the devnet's chain id): well formed, refused by the mempool for its balance.
pub fn unfunded_transfer_hex(nonce: u64) -> (SecretKey, String) {
    let k = SecretKey::dev("nobody");
    let tx = tb_chain::SignedTx::sign(
        TxPayload::Transfer(tb_chain::Transfer {
            from: k.address(),
            to: k.address(),
            amount_consumer: 5,
            amount_industrial: 0,
            fee: 10_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce,
            memo: vec![],
        }),
        &k,
        1337,
    );
    (k, hex::encode(tb_primitives::encode(&tx)))
}

impl Node {
    /// Starts `the-block COMMAND --data-dir DIR --rpc-addr 127.0.0.1:0 ARGS` with `envs`.
    pub fn start(command: &str, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Node {
        Node::start_bin(
            Path::new(env!("CARGO_BIN_EXE_the-block")),
            command,
            dir,
            args,
            envs,
        )
    }

    /// Starts a devnet with blocks every 150 ms and metrics.
    pub fn devnet(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Node {
        Node::devnet_bin(Path::new(env!("CARGO_BIN_EXE_the-block")), dir, args, envs)
    }

    /// The node's first peer-to-peer listen address, with `/p2p/<peer id>`.
    pub fn p2p(&self) -> String {
        self.node_json()["p2p"]["listen"][0]
            .as_str()
            .expect("the network is on")
            .to_string()
    }

    /// One JSON-RPC call; `Ok(result)` or `Err(error object)`.
    /// One JSON-RPC call with the admin token (as the operator makes them).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        self.call_as(method, params, self.admin_token.as_deref())
    }

    /// One JSON-RPC call, with `token` as `Authorization: Bearer` when given.
    pub fn call_as(
        &self,
        method: &str,
        params: Value,
        token: Option<&str>,
    ) -> Result<Value, Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (status, text) =
            http_with(self.rpc, "POST", "/", body.to_string().as_bytes(), &headers);
        assert_eq!(status, 200, "{method}: HTTP {status}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        match v.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(v["result"].clone()),
        }
    }

    /// A call that must succeed.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}\nnode log:\n{}", self.log_text()))
    }

    pub fn height(&self) -> u64 {
        self.ok("chain.head", json!([]))["height"].as_u64().unwrap()
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        let (status, text) = http(self.metrics.expect("metrics on"), "GET", "/metrics", b"");
        assert_eq!(status, 200);
        text
    }

    /// A sample's value from `/metrics` (`name` with its labels, e.g. `jobs{state="Settled"}`).
    /// The value of `series` (its name without the `tb_` prefix, labels as rendered).
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.metrics_text();
        let series = format!("tb_{series}");
        text.lines()
            .find_map(|l| l.strip_prefix(&series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }

    /// Signs `payloads` with `key` from its next nonce and submits them.
    pub fn send(&self, key: &SecretKey, payloads: Vec<TxPayload>) -> Vec<String> {
        self.try_send(key, payloads)
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|e| {
                    panic!("submit_tx failed: {e}\nnode log:\n{}", self.log_text())
                })
            })
            .collect()
    }

    /// [`Node::send`], with each submission's id or the error the node answered.
    pub fn try_send(
        &self,
        key: &SecretKey,
        payloads: Vec<TxPayload>,
    ) -> Vec<Result<String, Value>> {
        let info = self.ok("chain.info", json!([]));
        let chain_id = info["chain_id"].as_u64().unwrap();
        let floor = info["fee_floor_per_byte"].as_u64().unwrap();
        let n0 = self.ok("balance", json!([key.address().to_string()]))["next_nonce"]
            .as_u64()
            .unwrap();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                *p.nonce_mut() = n0 + i as u64;
                let tx = SignedTx::sign_paying_floor(p, key, chain_id, floor);
                let hex = hex::encode(tb_primitives::encode(&tx));
                self.call("submit_tx", json!([hex]))
                    .map(|r| r["id"].as_str().unwrap().to_string())
            })
            .collect()
    }

    /// The best chain's total work (`chain.info`).
    pub fn total_work(&self) -> u128 {
        self.ok("chain.info", json!([]))["total_work"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Publishes the example job `name` and submits it from `key` (max price 2 tokens,
    /// one replica); returns the SubmitJob transaction id.
    pub fn submit_example(&self, key: &SecretKey, name: &str) -> String {
        let job = tb_job::examples::build_example(name).unwrap();
        self.submit_job(key, &job, 400)
    }

    /// Publishes the model of example `name` (in its own transactions, mined before the
    /// job is submitted), then submits a job that names it; returns the SubmitJob id.
    pub fn submit_by_reference(&self, key: &SecretKey, name: &str, deadline_blocks: u64) -> String {
        let job = tb_job::examples::build_example(name)
            .unwrap()
            .with_form(tb_job::JobForm::ByReference);
        let model = job.model_bytes().unwrap();
        let market = tb_chain::ChainParams::devnet().market;
        let p: Vec<TxPayload> =
            tb_chain::market::objects::publish_payloads(&market, key.address(), &model)
                .into_iter()
                .map(TxPayload::PublishBlob)
                .collect();
        self.send(key, p);
        let sha = hex::encode(job.artifact_hash);
        wait_for(60, "the model on chain", || {
            (self.ok("compute.hasBlob", json!([sha]))["published"] == json!(true)).then_some(())
        });
        self.submit_job(key, &job, deadline_blocks)
    }

    /// Publishes `job`'s blob and submits it from `key` (max price 2 tokens, one
    /// replica, deadline `deadline_blocks` from now); returns the SubmitJob id.
    pub fn submit_job(&self, key: &SecretKey, job: &tb_job::Job, deadline_blocks: u64) -> String {
        let blob = job.encode().unwrap();
        let spec = JobSpec::for_job(
            &blob,
            job,
            2 * MICRO_PER_TOKEN,
            1,
            self.height() + deadline_blocks,
        )
        .unwrap();
        let market = tb_chain::ChainParams::devnet().market;
        let mut p: Vec<TxPayload> =
            tb_chain::market::objects::publish_payloads(&market, key.address(), &blob)
                .into_iter()
                .map(TxPayload::PublishBlob)
                .collect();
        p.push(TxPayload::SubmitJob(SubmitJob {
            from: key.address(),
            spec,
            fee: 0,
            fee_selector: FeeSelector::Industrial.into(),
            nonce: 0,
        }));
        self.send(key, p).pop().unwrap()
    }

    /// Waits until `key` holds at least `tokens` Industrial tokens.
    pub fn wait_funded(&self, key: &SecretKey, tokens: u64) {
        let a = key.address().to_string();
        wait_for(90, "dev key funding", || {
            (self.ok("balance", json!([a]))["industrial"].as_u64()? >= tokens * MICRO_PER_TOKEN)
                .then_some(())
        });
    }

    /// Waits until the devnet's provider is registered with stake.
    pub fn wait_provider(&self) -> String {
        self.wait_provider_of(&SecretKey::dev("devnet-provider"))
    }

    /// Waits until `key` is a registered provider with stake.
    pub fn wait_provider_of(&self, key: &SecretKey) -> String {
        let p = key.address().to_string();
        wait_for(90, "the provider's stake", || {
            let v = self.call("aicf.getProvider", json!([p])).ok()?;
            (v["stake"].as_u64()? > 0).then_some(())
        });
        p
    }

    /// Waits until job `tx` (its SubmitJob id) is in one of `states`; returns the job.
    pub fn wait_job(&self, tx: &str, states: &[&str], secs: u64) -> Value {
        wait_for(secs, &format!("job in {states:?}"), || {
            let j = self.call("compute.getJob", json!([tx])).ok()?;
            states.contains(&j["state"].as_str()?).then_some(j)
        })
    }
}

/// One HTTP/1.1 request; returns the status and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_with(addr, method, path, body, &[])
}

/// [`http`] with extra headers.
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// A WebSocket JSON-RPC client with subscriptions.
pub struct Ws {
    sock: tungstenite::WebSocket<TcpStream>,
    next: u64,
    /// Notifications received so far: (subscription method, result).
    pub events: Vec<(String, Value)>,
}

impl Ws {
    pub fn connect(addr: SocketAddr) -> Ws {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (sock, _) = tungstenite::client(format!("ws://{addr}/"), stream).expect("ws handshake");
        Ws {
            sock,
            next: 1,
            events: Vec::new(),
        }
    }

    pub fn send_text(&mut self, text: &str) {
        self.sock
            .send(tungstenite::Message::Text(text.to_string().into()))
            .unwrap();
    }

    /// Reads one message (`None` on timeout).
    pub fn read(&mut self) -> Option<Value> {
        match self.sock.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str(t.as_str()).ok(),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// A call over the socket; notifications read meanwhile are kept.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send_text(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        wait_for(10, method, || {
            let m = self.read()?;
            if m["id"].as_u64() == Some(id) {
                return Some(m);
            }
            self.keep(m);
            None
        })
    }

    fn keep(&mut self, m: Value) {
        if let Some(method) = m["method"].as_str() {
            self.events
                .push((method.to_string(), m["params"]["result"].clone()));
        }
    }

    /// The `method` notifications that have arrived (reads what is waiting first).
    pub fn seen(&mut self, method: &str) -> Vec<Value> {
        while let Some(m) = self.read() {
            self.keep(m);
        }
        self.events
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Reads notifications until one of `method` satisfies `f`.
    pub fn wait_event(&mut self, secs: u64, method: &str, f: impl Fn(&Value) -> bool) -> Value {
        if let Some((_, v)) = self.events.iter().find(|(m, v)| m == method && f(v)) {
            return v.clone();
        }
        wait_for(secs, &format!("a {method} event"), || {
            let m = self.read()?;
            self.keep(m);
            let (mm, v) = self.events.last()?;
            (mm == method && f(v)).then(|| v.clone())
        })
    }
}
