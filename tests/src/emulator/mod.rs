//! DingTalk (钉钉) emulator: one HTTP server that stands in for `login.dingtalk.com`,
//! `api.dingtalk.com` and `oapi.dingtalk.com` (their paths do not clash), following
//! `docs/dingtalk-api.md`.
//!
//! Served endpoints (see each handler's `docs/dingtalk-api.md §` comment):
//! - login pages: `GET /oauth2/auth` (§A.1/§A.2) plus the emulator's consent actions
//!   `GET /oauth2/consent/approve?request=&who=` and `GET /oauth2/consent/deny?request=`;
//! - api.dingtalk.com: `POST /v1.0/oauth2/accessToken` (§B.1), `POST /v1.0/oauth2/userAccessToken`
//!   (§A.3), `GET /v1.0/contact/users/me` (§A.4), ISV `POST /v1.0/oauth2/suiteAccessToken` and
//!   `POST /v1.0/oauth2/corpAccessToken` (§B.4);
//! - oapi.dingtalk.com: `GET /gettoken` (§B.2), ISV `POST /service/get_corp_token` (§B.4),
//!   `POST /topapi/user/getbyunionid` (§C.1), `POST /topapi/v2/user/get` (§C.2),
//!   `POST /topapi/message/corpconversation/{asyncsend_v2,sendbytemplate,getsendprogress,getsendresult,recall}` (§D)
//!   — with an internal-app token (main corp) or an ISV corp token (that corp only);
//! - the event pusher (§E, §H item 6): the emulator POSTs signed, encrypted events to configured
//!   callback URLs and verifies the encrypted `success` reply ([`pusher`], [`crypto`]);
//! - the admin API under `/_admin/` (not recorded): `GET health|calls[?path=]|sends|faults|tokens`,
//!   `POST consent|tokens/revoke|read|clock|reset|faults`, `DELETE faults`, `GET|POST limits` (the
//!   per-app, per-API rate limit of §G.1, `limits`), and the ISV / push /
//!   membership part listed in `admin_push`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use tests::emulator::{EmulatorConfig, start};
//! let running = start(EmulatorConfig::default(), "127.0.0.1:0").await?;
//! let base = running.base_url(); // use as login_base, api_base and oapi_base
//! # let _ = base;
//! running.stop().await;
//! # Ok(()) }
//! ```

mod admin;
mod admin_push;
pub mod crypto;
mod faults;
mod fixture;
mod ip_ban;
mod limits;
mod oapi;
mod oauth;
pub mod pusher;
mod state;
mod suite;
mod wire;

#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use salvo::conn::{Acceptor, Listener, TcpListener};
use salvo::http::StatusCode;
use salvo::http::header::{HeaderName, HeaderValue};
use salvo::server::ServerHandle;
use salvo::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, async_trait};

pub use crypto::CallbackCrypto;
pub use faults::FaultRule;
pub use fixture::{
    AppFixture, CorpFixture, DeptFixture, Fixture, GeneratedUsers, OtherCorpFixture, OutsiderFixture,
    SuiteAuthorization, SuiteFixture, UserFixture,
};
pub use ip_ban::IpBanRule;
pub use limits::{DEFAULT_QPS_LIMIT, LimitsReport};
pub use pusher::{CallbackTarget, PushOptions, PushOutcome, PushSettings, RecordedPush, TargetOwner};
pub use state::{ConsentMode, Emulator, ForbiddenEntry, RecordedCall, RecordedSend, SendOutcome, TokenKind};

use state::RecordedCall as Call;
use wire::{Family, Incoming, JSON_CONTENT_TYPE, Reply, ReplyBody};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The organisation to serve.
    pub fixture: Fixture,
    /// Lifetime of login auth codes in seconds (UNCONFIRMED in docs/dingtalk-api.md; 300 like the 免登 code).
    pub auth_code_ttl_secs: i64,
    /// Lifetime of app and user access tokens in seconds (docs/dingtalk-api.md §B.6: 7200).
    pub token_ttl_secs: i64,
    /// Calls allowed per second per app per API (docs/dingtalk-api.md §G.1: 20); `None`: unlimited.
    /// Over it a call is answered 90018 / 403 `QpsLimitForAppkeyAndApi` and does nothing.
    pub qps_limit: Option<u32>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            fixture: Fixture::default(),
            auth_code_ttl_secs: 300,
            token_ttl_secs: 7200,
            qps_limit: Some(limits::DEFAULT_QPS_LIMIT),
        }
    }
}

/// A started emulator server.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    emulator: Emulator,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` — the base URL for all three DingTalk hosts.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (for assertions and admin operations).
    pub fn state(&self) -> Emulator {
        self.emulator.clone()
    }

    /// Stops gracefully: in-flight requests finish (at most 5 s), then the server task ends.
    pub async fn stop(self) {
        self.handle.stop_graceful(Some(Duration::from_secs(5)));
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "emulator server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "emulator server task failed"),
        }
    }
}

