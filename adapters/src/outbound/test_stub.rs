//! A stub HTTP server for the outbound clients' tests (DingTalk, the cloud relay, Feishu): a salvo
//! router on 127.0.0.1:0 that answers stubbed `(method, path)` pairs (method [`ANY`] for every
//! method) with canned replies, counts calls and records what it received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::http::StatusCode;
use salvo::http::header::{HeaderName, HeaderValue};
use salvo::prelude::*;
use serde_json::Value;

/// What one call carried.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// Decoded query pairs.
    pub query: HashMap<String, String>,
    /// Headers with lower-case names.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
}

impl Seen {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// The answer to one call.
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    /// `status` with a JSON `body`.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self { status, body: body.into(), headers: Vec::new(), delay: Duration::ZERO }
    }

    /// HTTP 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Self {
        Self::status(200, body)
    }

    /// An `ErrorBody` reply.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::status(status, serde_json::json!({"code": code, "message": message}).to_string())
    }

    /// The same with one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The same, after sleeping `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

/// The method of a route that answers every method.
pub(crate) const ANY: &str = "*";

/// One stubbed endpoint.
pub(crate) struct Route {
    method: &'static str,
    path: String,
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

struct Dispatch(Arc<Vec<Arc<Route>>>);

#[handler]
impl Dispatch {
    async fn handle(&self, req: &mut Request, res: &mut Response) {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let Some(route) = self.0.iter().find(|r| (r.method == ANY || r.method == method) && r.path == path).cloned()
        else {
            res.status_code(StatusCode::IM_A_TEAPOT);
            res.render(Text::Plain(format!("no stub route for {method} {path}")));
            return;
        };
        let n = route.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let query = req.queries().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
            .collect();
        let body = match req.payload().await {
            Ok(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let seen = Seen { method, path, query, headers, body };
        let reply = (route.respond)(n, &seen);
        if let Ok(mut all) = route.seen.lock() {
            all.push(seen);
        }
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        res.status_code(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        for (name, value) in reply.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(HeaderName::from_static(name), value);
            }
        }
        res.render(Text::Json(reply.body));
    }
}

/// Builds a [`Stub`].
pub(crate) struct StubBuilder {
    prefix: String,
    routes: Vec<Arc<Route>>,
}

impl StubBuilder {
    /// A stub serving under `/`.
    pub fn new() -> Self {
        Self { prefix: String::new(), routes: Vec::new() }
    }

    /// Serves every route under `prefix` (e.g. `/prefix`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Answers `method path` (path under the prefix, percent-encoded as sent) with
    /// `respond(call_number_from_1, seen)`.
    pub fn on(
        mut self,
        method: &'static str,
        path: &str,
        respond: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Arc::new(Route {
            method,
            path: format!("{}{path}", self.prefix),
            calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        }));
        self
    }

    /// Binds 127.0.0.1:0 and serves in a background task.
    pub async fn start(self) -> std::io::Result<Stub> {
        let routes = Arc::new(self.routes);
        let router = Router::with_path("{**rest}").goal(Dispatch(Arc::clone(&routes)));
        let acceptor = TcpListener::new("127.0.0.1:0").try_bind().await.map_err(std::io::Error::other)?;
        let addr = acceptor
            .holdings()
            .first()
            .and_then(|h| h.local_addr.clone().into_std())
            .ok_or_else(|| std::io::Error::other("the stub has no inet address"))?;
        tokio::spawn(Server::new(acceptor).serve(router));
        Ok(Stub { addr, prefix: self.prefix, routes })
    }
}

/// A running stub cloud.
pub(crate) struct Stub {
    pub addr: SocketAddr,
    prefix: String,
    routes: Arc<Vec<Arc<Route>>>,
}

impl Stub {
    /// `http://127.0.0.1:PORT` followed by the prefix, if any.
    pub fn base(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    /// The route for `method path` (path under the prefix); panics (test only) when not stubbed.
    pub fn route(&self, method: &str, path: &str) -> Arc<Route> {
        let full = format!("{}{path}", self.prefix);
        match self.routes.iter().find(|r| r.method == method && r.path == full) {
            Some(route) => Arc::clone(route),
            None => panic!("no stub route for {method} {full}"),
        }
    }

    /// Calls that reached `method path`.
    pub fn calls(&self, method: &str, path: &str) -> usize {
        self.route(method, path).calls()
    }

    /// Calls that reached `method path`, 0 when it was not stubbed.
    pub fn calls_if_stubbed(&self, method: &str, path: &str) -> usize {
        let full = format!("{}{path}", self.prefix);
        self.routes.iter().find(|r| r.method == method && r.path == full).map_or(0, |r| r.calls())
    }
}
