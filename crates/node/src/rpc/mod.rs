//! JSON-RPC 2.0 over HTTP and WebSocket (one port, jsonrpsee). The interface is the
//! traits of [`api`] (crate `tb-rpc-api`, shared with tb-cli's generated client), one
//! per namespace; parameters by position or by name ([`params`]). Every method, its parameters, results, codes and limits are in
//! `docs/spec/rpc.md` (a test checks the document against [`method_names`]). A malformed
//! request gets a JSON-RPC error naming what is wrong (-32700 parse, -32600 invalid
//! request, -32601 unknown method, -32602 bad params with the reason in `data`, and the
//! node's own codes below), and the server keeps serving.
//!
//! The admin methods ([`ADMIN_METHODS`]) need the admin token: the request's HTTP (or
//! WebSocket upgrade) header `Authorization: Bearer <token>`, where the token is the
//! content of the node's admin token file (`<data dir>/admin.token`, made at first
//! start, mode 0600, as reth's authenticated port does with its JWT secret).

mod budget;
mod chain;
mod compute;
mod events;
mod serve;
mod wallet;

pub use serve::RpcLimits;

pub use tb_rpc_api::{api, params};
pub use tb_rpc_api::{
    ADMIN_METHODS, ERR_NOT_FOUND, ERR_PARAMS, ERR_TX_REJECTED, ERR_UNAUTHORIZED, ERR_UNAVAILABLE,
};

use crate::node::Node;
use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceBuilder, RpcServiceT};
use jsonrpsee::server::{RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tb_chain::market::records as r;
use tb_chain::{SignedTx, StateRead};
use tb_primitives::{Address, Id};
use tb_rpc_api::results::TxAccepted;

/// Most items a list method returns.
pub const LIST_MAX: usize = 1000;
/// Largest blob `compute.getBlob` returns (hex doubles it on the wire).
pub const RPC_BLOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest response body.
pub const RPC_RESPONSE_BYTES_MAX: u32 = 2 * RPC_BLOB_BYTES_MAX as u32 + 64 * 1024;
/// Most subscriptions one connection may hold.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 64;
/// Length of a generated admin token, hex digits.
pub const ADMIN_TOKEN_HEX_LEN: usize = 64;

pub use compute::{result_status, RESULT_INLINE_BYTES_MAX};
pub use compute::{STATS_BLOCKS, STATS_LATENCY_BUCKETS_MS};

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

fn bad(msg: impl Into<String>) -> ErrorObjectOwned {
    err(ERR_PARAMS, msg)
}

fn unavailable(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(ERR_UNAVAILABLE, e.to_string())
}

/// What every method reads: the node.
#[derive(Clone)]
pub struct Rpc {
    node: Arc<Node>,
}

/// The RPC middleware that counts every call, notification and batch entry in
/// `rpc_requests_total{method}` (a method the server does not have counts as
/// `unknown`, so clients cannot grow the label set), before its parameters are read.
///
/// It also keeps the connection's [`serve::Activity`]: every request marks it active,
/// and a subscription opened (a successful `subscribe_*`) or ended (`unsubscribe_*`
/// answering `true`) is counted, so the idle check spares subscribers.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    metrics: Arc<crate::metrics::Metrics>,
    known: Arc<std::collections::BTreeSet<String>>,
    activity: Arc<serve::Activity>,
    budget: budget::Budget,
}

/// A WebSocket call's share of the request memory budget ([`budget`]): `None` when
/// the budget is spent. An HTTP request's share is already held by the HTTP layer.
fn ws_share(b: &budget::Budget, ext: &Extensions, bytes: usize) -> Option<Option<budget::Share>> {
    if ext.get::<budget::Held>().is_some() {
        return Some(None);
    }
    b.try_take(bytes as u64).map(Some)
}

fn busy() -> ErrorObjectOwned {
    err(
        ERR_UNAVAILABLE,
        "busy: the node's request memory budget is spent; retry shortly",
    )
}

impl<S> Counted<S> {
    fn count(&self, method: &str) {
        self.activity.touch();
        let m = if self.known.contains(method) {
            method
        } else {
            "unknown"
        };
        self.metrics.inc("rpc_requests_total", &[m]);
    }
}

