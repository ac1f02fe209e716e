//! The `run` command (and the service `devnet` starts too): open the node, start the JSON-RPC server, the
//! metrics server and the workers, write `<data dir>/node.json` (the bound addresses,
//! for scripts and tests that ask for port 0), and on SIGINT or SIGTERM stop everything
//! in order: servers, then workers (the miner finishes or abandons its block; a block
//! import is one redb transaction, committed whole or not at all), then the mempool is
//! saved to `<data dir>/mempool.bin` and re-admitted at the next start.

use crate::config::{self, NodeConfig, RunArgs};
use crate::node::Node;
use crate::workers::miner;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tb_chain::SignedTx;
use tb_primitives::SecretKey;

/// Largest saved mempool file read back.
pub const MEMPOOL_FILE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The keys the workers sign with.
pub struct Keys {
    /// The miner's beneficiary.
    pub miner: Option<tb_primitives::Address>,
    pub provider: Option<SecretKey>,
    pub verifier: Option<SecretKey>,
}

pub fn run_cmd(args: &RunArgs) -> Result<(), String> {
    let cfg = config::load(args).map_err(|e| e.to_string())?;
    if args.print_config {
        print!("{}", config::to_toml(&cfg));
        return Ok(());
    }
    let key = cfg.node_key().map_err(|e| e.to_string())?;
    let keys = Keys {
        miner: key.as_ref().map(|k| k.address()),
        provider: key.clone().filter(|_| cfg.provider.enabled),
        verifier: key.clone().filter(|_| cfg.verifier.enabled),
    };
    serve(cfg, key, keys, None)
}

fn load_mempool(node: &Node, path: &Path) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    match tb_primitives::decode::<Vec<SignedTx>>(&bytes, MEMPOOL_FILE_BYTES_MAX) {
        Ok(txs) => {
            let n = txs.len();
            let ok = txs
                .into_iter()
                .filter(|t| node.submit(t.clone()).is_ok())
                .count();
            tracing::info!(
                readmitted = ok,
                saved = n,
                "mempool: saved transactions re-admitted"
            );
        }
        Err(e) => tracing::warn!(
            file = %path.display(),
            error = %e,
            "saved mempool unreadable; ignored"
        ),
    }
}

fn save_mempool(node: &Node, path: &Path) {
    let txs: Vec<SignedTx> = node.core().pool.iter().cloned().collect();
    if txs.is_empty() {
        return;
    }
    let tmp = path.with_extension("tmp");
    let bytes = tb_primitives::encode(&txs);
    if bytes.len() > MEMPOOL_FILE_BYTES_MAX {
        tracing::warn!(bytes = bytes.len(), "mempool too large to save");
        return;
    }
    if std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .is_ok()
    {
        tracing::info!(transactions = txs.len(), "mempool saved");
    }
}

