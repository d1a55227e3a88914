//! The client itself: URLs, one attempt, the retry loop, and the seven calls of relay API v1.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use application::ports::{
    CloudGateway, ContactFeedPage, GatewayError, LoginOutcome, MemberKey, RelayReceipt, RelaySendRequest,
};
use async_trait::async_trait;
use backon::Retryable;
use domain::{CorpId, DeliveryReport, LoginState, MemberProfile, ProviderKey};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::config::{RelayConfig, parse_base_url};
use super::retry::{Failure, Replay, backoff, next_delay, parse_retry_after, should_retry};
use crate::relay_api::{
    ContactFeedDto, LoginIntentRequest, LoginIntentResponse, LoginResultResponse, MemberDto, RelayMessageRequest,
    RelayReceiptDto, RelayStatusDto,
};

/// The header carrying the id of one logical call (the same on each of its attempts).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Local's [`CloudGateway`]: calls the cloud's relay API v1 (`crate::relay_api`) over HTTP,
/// outbound only, as one relay client (HTTP Basic with the client id and secret).
///
/// Every call sends `Accept: application/json`, a fresh UUID v4 in `x-request-id` (kept across
/// the call's retries) and has [`RelayConfig::timeout`] per attempt (plus the long-poll's `wait`
/// for `contact_events`). Idempotent calls
/// (`send_message`, `message_status`, `recall_message`, `get_member`, `contact_events`) are retried on transient
/// failures (connect errors, timeouts, 429, 502 other than `upstream_refused`, 503, 504) with
/// exponential backoff and jitter (200 ms to 5 s, `Retry-After` honoured up to 30 s) for
/// [`RelayConfig::max_attempts`] attempts in all; `start_login` and `take_login_result` only
/// when the connection could not be made (nothing was sent).
///
/// Errors ([`GatewayError`]): 401/403 → `Forbidden(message)`; 404 `not_member` → `NotMember`;
/// other 404 → `NotFound`; other 4xx but 408 and 429 (400, 409, 422, …) → `Invalid(message)`;
/// 502 `upstream_refused` → `Rejected(message)`; 408, 429, other 5xx, timeouts, transport errors
/// and 2xx bodies that do not parse → `Unavailable`. `Debug` does not show the secret.
#[derive(Debug, Clone)]
pub struct HttpCloudGateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: RelayConfig,
    /// The parsed base URL, or why it does not parse (reported by every call).
    base: Result<Url, String>,
}

/// One logical call: what to send and how it may be repeated.
struct Call {
    method: Method,
    url: Url,
    /// The route template (`/relay/v1/logins/{state}`): what is logged, never the path, which can
    /// carry a login state.
    route: &'static str,
    /// The message key of a send, status or recall call, logged to follow one message.
    key: Option<String>,
    body: Option<Vec<u8>>,
    replay: Replay,
    /// How long the cloud may hold the call on purpose (a long-poll), added to the timeout.
    hold: Duration,
}

/// The shape of the cloud's error bodies (`inbound::http::error::ErrorBody`), as far as read here.
#[derive(Deserialize)]
struct ErrorReply {
    code: String,
    message: String,
}

impl HttpCloudGateway {
    /// A gateway sending through `http` (share one `reqwest::Client` per process) with `config`.
    /// Call [`RelayConfig::validate`] first: with a bad base URL every call fails with `Unavailable`.
    pub fn new(http: reqwest::Client, config: RelayConfig) -> Self {
        let base = parse_base_url(&config.base_url).map_err(|why| format!("relay.base_url {why}"));
        Self { inner: Arc::new(Inner { http, config, base }) }
    }

