//! The client itself: HTTP plumbing, the app token, the token retry.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use application::ports::{SuiteStore, UpstreamError, WaitReason};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::{AgentId, CorpId};
use hmac::{KeyInit, Mac};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::{CorpTokenApi, DingTalkApp, DingTalkConfig, join};
use super::errors::{CallError, decode_legacy, decode_v1, throttle_signal};
use crate::outbound::governor::{Refusal, Signal};
use crate::outbound::token::{AppToken, FreshToken, TokenCache};

use super::wire::{AppTokenRequest, AppTokenResponse, CorpTokenRequest, LegacyTokenResponse, path};

/// DingTalk HTTP client for one app — an internal enterprise app or a
/// third-party suite ([`DingTalkApp`]): implements
/// [`application::ports::IdentityProvider`] (docs/dingtalk-api.md §A, §C) and
/// [`application::ports::Messenger`] (docs/dingtalk-api.md §D).
///
/// Cloning is cheap (one `Arc`); clones share the token caches. Every call
/// uses [`DingTalkConfig::timeout`]. Tokens are cached per corp until
/// `token_refresh_margin_secs` before their expiry, with at most one fetch in
/// flight per corp: the app token of an internal app (docs/dingtalk-api.md §B.1), or for a
/// suite each authorized corp's token (docs/dingtalk-api.md §B.4, fetched with the suite's
/// latest `suite_ticket`). A call whose token DingTalk refuses (docs/dingtalk-api.md §G.2
/// token row) drops it, fetches a new one and is retried once, after which it
/// fails with [`UpstreamError::TokenRejected`].
///
/// A corp the app does not serve (another corp than an internal app's; a corp
/// without an active authorization of the suite) fails with `CorpNotServed`.
/// Other failures map to [`UpstreamError`] (docs/dingtalk-api.md §0.2, §0.3, §G.2): network
/// errors, timeouts, non-JSON or malformed bodies, errcode −1/400001/500/1430003, HTTP
/// 5xx/429, a suite without a `suite_ticket` yet, an unreadable suite store →
/// `Unavailable`; errcode 90001–90014/90017/90018 and HTTP 403
/// `Forbidden.AccessDenied.Qps*`/`Qpm*` → `Throttled`; anything else →
/// `Rejected{code, message}` with DingTalk's code (the `sub_code` for errcode 88).
#[derive(Clone)]
pub struct DingTalkClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) config: DingTalkConfig,
    access: Access,
}

/// How corps are served: the private side of [`DingTalkApp`], with token caches.
enum Access {
    Internal { agent_id: AgentId, corp_id: CorpId, tokens: Arc<TokenCache> },
    Suite { suites: Arc<dyn SuiteStore>, api: CorpTokenApi, tokens: std::sync::Mutex<HashMap<CorpId, Arc<TokenCache>>> },
}

/// What calls for one served corp use.
pub(super) struct Corp {
    pub(super) corp_id: CorpId,
    /// The agent id in that corp; `None` for a suite authorization that carried none.
    pub(super) agent_id: Option<AgentId>,
    tokens: Arc<TokenCache>,
}

impl Corp {
    /// The agent id, or a permanent error naming the corp when the suite's
    /// authorization did not carry one.
    pub(super) fn agent_id(&self) -> Result<AgentId, UpstreamError> {
        self.agent_id.ok_or_else(|| UpstreamError::Rejected {
            code: "agent_id_unknown".to_owned(),
            message: format!(
                "the suite's agent id in corp {} is unknown (its authorization event carried none)",
                self.corp_id
            ),
        })
    }
}

/// Why a corp cannot be served.
pub(super) enum CorpError {
    /// Not this app's corp / no active authorization.
    NotServed,
    /// The suite store could not be read.
    Upstream(UpstreamError),
}

