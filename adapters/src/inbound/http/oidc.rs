//! The OpenID Provider's routes on local (and dev), docs/oidc.md:
//!
//! | route | spec |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | OpenID Connect Discovery 1.0 §4 |
//! | `GET /oidc/authorize` (HTML steps) | OIDC Core 1.0 §3.1.2, RFC 9207 |
//! | `POST /oidc/token` | RFC 6749 §3.2, §4.1.3, §6; OIDC Core §3.1.3 |
//! | `GET`/`POST /oidc/userinfo` | OIDC Core §5.3, RFC 6750 §2 |
//! | `GET /oidc/jwks` | RFC 7517 §5 |
//! | `POST /oidc/revoke` | RFC 7009 |
//! | `POST /oidc/introspect` | RFC 7662 |
//! | `GET`/`POST /oidc/end_session` | OIDC RP-Initiated Logout 1.0 |
//!
//! The OAuth endpoints answer errors in the RFC 6749 §5.2 shape (`error`, `error_description`),
//! not dingbridge's `code`/`message` body, because that is what OAuth client libraries parse.

use std::net::IpAddr;
use std::sync::Arc;

use application::ports::{
    Clock, CloudGateway, GrantStore, RandomSource, SessionStore, SigningAlgorithm, TokenSigner, UserRepository,
};
use application::usecases::local::Logout;
use application::usecases::oidc::{
    Authorize, AuthorizeOutcome, AuthorizeRequest, ClientAuthMethod, ClientCredentials, ClientRegistry, EndSession,
    EndSessionOutcome, EndSessionRequest, ExchangeToken, IntrospectToken, KNOWN_SCOPES, OAuthError, OidcSettings,
    ReadUserInfo, RevokeToken, TokenRequest, UserInfoError,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::Timestamp;
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo_oapi::{ToSchema, endpoint};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::limits::TokenLimiter;
use super::local::{CookieSettings, SESSION_COOKIE};
use super::middleware::Inject;
use super::pages;

/// Everything the provider's routes need.
pub struct OidcHttp {
    /// Issuer and lifetimes.
    pub settings: Arc<OidcSettings>,
    /// The registered clients.
    pub clients: Arc<ClientRegistry>,
    /// Signs and verifies; publishes the JWKS.
    pub signer: Arc<dyn TokenSigner>,
    /// The ID-token algorithms offered (`RS256` first).
    pub algorithms: Vec<SigningAlgorithm>,
    /// `authorize`.
    pub authorize: Authorize,
    /// `token`.
    pub token: ExchangeToken,
    /// `userinfo`.
    pub userinfo: ReadUserInfo,
    /// `introspect`.
    pub introspect: IntrospectToken,
    /// `revoke`.
    pub revoke: RevokeToken,
    /// `end_session`.
    pub end_session: EndSession,
    /// Token-endpoint budget per client and address.
    pub token_limiter: TokenLimiter,
    /// Session cookie attributes (to clear it at `end_session`).
    pub cookies: CookieSettings,
}

/// What [`OidcHttp::new`] wires the provider from.
pub struct OidcParts {
    /// Issuer and lifetimes.
    pub settings: Arc<OidcSettings>,
    /// The registered clients.
    pub clients: Arc<ClientRegistry>,
    /// Signs and verifies (its keys installed by the signing-key job).
    pub signer: Arc<dyn TokenSigner>,
    /// The ID-token algorithms offered.
    pub algorithms: Vec<SigningAlgorithm>,
    /// The cloud, for the membership re-check on refresh.
    pub gateway: Arc<dyn CloudGateway>,
    /// Randomness (codes, tokens, ids).
    pub random: Arc<dyn RandomSource>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Token requests per minute per client and address.
    pub token_requests_per_minute: u32,
    /// Session cookie attributes.
    pub cookies: CookieSettings,
}

impl OidcHttp {
    /// Every use case of the provider over one `store` (codes, grants, sessions, users).
    pub fn new<S>(store: &Arc<S>, parts: OidcParts) -> Self
    where
        S: GrantStore + SessionStore + UserRepository + 'static,
    {
        let OidcParts {
            settings,
            clients,
            signer,
            algorithms,
            gateway,
            random,
            clock,
            token_requests_per_minute,
            cookies,
        } = parts;
        Self {
            authorize: Authorize::new(
                clients.clone(),
                settings.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                random.clone(),
                clock.clone(),
            ),
            token: ExchangeToken::new(
                clients.clone(),
                settings.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                gateway,
                signer.clone(),
                random,
                clock.clone(),
            ),
            userinfo: ReadUserInfo::new(settings.clone(), store.clone(), store.clone(), signer.clone(), clock.clone()),
            introspect: IntrospectToken::new(
                clients.clone(),
                settings.clone(),
                store.clone(),
                signer.clone(),
                clock.clone(),
            ),
            revoke: RevokeToken::new(clients.clone(), settings.clone(), store.clone(), signer.clone(), clock.clone()),
            end_session: EndSession::new(
                clients.clone(),
                settings.clone(),
                signer.clone(),
                Logout::new(store.clone()).with_grants(store.clone(), clock),
            ),
            token_limiter: TokenLimiter::new(token_requests_per_minute),
            algorithms,
            signer,
            clients,
            settings,
            cookies,
        }
    }
}

fn state(depot: &Depot) -> Result<Arc<OidcHttp>, ApiError> {
    depot.get_typed::<Arc<OidcHttp>>().cloned().map_err(|_| ApiError::internal("oidc state missing from depot"))
}

/// The provider's routes.
pub fn routes(oidc: Arc<OidcHttp>) -> Router {
    Router::new().hoop(Inject(oidc)).push(Router::with_path(".well-known/openid-configuration").get(discovery)).push(
        Router::with_path("oidc")
            .push(Router::with_path("authorize").get(authorize))
            .push(Router::with_path("token").post(issue_token))
            .push(Router::with_path("userinfo").get(userinfo).post(userinfo))
            .push(Router::with_path("jwks").get(jwks))
            .push(Router::with_path("revoke").post(revoke))
            .push(Router::with_path("introspect").post(introspect))
            .push(Router::with_path("end_session").get(end_session).post(end_session)),
    )
}

/// A JSON object whose members the description gives (OpenAPI: any object).
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(value_type = Object))]
pub struct JsonObject(Map<String, Value>);

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The error code (`invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `server_error`, `temporarily_unavailable`).
    pub error: String,
    /// A sentence for the developer.
    pub error_description: String,
}

/// The token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    /// The access token: a JWT (RFC 9068, `typ: at+jwt`) signed RS256.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// The ID token (JWT), when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The next refresh token (opaque, single use), when `offline_access` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// The token request's form (`application/x-www-form-urlencoded`).
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of the form; the handler reads fields one by one
pub struct TokenForm {
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    /// The code (authorization_code).
    code: Option<String>,
    /// The authorization request's `redirect_uri` (authorization_code).
    redirect_uri: Option<String>,
    /// The PKCE verifier (authorization_code).
    code_verifier: Option<String>,
    /// The refresh token (refresh_token).
    refresh_token: Option<String>,
    /// A subset of the granted scopes (refresh_token).
    scope: Option<String>,
    /// The client id (`client_secret_post` and public clients).
    client_id: Option<String>,
    /// The client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// The revocation / introspection request's form.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(dead_code)] // the OpenAPI shape of the form
pub struct TokenOnlyForm {
    /// The token.
    token: String,
    /// `access_token` or `refresh_token` (a hint; both are tried).
    token_type_hint: Option<String>,
    /// The client id (`client_secret_post`).
    client_id: Option<String>,
    /// The client secret (`client_secret_post`).
    client_secret: Option<String>,
}

fn oauth_status(error: &str) -> StatusCode {
    match error {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn no_store(res: &mut Response) {
    let _ = res.add_header("cache-control", "no-store", true);
    let _ = res.add_header("pragma", "no-cache", true);
}

/// Answers `error` as JSON with the status RFC 6749 §5.2 gives it. A 401 always carries
/// `WWW-Authenticate: Basic` (required when the client tried HTTP Basic, allowed otherwise).
fn write_oauth_error(res: &mut Response, error: OAuthError) {
    let status = oauth_status(error.error);
    if status == StatusCode::UNAUTHORIZED {
        let _ = res.add_header("www-authenticate", "Basic realm=\"dingbridge\"", true);
    }
    no_store(res);
    res.status_code(status);
    res.render(Json(OAuthErrorBody { error: error.error.to_owned(), error_description: error.description }));
}

/// Whether the body is `application/x-www-form-urlencoded` (the only body the OAuth endpoints read).
fn is_form_body(req: &Request) -> bool {
    req.content_type().is_some_and(|m| m.type_() == "application" && m.subtype() == "x-www-form-urlencoded")
}

/// The request's form fields, refusing a parameter sent twice (RFC 6749 §3.2: "MUST NOT be
/// included more than once") and a body that is not `application/x-www-form-urlencoded`.
async fn form(req: &mut Request, names: &[&'static str]) -> Result<Map<String, Value>, OAuthError> {
    let is_form = is_form_body(req);
    if !is_form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let data = req
        .form_data()
        .await
        .map_err(|err| OAuthError::invalid_request(format!("the form body cannot be read: {err}")))?;
    let mut fields = Map::new();
    for name in names {
        let values = data.fields.get_vec(*name).map(Vec::as_slice).unwrap_or_default();
        if values.len() > 1 {
            return Err(OAuthError::invalid_request(format!("{name} is given more than once")));
        }
        if let Some(value) = values.first() {
            fields.insert((*name).to_owned(), Value::String(value.clone()));
        }
    }
    Ok(fields)
}

fn field(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Decodes one `application/x-www-form-urlencoded` component of a Basic credential (RFC 6749
/// §2.3.1: `+` is a space, `%XX` a byte).
fn form_decode(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&raw.replace('+', " ")).decode_utf8().ok().map(|s| s.into_owned())
}

/// Who the request says its client is: HTTP Basic (`client_secret_basic`), `client_id` +
/// `client_secret` in the form (`client_secret_post`), or `client_id` alone (a public client).
/// Using two methods at once is refused (RFC 6749 §2.3).
fn credentials(req: &Request, fields: &Map<String, Value>) -> Result<ClientCredentials, OAuthError> {
    let header = req.headers().get_all("authorization").iter().collect::<Vec<_>>();
    let basic = match header.as_slice() {
        [] => None,
        [one] => {
            let value = one.to_str().unwrap_or_default();
            match value.split_once(' ') {
                Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => Some(encoded.trim().to_owned()),
                _ => None,
            }
        }
        _ => {
            let error = OAuthError::invalid_request("Authorization is given more than once");
            return Err(error);
        }
    };
    let (form_id, form_secret) = (field(fields, "client_id"), field(fields, "client_secret"));
    if let Some(encoded) = basic {
        let bad = || OAuthError::invalid_client("the Basic credentials are malformed");
        if form_secret.is_some() {
            let error =
                OAuthError::invalid_request("use one client authentication method, not Basic and client_secret");
            return Err(error);
        }
        let decoded = STANDARD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let (id, secret) = (form_decode(id).ok_or_else(bad)?, form_decode(secret).ok_or_else(bad)?);
        if form_id.as_ref().is_some_and(|f| *f != id) {
            let error = OAuthError::invalid_request("client_id in the body differs from the Basic credentials");
            return Err(error);
        }
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(SecretString::from(secret)),
            method: ClientAuthMethod::ClientSecretBasic,
        });
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) => Ok(ClientCredentials {
            client_id: id,
            secret: Some(SecretString::from(secret)),
            method: ClientAuthMethod::ClientSecretPost,
        }),
        (Some(id), None) => Ok(ClientCredentials { client_id: id, secret: None, method: ClientAuthMethod::None }),
        (None, _) => {
            Err(OAuthError::invalid_client("no client authentication: use HTTP Basic or client_id in the form"))
        }
    }
}

fn peer(req: &Request) -> IpAddr {
    req.remote_addr().clone().into_std().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// The OpenID Provider metadata (OpenID Connect Discovery 1.0 §3; RFC 8414 §2 for the
/// revocation, introspection and RFC 9207 fields).
#[endpoint(
    tags("oidc"),
    responses(
        (status_code = 200, description = "The provider metadata (JSON object, OpenID Connect Discovery 1.0 §3)", body = JsonObject),
        (status_code = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
async fn discovery(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let oidc = state(depot)?;
    let issuer = &oidc.settings.issuer;
    let endpoint = |path: &str| format!("{issuer}{path}");
    let algorithms: Vec<&str> = oidc.algorithms.iter().map(|a| a.as_str()).collect();
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint("/oidc/authorize"),
        "token_endpoint": endpoint("/oidc/token"),
        "userinfo_endpoint": endpoint("/oidc/userinfo"),
        "jwks_uri": endpoint("/oidc/jwks"),
        "revocation_endpoint": endpoint("/oidc/revoke"),
        "introspection_endpoint": endpoint("/oidc/introspect"),
        "end_session_endpoint": endpoint("/oidc/end_session"),
        "scopes_supported": KNOWN_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp",
            "name", "preferred_username", "picture", "updated_at", "email", "email_verified",
            "phone_number", "phone_number_verified", "groups",
            "idp", "dingtalk_corp_id", "dingtalk_union_id", "dingtalk_userid",
            "feishu_corp_id", "feishu_union_id", "feishu_userid",
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    let _ = res.add_header("cache-control", "public, max-age=300", true);
    res.render(Json(document));
    Ok(())
}

/// The JWK Set: the public halves of every published signing key (RFC 7517 §5).
#[endpoint(
    tags("oidc"),
    responses(
        (status_code = 200, description = "`{\"keys\": [...]}`: RSA (and P-256) public keys with `kid`, `alg`, `use: sig`", body = JsonObject),
        (status_code = 500, description = "`internal`", body = super::error::ErrorBody),
    )
)]
async fn jwks(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let oidc = state(depot)?;
    let _ = res.add_header("cache-control", "public, max-age=300", true);
    res.render(Json(oidc.signer.jwks()));
    Ok(())
}