    /// `{base}/relay/v1/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, GatewayError> {
        let mut url = self.inner.base.clone().map_err(GatewayError::Unavailable)?;
        url.path_segments_mut()
            .map_err(|()| GatewayError::Unavailable("relay.base_url cannot carry a path".to_owned()))?
            .pop_if_empty()
            .extend(["relay", "v1"])
            .extend(segments);
        Ok(url)
    }

    /// Runs `call` with the retry policy and parses a 2xx body as `T`. The call belongs to the
    /// current trace (the request being served) or starts one (`crate::telemetry`); each attempt
    /// sends it as `traceparent`, and one line per call is logged with its `trace_id` (info;
    /// debug for the feed's long-polls, which repeat every `feed.wait_secs`).
    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, GatewayError> {
        let request_id = Uuid::new_v4().to_string();
        let trace = crate::telemetry::current().unwrap_or_else(crate::telemetry::TraceId::random);
        let attempts = AtomicU32::new(0);
        let started = Instant::now();
        let result = (|| self.attempt::<T>(&call, &request_id, trace, &attempts))
            .retry(backoff(self.inner.config.max_attempts))
            .when(|failure| should_retry(call.replay, failure))
            .adjust(next_delay)
            .notify(|failure, delay| {
                debug!(
                    request_id = %request_id,
                    trace_id = %trace,
                    method = %call.method,
                    route = call.route,
                    failure = ?failure,
                    delay_ms = delay.as_millis(),
                    "cloud relay call failed; retrying"
                );
            })
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(failure) if failure.is_transient() => "unavailable",
            Err(_) => "refused",
        };
        let attempts_made = attempts.load(Ordering::SeqCst);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if call.route == "/relay/v1/events" {
            debug!(request_id = %request_id, trace_id = %trace, method = %call.method, route = call.route, outcome, attempts = attempts_made, elapsed_ms, "cloud relay call");
        } else {
            info!(request_id = %request_id, trace_id = %trace, method = %call.method, route = call.route, key = call.key.as_deref(), outcome, attempts = attempts_made, elapsed_ms, "cloud relay call");
        }
        crate::metrics::relay_call(call.route, outcome, started.elapsed());
        result.map_err(|failure| {
            if failure.is_transient() {
                warn!(
                    request_id = %request_id,
                    trace_id = %trace,
                    method = %call.method,
                    route = call.route,
                    attempts = attempts.load(Ordering::SeqCst),
                    failure = ?failure,
                    "giving up on the cloud relay call"
                );
            }
            failure.into_gateway_error()
        })
    }

    /// One attempt of `call`.
    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call,
        request_id: &str,
        trace: crate::telemetry::TraceId,
        attempts: &AtomicU32,
    ) -> Result<T, Failure> {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let config = &self.inner.config;
        let started = Instant::now();
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .basic_auth(&config.client_id, Some(config.client_secret.expose_secret()))
            .header(ACCEPT, "application/json")
            .header(REQUEST_ID_HEADER, request_id)
            .header(crate::telemetry::TRACEPARENT_HEADER, crate::telemetry::traceparent(trace))
            .timeout(config.timeout + call.hold);
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let (status, outcome) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), read(response).await)
            }
            Err(err) => (None, Err(transport_failure(&err))),
        };
        debug!(
            request_id,
            trace_id = %trace,
            method = %call.method,
            route = call.route,
            attempt,
            status,
            elapsed_ms = started.elapsed().as_millis(),
            failure = outcome.as_ref().err().map(tracing::field::debug),
            "cloud relay call"
        );
        outcome
    }

    fn get(&self, url: Url, route: &'static str, replay: Replay) -> Call {
        Call { method: Method::GET, url, route, key: None, body: None, replay, hold: Duration::ZERO }
    }

    fn post<B: serde::Serialize>(
        &self,
        url: Url,
        route: &'static str,
        body: Option<&B>,
        replay: Replay,
    ) -> Result<Call, GatewayError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| GatewayError::Invalid(format!("the request could not be encoded: {e}")))?;
        Ok(Call { method: Method::POST, url, route, key: None, body, replay, hold: Duration::ZERO })
    }
}

/// Reads a response: a 2xx body as `T`, anything else as [`Failure::Status`].
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Failure> {
    let status = response.status();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let bytes = response.bytes().await.map_err(|e| transport_failure(&e))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| Failure::UnexpectedBody(format!("HTTP {status}: {e}")));
    }
    let (code, message) = match serde_json::from_slice::<ErrorReply>(&bytes) {
        Ok(reply) => (Some(reply.code), reply.message),
        Err(_) => (None, format!("the cloud answered HTTP {status} without an error body")),
    };
    Err(Failure::Status { status: status.as_u16(), code, message, retry_after })
}

/// Classifies a transport error: connect errors (nothing sent), timeouts, the rest.
fn transport_failure(err: &reqwest::Error) -> Failure {
    let detail = chain(err);
    if err.is_connect() {
        Failure::Connect(detail)
    } else if err.is_timeout() {
        Failure::Timeout(detail)
    } else {
        Failure::Transport(detail)
    }
}

/// An error and its causes, `: `-separated.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A message key as a path segment: `.`, `..` and the empty key would change the path.
fn key_segment(key: &str) -> Result<&str, GatewayError> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(GatewayError::Invalid(format!(
            "the message key {key:?} cannot name a message (1–128 characters, not `.` or `..`)"
        )));
    }
    Ok(key)
}

/// A 2xx body whose content does not fit the domain.
fn unexpected(detail: impl std::fmt::Display) -> GatewayError {
    GatewayError::Unavailable(format!("the cloud answered an unexpected body: {detail}"))
}

/// The receipt the cloud answered, checked to be for `key`.
fn receipt_for(key: &str, receipt: RelayReceipt) -> Result<RelayReceipt, GatewayError> {
    if receipt.key == key {
        Ok(receipt)
    } else {
        Err(unexpected(format!("a receipt for key {:?} instead of {key:?}", receipt.key)))
    }
}

