//! Configuration: one typed struct, extracted once by figment and validated
//! at start-up. A bad value stops start-up with a message naming the key.
//!
//! Sources, later ones winning: built-in defaults → `dingbridge.toml` (or
//! `--config FILE`) → `.env` → environment. Environment keys are
//! `DINGBRIDGE_<SECTION>__<KEY>` (e.g. `DINGBRIDGE_DINGTALK__APP_KEY`); the
//! Python seed's names (`DINGDING_DEPLOY_MODE`, `DATABASE_URL`,
//! `SQLITE_DATABASE_URL`, `DINGDING_CLOUD_HOST`) are accepted as aliases.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "dingbridge.toml";

/// Which role this process plays (docs/design.md "modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cloud and local in one process, on SQLite (the seed's `DEV_DEBUG`).
    Dev,
    /// The public relay that talks to DingTalk and holds the secrets.
    Cloud,
    /// Inside the protected network: users, sessions, outbox; calls only the cloud.
    Local,
}

impl Mode {
    /// Parses `dev`/`cloud`/`local` and the seed's `DEV_DEBUG`/`CLOUD`/`LOCAL`, case-insensitively.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "dev" | "dev_debug" => Some(Self::Dev),
            "cloud" => Some(Self::Cloud),
            "local" => Some(Self::Local),
            _ => None,
        }
    }

    /// `dev`, `cloud` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Cloud => "cloud",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Mode::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown mode {raw:?}; expected dev, cloud or local")))
    }
}

/// A secret from configuration: never printed (`Debug` and `Serialize` show
/// `<redacted>`). Accepts numbers too, since environment values that look
/// numeric arrive as numbers (docs/stack-notes.md F8).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// The secret value (only for passing to the code that uses it).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The wrapped `SecretString`.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_string(d).map(|s| Self(SecretString::from(s)))
    }
}

/// Deserializes a string, or a number / boolean as its text.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
        Raw::U(u) => u.to_string(),
        Raw::F(f) => f.to_string(),
        Raw::B(b) => b.to_string(),
    })
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "lenient_string")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `dev`, `cloud` or `local` (`DINGBRIDGE_MODE`, seed alias `DINGDING_DEPLOY_MODE`).
    pub mode: Mode,
    /// Listen address (`DINGBRIDGE_BIND`), e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// This service's public base URL as browsers reach it (`DINGBRIDGE_PUBLIC_URL`), e.g.
    /// `https://sso.example.com`. The DingTalk `redirect_uri` is `<public_url>/auth/dingtalk/callback`.
    /// Empty: `http://<bind>`.
    pub public_url: String,
    /// Storage.
    pub database: DatabaseConfig,
    /// The DingTalk internal app (cloud and dev modes).
    pub dingtalk: DingTalkSection,
    /// A third-party suite app (cloud and dev modes); optional, alone or with an internal app.
    pub suite: SuiteSection,
    /// A Feishu / Lark self-built app (cloud and dev modes); optional, beside DingTalk.
    #[serde(default)]
    pub feishu: FeishuSection,
    /// Service API access.
    pub api: ApiSection,
    /// Browser sessions.
    pub session: SessionSection,
    /// Local mode: how to reach the cloud relay (outbound).
    pub cloud: CloudSection,
    /// Local and dev modes: limits on starting sign-ins.
    pub login: LoginSection,
    /// Cloud mode: the relay clients (local deployments) it serves.
    pub relay: RelaySection,
    /// Local and dev modes: the message outbox dispatcher.
    pub outbox: OutboxSection,
    /// Local and dev modes: following the cloud's contact-event feed.
    pub feed: FeedSection,
    /// Cloud and dev modes: DingTalk event callbacks (`POST /dingtalk/events`); optional.
    pub events: EventsSection,
    /// Cloud and dev modes: the call governor pacing every DingTalk call (docs/dingtalk-api.md §G.1).
    #[serde(default)]
    pub governor: GovernorSection,
    /// Cloud and dev modes: the monthly quota accounting of metered DingTalk calls
    /// (docs/dingtalk-api.md §G.3).
    #[serde(default)]
    pub quota: QuotaSection,
    /// Cloud mode: background delivery tracking (metered calls; docs/dingtalk-api.md §G.3).
    #[serde(default)]
    pub delivery: DeliverySection,
    /// Local and dev modes: the OpenID Provider (docs/oidc.md); on when a client is registered.
    pub oidc: crate::oidc::OidcSection,
    /// Local and dev modes: `GET /auth/verify` for reverse proxies.
    pub forward_auth: crate::oidc::ForwardAuthSection,
    /// Seed aliases, resolved by [`Config::load`]; not meant to be set directly.
    #[serde(default, skip_serializing)]
    pub seed: SeedAliases,
    // Operations (README "Operating dingbridge").
    /// Logging: `[log] format = "text" | "json"`.
    #[serde(default)]
    pub log: crate::telemetry::LogSection,
    /// Where `GET /metrics` is served (default: nowhere).
    #[serde(default)]
    pub metrics: crate::telemetry::MetricsSection,
}

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Database URL (`DINGBRIDGE_DATABASE__URL`). Dev and cloud: SQLite, `sqlite://data/dingbridge.db`
    /// (seed alias `SQLITE_DATABASE_URL`); local: PostgreSQL (seed alias `DATABASE_URL`).
    /// Empty: the mode's default.
    pub url: String,
    /// Pool size (1–64).
    pub max_connections: u32,
}

/// `[dingtalk]`: an internal enterprise app (docs/dingtalk-api.md §0.4: Client ID = AppKey).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkSection {
    /// Base URL of the OAuth pages (default `https://login.dingtalk.com`).
    pub login_base: String,
    /// Base URL of the v1.0 API (default `https://api.dingtalk.com`).
    pub api_base: String,
    /// Base URL of the legacy API (default `https://oapi.dingtalk.com`).
    pub oapi_base: String,
    /// AppKey / Client ID.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub app_key: Option<String>,
    /// AppSecret / Client Secret.
    pub app_secret: Option<Secret>,
    /// AgentId (work notifications are sent as this app).
    pub agent_id: Option<i64>,
    /// The org's corpId.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub corp_id: Option<String>,
    /// OAuth scope: `openid` (default) or `openid corpid`.
    pub scope: String,
    /// Timeout of every DingTalk call, in seconds (1–120).
    pub timeout_secs: u64,
}

/// `[suite]`: a third-party (ISV) suite app (docs/dingtalk-api.md §0.4: Client ID = SuiteKey). Its corps and
/// agent ids come from the authorization events pushed to `/dingtalk/events`, its corp tokens
/// from the pushed `suite_ticket` (docs/dingtalk-api.md §B.4, §B.5), so `[events]` must be configured with it.
/// Hosts and timeout are `[dingtalk]`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSection {
    /// SuiteKey (seed alias `DINGDING_SUIT_KEY`, taken when `suite_secret` is set).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub suite_key: Option<String>,
    /// SuiteSecret (seed alias `DINGDING_SUITE_SECRET`).
    pub suite_secret: Option<Secret>,
    /// Corp-token endpoint: `v1` (`POST /v1.0/oauth2/corpAccessToken`, default) or `legacy`
    /// (`service/get_corp_token` with the HMAC-SHA256 signature), docs/dingtalk-api.md §B.4.
    pub corp_token_api: String,
    /// Corps a relay client (and dev mode's built-in client) may act for when it lists none:
    /// authorized corp ids, e.g. `["ding123…"]`.
    pub corp_ids: Vec<String>,
}

impl SuiteSection {
    /// Whether a suite is configured (`suite_key` or `suite_secret` set).
    pub fn is_configured(&self) -> bool {
        self.suite_key.is_some() || self.suite_secret.is_some()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.is_configured() {
            return out;
        }
        if self.suite_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            out.push(("suite.suite_key", "is required when [suite] is configured (or DINGDING_SUIT_KEY)".into()));
        }
        if self.suite_secret.as_ref().is_none_or(|s| s.expose().trim().is_empty()) {
            out.push((
                "suite.suite_secret",
                "is required when [suite] is configured (or DINGDING_SUITE_SECRET)".into(),
            ));
        }
        if !matches!(self.corp_token_api.as_str(), "v1" | "legacy") {
            out.push(("suite.corp_token_api", format!("{:?} must be \"v1\" or \"legacy\"", self.corp_token_api)));
        }
        for corp in &self.corp_ids {
            if let Err(e) = domain::CorpId::parse(corp) {
                out.push(("suite.corp_ids", e.message));
            }
        }
        out
    }
}

