//! `[feishu]`: a Feishu / Lark self-built app beside DingTalk (cloud and dev), or — on local — the
//! Feishu tenants alone.

use serde::{Deserialize, Serialize};

use super::Config;
use super::values::{Mode, Secret, lenient_opt_string};

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

    pub(super) fn problems(&self, mode: Mode) -> Vec<(&'static str, String)> {
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