#[async_trait]
impl CloudGateway for HttpCloudGateway {
    /// `POST /relay/v1/logins`; retried only when nothing was sent (a repeat would be a
    /// duplicate state). Errors: `Forbidden` when `complete_url` is outside the client's origins
    /// or the credentials are refused; `Invalid` for a malformed state or URL; `Unavailable`.
    async fn start_login(
        &self,
        provider: &ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, GatewayError> {
        let body = LoginIntentRequest {
            state: state.expose().to_owned(),
            provider: provider.to_string(),
            complete_url: complete_url.to_owned(),
        };
        let call = self.post(self.url(&["logins"])?, "/relay/v1/logins", Some(&body), Replay::ConnectOnly)?;
        let answer: LoginIntentResponse = self.call(call).await?;
        match Url::parse(&answer.authorize_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(answer.authorize_url),
            _ => Err(unexpected("authorize_url is not an absolute http(s) URL")),
        }
    }

    /// `GET /relay/v1/logins/{state}` (single use); retried only when nothing was sent.
    /// Errors: `NotFound` when unknown, expired, taken or another client's; `Unavailable`.
    async fn take_login_result(&self, state: &LoginState) -> Result<LoginOutcome, GatewayError> {
        let call = self.get(self.url(&["logins", state.expose()])?, "/relay/v1/logins/{state}", Replay::ConnectOnly);
        let answer: LoginResultResponse = self.call(call).await?;
        LoginOutcome::try_from(answer).map_err(unexpected)
    }

    /// `POST /relay/v1/messages`, idempotent on `request.key`, retried on transient failures.
    /// Errors: `Forbidden` (corp outside the client's list), `Invalid` (409 key reused with another
    /// message, 422 body refused), `Rejected` (DingTalk refused), `Unavailable`.
    async fn send_message(&self, request: &RelaySendRequest) -> Result<RelayReceipt, GatewayError> {
        let body = RelayMessageRequest {
            key: request.key.clone(),
            corp_id: request.corp_id.to_string(),
            recipients: (&request.recipients).into(),
            body: request.body.as_json().clone(),
        };
        let mut call = self.post(self.url(&["messages"])?, "/relay/v1/messages", Some(&body), Replay::Idempotent)?;
        call.key = Some(request.key.clone());
        let answer: RelayReceiptDto = self.call(call).await?;
        receipt_for(&request.key, RelayReceipt::try_from(answer).map_err(unexpected)?)
    }

    /// `GET /relay/v1/messages/{key}`, retried on transient failures.
    /// Errors: `NotFound` for an unknown key, `Invalid` for `.`/`..`/empty keys, `Unavailable`.
    async fn message_status(&self, key: &str) -> Result<(RelayReceipt, DeliveryReport), GatewayError> {
        let mut call =
            self.get(self.url(&["messages", key_segment(key)?])?, "/relay/v1/messages/{key}", Replay::Idempotent);
        call.key = Some(key.to_owned());
        let answer: RelayStatusDto = self.call(call).await?;
        let (receipt, report) = answer.into_domain().map_err(unexpected)?;
        Ok((receipt_for(key, receipt)?, report))
    }

    /// `POST /relay/v1/messages/{key}/recall` (idempotent on the cloud), retried on transient
    /// failures. Errors: `NotFound`, `Invalid`, `Rejected` (DingTalk refused, e.g. after 24 h),
    /// `Unavailable`.
    async fn recall_message(&self, key: &str) -> Result<RelayReceipt, GatewayError> {
        let mut call = self.post::<()>(
            self.url(&["messages", key_segment(key)?, "recall"])?,
            "/relay/v1/messages/{key}/recall",
            None,
            Replay::Idempotent,
        )?;
        call.key = Some(key.to_owned());
        let answer: RelayReceiptDto = self.call(call).await?;
        receipt_for(key, RelayReceipt::try_from(answer).map_err(unexpected)?)
    }

    /// `GET /relay/v1/members?corp_id=&userid=` (or `&union_id=`), retried on transient failures.
    /// Errors: `NotMember` when not in the corp, `Forbidden` (corp outside the client's list),
    /// `Rejected`, `Unavailable`.
    async fn get_member(&self, corp_id: &CorpId, key: &MemberKey) -> Result<MemberProfile, GatewayError> {
        let mut url = self.url(&["members"])?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("corp_id", corp_id.as_str());
            match key {
                MemberKey::UserId(userid) => query.append_pair("userid", userid.as_str()),
                MemberKey::UnionId(union_id) => query.append_pair("union_id", union_id.as_str()),
            };
        }
        let answer: MemberDto = self.call(self.get(url, "/relay/v1/members", Replay::Idempotent)).await?;
        MemberProfile::try_from(answer).map_err(unexpected)
    }

    /// `GET /relay/v1/events?after=&wait=` (the cloud's default page size), retried on transient
    /// failures; each attempt may take `wait_secs` plus [`RelayConfig::timeout`]. The page is
    /// checked to follow `after` in order. Errors: `Invalid` (an out-of-range argument, 422),
    /// `Forbidden` (credentials refused), `Unavailable`.
    async fn contact_events(&self, after: i64, wait_secs: u32) -> Result<ContactFeedPage, GatewayError> {
        let mut url = self.url(&["events"])?;
        url.query_pairs_mut().append_pair("after", &after.to_string()).append_pair("wait", &wait_secs.to_string());
        let mut call = self.get(url, "/relay/v1/events", Replay::Idempotent);
        call.hold = Duration::from_secs(u64::from(wait_secs));
        let answer: ContactFeedDto = self.call(call).await?;
        answer.into_domain(after).map_err(unexpected)
    }
}