/// The query parameters of the authorization request.
fn authorize_request(req: &Request) -> Result<AuthorizeRequest, (String, bool)> {
    let queries = req.queries();
    let one = |name: &str| -> Result<Option<String>, (String, bool)> {
        match queries.get_vec(name).map(Vec::as_slice).unwrap_or_default() {
            [] => Ok(None),
            [value] => Ok(Some(value.clone())),
            _ => Err((name.to_owned(), matches!(name, "client_id" | "redirect_uri"))),
        }
    };
    let fresh_after = one(application::usecases::oidc::FRESH_AFTER_PARAM)?
        .map(|v| v.parse::<i64>().map(Timestamp::from_millis).map_err(|_| (FRESH_AFTER.to_owned(), false)))
        .transpose()?;
    Ok(AuthorizeRequest {
        client_id: one("client_id")?,
        redirect_uri: one("redirect_uri")?,
        response_type: one("response_type")?,
        response_mode: one("response_mode")?,
        scope: one("scope")?,
        state: one("state")?,
        nonce: one("nonce")?,
        code_challenge: one("code_challenge")?,
        code_challenge_method: one("code_challenge_method")?,
        prompt: one("prompt")?,
        max_age: one("max_age")?,
        login_hint: one("login_hint")?,
        request: one("request")?,
        request_uri: one("request_uri")?,
        fresh_after,
        repeated: None,
    })
}