/// Binds `bind` (e.g. `127.0.0.1:0`) and serves the emulator in a background task.
pub async fn start(config: EmulatorConfig, bind: &str) -> anyhow::Result<RunningEmulator> {
    let emulator = Emulator::new(config)?;
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
    tracing::info!(%addr, "dingtalk emulator started");
    Ok(RunningEmulator { addr, emulator, handle, task })
}

/// The emulator as a salvo router (every path is handled; see the module docs).
pub fn router(emulator: Emulator) -> Router {
    let handler = EmulatorHandler { emulator };
    Router::new().goal(handler.clone()).push(Router::with_path("{**rest}").goal(handler))
}

/// Panic payload used to abort a connection for a `drop_connection` fault.
#[derive(Debug)]
struct DropConnection;

#[derive(Clone)]
struct EmulatorHandler {
    emulator: Emulator,
}

/// Largest request body read (1 MiB).
const MAX_BODY: usize = 1 << 20;

async fn read_incoming(req: &mut Request) -> Incoming {
    let query_raw = req.uri().query().unwrap_or("").to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = match req.payload_with_max_size(MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(_) => Vec::new(),
    };
    Incoming {
        method: req.method().as_str().to_ascii_uppercase(),
        path: req.uri().path().to_owned(),
        query: wire::parse_urlencoded(&query_raw),
        query_raw,
        headers,
        body,
    }
}

