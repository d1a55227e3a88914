//! The Feishu client: HTTP plumbing, the tenant token, sign-in and the directory.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use application::ports::{IdentityError, IdentityProvider, UpstreamError};
use async_trait::async_trait;
use domain::{AuthCode, CorpId, Identity, LoginState, MemberDetails, OpenId, PkceVerifier, UnionId, UserId};
use reqwest::RequestBuilder;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::config::{FeishuConfig, TokenEndpoint, join};
use super::errors::{TENANT_TOKEN_CODES, contact_refusal, token_refusal, upstream, user_info_refusal};
use super::wire::{
    ContactUserData, Envelope, TenantTokenRequest, TenantTokenResponse, UserInfo, UserTokenRequest, UserTokenResponse,
    non_empty,
};
use crate::outbound::token::{AppToken, FreshToken, TokenCache};

/// Feishu / Lark HTTP client for one self-built app: implements
/// [`application::ports::IdentityProvider`] (docs/feishu-api.md §A, §C.1).
///
/// Cloning is cheap (one `Arc`); clones share the tenant-token cache. Every call uses
/// [`FeishuConfig::timeout`]. The `tenant_access_token` (docs/feishu-api.md §B.1) is cached
/// until `token_refresh_margin_secs` before its expiry with at most one fetch in flight; a call
/// whose token Feishu refuses (99991663/99991664/99991665/99991671, §0.3) drops it, fetches a
/// new one and is made once more.
///
/// A tenant outside [`FeishuConfig::tenant_keys`] is `CorpNotServed`. Other failures map to
/// [`UpstreamError`]: network errors, timeouts, HTTP 5xx, 20050/20072 → `Unavailable`; HTTP 429
/// and the throttle codes of §0.4 → `Throttled`; a token refused twice → `TokenRejected`;
/// anything else → `Rejected { code, message }` with Feishu's code.
#[derive(Clone)]
pub struct FeishuClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) config: FeishuConfig,
    tokens: TokenCache,
}

impl fmt::Debug for FeishuClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// A body read off the wire: HTTP status and bytes.
pub(super) struct Answer {
    pub(super) status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// The JSON body as `T`. Errors: a non-JSON body (Feishu answers an unknown path with a
    /// `text/plain` 404, docs/feishu-api.md §0.2) is `Rejected` for a 4xx and `Unavailable`
    /// otherwise; malformed JSON is `Unavailable`.
    pub(super) fn json<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            let text: String = String::from_utf8_lossy(&self.body).chars().take(120).collect();
            let message = format!("{endpoint} answered HTTP {} with an unreadable body ({err}): {text}", self.status);
            if (400..500).contains(&self.status) {
                UpstreamError::Rejected { code: format!("http_{}", self.status), message }
            } else {
                UpstreamError::Unavailable(message)
            }
        })
    }
}

impl FeishuClient {
    /// A client for the app of `config` using `http` (share one `reqwest::Client` per process).
    /// Does no I/O; see [`FeishuConfig::validate`] for start-up checks.
    pub fn new(http: reqwest::Client, config: FeishuConfig) -> Self {
        let tokens = TokenCache::new(config.token_refresh_margin_secs)
            .with_shared(config.tokens.clone(), format!("feishu:{}", config.app_id));
        Self { inner: Arc::new(Inner { http, config, tokens }) }
    }

    fn serves(&self, tenant: &CorpId) -> Result<(), IdentityError> {
        if self.inner.config.tenant_keys.contains(tenant) {
            Ok(())
        } else {
            Err(IdentityError::CorpNotServed(tenant.clone()))
        }
    }