const FRESH_AFTER: &str = application::usecases::oidc::FRESH_AFTER_PARAM;

fn redirect(res: &mut Response, location: &str) {
    match Redirect::with_status_code(StatusCode::FOUND, location) {
        Ok(r) => res.render(r),
        Err(err) => pages::render_error(res, &ApiError::internal(format!("bad redirect target: {err}"))),
    }
}

/// `uri`'s path and query with `name` set to `value` (replacing any value it had).
fn with_param(req: &Request, name: &str, value: &str) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in req.queries().iter().filter(|(k, _)| k.as_str() != name) {
        pairs.append_pair(k, v);
    }
    pairs.append_pair(name, value);
    format!("{}?{}", req.uri().path(), pairs.finish())
}

/// The authorization endpoint (OIDC Core 1.0 §3.1.2): signs the person in with DingTalk when
/// needed (through `/auth/dingtalk/login`, coming back here), then redirects (302) to the
/// client's registered `redirect_uri` with `code`, `state` and `iss` — or with `error`. A request
/// whose client or `redirect_uri` is not registered gets an HTML error page and never a redirect.
#[endpoint(
    tags("oidc"),
    parameters(
        ("client_id" = String, Query, description = "A client of `[[oidc.clients]]`"),
        ("redirect_uri" = String, Query, description = "One of the client's `redirect_uris`, exactly"),
        ("response_type" = String, Query, description = "`code`"),
        ("scope" = String, Query, description = "Space-separated; must include `openid`"),
        ("state" = Option<String>, Query, description = "Echoed on the redirect (≤ 1024 bytes)"),
        ("nonce" = Option<String>, Query, description = "Copied into the ID token (≤ 512 bytes)"),
        ("code_challenge" = Option<String>, Query, description = "PKCE S256 challenge (required for public clients)"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256`"),
        ("prompt" = Option<String>, Query, description = "`none`, `login`, `consent`, `select_account`"),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in that are acceptable"),
        ("login_hint" = Option<String>, Query, description = "`userid`, `unionId`, org email or `sub` expected"),
    ),
    responses(
        (status_code = 302, description = "To the client's `redirect_uri` (with `code` or `error`), or to the DingTalk sign-in"),
        (status_code = 400, description = "`invalid_request` / `unauthorized_client`: the client or `redirect_uri` is not registered (HTML error page)", content_type = "text/html", body = String),
        (status_code = 403, description = "`access_denied`: the person may not use this client (HTML error page)", content_type = "text/html", body = String),
        (status_code = 500, description = "`internal` (HTML error page)", content_type = "text/html", body = String),
    )
)]
async fn authorize(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(err) => return pages::render_error(res, &err),
    };
    let request = match authorize_request(req) {
        Ok(request) => request,
        Err((name, true)) => {
            let err =
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("{name} is given more than once"));
            return pages::render_error(res, &err);
        }
        Err((name, false)) => {
            // Still answered by redirect, once the client and redirect URI are known to be good.
            let mut request = authorize_request_lenient(req);
            request.repeated = Some(name);
            request
        }
    };
    let session = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    match oidc.authorize.execute(request, session.as_deref()).await {
        AuthorizeOutcome::Redirect(location) => redirect(res, &location),
        AuthorizeOutcome::SignIn { fresh_after } => {
            let back = match fresh_after {
                Some(after) => with_param(req, FRESH_AFTER, &after.as_millis().to_string()),
                None => req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into()),
            };
            if back.len() > domain::ReturnTo::MAX_LEN {
                // It could not be resumed after the sign-in (it would land on `/`): say so now.
                let message = format!(
                    "the authorization request is longer than {} bytes, so it cannot be resumed after signing in; \
                     shorten state or nonce",
                    domain::ReturnTo::MAX_LEN
                );
                return pages::render_error(res, &ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message));
            }
            let encoded: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
            redirect(res, &format!("/auth/dingtalk/login?return_to={encoded}"));
        }
        AuthorizeOutcome::Refused(err) => {
            pages::render_error(res, &ApiError::new(StatusCode::BAD_REQUEST, err.error, err.description));
        }
        AuthorizeOutcome::Forbidden(err) => {
            pages::render_error(res, &ApiError::new(StatusCode::FORBIDDEN, err.error, err.description));
        }
    }
}

/// The request with the first value of each parameter (for reporting a repeated one by redirect).
fn authorize_request_lenient(req: &Request) -> AuthorizeRequest {
    let one = |name: &str| req.queries().get(name).cloned();
    AuthorizeRequest {
        client_id: one("client_id"),
        redirect_uri: one("redirect_uri"),
        response_type: one("response_type"),
        state: one("state"),
        ..AuthorizeRequest::default()
    }
}

/// The token endpoint (RFC 6749 §3.2): `authorization_code` (with PKCE) and `refresh_token`
/// (rotating: each refresh token works once; presenting a used one revokes the whole grant).
/// Clients authenticate with HTTP Basic (`client_secret_basic`), `client_id`/`client_secret` in
/// the form (`client_secret_post`), or `client_id` alone (public clients). Responses carry
/// `Cache-Control: no-store`.
#[endpoint(
    tags("oidc"),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status_code = 200, description = "Tokens", body = TokenBody),
        (status_code = 400, description = "`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`, `unauthorized_client` (RFC 6749 §5.2)", body = OAuthErrorBody),
        (status_code = 401, description = "`invalid_client`; `WWW-Authenticate: Basic`", body = OAuthErrorBody),
        (status_code = 429, description = "`rate_limited`: too many token requests from this client and address; `Retry-After` gives the seconds", body = OAuthErrorBody),
        (status_code = 500, description = "`server_error`", body = OAuthErrorBody),
        (status_code = 503, description = "`temporarily_unavailable`: membership could not be re-checked with the organization", body = OAuthErrorBody),
    )
)]
async fn issue_token(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(_) => return write_oauth_error(res, OAuthError::server_error()),
    };
    let names =
        ["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id", "client_secret"];
    let fields = match form(req, &names).await {
        Ok(fields) => fields,
        Err(error) => return write_oauth_error(res, error),
    };
    let credentials = match credentials(req, &fields) {
        Ok(credentials) => credentials,
        Err(error) => return write_oauth_error(res, error),
    };
    if let Err(wait_secs) = oidc.token_limiter.check(&credentials.client_id, peer(req)) {
        let _ = res.add_header("retry-after", wait_secs.to_string(), true);
        let error = OAuthError::new("rate_limited", format!("too many token requests; try again in {wait_secs} s"));
        return write_oauth_error(res, error);
    }
    let request = TokenRequest {
        grant_type: field(&fields, "grant_type"),
        code: field(&fields, "code"),
        redirect_uri: field(&fields, "redirect_uri"),
        code_verifier: field(&fields, "code_verifier"),
        refresh_token: field(&fields, "refresh_token"),
        scope: field(&fields, "scope"),
    };
    match oidc.token.execute(&credentials, request).await {
        Ok(tokens) => {
            no_store(res);
            res.render(Json(TokenBody {
                access_token: tokens.access_token,
                token_type: tokens.token_type.to_owned(),
                expires_in: tokens.expires_in,
                id_token: tokens.id_token,
                refresh_token: tokens.refresh_token,
                scope: tokens.scope,
            }));
        }
        Err(error) => write_oauth_error(res, error),
    }
}

/// The access token of a userinfo request: `Authorization: Bearer` or (POST) the form's
/// `access_token` (RFC 6750 §2.1–§2.2); both at once is refused.
async fn bearer(req: &mut Request) -> Result<Option<String>, &'static str> {
    let header = req.header::<String>("authorization").and_then(|h| {
        h.split_once(' ').filter(|(s, _)| s.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim().to_owned())
    });
    let is_form = is_form_body(req);
    let in_form = if req.method() == salvo::http::Method::POST && is_form {
        req.form::<String>("access_token").await
    } else {
        None
    };
    match (header, in_form) {
        (Some(_), Some(_)) => Err("the access token is given twice (header and body)"),
        (header, form) => Ok(header.or(form)),
    }
}

/// The person's claims for an access token (OIDC Core 1.0 §5.3), by the token's scopes (see
/// docs/oidc.md "Claims"). `Authorization: Bearer <access token>` (or, on POST, the form's
/// `access_token`). 401 with `WWW-Authenticate: Bearer error="invalid_token"` for a missing,
/// expired or revoked token, or a person who left the organization.
#[endpoint(
    tags("oidc"),
    parameters(("Authorization" = Option<String>, Header, description = "`Bearer <access token>`")),
    responses(
        (status_code = 200, description = "Claims (JSON object): `sub` and those the scopes release", body = JsonObject),
        (status_code = 400, description = "`invalid_request`: the token is given twice", body = OAuthErrorBody),
        (status_code = 401, description = "`invalid_token`; `WWW-Authenticate: Bearer error=\"invalid_token\"`", body = OAuthErrorBody),
        (status_code = 403, description = "`insufficient_scope`: the token lacks `openid`", body = OAuthErrorBody),
        (status_code = 500, description = "`server_error`", body = OAuthErrorBody),
    )
)]
async fn userinfo(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(_) => return write_oauth_error(res, OAuthError::server_error()),
    };
    let token = match bearer(req).await {
        Ok(token) => token,
        Err(why) => {
            return write_oauth_error(res, OAuthError::invalid_request(why));
        }
    };
    no_store(res);
    match oidc.userinfo.execute(token.as_deref()).await {
        Ok(claims) => res.render(Json(Value::Object(claims))),
        Err(err) => {
            let (status, error, description) = match &err {
                UserInfoError::InvalidToken(why) => (StatusCode::UNAUTHORIZED, "invalid_token", (*why).to_owned()),
                UserInfoError::InsufficientScope => {
                    (StatusCode::FORBIDDEN, "insufficient_scope", "the access token was not granted openid".to_owned())
                }
                UserInfoError::Store(store) => {
                    tracing::error!(error = %store, "oidc: userinfo storage failed");
                    (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "try again".to_owned())
                }
            };
            if status != StatusCode::INTERNAL_SERVER_ERROR {
                let challenge =
                    format!("Bearer error=\"{error}\", error_description=\"{}\"", description.replace('"', "'"));
                let _ = res.add_header("www-authenticate", challenge, true);
            }
            res.status_code(status);
            res.render(Json(OAuthErrorBody { error: error.to_owned(), error_description: description }));
        }
    }
}

