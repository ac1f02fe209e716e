//! The block explorer: a web page served on the RPC port under [`PATH`] (`--explorer
//! false` turns it off). It is static: three files compiled into the binary
//! (`crates/node/explorer/`), with no build step, that read only the public JSON-RPC
//! (`POST /`) and its WebSocket subscriptions from the same origin, so the explorer sees
//! exactly what any client sees and holds no privilege. Pages are routed in the
//! browser (`/explorer/#/job/<id>`): an unknown id, a malformed hash or a page past the
//! end is answered by the page itself with what was wrong, never by a server error.
//!
//! This module is the tower layer in front of jsonrpsee's HTTP service: `GET` or `HEAD`
//! of a path under [`PATH`] gets a file (or 404), every other request goes on to the
//! RPC server unchanged. Responses carry a content security policy that allows only
//! the node's own origin, so data read from the chain can never load or run anything
//! else.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use jsonrpsee::server::HttpBody;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Where the explorer is served.
pub const PATH: &str = "/explorer";

/// The explorer's files: (path under [`PATH`], content type, bytes).
const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../explorer/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../explorer/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../explorer/style.css"),
    ),
];

/// Only this origin, for scripts, styles, images and connections (the RPC and its
/// WebSocket); no frames, no forms elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The answer to `GET path`, or `None` when `path` is not the explorer's.
pub fn serve(path: &str) -> Option<Response<HttpBody>> {
    let rest = path.strip_prefix(PATH)?;
    if rest.is_empty() {
        // Relative URLs in the page resolve against `/explorer/`.
        let mut r = Response::new(HttpBody::from(""));
        *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
        r.headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/explorer/"));
        return Some(r);
    }
    if !rest.starts_with('/') {
        return None;
    }
    let (status, ctype, body) = match FILES.iter().find(|(p, _, _)| *p == rest) {
        Some((_, ctype, body)) => (StatusCode::OK, *ctype, *body),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the explorer is at /explorer/\n",
        ),
    };
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // The files change only with the binary: revalidate, never serve a stale app.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

/// The layer that puts the explorer in front of the RPC server (`on`: false passes
/// every request through).
#[derive(Clone, Copy, Debug)]
pub struct ExplorerLayer {
    pub on: bool,
}

impl<S> tower::Layer<S> for ExplorerLayer {
    type Service = Explorer<S>;

    fn layer(&self, inner: S) -> Explorer<S> {
        Explorer { inner, on: self.on }
    }
}

/// See [`ExplorerLayer`].
#[derive(Clone, Debug)]
pub struct Explorer<S> {
    inner: S,
    on: bool,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<Request<B>> for Explorer<S>
where
    S: tower::Service<Request<B>, Response = Response<HttpBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.on && (req.method() == Method::GET || req.method() == Method::HEAD) {
            if let Some(r) = serve(req.uri().path()) {
                return Box::pin(async move { Ok(r) });
            }
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_redirects_and_misses() {
        assert_eq!(serve("/explorer").unwrap().status(), 308);
        let page = serve("/explorer/").unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'"));
        assert_eq!(serve("/explorer/app.js").unwrap().status(), 200);
        assert_eq!(serve("/explorer/../../etc/passwd").unwrap().status(), 404);
        assert_eq!(serve("/explorer/nope").unwrap().status(), 404);
        assert!(serve("/").is_none());
        assert!(serve("/explorerx").is_none());
    }

    proptest::proptest! {
        /// Any path: the explorer's answer is a file, a redirect or a 404 (never
        /// another status, never a panic), and paths outside it pass through.
        #[test]
        fn any_path_gets_a_file_a_redirect_or_a_404(path in "/[ -~]{0,64}") {
            match serve(&path) {
                None => proptest::prop_assert!(!path.starts_with("/explorer/") && path != "/explorer"),
                Some(r) => proptest::prop_assert!([200, 308, 404].contains(&r.status().as_u16())),
            }
        }
    }
}
