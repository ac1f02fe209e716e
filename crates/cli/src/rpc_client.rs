//! tb-cli's side of the node's JSON-RPC: the client traits that jsonrpsee generates from
//! `tb-rpc-api` (the same traits the node serves), over HTTP (`http://`) or one
//! WebSocket (`ws://`), driven on a small tokio runtime so the commands stay plain
//! functions. Calls are bounded in time (`CALL_TIMEOUT_S`, `CONNECT_TIMEOUT_S`) and in
//! size (`RPC_RESPONSE_BYTES_MAX`). A JSON-RPC `error` becomes a [`CallError::Rpc`]
//! with the node's code and message; anything else that goes wrong (no connection, a
//! timeout, a reply that is not JSON-RPC) becomes a [`CliError`] naming the URL.

use crate::CliError;
use futures::StreamExt as _;
use jsonrpsee::core::client::{BatchResponse, ClientT, Error as ClientError, Subscription};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

pub use tb_rpc_api::api::{
    AccountClient, AdminClient, AicfClient, ChainClient, ComputeClient, EventsClient,
    GovernorClient, NetClient,
};
pub use tb_rpc_api::params::{BlockRef, EstimateJob, HexBytes, HexId};

/// Seconds to wait for a WebSocket connection (its TCP connect and upgrade).
pub const CONNECT_TIMEOUT_S: u64 = 5;
/// Seconds one call may take in all (connect, send, wait, read).
pub const CALL_TIMEOUT_S: u64 = 60;
/// Largest response read: the node's own cap (`RPC_RESPONSE_BYTES_MAX` of
/// `the-block`: a 16 MiB blob in hex plus 64 KiB).
pub const RPC_RESPONSE_BYTES_MAX: u32 = 2 * 16 * 1024 * 1024 + 64 * 1024;
/// Largest request sent: a 16 MiB blob in hex plus 64 KiB (the node refuses more than
/// its `rpc_max_request_bytes` anyway).
pub const RPC_REQUEST_BYTES_MAX: u32 = RPC_RESPONSE_BYTES_MAX;
/// Longest URL accepted.
pub const URL_BYTES_MAX: usize = 2048;
/// The URL used when neither `--rpc` nor `TB_RPC` names one.
pub const RPC_URL_DEFAULT: &str = "http://127.0.0.1:3030";

/// The node's "not found" code, which [`Client::find`] reads as `None`.
pub const ERR_NOT_FOUND: i64 = tb_rpc_api::ERR_NOT_FOUND as i64;

/// A call that failed: the node answered with a JSON-RPC error, or the call itself
/// failed (already a one-line [`CliError`]).
#[derive(Debug)]
pub enum CallError {
    /// The node's JSON-RPC `error`.
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    /// No answer, or not a JSON-RPC answer.
    Cli(CliError),
}

impl From<CallError> for CliError {
    fn from(e: CallError) -> CliError {
        match e {
            CallError::Rpc {
                method,
                code,
                message,
            } => CliError::fail(format!("{method}: {message} (JSON-RPC error {code})")),
            CallError::Cli(c) => c,
        }
    }
}

/// One event stream: each item the event's data, or why it could not be read.
pub type EventStream = futures::stream::BoxStream<'static, Result<Value, serde_json::Error>>;

/// The wire a [`Client`] speaks, chosen by the URL's scheme.
#[derive(Debug)]
pub enum Transport {
    /// One POST per call.
    Http(HttpClient),
    /// One WebSocket for every call (and subscriptions).
    Ws(WsClient),
}

impl ClientT for Transport {
    async fn notification<P>(&self, method: &str, params: P) -> Result<(), ClientError>
    where
        P: ToRpcParams + Send,
    {
        match self {
            Transport::Http(c) => c.notification(method, params).await,
            Transport::Ws(c) => c.notification(method, params).await,
        }
    }

    async fn request<R, P>(&self, method: &str, params: P) -> Result<R, ClientError>
    where
        R: DeserializeOwned,
        P: ToRpcParams + Send,
    {
        match self {
            Transport::Http(c) => c.request(method, params).await,
            Transport::Ws(c) => c.request(method, params).await,
        }
    }

    async fn batch_request<'a, R>(
        &self,
        batch: BatchRequestBuilder<'a>,
    ) -> Result<BatchResponse<'a, R>, ClientError>
    where
        R: DeserializeOwned + std::fmt::Debug + 'a,
    {
        match self {
            Transport::Http(c) => c.batch_request(batch).await,
            Transport::Ws(c) => c.batch_request(batch).await,
        }
    }
}