async fn token_only(req: &mut Request) -> Result<(ClientCredentials, Option<String>), OAuthError> {
    let fields = form(req, &["token", "token_type_hint", "client_id", "client_secret"]).await?;
    let credentials = credentials(req, &fields)?;
    Ok((credentials, field(&fields, "token")))
}

/// Revokes a token (RFC 7009): the grant behind a refresh or access token ends, so every token of
/// it stops working. An unknown or already revoked token also answers 200 (RFC 7009 §2.2).
#[endpoint(
    tags("oidc"),
    request_body(content = TokenOnlyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status_code = 200, description = "Revoked (or nothing to revoke); empty body"),
        (status_code = 400, description = "`invalid_request`", body = OAuthErrorBody),
        (status_code = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status_code = 500, description = "`server_error`", body = OAuthErrorBody),
    )
)]
async fn revoke(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(_) => return write_oauth_error(res, OAuthError::server_error()),
    };
    let (credentials, token) = match token_only(req).await {
        Ok(found) => found,
        Err(error) => return write_oauth_error(res, error),
    };
    match oidc.revoke.execute(&credentials, token.as_deref()).await {
        Ok(()) => {
            no_store(res);
            res.status_code(StatusCode::OK);
        }
        Err(error) => write_oauth_error(res, error),
    }
}

