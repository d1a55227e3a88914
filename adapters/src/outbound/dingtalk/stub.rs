//! A stub DingTalk server for the tests: a salvo router on 127.0.0.1:0 whose
//! routes answer with canned bodies, count calls and record what they received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::Value;

use super::wire::path;

/// What one route received in one call.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub method: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// The answer of one call.
pub(super) struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    /// HTTP 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Self {
        Self::status(200, body)
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self { status, body: body.into(), delay: Duration::ZERO }
    }

    /// The same, after sleeping `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

/// One stubbed endpoint.
pub(super) struct Route {
    calls: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    respond: Box<Responder>,
}

impl Route {
    /// How many calls arrived.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// What the calls carried, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

struct RouteHandler(Arc<Route>);

#[handler]
impl RouteHandler {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let query = req.queries().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        let method = req.method().to_string();
        let body = match req.payload().await {
            Ok(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let seen = Seen { method, query, headers, body };
        let reply = (self.0.respond)(n, &seen);
        if let Ok(mut all) = self.0.seen.lock() {
            all.push(seen);
        }
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        res.status_code(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        res.render(Text::Json(reply.body));
    }
}

/// The default app-token answer: `tok-N` for the N-th call, 7200 s (docs/dingtalk-api.md §B.1).
pub(super) fn token_reply(n: usize, _: &Seen) -> Reply {
    Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":7200}}"#))
}

/// Builds a [`Stub`].
pub(super) struct StubBuilder {
    routes: Vec<(&'static str, Arc<Route>)>,
}

impl StubBuilder {
    /// A stub whose app-token endpoint answers [`token_reply`].
    pub fn new() -> Self {
        Self { routes: Vec::new() }.on(path::APP_TOKEN, token_reply)
    }

    /// Answers `path` (any method) with `respond(call_number_from_1, seen)`; replaces an earlier route.
    pub fn on(mut self, path: &'static str, respond: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        self.routes.retain(|(p, _)| *p != path);
        let route = Route { calls: AtomicUsize::new(0), seen: Mutex::new(Vec::new()), respond: Box::new(respond) };
        self.routes.push((path, Arc::new(route)));
        self
    }

    /// Binds 127.0.0.1:0 and serves in a background task.
    pub async fn start(self) -> std::io::Result<Stub> {
        let mut router = Router::new();
        for (path, route) in &self.routes {
            router = router.push(Router::with_path(path.trim_start_matches('/')).goal(RouteHandler(Arc::clone(route))));
        }
        let acceptor = TcpListener::new("127.0.0.1:0").try_bind().await.map_err(std::io::Error::other)?;
        let addr = acceptor
            .holdings()
            .first()
            .and_then(|h| h.local_addr.clone().into_std())
            .ok_or_else(|| std::io::Error::other("the stub has no inet address"))?;
        tokio::spawn(Server::new(acceptor).serve(router));
        Ok(Stub { addr, routes: self.routes.into_iter().collect() })
    }
}

/// A running stub DingTalk (both hosts on one address).
pub(super) struct Stub {
    pub addr: SocketAddr,
    routes: HashMap<&'static str, Arc<Route>>,
}

impl Stub {
    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The route for `path`; panics (test only) when it was not stubbed.
    pub fn route(&self, path: &str) -> Arc<Route> {
        match self.routes.get(path) {
            Some(route) => Arc::clone(route),
            None => panic!("no stub route for {path}"),
        }
    }

    /// Calls that reached `path` (0 when it was not stubbed).
    pub fn calls(&self, path: &str) -> usize {
        self.routes.get(path).map_or(0, |r| r.calls())
    }
}
