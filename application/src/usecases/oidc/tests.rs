//! Unit tests of the provider's rules that need no storage: client registration and
//! authentication, redirect matching, scopes, settings, and the signing-key schedule (mocks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use domain::Timestamp;
use secrecy::{SecretSlice, SecretString};

use super::clients::{ClientCredentials, ClientRegistry, OidcClient};
use super::keys::{JWKS_CACHE_SECS, SigningKeys};
use super::{ClientAuthMethod, KNOWN_SCOPES, OidcSettings, granted_scopes};
use crate::ports::{MockClock, MockRandomSource, MockSigningKeyStore, MockTokenSigner, SigningAlgorithm, SigningKey};

fn confidential() -> OidcClient {
    OidcClient {
        client_id: "grafana".into(),
        client_secret: Some(SecretString::from("a-long-random-secret")),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec!["https://grafana.example.com/login/generic_oauth".into()],
        post_logout_redirect_uris: vec![],
        scopes: KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        corp_ids: vec![],
        dept_ids: vec![],
        id_token_alg: SigningAlgorithm::Rs256,
    }
}

fn public() -> OidcClient {
    OidcClient {
        client_id: "cli".into(),
        client_secret: None,
        auth_method: ClientAuthMethod::None,
        redirect_uris: vec!["http://localhost:8085/auth/callback".into()],
        ..confidential()
    }
}

fn field_of(clients: Vec<OidcClient>) -> Option<(String, &'static str)> {
    ClientRegistry::new(clients).err().map(|e| (e.field, e.code))
}

#[test]
fn registrations_are_checked_and_name_the_key() {
    assert!(ClientRegistry::new(vec![confidential(), public()]).is_ok());
    let insecure = OidcClient { redirect_uris: vec!["http://grafana.example.com/cb".into()], ..confidential() };
    assert_eq!(field_of(vec![insecure]), Some(("oidc.clients[0].redirect_uris[0]".into(), "insecure")));
    let fragment = OidcClient { redirect_uris: vec!["https://a.example/cb#x".into()], ..confidential() };
    assert_eq!(field_of(vec![fragment]).map(|f| f.1), Some("invalid"));
    let short = OidcClient { client_secret: Some(SecretString::from("short")), ..confidential() };
    assert_eq!(field_of(vec![short]).map(|f| f.1), Some("too_short"));
    let public_with_secret = OidcClient { client_secret: Some(SecretString::from("a-long-random-secret")), ..public() };
    assert_eq!(field_of(vec![public_with_secret]).map(|f| f.0), Some("oidc.clients[0].client_secret".into()));
    let no_secret = OidcClient { client_secret: None, ..confidential() };
    assert_eq!(field_of(vec![no_secret]).map(|f| f.1), Some("required"));
    assert_eq!(field_of(vec![confidential(), confidential()]), Some(("oidc.clients[1].client_id".into(), "duplicate")));
    let no_openid = OidcClient { scopes: vec!["profile".into()], ..confidential() };
    assert_eq!(field_of(vec![no_openid]).map(|f| f.0), Some("oidc.clients[0].scopes".into()));
    let native = OidcClient { redirect_uris: vec!["com.example.app:/callback".into()], ..public() };
    assert!(ClientRegistry::new(vec![native]).is_ok(), "private-use schemes (RFC 8252 §7.1)");
}

#[test]
fn redirect_uris_match_exactly_and_loopback_on_any_port_only_for_public_clients() {
    let c = confidential();
    assert!(c.redirect_uri_allowed("https://grafana.example.com/login/generic_oauth"));
    for other in [
        "https://grafana.example.com/login/generic_oauth/",
        "https://grafana.example.com/login/generic_oauth?x=1",
        "https://GRAFANA.example.com/login/generic_oauth",
        "https://grafana.example.com.evil.example/login/generic_oauth",
    ] {
        assert!(!c.redirect_uri_allowed(other), "{other}");
    }
    let p = public();
    assert!(p.redirect_uri_allowed("http://localhost:51234/auth/callback"));
    assert!(!p.redirect_uri_allowed("http://localhost:51234/other"));
    assert!(!p.redirect_uri_allowed("http://127.0.0.1:51234/auth/callback"), "the host must match too");
    let loopback_confidential = OidcClient { redirect_uris: vec!["http://127.0.0.1:3000/cb".into()], ..confidential() };
    assert!(!loopback_confidential.redirect_uri_allowed("http://127.0.0.1:3001/cb"), "confidential: exact only");
}

#[test]
fn clients_authenticate_only_the_way_they_are_registered() {
    let registry = ClientRegistry::new(vec![confidential(), public()]).unwrap();
    let creds = |id: &str, secret: Option<&str>, method| ClientCredentials {
        client_id: id.into(),
        secret: secret.map(SecretString::from),
        method,
    };
    assert!(
        registry
            .authenticate(&creds("grafana", Some("a-long-random-secret"), ClientAuthMethod::ClientSecretBasic))
            .is_ok()
    );
    for wrong in [
        creds("grafana", Some("a-long-random-secreT"), ClientAuthMethod::ClientSecretBasic),
        creds("grafana", Some("a-long-random-secret"), ClientAuthMethod::ClientSecretPost),
        creds("grafana", None, ClientAuthMethod::None),
        creds("nobody", Some("a-long-random-secret"), ClientAuthMethod::ClientSecretBasic),
        creds("cli", Some("anything-at-all-here"), ClientAuthMethod::ClientSecretPost),
    ] {
        assert_eq!(registry.authenticate(&wrong).err().map(|e| e.error), Some("invalid_client"), "{wrong:?}");
    }
    assert!(registry.authenticate(&creds("cli", None, ClientAuthMethod::None)).is_ok());
}

