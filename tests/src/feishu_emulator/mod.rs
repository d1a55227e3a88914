//! Feishu / Lark (飞书) emulator: one HTTP server that stands in for `open.feishu.cn` and
//! `accounts.feishu.cn` (their paths do not clash, docs/feishu-api.md §G.1), following
//! `docs/feishu-api.md`. It shares no code or wire types with the DingTalk emulator
//! ([`crate::emulator`]) nor with any client.
//!
//! Served endpoints (see each handler's `docs/feishu-api.md §` comment):
//! - OAuth login (§A): `GET /open-apis/authen/v1/authorize` (§A.1/§A.2) and the emulator's consent
//!   actions `GET /open-apis/authen/v1/authorize/approve?request=&open_id=` and
//!   `GET /open-apis/authen/v1/authorize/deny?request=`; `POST /open-apis/authen/v2/oauth/token`
//!   and `POST /oauth/v3/token` (§A.3 code grant, §A.4 refresh grant);
//!   `GET /open-apis/authen/v1/user_info` (§A.5);
//! - app tokens (§B.1): `POST /open-apis/auth/v3/tenant_access_token/internal[/]` and
//!   `POST /open-apis/auth/v3/app_access_token/internal[/]`;
//! - contact (§C.1/§C.2): `GET /open-apis/contact/v3/users/:user_id`,
//!   `POST /open-apis/contact/v3/users/batch_get_id`; tenant: `GET /open-apis/tenant/v2/tenant/query` (§A.5);
//! - IM (§D): `POST /open-apis/im/v1/messages` (§D.1/§D.2), `DELETE /open-apis/im/v1/messages/:id`
//!   (§D.5), `GET /open-apis/im/v1/messages/:id/read_users` (§D.6); batch (§D.3/§D.4):
//!   `POST /open-apis/message/v4/batch_send/`, `GET /open-apis/im/v1/batch_messages/:id/get_progress`,
//!   `GET .../:id/read_user`, `DELETE /open-apis/im/v1/batch_messages/:id`;
//! - anything else: HTTP 404 `text/plain` `404 page not found` (§0.2);
//! - optionally the per-API rate limit of §0.4 (HTTP 429, 99991400; off by default, [`FeishuEmulator::set_api_qps`]);
//! - the event pusher (§E, [`FeishuEmulator::push_contact_event`],
//!   [`FeishuEmulator::push_url_verification`]): encrypted, signed v2.0 contact events POSTed to an
//!   app's request URL;
//! - the admin API under `/_admin/` (not recorded): `GET health|calls[?path=]|messages|batches|limits|pushes`,
//!   `POST consent|users/status|users/available|read|clock|recall_window|limits|reset`, and
//!   `POST push` `{"target":"http://…","kind":"created"|"updated"|"deleted","open_id":"ou_…"}` →
//!   200 [`FeishuPush`] JSON, 400 `{"error"}` (bad body, unknown kind or person), 502 `{"error"}`
//!   (the target gave no HTTP answer within 3 s).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use tests::feishu_emulator::{FeishuEmulatorConfig, start};
//! let running = start(FeishuEmulatorConfig::default(), "127.0.0.1:0").await?;
//! let base = running.base_url(); // both the open.* and the accounts.* base URL
//! # let _ = base;
//! running.stop().await;
//! # Ok(()) }
//! ```

mod admin;
mod batch;
mod contact;
mod fixture;
mod im;
mod limits;
mod oauth;
mod open;
mod pusher;
mod route;
mod state;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_contact;
#[cfg(test)]
mod tests_im;
#[cfg(test)]
mod tests_push;

use std::net::SocketAddr;
use std::time::Duration;

use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::http::StatusCode;
use salvo::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use salvo::server::ServerHandle;
use salvo::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, async_trait};

pub use batch::FeishuBatch;
pub use fixture::{
    DEFAULT_ENCRYPT_KEY, DEFAULT_VERIFICATION_TOKEN, FeishuFixture, FeishuUserFixture, FeishuUserStatus,
    OUTSIDER_TENANT_KEY,
};
pub use pusher::{ContactEventKind, FeishuPush, encrypt_event, sign_event};
pub use state::{DEFAULT_RECALL_WINDOW_SECS, FeishuCall, FeishuConsent, FeishuEmulator, FeishuMessage};

use route::Route;
use wire::{Incoming, Reply, ReplyBody};

/// Emulator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeishuEmulatorConfig {
    /// The app, its tenant and the people.
    pub fixture: FeishuFixture,
    /// Lifetime of authorization codes, seconds (docs/feishu-api.md §A.2: 5 min → 300).
    pub code_ttl_secs: i64,
    /// Lifetime of tenant and user access tokens, seconds (docs/feishu-api.md §B.1, §A.3: 7200).
    pub token_ttl_secs: i64,
    /// Messages per second to one person (docs/feishu-api.md §D.1 "5 QPS per target user"); the
    /// next one within the second is refused with 230020; 0 = unlimited.
    pub per_user_qps: u32,
}

impl Default for FeishuEmulatorConfig {
    fn default() -> Self {
        FeishuEmulatorConfig {
            fixture: FeishuFixture::default(),
            code_ttl_secs: 300,
            token_ttl_secs: 7200,
            per_user_qps: 5,
        }
    }
}

/// A started emulator server.
#[derive(Debug)]
pub struct RunningFeishuEmulator {
    addr: SocketAddr,
    emulator: FeishuEmulator,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningFeishuEmulator {
    /// `http://127.0.0.1:PORT` — the base URL for both `open.feishu.cn` and `accounts.feishu.cn`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (assertions and admin operations).
    pub fn state(&self) -> FeishuEmulator {
        self.emulator.clone()
    }

    /// Stops gracefully: in-flight requests finish (at most 5 s), then the server task ends.
    pub async fn stop(self) {
        self.handle.stop_graceful(Some(Duration::from_secs(5)));
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "feishu emulator server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "feishu emulator server task failed"),
        }
    }
}

