//! Configuration of the DingTalk client: hosts, app credentials, timeouts, and
//! which app (internal or suite) it acts as.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use application::ports::SuiteStore;
use domain::{AgentId, CorpId};
use secrecy::{ExposeSecret, SecretString};

use super::quota::QuotaAccountant;
use crate::outbound::governor::Governor;

/// Default browser OAuth host (docs/dingtalk-api.md §0.1, §A.1).
pub const DEFAULT_LOGIN_BASE: &str = "https://login.dingtalk.com";
/// Default "new" API host, `/v1.0/...` paths (docs/dingtalk-api.md §0.1).
pub const DEFAULT_API_BASE: &str = "https://api.dingtalk.com";
/// Default legacy API host, `/topapi/...` paths (docs/dingtalk-api.md §0.1).
pub const DEFAULT_OAPI_BASE: &str = "https://oapi.dingtalk.com";
/// Default OAuth scope: `openid` only (docs/dingtalk-api.md §A.1).
pub const DEFAULT_SCOPE: &str = "openid";
/// Default timeout of every DingTalk call: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default app-token refresh margin in seconds: refresh 5 minutes before expiry
/// (docs/dingtalk-api.md §B.6 recommends 5–10 minutes).
pub const DEFAULT_TOKEN_REFRESH_MARGIN_SECS: i64 = 300;

/// Settings of [`super::DingTalkClient`]: hosts, the app's OAuth client
/// credentials, timeouts. Which corps the client serves, and with which token,
/// is its [`DingTalkApp`]. The bootstrap fills both from its own configuration.
///
/// `Debug` is safe to log: `client_secret` prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct DingTalkConfig {
    /// Browser OAuth host, e.g. `https://login.dingtalk.com` (a trailing `/` is allowed).
    pub login_base: String,
    /// "New" API host (`/v1.0/...`), e.g. `https://api.dingtalk.com` (a trailing `/` is allowed).
    pub api_base: String,
    /// Legacy API host (`/topapi/...`), e.g. `https://oapi.dingtalk.com` (a trailing `/` is allowed).
    pub oapi_base: String,
    /// The app's Client ID: the AppKey of an internal app, the SuiteKey of a
    /// third-party suite (docs/dingtalk-api.md §0.4, §A.1).
    pub client_id: String,
    /// The app's Client Secret (AppSecret or SuiteSecret); never logged.
    pub client_secret: SecretString,
    /// OAuth `scope` of the authorize URL: `openid` or `openid corpid` (docs/dingtalk-api.md §A.1).
    pub scope: String,
    /// Timeout of every HTTP call (connect to end of body).
    pub timeout: Duration,
    /// Seconds before a cached app or corp token's expiry at which it is fetched
    /// again (docs/dingtalk-api.md §B.6). Negative values count as 0.
    pub token_refresh_margin_secs: i64,
    /// The call governor every call of this client passes (docs/dingtalk-api.md §G.1): share one
    /// per process between all clients, so each (app, API) lane is paced once.
    pub governor: Arc<Governor>,
    /// The monthly quota accountant of metered calls (docs/dingtalk-api.md §G.3), shared by every
    /// client of the process; `None` counts nothing.
    pub quota: Option<Arc<QuotaAccountant>>,
    /// Where app and corp tokens are shared with the other cloud instances (PostgreSQL), so one
    /// instance at a time fetches each; `None`: this process keeps its own (one instance).
    pub tokens: Option<Arc<dyn crate::outbound::token::TokenBook>>,
}

/// What the client acts as, and so which corps it serves and with which token.
#[derive(Clone)]
pub enum DingTalkApp {
    /// An internal enterprise app (docs/dingtalk-api.md §B.1): serves exactly `corp_id`,
    /// sends work notifications as `agent_id`, uses the app token
    /// (`POST /v1.0/oauth2/accessToken`) fetched with the client credentials.
    Internal {
        /// The app's AgentID (docs/dingtalk-api.md §D.1).
        agent_id: AgentId,
        /// The one corp it serves; calls for any other corp fail with `CorpNotServed`.
        corp_id: CorpId,
    },
    /// A third-party (ISV) suite app (docs/dingtalk-api.md §B.4): serves every corp whose
    /// authorization in `suites` is active, with that corp's token (fetched
    /// with the suite credentials and the suite's latest `suite_ticket`) and the
    /// suite's `agent_id` in that corp.
    Suite {
        /// Where the event callback stores suite tickets and authorizations.
        suites: Arc<dyn SuiteStore>,
        /// Which endpoint fetches corp tokens.
        corp_token_api: CorpTokenApi,
    },
}

impl fmt::Debug for DingTalkApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Internal { agent_id, corp_id } => {
                f.debug_struct("Internal").field("agent_id", agent_id).field("corp_id", corp_id).finish()
            }
            Self::Suite { corp_token_api, .. } => {
                f.debug_struct("Suite").field("corp_token_api", corp_token_api).finish_non_exhaustive()
            }
        }
    }
}

/// The endpoint a suite uses for an authorized corp's token (docs/dingtalk-api.md §B.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorpTokenApi {
    /// `POST {api_base}/v1.0/oauth2/corpAccessToken` with
    /// `{suiteKey, suiteSecret, authCorpId, suiteTicket}` (the default).
    #[default]
    V1,
    /// Legacy `POST {oapi_base}/service/get_corp_token?accessKey&timestamp&suiteTicket&signature`
    /// with `{"auth_corpid"}`; `signature` = Base64(HMAC-SHA256(SuiteSecret, timestamp + "\n" + suiteTicket)).
    Legacy,
}

impl DingTalkConfig {
    /// A configuration for the app with the default hosts, scope, timeout (10 s),
    /// refresh margin (300 s), a governor of its own with the default pace (18 calls/s per API)
    /// and no quota accounting.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            login_base: DEFAULT_LOGIN_BASE.to_owned(),
            api_base: DEFAULT_API_BASE.to_owned(),
            oapi_base: DEFAULT_OAPI_BASE.to_owned(),
            client_id: client_id.into(),
            client_secret,
            scope: DEFAULT_SCOPE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            token_refresh_margin_secs: DEFAULT_TOKEN_REFRESH_MARGIN_SECS,
            governor: Arc::new(Governor::default()),
            quota: None,
            tokens: None,
        }
    }

    /// Checks the values for start-up: the three base URLs must be absolute
    /// `http`/`https` URLs, `client_id`, `client_secret` and `scope` non-empty,
    /// and `timeout` non-zero. The error names the offending field.
    pub fn validate(&self) -> Result<(), DingTalkConfigError> {
        for (field, value) in
            [("login_base", &self.login_base), ("api_base", &self.api_base), ("oapi_base", &self.oapi_base)]
        {
            let ok = reqwest::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(DingTalkConfigError::new(field, "must be an absolute http(s) URL"));
            }
        }
        if self.client_id.trim().is_empty() {
            return Err(DingTalkConfigError::new("client_id", "must not be empty"));
        }
        if self.client_secret.expose_secret().trim().is_empty() {
            return Err(DingTalkConfigError::new("client_secret", "must not be empty"));
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
#[error("{field} {message}")]
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
