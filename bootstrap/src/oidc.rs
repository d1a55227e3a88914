//! The OpenID Provider and forward-auth, local and dev modes (docs/oidc.md): the `[oidc]` and
//! `[forward_auth]` configuration, building [`OidcHttp`], and the signing-key job.

use std::sync::Arc;
use std::time::Duration;

use adapters::inbound::http::oidc::OidcParts;
use adapters::inbound::http::{CookieSettings, ForwardAuthSettings, OidcHttp};
use adapters::outbound::jose::JoseSigner;
use adapters::outbound::system::{OsRandom, SystemClock};
use anyhow::Context;
use application::ports::{
    CloudGateway, GrantStore, SessionStore, SigningAlgorithm, SigningKeyStore, TokenSigner, UserRepository,
};
use application::usecases::oidc::{
    ClientAuthMethod, ClientRegistry, KNOWN_SCOPES, OidcClient, OidcSettings, SigningKeys, SubjectClaim,
};
use domain::{CorpId, DeptId};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::{Config, Secret};

/// How often the signing keys are re-read from the database (picking up a rotation another
/// process made) and rotated when due.
pub const KEY_REFRESH_EVERY: Duration = Duration::from_secs(600);

/// `[oidc]`: the OpenID Provider (on when at least one client is registered).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The relying parties.
    pub clients: Vec<OidcClientConfig>,
    /// Authorization code lifetime, seconds (1–60; default 60).
    pub code_ttl_secs: i64,
    /// Access token lifetime, seconds (default 300).
    pub access_token_ttl_secs: i64,
    /// ID token lifetime, seconds (default 300).
    pub id_token_ttl_secs: i64,
    /// Each refresh token's lifetime, seconds (default 30 days).
    pub refresh_token_ttl_secs: i64,
    /// A grant's absolute lifetime, seconds (default 90 days).
    pub grant_ttl_secs: i64,
    /// Re-check membership through the cloud on a refresh when the last check is older, seconds
    /// (default 3600).
    pub membership_recheck_secs: i64,
    /// `sub`: `user_id` (the local member id, default) or `union_id`.
    pub subject: String,
    /// ID-token algorithms offered: `RS256` (always) and optionally `ES256`.
    pub signing_algs: Vec<String>,
    /// Rotate the signing keys after this many days (default 30).
    pub key_rotation_days: i64,
    /// Token requests per minute per client and address (default 600).
    pub token_requests_per_minute: u32,
}

impl Default for OidcSection {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            code_ttl_secs: 60,
            access_token_ttl_secs: 300,
            id_token_ttl_secs: 300,
            refresh_token_ttl_secs: 30 * 86_400,
            grant_ttl_secs: 90 * 86_400,
            membership_recheck_secs: 3600,
            subject: "user_id".into(),
            signing_algs: vec!["RS256".into()],
            key_rotation_days: 30,
            token_requests_per_minute: 600,
        }
    }
}

/// `[[oidc.clients]]`: one relying party.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcClientConfig {
    /// `client_id`.
    pub client_id: String,
    /// The secret of a confidential client (≥ 16 characters); absent for a public client.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// `client_secret_basic` (default with a secret), `client_secret_post`, or `none` (default
    /// without one).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Redirect URIs, matched exactly (public clients: loopback on any port too).
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes it may get (default: all of `openid profile email phone groups offline_access`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Only members of these corps may sign in to it (default: every corp served).
    #[serde(default)]
    pub corp_ids: Vec<String>,
    /// Only members of one of these departments may sign in to it (default: all).
    #[serde(default)]
    pub dept_ids: Vec<i64>,
    /// `RS256` (default) or `ES256` (needs `ES256` in `oidc.signing_algs`).
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

/// `[forward_auth]`: `GET /auth/verify` for reverse proxies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthSection {
    /// Prefix of the identity headers (default `X-Auth-Request-`).
    pub header_prefix: String,
    /// Origins whose URLs a sign-in may return to (`https://app.example.com`).
    pub return_origins: Vec<String>,
}

impl Default for ForwardAuthSection {
    fn default() -> Self {
        Self { header_prefix: "X-Auth-Request-".into(), return_origins: Vec::new() }
    }
}