/// `[feishu]` (cloud and dev modes): a Feishu / Lark self-built app (企业自建应用,
/// docs/feishu-api.md §B.1) people may sign in with beside DingTalk (`/auth/feishu/login`).
/// Its `redirect_uri` is `<public_url>/auth/feishu/callback`. In local mode only `tenant_keys`
/// is taken: the Feishu tenants among those local sends to, so their messages are checked by
/// Feishu's rules before they are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeishuSection {
    /// App ID (`cli_…`). Unset: no Feishu.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub app_id: Option<String>,
    /// App Secret.
    pub app_secret: Option<Secret>,
    /// The tenants (`tenant_key`s) served: people of other tenants are refused at sign-in. On
    /// local: the Feishu tenants it sends to (also served as [`Config::local_corps`]).
    pub tenant_keys: Vec<String>,
    /// `feishu` (default: `open.feishu.cn`, `accounts.feishu.cn`) or `lark` (the international
    /// `larksuite.com` hosts), docs/feishu-api.md §0.1.
    pub region: String,
    /// Base URL of the server APIs; empty: the region's.
    pub open_base: String,
    /// Base URL of the authorize page; empty: the region's.
    pub accounts_base: String,
    /// Token endpoint: `v2` (default, `/open-apis/authen/v2/oauth/token`) or `v3`
    /// (`accounts…/oauth/v3/token`), docs/feishu-api.md §A.3.
    pub token_endpoint: String,
    /// OAuth `scope` asked at authorize time (space-separated; default
    /// `contact:user.employee_id:readonly`, which reveals the person's `user_id`).
    pub scope: String,
    /// Timeout of every Feishu call, in seconds (1–120).
    pub timeout_secs: u64,
    /// The event subscription's Verification Token (事件与回调 → 加密策略, docs/feishu-api.md §E.1);
    /// set: `POST /feishu/events` accepts pushes. Unset: that route answers 404.
    pub verification_token: Option<Secret>,
    /// The event subscription's Encrypt Key (§E.4); set: pushes must be encrypted and signed.
    pub encrypt_key: Option<Secret>,
}

impl Default for FeishuSection {
    fn default() -> Self {
        Self {
            app_id: None,
            app_secret: None,
            tenant_keys: Vec::new(),
            region: "feishu".into(),
            open_base: String::new(),
            accounts_base: String::new(),
            token_endpoint: "v2".into(),
            scope: "contact:user.employee_id:readonly".into(),
            timeout_secs: 10,
            verification_token: None,
            encrypt_key: None,
        }
    }
}

impl Config {
    /// The providers the sign-in page offers: `login.providers`, else DingTalk plus — in dev
    /// mode with `[feishu]` configured — Feishu.
    pub fn login_providers(&self) -> Vec<String> {
        if !self.login.providers.is_empty() {
            return self.login.providers.clone();
        }
        let mut providers = vec!["dingtalk".to_owned()];
        if self.mode == Mode::Dev && self.feishu.is_configured() {
            providers.push("feishu".to_owned());
        }
        providers
    }
}

impl FeishuSection {
    /// Whether a Feishu app is configured (`app_id` set).
    pub fn is_configured(&self) -> bool {
        self.app_id.as_deref().is_some_and(|id| !id.trim().is_empty())
    }

    /// The server-API base URL: `open_base`, else the region's.
    pub fn open_base(&self) -> String {
        match (self.open_base.trim(), self.region.as_str()) {
            ("", "lark") => adapters::outbound::feishu::LARK_OPEN_BASE.to_owned(),
            ("", _) => adapters::outbound::feishu::DEFAULT_OPEN_BASE.to_owned(),
            (base, _) => base.trim_end_matches('/').to_owned(),
        }
    }

    /// The authorize-page base URL: `accounts_base`, else the region's.
    pub fn accounts_base(&self) -> String {
        match (self.accounts_base.trim(), self.region.as_str()) {
            ("", "lark") => adapters::outbound::feishu::LARK_ACCOUNTS_BASE.to_owned(),
            ("", _) => adapters::outbound::feishu::DEFAULT_ACCOUNTS_BASE.to_owned(),
            (base, _) => base.trim_end_matches('/').to_owned(),
        }
    }

    fn problems(&self, mode: Mode) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if mode == Mode::Local {
            // Local only learns which tenants are Feishu's (to check their messages by Feishu's
            // rules); the app and its secrets are the cloud's.
            if self.is_configured() || self.app_secret.is_some() {
                out.push((
                    "feishu.app_id",
                    "belongs in the cloud's configuration; local takes only feishu.tenant_keys".into(),
                ));
            }
            for tenant in &self.tenant_keys {
                if let Err(e) = domain::CorpId::parse(tenant) {
                    out.push(("feishu.tenant_keys", e.message));
                }
            }
            return out;
        }
        if !self.is_configured() {
            if self.app_secret.is_some() || !self.tenant_keys.is_empty() {
                out.push(("feishu.app_id", "is required when [feishu] is configured".into()));
            }
            return out;
        }
        if self.app_secret.as_ref().is_none_or(|s| s.expose().trim().is_empty()) {
            out.push(("feishu.app_secret", "is required when feishu.app_id is set".into()));
        }
        if self.tenant_keys.is_empty() {
            out.push(("feishu.tenant_keys", "must name at least one tenant_key the app serves".into()));
        }
        for tenant in &self.tenant_keys {
            if let Err(e) = domain::CorpId::parse(tenant) {
                out.push(("feishu.tenant_keys", e.message));
            }
        }
        if !matches!(self.region.as_str(), "feishu" | "lark") {
            out.push(("feishu.region", format!("{:?} must be \"feishu\" or \"lark\"", self.region)));
        }
        if !matches!(self.token_endpoint.as_str(), "v2" | "v3") {
            out.push(("feishu.token_endpoint", format!("{:?} must be \"v2\" or \"v3\"", self.token_endpoint)));
        }
        for (key, base) in [("feishu.open_base", &self.open_base), ("feishu.accounts_base", &self.accounts_base)] {
            let base = base.trim();
            if !(base.is_empty() || base.starts_with("http://") || base.starts_with("https://")) {
                out.push((key, format!("{base:?} must start with http:// or https://")));
            }
        }
        if !(1..=120).contains(&self.timeout_secs) {
            out.push(("feishu.timeout_secs", "must be between 1 and 120".into()));
        }
        if self.encrypt_key.is_some() && self.verification_token.is_none() {
            out.push((
                "feishu.verification_token",
                "is required with feishu.encrypt_key (docs/feishu-api.md §E.1)".into(),
            ));
        }
        out
    }
}

/// `[api]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Bearer tokens accepted on `/api/*` (each at least 16 characters). Empty: the service API
    /// refuses every call (`/api/me` still works with a session).
    /// Env: `DINGBRIDGE_API__SERVICE_TOKENS='["token-one-……"]'`.
    pub service_tokens: Vec<Secret>,
}

/// `[session]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// Session lifetime in seconds (60 s – 90 days; default 7 days).
    pub ttl_secs: i64,
    /// The session cookie's `Domain`, e.g. `example.com` so that forward-auth sees it on
    /// `app.example.com`; must be `public_url`'s host or a parent of it. Default: host-only.
    #[serde(default)]
    pub cookie_domain: Option<String>,
}

/// `[outbox]` (local and dev modes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// Concurrent dispatch loops in this process (1–32).
    pub workers: usize,
    /// Seconds a claimed message is reserved for one dispatcher (5–3600); after a crash, messages
    /// it had claimed are retried once this lease runs out.
    pub lease_secs: i64,
}

/// `[feed]` (local and dev modes): follow the cloud's contact-event feed (`GET /relay/v1/events`)
/// and apply it to the user directory (members who leave lose their sessions).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSection {
    /// Poll the feed (default `true`; `DINGBRIDGE_FEED__ENABLED`).
    pub enabled: bool,
    /// How long one long-poll waits on the cloud for a new event, in seconds (1–30, default 25;
    /// `DINGBRIDGE_FEED__WAIT_SECS`). Events arrive as soon as the cloud has them either way.
    pub wait_secs: u32,
}

/// `[login]` (local and dev modes): how many sign-ins may start. Each start stores a login
/// attempt (kept 10 minutes, purged every minute), so these bound what anonymous callers can write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    /// The identity providers people may sign in with, in the order the sign-in page shows them
    /// (`dingtalk`, `feishu`). Empty (default): DingTalk, plus Feishu in dev mode when `[feishu]`
    /// is configured. A local service offers Feishu only when listed here (its cloud must serve it).
    #[serde(default)]
    pub providers: Vec<String>,
    /// Sign-ins one client address may start per minute (1–10,000, default 30).
    pub per_address_per_minute: u32,
    /// Sign-ins all addresses together may start per second (1–10,000, default 50: at most
    /// 30,000 pending attempts).
    pub total_per_second: u32,
}

/// `[governor]` (cloud and dev modes): the call governor every DingTalk call passes — one lane
/// per (app, API), paced to a rate, bursts queued (README "DingTalk's limits").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernorSection {
    /// Calls per second per app and API (default 18; DingTalk allows 20, docs/dingtalk-api.md
    /// §G.1). More than 0, at most 10,000.
    pub rate_per_second: f64,
    /// Per-API rates in calls per second, keyed by the API path, e.g.
    /// `"/topapi/message/corpconversation/asyncsend_v2" = 10`.
    pub overrides: std::collections::BTreeMap<String, f64>,
    /// The longest a call waits for its slot, in milliseconds (0–60,000, default 5,000); a call
    /// that would wait longer fails as throttled at once and is retried later by its caller
    /// (the outbox, the browser).
    pub max_wait_ms: u64,
    /// How often a call DingTalk throttled (90018, 90002) is made again after the pause (0–10,
    /// default 3).
    pub max_retries: u32,
}