impl<S> RpcServiceT for Counted<S>
where
    S: RpcServiceT<
            MethodResponse = jsonrpsee::MethodResponse,
            BatchResponse = jsonrpsee::MethodResponse,
            NotificationResponse = jsonrpsee::MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        req: jsonrpsee::types::Request<'a>,
    ) -> impl std::future::Future<Output = Self::MethodResponse> + Send + 'a {
        self.count(req.method_name());
        let bytes = req.method_name().len() + req.params().as_str().map_or(0, str::len);
        let share = ws_share(&self.budget, req.extensions(), bytes);
        let unsubscribe = req.method_name().starts_with("unsubscribe_");
        let activity = self.activity.clone();
        let id = req.id().into_owned();
        let call = share.is_some().then(|| self.inner.call(req));
        async move {
            let Some(call) = call else {
                return jsonrpsee::MethodResponse::error(id, busy());
            };
            let r = call.await;
            drop(share);
            if r.is_subscription() && r.is_success() {
                activity.subscribed();
            } else if unsubscribe && r.is_success() && r.as_ref().contains("\"result\":true") {
                activity.unsubscribed();
            }
            r
        }
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        let mut bytes = 0;
        for e in batch.iter().flatten() {
            self.count(e.method_name());
            bytes += e.method_name().len() + e.params().map_or(0, |p| p.get().len());
        }
        let share = ws_share(&self.budget, batch.extensions(), bytes);
        let call = share.is_some().then(|| self.inner.batch(batch));
        async move {
            let Some(call) = call else {
                return jsonrpsee::MethodResponse::error(jsonrpsee::types::Id::Null, busy());
            };
            let r = call.await;
            drop(share);
            r
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl std::future::Future<Output = Self::NotificationResponse> + Send + 'a {
        self.count(n.method_name());
        let bytes = n.method_name().len() + n.params().as_ref().map_or(0, |p| p.get().len());
        let share = ws_share(&self.budget, n.extensions(), bytes);
        // A notification has no answer: one over the budget is dropped.
        let call = share.is_some().then(|| self.inner.notification(n));
        async move {
            let Some(call) = call else {
                return jsonrpsee::MethodResponse::notification();
            };
            let r = call.await;
            drop(share);
            r
        }
    }
}

/// A handle as stored: with its `@` (added when given without).
fn with_at(handle: &str) -> String {
    if handle.starts_with('@') {
        handle.to_string()
    } else {
        format!("@{handle}")
    }
}

/// An address given as `tb1…` text, or a registered `@handle` (the `@` optional).
fn address_or_handle(node: &Node, given: &str) -> Result<Address, ErrorObjectOwned> {
    if let Ok(a) = given.parse::<Address>() {
        return Ok(a);
    }
    let h = with_at(given);
    node.core().db.state().handle_owner(&h).ok_or_else(|| {
        bad(format!(
            "{given:?} is neither an address nor a registered handle"
        ))
    })
}

fn decode_tx(node: &Node, bytes: &[u8]) -> Result<SignedTx, ErrorObjectOwned> {
    let params = node.core().effective_params(&node.params);
    SignedTx::decode(bytes, &params).map_err(|e| bad(format!("transaction: {e}")))
}

fn admit(node: &Node, tx: SignedTx) -> Result<TxAccepted, ErrorObjectOwned> {
    match node.submit(tx) {
        Ok(id) => Ok(TxAccepted {
            id: params::HexId(id),
        }),
        Err(e) => Err(ErrorObjectOwned::owned(
            ERR_TX_REJECTED,
            format!("transaction rejected: {e}"),
            Some(json!({"code": e.code(), "reason": e.reason()})),
        )),
    }
}

/// A task id, or the id of the `SubmitJob` transaction that created it.
fn resolve_task(node: &Node, t: Id) -> Option<Id> {
    let c = node.core();
    if r::job(c.db.state(), &t).is_some() {
        return Some(t);
    }
    let loc = c.db.tx_location(&t).ok()??;
    let b = c.db.block(&loc.block).ok()??;
    let tx = b.txs.get(loc.index as usize)?;
    matches!(tx.payload, tb_chain::TxPayload::SubmitJob(_))
        .then(|| tb_chain::market::exec::task_id(node.params.chain_id, loc.height, tx))
}

/// Marks a request that carried the admin token.
#[derive(Clone, Copy, Debug)]
pub struct AdminAuthorized;

fn require_admin(ext: &Extensions) -> Result<(), ErrorObjectOwned> {
    if ext.get::<AdminAuthorized>().is_some() {
        return Ok(());
    }
    Err(err(
        ERR_UNAUTHORIZED,
        "admin method: send the node's admin token as `Authorization: Bearer <token>` \
         (the token is in <data dir>/admin.token)",
    ))
}

/// Compares in time independent of where the first difference is.
fn same_token(given: &[u8], want: &[u8]) -> bool {
    given.len() == want.len() && given.iter().zip(want).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

/// The admin token in `path`, made (random, hex, mode 0600) when the file does not
/// exist. A file that exists but holds no token is an error.
pub fn admin_token(path: &Path) -> Result<String, String> {
    if !path.exists() {
        let mut raw = [0u8; ADMIN_TOKEN_HEX_LEN / 2];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let token = hex::encode(raw);
        write_private(path, token.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(token);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{}: the admin token must be one word of at least 16 characters",
            path.display()
        ));
    }
    Ok(token.to_string())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(bytes)
}