fn subject(section: &OidcSection) -> SubjectClaim {
    if section.subject == "union_id" { SubjectClaim::UnionId } else { SubjectClaim::UserId }
}

fn algorithms(section: &OidcSection) -> Vec<SigningAlgorithm> {
    let mut algs = vec![SigningAlgorithm::Rs256];
    algs.extend(
        section
            .signing_algs
            .iter()
            .filter_map(|a| SigningAlgorithm::parse(a))
            .filter(|a| *a != SigningAlgorithm::Rs256),
    );
    algs
}

/// The settings of `[oidc]` for the issuer `public_url`.
pub fn settings(config: &Config) -> OidcSettings {
    let o = &config.oidc;
    OidcSettings {
        code_ttl_secs: o.code_ttl_secs,
        access_token_ttl_secs: o.access_token_ttl_secs,
        id_token_ttl_secs: o.id_token_ttl_secs,
        refresh_token_ttl_secs: o.refresh_token_ttl_secs,
        grant_ttl_secs: o.grant_ttl_secs,
        membership_recheck_secs: o.membership_recheck_secs,
        subject: subject(o),
        ..OidcSettings::with_issuer(config.public_url.clone())
    }
}

/// The registered clients, validated.
pub fn clients(config: &Config) -> Result<ClientRegistry, domain::ValidationError> {
    let algs = algorithms(&config.oidc);
    let clients = config
        .oidc
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = |field: &str| format!("oidc.clients[{i}].{field}");
            let auth_method = match c.token_endpoint_auth_method.as_deref() {
                None if c.client_secret.is_some() => ClientAuthMethod::ClientSecretBasic,
                None => ClientAuthMethod::None,
                Some(name) => ClientAuthMethod::parse(name).ok_or_else(|| {
                    domain::ValidationError::new(
                        key("token_endpoint_auth_method"),
                        "invalid",
                        format!("{name:?} is not client_secret_basic, client_secret_post or none"),
                    )
                })?,
            };
            let id_token_alg = match c.id_token_signed_response_alg.as_deref() {
                None => SigningAlgorithm::Rs256,
                Some(name) => SigningAlgorithm::parse(name).filter(|a| algs.contains(a)).ok_or_else(|| {
                    domain::ValidationError::new(
                        key("id_token_signed_response_alg"),
                        "invalid",
                        format!("{name:?} is not one of oidc.signing_algs"),
                    )
                })?,
            };
            let corp_ids = c
                .corp_ids
                .iter()
                .map(|id| CorpId::parse(id).map_err(|e| e.under(&key("corp_ids"))))
                .collect::<Result<_, _>>()?;
            let dept_ids = c
                .dept_ids
                .iter()
                .map(|id| DeptId::new(*id).map_err(|e| e.under(&key("dept_ids"))))
                .collect::<Result<_, _>>()?;
            Ok(OidcClient {
                client_id: c.client_id.clone(),
                client_secret: c.client_secret.as_ref().map(Secret::to_secret_string),
                auth_method,
                redirect_uris: c.redirect_uris.clone(),
                post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                scopes: c.scopes.clone().unwrap_or_else(|| KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect()),
                corp_ids,
                dept_ids,
                id_token_alg,
            })
        })
        .collect::<Result<Vec<_>, domain::ValidationError>>()?;
    ClientRegistry::new(clients)
}

