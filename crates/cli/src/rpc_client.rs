//! A small JSON-RPC 2.0 client over plain HTTP (`ureq`): one POST per call, positional
//! parameters, bounded in time (`CONNECT_TIMEOUT_S`, `CALL_TIMEOUT_S`) and in size
//! (`RPC_RESPONSE_BYTES_MAX`). A JSON-RPC `error` becomes a [`CallError::Rpc`] with
//! the node's code and message; anything else that goes wrong (no connection, a timeout,
//! a reply that is not JSON-RPC) becomes a [`CliError`] naming the URL.

use crate::CliError;
use serde_json::{json, Value};
use std::time::Duration;

/// Seconds to wait for the TCP connection.
pub const CONNECT_TIMEOUT_S: u64 = 5;
/// Seconds one call may take in all (connect, send, wait, read).
pub const CALL_TIMEOUT_S: u64 = 60;
/// Largest response body read: the node's own cap (`RPC_RESPONSE_BYTES_MAX` of
/// `the-block`: a 16 MiB blob in hex plus 64 KiB).
pub const RPC_RESPONSE_BYTES_MAX: u64 = 2 * 16 * 1024 * 1024 + 64 * 1024;
/// Longest URL accepted.
pub const URL_BYTES_MAX: usize = 2048;
/// The URL used when neither `--rpc` nor `TB_RPC` names one.
pub const RPC_URL_DEFAULT: &str = "http://127.0.0.1:3030";

/// The node's JSON-RPC error codes the commands act on (`the-block`'s `rpc.rs`).
pub const ERR_NOT_FOUND: i64 = -32011;

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

/// A connection to one node's JSON-RPC endpoint.
pub struct Client {
    url: String,
    agent: ureq::Agent,
    next_id: std::cell::Cell<u64>,
    /// `Authorization` header value for the node's admin methods.
    auth: Option<String>,
}

/// Checks an RPC URL: `http://HOST[:PORT][/PATH]` (this build speaks plain HTTP only).
pub fn check_url(url: &str) -> Result<(), CliError> {
    let bad = |why: &str| CliError::fail(format!("RPC URL {url:?}: {why}"));
    if url.len() > URL_BYTES_MAX {
        return Err(bad(&format!("longer than {URL_BYTES_MAX} bytes")));
    }
    if url.starts_with("https://") {
        return Err(bad(
            "this tb-cli speaks plain HTTP only; use http:// (a TLS-terminating proxy \
             in front of the node, or an SSH tunnel)",
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(bad("expected http://HOST:PORT"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("expected http://HOST:PORT"));
    }
    Ok(())
}

impl Client {
    /// A client for `url` (checked with [`check_url`]).
    pub fn new(url: &str) -> Result<Client, CliError> {
        check_url(url)?;
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(CONNECT_TIMEOUT_S)))
            .timeout_global(Some(Duration::from_secs(CALL_TIMEOUT_S)))
            .http_status_as_error(false)
            // The node is addressed directly; an HTTP_PROXY meant for the web must not
            // capture a local devnet's traffic.
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .build();
        Ok(Client {
            url: url.to_string(),
            agent: ureq::Agent::new_with_config(config),
            next_id: std::cell::Cell::new(1),
            auth: None,
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

    fn transport_error(&self, method: &str, e: ureq::Error) -> CliError {
        let url = &self.url;
        let why = match &e {
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return CliError::fail(format!(
                        "cannot connect to the node at {url}: connection refused \
                         (is `the-block` running there? set --rpc or TB_RPC)"
                    ))
                }
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                    format!("the connection was closed ({io})")
                }
                _ => io.to_string(),
            },
            ureq::Error::Timeout(t) => {
                let limit = match t {
                    ureq::Timeout::Connect | ureq::Timeout::Resolve => CONNECT_TIMEOUT_S,
                    _ => CALL_TIMEOUT_S,
                };
                format!("no answer within {limit} s ({t:?})")
            }
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "connection failed".into(),
            ureq::Error::BadUri(u) => format!("bad URL ({u})"),
            ureq::Error::BodyExceedsLimit(n) => {
                format!("the reply is larger than the {n}-byte limit")
            }
            other => other.to_string(),
        };
        CliError::fail(format!("{method} at {url}: {why}"))
    }

    /// Calls `method` with positional `params`; the result, or why there is none.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = body.to_string();
        let request_bytes = body.len();
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req
            .send(body)
            .map_err(|e| CallError::Cli(self.transport_error(method, e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(RPC_RESPONSE_BYTES_MAX)
            .read_to_vec()
            .map_err(|e| CallError::Cli(self.transport_error(method, e)))?;
        let not_rpc = |why: String| {
            CallError::Cli(CliError::fail(format!(
                "{method} at {}: {why} (is this a node's JSON-RPC address?)",
                self.url
            )))
        };
        let reply: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if status == 413 => {
                return Err(CallError::Cli(CliError::fail(format!(
                    "{method} at {}: the request ({} bytes) is larger than the node accepts \
                     (HTTP 413; its rpc_max_request_bytes)",
                    self.url, request_bytes
                ))))
            }
            Err(_) if status != 200 => return Err(not_rpc(format!("HTTP status {status}"))),
            Err(e) => return Err(not_rpc(format!("the reply is not JSON ({e})"))),
        };
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            let mut message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_string();
            let data = err.get("data");
            if let Some(reason) = data
                .and_then(|d| d.get("reason").or(Some(d)))
                .and_then(Value::as_str)
            {
                if !message.contains(reason) {
                    message = format!("{message} [{reason}]");
                }
            }
            return Err(CallError::Rpc {
                method: method.to_string(),
                code,
                message,
            });
        }
        if status != 200 {
            return Err(not_rpc(format!("HTTP status {status}")));
        }
        match reply.get("result") {
            Some(v) if reply.get("id") == Some(&json!(id)) => Ok(v.clone()),
            Some(_) => Err(not_rpc("the reply answers another request id".into())),
            None => Err(not_rpc("the reply has neither result nor error".into())),
        }
    }

    /// [`Client::call`], every failure a [`CliError`].
    pub fn get(&self, method: &str, params: Value) -> Result<Value, CliError> {
        self.call(method, params).map_err(CliError::from)
    }

    /// [`Client::get`], with the node's "not found" error as `None`.
    pub fn find(&self, method: &str, params: Value) -> Result<Option<Value>, CliError> {
        match self.call(method, params) {
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

    fn check(url: &str, ok: bool) {
        assert_eq!(check_url(url).is_ok(), ok, "{url}");
    }

    #[test]
    fn urls() {
        check("http://127.0.0.1:3030", true);
        check("http://node.example:80/rpc", true);
        check("https://node.example", false);
        check("127.0.0.1:3030", false);
        check("http://", false);
        check("http:///x", false);
        check("http://a b", false);
        check("", false);
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
