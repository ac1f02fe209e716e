//! The bytes of RPC requests in flight, bounded by `rpc_request_memory_mb`.
//!
//! Without a bound, 120 concurrent 8 MB requests held 120 bodies at once (jsonrpsee
//! reads a body into a vector that grows by doubling, so up to twice its size) and
//! pushed the node to 1.6–1.9 GiB resident. Here every request takes its size from one
//! budget before the server holds it, and gives it back when its answer is ready:
//!
//! - **HTTP**: a POST's share is its `Content-Length` (or `rpc_max_request_bytes` when
//!   the body is chunked), taken *before* the body is read: while the budget is spent
//!   the request waits, its body unread in the socket, for at most [`BUDGET_WAIT`], and
//!   is then answered `503 Service Unavailable` with a `Retry-After`. A body declared
//!   over `rpc_max_request_bytes` takes nothing (jsonrpsee refuses it with 413 unread).
//! - **WebSocket**: a message is read before anything can look at it; its call (or
//!   batch) takes its parameters' size when it starts, and is refused at once with
//!   error -32012 "busy" when the budget is spent (so a refused message is dropped
//!   straight away rather than held while it waits).
//!
//! The budget is counted in KiB units; one request never takes more than the whole
//! budget (the configuration check keeps `rpc_request_memory_mb` at least
//! `rpc_max_request_bytes`).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an HTTP request waits for its share of the budget before its 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);
/// The budget's unit.
const UNIT: u64 = 1024;

/// The shared budget (clones share it).
#[derive(Clone, Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u32,
    request_bytes_max: u32,
    /// How long an HTTP request waits for its share ([`BUDGET_WAIT`]).
    wait: Duration,
}

/// A request's share, given back on drop.
pub struct Share {
    _permit: OwnedSemaphorePermit,
}

/// The request extension saying the HTTP layer holds this request's share (its calls
/// take nothing more).
#[derive(Clone, Copy, Debug)]
pub struct Held;

impl Budget {
    /// A budget of `bytes` for requests of at most `request_bytes_max` each.
    pub fn new(bytes: u64, request_bytes_max: u32) -> Budget {
        let units = (bytes / UNIT).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            request_bytes_max,
            wait: BUDGET_WAIT,
        }
    }

    fn units(&self, bytes: u64) -> u32 {
        bytes.div_ceil(UNIT).clamp(1, u64::from(self.units)) as u32
    }

    /// Units free now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// `bytes` of the budget if free now.
    pub fn try_take(&self, bytes: u64) -> Option<Share> {
        self.sem
            .clone()
            .try_acquire_many_owned(self.units(bytes))
            .ok()
            .map(|p| Share { _permit: p })
    }

    /// `bytes` of the budget, waiting up to `wait` for them.
    pub async fn take(&self, bytes: u64, wait: Duration) -> Option<Share> {
        let n = self.units(bytes);
        match tokio::time::timeout(wait, self.sem.clone().acquire_many_owned(n)).await {
            Ok(Ok(p)) => Some(Share { _permit: p }),
            _ => None,
        }
    }

    /// What an HTTP request's body will hold: its declared length, the request limit
    /// when undeclared, nothing when it has no body or is over the limit (refused
    /// unread).
    fn http_cost(&self, method: &http::Method, headers: &http::HeaderMap) -> u64 {
        if method != http::Method::POST {
            return 0;
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > u64::from(self.request_bytes_max) => 0,
            Some(n) => n,
            None => u64::from(self.request_bytes_max),
        }
    }
}

/// The HTTP middleware that takes each request's share ([`Budget`]).
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    pub budget: Budget,
}

impl<S> tower::Layer<S> for BudgetLayer {
    type Service = Budgeted<S>;

    fn layer(&self, inner: S) -> Budgeted<S> {
        Budgeted {
            inner,
            budget: self.budget.clone(),
        }
    }
}

/// See [`BudgetLayer`].
#[derive(Clone, Debug)]
pub struct Budgeted<S> {
    inner: S,
    budget: Budget,
}

type BoxFuture<T, E> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

fn busy() -> http::Response<jsonrpsee::server::HttpBody> {
    let mut r = http::Response::new(jsonrpsee::server::HttpBody::from(
        "The node's request memory budget is spent; retry shortly.",
    ));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    h.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    r
}

impl<S, B> tower::Service<http::Request<B>> for Budgeted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<jsonrpsee::server::HttpBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let cost = self.budget.http_cost(req.method(), req.headers());
        if cost == 0 {
            return Box::pin(self.inner.call(req));
        }
        // The service polled ready is the one to call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let budget = self.budget.clone();
        Box::pin(async move {
            let Some(share) = budget.take(cost, budget.wait).await else {
                return Ok(busy());
            };
            req.extensions_mut().insert(Held);
            let r = inner.call(req).await;
            drop(share);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_taken_and_given_back() {
        let b = Budget::new(64 << 10, 32 << 10);
        let s1 = b.try_take(32 << 10).unwrap();
        let _s2 = b.try_take(30 << 10).unwrap();
        assert!(b.try_take(4 << 10).is_none(), "2 KiB left");
        let _small = b.try_take(1).unwrap();
        drop(s1);
        assert_eq!(b.available(), 32 + 1);
        // One request never takes more than the whole budget.
        drop(_s2);
        drop(_small);
        assert!(b.try_take(1 << 30).is_some());
    }

    #[test]
    fn an_http_post_costs_its_declared_length_or_the_limit() {
        let b = Budget::new(1 << 20, 4096);
        let mut h = http::HeaderMap::new();
        assert_eq!(b.http_cost(&http::Method::GET, &h), 0);
        assert_eq!(b.http_cost(&http::Method::POST, &h), 4096, "chunked");
        h.insert(http::header::CONTENT_LENGTH, "100".parse().unwrap());
        assert_eq!(b.http_cost(&http::Method::POST, &h), 100);
        h.insert(http::header::CONTENT_LENGTH, "5000".parse().unwrap());
        assert_eq!(b.http_cost(&http::Method::POST, &h), 0, "refused unread");
    }

    #[tokio::test]
    async fn an_http_request_over_the_spent_budget_waits_then_gets_503() {
        use tower::{Layer, Service, ServiceExt};
        let mut budget = Budget::new(4 << 10, 4 << 10);
        budget.wait = Duration::from_millis(100);
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            assert!(req.extensions().get::<Held>().is_some(), "marked as held");
            Ok::<_, std::convert::Infallible>(http::Response::new(
                jsonrpsee::server::HttpBody::from("ok"),
            ))
        });
        let mut svc = BudgetLayer {
            budget: budget.clone(),
        }
        .layer(inner);
        let post = |n: usize| {
            http::Request::post("/")
                .header(http::header::CONTENT_LENGTH, n.to_string())
                .body(())
                .unwrap()
        };
        let r = svc.ready().await.unwrap().call(post(100)).await.unwrap();
        assert_eq!(r.status(), 200);
        let held = budget.try_take(4 << 10).unwrap();
        let r = svc.ready().await.unwrap().call(post(100)).await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
        drop(held);
        let r = svc.ready().await.unwrap().call(post(100)).await.unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_its_share_when_one_is_given_back() {
        let b = Budget::new(8 << 10, 8 << 10);
        let s = b.try_take(8 << 10).unwrap();
        assert!(b.take(1024, Duration::from_millis(50)).await.is_none());
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.take(1024, Duration::from_secs(5)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(s);
        assert!(waiter.await.unwrap());
    }
}