/// Describes a token to a resource server (RFC 7662 §2): `{"active": true, …}` with `scope`,
/// `client_id`, `sub`, `exp`, `iat`, `iss`, `token_type`, or `{"active": false}`. Only confidential
/// clients may ask; a refresh token is described only to its own client.
#[endpoint(
    tags("oidc"),
    request_body(content = TokenOnlyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status_code = 200, description = "The introspection answer (JSON object with `active`)", body = JsonObject),
        (status_code = 400, description = "`invalid_request`", body = OAuthErrorBody),
        (status_code = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status_code = 500, description = "`server_error`", body = OAuthErrorBody),
    )
)]
async fn introspect(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(_) => return write_oauth_error(res, OAuthError::server_error()),
    };
    let (credentials, token) = match token_only(req).await {
        Ok(found) => found,
        Err(error) => return write_oauth_error(res, error),
    };
    match oidc.introspect.execute(&credentials, token.as_deref()).await {
        Ok(answer) => {
            no_store(res);
            res.render(Json(Value::Object(answer.0)));
        }
        Err(error) => write_oauth_error(res, error),
    }
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the dingbridge session and
/// the grants issued under it, clears the session cookie, then redirects (302) to the client's
/// registered `post_logout_redirect_uri` (with `state`) or to `/`. An invalid `id_token_hint` or an
/// unregistered redirect URI gets an HTML error page and signs nobody out.
#[endpoint(
    tags("oidc"),
    parameters(
        ("id_token_hint" = Option<String>, Query, description = "An ID token this server issued (expired is fine)"),
        ("client_id" = Option<String>, Query, description = "The client (needed with `post_logout_redirect_uri` when there is no hint)"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "One of the client's `post_logout_redirect_uris`, exactly"),
        ("state" = Option<String>, Query, description = "Passed back on the redirect"),
    ),
    responses(
        (status_code = 302, description = "Signed out: to the `post_logout_redirect_uri`, or to `/`"),
        (status_code = 400, description = "`invalid_request` (HTML error page)", content_type = "text/html", body = String),
        (status_code = 500, description = "`internal` (HTML error page)", content_type = "text/html", body = String),
    )
)]
async fn end_session(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let oidc = match state(depot) {
        Ok(oidc) => oidc,
        Err(err) => return pages::render_error(res, &err),
    };
    let is_form = is_form_body(req);
    let mut request = EndSessionRequest::default();
    for (name, slot) in [
        ("id_token_hint", &mut request.id_token_hint),
        ("client_id", &mut request.client_id),
        ("post_logout_redirect_uri", &mut request.post_logout_redirect_uri),
        ("state", &mut request.state),
    ] {
        *slot = match req.query::<String>(name) {
            Some(value) => Some(value),
            None if req.method() == salvo::http::Method::POST && is_form => req.form::<String>(name).await,
            None => None,
        };
    }
    let session = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let outcome = oidc.end_session.execute(request, session.as_deref()).await;
    if !matches!(outcome, EndSessionOutcome::Refused(_)) {
        res.add_cookie(super::local::session_cookie(String::new(), 0, &oidc.cookies));
    }
    match outcome {
        EndSessionOutcome::Redirect(location) => redirect(res, &location),
        EndSessionOutcome::SignedOut => redirect(res, "/"),
        EndSessionOutcome::Refused(err) => {
            pages::render_error(res, &ApiError::new(StatusCode::BAD_REQUEST, err.error, err.description));
        }
    }
}