fn write_reply(res: &mut Response, reply: Reply) {
    res.status_code(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let content_type = match &reply.body {
        ReplyBody::Json(_) => Some(JSON_CONTENT_TYPE),
        ReplyBody::Html(_) => Some("text/html; charset=utf-8"),
        ReplyBody::Empty => None,
    };
    let headers = res.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(salvo::http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    match reply.body {
        ReplyBody::Json(v) => {
            res.body(v.to_string());
        }
        ReplyBody::Html(h) => {
            res.body(h);
        }
        ReplyBody::Empty => {
            res.body(String::new());
        }
    }
}

/// Routes a non-admin request to its endpoint.
fn dispatch(emu: &Emulator, req: &Incoming) -> Reply {
    let path = req.path.as_str();
    match (req.method.as_str(), path) {
        ("GET", "/oauth2/auth") => oauth::authorize(emu, req),
        ("GET", "/oauth2/consent/approve") => oauth::consent_approve(emu, req),
        ("GET", "/oauth2/consent/deny") => oauth::consent_deny(emu, req),
        ("POST", "/v1.0/oauth2/accessToken") => oauth::app_access_token(emu, req),
        ("POST", "/v1.0/oauth2/userAccessToken") => oauth::user_access_token(emu, req),
        ("GET", "/gettoken") => oauth::gettoken(emu, req),
        ("POST", "/v1.0/oauth2/suiteAccessToken") => suite::suite_access_token(emu, req),
        ("POST", "/v1.0/oauth2/corpAccessToken") => suite::corp_access_token(emu, req),
        ("POST", "/service/get_corp_token") => suite::get_corp_token(emu, req),
        ("POST", "/topapi/user/getbyunionid") => oapi::getbyunionid(emu, req),
        ("POST", "/topapi/v2/user/get") => oapi::user_get(emu, req),
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") => oapi::asyncsend_v2(emu, req),
        ("POST", "/topapi/message/corpconversation/sendbytemplate") => oapi::sendbytemplate(emu, req),
        ("POST", "/topapi/message/corpconversation/getsendprogress") => oapi::getsendprogress(emu, req),
        ("POST", "/topapi/message/corpconversation/getsendresult") => oapi::getsendresult(emu, req),
        ("POST", "/topapi/message/corpconversation/recall") => oapi::recall(emu, req),
        ("GET", p)
            if p.strip_prefix("/v1.0/contact/users/").is_some_and(|who| !who.is_empty() && !who.contains('/')) =>
        {
            let who = p.trim_start_matches("/v1.0/contact/users/");
            oauth::users_me(emu, req, who)
        }
        _ => match Family::of(path) {
            // docs/dingtalk-api.md §0.2.
            Family::V1 => Reply::v1_err(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            ),
            // docs/dingtalk-api.md §0.3.
            Family::Topapi => oapi::unknown_method(path),
            // A browser GET on the login host gets an HTML page; an API-style call to an unknown
            // `/oauth2/...` path (e.g. `POST /oauth2/corpAccessToken`, a real mistake on
            // api.dingtalk.com) gets the api host's non-`/v1.0` answer.
            Family::Login if req.method == "GET" => {
                Reply::html(404, "页面不存在 — DingTalk emulator", "<p>not found</p>")
            }
            Family::Login => Reply::other_not_found(),
            // docs/dingtalk-api.md §0.2 last bullet.
            Family::OapiLegacy | Family::Other => Reply::other_not_found(),
        },
    }
}

#[derive(PartialEq)]
enum FaultDecision {
    None,
    Error(String),
    Drop,
    /// The caller's IP is banned (docs/dingtalk-api.md §G.1): the answer's `wait`, minutes.
    IpBanned(u64),
}

impl EmulatorHandler {
    fn decide_fault(&self, path: &str) -> (u64, FaultDecision) {
        let st = self.emulator.lock();
        let rule = st
            .faults
            .iter()
            .find(|r| r.path.as_deref() == Some(path))
            .or_else(|| st.faults.iter().find(|r| r.matches(path)));
        let Some(rule) = rule else {
            return (0, FaultDecision::None);
        };
        let fires = rule.rate >= 1.0 || (rule.rate > 0.0 && rand::random_bool(rule.rate));
        let decision = if !fires {
            FaultDecision::None
        } else if rule.drop_connection {
            FaultDecision::Drop
        } else if let Some(e) = &rule.error {
            FaultDecision::Error(e.clone())
        } else {
            FaultDecision::None
        };
        (rule.latency_ms, decision)
    }
}

/// Counts one request in flight while it lives.
struct InFlight<'a>(&'a Emulator);

impl<'a> InFlight<'a> {
    fn enter(emu: &'a Emulator) -> Self {
        emu.inner.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(emu)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inner.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Handler for EmulatorHandler {
    async fn handle(&self, req: &mut Request, _depot: &mut Depot, res: &mut Response, _ctrl: &mut FlowCtrl) {
        let remote_ip = req.remote_addr().ip();
        let incoming = read_incoming(req).await;
        let emu = &self.emulator;
        if incoming.path == "/_admin" || incoming.path.starts_with("/_admin/") {
            write_reply(res, admin::handle(emu, &incoming).await);
            return;
        }
        // Counted until answered (or until the client goes away and the handler is dropped).
        let _in_flight = InFlight::enter(emu);
        let (latency_ms, mut fault) = self.decide_fault(&incoming.path);
        if fault == FaultDecision::None
            && let Err(wait) = limits::admit_ip(emu, &incoming, remote_ip)
        {
            fault = FaultDecision::IpBanned(wait);
        }
        if latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
        }
        let reply = match fault {
            FaultDecision::Drop => {
                emu.record_call(call_record(&incoming, 0));
                tracing::info!(path = %incoming.path, "fault: dropping the connection");
                // Unwinding out of the handler ends the connection task: hyper never writes a
                // response and the socket is closed (the client sees "connection closed before
                // message completed"). `resume_unwind` skips the panic hook, so nothing is printed.
                std::panic::resume_unwind(Box::new(DropConnection));
            }
            FaultDecision::Error(e) => FaultRule::reply(&e, Family::of(&incoming.path)),
            // docs/dingtalk-api.md §G.1: past 10,000 calls in 20 s from one IP → every call from it
            // is refused for 5 minutes with `{"status":1111,"wait":5,…}`, nothing done.
            FaultDecision::IpBanned(wait) => ip_ban::reply(wait),
            // docs/dingtalk-api.md §G.1: over the per-app, per-API limit → 90018 / 403 Qps…, nothing done.
            FaultDecision::None if !limits::admit(emu, &incoming) => {
                FaultRule::reply("90018", Family::of(&incoming.path))
            }
            // docs/dingtalk-api.md §G.3: past the org's monthly quota → 90020, nothing done.
            FaultDecision::None if !limits::admit_metered(emu, &incoming) => {
                FaultRule::reply("403quota", Family::of(&incoming.path))
            }
            FaultDecision::None => dispatch(emu, &incoming),
        };
        tracing::debug!(
            method = %incoming.method,
            path = %incoming.path,
            status = reply.status,
            "dingtalk emulator request"
        );
        emu.record_call(call_record(&incoming, reply.status));
        let date = http_date(emu.now_ms());
        write_reply(res, reply.with_header("date", date));
    }
}

/// `ms` (Unix epoch milliseconds) as an HTTP date, `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110
/// §5.6.7 IMF-fixdate). DingTalk's answers carry its clock in `Date` like any origin server
/// (RFC 9110 §6.6.1); the emulator's is its own clock, so `POST /_admin/clock` skews it — how
/// `dingbridge doctor`'s clock-skew check is tested.
fn http_date(ms: i64) -> String {
    // IMF-fixdate is always in GMT with English names.
    const IMF_FIXDATE: &str = "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT";
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time::format_description::parse_borrowed::<1>(IMF_FIXDATE)
        .ok()
        .and_then(|format| at.format(&format).ok())
        .unwrap_or_default()
}

fn call_record(req: &Incoming, status: u16) -> Call {
    Call {
        seq: 0,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query_raw.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status,
        at_ms: 0,
    }
}

#[cfg(test)]
mod date_tests {
    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(super::http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(super::http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
