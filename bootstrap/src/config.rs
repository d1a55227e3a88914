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

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "dingbridge.toml";

/// Which role this process plays (DESIGN.md "modes").
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
/// numeric arrive as numbers (STACK-NOTES F8).
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
    /// The DingTalk app (cloud and dev modes).
    pub dingtalk: DingTalkSection,
    /// Service API access.
    pub api: ApiSection,
    /// Browser sessions.
    pub session: SessionSection,
    /// Seed aliases, resolved by [`Config::load`]; not meant to be set directly.
    #[serde(default, skip_serializing)]
    pub seed: SeedAliases,
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

/// `[dingtalk]`: an internal enterprise app (API.md §0.4: Client ID = AppKey).
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            database: DatabaseConfig {
                url: String::new(),
                max_connections: 8,
            },
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
            api: ApiSection {
                service_tokens: Vec::new(),
            },
            session: SessionSection {
                ttl_secs: 7 * 24 * 3600,
            },
            seed: SeedAliases::default(),
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
        .only(&["DINGDING_DEPLOY_MODE", "DATABASE_URL", "SQLITE_DATABASE_URL"])
        .map(|key| match key.as_str().to_ascii_uppercase().as_str() {
            "DINGDING_DEPLOY_MODE" => "mode".into(),
            "DATABASE_URL" => "seed.database_url".into(),
            _ => "seed.sqlite_database_url".into(),
        })
}

impl Config {
    /// Loads and validates the configuration. `file` is `--config FILE` (must exist); without it
    /// `dingbridge.toml` is read if present. `.env` in the working directory is read if present
    /// (it never overrides real environment variables).
    /// `overrides` (`(key, value)`, e.g. `("mode", "cloud")` from `--mode`) win over every source.
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file(PathBuf::from(DEFAULT_CONFIG_FILE))),
        }
        let mut figment = figment
            .merge(seed_aliases())
            .merge(Env::prefixed("DINGBRIDGE_").split("__"));
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
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
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
        self.public_url = self.public_url.trim().trim_end_matches('/').to_owned();
    }

    /// Every problem, each naming its key.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.into(),
                message,
            })
        };
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            problem("bind", format!("{:?} is not an address like 127.0.0.1:8080", self.bind));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problem(
                "public_url",
                format!("{:?} must start with http:// or https://", self.public_url),
            );
        }
        if !(1..=64).contains(&self.database.max_connections) {
            problem("database.max_connections", "must be between 1 and 64".into());
        }
        match self.mode {
            Mode::Dev | Mode::Cloud => {
                if !self.database.url.starts_with("sqlite:") && self.database.url.contains("://") {
                    problem(
                        "database.url",
                        format!("mode {} stores data in SQLite: use sqlite://path/to/file.db", self.mode),
                    );
                }
                let d = &self.dingtalk;
                let required = [
                    (
                        "dingtalk.app_key",
                        d.app_key.as_deref().is_some_and(|s| !s.trim().is_empty()),
                    ),
                    (
                        "dingtalk.app_secret",
                        d.app_secret.as_ref().is_some_and(|s| !s.expose().trim().is_empty()),
                    ),
                    ("dingtalk.agent_id", d.agent_id.is_some()),
                    (
                        "dingtalk.corp_id",
                        d.corp_id.as_deref().is_some_and(|s| !s.trim().is_empty()),
                    ),
                ];
                for (key, present) in required {
                    if !present {
                        let env = format!("DINGBRIDGE_{}", key.to_ascii_uppercase().replace('.', "__"));
                        problem(
                            key,
                            format!("is required in mode {} (set it in dingbridge.toml or {env})", self.mode),
                        );
                    }
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
                    problem(
                        "dingtalk.scope",
                        "must include openid (\"openid\" or \"openid corpid\")".into(),
                    );
                }
            }
            Mode::Local => {
                if self.database.url.is_empty() {
                    problem(
                        "database.url",
                        "is required in mode local (PostgreSQL; seed alias DATABASE_URL)".into(),
                    );
                }
            }
        }
        for (i, token) in self.api.service_tokens.iter().enumerate() {
            if token.expose().len() < 16 {
                problem(
                    &format!("api.service_tokens[{i}]"),
                    "must be at least 16 characters".into(),
                );
            }
        }
        if !(60..=90 * 24 * 3600).contains(&self.session.ttl_secs) {
            problem("session.ttl_secs", "must be between 60 seconds and 90 days".into());
        }
        problems
    }

    /// The effective configuration as pretty JSON, secrets shown as `<redacted>`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<could not render configuration: {e}>"))
    }
}
