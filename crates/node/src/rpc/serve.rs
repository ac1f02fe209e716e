//! The RPC port's connections: who may connect, and for how long while idle.
//!
//! jsonrpsee serves each connection (HTTP, or WebSocket after an upgrade); this accept
//! loop in front of it keeps one address or idle clients from locking everyone out:
//!
//! - at most [`RpcLimits::connections`] open TCP connections in all, and at most
//!   [`RpcLimits::per_ip`] from one address (an IPv4 address or IPv6 /64, as on the
//!   peer-to-peer port); a connection over either is answered `429 Too Many Requests`
//!   and closed;
//! - a connection is *idle* while it holds no subscription and has sent no request
//!   for [`RpcLimits::idle`]; an idle connection is closed (a WebSocket with a close
//!   frame, HTTP keep-alive after its last response). A subscriber that only listens
//!   is never idle.
//!
//! A WebSocket upgrade or an HTTP request still takes one of jsonrpsee's connection
//! permits (the same `connections` cap), so its own `429` stays as the last resort.

use jsonrpsee::server::{stop_channel, ServerHandle, StopHandle};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The fixed answer to a connection over its share.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\n\
content-length: 47\r\nconnection: close\r\n\r\nToo many connections from this address or in all";
/// How long writing [`REFUSAL`] may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle check looks at a connection at most.
const IDLE_CHECK_MIN: Duration = Duration::from_millis(200);

/// The connection limits of the RPC port (`docs/node.md`, `docs/spec/rpc.md`).
#[derive(Clone, Debug)]
pub struct RpcLimits {
    /// Largest request body (HTTP) or message (WebSocket).
    pub request_bytes: u32,
    /// Open connections in all.
    pub connections: u32,
    /// Open connections from one address.
    pub per_ip: u32,
    /// A connection without subscriptions and requests for this long is closed.
    pub idle: Duration,
    /// Bytes of requests in flight at once ([`super::budget`]).
    pub request_memory_bytes: u64,
}

impl RpcLimits {
    /// The limits a node's configuration sets.
    pub fn of(cfg: &crate::config::NodeConfig) -> RpcLimits {
        RpcLimits {
            request_bytes: cfg.rpc_max_request_bytes,
            connections: cfg.rpc_max_connections,
            per_ip: cfg.rpc_connections_per_ip,
            idle: Duration::from_secs(cfg.rpc_idle_secs),
            request_memory_bytes: cfg.rpc_request_memory_mb * 1024 * 1024,
        }
    }
}

/// What a connection did last, for the idle check; shared by its RPC middleware.
pub(crate) struct Activity {
    last: Mutex<Instant>,
    subscriptions: AtomicU32,
    /// The address's slot, freed when the last holder of the activity goes.
    _slot: Slot,
}

impl Activity {
    pub(crate) fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    pub(crate) fn subscribed(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unsubscribed(&self) {
        let _ = self
            .subscriptions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// How much longer the connection may stay idle (zero: close it).
    fn idle_left(&self, idle: Duration) -> Duration {
        if self.subscriptions.load(Ordering::Relaxed) > 0 {
            return idle;
        }
        let since = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed();
        idle.saturating_sub(since)
    }
}

/// Open connections per address and in all.
#[derive(Default)]
struct Table {
    by_ip: HashMap<IpAddr, u32>,
    all: u32,
}

/// One open connection's place in the [`Table`], given back on drop.
struct Slot {
    table: Arc<Mutex<Table>>,
    ip: IpAddr,
}

impl Slot {
    /// A place for a connection from `ip`, unless the address or the port is full.
    fn take(table: &Arc<Mutex<Table>>, ip: IpAddr, limits: &RpcLimits) -> Option<Slot> {
        let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
        let here = t.by_ip.get(&ip).copied().unwrap_or(0);
        if here >= limits.per_ip || t.all >= limits.connections {
            return None;
        }
        t.by_ip.insert(ip, here + 1);
        t.all += 1;
        Some(Slot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        t.all -= 1;
        if let Some(n) = t.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.by_ip.remove(&self.ip);
            }
        }
    }
}

async fn refuse(mut sock: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        sock.write_all(REFUSAL).await?;
        sock.shutdown().await
    })
    .await;
}

