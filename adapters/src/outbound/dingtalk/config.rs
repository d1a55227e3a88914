//! Configuration of the DingTalk client: hosts, app credentials, timeouts.

use std::time::Duration;

use domain::{AgentId, CorpId};
use secrecy::{ExposeSecret, SecretString};

/// Default browser OAuth host (API.md §0.1, §A.1).
pub const DEFAULT_LOGIN_BASE: &str = "https://login.dingtalk.com";
/// Default "new" API host, `/v1.0/...` paths (API.md §0.1).
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
/// Default legacy API host, `/topapi/...` paths (API.md §0.1).
pub const DEFAULT_OAPI_BASE: &str = "https://oapi.dingtalk.com";
/// Default OAuth scope: `openid` only (API.md §A.1).
pub const DEFAULT_SCOPE: &str = "openid";
/// Default timeout of every DingTalk call: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default app-token refresh margin in seconds: refresh 5 minutes before expiry
/// (API.md §B.6 recommends 5–10 minutes).
pub const DEFAULT_TOKEN_REFRESH_MARGIN_SECS: i64 = 300;

/// Settings of [`super::DingTalkClient`] for one internal enterprise app, which
/// serves exactly one corp. The bootstrap fills it from its own configuration.
///
/// `Debug` is safe to log: `app_secret` prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct DingTalkConfig {
    /// Browser OAuth host, e.g. `https://login.dingtalk.com` (a trailing `/` is allowed).
    pub login_base: String,
    /// "New" API host (`/v1.0/...`), e.g. `https://api.dingtalk.com` (a trailing `/` is allowed).
    pub api_base: String,
    /// Legacy API host (`/topapi/...`), e.g. `https://oapi.dingtalk.com` (a trailing `/` is allowed).
    pub oapi_base: String,
    /// The app's Client ID (AppKey), API.md §0.4.
    pub app_key: String,
    /// The app's Client Secret (AppSecret); never logged.
    pub app_secret: SecretString,
    /// The app's `agent_id`, used for work notifications (API.md §D.1).
    pub agent_id: AgentId,
    /// The one corp this internal app serves; calls for any other corp fail with `CorpNotServed`.
    pub corp_id: CorpId,
    /// OAuth `scope` of the authorize URL: `openid` or `openid corpid` (API.md §A.1).
    pub scope: String,
    /// Timeout of every HTTP call (connect to end of body).
    pub timeout: Duration,
    /// Seconds before the app token's expiry at which it is fetched again (API.md §B.6).
    /// Negative values count as 0.
    pub token_refresh_margin_secs: i64,
}

impl DingTalkConfig {
    /// A configuration for the app with the default hosts, scope, timeout (10 s)
    /// and refresh margin (300 s).
    pub fn new(app_key: impl Into<String>, app_secret: SecretString, agent_id: AgentId, corp_id: CorpId) -> Self {
        Self {
            login_base: DEFAULT_LOGIN_BASE.to_owned(),
            api_base: DEFAULT_API_BASE.to_owned(),
            oapi_base: DEFAULT_OAPI_BASE.to_owned(),
            app_key: app_key.into(),
            app_secret,
            agent_id,
            corp_id,
            scope: DEFAULT_SCOPE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            token_refresh_margin_secs: DEFAULT_TOKEN_REFRESH_MARGIN_SECS,
        }
    }

    /// Checks the values for start-up: the three base URLs must be absolute
    /// `http`/`https` URLs, `app_key`, `app_secret` and `scope` non-empty, and
    /// `timeout` non-zero. The error names the offending field.
    pub fn validate(&self) -> Result<(), DingTalkConfigError> {
        for (field, value) in
            [("login_base", &self.login_base), ("api_base", &self.api_base), ("oapi_base", &self.oapi_base)]
        {
            let ok = reqwest::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(DingTalkConfigError::new(field, "must be an absolute http(s) URL"));
            }
        }
        if self.app_key.trim().is_empty() {
            return Err(DingTalkConfigError::new("app_key", "must not be empty"));
        }
        if self.app_secret.expose_secret().trim().is_empty() {
            return Err(DingTalkConfigError::new("app_secret", "must not be empty"));
        }
        if self.scope.trim().is_empty() {
            return Err(DingTalkConfigError::new("scope", "must not be empty"));
        }
        if self.timeout.is_zero() {
            return Err(DingTalkConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(())
    }
}

/// A bad [`DingTalkConfig`] value, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dingtalk.{field} {message}")]
pub struct DingTalkConfigError {
    /// The offending field, e.g. `api_base`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

impl DingTalkConfigError {
    fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}

/// `base` + `path` with exactly one `/` between them.
pub(super) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}
