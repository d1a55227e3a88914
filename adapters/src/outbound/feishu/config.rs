//! Feishu client configuration (docs/feishu-api.md §0.1 hosts, §A.3 token endpoints, §B.1).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use domain::CorpId;
use secrecy::SecretString;

use crate::outbound::governor::{Governor, GovernorConfig};
use crate::outbound::token::TokenBook;

/// `https://open.feishu.cn`: every `/open-apis/…` server API (docs/feishu-api.md §0.1).
pub const DEFAULT_OPEN_BASE: &str = "https://open.feishu.cn";
/// `https://accounts.feishu.cn`: the browser's authorize page and the v3 token endpoint
/// (docs/feishu-api.md §0.1).
pub const DEFAULT_ACCOUNTS_BASE: &str = "https://accounts.feishu.cn";
/// Lark (international) counterpart of [`DEFAULT_OPEN_BASE`] (docs/feishu-api.md §0.1).
pub const LARK_OPEN_BASE: &str = "https://open.larksuite.com";
/// Lark (international) counterpart of [`DEFAULT_ACCOUNTS_BASE`] (docs/feishu-api.md §0.1).
pub const LARK_ACCOUNTS_BASE: &str = "https://accounts.larksuite.com";
/// Timeout of one HTTP call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds before expiry at which the tenant token is refreshed: 30 minutes, because Feishu
/// returns the *same* token while at least 30 minutes remain (docs/feishu-api.md §B.1).
pub const DEFAULT_TOKEN_REFRESH_MARGIN_SECS: i64 = 1800;

/// Default pace of each Feishu API, in calls per second: under Feishu's 50/s per app and API
/// (docs/feishu-api.md §0.4, §D.1), leaving room for jitter.
pub const DEFAULT_RATE_PER_SECOND: f64 = 45.0;

/// A call governor with Feishu's default pace ([`DEFAULT_RATE_PER_SECOND`]).
pub fn default_governor() -> Arc<Governor> {
    Arc::new(Governor::new(GovernorConfig { rate_per_second: DEFAULT_RATE_PER_SECOND, ..GovernorConfig::default() }))
}

/// Which code-to-token endpoint the client calls (docs/feishu-api.md §A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEndpoint {
    /// `POST {open_base}/open-apis/authen/v2/oauth/token` (documented, default).
    #[default]
    V2,
    /// `POST {accounts_base}/oauth/v3/token` (the announced successor; same body and answer).
    V3,
}

/// Settings of one Feishu self-built app.
#[derive(Clone)]
pub struct FeishuConfig {
    /// `app_id` (`cli_…`, docs/feishu-api.md §0.6): also the OAuth `client_id`.
    pub app_id: String,
    /// `app_secret` (the OAuth `client_secret`); redacted in `Debug`.
    pub app_secret: SecretString,
    /// The tenants (`tenant_key`s) the app serves: a person of another tenant is refused at
    /// sign-in, like DingTalk's non-members. Never empty.
    pub tenant_keys: Vec<CorpId>,
    /// Base URL of the server APIs (no trailing `/`).
    pub open_base: String,
    /// Base URL of the authorize page and the v3 token endpoint (no trailing `/`).
    pub accounts_base: String,
    /// Which token endpoint to call.
    pub token_endpoint: TokenEndpoint,
    /// The `scope` asked for at authorize time (space-separated; empty: only the basic profile,
    /// docs/feishu-api.md §A.1). Reading `user_id` needs `contact:user.employee_id:readonly`
    /// enabled for the app (§A.5, §C.1).
    pub scope: String,
    /// Timeout of one HTTP call.
    pub timeout: Duration,
    /// Seconds before expiry at which the cached tenant token is replaced.
    pub token_refresh_margin_secs: i64,
    /// The cluster's shared token book (several instances on PostgreSQL), if any.
    pub tokens: Option<Arc<dyn TokenBook>>,
    /// The call governor pacing messages (per app and API, and per recipient): Feishu's own,
    /// not the DingTalk one (its rates are DingTalk's).
    pub governor: Arc<Governor>,
}

impl fmt::Debug for FeishuConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuConfig")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("tenant_keys", &self.tenant_keys)
            .field("open_base", &self.open_base)
            .field("accounts_base", &self.accounts_base)
            .field("token_endpoint", &self.token_endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl FeishuConfig {
    /// Feishu (China) hosts and defaults for `app_id` serving `tenant_keys`.
    pub fn new(app_id: impl Into<String>, app_secret: SecretString, tenant_keys: Vec<CorpId>) -> Self {
        Self {
            app_id: app_id.into(),
            app_secret,
            tenant_keys,
            open_base: DEFAULT_OPEN_BASE.to_owned(),
            accounts_base: DEFAULT_ACCOUNTS_BASE.to_owned(),
            token_endpoint: TokenEndpoint::default(),
            scope: String::new(),
            timeout: DEFAULT_TIMEOUT,
            token_refresh_margin_secs: DEFAULT_TOKEN_REFRESH_MARGIN_SECS,
            tokens: None,
            governor: default_governor(),
        }
    }

    /// Start-up checks. Errors name the field: an empty `app_id` or `tenant_keys`, base URLs
    /// that are not absolute `http(s)` URLs, a zero timeout.
    pub fn validate(&self) -> Result<(), FeishuConfigError> {
        if self.app_id.trim().is_empty() {
            return Err(FeishuConfigError::new("feishu.app_id", "must not be empty"));
        }
        if self.tenant_keys.is_empty() {
            return Err(FeishuConfigError::new("feishu.tenant_keys", "must name at least one tenant_key"));
        }
        for (field, base) in [("feishu.open_base", &self.open_base), ("feishu.accounts_base", &self.accounts_base)] {
            let ok = url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(FeishuConfigError::new(field, "must be an absolute http(s) URL"));
            }
        }
        if self.timeout.is_zero() {
            return Err(FeishuConfigError::new("feishu.timeout_ms", "must be positive"));
        }
        Ok(())
    }
}

/// A configuration mistake, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FeishuConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub message: &'static str,
}

impl FeishuConfigError {
    fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}

/// `base` + `path`, without a doubled `/`.
pub(super) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