impl fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl DingTalkClient {
    /// A client for `app` using `http` (share one `reqwest::Client` per process)
    /// and `config`. Does no I/O; see [`DingTalkConfig::validate`] for start-up checks.
    pub fn new(http: reqwest::Client, config: DingTalkConfig, app: DingTalkApp) -> Self {
        let access = match app {
            DingTalkApp::Internal { agent_id, corp_id } => Access::Internal {
                agent_id,
                corp_id,
                tokens: Arc::new(
                    TokenCache::new(config.token_refresh_margin_secs)
                        .with_shared(config.tokens.clone(), format!("app:{}", config.client_id)),
                ),
            },
            DingTalkApp::Suite { suites, corp_token_api } => {
                Access::Suite { suites, api: corp_token_api, tokens: std::sync::Mutex::new(HashMap::new()) }
            }
        };
        Self { inner: Arc::new(Inner { http, config, access }) }
    }
}

/// A reqwest error as text, without the URL (which may carry `access_token`).
fn describe(error: reqwest::Error, timeout: std::time::Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Inner {
    /// `{api_base}{path}`.
    pub(super) fn api_url(&self, path: &str) -> String {
        join(&self.config.api_base, path)
    }

    /// Sends one request through the call governor (docs/dingtalk-api.md §G.1) with the configured
    /// timeout and reads the whole body. Logs the endpoint path (never the URL: its query may
    /// hold the token), the status and the duration.
    ///
    /// The governor paces the call in the lane (`client_id`, `endpoint`). An answer that says
    /// DingTalk throttled the call (90018, 90002, `Qps*`) is reported to the governor and the
    /// call is made again after the lane's pause, up to `max_retries` times; the last throttle
    /// answer is returned for the caller to classify (`Throttled`). An IP-ban answer pauses every
    /// lane and is `Throttled` at once.
    ///
    /// Errors: `Throttled` when the governor refuses the call (its queue is longer than
    /// `max_wait`, or the egress IP is banned) or DingTalk banned the IP; `Unavailable` for
    /// transport failures.
    pub(super) async fn execute(
        &self,
        endpoint: &'static str,
        request: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let governor = &self.config.governor;
        let app = self.config.client_id.as_str();
        let mut pending = Some(request);
        let mut retries = 0;
        loop {
            let Some(request) = pending.take() else {
                return Err(UpstreamError::Unavailable(format!("{endpoint}: the request cannot be repeated")));
            };
            // Keep a copy while another try is allowed (JSON bodies are bytes, so this is cheap).
            pending = if retries < governor.config().max_retries { request.try_clone() } else { None };
            governor.admit(app, endpoint).await.map_err(|refusal| {
                tracing::debug!(endpoint, reason = refusal.reason(), "the call governor refused a DingTalk call");
                UpstreamError::Held {
                    reason: match refusal {
                        Refusal::Busy { .. } => WaitReason::Throttled,
                        Refusal::IpBanned { .. } => WaitReason::IpBanned,
                    },
                    retry_after_ms: u64::try_from(refusal.retry_after().as_millis()).unwrap_or(u64::MAX),
                    detail: format!("{endpoint}: {refusal}"),
                }
            })?;
            let (status, body) = self.send_once(endpoint, request).await?;
            match throttle_signal(status, &body) {
                None => {
                    governor.settled(app, endpoint);
                    return Ok((status, body));
                }
                Some(signal @ Signal::IpBanned(ban)) => {
                    governor.report(app, endpoint, signal);
                    return Err(UpstreamError::Held {
                        reason: WaitReason::IpBanned,
                        retry_after_ms: u64::try_from(ban.as_millis()).unwrap_or(u64::MAX),
                        detail: format!(
                            "{endpoint}: DingTalk banned this egress IP for {} s (docs/dingtalk-api.md §G.1)",
                            ban.as_secs()
                        ),
                    });
                }
                Some(signal) => {
                    governor.report(app, endpoint, signal);
                    if pending.is_none() {
                        return Ok((status, body));
                    }
                    retries += 1;
                    tracing::debug!(
                        endpoint,
                        retries,
                        ?signal,
                        "DingTalk throttled the call; trying again after the pause"
                    );
                }
            }
        }
    }

    /// One HTTP exchange with the configured timeout, with its metrics and debug log.
    /// Transport failures → `Unavailable`.
    async fn send_once(
        &self,
        endpoint: &'static str,
        request: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let timeout = self.config.timeout;
        let started = Instant::now();
        let outcome = match request.timeout(timeout).send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|body| (status, body.to_vec()))
            }
            Err(error) => Err(error),
        };
        let elapsed = started.elapsed();
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok((status, body)) => {
                let result = crate::metrics::dingtalk_result(status.as_u16(), &body);
                tracing::debug!(endpoint, status = status.as_u16(), result = %result, elapsed_ms, "DingTalk call");
                crate::metrics::dingtalk_call(endpoint, result, elapsed);
                Ok((status, body))
            }
            Err(error) => {
                let result = if error.is_timeout() { "timeout" } else { "transport_error" };
                crate::metrics::dingtalk_call(endpoint, result.to_owned(), elapsed);
                let text = describe(error, timeout);
                tracing::debug!(endpoint, elapsed_ms, error = %text, "DingTalk call failed");
                Err(UpstreamError::Unavailable(format!("{endpoint}: {text}")))
            }
        }
    }

    /// The corp's token cache and agent id, if this app serves `corp_id`: an
    /// internal app its one corp; a suite every corp whose authorization is
    /// active (read from the suite store on every call, so a relieved
    /// authorization stops being served at once and its cached token is dropped).
    pub(super) async fn corp(&self, corp_id: &CorpId) -> Result<Corp, CorpError> {
        match &self.access {
            Access::Internal { agent_id, corp_id: served, tokens } if served == corp_id => {
                Ok(Corp { corp_id: corp_id.clone(), agent_id: Some(*agent_id), tokens: tokens.clone() })
            }
            Access::Internal { .. } => Err(CorpError::NotServed),
            Access::Suite { suites, tokens, .. } => {
                let authorization = suites
                    .authorization(&self.config.client_id, corp_id)
                    .await
                    .map_err(|e| CorpError::Upstream(UpstreamError::Unavailable(format!("suite store: {e}"))))?;
                let mut caches = tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match authorization.filter(|a| a.active) {
                    Some(authorization) => {
                        let cache = caches
                            .entry(corp_id.clone())
                            .or_insert_with(|| {
                                Arc::new(TokenCache::new(self.config.token_refresh_margin_secs).with_shared(
                                    self.config.tokens.clone(),
                                    format!("corp:{}:{}", self.config.client_id, corp_id.as_str()),
                                ))
                            })
                            .clone();
                        Ok(Corp { corp_id: corp_id.clone(), agent_id: authorization.agent_id, tokens: cache })
                    }
                    None => {
                        caches.remove(corp_id);
                        Err(CorpError::NotServed)
                    }
                }
            }
        }
    }

    /// Fetches a token for `corp_id`: the app token of an internal app (docs/dingtalk-api.md
    /// §B.1) or the suite's corp token (docs/dingtalk-api.md §B.4). A refusal (e.g. 400
    /// `invalidClientIdOrSecret`, `invalidSuiteTicket`, `invalidAuthInfo`) is
    /// `Rejected`; a token-class code cannot apply to these endpoints and is
    /// reported as `Rejected` too.
    async fn fetch_token(&self, corp_id: &CorpId) -> Result<FreshToken, UpstreamError> {
        let kind = match self.access {
            Access::Internal { .. } => "app",
            Access::Suite { .. } => "corp",
        };
        let fetched = self.fetch_token_uncounted(corp_id).await;
        let failure = match &fetched {
            Ok(_) => None,
            Err(UpstreamError::Rejected { .. }) => Some("rejected"),
            Err(_) => Some("unavailable"),
        };
        crate::metrics::token_refresh(kind, failure);
        fetched
    }

    /// [`Inner::fetch_token`] without the token metrics.
    async fn fetch_token_uncounted(&self, corp_id: &CorpId) -> Result<FreshToken, UpstreamError> {
        let as_rejected = |e: CallError| match e {
            CallError::Token { code, message } => UpstreamError::Rejected { code, message },
            CallError::Upstream(e) => e,
        };
        let (token, expire_in) = match &self.access {
            Access::Internal { .. } => {
                let body = AppTokenRequest {
                    app_key: &self.config.client_id,
                    app_secret: self.config.client_secret.expose_secret(),
                };
                let request = self.http.post(self.api_url(path::APP_TOKEN)).json(&body);
                let (status, bytes) = self.execute(path::APP_TOKEN, request).await?;
                let response: AppTokenResponse = decode_v1(status, &bytes, false).map_err(as_rejected)?;
                (response.access_token, response.expire_in)
            }
            Access::Suite { suites, api, .. } => {
                let suite_key = &self.config.client_id;
                let ticket = suites
                    .ticket(suite_key)
                    .await
                    .map_err(|e| UpstreamError::Unavailable(format!("suite store: {e}")))?
                    .ok_or_else(|| {
                        UpstreamError::Unavailable(format!(
                            "no suite_ticket received yet for suite {suite_key} (DingTalk pushes one about every 5 hours, docs/dingtalk-api.md §B.5)"
                        ))
                    })?;
                let secret = self.config.client_secret.expose_secret();
                let fetched = match api {
                    CorpTokenApi::V1 => {
                        let body = CorpTokenRequest {
                            suite_key,
                            suite_secret: secret,
                            auth_corp_id: corp_id.as_str(),
                            suite_ticket: &ticket.ticket,
                        };
                        let request = self.http.post(self.api_url(path::CORP_TOKEN)).json(&body);
                        let (status, bytes) = self.execute(path::CORP_TOKEN, request).await?;
                        decode_v1::<AppTokenResponse>(status, &bytes, false)
                            .map(|r| (r.access_token, r.expire_in))
                            .map_err(as_rejected)
                    }
                    CorpTokenApi::Legacy => {
                        let timestamp = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map(|d| d.as_millis().to_string())
                            .unwrap_or_default();
                        let signature = legacy_signature(secret, &timestamp, &ticket.ticket)?;
                        let query = [
                            ("accessKey", suite_key.as_str()),
                            ("timestamp", timestamp.as_str()),
                            ("suiteTicket", ticket.ticket.as_str()),
                            ("signature", signature.as_str()),
                        ];
                        let request = self
                            .http
                            .post(join(&self.config.oapi_base, path::LEGACY_CORP_TOKEN))
                            .query(&query)
                            .json(&serde_json::json!({ "auth_corpid": corp_id.as_str() }));
                        let (status, bytes) = self.execute(path::LEGACY_CORP_TOKEN, request).await?;
                        decode_legacy::<LegacyTokenResponse>(status, &bytes)
                            .map(|r| (r.access_token, r.expires_in))
                            .map_err(as_rejected)
                    }
                };
                fetched.map_err(|e| stale_ticket(e, suite_key))?
            }
        };
        if token.is_empty() {
            return Err(UpstreamError::Unavailable("the token endpoint returned an empty access token".to_owned()));
        }
        Ok(FreshToken { value: SecretString::from(token), expire_in })
    }

    async fn token(&self, corp: &Corp) -> Result<AppToken, UpstreamError> {
        corp.tokens.get(|| self.fetch_token(&corp.corp_id)).await
    }

    /// One legacy call `POST {oapi_base}{endpoint}?access_token=T` with a JSON body.
    async fn oapi_once<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        token: &AppToken,
        body: &Value,
    ) -> Result<T, CallError> {
        let request = self
            .http
            .post(join(&self.config.oapi_base, endpoint))
            .query(&[("access_token", token.value.expose_secret())])
            .json(body);
        let (status, bytes) = self.execute(endpoint, request).await?;
        decode_legacy(status, &bytes)
    }

    /// A legacy `/topapi/*` call with the corp's token (docs/dingtalk-api.md §0.3), retried
    /// once with a new token if DingTalk refuses the token (docs/dingtalk-api.md §G.2), and
    /// accounted against the corp's monthly quota when it is metered (§G.3, [`super::quota`]):
    /// while the quota is marked exhausted a metered call is not made (`Throttled`), and a
    /// `90020` answer marks it and is `Throttled` too, so a message waits instead of failing.
    pub(super) async fn oapi_post<T: DeserializeOwned>(
        &self,
        corp: &Corp,
        endpoint: &'static str,
        body: &Value,
    ) -> Result<T, UpstreamError> {
        let quota = self.config.quota.as_deref();
        if let Some(quota) = quota {
            quota.check(&corp.corp_id, endpoint).await?;
        }
        let result = self.oapi_post_unaccounted(corp, endpoint, body).await;
        if let Some(quota) = quota {
            match &result {
                Err(error) if super::quota::is_quota_refusal(error) => {
                    quota.exhausted(&corp.corp_id).await;
                    return Err(UpstreamError::Held {
                        reason: WaitReason::WaitingQuota,
                        retry_after_ms: super::quota::QUOTA_RECHECK_MS,
                        detail: format!(
                            "{endpoint}: DingTalk says the monthly API quota of corp {} is exhausted ({error}); metered calls wait",
                            corp.corp_id
                        ),
                    });
                }
                Ok(_)
                | Err(
                    UpstreamError::Rejected { .. }
                    | UpstreamError::TokenRejected(_)
                    | UpstreamError::Unrecognized { .. },
                ) => {
                    quota.count(&corp.corp_id, endpoint).await;
                }
                Err(UpstreamError::Throttled(_) | UpstreamError::Unavailable(_) | UpstreamError::Held { .. }) => {}
            }
        }
        result
    }

    /// [`Inner::oapi_post`] without the quota accounting.
    async fn oapi_post_unaccounted<T: DeserializeOwned>(
        &self,
        corp: &Corp,
        endpoint: &'static str,
        body: &Value,
    ) -> Result<T, UpstreamError> {
        let token = self.token(corp).await?;
        match self.oapi_once(endpoint, &token, body).await {
            Ok(value) => Ok(value),
            Err(CallError::Upstream(error)) => Err(error),
            Err(CallError::Token { code, .. }) => {
                tracing::debug!(endpoint, code = %code, corp_id = %corp.corp_id, "DingTalk refused the access token; fetching a new one and retrying once");
                let fresh = corp.tokens.renew(token.generation, || self.fetch_token(&corp.corp_id)).await?;
                match self.oapi_once(endpoint, &fresh, body).await {
                    Err(error @ CallError::Token { .. }) => {
                        corp.tokens.invalidate(fresh.generation).await;
                        tracing::warn!(endpoint, corp_id = %corp.corp_id, "DingTalk refused a freshly fetched access token");
                        Err(error.into_upstream())
                    }
                    other => other.map_err(CallError::into_upstream),
                }
            }
        }
    }
}