impl Default for GovernorSection {
    fn default() -> Self {
        let defaults = adapters::outbound::governor::GovernorConfig::default();
        Self {
            rate_per_second: defaults.rate_per_second,
            overrides: std::collections::BTreeMap::new(),
            max_wait_ms: u64::try_from(defaults.max_wait.as_millis()).unwrap_or(5_000),
            max_retries: defaults.max_retries,
        }
    }
}

impl GovernorSection {
    /// The governor's settings.
    pub fn to_config(&self) -> adapters::outbound::governor::GovernorConfig {
        adapters::outbound::governor::GovernorConfig {
            rate_per_second: self.rate_per_second,
            overrides: self.overrides.iter().map(|(api, rate)| (api.clone(), *rate)).collect(),
            max_wait: Duration::from_millis(self.max_wait_ms),
            max_retries: self.max_retries,
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(message) = self.to_config().validate() {
            let (key, _) = message.split_once(' ').unwrap_or(("rate_per_second", ""));
            out.push((format!("governor.{key}"), message));
        }
        for api in self.overrides.keys() {
            if !api.starts_with('/') {
                out.push((format!("governor.overrides.{api:?}"), "must be an API path starting with /".into()));
            }
        }
        if self.max_wait_ms > 60_000 {
            out.push(("governor.max_wait_ms".into(), "must be between 0 and 60000 milliseconds".into()));
        }
        if self.max_retries > 10 {
            out.push(("governor.max_retries".into(), "must be between 0 and 10".into()));
        }
        out
    }
}

/// `[quota]` (cloud and dev modes): the monthly quota accounting of metered DingTalk calls
/// (docs/dingtalk-api.md §G.3; README "DingTalk's limits").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    /// Metered calls each corp may make a month (default 5,000, a standard-edition org; 1 to
    /// 1,000,000,000): warnings at 80 % and 95 %, the figures in `dingbridge quota` and the gauges.
    pub monthly_limit: u64,
    /// Per-corp limits (`corp_id` → calls a month), e.g. for a professional edition (200,000).
    pub corp_limits: std::collections::BTreeMap<String, u64>,
}

impl Default for QuotaSection {
    fn default() -> Self {
        Self {
            monthly_limit: adapters::outbound::dingtalk::quota::DEFAULT_MONTHLY_LIMIT,
            corp_limits: std::collections::BTreeMap::new(),
        }
    }
}

impl QuotaSection {
    /// The accountant's settings.
    pub fn to_config(&self) -> adapters::outbound::dingtalk::quota::QuotaConfig {
        adapters::outbound::dingtalk::quota::QuotaConfig {
            monthly_limit: self.monthly_limit,
            corp_limits: self.corp_limits.iter().map(|(corp, limit)| (corp.clone(), *limit)).collect(),
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        const RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000_000;
        let mut out = Vec::new();
        if !RANGE.contains(&self.monthly_limit) {
            out.push(("quota.monthly_limit".into(), "must be between 1 and 1000000000 calls a month".into()));
        }
        for (corp, limit) in &self.corp_limits {
            if !RANGE.contains(limit) {
                out.push((
                    format!("quota.corp_limits.{corp}"),
                    "must be between 1 and 1000000000 calls a month".into(),
                ));
            }
        }
        out
    }
}

/// `[delivery]` (cloud mode): whether a background job asks DingTalk how sent messages are
/// doing. Every `getsendprogress` call is metered (docs/dingtalk-api.md §G.3), so by default it
/// does not: a message's delivery is read when someone asks (`GET /api/messages/{id}`: one
/// `getsendprogress` and one `getsendresult` per task).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySection {
    /// `"off"` (default: no background calls) or `"budget"` (at most `rounds_per_message` rounds
    /// per message, one metered `getsendprogress` call per task each, every 30 s until done).
    pub reconcile: String,
    /// Rounds per message with `reconcile = "budget"` (1–20, default 1).
    pub rounds_per_message: u32,
    /// How long, in seconds from a message's acceptance, a batch DingTalk answers with an
    /// errcode dingbridge does not know is retried before it fails with that code (0–604,800,
    /// default 3,600; docs/dingtalk-api.md §G.2).
    pub unrecognized_retry_secs: u32,
    /// How many attempts (counting the first) a message gets while DingTalk answers one of its
    /// batches with an errcode dingbridge does not know, before it fails with that code,
    /// whichever of this and `unrecognized_retry_secs` is spent first (1–1,000, default 20:
    /// about eight minutes of retries 0.5 s apart, doubling to 30 s).
    pub unrecognized_retry_attempts: u32,
    /// Skip and report recipients DingTalk would silently drop (default true): the same content to
    /// a person twice a day, or past 500 messages a day per person (100 for a suite app)
    /// (docs/dingtalk-api.md §D.6). They show as `skipped` with `daily_limit` or
    /// `duplicate_content` in the message's per-recipient status.
    pub screen_recipients: bool,
    /// What the background sender does with an *uncertain* batch, one whose DingTalk call a cloud
    /// instance started and never recorded the answer of because it died mid-call (docs/design.md
    /// "Several instances"): `"resend"` (default: sent again; DingTalk delivers the same content
    /// to a person once a day, so the person sees it once) or `"hold"` (the message waits with
    /// reason `uncertain` until `dingbridge relay resend` or `relay abandon`).
    pub uncertain_batches: String,
}

impl Default for DeliverySection {
    fn default() -> Self {
        Self {
            reconcile: "off".into(),
            rounds_per_message: 1,
            unrecognized_retry_secs: application::usecases::cloud::DEFAULT_UNRECOGNIZED_BUDGET_SECS,
            unrecognized_retry_attempts: application::usecases::cloud::DEFAULT_UNRECOGNIZED_MAX_ATTEMPTS,
            screen_recipients: true,
            uncertain_batches: "resend".into(),
        }
    }
}

impl DeliverySection {
    /// The rounds per message when background reconciliation runs, `None` when it is off.
    pub fn budget(&self) -> Option<u32> {
        (self.reconcile == "budget").then_some(self.rounds_per_message)
    }

    /// The policy for uncertain batches (`uncertain_batches`; validated at start-up).
    pub fn uncertain_policy(&self) -> application::usecases::cloud::UncertainPolicy {
        use application::usecases::cloud::UncertainPolicy;
        if self.uncertain_batches == "hold" { UncertainPolicy::Hold } else { UncertainPolicy::Resend }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !matches!(self.reconcile.as_str(), "off" | "budget") {
            out.push(("delivery.reconcile".into(), format!("must be \"off\" or \"budget\", not {:?}", self.reconcile)));
        }
        if !(1..=20).contains(&self.rounds_per_message) {
            out.push(("delivery.rounds_per_message".into(), "must be between 1 and 20".into()));
        }
        if self.unrecognized_retry_secs > 7 * 24 * 3600 {
            out.push((
                "delivery.unrecognized_retry_secs".into(),
                "must be between 0 and 604800 seconds (7 days)".into(),
            ));
        }
        if !(1..=1000).contains(&self.unrecognized_retry_attempts) {
            out.push(("delivery.unrecognized_retry_attempts".into(), "must be between 1 and 1000".into()));
        }
        if !matches!(self.uncertain_batches.as_str(), "resend" | "hold") {
            out.push((
                "delivery.uncertain_batches".into(),
                format!("must be \"resend\" or \"hold\", not {:?}", self.uncertain_batches),
            ));
        }
        out
    }
}

/// `[cloud]` (local mode): the relay local calls, outbound.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    /// The cloud's base URL, e.g. `https://relay.example.com` (seed alias `DINGDING_CLOUD_HOST`).
    pub base_url: String,
    /// This deployment's relay client id (seed alias `DINGDING_SECRET_USER`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub client_id: Option<String>,
    /// Its secret (seed alias `DINGDING_SECRET_PASSWORD`).
    pub client_secret: Option<Secret>,
    /// Timeout of one relay call attempt, in seconds (1–120).
    pub timeout_secs: u64,
    /// The corps this deployment's relay client serves (the cloud's `relay.clients[].corp_ids`;
    /// `DINGBRIDGE_CLOUD__CORP_IDS='["ding…"]'`). Default: `dingtalk.corp_id`. A message for any
    /// other corp is refused when it is submitted (422 naming `corp_id`), not later in the outbox.
    #[serde(default)]
    pub corp_ids: Vec<String>,
}

/// One relay client (cloud mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayClientConfig {
    /// Client id (the HTTP Basic user name).
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    /// Secret (the HTTP Basic password), at least 16 characters.
    pub secret: Secret,
    /// Corps it may act for; empty: `[dingtalk.corp_id]`.
    #[serde(default)]
    pub corp_ids: Vec<String>,
    /// Origins its `complete_url`s may use, e.g. `["https://sso.internal.example.com"]`.
    pub complete_url_origins: Vec<String>,
}

