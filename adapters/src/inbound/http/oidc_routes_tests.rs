//! In-process tests (salvo `TestClient`) of the OpenID Provider's routes and forward-auth,
//! through the whole local service, over a real SQLite store: a person is signed in by storing a
//! user and a session, then each endpoint is driven as a relying party would (docs/oidc.md).
//! The relying-party test with a real OIDC client library is `tests/tests/oidc_e2e.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use application::ports::{GatewayError, MockCloudGateway, Session, SessionStore, UserRepository};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use domain::{SessionToken, Timestamp};
use salvo::http::header::{HeaderMap, LOCATION};
use salvo::prelude::*;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use serde_json::Value;

use super::test_support::{
    ISSUER, OIDC_CLIENT, OIDC_PUBLIC_CLIENT, OIDC_PUBLIC_REDIRECT, OIDC_REDIRECT, OIDC_SECRET, TempDir, local,
    oidc_with, store,
};
use super::{Probes, local_router, service};
use crate::outbound::sql::fixtures::profile;
use crate::outbound::sqlite::SqliteStore;

struct Env {
    service: Service,
    store: Arc<SqliteStore>,
    _dir: TempDir,
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The query parameters of the `Location` header.
    fn location_query(&self) -> HashMap<String, String> {
        let url =
            url::Url::parse(self.location()).or_else(|_| url::Url::parse(&format!("{ISSUER}{}", self.location())));
        url.map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
    }
}

async fn env_with_recheck(gateway: MockCloudGateway, membership_recheck_secs: i64) -> Env {
    let (store, dir) = store().await;
    let probes = Arc::new(Probes { checks: Vec::new() });
    let router = local_router(local(&store), Some(oidc_with(&store, gateway, membership_recheck_secs)), probes);
    Env { service: service(router), store, _dir: dir }
}

async fn env() -> Env {
    env_with_recheck(MockCloudGateway::new(), 3600).await
}

fn get(path: &str) -> RequestBuilder {
    TestClient::get(format!("{ISSUER}{path}"))
}

fn form(path: &str, pairs: &[(&str, &str)]) -> RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    TestClient::post(format!("{ISSUER}{path}"))
        .add_header("content-type", "application/x-www-form-urlencoded", true)
        .body(body)
}

fn basic(req: RequestBuilder, id: &str, secret: &str) -> RequestBuilder {
    req.add_header("authorization", format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))), true)
}

fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    (verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned())
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