/// A connection to one node's JSON-RPC endpoint. The connection is made at the first
/// call, so that commands which need no node never touch the network.
pub struct Client {
    url: String,
    rt: tokio::runtime::Runtime,
    /// `Authorization` header value for the node's admin methods.
    auth: Option<String>,
    conn: OnceLock<Transport>,
}

/// Checks an RPC URL: `http://HOST[:PORT][/PATH]` or `ws://…` (this build speaks
/// no TLS).
pub fn check_url(url: &str) -> Result<(), CliError> {
    let bad = |why: &str| CliError::fail(format!("RPC URL {url:?}: {why}"));
    if url.len() > URL_BYTES_MAX {
        return Err(bad(&format!("longer than {URL_BYTES_MAX} bytes")));
    }
    if url.starts_with("https://") || url.starts_with("wss://") {
        return Err(bad(
            "this tb-cli speaks plain HTTP and WebSocket only; use http:// or ws:// \
             (a TLS-terminating proxy in front of the node, or an SSH tunnel)",
        ));
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
    else {
        return Err(bad("expected http://HOST:PORT or ws://HOST:PORT"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("expected http://HOST:PORT or ws://HOST:PORT"));
    }
    Ok(())
}

/// An id, hash or digest given as hex, as the typed parameter the methods take.
pub fn hid(hex: &str) -> Result<HexId, CliError> {
    tb_primitives::Id::from_hex(hex.strip_prefix("0x").unwrap_or(hex))
        .map(HexId)
        .ok_or_else(|| CliError::usage(format!("{hex:?}: expected 64 hex digits")))
}

/// The WebSocket URL of the endpoint at `url` (the node serves both on one port).
pub fn ws_url(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => url.to_string(),
    }
}

/// The first I/O error in `e`'s chain of causes (the WebSocket handshake's socket
/// error names none as its source: it is looked at too).
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    use jsonrpsee_client_transport::ws::WsHandshakeError;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        if let Some(WsHandshakeError::Io(io)) = c.downcast_ref::<WsHandshakeError>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

impl Client {
    /// A client for `url` (checked with [`check_url`]).
    pub fn new(url: &str) -> Result<Client, CliError> {
        check_url(url)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::fail(format!("cannot start the RPC client: {e}")))?;
        Ok(Client {
            url: url.to_string(),
            rt,
            auth: None,
            conn: OnceLock::new(),
        })
    }

    /// Sends `token` as `Authorization: Bearer` with every call (the node's admin
    /// methods need it).
    pub fn set_admin_token(&mut self, token: &str) {
        self.auth = Some(format!("Bearer {token}"));
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn headers(&self) -> Result<http::HeaderMap, CliError> {
        let mut h = http::HeaderMap::new();
        if let Some(a) = &self.auth {
            let v = http::HeaderValue::from_str(a).map_err(|_| {
                CliError::fail("the admin token holds characters an HTTP header cannot carry")
            })?;
            h.insert(http::header::AUTHORIZATION, v);
        }
        Ok(h)
    }

    /// A WebSocket connection to the endpoint (an `http://` URL is reached as `ws://`
    /// on the same port), for subscriptions.
    pub fn websocket(&self) -> Result<WsClient, CliError> {
        let url = ws_url(&self.url);
        let built = self.rt.block_on(
            WsClientBuilder::default()
                .set_headers(self.headers()?)
                .max_response_size(RPC_RESPONSE_BYTES_MAX)
                .max_request_size(RPC_REQUEST_BYTES_MAX)
                .request_timeout(Duration::from_secs(CALL_TIMEOUT_S))
                .connection_timeout(Duration::from_secs(CONNECT_TIMEOUT_S))
                .build(&url),
        );
        built.map_err(|e| self.failure("connect", e))
    }

    fn connection(&self) -> Result<&Transport, CliError> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let t = if self.url.starts_with("ws://") {
            Transport::Ws(self.websocket()?)
        } else {
            let _guard = self.rt.enter();
            let c = HttpClientBuilder::default()
                .set_headers(self.headers()?)
                .max_response_size(RPC_RESPONSE_BYTES_MAX)
                .max_request_size(RPC_REQUEST_BYTES_MAX)
                .request_timeout(Duration::from_secs(CALL_TIMEOUT_S))
                .build(&self.url)
                .map_err(|e| self.failure("connect", e))?;
            Transport::Http(c)
        };
        Ok(self.conn.get_or_init(|| t))
    }

    /// Runs `fut` (a subscription's next item, say) on this client's runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// A one-line failure for something other than the node's JSON-RPC error.
    fn failure(&self, method: &str, e: ClientError) -> CliError {
        let url = &self.url;
        let not_rpc = |why: String| {
            CliError::fail(format!(
                "{method} at {url}: {why} (is this a node's JSON-RPC address?)"
            ))
        };
        let why = match &e {
            ClientError::Transport(t) => {
                use jsonrpsee::core::http_helpers::HttpError;
                use jsonrpsee_http_client::transport::Error as Http;
                match t.downcast_ref::<Http>() {
                    Some(Http::Rejected { status_code: 413 }) => {
                        return CliError::fail(format!(
                            "{method} at {url}: the request is larger than the node accepts \
                             (HTTP 413; its rpc_max_request_bytes)"
                        ))
                    }
                    Some(Http::Rejected { status_code }) => {
                        return not_rpc(format!("HTTP status {status_code}"))
                    }
                    Some(Http::Http(HttpError::Malformed)) => {
                        return not_rpc("the reply is not JSON-RPC (no JSON object)".into())
                    }
                    Some(Http::Http(HttpError::TooLarge)) => {
                        return CliError::fail(format!(
                            "{method} at {url}: the reply is larger than the \
                             {RPC_RESPONSE_BYTES_MAX}-byte limit"
                        ))
                    }
                    _ => {}
                }
                match io_cause(t.as_ref()).map(std::io::Error::kind) {
                    Some(std::io::ErrorKind::ConnectionRefused) => {
                        return CliError::fail(format!(
                            "cannot connect to the node at {url}: connection refused \
                             (is `the-block` running there? set --rpc or TB_RPC)"
                        ))
                    }
                    Some(
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof,
                    ) => format!("the connection was closed ({t})"),
                    _ => t.to_string(),
                }
            }
            ClientError::RequestTimeout => format!("no answer within {CALL_TIMEOUT_S} s"),
            ClientError::ParseError(p) => {
                return CliError::fail(format!(
                    "{method} at {url}: the reply is not what this tb-cli expects ({p}; a node \
                     of another version, or not a node?)"
                ))
            }
            ClientError::InvalidRequestId(_) => {
                return not_rpc("the reply answers another request id".into())
            }
            ClientError::RestartNeeded(inner) => format!("the connection was closed ({inner})"),
            other => other.to_string(),
        };
        CliError::fail(format!("{method} at {url}: {why}"))
    }

    /// Calls `method` through the generated client: `call` gets the connection and
    /// returns the trait method's future (`ChainClient::head`); `method` names
    /// it in messages. The result, or why there is none.
    pub fn call<'a, T, F, Fut>(&'a self, method: &str, call: F) -> Result<T, CallError>
    where
        F: FnOnce(&'a Transport) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let conn = self.connection().map_err(CallError::Cli)?;
        self.rt
            .block_on(call(conn))
            .map_err(|e| self.call_error(method, e))
    }

    /// Subscribes to the event stream `name` (one of [`tb_rpc_api::EVENTS`]) on `ws`
    /// through the generated [`EventsClient`].
    pub fn subscribe(&self, ws: &WsClient, name: &str) -> Result<EventStream, CliError> {
        let method = format!("subscribe_{name}");
        let boxed = |s: Subscription<Value>| s.boxed();
        let sub = self.rt.block_on(async {
            match name {
                // Typed on the wire (a header); shown as the JSON it came as.
                "newHeads" => EventsClient::new_heads(ws).await.map(|s| {
                    s.map(|h| h.map(|h| serde_json::to_value(h).unwrap_or(Value::Null)))
                        .boxed()
                }),
                "jobAssigned" => EventsClient::job_assigned(ws).await.map(boxed),
                "receiptAccepted" => EventsClient::receipt_accepted(ws).await.map(boxed),
                "challengeOpened" => EventsClient::challenge_opened(ws).await.map(boxed),
                "challengeRuled" => EventsClient::challenge_ruled(ws).await.map(boxed),
                "jobCompleted" => EventsClient::job_completed(ws).await.map(boxed),
                "jobFailed" => EventsClient::job_failed(ws).await.map(boxed),
                "providerSlashed" => EventsClient::provider_slashed(ws).await.map(boxed),
                "epochSettled" => EventsClient::epoch_settled(ws).await.map(boxed),
                other => Err(ClientError::Custom(format!("no event stream {other:?}"))),
            }
        });
        sub.map_err(|e| CliError::from(self.call_error(&method, e)))
    }

    /// A failed call as a [`CallError`]: the node's JSON-RPC error with its code, or a
    /// one-line failure.
    fn call_error(&self, method: &str, e: ClientError) -> CallError {
        match e {
            ClientError::Call(err) => {
                let mut message = err.message().to_string();
                let data: Option<Value> =
                    err.data().and_then(|d| serde_json::from_str(d.get()).ok());
                if let Some(reason) = data
                    .as_ref()
                    .and_then(|d| d.get("reason").or(Some(d)))
                    .and_then(Value::as_str)
                {
                    if !message.contains(reason) {
                        message = format!("{message} [{reason}]");
                    }
                }
                CallError::Rpc {
                    method: method.to_string(),
                    code: i64::from(err.code()),
                    message,
                }
            }
            e => CallError::Cli(self.failure(method, e)),
        }
    }

    /// [`Client::call`], every failure a [`CliError`].
    pub fn get<'a, T, F, Fut>(&'a self, method: &str, call: F) -> Result<T, CliError>
    where
        F: FnOnce(&'a Transport) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        self.call(method, call).map_err(CliError::from)
    }

    /// [`Client::get`], with the node's "not found" error as `None`.
    pub fn find<'a, T, F, Fut>(&'a self, method: &str, call: F) -> Result<Option<T>, CliError>
    where
        F: FnOnce(&'a Transport) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        match self.call(method, call) {
            Ok(v) => Ok(Some(v)),
            Err(CallError::Rpc {
                code: ERR_NOT_FOUND,
                ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Typed reads of a node's reply: a missing or mistyped field is a failure naming it,
/// never a panic.
pub trait Reply {
    /// Field `key`, which must be present.
    fn field(&self, key: &str) -> Result<&Value, CliError>;
    /// Field `key` as an unsigned integer.
    fn u64_at(&self, key: &str) -> Result<u64, CliError>;
    /// Field `key` as a string.
    fn str_at(&self, key: &str) -> Result<&str, CliError>;
    /// Field `key` as an array (a missing field reads as empty).
    fn arr_at(&self, key: &str) -> &[Value];
    /// Field `key` rendered for a person: a string as is, `null` as `-`, other values
    /// as JSON.
    fn text_at(&self, key: &str) -> String;
    /// Field `key`, micro-tokens, as tokens with six decimals (`-` when absent).
    fn tokens_at(&self, key: &str) -> String;
}

fn shape_error(key: &str, want: &str) -> CliError {
    CliError::fail(format!(
        "the node's reply has no {want} field {key:?} (a node of another version?)"
    ))
}

impl Reply for Value {
    fn field(&self, key: &str) -> Result<&Value, CliError> {
        self.get(key).ok_or_else(|| shape_error(key, "such"))
    }

    fn u64_at(&self, key: &str) -> Result<u64, CliError> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| shape_error(key, "integer"))
    }

    fn str_at(&self, key: &str) -> Result<&str, CliError> {
        self.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| shape_error(key, "string"))
    }

    fn arr_at(&self, key: &str) -> &[Value] {
        self.get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    fn text_at(&self, key: &str) -> String {
        match self.get(key) {
            None | Some(Value::Null) => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    fn tokens_at(&self, key: &str) -> String {
        self.get(key)
            .and_then(Value::as_u64)
            .map_or("-".into(), crate::wallet::tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(url: &str, ok: bool) {
        assert_eq!(check_url(url).is_ok(), ok, "{url}");
    }

    #[test]
    fn urls() {
        check("http://127.0.0.1:3030", true);
        check("http://node.example:80/rpc", true);
        check("ws://127.0.0.1:3030", true);
        check("https://node.example", false);
        check("wss://node.example", false);
        check("127.0.0.1:3030", false);
        check("http://", false);
        check("ws://", false);
        check("http:///x", false);
        check("http://a b", false);
        check("", false);
        assert_eq!(ws_url("http://h:1/x"), "ws://h:1/x");
        assert_eq!(ws_url("ws://h:1"), "ws://h:1");
    }

    #[test]
    fn reply_reads_do_not_panic() {
        let v = json!({"a": 1, "s": "x", "n": null, "l": [1, 2]});
        assert_eq!(v.u64_at("a").unwrap(), 1);
        assert!(v.u64_at("s").is_err());
        assert!(v.str_at("missing").is_err());
        assert_eq!(v.arr_at("l").len(), 2);
        assert_eq!(v.arr_at("a").len(), 0);
        assert_eq!(v.text_at("n"), "-");
        assert_eq!(v.text_at("s"), "x");
        assert_eq!(json!(3).u64_at("a").map_err(|e| e.code).unwrap_err(), 1);
    }
}