/// Runs the node until a signal.
pub fn serve(
    cfg: NodeConfig,
    key: Option<SecretKey>,
    keys: Keys,
    extra: Option<fn(Arc<Node>)>,
) -> Result<(), String> {
    let params = cfg.network.params();
    let node = Node::open_full(&cfg.data_dir, params, key, cfg.store(), cfg.mempool.pool())?;
    let mempool_file = cfg.data_dir.join("mempool.bin");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let net = rt.block_on(crate::p2p::start(&node, &cfg))?;
    // After the network: the saved transactions are gossiped again (kept for a retry
    // until a peer is subscribed).
    load_mempool(&node, &mempool_file);
    let token_file = cfg
        .admin_token_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("admin.token"));
    let admin_token = crate::rpc::admin_token(&token_file)?;
    let (rpc_addr, handle) = rt.block_on(crate::rpc::start(
        node.clone(),
        cfg.rpc_addr,
        crate::rpc::RpcLimits::of(&cfg),
        Some(admin_token),
        cfg.explorer,
    ))?;
    let mut threads = Vec::new();
    let (metrics_addr, metrics_task) = match cfg.metrics_addr {
        Some(a) => {
            let l = {
                let _guard = rt.enter();
                crate::http::bind(a).map_err(|e| format!("metrics on {a}: {e}"))?
            };
            let local = l.local_addr().map_err(|e| e.to_string())?;
            let endpoints =
                crate::http::Endpoints::new(node.clone(), !cfg.p2p.bootnodes.is_empty());
            (
                Some(local),
                Some(rt.spawn(crate::http::serve(l, endpoints))),
            )
        }
        None => (None, None),
    };
    if let Some(b) = keys.miner {
        node.mining.store(cfg.miner.enabled, Ordering::Relaxed);
        let n = node.clone();
        let interval = Duration::from_millis(cfg.miner.block_interval_ms);
        threads.push(std::thread::spawn(move || miner::run(n, b, interval)));
    }
    // One cache of prepared models for the provider and the verifier together.
    let models = Arc::new(cfg.model_cache());
    if let Some(k) = keys.provider {
        let n = node.clone();
        let pc = cfg.provider.clone();
        let dir = cfg.data_dir.clone();
        let models = models.clone();
        threads.push(std::thread::spawn(move || {
            if let Err(e) = crate::workers::provider::run(n.clone(), k, pc, dir, models) {
                tracing::error!(target: "the_block::workers::provider", error = %e, "provider stopped");
            }
        }));
    }
    if let Some(k) = keys.verifier {
        let n = node.clone();
        let vc = cfg.verifier.clone();
        let models = models.clone();
        threads.push(std::thread::spawn(move || {
            crate::workers::verifier::run(n, k, vc, models)
        }));
    }
    {
        let n = node.clone();
        let every = Duration::from_secs(cfg.mempool.purge_interval_secs);
        threads.push(std::thread::spawn(move || purge_loop(n, every)));
    }
    if let Some(f) = extra {
        let n = node.clone();
        threads.push(std::thread::spawn(move || f(n)));
    }
    let p2p = net.as_ref().map(|n| {
        let listen: Vec<String> = n
            .view()
            .listen
            .iter()
            .map(|a| format!("{a}/p2p/{}", n.peer_id))
            .collect();
        json!({"peer_id": n.peer_id.to_string(), "listen": listen})
    });
    let info = json!({
        "rpc": rpc_addr.to_string(),
        "metrics": metrics_addr.map(|a| a.to_string()),
        "explorer": cfg.explorer.then(|| format!("http://{rpc_addr}{}/", crate::explorer::PATH)),
        "admin_token_file": token_file.display().to_string(),
        "p2p": p2p,
        "chain_id": node.params.chain_id,
        "pid": std::process::id(),
    });
    // Started: the saved mempool is in the pool now (a failed start keeps the file).
    let _ = std::fs::remove_file(&mempool_file);
    let info_path = cfg.data_dir.join("node.json");
    let tmp = info_path.with_extension("tmp");
    std::fs::write(&tmp, info.to_string())
        .and_then(|_| std::fs::rename(&tmp, &info_path))
        .map_err(|e| format!("{}: {e}", info_path.display()))?;
    {
        let c = node.core();
        tracing::info!(
            chain_id = node.params.chain_id,
            height = c.db.tip().height,
            tip = %c.db.tip_id(),
            data = %cfg.data_dir.display(),
            version = crate::build_info::VERSION,
            commit = crate::build_info::GIT_COMMIT,
            "node started"
        );
        if c.db.reexecuted_at_open() > 0 {
            tracing::warn!(
                blocks = c.db.reexecuted_at_open(),
                "re-executed the last blocks, whose state a crash kept from being written"
            );
        }
    }
    tracing::info!(addr = %rpc_addr, "JSON-RPC (HTTP and WebSocket)");
    if let Some(a) = metrics_addr {
        tracing::info!(url = %format!("http://{a}/metrics"), "metrics, /health, /ready");
    }
    if let Some(p) = &p2p {
        for a in p["listen"].as_array().into_iter().flatten() {
            tracing::info!(addr = a.as_str().unwrap_or_default(), "p2p listening");
        }
    }
    rt.block_on(async {
        tokio::select! {
            r = wait_for_signal() => r,
            _ = node.shutdown_requested.notified() => Ok(()),
        }
    })?;
    tracing::info!("stopping (a second signal exits at once)");
    rt.spawn(async {
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting without waiting for the workers");
            std::process::exit(130);
        }
    });
    let _ = handle.stop();
    if let Some(t) = &metrics_task {
        t.abort();
    }
    if let Some(n) = &net {
        n.shutdown();
    }
    node.shutdown();
    for t in threads {
        let _ = t.join();
    }
    rt.block_on(handle.stopped());
    save_mempool(&node, &mempool_file);
    let _ = std::fs::remove_file(&info_path);
    let mut c = node.core();
    // The state of the last blocks is written now, so the next start re-executes
    // nothing.
    if let Err(e) = c.db.flush() {
        tracing::error!(
            error = %e,
            "flushing the state failed (the next start re-executes the last blocks)"
        );
    }
    tracing::info!(height = c.db.tip().height, "stopped");
    Ok(())
}

/// The mempool's purge loop: every `every`, drops the entries whose time to live ran
/// out (blocks do it too; this keeps an idle node's pool honest).
fn purge_loop(node: Arc<Node>, every: Duration) {
    let mut next = std::time::Instant::now() + every;
    while !node.stopping() {
        std::thread::sleep(Duration::from_millis(200).min(every));
        if std::time::Instant::now() < next {
            continue;
        }
        next += every;
        let dropped = node.purge_mempool();
        if dropped > 0 {
            tracing::info!(
                op = "purge_loop",
                reason = "ttl_drop_total",
                code = 0,
                dropped,
                "mempool entries expired"
            );
        }
    }
}

pub(crate) async fn wait_for_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    }
}