/// DingTalk's refusal of the stored `suite_ticket` (v1 `invalidSuiteTicket`, legacy 40085 "不存在的
/// suiteticket", docs/dingtalk-api.md §B.4, §G.2): a newer ticket exists and DingTalk re-pushes until it is
/// accepted (§B.5), so this is `Unavailable` — sends wait for it — rather than a permanent refusal.
fn stale_ticket(error: UpstreamError, suite_key: &str) -> UpstreamError {
    match error {
        UpstreamError::Rejected { code, message } if code == "invalidSuiteTicket" || code == "40085" => {
            tracing::warn!(%suite_key, %code, "DingTalk refused the stored suite_ticket; waiting for the next push");
            UpstreamError::Unavailable(format!(
                "DingTalk refused the stored suite_ticket of suite {suite_key} ({code} {message}); waiting for the next push"
            ))
        }
        other => other,
    }
}

/// The legacy ISV request signature (docs/dingtalk-api.md §B.4):
/// Base64(HMAC-SHA256(key = SuiteSecret, msg = timestamp + "\n" + suiteTicket)).
/// Returned unencoded; the query encoder percent-encodes it (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`).
pub(super) fn legacy_signature(secret: &str, timestamp: &str, ticket: &str) -> Result<String, UpstreamError> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| {
        UpstreamError::Rejected { code: "suite_secret".to_owned(), message: "unusable SuiteSecret".to_owned() }
    })?;
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(ticket.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}