/// The module with every method and subscription.
pub fn module(node: Arc<Node>) -> RpcModule<()> {
    use api::*;
    let rpc = Rpc { node };
    let mut m = RpcModule::new(());
    let parts = [
        AccountServer::into_rpc(rpc.clone()).remove_context(),
        AdminServer::into_rpc(rpc.clone()).remove_context(),
        ChainServer::into_rpc(rpc.clone()).remove_context(),
        ComputeServer::into_rpc(rpc.clone()).remove_context(),
        AicfServer::into_rpc(rpc.clone()).remove_context(),
        GovernorServer::into_rpc(rpc.clone()).remove_context(),
        NetServer::into_rpc(rpc.clone()).remove_context(),
        EventsServer::into_rpc(rpc).remove_context(),
    ];
    for p in parts {
        m.merge(p).expect("method names are unique");
    }
    m
}

/// Every method and subscription name the server answers, sorted.
pub fn method_names(node: Arc<Node>) -> Vec<String> {
    let mut v: Vec<String> = module(node).method_names().map(str::to_string).collect();
    v.sort();
    v
}

/// Starts the server on `addr` under `limits` ([`serve`]); returns its bound address
/// and handle. `admin_token`: the token admin methods need (`None`: every admin call is
/// refused). `explorer`: serve the block explorer's page under `/explorer/`
/// ([`crate::explorer`]).
pub async fn start(
    node: Arc<Node>,
    addr: SocketAddr,
    limits: RpcLimits,
    admin_token: Option<String>,
    explorer: bool,
) -> Result<(SocketAddr, ServerHandle), String> {
    let cfg = ServerConfig::builder()
        .max_request_body_size(limits.request_bytes)
        .max_response_body_size(RPC_RESPONSE_BYTES_MAX)
        .max_connections(limits.connections)
        .max_subscriptions_per_connection(SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .build();
    let token: Option<Arc<[u8]>> = admin_token.map(|t| Arc::from(format!("Bearer {t}").as_bytes()));
    let budget = budget::Budget::new(limits.request_memory_bytes, limits.request_bytes);
    let auth = tower::ServiceBuilder::new()
        .layer(crate::explorer::ExplorerLayer { on: explorer })
        .layer(budget::BudgetLayer {
            budget: budget.clone(),
        })
        .map_request(move |mut req: jsonrpsee::server::HttpRequest| {
            let ok = match (&token, req.headers().get(http::header::AUTHORIZATION)) {
                (Some(want), Some(given)) => same_token(given.as_bytes(), want),
                _ => false,
            };
            if ok {
                req.extensions_mut().insert(AdminAuthorized);
            } else {
                req.extensions_mut().remove::<AdminAuthorized>();
            }
            req
        });
    let known: Arc<std::collections::BTreeSet<String>> =
        Arc::new(method_names(node.clone()).into_iter().collect());
    for m in known.iter().map(String::as_str).chain(["unknown"]) {
        node.metrics.zero_series("rpc_requests_total", &[m]);
    }
    node.metrics
        .zero_series("rpc_connections_refused_total", &[]);
    node.metrics
        .zero_series("rpc_connections_closed_idle_total", &[]);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("rpc on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let builder = Server::builder()
        .set_config(cfg)
        .set_http_middleware(auth)
        .to_service_builder();
    let methods: jsonrpsee::server::Methods = module(node.clone()).into();
    let metrics = node.metrics.clone();
    let serve_one = move |sock,
                          activity: Arc<serve::Activity>,
                          stop: jsonrpsee::server::StopHandle| {
        let (metrics, known, budget) = (metrics.clone(), known.clone(), budget.clone());
        let counted = RpcServiceBuilder::new().layer_fn(move |inner| Counted {
            inner,
            metrics: metrics.clone(),
            known: Arc::clone(&known),
            activity: activity.clone(),
            budget: budget.clone(),
        });
        let svc = tower::ServiceBuilder::new()
            .map_request(|r: http::Request<hyper::body::Incoming>| {
                r.map(jsonrpsee::server::HttpBody::new)
            })
            .service(
                builder
                    .clone()
                    .set_rpc_middleware(counted)
                    .build(methods.clone(), stop.clone()),
            );
        async move {
            if let Err(e) =
                jsonrpsee::server::serve_with_graceful_shutdown(sock, svc, stop.shutdown()).await
            {
                tracing::debug!(error = %e, "rpc: connection ended");
            }
        }
    };
    let handle = serve::spawn_accept_loop(listener, limits, node.metrics.clone(), serve_one);
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"Bearer abc", b"Bearer abc"));
        assert!(!same_token(b"Bearer abd", b"Bearer abc"));
        assert!(!same_token(b"Bearer ab", b"Bearer abc"));
        assert!(!same_token(b"", b"Bearer abc"));
    }

    #[test]
    fn the_admin_token_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin.token");
        let t = admin_token(&p).unwrap();
        assert_eq!(t.len(), ADMIN_TOKEN_HEX_LEN);
        assert_eq!(admin_token(&p).unwrap(), t);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&p, "short\n").unwrap();
        assert!(admin_token(&p).unwrap_err().contains("at least 16"));
    }
}
