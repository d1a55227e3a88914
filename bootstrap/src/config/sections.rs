//! The sections of the configuration (`[database]`, `[dingtalk]`, `[suite]`, `[api]`, `[session]`,
//! `[outbox]`, `[feed]`, `[login]`, `[governor]`, `[quota]`, `[delivery]`, `[cloud]`, `[relay]`,
//! `[events]`), each with its defaults and the checks that need only itself. `[feishu]` is in
//! `feishu.rs`; the checks across sections are `Config::problems` (`validate.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::{Secret, lenient_opt_string, lenient_string};

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

    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
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

    pub(super) fn problems(&self) -> Vec<(String, String)> {
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

    pub(super) fn problems(&self) -> Vec<(String, String)> {
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

    pub(super) fn problems(&self) -> Vec<(String, String)> {
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

    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
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
