//! `Config::problems`: every check of a loaded configuration, each naming its key (the checks
//! that need one section only are that section's `problems`).

use super::values::Mode;
use super::{Config, ConfigProblem, is_origin};

impl Config {
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
}
