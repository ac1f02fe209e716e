//! The node's plain HTTP endpoints on `--metrics-addr`, served by hyper on the node's
//! tokio runtime (the stack jsonrpsee's server runs on):
//!
//! * `GET /metrics`: the Prometheus exposition text (format 0.0.4) after refreshing the
//!   chain-derived gauges (at most every [`REFRESH_INTERVAL_MIN`]; concurrent scrapes
//!   share one refresh).
//! * `GET /wrappers`: the metrics manifest (`crate::metrics::manifest_json`).
//! * `GET /health`: 200 while the process serves (liveness), with the tip height.
//! * `GET /ready`: 200 when the node can serve traffic, else 503 with the reasons
//!   (readiness: not stopping, and when it was given bootnodes, at least one peer and
//!   not syncing).
//!
//! Another path is 404, another method 405. A request head must arrive within
//! [`HEAD_TIMEOUT`]; each connection carries one request. While
//! [`HTTP_CONNECTIONS_MAX`] connections are open a further one is closed at once.

use crate::node::Node;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const HTTP_CONNECTIONS_MAX: usize = 4096;
/// Time allowed for a request's line and headers.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes closer together than this share the chain-derived gauges of the first.
pub const REFRESH_INTERVAL_MIN: Duration = Duration::from_millis(250);

/// What the endpoints serve from.
pub struct Endpoints {
    node: Arc<Node>,
    /// The node was given bootnodes: it is ready only with a peer.
    expect_peers: bool,
    refreshed: Mutex<Option<Instant>>,
}

impl Endpoints {
    pub fn new(node: Arc<Node>, expect_peers: bool) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            node,
            expect_peers,
            refreshed: Mutex::new(None),
        })
    }

    /// The metrics text, refreshing the chain-derived gauges unless another scrape did
    /// within [`REFRESH_INTERVAL_MIN`] (the lock makes concurrent scrapes wait for one
    /// refresh instead of each taking the chain's lock).
    pub fn metrics_text(&self) -> String {
        {
            let mut last = self
                .refreshed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL_MIN) {
                self.node.refresh_metrics();
                *last = Some(Instant::now());
            }
        }
        self.node.metrics.render()
    }

    /// `Ok` when ready, else the reasons.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if self.node.stopping() {
            why.push("the node is stopping".to_string());
        }
        if self.expect_peers {
            match self.node.net() {
                None => why.push("the peer-to-peer network is off".into()),
                Some(n) => {
                    let v = n.view();
                    if v.peers.is_empty() {
                        why.push("no peers connected".into());
                    }
                    if let Some(p) = v.syncing_from {
                        why.push(format!("syncing from {p}"));
                    }
                }
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// One request.
pub async fn route(e: Arc<Endpoints>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => {
            let e2 = e.clone();
            // The refresh takes the chain's lock: off the async workers.
            match tokio::task::spawn_blocking(move || e2.metrics_text()).await {
                Ok(text) => reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                ),
                Err(err) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("metrics: {err}\n"),
                ),
            }
        }
        "/wrappers" => reply(StatusCode::OK, JSON, crate::metrics::manifest_json()),
        "/health" => {
            let height = e.node.head_height();
            reply(
                StatusCode::OK,
                JSON,
                json!({"status": "ok", "height": height}).to_string(),
            )
        }
        "/ready" => match e.readiness() {
            Ok(()) => reply(StatusCode::OK, JSON, json!({"ready": true}).to_string()),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                JSON,
                json!({"ready": false, "reasons": why}).to_string(),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: /metrics, /wrappers, /health, /ready\n",
        ),
    }
}

/// Pending connections the listener queues (the kernel's accept backlog).
pub const ACCEPT_BACKLOG: u32 = 1024;

/// A listener on `addr` with an [`ACCEPT_BACKLOG`] backlog (inside the runtime). An
/// address in use is an error here, at start.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let s = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.bind(addr)?;
    s.listen(ACCEPT_BACKLOG)
}

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, e: Arc<Endpoints>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(HTTP_CONNECTIONS_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(err) => {
                // Out of file descriptors and the like: retry after a pause.
                tracing::warn!(error = %err, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let e = e.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let e = e.clone();
                async move { Ok::<_, std::convert::Infallible>(route(e, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}