/// Problems of `[oidc]` and `[forward_auth]`, each naming its key.
pub fn problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let o = &config.oidc;
    if !matches!(o.subject.as_str(), "user_id" | "union_id") {
        out.push(("oidc.subject".into(), format!("{:?} is not user_id or union_id", o.subject)));
    }
    for alg in &o.signing_algs {
        if SigningAlgorithm::parse(alg).is_none() {
            out.push(("oidc.signing_algs".into(), format!("{alg:?} is not RS256 or ES256")));
        }
    }
    if !(1..=365).contains(&o.key_rotation_days) {
        out.push(("oidc.key_rotation_days".into(), "must be between 1 and 365".into()));
    }
    if o.token_requests_per_minute == 0 {
        out.push(("oidc.token_requests_per_minute".into(), "must be at least 1".into()));
    }
    if let Err(e) = settings(config).validate() {
        out.push((e.field, e.message));
    }
    if let Err(e) = clients(config) {
        out.push((e.field, e.message));
    }
    if !o.clients.is_empty() && config.mode == crate::config::Mode::Cloud {
        out.push(("oidc.clients".into(), "the OpenID Provider runs on local (or dev), not on the cloud".into()));
    }
    let prefix = &config.forward_auth.header_prefix;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        out.push(("forward_auth.header_prefix".into(), format!("{prefix:?} must be letters, digits and '-'")));
    }
    for origin in &config.forward_auth.return_origins {
        let parsed = url::Url::parse(origin).ok();
        let is_origin = parsed.as_ref().is_some_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.path() == "/" && u.query().is_none() && u.username().is_empty()
        });
        if !is_origin {
            out.push((
                "forward_auth.return_origins".into(),
                format!("{origin:?} is not an origin like https://app.example.com"),
            ));
        }
    }
    out
}

/// What forward-auth answers, from `[forward_auth]`.
pub fn forward_auth(config: &Config) -> ForwardAuthSettings {
    ForwardAuthSettings {
        header_prefix: config.forward_auth.header_prefix.clone(),
        sign_in_url: format!("{}/auth/dingtalk/login", config.public_url),
        return_origins: config.forward_auth.return_origins.clone(),
        subject: subject(&config.oidc),
    }
}

/// Storage of the provider.
pub trait OidcStores: GrantStore + SigningKeyStore + SessionStore + UserRepository + 'static {}
impl<T: GrantStore + SigningKeyStore + SessionStore + UserRepository + 'static> OidcStores for T {}

/// The signing keys of a store, installed into `signer` (creating the first one when there is none).
pub fn signing_keys<S: OidcStores>(store: &Arc<S>, signer: Arc<dyn TokenSigner>, config: &Config) -> SigningKeys {
    SigningKeys::new(
        store.clone(),
        signer,
        Arc::new(OsRandom),
        Arc::new(SystemClock),
        algorithms(&config.oidc),
        config.oidc.key_rotation_days * 86_400,
        &settings(config),
    )
}

/// The provider's routes and its key job, when `[[oidc.clients]]` registers any client. Loads
/// (or creates) the signing keys before returning, so the first request can be served.
pub async fn build<S: OidcStores>(
    store: &Arc<S>,
    gateway: Arc<dyn CloudGateway>,
    config: &Config,
    cookies: CookieSettings,
) -> anyhow::Result<Option<(Arc<OidcHttp>, Arc<SigningKeys>)>> {
    let clients = Arc::new(clients(config).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?);
    if clients.is_empty() {
        return Ok(None);
    }
    let settings = Arc::new(settings(config));
    let signer: Arc<dyn TokenSigner> = Arc::new(JoseSigner::new());
    let keys = Arc::new(signing_keys(store, signer.clone(), config));
    let report = keys.refresh().await.context("loading the OIDC signing keys")?;
    info!(created = report.created.len(), published = report.published, issuer = %settings.issuer, "OpenID Provider enabled");
    if !config.public_url.starts_with("https://") {
        warn!(issuer = %settings.issuer, "the OIDC issuer is not https: fine on loopback, not in production");
    }
    let parts = OidcParts {
        algorithms: algorithms(&config.oidc),
        token_requests_per_minute: config.oidc.token_requests_per_minute,
        random: Arc::new(OsRandom),
        clock: Arc::new(SystemClock),
        signer,
        clients,
        settings,
        gateway,
        cookies,
    };
    let http = OidcHttp::new(store, parts);
    Ok(Some((Arc::new(http), keys)))
}

/// Runs the key job forever: every [`KEY_REFRESH_EVERY`], rotate when due and re-read the keys.
pub async fn run_key_job(keys: Arc<SigningKeys>) {
    let mut tick = tokio::time::interval(KEY_REFRESH_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        match keys.refresh().await {
            Ok(report) if !report.created.is_empty() || report.deleted > 0 => {
                info!(created = ?report.created, deleted = report.deleted, "OIDC signing keys rotated");
            }
            Ok(_) => {}
            Err(err) => warn!(error = %err, "refreshing the OIDC signing keys failed; keeping the current ones"),
        }
    }
}