#[test]
fn scopes_are_narrowed_to_known_and_allowed_without_duplicates() {
    let allowed: Vec<String> = ["openid", "profile", "offline_access"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        granted_scopes("openid  profile email openid custom offline_access", &allowed),
        vec!["openid".to_owned(), "profile".to_owned(), "offline_access".to_owned()]
    );
}

#[test]
fn settings_are_validated_with_their_key() {
    assert!(OidcSettings::with_issuer("https://sso.example.com/").validate().is_ok());
    assert_eq!(OidcSettings::with_issuer("https://sso.example.com/").issuer, "https://sso.example.com");
    let long_code = OidcSettings { code_ttl_secs: 61, ..OidcSettings::with_issuer("https://x") };
    assert_eq!(long_code.validate().err().map(|e| e.field), Some("oidc.code_ttl_secs".into()));
    let refresh =
        OidcSettings { refresh_token_ttl_secs: 100, grant_ttl_secs: 99, ..OidcSettings::with_issuer("https://x") };
    assert_eq!(refresh.validate().err().map(|e| e.field), Some("oidc.refresh_token_ttl_secs".into()));
}

fn key(kid: &str, created_secs: i64, retired_secs: Option<i64>) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        algorithm: SigningAlgorithm::Rs256,
        private_pkcs8: SecretSlice::from(vec![1u8]),
        public_jwk: "{}".into(),
        created_at: Timestamp::from_millis(created_secs * 1000),
        retired_at: retired_secs.map(|s| Timestamp::from_millis(s * 1000)),
    }
}

/// A key schedule at `now_secs` over `stored` keys; returns the kids created and the retirement
/// cutoff passed to the store.
async fn run_keys(now_secs: i64, stored: Vec<SigningKey>, force: bool) -> (Vec<String>, Timestamp) {
    let stored = Arc::new(Mutex::new(stored));
    let mut store = MockSigningKeyStore::new();
    let read = stored.clone();
    store.expect_signing_keys().returning(move || Ok(read.lock().unwrap().clone()));
    let write = stored.clone();
    store.expect_insert_signing_key().returning(move |k, _| {
        write.lock().unwrap().push(k.clone());
        Ok(())
    });
    let cutoff = Arc::new(Mutex::new(Timestamp::from_millis(0)));
    let seen = cutoff.clone();
    store.expect_delete_retired_signing_keys().returning(move |before| {
        *seen.lock().unwrap() = before;
        Ok(0)
    });
    let mut signer = MockTokenSigner::new();
    signer.expect_generate_key().returning(|_, kid, now| Ok(SigningKey { created_at: now, ..key(kid, 0, None) }));
    signer.expect_install().returning(|_| Ok(()));
    let mut clock = MockClock::new();
    clock.expect_now().return_const(Timestamp::from_millis(now_secs * 1000));
    let mut random = MockRandomSource::new();
    random.expect_new_id().return_const("new-kid".to_owned());
    let settings = OidcSettings::with_issuer("https://sso.example.com");
    let keys = SigningKeys::new(
        Arc::new(store),
        Arc::new(signer),
        Arc::new(random),
        Arc::new(clock),
        vec![SigningAlgorithm::Rs256],
        30 * 86_400,
        &settings,
    );
    let report = if force { keys.rotate().await } else { keys.refresh().await }.unwrap();
    let cutoff = *cutoff.lock().unwrap();
    (report.created, cutoff)
}

#[tokio::test]
async fn a_first_key_is_made_rotation_waits_for_its_day_and_retired_keys_outlive_tokens_by_a_day() {
    let (created, cutoff) = run_keys(1_000_000, vec![], false).await;
    assert_eq!(created, vec!["new-kid".to_owned()], "first start");
    // Retention: longest token (300 s) + one day of JWKS caching + an hour.
    assert_eq!(cutoff.as_millis(), (1_000_000 - 300 - JWKS_CACHE_SECS - 3600) * 1000);

    let day = 86_400;
    let (created, _) = run_keys(29 * day, vec![key("k1", 0, None)], false).await;
    assert!(created.is_empty(), "not yet due");
    let (created, _) = run_keys(30 * day, vec![key("k1", 0, None)], false).await;
    assert_eq!(created.len(), 1, "due after 30 days");
    let (created, _) = run_keys(day, vec![key("k1", 0, None)], true).await;
    assert_eq!(created.len(), 1, "rotate-keys forces one");
    let (created, _) = run_keys(day, vec![key("k0", 0, Some(10))], false).await;
    assert_eq!(created.len(), 1, "only retired keys: a current one is made");
}
