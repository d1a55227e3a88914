//! Configuration: one typed struct, extracted once by figment and validated
//! at start-up. A bad value stops start-up with a message naming the key.
//!
//! Sources, later ones winning: built-in defaults → `dingbridge.toml` (or
//! `--config FILE`) → `.env` → environment. Environment keys are
//! `DINGBRIDGE_<SECTION>__<KEY>` (e.g. `DINGBRIDGE_DINGTALK__APP_KEY`); the
//! Python seed's names (`DINGDING_DEPLOY_MODE`, `DATABASE_URL`,
//! `SQLITE_DATABASE_URL`, `DINGDING_CLOUD_HOST`) are accepted as aliases.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "dingbridge.toml";

mod feishu;
mod sections;
mod validate;
mod values;

pub use feishu::FeishuSection;
pub use sections::*;
use values::lenient_opt_string;
pub use values::{Mode, Secret};

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

    // `Config::problems` (every check, by key) is in `validate.rs`.
}

impl Config {
    /// The effective configuration as pretty JSON, secrets shown as `<redacted>`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<could not render configuration: {e}>"))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