/// Closes the connection (stops its handle) once it has been idle for `idle`, or when
/// the server stops; ends without closing when the connection went first.
async fn watch_idle(
    activity: Weak<Activity>,
    idle: Duration,
    conn: ServerHandle,
    server: StopHandle,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let idle_out = async {
        loop {
            let left = match activity.upgrade() {
                Some(a) => a.idle_left(idle),
                None => return false,
            };
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.max(IDLE_CHECK_MIN)).await;
        }
    };
    tokio::select! {
        idle = idle_out => if idle {
            tracing::debug!("rpc: closing an idle connection");
            metrics.inc("rpc_connections_closed_idle_total", &[]);
        },
        _ = server.shutdown() => {}
    }
    let _ = conn.stop();
}

/// Accepts connections on `listener` under `limits` until the returned handle stops;
/// `serve_one` serves an admitted one (its activity goes to its RPC middleware, its
/// stop handle closes it).
pub(crate) fn spawn_accept_loop<F, Fut>(
    listener: TcpListener,
    limits: RpcLimits,
    metrics: Arc<crate::metrics::Metrics>,
    serve_one: F,
) -> ServerHandle
where
    F: Fn(TcpStream, Arc<Activity>, StopHandle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (stop, handle) = stop_channel();
    let table = Arc::new(Mutex::new(Table::default()));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stop.clone().shutdown() => break,
            };
            let (sock, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: retry soon.
                    tracing::debug!(error = %e, "rpc: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let ip = tb_net::admission::ip_key(remote.ip());
            let Some(slot) = Slot::take(&table, ip, &limits) else {
                metrics.inc("rpc_connections_refused_total", &[]);
                tokio::spawn(refuse(sock));
                continue;
            };
            let activity = Arc::new(Activity {
                last: Mutex::new(Instant::now()),
                subscriptions: AtomicU32::new(0),
                _slot: slot,
            });
            let (conn_stop, conn_handle) = stop_channel();
            tokio::spawn(watch_idle(
                Arc::downgrade(&activity),
                limits.idle,
                conn_handle,
                stop.clone(),
                metrics.clone(),
            ));
            tokio::spawn(serve_one(sock, activity, conn_stop));
        }
    });
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u32, connections: u32) -> RpcLimits {
        RpcLimits {
            request_bytes: 1024,
            connections,
            per_ip,
            idle: Duration::from_secs(1),
            request_memory_bytes: 1 << 20,
        }
    }

    #[test]
    fn slots_are_shared_per_address_and_in_all_and_given_back() {
        let t = Arc::new(Mutex::new(Table::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let l = limits(2, 3);
        let s1 = Slot::take(&t, a, &l).unwrap();
        let _s2 = Slot::take(&t, a, &l).unwrap();
        assert!(Slot::take(&t, a, &l).is_none(), "a's share is 2");
        let s3 = Slot::take(&t, b, &l).unwrap();
        assert!(Slot::take(&t, b, &l).is_none(), "3 in all");
        drop(s3);
        let _s3 = Slot::take(&t, b, &l).unwrap();
        drop(s1);
        let _s1 = Slot::take(&t, a, &l).unwrap();
        assert_eq!(t.lock().unwrap().all, 3);
    }

    #[test]
    fn a_connection_is_idle_only_without_subscriptions_past_the_timeout() {
        let t = Arc::new(Mutex::new(Table::default()));
        let slot = Slot::take(&t, "10.0.0.1".parse().unwrap(), &limits(1, 1)).unwrap();
        let a = Activity {
            last: Mutex::new(Instant::now() - Duration::from_secs(5)),
            subscriptions: AtomicU32::new(0),
            _slot: slot,
        };
        let idle = Duration::from_secs(2);
        assert!(a.idle_left(idle).is_zero());
        a.subscribed();
        assert_eq!(a.idle_left(idle), idle, "a subscriber is never idle");
        a.unsubscribed();
        a.unsubscribed();
        assert!(a.idle_left(idle).is_zero(), "the count stops at zero");
        a.touch();
        assert!(a.idle_left(idle) > Duration::from_secs(1));
        drop(a);
        assert_eq!(
            t.lock().unwrap().all,
            0,
            "the slot went with the connection"
        );
    }
}
