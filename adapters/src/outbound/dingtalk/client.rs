//! The client itself: HTTP plumbing, the app token, the token retry.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use application::ports::UpstreamError;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::{DingTalkConfig, join};
use super::errors::{CallError, decode_legacy, decode_v1};
use super::token::{AppToken, FreshToken, TokenCache};
use super::wire::{AppTokenRequest, AppTokenResponse, path};

/// DingTalk HTTP client for one internal enterprise app: implements
/// [`application::ports::IdentityProvider`] (API.md §A, §C) and
/// [`application::ports::Messenger`] (API.md §D).
///
/// Cloning is cheap (one `Arc`); clones share the app-token cache. Every call
/// uses [`DingTalkConfig::timeout`]. The app token (API.md §B.1) is fetched on
/// first use, cached until `token_refresh_margin_secs` before its expiry, with
/// at most one fetch in flight; a call whose token DingTalk refuses (API.md
/// §G.2 token row) drops it, fetches a new one and is retried once, after
/// which it fails with [`UpstreamError::TokenRejected`].
///
/// Failures map to [`UpstreamError`] (API.md §0.2, §0.3, §G.2): network
/// errors, timeouts, non-JSON or malformed bodies, errcode −1/400001, HTTP
/// 5xx/429 → `Unavailable`; errcode 90001–90014/90017/90018 and HTTP 403
/// `Forbidden.AccessDenied.Qps*`/`Qpm*` → `Throttled`; anything else →
/// `Rejected{code, message}` with DingTalk's code (the `sub_code` for errcode 88).
#[derive(Clone)]
pub struct DingTalkClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) config: DingTalkConfig,
    tokens: TokenCache,
}

impl fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl DingTalkClient {
    /// A client using `http` (share one `reqwest::Client` per process) and
    /// `config`. Does no I/O; see [`DingTalkConfig::validate`] for start-up checks.
    pub fn new(http: reqwest::Client, config: DingTalkConfig) -> Self {
        let tokens = TokenCache::new(config.token_refresh_margin_secs);
        Self { inner: Arc::new(Inner { http, config, tokens }) }
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

    /// Sends one request with the configured timeout and reads the whole body.
    /// Logs the endpoint path (never the URL: its query may hold the token),
    /// the status and the duration. Transport failures → `Unavailable`.
    pub(super) async fn execute(
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
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok((status, body)) => {
                tracing::debug!(endpoint, status = status.as_u16(), elapsed_ms, "DingTalk call");
                Ok((status, body))
            }
            Err(error) => {
                let text = describe(error, timeout);
                tracing::debug!(endpoint, elapsed_ms, error = %text, "DingTalk call failed");
                Err(UpstreamError::Unavailable(format!("{endpoint}: {text}")))
            }
        }
    }

    /// Fetches an app token (API.md §B.1). A refusal (e.g. 400
    /// `invalidClientIdOrSecret`) is `Rejected`; a token-class code cannot
    /// apply to this endpoint and is reported as `Rejected` too.
    async fn fetch_app_token(&self) -> Result<FreshToken, UpstreamError> {
        let body =
            AppTokenRequest { app_key: &self.config.app_key, app_secret: self.config.app_secret.expose_secret() };
        let request = self.http.post(self.api_url(path::APP_TOKEN)).json(&body);
        let (status, bytes) = self.execute(path::APP_TOKEN, request).await?;
        let response: AppTokenResponse = decode_v1(status, &bytes, false).map_err(|e| match e {
            CallError::Token { code, message } => UpstreamError::Rejected { code, message },
            CallError::Upstream(e) => e,
        })?;
        if response.access_token.is_empty() {
            return Err(UpstreamError::Unavailable("the token endpoint returned an empty accessToken".to_owned()));
        }
        Ok(FreshToken { value: SecretString::from(response.access_token), expire_in: response.expire_in })
    }

    async fn app_token(&self) -> Result<AppToken, UpstreamError> {
        self.tokens.get(|| self.fetch_app_token()).await
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

    /// A legacy `/topapi/*` call with the app token (API.md §0.3), retried
    /// once with a new token if DingTalk refuses the token (API.md §G.2).
    pub(super) async fn oapi_post<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &Value,
    ) -> Result<T, UpstreamError> {
        let token = self.app_token().await?;
        match self.oapi_once(endpoint, &token, body).await {
            Ok(value) => Ok(value),
            Err(CallError::Upstream(error)) => Err(error),
            Err(CallError::Token { code, .. }) => {
                tracing::debug!(endpoint, code = %code, "DingTalk refused the app token; fetching a new one and retrying once");
                let fresh = self.tokens.renew(token.generation, || self.fetch_app_token()).await?;
                match self.oapi_once(endpoint, &fresh, body).await {
                    Err(error @ CallError::Token { .. }) => {
                        self.tokens.invalidate(fresh.generation).await;
                        tracing::warn!(endpoint, "DingTalk refused a freshly fetched app token");
                        Err(error.into_upstream())
                    }
                    other => other.map_err(CallError::into_upstream),
                }
            }
        }
    }
}
