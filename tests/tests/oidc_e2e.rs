//! End-to-end tests of the OpenID Provider (docs/oidc.md) with a real relying-party library,
//! `openidconnect` 4, whose HTTP client is our reqwest: discovery, the authorization code flow
//! with PKCE and nonce through dingbridge's DingTalk sign-in (the emulator's consent), the ID
//! token verified by the library against the JWKS, userinfo, rotating refresh tokens with reuse
//! detection, revocation, introspection and RP-initiated logout — plus the negative cases with
//! the RFC error codes, and signing keys that survive a restart and a rotation.
//!
//! A dev-mode stack (SQLite) and the emulator run in process on 127.0.0.1:0. Nothing listens on
//! the redirect URIs: the browser stops following at them and reads `code`, `state` and `iss`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken, CoreProviderMetadata, CoreRevocableToken,
    CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IntrospectionUrl, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl,
    RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardErrorResponse, TokenIntrospectionResponse,
    TokenResponse, UserInfoError,
};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tests::emulator::ConsentMode;
use tests::stack::{
    OIDC_CONFIDENTIAL_ID, OIDC_CONFIDENTIAL_LOGGED_OUT, OIDC_CONFIDENTIAL_REDIRECT, OIDC_CONFIDENTIAL_SECRET,
    OIDC_PUBLIC_ID, OIDC_PUBLIC_REDIRECT, SERVICE_TOKEN, Stack, StackOptions, oidc_section,
};

// ---------------------------------------------------------------------------------------------
// The relying party's HTTP client: openidconnect's `AsyncHttpClient` over our reqwest 0.13.

/// A reqwest client that never follows redirects (as openidconnect requires, against SSRF).
struct RpHttp(reqwest::Client);

#[derive(Debug)]
struct RpHttpError(String);

impl std::fmt::Display for RpHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RpHttpError {}

impl<'c> AsyncHttpClient<'c> for RpHttp {
    type Error = RpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, RpHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let res = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| RpHttpError(e.to_string()))?;
            let mut reply = openidconnect::http::Response::builder().status(res.status());
            for (name, value) in res.headers() {
                reply = reply.header(name, value);
            }
            let body = res.bytes().await.map_err(|e| RpHttpError(e.to_string()))?;
            reply.body(body.to_vec()).map_err(|e| RpHttpError(e.to_string()))
        })
    }
}

fn rp_http() -> RpHttp {
    RpHttp(reqwest::Client::builder().redirect(Policy::none()).build().unwrap())
}

/// The client as `from_provider_metadata` makes it, with revocation and introspection set.
type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The discovered metadata (the library checks that `issuer` equals the URL it asked) and the
/// raw document (for the endpoints the core metadata type does not carry).
async fn discover(stack: &Stack) -> (CoreProviderMetadata, Value) {
    let issuer = IssuerUrl::new(stack.base_url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http()).await.expect("discovery");
    let raw = reqwest::get(format!("{}/.well-known/openid-configuration", stack.base_url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    (metadata, raw)
}

fn client(metadata: CoreProviderMetadata, raw: &Value, id: &str, secret: Option<&str>, redirect: &str) -> Rp {
    let url = |name: &str| raw[name].as_str().unwrap_or_else(|| panic!("{name} in discovery")).to_owned();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap())
    .set_revocation_url(RevocationUrl::new(url("revocation_endpoint")).unwrap())
    .set_introspection_url(IntrospectionUrl::new(url("introspection_endpoint")).unwrap())
}

async fn confidential(stack: &Stack) -> Rp {
    let (metadata, raw) = discover(stack).await;
    client(metadata, &raw, OIDC_CONFIDENTIAL_ID, Some(OIDC_CONFIDENTIAL_SECRET), OIDC_CONFIDENTIAL_REDIRECT)
}

async fn public(stack: &Stack) -> Rp {
    let (metadata, raw) = discover(stack).await;
    client(metadata, &raw, OIDC_PUBLIC_ID, None, OIDC_PUBLIC_REDIRECT)
}

// ---------------------------------------------------------------------------------------------
// The browser.

/// A browser that keeps cookies and does not follow redirects by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

fn approve(stack: &Stack, who: &str) {
    stack.emulator.state().set_consent(ConsentMode::Approve { who: who.into() });
}

/// Follows redirects from `start` (through dingbridge's sign-in and the emulator's consent)
/// until one points at `redirect_uri`, which is not requested; returns that URL.
async fn follow_to(browser: &reqwest::Client, start: &str, redirect_uri: &str) -> reqwest::Url {
    let mut url = reqwest::Url::parse(start).unwrap();
    let mut hops = Vec::new();
    for _ in 0..12 {
        if url.as_str().split('?').next() == Some(redirect_uri) {
            return url;
        }
        hops.push(url.to_string());
        let res = browser.get(url.clone()).send().await.unwrap();
        let status = res.status();
        let Some(location) = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned()) else {
            panic!("{url} answered {status} without a redirect: {}\nhops: {hops:#?}", res.text().await.unwrap());
        };
        assert_eq!(status, StatusCode::FOUND, "{url}");
        url = url.join(&location).unwrap();
    }
    panic!("no redirect to {redirect_uri} within 12 hops: {hops:#?}");
}

