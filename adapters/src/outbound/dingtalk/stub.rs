//! The stub DingTalk server for the client's tests: the shared test stub
//! ([`crate::outbound::test_stub`]) answering every method on DingTalk's paths (both hosts on one
//! address), with the app-token endpoint answered by default.

use std::sync::Arc;

use super::wire::path;
use crate::outbound::test_stub::{self, ANY};
pub(super) use crate::outbound::test_stub::{Reply, Route, Seen};

type Respond = Arc<dyn Fn(usize, &Seen) -> Reply + Send + Sync>;

/// The default app-token answer: `tok-N` for the N-th call, 7200 s (docs/dingtalk-api.md §B.1).
pub(super) fn token_reply(n: usize, _: &Seen) -> Reply {
    Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":7200}}"#))
}

/// Builds a [`Stub`].
pub(super) struct StubBuilder {
    routes: Vec<(&'static str, Respond)>,
}

impl StubBuilder {
    /// A stub whose app-token endpoint answers [`token_reply`].
    pub fn new() -> Self {
        Self { routes: Vec::new() }.on(path::APP_TOKEN, token_reply)
    }

    /// Answers `path` (any method) with `respond(call_number_from_1, seen)`; replaces an earlier route.
    pub fn on(mut self, path: &'static str, respond: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        self.routes.retain(|(p, _)| *p != path);
        self.routes.push((path, Arc::new(respond)));
        self
    }

    /// Binds 127.0.0.1:0 and serves in a background task.
    pub async fn start(self) -> std::io::Result<Stub> {
        let mut builder = test_stub::StubBuilder::new();
        for (path, respond) in self.routes {
            builder = builder.on(ANY, path, move |n, seen| respond(n, seen));
        }
        Ok(Stub(builder.start().await?))
    }
}

/// A running stub DingTalk.
pub(super) struct Stub(test_stub::Stub);

impl Stub {
    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.0.base()
    }

    /// The route for `path`; panics (test only) when it was not stubbed.
    pub fn route(&self, path: &str) -> Arc<Route> {
        self.0.route(ANY, path)
    }

    /// Calls that reached `path` (0 when it was not stubbed).
    pub fn calls(&self, path: &str) -> usize {
        self.0.calls_if_stubbed(ANY, path)
    }
}