/// `[relay]` (cloud mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// The relay clients (`[[relay.clients]]`).
    pub clients: Vec<RelayClientConfig>,
    /// Origins for the client the seed's `DINGDING_SECRET_USER`/`DINGDING_SECRET_PASSWORD` define.
    pub seed_client_origins: Vec<String>,
    /// Failed authentications allowed per address per window before 429.
    pub max_auth_failures: u32,
    /// The window, in seconds.
    pub auth_window_secs: u64,
}

/// `[events]` (cloud and dev modes): the DingTalk event subscription (docs/dingtalk-api.md §E.1). All of
/// `token`, `aes_key` and `owner_key` or none; without them `POST /dingtalk/events` answers 404
/// `events_not_configured`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// The console's signature token: 3–64 characters `[A-Za-z0-9]` (seed alias `DINGDING_TOKEN`).
    pub token: Option<Secret>,
    /// The console's EncodingAESKey: exactly 43 characters `[A-Za-z0-9]` (seed alias
    /// `DINGDING_AES_KEY`).
    pub aes_key: Option<Secret>,
    /// The owner key pushes are encrypted for: the AppKey (app-level subscription of an internal
    /// app), the corp id (org-level registration) or the SuiteKey (third-party suite; seed alias
    /// `DINGDING_SUIT_KEY`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub owner_key: Option<String>,
    /// Accepted clock skew of a push's timestamp, in seconds (10–3600, default 600); nonces are
    /// remembered for twice as long.
    pub window_secs: i64,
    /// Largest push body `POST /dingtalk/events` reads, in bytes (64 KiB–64 MiB, default 1 MiB);
    /// a larger one is answered 413 `payload_too_large` and nothing is stored. A SyncHTTP batch
    /// (docs/dingtalk-api.md §E.6) can exceed 100 KB, and the base64 of §E.4 adds a third.
    pub max_body_bytes: u64,
}

/// Default of [`EventsSection::max_body_bytes`]: 1 MiB.
pub const DEFAULT_EVENTS_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Accepted range of [`EventsSection::max_body_bytes`]: 64 KiB to 64 MiB.
const EVENTS_MAX_BODY_RANGE: std::ops::RangeInclusive<u64> = 64 * 1024..=64 * 1024 * 1024;

impl EventsSection {
    /// Whether any of `token`, `aes_key`, `owner_key` is set.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.aes_key.is_some() || self.owner_key.is_some()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !EVENTS_MAX_BODY_RANGE.contains(&self.max_body_bytes) {
            out.push((
                "events.max_body_bytes",
                format!(
                    "must be between {} and {} bytes (64 KiB to 64 MiB)",
                    EVENTS_MAX_BODY_RANGE.start(),
                    EVENTS_MAX_BODY_RANGE.end()
                ),
            ));
        }
        if !self.is_configured() {
            return out;
        }
        match &self.token {
            None => out.push(("events.token", "is required when [events] is configured (or DINGDING_TOKEN)".into())),
            Some(t)
                if !(3..=64).contains(&t.expose().len()) || !t.expose().bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                out.push(("events.token", "must be 3-64 characters [A-Za-z0-9]".into()));
            }
            Some(_) => {}
        }
        match &self.aes_key {
            None => {
                out.push(("events.aes_key", "is required when [events] is configured (or DINGDING_AES_KEY)".into()));
            }
            Some(k) if k.expose().len() != 43 || !k.expose().bytes().all(|b| b.is_ascii_alphanumeric()) => {
                out.push(("events.aes_key", "must be exactly 43 characters [A-Za-z0-9] (the EncodingAESKey)".into()));
            }
            Some(_) => {}
        }
        if self.owner_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            out.push((
                "events.owner_key",
                "is required when [events] is configured: the AppKey, corp id or SuiteKey (or DINGDING_SUIT_KEY)"
                    .into(),
            ));
        }
        if !(10..=3600).contains(&self.window_secs) {
            out.push(("events.window_secs", "must be between 10 and 3600 seconds".into()));
        }
        out
    }
}