fn param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What an authorization request started.
struct Started {
    url: reqwest::Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

/// An authorization URL with PKCE S256, a nonce and `scopes` (besides `openid`).
fn authorize_url(rp: &Rp, scopes: &[&str]) -> Started {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    Started { url, state, nonce, verifier }
}

/// Runs the browser part of the code flow; returns the code after checking `state` and `iss`.
async fn code_for(stack: &Stack, browser: &reqwest::Client, started: &Started, redirect_uri: &str) -> String {
    let back = follow_to(browser, started.url.as_str(), redirect_uri).await;
    assert_eq!(param(&back, "state").as_deref(), Some(started.state.secret().as_str()), "state comes back: {back}");
    assert_eq!(param(&back, "iss").as_deref(), Some(stack.base_url.as_str()), "RFC 9207 iss: {back}");
    assert_eq!(param(&back, "error"), None, "{back}");
    param(&back, "code").unwrap_or_else(|| panic!("no code on {back}"))
}

type TokenError = RequestTokenError<RpHttpError, StandardErrorResponse<CoreErrorResponseType>>;

/// The RFC 6749 §5.2 `error` of a failed token request.
fn oauth_error(err: &TokenError) -> String {
    match err {
        RequestTokenError::ServerResponse(response) => response.error().as_ref().to_owned(),
        other => panic!("not an OAuth error response: {other:?}"),
    }
}

async fn exchange(rp: &Rp, code: &str, verifier: PkceCodeVerifier) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
}

async fn refresh(rp: &Rp, token: &RefreshToken) -> Result<CoreTokenResponse, TokenError> {
    rp.exchange_refresh_token(token).unwrap().request_async(&rp_http()).await
}

/// Verifies the ID token as a relying party must (OIDC Core §3.1.3.7: signature against the
/// JWKS, `iss`, `aud`, `exp`, `nonce`; §3.1.3.8 `at_hash`); returns its `sub`.
fn verify_id_token(rp: &Rp, tokens: &CoreTokenResponse, nonce: &Nonce) -> String {
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce).expect("the ID token verifies");
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash matches the access token");
    claims.subject().as_str().to_owned()
}

