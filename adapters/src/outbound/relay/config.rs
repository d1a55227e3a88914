//! Configuration of the relay client: where the cloud is, who local is, how long to wait.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Default timeout of one attempt (connect to end of body): 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of attempts of a retried call (the first one included): 4.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// Settings of [`super::HttpCloudGateway`]. The bootstrap fills it from its own
/// configuration and calls [`RelayConfig::validate`] at start-up.
///
/// `Debug` is safe to log: `client_secret` prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The cloud's base URL, e.g. `https://relay.example.com`. A trailing `/` is allowed and a
    /// path prefix is kept: `https://host/prefix/` calls `https://host/prefix/relay/v1/...`.
    pub base_url: String,
    /// This relay client's id (the HTTP Basic user name); must not contain `:`.
    pub client_id: String,
    /// This relay client's secret (the HTTP Basic password); never logged.
    pub client_secret: SecretString,
    /// Timeout of one attempt, from connecting to the end of the response body.
    pub timeout: Duration,
    /// How many attempts a retried call makes at most, the first one included (≥ 1; 0 acts as 1).
    pub max_attempts: u32,
}

impl RelayConfig {
    /// A configuration with the default timeout (10 s per attempt) and attempts (4).
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Checks the values for start-up. Errors name the field:
    /// `base_url` must be an absolute `http`/`https` URL with a host and no user info, query or
    /// fragment; `client_id` non-empty without `:`; `client_secret` non-empty; `timeout` and
    /// `max_attempts` greater than zero.
    pub fn validate(&self) -> Result<(), RelayConfigError> {
        parse_base_url(&self.base_url).map_err(|message| RelayConfigError::new("base_url", message))?;
        if self.client_id.trim().is_empty() {
            return Err(RelayConfigError::new("client_id", "must not be empty"));
        }
        if self.client_id.contains(':') {
            return Err(RelayConfigError::new("client_id", "must not contain `:` (it is the HTTP Basic user name)"));
        }
        if self.client_secret.expose_secret().trim().is_empty() {
            return Err(RelayConfigError::new("client_secret", "must not be empty"));
        }
        if self.timeout.is_zero() {
            return Err(RelayConfigError::new("timeout", "must be greater than zero"));
        }
        if self.max_attempts == 0 {
            return Err(RelayConfigError::new("max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}

/// Parses the base URL with the rules of [`RelayConfig::validate`].
pub(super) fn parse_base_url(raw: &str) -> Result<reqwest::Url, &'static str> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() || url.cannot_be_a_base() {
        return Err("must be an absolute http(s) URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (use client_id and client_secret)");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment");
    }
    Ok(url)
}

/// A bad [`RelayConfig`] value, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay.{field} {message}")]
pub struct RelayConfigError {
    /// The offending field, e.g. `base_url`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

impl RelayConfigError {
    fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}