impl Env {
    async fn send(&self, req: RequestBuilder) -> Reply {
        let mut res = req.send(&self.service).await;
        let text = res.take_string().await.unwrap_or_default();
        Reply {
            status: res.status_code.map_or(0, |s| s.as_u16()),
            headers: res.headers().clone(),
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// Stores a member and a session of theirs; returns (user id, session token).
    async fn signed_in(&self, userid: &str) -> (String, String) {
        let now = Timestamp::from_millis(time_now());
        let user = self
            .store
            .upsert(
                &profile("dingcorpa", &format!("union{userid}"), userid, "张三"),
                &uuid::Uuid::new_v4().to_string(),
                now,
            )
            .await
            .unwrap();
        let token = SessionToken::from_random_bytes(&rand::random());
        let session = Session {
            token_hash: token.hash(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now.plus_secs(3600),
        };
        self.store.insert(&session).await.unwrap();
        (user.id, token.expose().to_owned())
    }

    async fn authorize(&self, session: Option<&str>, pairs: &[(&str, &str)]) -> Reply {
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let mut req = get(&format!("/oidc/authorize?{query}"));
        if let Some(session) = session {
            req = req.add_header("cookie", format!("dingbridge_session={session}"), true);
        }
        self.send(req).await
    }

    /// Authorize as the confidential client with `scope`; returns the code.
    async fn code(&self, session: &str, scope: &str) -> String {
        let reply = self
            .authorize(
                Some(session),
                &[
                    ("client_id", OIDC_CLIENT),
                    ("redirect_uri", OIDC_REDIRECT),
                    ("response_type", "code"),
                    ("scope", scope),
                    ("state", "st-1"),
                    ("nonce", "n-1"),
                ],
            )
            .await;
        assert_eq!(reply.status, 302, "{}", reply.text);
        assert!(reply.location().starts_with(OIDC_REDIRECT), "{}", reply.location());
        let query = reply.location_query();
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        assert_eq!(query.get("iss").map(String::as_str), Some(ISSUER), "RFC 9207 iss");
        query["code"].clone()
    }

    async fn exchange(&self, code: &str) -> Reply {
        let req = form(
            "/oidc/token",
            &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", OIDC_REDIRECT)],
        );
        self.send(basic(req, OIDC_CLIENT, OIDC_SECRET)).await
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        let req = form("/oidc/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
        self.send(basic(req, OIDC_CLIENT, OIDC_SECRET)).await
    }

    async fn userinfo(&self, access_token: &str) -> Reply {
        self.send(get("/oidc/userinfo").add_header("authorization", format!("Bearer {access_token}"), true)).await
    }
}

fn time_now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test]
async fn discovery_names_every_required_field_and_the_exact_issuer() {
    let env = env().await;
    let doc = env.send(get("/.well-known/openid-configuration")).await;
    assert_eq!(doc.status, 200);
    // OpenID Connect Discovery 1.0 §3: REQUIRED fields.
    for field in [
        "issuer",
        "authorization_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint",
    ] {
        assert!(!doc.json[field].is_null(), "{field} missing: {}", doc.text);
    }
    assert_eq!(doc.json["issuer"], ISSUER);
    assert_eq!(doc.json["token_endpoint"], format!("{ISSUER}/oidc/token"));
    assert!(doc.json["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
    assert_eq!(doc.json["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc.json["authorization_response_iss_parameter_supported"], true);
    let jwks = env.send(get("/oidc/jwks")).await;
    assert_eq!(jwks.json["keys"][0]["kty"], "RSA");
    assert!(jwks.json["keys"][0].get("d").is_none(), "no private parts");
}

#[tokio::test]
async fn authorize_without_a_session_signs_in_first_and_comes_back() {
    let env = env().await;
    let pairs = [
        ("client_id", OIDC_CLIENT),
        ("redirect_uri", OIDC_REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "abc"),
    ];
    let reply = env.authorize(None, &pairs).await;
    assert_eq!(reply.status, 302);
    assert!(reply.location().starts_with("/auth/dingtalk/login?return_to="), "{}", reply.location());
    let back = &reply.location_query()["return_to"];
    assert!(back.starts_with("/oidc/authorize?") && back.contains("state=abc"), "{back}");

    // prompt=none cannot ask: login_required on the redirect URI.
    let mut none = pairs.to_vec();
    none.push(("prompt", "none"));
    let reply = env.authorize(None, &none).await;
    assert!(reply.location().starts_with(OIDC_REDIRECT));
    assert_eq!(reply.location_query()["error"], "login_required");
    assert_eq!(reply.location_query()["state"], "abc");

    // A request too long to carry through the sign-in is refused now, not lost at `/` later.
    let (state, hint) = ("s".repeat(1024), "h".repeat(1200));
    let mut long = pairs.to_vec();
    long.retain(|(k, _)| *k != "state");
    long.extend([("state", state.as_str()), ("login_hint", hint.as_str())]);
    let reply = env.authorize(None, &long).await;
    assert_eq!(reply.status, 400, "{}", reply.location());
    assert!(reply.location().is_empty());

    // prompt=login with a session: a fresh sign-in, then only a newer session counts.
    let (_, session) = env.signed_in("manager4220").await;
    let mut login = pairs.to_vec();
    login.push(("prompt", "login"));
    let reply = env.authorize(Some(&session), &login).await;
    assert!(reply.location().starts_with("/auth/dingtalk/login"), "{}", reply.location());
    assert!(reply.location_query()["return_to"].contains("dingbridge_fresh_after="));
}

#[tokio::test]
async fn the_code_flow_issues_signed_tokens_and_userinfo_releases_scoped_claims() {
    let env = env().await;
    let (user_id, session) = env.signed_in("manager4220").await;
    let code = env.code(&session, "openid profile email groups").await;
    let tokens = env.exchange(&code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.header("cache-control"), Some("no-store"));
    assert_eq!(tokens.json["token_type"], "Bearer");
    assert!(tokens.json.get("refresh_token").is_none(), "no offline_access, no refresh token");
    let id = claims_of(tokens.json["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], ISSUER);
    assert_eq!(id["aud"], OIDC_CLIENT);
    assert_eq!(id["sub"], user_id.as_str());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], "zs@corp.example", "the org email only");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["preferred_username"], "manager4220");
    let access = tokens.json["access_token"].as_str().unwrap();
    assert_eq!(id["at_hash"], domain::digest::at_hash(access));
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt", "RFC 9068");
    assert_eq!(header["alg"], "RS256");

    let info = env.userinfo(access).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json["sub"], user_id.as_str());
    assert_eq!(info.json["groups"], serde_json::json!(["1", "42"]));
    assert!(info.json.get("phone_number").is_none(), "no phone scope");

    let intro = env.send(basic(form("/oidc/introspect", &[("token", access)]), OIDC_CLIENT, OIDC_SECRET)).await;
    assert_eq!(intro.json["active"], true, "{}", intro.text);
    assert_eq!(intro.json["client_id"], OIDC_CLIENT);

    let revoked = env.send(basic(form("/oidc/revoke", &[("token", access)]), OIDC_CLIENT, OIDC_SECRET)).await;
    assert_eq!(revoked.status, 200);
    let info = env.userinfo(access).await;
    assert_eq!(info.status, 401);
    assert!(info.header("www-authenticate").unwrap().starts_with("Bearer error=\"invalid_token\""));
    let intro = env.send(basic(form("/oidc/introspect", &[("token", access)]), OIDC_CLIENT, OIDC_SECRET)).await;
    assert_eq!(intro.json["active"], false);
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_what_it_issued() {
    let env = env().await;
    let (_, session) = env.signed_in("manager4220").await;
    let code = env.code(&session, "openid").await;
    let first = env.exchange(&code).await;
    assert_eq!(first.status, 200);
    let again = env.exchange(&code).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json["error"], "invalid_grant");
    let access = first.json["access_token"].as_str().unwrap();
    assert_eq!(env.userinfo(access).await.status, 401, "the first use's tokens are revoked");

    // A code for another redirect URI or with a forged value.
    let code = env.code(&session, "openid").await;
    let wrong = form(
        "/oidc/token",
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://x.example/cb")],
    );
    assert_eq!(env.send(basic(wrong, OIDC_CLIENT, OIDC_SECRET)).await.json["error"], "invalid_grant");
    assert_eq!(env.exchange("not-a-code").await.json["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let env = env().await;
    let (_, session) = env.signed_in("manager4220").await;
    let code = env.code(&session, "openid offline_access").await;
    let tokens = env.exchange(&code).await;
    let r1 = tokens.json["refresh_token"].as_str().unwrap().to_owned();
    let next = env.refresh(&r1).await;
    assert_eq!(next.status, 200, "{}", next.text);
    let r2 = next.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert!(claims_of(next.json["id_token"].as_str().unwrap())["auth_time"].is_i64());

    let reused = env.refresh(&r1).await;
    assert_eq!(reused.json["error"], "invalid_grant");
    assert_eq!(env.refresh(&r2).await.json["error"], "invalid_grant", "the whole family is revoked");
    assert_eq!(env.userinfo(next.json["access_token"].as_str().unwrap()).await.status, 401);
}

#[tokio::test]
async fn public_clients_need_pkce_s256_and_plain_is_refused() {
    let env = env().await;
    let (_, session) = env.signed_in("manager4220").await;
    let (verifier, challenge) = pkce();
    // Loopback redirect on another port matches (RFC 8252 §7.3).
    let redirect = "http://localhost:53123/auth/callback";
    let base =
        [("client_id", OIDC_PUBLIC_CLIENT), ("redirect_uri", redirect), ("response_type", "code"), ("scope", "openid")];

    let missing = env.authorize(Some(&session), &base).await;
    assert!(missing.location().starts_with(redirect), "{}", missing.location());
    assert_eq!(missing.location_query()["error"], "invalid_request");

    let mut plain = base.to_vec();
    plain.extend([("code_challenge", challenge.as_str()), ("code_challenge_method", "plain")]);
    assert_eq!(env.authorize(Some(&session), &plain).await.location_query()["error"], "invalid_request");

    let mut s256 = base.to_vec();
    s256.extend([("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]);
    let reply = env.authorize(Some(&session), &s256).await;
    let code = reply.location_query()["code"].clone();
    let exchange = |verifier: String, code: String| {
        form(
            "/oidc/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("client_id", OIDC_PUBLIC_CLIENT),
                ("code_verifier", &verifier),
            ],
        )
    };
    let wrong = env.send(exchange("x".repeat(43), code.clone())).await;
    assert_eq!(wrong.json["error"], "invalid_grant", "{}", wrong.text);
    // The code was spent by the failed attempt; a new one with the right verifier works.
    let code = env.authorize(Some(&session), &s256).await.location_query()["code"].clone();
    let ok = env.send(exchange(verifier, code)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(OIDC_PUBLIC_REDIRECT.starts_with("http://localhost:"), "the registered URI differs in port only");
}

#[tokio::test]
async fn requests_that_cannot_be_trusted_get_a_page_never_a_redirect() {
    let env = env().await;
    let bad_redirect = env
        .authorize(
            None,
            &[
                ("client_id", OIDC_CLIENT),
                ("redirect_uri", "https://evil.example/cb"),
                ("response_type", "code"),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_eq!(bad_redirect.status, 400);
    assert!(bad_redirect.location().is_empty());
    assert!(bad_redirect.text.contains("invalid_request"), "{}", bad_redirect.text);
    let unknown = env.authorize(None, &[("client_id", "nobody"), ("redirect_uri", OIDC_REDIRECT)]).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text.contains("unauthorized_client"));
    // A repeated redirect_uri is refused on a page too (RFC 6749 §3.1).
    let twice = env.send(get(&format!("/oidc/authorize?client_id={OIDC_CLIENT}&redirect_uri=a&redirect_uri=b"))).await;
    assert_eq!(twice.status, 400);
    assert!(twice.location().is_empty());
}

#[tokio::test]
async fn the_token_endpoint_answers_rfc_6749_errors() {
    let env = env().await;
    let wrong_secret = env
        .send(basic(
            form("/oidc/token", &[("grant_type", "authorization_code")]),
            OIDC_CLIENT,
            "wrong-secret-0123456789",
        ))
        .await;
    assert_eq!(wrong_secret.status, 401);
    assert_eq!(wrong_secret.json["error"], "invalid_client");
    assert!(wrong_secret.header("www-authenticate").unwrap().starts_with("Basic"));
    let unknown =
        env.send(basic(form("/oidc/token", &[("grant_type", "authorization_code")]), "nobody", OIDC_SECRET)).await;
    assert_eq!(unknown.json["error"], "invalid_client");
    let method = env
        .send(form("/oidc/token", &[("grant_type", "x"), ("client_id", OIDC_CLIENT), ("client_secret", OIDC_SECRET)]))
        .await;
    assert_eq!(method.json["error"], "invalid_client", "registered for client_secret_basic: {}", method.text);
    let grant = env.send(basic(form("/oidc/token", &[("grant_type", "password")]), OIDC_CLIENT, OIDC_SECRET)).await;
    assert_eq!(grant.json["error"], "unsupported_grant_type");
    let twice = env
        .send(basic(form("/oidc/token", &[("grant_type", "a"), ("grant_type", "b")]), OIDC_CLIENT, OIDC_SECRET))
        .await;
    assert_eq!(twice.json["error"], "invalid_request");
    let json = env
        .send(basic(
            TestClient::post(format!("{ISSUER}/oidc/token")).json(&serde_json::json!({"grant_type": "x"})),
            OIDC_CLIENT,
            OIDC_SECRET,
        ))
        .await;
    assert_eq!(json.status, 400);
    assert_eq!(json.json["error"], "invalid_request");
}

#[tokio::test]
async fn end_session_signs_out_and_returns_only_to_a_registered_uri() {
    let env = env().await;
    let (_, session) = env.signed_in("manager4220").await;
    let code = env.code(&session, "openid offline_access").await;
    let tokens = env.exchange(&code).await;
    let id_token = tokens.json["id_token"].as_str().unwrap();

    let refused = env
        .send(get(&format!(
            "/oidc/end_session?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/"
        )))
        .await;
    assert_eq!(refused.status, 400);
    let now = Timestamp::from_millis(time_now());
    assert!(
        SessionStore::find(&*env.store, &SessionToken::parse(&session).unwrap().hash(), now).await.unwrap().is_some()
    );

    let out = env
        .send(
            get(&format!(
                "/oidc/end_session?id_token_hint={id_token}&post_logout_redirect_uri=https://grafana.example.com/&state=bye"
            ))
            .add_header("cookie", format!("dingbridge_session={session}"), true),
        )
        .await;
    assert_eq!(out.status, 302, "{}", out.text);
    assert_eq!(out.location(), "https://grafana.example.com/?state=bye");
    assert!(
        SessionStore::find(&*env.store, &SessionToken::parse(&session).unwrap().hash(), now).await.unwrap().is_none()
    );
    let refresh = tokens.json["refresh_token"].as_str().unwrap();
    assert_eq!(env.refresh(refresh).await.json["error"], "invalid_grant", "grants of the session end with it");
}

#[tokio::test]
async fn forward_auth_answers_identity_headers_or_the_way_to_sign_in() {
    let env = env().await;
    let anonymous =
        env.send(get("/auth/verify").add_header("x-original-url", "https://app.example.com/dash?x=1", true)).await;
    assert_eq!(anonymous.status, 401);
    let sign_in = anonymous.header("x-auth-request-redirect").unwrap();
    assert_eq!(sign_in, format!("{ISSUER}/auth/dingtalk/login?return_to=https%3A%2F%2Fapp.example.com%2Fdash%3Fx%3D1"));
    let untrusted = env.send(get("/auth/verify").add_header("x-original-url", "https://evil.example/", true)).await;
    assert_eq!(untrusted.header("x-auth-request-redirect"), Some(format!("{ISSUER}/auth/dingtalk/login").as_str()));
    let traefik = env
        .send(
            get("/auth/verify?redirect=true")
                .add_header("x-forwarded-proto", "https", true)
                .add_header("x-forwarded-host", "app.example.com", true)
                .add_header("x-forwarded-uri", "/x", true),
        )
        .await;
    assert_eq!(traefik.status, 302);
    assert!(traefik.location().ends_with("return_to=https%3A%2F%2Fapp.example.com%2Fx"), "{}", traefik.location());

    let (user_id, session) = env.signed_in("manager4220").await;
    let ok = env.send(get("/auth/verify").add_header("cookie", format!("dingbridge_session={session}"), true)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("x-auth-request-user"), Some(user_id.as_str()));
    assert_eq!(ok.header("x-auth-request-preferred-username"), Some("manager4220"));
    assert_eq!(ok.header("x-auth-request-email"), Some("zs@corp.example"));
    assert_eq!(ok.header("x-auth-request-groups"), Some("1,42"));
    assert_eq!(ok.header("x-auth-request-corp-id"), Some("dingcorpa"));
}

#[tokio::test]
async fn a_refresh_that_finds_the_member_gone_refuses_and_revokes_everything() {
    let mut gateway = MockCloudGateway::new();
    gateway.expect_get_member().times(1).returning(|_, _| Err(GatewayError::NotMember));
    // Re-check membership on every refresh (interval 0).
    let env = env_with_recheck(gateway, 0).await;
    let (user_id, session) = env.signed_in("manager4220").await;
    let code = env.code(&session, "openid offline_access").await;
    let tokens = env.exchange(&code).await;
    let refused = env.refresh(tokens.json["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.json["error"], "invalid_grant", "{}", refused.text);
    let user = UserRepository::find(&*env.store, &user_id).await.unwrap().unwrap();
    assert!(!user.profile.active, "stored inactive");
    let now = Timestamp::from_millis(time_now());
    assert!(
        SessionStore::find(&*env.store, &SessionToken::parse(&session).unwrap().hash(), now).await.unwrap().is_none()
    );
    assert_eq!(env.userinfo(tokens.json["access_token"].as_str().unwrap()).await.status, 401);
}