/// Environment names the Python seed used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeedAliases {
    /// `DATABASE_URL`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// `SQLITE_DATABASE_URL`.
    #[serde(default)]
    pub sqlite_database_url: Option<String>,
    /// `DINGDING_CLOUD_HOST`.
    #[serde(default)]
    pub cloud_host: Option<String>,
    /// `DINGDING_SECRET_USER`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub secret_user: Option<String>,
    /// `DINGDING_SECRET_PASSWORD`.
    #[serde(default)]
    pub secret_password: Option<Secret>,
    /// `DINGDING_SUIT_KEY` (sic): the suite key, also the events owner key.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub suit_key: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            database: DatabaseConfig { url: String::new(), max_connections: 16 },
            dingtalk: DingTalkSection {
                login_base: "https://login.dingtalk.com".into(),
                api_base: "https://api.dingtalk.com".into(),
                oapi_base: "https://oapi.dingtalk.com".into(),
                app_key: None,
                app_secret: None,
                agent_id: None,
                corp_id: None,
                scope: "openid".into(),
                timeout_secs: 10,
            },
            suite: SuiteSection {
                suite_key: None,
                suite_secret: None,
                corp_token_api: "v1".into(),
                corp_ids: Vec::new(),
            },
            feishu: FeishuSection::default(),
            api: ApiSection { service_tokens: Vec::new() },
            session: SessionSection { ttl_secs: 7 * 24 * 3600, cookie_domain: None },
            cloud: CloudSection {
                base_url: String::new(),
                client_id: None,
                client_secret: None,
                timeout_secs: 10,
                corp_ids: Vec::new(),
            },
            login: LoginSection { providers: Vec::new(), per_address_per_minute: 30, total_per_second: 50 },
            outbox: OutboxSection { workers: 4, lease_secs: 60 },
            feed: FeedSection { enabled: true, wait_secs: 25 },
            relay: RelaySection {
                clients: Vec::new(),
                seed_client_origins: Vec::new(),
                max_auth_failures: 10,
                auth_window_secs: 60,
            },
            events: EventsSection {
                token: None,
                aes_key: None,
                owner_key: None,
                window_secs: 600,
                max_body_bytes: DEFAULT_EVENTS_MAX_BODY_BYTES,
            },
            governor: GovernorSection::default(),
            quota: QuotaSection::default(),
            delivery: DeliverySection::default(),
            oidc: crate::oidc::OidcSection::default(),
            forward_auth: crate::oidc::ForwardAuthSection::default(),
            seed: SeedAliases::default(),
            log: crate::telemetry::LogSection::default(),
            metrics: crate::telemetry::MetricsSection::default(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `dingtalk.app_secret`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type (figment names the key).
    #[error("configuration error: {0}")]
    Load(String),
    /// Values are present but invalid.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {}: {}", p.key, p.message)).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

fn seed_aliases() -> Env {
    Env::raw()
        .only(&[
            "DINGDING_DEPLOY_MODE",
            "DATABASE_URL",
            "SQLITE_DATABASE_URL",
            "DINGDING_CLOUD_HOST",
            "DINGDING_SECRET_USER",
            "DINGDING_SECRET_PASSWORD",
            "DINGDING_TOKEN",
            "DINGDING_AES_KEY",
            "DINGDING_SUIT_KEY",
            "DINGDING_SUITE_SECRET",
        ])
        .map(|key| match key.as_str().to_ascii_uppercase().as_str() {
            "DINGDING_DEPLOY_MODE" => "mode".into(),
            "DATABASE_URL" => "seed.database_url".into(),
            "DINGDING_CLOUD_HOST" => "seed.cloud_host".into(),
            "DINGDING_SECRET_USER" => "seed.secret_user".into(),
            "DINGDING_SECRET_PASSWORD" => "seed.secret_password".into(),
            "DINGDING_TOKEN" => "events.token".into(),
            "DINGDING_AES_KEY" => "events.aes_key".into(),
            "DINGDING_SUIT_KEY" => "seed.suit_key".into(),
            "DINGDING_SUITE_SECRET" => "suite.suite_secret".into(),
            _ => "seed.sqlite_database_url".into(),
        })
}

/// Whether `origin` is a bare origin: `http(s)://host[:port]`, no path, query or fragment.
fn is_origin(origin: &str) -> bool {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']))
}

impl Config {
    /// Local mode: the corps its relay client serves — `cloud.corp_ids`, or else
    /// `[dingtalk.corp_id]`, then `feishu.tenant_keys` not listed already — the first being the
    /// default corp of a message. Unparseable ids are
    /// skipped (validation has refused them already).
    pub fn local_corps(&self) -> Vec<domain::CorpId> {
        let configured = if self.cloud.corp_ids.is_empty() {
            self.dingtalk.corp_id.iter().cloned().collect::<Vec<_>>()
        } else {
            let mut ids = self.cloud.corp_ids.clone();
            // The default corp goes first when it is one of the listed corps.
            if let Some(default) = &self.dingtalk.corp_id
                && let Some(at) = ids.iter().position(|c| c == default)
            {
                ids.swap(0, at);
            }
            ids
        };
        let mut corps: Vec<domain::CorpId> = configured.iter().filter_map(|c| domain::CorpId::parse(c).ok()).collect();
        for tenant in self.feishu.tenant_keys.iter().filter_map(|t| domain::CorpId::parse(t).ok()) {
            if !corps.contains(&tenant) {
                corps.push(tenant);
            }
        }
        corps
    }

    /// Loads and validates the configuration. `file` is `--config FILE` (must exist); without it
    /// `dingbridge.toml` is read if present. `.env` in the working directory is read if present
    /// (it never overrides real environment variables).
    /// `overrides` (`(key, value)`, e.g. `("mode", "cloud")` from `--mode`) win over every source.
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Load(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file(PathBuf::from(DEFAULT_CONFIG_FILE))),
        }
        let mut figment = figment.merge(seed_aliases()).merge(Env::prefixed("DINGBRIDGE_").split("__"));
        for (key, value) in overrides {
            figment = figment.merge((*key, value.as_str()));
        }
        Self::from_figment(&figment)
    }

    /// Extracts and validates from a prepared figment (tests use this with `figment::Jail`).
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Load(e.to_string()))?;
        config.resolve();
        let problems = config.problems();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
    }

    /// Fills derived values: the database URL from the seed aliases or the mode's default, and the public URL.
    fn resolve(&mut self) {
        if self.database.url.trim().is_empty() {
            let alias = match self.mode {
                Mode::Local => self.seed.database_url.clone(),
                Mode::Dev | Mode::Cloud => self.seed.sqlite_database_url.clone(),
            };
            self.database.url = alias.unwrap_or_else(|| match self.mode {
                Mode::Dev => "sqlite://data/dingbridge.db".into(),
                Mode::Cloud => "sqlite://data/cloud.db".into(),
                Mode::Local => String::new(),
            });
        }
        // The seed wrote `sqlite:////abs/path.db?uri=true`.
        if let Some(stripped) = self.database.url.strip_suffix("?uri=true") {
            self.database.url = stripped.to_owned();
        }
        if self.public_url.trim().is_empty() {
            self.public_url = format!("http://{}", self.bind);
        }
        if self.suite.suite_key.is_none() && self.suite.suite_secret.is_some() {
            self.suite.suite_key.clone_from(&self.seed.suit_key);
        }
        // Pushes are encrypted for the suite key, else the app key (docs/dingtalk-api.md §E.1); a corp id
        // (org-level registration) must be set explicitly.
        if self.events.owner_key.is_none() && (self.events.token.is_some() || self.events.aes_key.is_some()) {
            self.events.owner_key = [&self.seed.suit_key, &self.suite.suite_key, &self.dingtalk.app_key]
                .into_iter()
                .find_map(|k| k.clone().filter(|k| !k.trim().is_empty()));
        }
        if self.cloud.base_url.trim().is_empty()
            && let Some(host) = &self.seed.cloud_host
        {
            self.cloud.base_url.clone_from(host);
        }
        match self.mode {
            Mode::Local => {
                if self.cloud.client_id.is_none() {
                    self.cloud.client_id.clone_from(&self.seed.secret_user);
                }
                if self.cloud.client_secret.is_none() {
                    self.cloud.client_secret.clone_from(&self.seed.secret_password);
                }
            }
            Mode::Cloud => {
                if let (Some(id), Some(secret)) = (&self.seed.secret_user, &self.seed.secret_password)
                    && !self.relay.clients.iter().any(|c| &c.id == id)
                {
                    self.relay.clients.push(RelayClientConfig {
                        id: id.clone(),
                        secret: secret.clone(),
                        corp_ids: Vec::new(),
                        complete_url_origins: self.relay.seed_client_origins.clone(),
                    });
                }
                let default_corp: Vec<String> = self
                    .dingtalk
                    .corp_id
                    .iter()
                    .chain(&self.suite.corp_ids)
                    .chain(&self.feishu.tenant_keys)
                    .cloned()
                    .collect();
                for client in &mut self.relay.clients {
                    if client.corp_ids.is_empty() {
                        client.corp_ids.clone_from(&default_corp);
                    }
                }
            }
            Mode::Dev => {}
        }
        self.public_url = self.public_url.trim().trim_end_matches('/').to_owned();
    }

    /// Every problem, each naming its key.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(ConfigProblem { key: key.into(), message });
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            problem("bind", format!("{:?} is not an address like 127.0.0.1:8080", self.bind));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problem("public_url", format!("{:?} must start with http:// or https://", self.public_url));
        }
        if !(1..=64).contains(&self.database.max_connections) {
            problem("database.max_connections", "must be between 1 and 64".into());
        }
        for (key, message) in self.feishu.problems(self.mode) {
            problem(key, message);
        }
        for provider in &self.login.providers {
            if !matches!(provider.as_str(), "dingtalk" | "feishu") {
                problem("login.providers", format!("{provider:?} is not a provider: use \"dingtalk\" or \"feishu\""));
            } else if provider == "feishu" && self.mode == Mode::Dev && !self.feishu.is_configured() {
                problem("login.providers", "\"feishu\" needs [feishu] (app_id, app_secret, tenant_keys)".into());
            }
        }
        if let Some(shared) = self
            .feishu
            .tenant_keys
            .iter()
            .find(|t| self.dingtalk.corp_id.as_ref() == Some(t) || self.suite.corp_ids.contains(t))
        {
            problem(
                "feishu.tenant_keys",
                format!("{shared:?} is also a DingTalk corp; a tenant belongs to one provider"),
            );
        }
        match self.mode {
            Mode::Dev | Mode::Cloud => {
                let sqlite = self.database.url.starts_with("sqlite:") || !self.database.url.contains("://");
                let postgres =
                    self.database.url.starts_with("postgres://") || self.database.url.starts_with("postgresql://");
                if self.mode == Mode::Dev && !sqlite {
                    problem("database.url", "mode dev stores data in SQLite: use sqlite://path/to/file.db".into());
                }
                if self.mode == Mode::Cloud && !(sqlite || postgres) {
                    problem(
                        "database.url",
                        "mode cloud uses sqlite://path/to/file.db (default) or postgres://…".into(),
                    );
                }
                let d = &self.dingtalk;
                // An internal app, a suite, or both: the internal app's keys are required unless
                // only a suite is configured.
                let internal = d.app_key.is_some() || d.app_secret.is_some() || d.agent_id.is_some();
                let required = [
                    ("dingtalk.app_key", d.app_key.as_deref().is_some_and(|s| !s.trim().is_empty())),
                    ("dingtalk.app_secret", d.app_secret.as_ref().is_some_and(|s| !s.expose().trim().is_empty())),
                    ("dingtalk.agent_id", d.agent_id.is_some()),
                    ("dingtalk.corp_id", d.corp_id.as_deref().is_some_and(|s| !s.trim().is_empty())),
                ];
                for (key, present) in required {
                    if !present && (internal || !self.suite.is_configured()) {
                        let env = format!("DINGBRIDGE_{}", key.to_ascii_uppercase().replace('.', "__"));
                        problem(
                            key,
                            format!(
                                "is required in mode {} (set it in dingbridge.toml or {env}; or configure only a [suite])",
                                self.mode
                            ),
                        );
                    }
                }
                for (key, message) in self.suite.problems() {
                    problem(key, message);
                }
                if self.suite.is_configured() && !self.events.is_configured() {
                    problem(
                        "events",
                        "[suite] needs [events] (token, aes_key): its suite_ticket and corp authorizations arrive as event pushes".into(),
                    );
                }
                if let Some(agent_id) = d.agent_id
                    && agent_id <= 0
                {
                    problem("dingtalk.agent_id", "must be a positive number".into());
                }
                if let Some(corp_id) = &d.corp_id
                    && !corp_id.trim().is_empty()
                    && let Err(e) = domain::CorpId::parse(corp_id)
                {
                    problem("dingtalk.corp_id", e.message);
                }
                for (key, url) in [
                    ("dingtalk.login_base", &d.login_base),
                    ("dingtalk.api_base", &d.api_base),
                    ("dingtalk.oapi_base", &d.oapi_base),
                ] {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        problem(key, format!("{url:?} must be an http(s) URL"));
                    }
                }
                if !(1..=120).contains(&d.timeout_secs) {
                    problem("dingtalk.timeout_secs", "must be between 1 and 120 seconds".into());
                }
                if !d.scope.split(' ').any(|s| s == "openid") {
                    problem("dingtalk.scope", "must include openid (\"openid\" or \"openid corpid\")".into());
                }
            }
            Mode::Local => {
                if !(self.database.url.starts_with("postgres://") || self.database.url.starts_with("postgresql://")) {
                    problem(
                        "database.url",
                        "mode local needs a PostgreSQL URL like postgres://user@host/db (DINGBRIDGE_DATABASE__URL or DATABASE_URL)".into(),
                    );
                }
                if !(self.cloud.base_url.starts_with("http://") || self.cloud.base_url.starts_with("https://")) {
                    problem(
                        "cloud.base_url",
                        "mode local needs the cloud relay's URL (DINGBRIDGE_CLOUD__BASE_URL or DINGDING_CLOUD_HOST)"
                            .into(),
                    );
                }
                if self.cloud.client_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    problem("cloud.client_id", "is required in mode local (or DINGDING_SECRET_USER)".into());
                }
                if self.cloud.client_secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
                    problem("cloud.client_secret", "is required in mode local (or DINGDING_SECRET_PASSWORD)".into());
                }
                if !(1..=120).contains(&self.cloud.timeout_secs) {
                    problem("cloud.timeout_secs", "must be between 1 and 120 seconds".into());
                }
                if self.dingtalk.app_secret.is_some() {
                    problem(
                        "dingtalk.app_secret",
                        "must not be set in mode local: only the cloud holds DingTalk secrets".into(),
                    );
                }
                if let Some(corp_id) = &self.dingtalk.corp_id
                    && let Err(e) = domain::CorpId::parse(corp_id)
                {
                    problem("dingtalk.corp_id", e.message);
                }
                for (i, corp_id) in self.cloud.corp_ids.iter().enumerate() {
                    if let Err(e) = domain::CorpId::parse(corp_id) {
                        problem(&format!("cloud.corp_ids[{i}]"), e.message);
                    }
                }
                if let Some(default) = &self.dingtalk.corp_id
                    && !self.cloud.corp_ids.is_empty()
                    && !self.cloud.corp_ids.contains(default)
                {
                    problem("dingtalk.corp_id", format!("{default:?} must be one of cloud.corp_ids"));
                }
            }
        }
        if self.mode == Mode::Local {
            if self.suite.is_configured() {
                problem("suite", "must not be set in mode local: only the cloud holds DingTalk secrets".into());
            }
            if self.events.is_configured() {
                problem("events", "must not be set in mode local: DingTalk pushes events to the cloud".into());
            }
        } else {
            for (key, message) in self.events.problems() {
                problem(key, message);
            }
        }
        if self.mode == Mode::Cloud {
            for (key, message) in self.relay_problems() {
                problem(&key, message);
            }
        }
        for (i, token) in self.api.service_tokens.iter().enumerate() {
            if token.expose().len() < 16 {
                problem(&format!("api.service_tokens[{i}]"), "must be at least 16 characters".into());
            }
        }
        if !(1..=10_000).contains(&self.login.per_address_per_minute) {
            problem("login.per_address_per_minute", "must be between 1 and 10000".into());
        }
        if !(1..=10_000).contains(&self.login.total_per_second) {
            problem("login.total_per_second", "must be between 1 and 10000".into());
        }
        for (key, message) in
            self.governor.problems().into_iter().chain(self.quota.problems()).chain(self.delivery.problems())
        {
            problem(&key, message);
        }
        if !(1..=32).contains(&self.outbox.workers) {
            problem("outbox.workers", "must be between 1 and 32".into());
        }
        if !(5..=3600).contains(&self.outbox.lease_secs) {
            problem("outbox.lease_secs", "must be between 5 and 3600 seconds".into());
        }
        if !(1..=30).contains(&self.feed.wait_secs) {
            problem(
                "feed.wait_secs",
                "must be between 1 and 30 seconds (the cloud holds a long-poll 30 s at most)".into(),
            );
        }
        if !(60..=90 * 24 * 3600).contains(&self.session.ttl_secs) {
            problem("session.ttl_secs", "must be between 60 seconds and 90 days".into());
        }
        for (key, message) in self.metrics.problems() {
            problem(key, message);
        }
        if let Some(domain) = &self.session.cookie_domain {
            let host = url::Url::parse(&self.public_url).ok().and_then(|u| u.host_str().map(str::to_owned));
            let domain = domain.trim_start_matches('.').to_ascii_lowercase();
            let covers = host.is_some_and(|h| h == domain || h.ends_with(&format!(".{domain}")));
            if domain.is_empty() || !domain.contains('.') || !covers {
                problem(
                    "session.cookie_domain",
                    format!("{domain:?} must be public_url's host or a parent domain of it (like example.com)"),
                );
            }
        }
        for (key, message) in crate::oidc::problems(self) {
            problem(&key, message);
        }
        problems
    }

    fn relay_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.relay.clients.is_empty() {
            out.push((
                "relay.clients".to_owned(),
                "mode cloud needs at least one relay client ([[relay.clients]] with id, secret and complete_url_origins, or DINGDING_SECRET_USER + DINGDING_SECRET_PASSWORD + relay.seed_client_origins)".to_owned(),
            ));
        }
        for (i, client) in self.relay.clients.iter().enumerate() {
            let key = |field: &str| format!("relay.clients[{i}].{field}");
            if client.id.trim().is_empty() || client.id.contains(':') {
                out.push((key("id"), "must be non-empty and contain no ':'".into()));
            }
            if self.relay.clients[..i].iter().any(|other| other.id == client.id) {
                out.push((key("id"), format!("{:?} is used by another client", client.id)));
            }
            if client.secret.expose().len() < 16 {
                out.push((key("secret"), "must be at least 16 characters".into()));
            }
            if client.corp_ids.is_empty() {
                out.push((
                    key("corp_ids"),
                    "must name at least one corp (or set dingtalk.corp_id / suite.corp_ids)".into(),
                ));
            }
            for corp in &client.corp_ids {
                if let Err(e) = domain::CorpId::parse(corp) {
                    out.push((key("corp_ids"), e.message));
                }
            }
            if client.complete_url_origins.is_empty() {
                out.push((
                    key("complete_url_origins"),
                    "must list the local deployment's origin(s), e.g. https://sso.internal.example.com".into(),
                ));
            }
            for origin in &client.complete_url_origins {
                if !is_origin(origin) {
                    out.push((
                        key("complete_url_origins"),
                        format!("{origin:?} is not an origin like https://host[:port]"),
                    ));
                }
            }
        }
        if self.relay.max_auth_failures == 0 || self.relay.auth_window_secs == 0 {
            out.push((
                "relay.max_auth_failures".into(),
                "the failed-authentication budget and window must be positive".into(),
            ));
        }
        out
    }

    /// The effective configuration as pretty JSON, secrets shown as `<redacted>`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<could not render configuration: {e}>"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

    use figment::Jail;

    use super::*;

    const DEV_TOML: &str = r#"
        mode = "dev"
        [dingtalk]
        app_key = "dingappkey"
        app_secret = "secret"
        agent_id = 300001
        corp_id = "dingcorp"
    "#;

    fn problems_of(err: ConfigError) -> Vec<String> {
        match err {
            ConfigError::Invalid(problems) => problems.into_iter().map(|p| p.key).collect(),
            ConfigError::Load(message) => vec![message],
        }
    }

    #[test]
    fn defaults_plus_a_file_make_a_valid_dev_config() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.mode, Mode::Dev);
            assert_eq!(config.database.url, "sqlite://data/dingbridge.db");
            assert_eq!(config.public_url, "http://127.0.0.1:8080");
            assert_eq!(config.dingtalk.agent_id, Some(300001));
            Ok(())
        });
    }

    #[test]
    fn the_feed_is_on_by_default_and_its_wait_is_validated_by_key() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let config = Config::load(None, &[]).unwrap();
            assert!(config.feed.enabled);
            assert_eq!(config.feed.wait_secs, 25);
            jail.set_env("DINGBRIDGE_FEED__WAIT_SECS", "5");
            jail.set_env("DINGBRIDGE_FEED__ENABLED", "false");
            let config = Config::load(None, &[]).unwrap();
            assert_eq!((config.feed.enabled, config.feed.wait_secs), (false, 5));
            for bad in ["0", "31"] {
                jail.set_env("DINGBRIDGE_FEED__WAIT_SECS", bad);
                assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), ["feed.wait_secs"], "{bad}");
            }
            Ok(())
        });
    }

    #[test]
    fn the_governor_defaults_to_18_per_second_and_is_validated_by_key() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let config = Config::load(None, &[]).unwrap();
            let governor = config.governor.to_config();
            assert!((governor.rate_per_second - 18.0).abs() < f64::EPSILON);
            assert_eq!((governor.max_wait, governor.max_retries), (Duration::from_secs(5), 3));
            jail.create_file(
                "dingbridge.toml",
                &format!(
                    "{DEV_TOML}\n[governor]\nrate_per_second = 10\nmax_wait_ms = 2000\n[governor.overrides]\n\"/topapi/message/corpconversation/asyncsend_v2\" = 5\n"
                ),
            )?;
            let governor = Config::load(None, &[]).unwrap().governor.to_config();
            assert!((governor.rate_per_second - 10.0).abs() < f64::EPSILON);
            assert_eq!(governor.max_wait, Duration::from_millis(2000));
            assert_eq!(governor.overrides.get("/topapi/message/corpconversation/asyncsend_v2"), Some(&5.0));
            for (toml, key) in [
                ("rate_per_second = 0", "governor.rate_per_second"),
                ("rate_per_second = 20001", "governor.rate_per_second"),
                ("max_wait_ms = 60001", "governor.max_wait_ms"),
                ("max_retries = 11", "governor.max_retries"),
                ("[governor.overrides]\n\"asyncsend_v2\" = 5", "governor.overrides.\"asyncsend_v2\""),
                ("[governor.overrides]\n\"/x\" = -1", "governor.overrides.\"/x\""),
            ] {
                jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n[governor]\n{toml}\n"))?;
                assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), [key], "{toml}");
            }
            jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n[governor]\nburst = 5\n"))?;
            assert!(Config::load(None, &[]).is_err(), "an unknown key is refused");
            Ok(())
        });
    }

    #[test]
    fn quota_and_delivery_default_to_5000_and_no_background_calls_and_are_validated_by_key() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.quota.to_config().limit_of("dingcorp"), 5_000);
            assert_eq!(config.delivery.budget(), None, "no metered background calls by default");
            jail.create_file(
                "dingbridge.toml",
                &format!(
                    "{DEV_TOML}\n[quota]\nmonthly_limit = 10000\n[quota.corp_limits]\ndingbig = 200000\n[delivery]\nreconcile = \"budget\"\nrounds_per_message = 3\n"
                ),
            )?;
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.quota.to_config().limit_of("dingcorp"), 10_000);
            assert_eq!(config.quota.to_config().limit_of("dingbig"), 200_000);
            assert_eq!(config.delivery.budget(), Some(3));
            for (toml, key) in [
                ("[quota]\nmonthly_limit = 0", "quota.monthly_limit"),
                ("[quota.corp_limits]\ndingbig = 0", "quota.corp_limits.dingbig"),
                ("[delivery]\nreconcile = \"always\"", "delivery.reconcile"),
                ("[delivery]\nrounds_per_message = 21", "delivery.rounds_per_message"),
                ("[delivery]\nunrecognized_retry_secs = 604801", "delivery.unrecognized_retry_secs"),
                ("[delivery]\nunrecognized_retry_attempts = 0", "delivery.unrecognized_retry_attempts"),
                ("[delivery]\nuncertain_batches = \"drop\"", "delivery.uncertain_batches"),
            ] {
                jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{toml}\n"))?;
                assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), [key], "{toml}");
            }
            Ok(())
        });
    }

    #[test]
    fn environment_wins_over_the_file_and_numeric_secrets_are_strings() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_DINGTALK__APP_SECRET", "12345678");
            jail.set_env("DINGBRIDGE_BIND", "127.0.0.1:9999");
            jail.set_env("DINGBRIDGE_API__SERVICE_TOKENS", r#"["0123456789abcdef0123"]"#);
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.dingtalk.app_secret.as_ref().map(Secret::expose), Some("12345678"));
            assert_eq!(config.bind, "127.0.0.1:9999");
            assert_eq!(config.api.service_tokens.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn command_line_overrides_win_over_everything() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_BIND", "127.0.0.1:9999");
            let config = Config::load(None, &[("bind", "127.0.0.1:7777".into())]).unwrap();
            assert_eq!(config.bind, "127.0.0.1:7777");
            Ok(())
        });
    }

    #[test]
    fn a_dot_env_file_is_read() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.create_file(".env", "DINGBRIDGE_DINGTALK__SCOPE=\"openid corpid\"\n")?;
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.dingtalk.scope, "openid corpid");
            Ok(())
        });
    }

    #[test]
    fn missing_dingtalk_credentials_name_their_keys() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", "mode = \"dev\"")?;
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            for key in ["dingtalk.app_key", "dingtalk.app_secret", "dingtalk.agent_id", "dingtalk.corp_id"] {
                assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
            }
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_keys() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_BIND", "not-an-address");
            jail.set_env("DINGBRIDGE_SESSION__TTL_SECS", "5");
            jail.set_env("DINGBRIDGE_API__SERVICE_TOKENS", r#"["short"]"#);
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert!(keys.contains(&"bind".to_owned()));
            assert!(keys.contains(&"session.ttl_secs".to_owned()));
            assert!(keys.contains(&"api.service_tokens[0]".to_owned()));
            Ok(())
        });
    }

    #[test]
    fn a_wrong_type_is_a_load_error_naming_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_DINGTALK__AGENT_ID", "not-a-number");
            let message = problems_of(Config::load(None, &[]).unwrap_err()).join(" ");
            assert!(message.to_lowercase().contains("dingtalk.agent_id"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        Jail::expect_with(|_| {
            let err = Config::load(Some(Path::new("nope.toml")), &[]).unwrap_err();
            assert!(err.to_string().contains("nope.toml"));
            Ok(())
        });
    }

    #[test]
    fn events_come_from_the_seeds_names_and_are_validated() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGDING_TOKEN", "123456");
            jail.set_env("DINGDING_AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
            jail.set_env("DINGDING_SUIT_KEY", "suiteKEY123");
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.events.token.as_ref().map(Secret::expose), Some("123456"));
            assert_eq!(config.events.owner_key.as_deref(), Some("suiteKEY123"));
            assert_eq!(config.events.window_secs, 600);
            assert_eq!(config.events.max_body_bytes, 1024 * 1024);
            assert!(!config.redacted_json().contains("4g5j64"));
            jail.set_env("DINGDING_TOKEN", "a!");
            jail.set_env("DINGDING_AES_KEY", "short");
            jail.set_env("DINGBRIDGE_EVENTS__WINDOW_SECS", "1");
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert!(keys.contains(&"events.token".to_owned()));
            assert!(keys.contains(&"events.aes_key".to_owned()));
            assert!(keys.contains(&"events.window_secs".to_owned()));
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_EVENTS__TOKEN", "123456");
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert!(keys.contains(&"events.aes_key".to_owned()));
            // The owner key defaults to the app key.
            assert!(!keys.contains(&"events.owner_key".to_owned()), "{keys:?}");
            jail.set_env("DINGBRIDGE_EVENTS__AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
            assert_eq!(Config::load(None, &[]).unwrap().events.owner_key.as_deref(), Some("dingappkey"));
            Ok(())
        });
    }

    #[test]
    fn the_event_body_limit_is_configurable_and_validated() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", "4194304");
            assert_eq!(Config::load(None, &[]).unwrap().events.max_body_bytes, 4 * 1024 * 1024);
            for bad in ["1000", "0", "68157440"] {
                jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", bad);
                let keys = problems_of(Config::load(None, &[]).unwrap_err());
                assert_eq!(keys, ["events.max_body_bytes"], "{bad}");
            }
            jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", "lots");
            let message = problems_of(Config::load(None, &[]).unwrap_err()).join(" ");
            assert!(message.to_lowercase().contains("events.max_body_bytes"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn a_suite_alone_or_with_an_internal_app() {
        // The seed's .env: a suite with its callback keys, no internal app.
        Jail::expect_with(|jail| {
            jail.set_env("DINGBRIDGE_MODE", "cloud");
            jail.set_env("DINGDING_SUIT_KEY", "suiteKEY123");
            jail.set_env("DINGDING_SUITE_SECRET", "suite-secret");
            jail.set_env("DINGDING_TOKEN", "123456");
            jail.set_env("DINGDING_AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
            jail.set_env("DINGDING_SECRET_USER", "ruicore");
            jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
            jail.set_env("DINGBRIDGE_RELAY__SEED_CLIENT_ORIGINS", r#"["https://sso.example.com"]"#);
            jail.set_env("DINGBRIDGE_SUITE__CORP_IDS", r#"["dingcorpa"]"#);
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.suite.suite_key.as_deref(), Some("suiteKEY123"));
            assert_eq!(config.events.owner_key.as_deref(), Some("suiteKEY123"));
            assert_eq!(config.relay.clients[0].corp_ids, vec!["dingcorpa".to_owned()]);
            assert!(config.dingtalk.app_key.is_none());
            assert!(!config.redacted_json().contains("suite-secret"));
            jail.set_env("DINGBRIDGE_SUITE__CORP_TOKEN_API", "v2");
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert_eq!(keys, vec!["suite.corp_token_api".to_owned()]);
            Ok(())
        });
        // A suite needs its secret and the event callback; an internal app, once started, all its keys.
        Jail::expect_with(|jail| {
            jail.set_env("DINGBRIDGE_SUITE__SUITE_KEY", "suiteKEY123");
            jail.set_env("DINGBRIDGE_DINGTALK__APP_KEY", "dingappkey");
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            for key in ["suite.suite_secret", "events", "dingtalk.app_secret", "dingtalk.agent_id", "dingtalk.corp_id"]
            {
                assert!(keys.contains(&key.to_owned()), "{key} missing from {keys:?}");
            }
            Ok(())
        });
        // Nothing at all: the internal app's keys are asked for.
        Jail::expect_with(|_| {
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert!(keys.contains(&"dingtalk.app_key".to_owned()), "{keys:?}");
            Ok(())
        });
    }

    /// A local configured the seed's way: its environment variable names alone.
    fn seed_local_env(jail: &mut Jail) {
        jail.set_env("DINGDING_DEPLOY_MODE", "LOCAL");
        jail.set_env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dingding");
        jail.set_env("DINGDING_CLOUD_HOST", "https://relay.example.com");
        jail.set_env("DINGDING_SECRET_USER", "ruicore");
        jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
    }

    #[test]
    fn the_seeds_names_are_accepted() {
        Jail::expect_with(|jail| {
            seed_local_env(jail);
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.mode, Mode::Local);
            assert_eq!(config.database.url, "postgres://postgres@127.0.0.1:5432/dingding");
            assert_eq!(config.cloud.base_url, "https://relay.example.com");
            assert_eq!(config.cloud.client_id.as_deref(), Some("ruicore"));
            Ok(())
        });
    }

    #[test]
    fn local_mode_needs_postgres_and_the_cloud_and_refuses_dingtalk_secrets() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let keys = problems_of(Config::load(None, &[("mode", "local".into())]).unwrap_err());
            for key in
                ["database.url", "cloud.base_url", "cloud.client_id", "cloud.client_secret", "dingtalk.app_secret"]
            {
                assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
            }
            Ok(())
        });
    }

    #[test]
    fn cloud_mode_needs_relay_clients_with_origins() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            let keys = problems_of(Config::load(None, &[("mode", "cloud".into())]).unwrap_err());
            assert!(keys.contains(&"relay.clients".to_owned()), "{keys:?}");
            jail.create_file(
                "dingbridge.toml",
                &format!(
                    "{DEV_TOML}\n[[relay.clients]]\nid = \"a\"\nsecret = \"short\"\ncomplete_url_origins = [\"https://x.example/path\"]\n"
                ),
            )?;
            let keys = problems_of(Config::load(None, &[("mode", "cloud".into())]).unwrap_err());
            assert!(keys.contains(&"relay.clients[0].secret".to_owned()), "{keys:?}");
            assert!(keys.contains(&"relay.clients[0].complete_url_origins".to_owned()), "{keys:?}");
            Ok(())
        });
    }

    #[test]
    fn the_seeds_relay_credentials_define_a_cloud_client() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "dingbridge.toml",
                &format!("{DEV_TOML}\n[relay]\nseed_client_origins = [\"https://local.example\"]\n"),
            )?;
            jail.set_env("DINGDING_SECRET_USER", "ruicore");
            jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
            let config = Config::load(None, &[("mode", "cloud".into())]).unwrap();
            assert_eq!(config.relay.clients.len(), 1);
            assert_eq!(config.relay.clients[0].corp_ids, vec!["dingcorp".to_owned()]);
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", DEV_TOML)?;
            jail.set_env("DINGBRIDGE_DINGTALK__APP_SECRET", "super-secret-value");
            let config = Config::load(None, &[]).unwrap();
            assert!(!config.redacted_json().contains("super-secret-value"));
            assert!(!format!("{config:?}").contains("super-secret-value"));
            Ok(())
        });
    }

    #[test]
    fn a_feishu_app_is_validated_redacted_and_offered_in_dev_mode() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "dingbridge.toml",
                &format!(
                    "{DEV_TOML}\n[feishu]\napp_id = \"cli_a5d611352af9d00b\"\napp_secret = \"feishu-secret-value\"\n\
                     tenant_keys = [\"736588c9260f175d\"]\nregion = \"lark\"\n"
                ),
            )?;
            let config = Config::load(None, &[]).unwrap();
            assert!(config.problems().is_empty(), "{:?}", config.problems());
            assert!(!config.redacted_json().contains("feishu-secret-value"));
            assert_eq!(config.feishu.open_base(), "https://open.larksuite.com");
            assert_eq!(config.login_providers(), ["dingtalk", "feishu"]);
            Ok(())
        });
        let mut config = Config::default();
        config.feishu.app_id = Some("cli_x".into());
        config.feishu.region = "mars".into();
        config.feishu.token_endpoint = "v9".into();
        config.login.providers = vec!["wecom".into()];
        let keys: Vec<String> = config.problems().into_iter().map(|p| p.key).collect();
        for key in
            ["feishu.app_secret", "feishu.tenant_keys", "feishu.region", "feishu.token_endpoint", "login.providers"]
        {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        config.feishu.tenant_keys = vec!["dingcorp".into()];
        config.dingtalk.corp_id = Some("dingcorp".into());
        let problems = config.problems();
        assert!(
            problems.iter().any(|p| p.key == "feishu.tenant_keys" && p.message.contains("one provider")),
            "{problems:?}"
        );
    }

    #[test]
    fn local_takes_the_feishu_tenants_alone_and_serves_them_after_its_corps() {
        Jail::expect_with(|jail| {
            seed_local_env(jail);
            jail.set_env("DINGBRIDGE_CLOUD__CORP_IDS", "[\"dingcorpa\"]");
            jail.set_env("DINGBRIDGE_FEISHU__TENANT_KEYS", "[\"736588c9260f175d\", \"dingcorpa\"]");
            let config = Config::load(None, &[]).unwrap();
            let corps: Vec<String> = config.local_corps().iter().map(ToString::to_string).collect();
            assert_eq!(corps, ["dingcorpa", "736588c9260f175d"], "listed once, the default first");
            jail.set_env("DINGBRIDGE_FEISHU__APP_SECRET", "feishu-secret-value");
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert_eq!(keys, ["feishu.app_id"], "the app's secret is the cloud's");
            Ok(())
        });
    }

    #[test]
    fn modes_parse_the_seeds_spelling() {
        assert_eq!(Mode::parse("DEV_DEBUG"), Some(Mode::Dev));
        assert_eq!(Mode::parse(" Cloud "), Some(Mode::Cloud));
        assert_eq!(Mode::parse("edge"), None);
        assert!(is_origin("https://a.example:8443"));
        assert!(!is_origin("https://a.example/x"));
        assert!(!is_origin("ftp://a.example"));
    }

    const OIDC_TOML: &str = r#"
        [[oidc.clients]]
        client_id = "grafana"
        client_secret = "grafana-client-secret-value"
        redirect_uris = ["https://grafana.example.com/login/generic_oauth"]

        [[oidc.clients]]
        client_id = "argocd-cli"
        redirect_uris = ["http://localhost:8085/auth/callback"]
    "#;

    #[test]
    fn oidc_clients_load_with_defaults_and_their_secrets_are_redacted() {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{OIDC_TOML}"))?;
            let config = Config::load(None, &[]).unwrap();
            let clients = crate::oidc::clients(&config).unwrap();
            let grafana = clients.get("grafana").unwrap();
            assert_eq!(grafana.auth_method, application::usecases::oidc::ClientAuthMethod::ClientSecretBasic);
            assert!(grafana.scopes.iter().any(|s| s == "offline_access"), "all known scopes by default");
            assert!(clients.get("argocd-cli").unwrap().is_public());
            assert_eq!(crate::oidc::settings(&config).issuer, "http://127.0.0.1:8080");
            assert!(!config.redacted_json().contains("grafana-client-secret-value"));
            assert!(!format!("{config:?}").contains("grafana-client-secret-value"));
            Ok(())
        });
    }

    #[test]
    fn bad_oidc_and_forward_auth_settings_name_their_key() {
        let cases = [
            (
                "[[oidc.clients]]\nclient_id = \"x\"\nclient_secret = \"0123456789abcdef\"\nredirect_uris = [\"http://grafana.example.com/cb\"]",
                "oidc.clients[0].redirect_uris[0]",
            ),
            (
                "[[oidc.clients]]\nclient_id = \"x\"\nclient_secret = \"short\"\nredirect_uris = [\"https://a.example/cb\"]",
                "oidc.clients[0].client_secret",
            ),
            ("[oidc]\ncode_ttl_secs = 600", "oidc.code_ttl_secs"),
            ("[oidc]\nsubject = \"email\"", "oidc.subject"),
            ("[oidc]\nsigning_algs = [\"HS256\"]", "oidc.signing_algs"),
            ("[forward_auth]\nreturn_origins = [\"https://app.example.com/path\"]", "forward_auth.return_origins"),
            ("[session]\ncookie_domain = \"other.example\"", "session.cookie_domain"),
        ];
        for (extra, key) in cases {
            Jail::expect_with(|jail| {
                jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{extra}"))?;
                let keys = problems_of(Config::load(None, &[]).unwrap_err());
                assert!(keys.iter().any(|k| k == key), "{extra}: {keys:?}");
                Ok(())
            });
        }
    }

    #[test]
    fn a_cookie_domain_must_cover_the_public_url() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "dingbridge.toml",
                &format!(
                    "public_url = \"https://sso.example.com\"\n{DEV_TOML}\n[session]\ncookie_domain = \"example.com\""
                ),
            )?;
            let config = Config::load(None, &[]).unwrap();
            assert_eq!(config.session.cookie_domain.as_deref(), Some("example.com"));
            Ok(())
        });
    }
}