/// Binds `bind` (e.g. `127.0.0.1:0`) and serves the emulator in a background task.
///
/// Errors: the fixture fails [`FeishuFixture::validate`], the address cannot be bound, or is not
/// an inet address.
pub async fn start(config: FeishuEmulatorConfig, bind: &str) -> anyhow::Result<RunningFeishuEmulator> {
    config.fixture.validate()?;
    let emulator = FeishuEmulator::new(config);
    let acceptor =
        TcpListener::new(bind.to_owned()).try_bind().await.map_err(|e| anyhow::anyhow!("binding {bind}: {e}"))?;
    let addr = acceptor
        .holdings()
        .first()
        .and_then(|h| h.local_addr.clone().into_std())
        .ok_or_else(|| anyhow::anyhow!("{bind} is not an inet address"))?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    let task = tokio::spawn(server.try_serve(router(emulator.clone())));
    tracing::info!(%addr, "feishu emulator started");
    Ok(RunningFeishuEmulator { addr, emulator, handle, task })
}

/// The emulator as a salvo router: every path and method goes to one handler (module docs).
pub fn router(emulator: FeishuEmulator) -> Router {
    let handler = FeishuHandler { emulator };
    Router::new().goal(handler.clone()).push(Router::with_path("{**rest}").goal(handler))
}

#[derive(Clone)]
struct FeishuHandler {
    emulator: FeishuEmulator,
}

/// Largest request body read: 1 MiB (above the 150 KB text cap of docs/feishu-api.md §D.1).
const MAX_BODY: usize = 1 << 20;

async fn read_incoming(req: &mut Request) -> Incoming {
    let query_raw = req.uri().query().unwrap_or("").to_owned();
    let query =
        url::form_urlencoded::parse(query_raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = req.payload_with_max_size(MAX_BODY).await.map(|b| b.to_vec()).unwrap_or_default();
    Incoming {
        method: req.method().as_str().to_ascii_uppercase(),
        path: req.uri().path().to_owned(),
        query_raw,
        query,
        headers,
        body,
    }
}

fn write_reply(res: &mut Response, reply: Reply) {
    res.status_code(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let content_type = match &reply.body {
        ReplyBody::Json(_) => Some("application/json; charset=utf-8"),
        ReplyBody::Html(_) => Some("text/html; charset=utf-8"),
        ReplyBody::Text(_) => Some("text/plain; charset=utf-8"),
        ReplyBody::Empty => None,
    };
    let headers = res.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    let body = match reply.body {
        ReplyBody::Json(v) => v.to_string(),
        ReplyBody::Html(s) | ReplyBody::Text(s) => s,
        ReplyBody::Empty => String::new(),
    };
    res.body(body);
}

/// Routes a non-admin request to its endpoint, after the §0.4 rate limit.
fn dispatch(emu: &FeishuEmulator, req: &Incoming) -> Reply {
    let Some(route) = Route::of(req) else {
        return Reply::not_found();
    };
    if let Some(api) = route.api()
        && let Err(throttled) = limits::admit(emu, api)
    {
        return throttled;
    }
    match route {
        Route::Authorize => oauth::authorize(emu, req),
        Route::ConsentApprove => oauth::consent_approve(emu, req),
        Route::ConsentDeny => oauth::consent_deny(emu, req),
        Route::TokenV2 => oauth::token(emu, req, oauth::TokenEndpoint::V2),
        Route::TokenV3 => oauth::token(emu, req, oauth::TokenEndpoint::V3),
        Route::UserInfo => oauth::user_info(emu, req),
        Route::TenantToken => open::tenant_access_token(emu, req, false),
        Route::AppToken => open::tenant_access_token(emu, req, true),
        Route::ContactUser(id) => contact::user(emu, req, &id),
        Route::BatchGetId => contact::batch_get_id(emu, req),
        Route::TenantQuery => contact::tenant_query(emu, req),
        Route::Send => im::send(emu, req),
        Route::Recall(id) => im::recall(emu, req, &id),
        Route::ReadUsers(id) => im::read_users(emu, req, &id),
        Route::BatchSend => batch::send(emu, req),
        Route::BatchProgress(id) => batch::progress(emu, req, &id),
        Route::BatchReadUser(id) => batch::read_user(emu, req, &id),
        Route::BatchRecall(id) => batch::recall(emu, req, &id),
    }
}

#[async_trait]
impl Handler for FeishuHandler {
    async fn handle(&self, req: &mut Request, _depot: &mut Depot, res: &mut Response, _ctrl: &mut FlowCtrl) {
        let incoming = read_incoming(req).await;
        let emu = &self.emulator;
        if incoming.method == "POST" && incoming.path == "/_admin/push" {
            write_reply(res, pusher::admin_push(emu, &incoming).await);
            return;
        }
        if incoming.path == "/_admin" || incoming.path.starts_with("/_admin/") {
            write_reply(res, admin::handle(emu, &incoming));
            return;
        }
        let reply = dispatch(emu, &incoming);
        tracing::debug!(method = %incoming.method, path = %incoming.path, status = reply.status, "feishu emulator request");
        emu.record_call(FeishuCall {
            seq: 0,
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query: incoming.query_raw.clone(),
            body: String::from_utf8_lossy(&incoming.body).into_owned(),
            status: reply.status,
            at_ms: 0,
        });
        write_reply(res, reply);
    }
}