    /// A `contact/v3/users/:id` look-up (docs/feishu-api.md §C.1) with the tenant token.
    async fn contact_user(&self, id: &str, id_type: &str) -> Result<super::wire::ContactUser, IdentityError> {
        let inner = &self.inner;
        let url = join(&inner.config.open_base, &format!("/open-apis/contact/v3/users/{}", encode(id)));
        let answer = inner
            .with_tenant_token("contact/v3/users", |token| {
                inner
                    .http
                    .get(&url)
                    .query(&[("user_id_type", id_type), ("department_id_type", "open_department_id")])
                    .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            })
            .await?;
        let envelope: Envelope<ContactUserData> = answer.json("contact/v3/users")?;
        match envelope {
            Envelope { code: 0, data: Some(data), .. } => Ok(data.user),
            Envelope { code: 0, .. } => Err(IdentityError::Upstream(UpstreamError::Unavailable(
                "contact/v3/users answered code 0 without data.user".into(),
            ))),
            Envelope { code, msg, .. } => Err(contact_refusal(answer.status, code, &msg)),
        }
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

impl Inner {
    /// Sends one request with the configured timeout and reads the whole body. Logs the
    /// endpoint (never the URL's query or a header), the status and the duration.
    /// Errors: `Unavailable` for transport failures and timeouts.
    async fn send(&self, endpoint: &'static str, request: RequestBuilder) -> Result<Answer, UpstreamError> {
        let started = Instant::now();
        let result = async {
            let response = request.timeout(self.config.timeout).send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(Answer { status, body: body.to_vec() })
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis();
        match result {
            Ok(answer) => {
                tracing::debug!(endpoint, status = answer.status, elapsed_ms, "feishu call");
                Ok(answer)
            }
            Err(error) => {
                let what = if error.is_timeout() {
                    format!("timed out after {} ms", self.config.timeout.as_millis())
                } else {
                    error.without_url().to_string()
                };
                tracing::warn!(endpoint, elapsed_ms, error = %what, "feishu call failed");
                Err(UpstreamError::Unavailable(format!("{endpoint}: {what}")))
            }
        }
    }

    /// Fetches a tenant token (docs/feishu-api.md §B.1). Errors: 10003 / 10014 (bad
    /// credentials, HTTP 200) → `Rejected`; others as [`upstream`].
    async fn fetch_tenant_token(&self) -> Result<FreshToken, UpstreamError> {
        const ENDPOINT: &str = "auth/v3/tenant_access_token/internal";
        let url = join(&self.config.open_base, "/open-apis/auth/v3/tenant_access_token/internal");
        let body =
            TenantTokenRequest { app_id: &self.config.app_id, app_secret: self.config.app_secret.expose_secret() };
        let answer = self.send(ENDPOINT, self.http.post(url).json(&body)).await?;
        let token: TenantTokenResponse = answer.json(ENDPOINT)?;
        match token {
            TenantTokenResponse { code: 0, tenant_access_token: Some(value), expire, .. } if !value.is_empty() => {
                Ok(FreshToken { value: SecretString::from(value), expire_in: expire })
            }
            TenantTokenResponse { code: 0, .. } => {
                Err(UpstreamError::Unavailable(format!("{ENDPOINT} answered code 0 without a token")))
            }
            TenantTokenResponse { code, msg, .. } => Err(upstream(answer.status, code, &msg)),
        }
    }

    /// Sends the request `build` makes with the cached tenant token; when Feishu refuses the
    /// token (docs/feishu-api.md §0.3), once more with a fresh one.
    pub(super) async fn with_tenant_token<F>(&self, endpoint: &'static str, build: F) -> Result<Answer, UpstreamError>
    where
        F: Fn(&SecretString) -> RequestBuilder + Send + Sync,
    {
        let token: AppToken = self.tokens.get(|| self.fetch_tenant_token()).await?;
        let answer = self.send(endpoint, build(&token.value)).await?;
        if !refused_token(&answer) {
            return Ok(answer);
        }
        tracing::info!(endpoint, "feishu refused the tenant token; fetching a new one");
        let token = self.tokens.renew(token.generation, || self.fetch_tenant_token()).await?;
        self.send(endpoint, build(&token.value)).await
    }
}

/// Whether an answer says the tenant token was refused.
fn refused_token(answer: &Answer) -> bool {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_slice::<Code>(&answer.body).is_ok_and(|c| TENANT_TOKEN_CODES.contains(&c.code))
}

fn parse_id<T>(
    field: &str,
    raw: Option<String>,
    parse: fn(&str) -> Result<T, domain::ValidationError>,
) -> Result<T, IdentityError> {
    let raw = non_empty(raw).ok_or_else(|| {
        IdentityError::Upstream(UpstreamError::Rejected {
            code: "missing_field".into(),
            message: format!("Feishu's answer has no {field} (is the app's scope for it enabled?)"),
        })
    })?;
    parse(&raw).map_err(|e| {
        IdentityError::Upstream(UpstreamError::Unavailable(format!("Feishu's {field} is not usable: {}", e.message)))
    })
}

#[async_trait]
impl IdentityProvider for FeishuClient {
    /// `{accounts_base}/open-apis/authen/v1/authorize?client_id=<app_id>&response_type=code&redirect_uri=..&state=..&code_challenge=..&code_challenge_method=S256[&scope=..]`
    /// (docs/feishu-api.md §A.1), form-URL-encoded.
    fn authorize_url(&self, state: &LoginState, redirect_uri: &str, code_challenge: &str) -> String {
        let config = &self.inner.config;
        let base = join(&config.accounts_base, "/open-apis/authen/v1/authorize");
        let mut params = vec![
            ("client_id", config.app_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("state", state.expose()),
            ("code_challenge", code_challenge),
            ("code_challenge_method", "S256"),
        ];
        if !config.scope.trim().is_empty() {
            params.push(("scope", config.scope.as_str()));
        }
        let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        format!("{base}?{query}")
    }

    /// `POST …/authen/v2/oauth/token` (or `…/oauth/v3/token`) with the code and the PKCE
    /// verifier (docs/feishu-api.md §A.3), then `GET /open-apis/authen/v1/user_info` with the
    /// user token (§A.5); the user token is used once and dropped. The identity's `corp_id` is
    /// the person's `tenant_key`, its `union_id` Feishu's `union_id`; `email` and `mobile` are
    /// admin-entered claims (§A.5), never keys. Errors: `InvalidCode` for a refused code
    /// (20003/20004/20065/20049/20071/20024); `NotMember` when the person may not use the app
    /// (20008/20009/20010/20066) or is resigned, frozen or not registered (20021–20023);
    /// `Upstream` otherwise.
    async fn exchange_code(
        &self,
        code: &AuthCode,
        code_verifier: Option<PkceVerifier>,
    ) -> Result<Identity, IdentityError> {
        let inner = &self.inner;
        let config = &inner.config;
        let (endpoint, url) = match config.token_endpoint {
            TokenEndpoint::V2 => ("authen/v2/oauth/token", join(&config.open_base, "/open-apis/authen/v2/oauth/token")),
            TokenEndpoint::V3 => ("oauth/v3/token", join(&config.accounts_base, "/oauth/v3/token")),
        };
        let body = UserTokenRequest {
            grant_type: "authorization_code",
            client_id: &config.app_id,
            client_secret: config.app_secret.expose_secret(),
            code: code.expose(),
            code_verifier: code_verifier.as_ref().map(PkceVerifier::expose),
        };
        let answer = inner.send(endpoint, inner.http.post(url).json(&body)).await?;
        let token: UserTokenResponse = answer.json(endpoint)?;
        let user_token = match token {
            UserTokenResponse { code: 0, access_token: Some(token), .. } if !token.is_empty() => {
                SecretString::from(token)
            }
            UserTokenResponse { code, error, error_description, .. } => {
                let message = [error, error_description].into_iter().flatten().collect::<Vec<_>>().join(": ");
                return Err(token_refusal(answer.status, code, &message));
            }
        };
        const USER_INFO: &str = "authen/v1/user_info";
        let url = join(&config.open_base, "/open-apis/authen/v1/user_info");
        let request = inner
            .http
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {}", user_token.expose_secret()))
            .header(CONTENT_TYPE, "application/json; charset=utf-8");
        let answer = inner.send(USER_INFO, request).await?;
        let info = match answer.json::<Envelope<UserInfo>>(USER_INFO)? {
            Envelope { code: 0, data: Some(info), .. } => info,
            Envelope { code: 0, .. } => {
                return Err(UpstreamError::Unavailable(format!("{USER_INFO} answered code 0 without data")).into());
            }
            Envelope { code, msg, .. } => return Err(user_info_refusal(answer.status, code, &msg)),
        };
        Ok(Identity {
            union_id: parse_id("union_id", info.union_id, UnionId::parse)?,
            open_id: non_empty(info.open_id).map(|raw| OpenId::parse(&raw)).transpose().map_err(|e| {
                IdentityError::Upstream(UpstreamError::Unavailable(format!("Feishu's open_id: {}", e.message)))
            })?,
            corp_id: Some(parse_id("tenant_key", info.tenant_key, CorpId::parse)?),
            nick: info.name,
            avatar_url: non_empty(info.avatar_url),
            email: non_empty(info.email),
            mobile: non_empty(info.mobile),
        })
    }

    /// The person's `user_id` in the tenant: `contact/v3/users/:union_id?user_id_type=union_id`
    /// (docs/feishu-api.md §C.1). Errors: `CorpNotServed` for a tenant outside
    /// `tenant_keys`; `NotMember` for 41050 (outside the app's contact scope) and the unknown-id
    /// codes; `Upstream(Rejected{missing_field})` when the app lacks the scope that reveals
    /// `user_id` (`contact:user.employee_id:readonly`).
    async fn find_userid(&self, corp_id: &CorpId, union_id: &UnionId) -> Result<UserId, IdentityError> {
        self.serves(corp_id)?;
        let user = self.contact_user(union_id.as_str(), "union_id").await?;
        parse_id("user.user_id", user.user_id, UserId::parse)
    }

    /// `contact/v3/users/:user_id?user_id_type=user_id` (docs/feishu-api.md §C.1): name, avatar
    /// (240 px), job title, enterprise and personal email, mobile; `active` = activated and not
    /// frozen, resigned, exited or unjoined. Feishu's department ids are strings (`od-…`) that
    /// the member profile's numeric department list cannot hold, so none are kept. Errors as
    /// [`IdentityProvider::find_userid`].
    async fn get_member(&self, corp_id: &CorpId, userid: &UserId) -> Result<MemberDetails, IdentityError> {
        self.serves(corp_id)?;
        let user = self.contact_user(userid.as_str(), "user_id").await?;
        let active = user.status.as_ref().is_some_and(super::wire::UserStatus::active);
        Ok(MemberDetails {
            userid: userid.clone(),
            union_id: parse_id("user.union_id", user.union_id, UnionId::parse)?,
            name: user.name,
            avatar_url: user.avatar.and_then(|a| non_empty(a.avatar_240).or(non_empty(a.avatar_origin))),
            title: non_empty(user.job_title),
            org_email: non_empty(user.enterprise_email),
            email: non_empty(user.email),
            mobile: non_empty(user.mobile),
            dept_ids: Vec::new(),
            active,
        })
    }
}