/// The `kid` of a JWT's header.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(stack: &Stack) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{}/oidc/jwks", stack.base_url)).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// The local user id of the DingTalk `userid` (the service API).
async fn user_id_of(stack: &Stack, userid: &str) -> String {
    let users: Vec<Value> = reqwest::Client::new()
        .get(format!("{}/api/users", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = users.iter().find(|u| u["userid"] == userid).unwrap_or_else(|| panic!("{userid} in {users:?}"));
    user["id"].as_str().unwrap().to_owned()
}

/// `POST /oidc/token` by hand, for the status code and body the library does not expose.
async fn raw_token(stack: &Stack, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/oidc/token", stack.base_url)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let res = request.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn userinfo_status(stack: &Stack, access_token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{}/oidc/userinfo", stack.base_url))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn raw_doc_revocation(stack: &Stack) -> String {
    discover(stack).await.1["revocation_endpoint"].as_str().unwrap().to_owned()
}

async fn start(options: StackOptions) -> Stack {
    Stack::start(options).await.expect("stack starts")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn discovery_has_every_required_field_and_the_exact_issuer() {
    let stack = start(StackOptions::with_oidc()).await;
    let (_, doc) = discover(&stack).await; // the library's own checks passed
    assert_eq!(doc["issuer"], stack.base_url.as_str(), "issuer is the base URL exactly (no trailing slash)");
    // OpenID Connect Discovery 1.0 §3, REQUIRED (userinfo is RECOMMENDED; jwks_uri REQUIRED).
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(doc.get(field).is_some_and(|v| !v.is_null()), "{field} missing: {doc}");
    }
    for field in ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"] {
        assert!(doc[field].as_str().unwrap().starts_with(&stack.base_url), "{field}: {doc}");
    }
    assert!(doc["response_types_supported"].as_array().unwrap().contains(&json!("code")));
    assert!(doc["subject_types_supported"].as_array().unwrap().contains(&json!("public")));
    assert!(doc["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&json!("RS256")));
    assert!(doc["code_challenge_methods_supported"].as_array().unwrap().contains(&json!("S256")));
    assert!(!jwks_kids(&stack).await.is_empty(), "the JWKS has a key");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_flow_with_a_real_client_library_from_sign_in_to_logout() {
    let stack = start(StackOptions::with_oidc()).await;
    approve(&stack, "manager4220");
    let rp = confidential(&stack).await;
    let browser = browser();

    // Not signed in: authorize sends the browser to the DingTalk sign-in, which comes back here.
    let started = authorize_url(&rp, &["profile", "email", "groups", "offline_access"]);
    let first = browser.get(started.url.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    let to_sign_in = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(to_sign_in.starts_with("/auth/dingtalk/login?return_to=%2Foidc%2Fauthorize"), "{to_sign_in}");
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;

    // Token exchange (client_secret_basic) and the ID token, verified by the library.
    let tokens = exchange(&rp, &code, started.verifier).await.expect("code exchange");
    let sub = verify_id_token(&rp, &tokens, &started.nonce);
    assert_eq!(sub, user_id_of(&stack, "manager4220").await, "sub is the local user id");
    let scopes: Vec<String> = tokens.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    for scope in ["openid", "profile", "email", "groups", "offline_access"] {
        assert!(scopes.contains(&scope.to_owned()), "{scope} granted: {scopes:?}");
    }
    let claims = tokens.id_token().unwrap().claims(&rp.id_token_verifier(), &started.nonce).unwrap();
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("manager4220"));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("zhangsan@corp.example"));

    // Userinfo through the library (the sub must match the ID token's), then raw for the
    // DingTalk claims.
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&rp_http())
        .await
        .expect("userinfo");
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("manager4220"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("zhangsan@corp.example"));
    assert_eq!(info.email_verified(), Some(true));
    assert_eq!(info.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("张三"));
    let raw: Value = reqwest::Client::new()
        .post(format!("{}/oidc/userinfo", stack.base_url))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["dingtalk_corp_id"], "dingemucorp0001", "{raw}");
    assert_eq!(raw["dingtalk_userid"], "manager4220", "{raw}");
    assert_eq!(raw["idp"], "dingtalk", "{raw}");
    assert_eq!(raw["dingtalk_union_id"], "z21HjQliSzpw0YWCiiSWeV8giEiE", "{raw}");
    let groups: Vec<String> = raw["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().into()).collect();
    assert_eq!(groups, ["1", "2"], "{raw}");

    // Refresh (offline_access), rotation, reuse detection.
    let rt1 = tokens.refresh_token().expect("a refresh token with offline_access").clone();
    let refreshed = refresh(&rp, &rt1).await.expect("refresh");
    let rt2 = refreshed.refresh_token().expect("a rotated refresh token").clone();
    assert_ne!(rt1.secret(), rt2.secret());
    assert_eq!(userinfo_status(&stack, refreshed.access_token().secret()).await, StatusCode::OK);
    let reused = refresh(&rp, &rt1).await.expect_err("a used refresh token is refused");
    assert_eq!(oauth_error(&reused), "invalid_grant");
    let family = refresh(&rp, &rt2).await.expect_err("reuse revoked the family: the newest one fails too");
    assert_eq!(oauth_error(&family), "invalid_grant");
    assert_eq!(userinfo_status(&stack, refreshed.access_token().secret()).await, StatusCode::UNAUTHORIZED);

    // Signed in already: a new authorization goes straight back with a code.
    let started = authorize_url(&rp, &["profile", "offline_access"]);
    let res = browser.get(started.url.clone()).send().await.unwrap();
    assert!(res.headers()["location"].to_str().unwrap().starts_with(OIDC_CONFIDENTIAL_REDIRECT), "no sign-in again");
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let tokens = exchange(&rp, &code, started.verifier).await.expect("second exchange");
    let id_token = tokens.id_token().unwrap().clone();
    verify_id_token(&rp, &tokens, &started.nonce);

    // Introspection (RFC 7662), revocation (RFC 7009), introspection again.
    let access = tokens.access_token().clone();
    let live = rp.introspect(&access).request_async(&rp_http()).await.expect("introspect");
    assert!(live.active(), "a fresh access token is active");
    assert_eq!(live.client_id().map(|c| c.as_str()), Some(OIDC_CONFIDENTIAL_ID));
    let refresh_token = tokens.refresh_token().unwrap().clone();
    // The library refuses a revocation endpoint that is not https (RFC 7009 §2 requires TLS), and
    // this issuer is plain loopback http: the RFC 7009 request by hand, as the library would send it.
    let not_https = rp.revoke_token(CoreRevocableToken::from(refresh_token.clone())).err();
    assert!(matches!(not_https, Some(openidconnect::ConfigurationError::InsecureUrl(_))), "{not_https:?}");
    let revoked = reqwest::Client::new()
        .post(raw_doc_revocation(&stack).await)
        .basic_auth(OIDC_CONFIDENTIAL_ID, Some(OIDC_CONFIDENTIAL_SECRET))
        .form(&[("token", refresh_token.secret().as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK, "RFC 7009 §2.2: 200");
    let dead = rp.introspect(&access).request_async(&rp_http()).await.expect("introspect");
    assert!(!dead.active(), "revoking the refresh token ended the grant and its access token");
    let dead = rp.introspect(&AccessToken::new(refresh_token.secret().clone())).request_async(&rp_http()).await;
    assert!(!dead.expect("introspect").active(), "the revoked refresh token is inactive");
    assert_eq!(oauth_error(&refresh(&rp, &refresh_token).await.unwrap_err()), "invalid_grant");
    assert_eq!(userinfo_status(&stack, access.secret()).await, StatusCode::UNAUTHORIZED);

    // RP-initiated logout with id_token_hint and a registered post_logout_redirect_uri.
    let (_, raw_doc) = discover(&stack).await;
    let end_session = EndSessionUrl::new(raw_doc["end_session_endpoint"].as_str().unwrap().to_owned()).unwrap();
    let logout = LogoutRequest::from(end_session)
        .set_id_token_hint(&id_token)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(OIDC_CONFIDENTIAL_LOGGED_OUT.to_owned()).unwrap())
        .set_state(CsrfToken::new("bye-42".to_owned()))
        .http_get_url();
    let res = browser.get(logout.as_str()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.as_str().split('?').next(), Some(OIDC_CONFIDENTIAL_LOGGED_OUT));
    assert_eq!(param(&back, "state").as_deref(), Some("bye-42"));
    let me = browser.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the dingbridge session ended");
    let again = browser.get(authorize_url(&rp, &[]).url).send().await.unwrap();
    assert!(again.headers()["location"].to_str().unwrap().starts_with("/auth/dingtalk/login"), "sign-in again");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_client_uses_pkce_and_the_loopback_redirect() {
    let stack = start(StackOptions::with_oidc()).await;
    approve(&stack, "lisi0002");
    let rp = public(&stack).await;
    let browser = browser();
    let started = authorize_url(&rp, &["profile"]);
    let code = code_for(&stack, &browser, &started, OIDC_PUBLIC_REDIRECT).await;
    let tokens = exchange(&rp, &code, started.verifier).await.expect("public exchange with PKCE");
    assert_eq!(verify_id_token(&rp, &tokens, &started.nonce), user_id_of(&stack, "lisi0002").await);
    assert!(tokens.refresh_token().is_none(), "no offline_access, no refresh token");

    // Another loopback port is the same redirect URI for a public client (RFC 8252 §7.3).
    let other_port = OIDC_PUBLIC_REDIRECT.replace("127.0.0.1", "127.0.0.1:53123");
    let rp_port = public(&stack).await.set_redirect_uri(RedirectUrl::new(other_port.clone()).unwrap());
    let started = authorize_url(&rp_port, &[]);
    let code = code_for(&stack, &browser, &started, &other_port).await;
    exchange(&rp_port, &code, started.verifier).await.expect("exchange on another loopback port");

    // Missing PKCE: the error goes back to the client (redirect), error=invalid_request.
    let mut url = started.url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    let back = follow_to(&browser, url.as_str(), &other_port).await;
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some(started.state.secret().as_str()), "{back}");
    assert_eq!(param(&back, "code"), None);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_negative_cases_answer_the_rfc_error_codes() {
    let stack = start(StackOptions::with_oidc()).await;
    approve(&stack, "manager4220");
    let rp = confidential(&stack).await;
    let browser = browser();

    // Sign in once (so the refusals below are not about the session).
    let started = authorize_url(&rp, &["offline_access"]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let verifier_again = PkceCodeVerifier::new(started.verifier.secret().clone());
    let first = exchange(&rp, &code, started.verifier).await.expect("first use of the code");

    // Code reuse: invalid_grant, and the tokens of the first use are revoked (RFC 6749 §4.1.2).
    let reuse = exchange(&rp, &code, verifier_again).await.expect_err("a code works once");
    assert_eq!(oauth_error(&reuse), "invalid_grant");
    let userinfo: Result<CoreUserInfoClaims, _> =
        rp.user_info(first.access_token().clone(), None).unwrap().request_async(&rp_http()).await;
    match userinfo {
        Err(UserInfoError::Response(status, _, _)) => assert_eq!(status.as_u16(), 401),
        other => panic!("userinfo with a revoked access token: {other:?}"),
    }
    let family = refresh(&rp, first.refresh_token().unwrap()).await.expect_err("its refresh token is revoked too");
    assert_eq!(oauth_error(&family), "invalid_grant");

    // Wrong redirect_uri: an error page, never a redirect.
    let mut wrong = authorize_url(&rp, &[]).url;
    let pairs: Vec<(String, String)> =
        wrong
            .query_pairs()
            .map(|(k, v)| {
                if k == "redirect_uri" {
                    (k.into(), "http://127.0.0.1:9/elsewhere".into())
                } else {
                    (k.into(), v.into())
                }
            })
            .collect();
    wrong.query_pairs_mut().clear().extend_pairs(pairs);
    let res = browser.get(wrong).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none(), "no redirect to an unregistered URI");
    let page = res.text().await.unwrap();
    assert!(page.contains("redirect_uri"), "{page}");

    // PKCE mismatch.
    let started = authorize_url(&rp, &[]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let (_, other_verifier) = PkceCodeChallenge::new_random_sha256();
    let mismatch = exchange(&rp, &code, other_verifier).await.expect_err("PKCE mismatch");
    assert_eq!(oauth_error(&mismatch), "invalid_grant");

    // Wrong secret, unknown client: invalid_client with 401 and a Basic challenge.
    let started = authorize_url(&rp, &[]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", OIDC_CONFIDENTIAL_REDIRECT),
        ("code_verifier", started.verifier.secret().as_str()),
    ];
    for basic in [(OIDC_CONFIDENTIAL_ID, "not-the-secret-0123456789"), ("no-such-client", OIDC_CONFIDENTIAL_SECRET)] {
        let (status, body) = raw_token(&stack, Some(basic), &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{basic:?}: {body}");
        assert_eq!(body["error"], "invalid_client", "{basic:?}: {body}");
    }
    let (metadata, raw) = discover(&stack).await;
    let wrong_secret =
        client(metadata, &raw, OIDC_CONFIDENTIAL_ID, Some("wrong-secret-0123456789"), OIDC_CONFIDENTIAL_REDIRECT);
    let err = exchange(&wrong_secret, &code, PkceCodeVerifier::new(started.verifier.secret().clone())).await;
    assert_eq!(oauth_error(&err.expect_err("wrong secret")), "invalid_client", "the library sees invalid_client");
    // The code was not spent by the failed client authentication.
    exchange(&rp, &code, started.verifier).await.expect("the right client still redeems the code");
    stack.stop_and_clean().await;
}

/// Short lifetimes for the tests that must wait them out.
fn short_lived() -> StackOptions {
    let mut oidc = oidc_section();
    oidc.code_ttl_secs = 1;
    oidc.membership_recheck_secs = 1;
    StackOptions { oidc: Some(oidc), ..StackOptions::ephemeral() }
}

/// Waits until `since + ttl` has passed, and no longer (plus 100 ms: the stores compare
/// millisecond timestamps, and `since` is taken after the server started the lifetime).
async fn outlive(since: Instant, ttl: Duration) {
    let until = since + ttl + Duration::from_millis(100);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_and_a_member_who_left_get_invalid_grant() {
    let stack = start(short_lived()).await;
    approve(&stack, "lisi0002");
    let rp = confidential(&stack).await;
    let browser = browser();

    // Expired code (oidc.code_ttl_secs = 1).
    let started = authorize_url(&rp, &[]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let issued = Instant::now();
    outlive(issued, Duration::from_secs(1)).await;
    let expired = exchange(&rp, &code, started.verifier).await.expect_err("an expired code");
    assert_eq!(oauth_error(&expired), "invalid_grant");

    // A member who left: the refresh re-checks membership (oidc.membership_recheck_secs = 1).
    let started = authorize_url(&rp, &["offline_access"]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let tokens = exchange(&rp, &code, started.verifier).await.expect("exchange within the code's second");
    let checked = Instant::now();
    let left = reqwest::Client::new()
        .post(format!("{}/_admin/users/lisi0002/leave", stack.emulator.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(left.status().is_success(), "{}", left.text().await.unwrap());
    outlive(checked, Duration::from_secs(1)).await;
    let refused = refresh(&rp, tokens.refresh_token().unwrap()).await.expect_err("a leaver cannot refresh");
    assert_eq!(oauth_error(&refused), "invalid_grant");
    assert_eq!(userinfo_status(&stack, tokens.access_token().secret()).await, StatusCode::UNAUTHORIZED);
    let me = browser.get(format!("{}/api/me", stack.base_url)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the leaver's session ended too");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_survive_a_restart_and_a_rotation_keeps_old_tokens_valid() {
    let mut stack = start(StackOptions::with_oidc()).await;
    approve(&stack, "wangwu0003");
    let browser = browser();
    let rp = confidential(&stack).await;
    let started = authorize_url(&rp, &[]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let tokens = exchange(&rp, &code, started.verifier).await.expect("exchange");
    let old_id_token: CoreIdToken = tokens.id_token().unwrap().clone();
    let old_kid = kid(&old_id_token.to_string());
    let nonce = started.nonce;

    // Restart on the same database (and address: the issuer stays): same keys.
    stack.restart_in_place().await.expect("restart");
    assert_eq!(jwks_kids(&stack).await, vec![old_kid.clone()], "the key came back from the database");
    let rp = confidential(&stack).await; // a fresh JWKS
    old_id_token.claims(&rp.id_token_verifier(), &nonce).expect("a pre-restart token verifies");

    // Rotate (the CLI's `dingbridge oidc rotate-keys`), then restart to load the new key.
    let report = bootstrap::rotate_signing_keys(&stack.config).await.expect("rotate");
    assert!(!report.created.is_empty(), "a key was created: {report:?}");
    stack.restart_in_place().await.expect("restart");
    let kids = jwks_kids(&stack).await;
    assert!(kids.contains(&old_kid), "the old key is still published: {kids:?}");
    assert!(kids.len() >= 2, "{kids:?}");
    let rp = confidential(&stack).await;
    old_id_token.claims(&rp.id_token_verifier(), &nonce).expect("a pre-rotation token still verifies");

    // The session survived the restarts too: a new token, signed with the new key.
    let started = authorize_url(&rp, &[]);
    let code = code_for(&stack, &browser, &started, OIDC_CONFIDENTIAL_REDIRECT).await;
    let tokens = exchange(&rp, &code, started.verifier).await.expect("exchange after rotation");
    verify_id_token(&rp, &tokens, &started.nonce);
    let new_kid = kid(&tokens.id_token().unwrap().to_string());
    assert_ne!(new_kid, old_kid, "new tokens carry the new kid");
    assert!(kids.contains(&new_kid), "{kids:?}");
    assert_ne!(kid(tokens.access_token().secret()), old_kid, "the access token too");
    stack.stop_and_clean().await;
}
