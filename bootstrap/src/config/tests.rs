#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::time::Duration;

use figment::Jail;

use super::*;

const DEV_TOML: &str = r#"
    mode = "dev"
    [dingtalk]
    app_key = "dingappkey"
    app_secret = "secret"
    agent_id = 300001
    corp_id = "dingcorp"
"#;

fn problems_of(err: ConfigError) -> Vec<String> {
    match err {
        ConfigError::Invalid(problems) => problems.into_iter().map(|p| p.key).collect(),
        ConfigError::Load(message) => vec![message],
    }
}

#[test]
fn defaults_plus_a_file_make_a_valid_dev_config() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.mode, Mode::Dev);
        assert_eq!(config.database.url, "sqlite://data/dingbridge.db");
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert_eq!(config.dingtalk.agent_id, Some(300001));
        Ok(())
    });
}

#[test]
fn the_feed_is_on_by_default_and_its_wait_is_validated_by_key() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let config = Config::load(None, &[]).unwrap();
        assert!(config.feed.enabled);
        assert_eq!(config.feed.wait_secs, 25);
        jail.set_env("DINGBRIDGE_FEED__WAIT_SECS", "5");
        jail.set_env("DINGBRIDGE_FEED__ENABLED", "false");
        let config = Config::load(None, &[]).unwrap();
        assert_eq!((config.feed.enabled, config.feed.wait_secs), (false, 5));
        for bad in ["0", "31"] {
            jail.set_env("DINGBRIDGE_FEED__WAIT_SECS", bad);
            assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), ["feed.wait_secs"], "{bad}");
        }
        Ok(())
    });
}

#[test]
fn the_governor_defaults_to_18_per_second_and_is_validated_by_key() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let config = Config::load(None, &[]).unwrap();
        let governor = config.governor.to_config();
        assert!((governor.rate_per_second - 18.0).abs() < f64::EPSILON);
        assert_eq!((governor.max_wait, governor.max_retries), (Duration::from_secs(5), 3));
        jail.create_file(
            "dingbridge.toml",
            &format!(
                "{DEV_TOML}\n[governor]\nrate_per_second = 10\nmax_wait_ms = 2000\n[governor.overrides]\n\"/topapi/message/corpconversation/asyncsend_v2\" = 5\n"
            ),
        )?;
        let governor = Config::load(None, &[]).unwrap().governor.to_config();
        assert!((governor.rate_per_second - 10.0).abs() < f64::EPSILON);
        assert_eq!(governor.max_wait, Duration::from_millis(2000));
        assert_eq!(governor.overrides.get("/topapi/message/corpconversation/asyncsend_v2"), Some(&5.0));
        for (toml, key) in [
            ("rate_per_second = 0", "governor.rate_per_second"),
            ("rate_per_second = 20001", "governor.rate_per_second"),
            ("max_wait_ms = 60001", "governor.max_wait_ms"),
            ("max_retries = 11", "governor.max_retries"),
            ("[governor.overrides]\n\"asyncsend_v2\" = 5", "governor.overrides.\"asyncsend_v2\""),
            ("[governor.overrides]\n\"/x\" = -1", "governor.overrides.\"/x\""),
        ] {
            jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n[governor]\n{toml}\n"))?;
            assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), [key], "{toml}");
        }
        jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n[governor]\nburst = 5\n"))?;
        assert!(Config::load(None, &[]).is_err(), "an unknown key is refused");
        Ok(())
    });
}

#[test]
fn quota_and_delivery_default_to_5000_and_no_background_calls_and_are_validated_by_key() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.quota.to_config().limit_of("dingcorp"), 5_000);
        assert_eq!(config.delivery.budget(), None, "no metered background calls by default");
        jail.create_file(
            "dingbridge.toml",
            &format!(
                "{DEV_TOML}\n[quota]\nmonthly_limit = 10000\n[quota.corp_limits]\ndingbig = 200000\n[delivery]\nreconcile = \"budget\"\nrounds_per_message = 3\n"
            ),
        )?;
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.quota.to_config().limit_of("dingcorp"), 10_000);
        assert_eq!(config.quota.to_config().limit_of("dingbig"), 200_000);
        assert_eq!(config.delivery.budget(), Some(3));
        for (toml, key) in [
            ("[quota]\nmonthly_limit = 0", "quota.monthly_limit"),
            ("[quota.corp_limits]\ndingbig = 0", "quota.corp_limits.dingbig"),
            ("[delivery]\nreconcile = \"always\"", "delivery.reconcile"),
            ("[delivery]\nrounds_per_message = 21", "delivery.rounds_per_message"),
            ("[delivery]\nunrecognized_retry_secs = 604801", "delivery.unrecognized_retry_secs"),
            ("[delivery]\nunrecognized_retry_attempts = 0", "delivery.unrecognized_retry_attempts"),
            ("[delivery]\nuncertain_batches = \"drop\"", "delivery.uncertain_batches"),
        ] {
            jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{toml}\n"))?;
            assert_eq!(problems_of(Config::load(None, &[]).unwrap_err()), [key], "{toml}");
        }
        Ok(())
    });
}

#[test]
fn environment_wins_over_the_file_and_numeric_secrets_are_strings() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_DINGTALK__APP_SECRET", "12345678");
        jail.set_env("DINGBRIDGE_BIND", "127.0.0.1:9999");
        jail.set_env("DINGBRIDGE_API__SERVICE_TOKENS", r#"["0123456789abcdef0123"]"#);
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.dingtalk.app_secret.as_ref().map(Secret::expose), Some("12345678"));
        assert_eq!(config.bind, "127.0.0.1:9999");
        assert_eq!(config.api.service_tokens.len(), 1);
        Ok(())
    });
}

#[test]
fn command_line_overrides_win_over_everything() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_BIND", "127.0.0.1:9999");
        let config = Config::load(None, &[("bind", "127.0.0.1:7777".into())]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:7777");
        Ok(())
    });
}

#[test]
fn a_dot_env_file_is_read() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.create_file(".env", "DINGBRIDGE_DINGTALK__SCOPE=\"openid corpid\"\n")?;
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.dingtalk.scope, "openid corpid");
        Ok(())
    });
}

#[test]
fn missing_dingtalk_credentials_name_their_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", "mode = \"dev\"")?;
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        for key in ["dingtalk.app_key", "dingtalk.app_secret", "dingtalk.agent_id", "dingtalk.corp_id"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
        Ok(())
    });
}

#[test]
fn bad_values_name_their_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_BIND", "not-an-address");
        jail.set_env("DINGBRIDGE_SESSION__TTL_SECS", "5");
        jail.set_env("DINGBRIDGE_API__SERVICE_TOKENS", r#"["short"]"#);
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert!(keys.contains(&"bind".to_owned()));
        assert!(keys.contains(&"session.ttl_secs".to_owned()));
        assert!(keys.contains(&"api.service_tokens[0]".to_owned()));
        Ok(())
    });
}

#[test]
fn a_wrong_type_is_a_load_error_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_DINGTALK__AGENT_ID", "not-a-number");
        let message = problems_of(Config::load(None, &[]).unwrap_err()).join(" ");
        assert!(message.to_lowercase().contains("dingtalk.agent_id"), "{message}");
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_an_error() {
    Jail::expect_with(|_| {
        let err = Config::load(Some(Path::new("nope.toml")), &[]).unwrap_err();
        assert!(err.to_string().contains("nope.toml"));
        Ok(())
    });
}

#[test]
fn events_come_from_the_seeds_names_and_are_validated() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGDING_TOKEN", "123456");
        jail.set_env("DINGDING_AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
        jail.set_env("DINGDING_SUIT_KEY", "suiteKEY123");
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.events.token.as_ref().map(Secret::expose), Some("123456"));
        assert_eq!(config.events.owner_key.as_deref(), Some("suiteKEY123"));
        assert_eq!(config.events.window_secs, 600);
        assert_eq!(config.events.max_body_bytes, 1024 * 1024);
        assert!(!config.redacted_json().contains("4g5j64"));
        jail.set_env("DINGDING_TOKEN", "a!");
        jail.set_env("DINGDING_AES_KEY", "short");
        jail.set_env("DINGBRIDGE_EVENTS__WINDOW_SECS", "1");
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert!(keys.contains(&"events.token".to_owned()));
        assert!(keys.contains(&"events.aes_key".to_owned()));
        assert!(keys.contains(&"events.window_secs".to_owned()));
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_EVENTS__TOKEN", "123456");
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert!(keys.contains(&"events.aes_key".to_owned()));
        // The owner key defaults to the app key.
        assert!(!keys.contains(&"events.owner_key".to_owned()), "{keys:?}");
        jail.set_env("DINGBRIDGE_EVENTS__AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
        assert_eq!(Config::load(None, &[]).unwrap().events.owner_key.as_deref(), Some("dingappkey"));
        Ok(())
    });
}

#[test]
fn the_event_body_limit_is_configurable_and_validated() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", "4194304");
        assert_eq!(Config::load(None, &[]).unwrap().events.max_body_bytes, 4 * 1024 * 1024);
        for bad in ["1000", "0", "68157440"] {
            jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", bad);
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert_eq!(keys, ["events.max_body_bytes"], "{bad}");
        }
        jail.set_env("DINGBRIDGE_EVENTS__MAX_BODY_BYTES", "lots");
        let message = problems_of(Config::load(None, &[]).unwrap_err()).join(" ");
        assert!(message.to_lowercase().contains("events.max_body_bytes"), "{message}");
        Ok(())
    });
}

#[test]
fn a_suite_alone_or_with_an_internal_app() {
    // The seed's .env: a suite with its callback keys, no internal app.
    Jail::expect_with(|jail| {
        jail.set_env("DINGBRIDGE_MODE", "cloud");
        jail.set_env("DINGDING_SUIT_KEY", "suiteKEY123");
        jail.set_env("DINGDING_SUITE_SECRET", "suite-secret");
        jail.set_env("DINGDING_TOKEN", "123456");
        jail.set_env("DINGDING_AES_KEY", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij");
        jail.set_env("DINGDING_SECRET_USER", "ruicore");
        jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
        jail.set_env("DINGBRIDGE_RELAY__SEED_CLIENT_ORIGINS", r#"["https://sso.example.com"]"#);
        jail.set_env("DINGBRIDGE_SUITE__CORP_IDS", r#"["dingcorpa"]"#);
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.suite.suite_key.as_deref(), Some("suiteKEY123"));
        assert_eq!(config.events.owner_key.as_deref(), Some("suiteKEY123"));
        assert_eq!(config.relay.clients[0].corp_ids, vec!["dingcorpa".to_owned()]);
        assert!(config.dingtalk.app_key.is_none());
        assert!(!config.redacted_json().contains("suite-secret"));
        jail.set_env("DINGBRIDGE_SUITE__CORP_TOKEN_API", "v2");
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert_eq!(keys, vec!["suite.corp_token_api".to_owned()]);
        Ok(())
    });
    // A suite needs its secret and the event callback; an internal app, once started, all its keys.
    Jail::expect_with(|jail| {
        jail.set_env("DINGBRIDGE_SUITE__SUITE_KEY", "suiteKEY123");
        jail.set_env("DINGBRIDGE_DINGTALK__APP_KEY", "dingappkey");
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        for key in ["suite.suite_secret", "events", "dingtalk.app_secret", "dingtalk.agent_id", "dingtalk.corp_id"] {
            assert!(keys.contains(&key.to_owned()), "{key} missing from {keys:?}");
        }
        Ok(())
    });
    // Nothing at all: the internal app's keys are asked for.
    Jail::expect_with(|_| {
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert!(keys.contains(&"dingtalk.app_key".to_owned()), "{keys:?}");
        Ok(())
    });
}

/// A local configured the seed's way: its environment variable names alone.
fn seed_local_env(jail: &mut Jail) {
    jail.set_env("DINGDING_DEPLOY_MODE", "LOCAL");
    jail.set_env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dingding");
    jail.set_env("DINGDING_CLOUD_HOST", "https://relay.example.com");
    jail.set_env("DINGDING_SECRET_USER", "ruicore");
    jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
}

#[test]
fn the_seeds_names_are_accepted() {
    Jail::expect_with(|jail| {
        seed_local_env(jail);
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.mode, Mode::Local);
        assert_eq!(config.database.url, "postgres://postgres@127.0.0.1:5432/dingding");
        assert_eq!(config.cloud.base_url, "https://relay.example.com");
        assert_eq!(config.cloud.client_id.as_deref(), Some("ruicore"));
        Ok(())
    });
}

#[test]
fn local_mode_needs_postgres_and_the_cloud_and_refuses_dingtalk_secrets() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let keys = problems_of(Config::load(None, &[("mode", "local".into())]).unwrap_err());
        for key in ["database.url", "cloud.base_url", "cloud.client_id", "cloud.client_secret", "dingtalk.app_secret"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
        Ok(())
    });
}

#[test]
fn cloud_mode_needs_relay_clients_with_origins() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        let keys = problems_of(Config::load(None, &[("mode", "cloud".into())]).unwrap_err());
        assert!(keys.contains(&"relay.clients".to_owned()), "{keys:?}");
        jail.create_file(
            "dingbridge.toml",
            &format!(
                "{DEV_TOML}\n[[relay.clients]]\nid = \"a\"\nsecret = \"short\"\ncomplete_url_origins = [\"https://x.example/path\"]\n"
            ),
        )?;
        let keys = problems_of(Config::load(None, &[("mode", "cloud".into())]).unwrap_err());
        assert!(keys.contains(&"relay.clients[0].secret".to_owned()), "{keys:?}");
        assert!(keys.contains(&"relay.clients[0].complete_url_origins".to_owned()), "{keys:?}");
        Ok(())
    });
}

#[test]
fn the_seeds_relay_credentials_define_a_cloud_client() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "dingbridge.toml",
            &format!("{DEV_TOML}\n[relay]\nseed_client_origins = [\"https://local.example\"]\n"),
        )?;
        jail.set_env("DINGDING_SECRET_USER", "ruicore");
        jail.set_env("DINGDING_SECRET_PASSWORD", "a-long-relay-password");
        let config = Config::load(None, &[("mode", "cloud".into())]).unwrap();
        assert_eq!(config.relay.clients.len(), 1);
        assert_eq!(config.relay.clients[0].corp_ids, vec!["dingcorp".to_owned()]);
        Ok(())
    });
}

#[test]
fn secrets_are_redacted_everywhere() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", DEV_TOML)?;
        jail.set_env("DINGBRIDGE_DINGTALK__APP_SECRET", "super-secret-value");
        let config = Config::load(None, &[]).unwrap();
        assert!(!config.redacted_json().contains("super-secret-value"));
        assert!(!format!("{config:?}").contains("super-secret-value"));
        Ok(())
    });
}

#[test]
fn a_feishu_app_is_validated_redacted_and_offered_in_dev_mode() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "dingbridge.toml",
            &format!(
                "{DEV_TOML}\n[feishu]\napp_id = \"cli_a5d611352af9d00b\"\napp_secret = \"feishu-secret-value\"\n\
                 tenant_keys = [\"736588c9260f175d\"]\nregion = \"lark\"\n"
            ),
        )?;
        let config = Config::load(None, &[]).unwrap();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert!(!config.redacted_json().contains("feishu-secret-value"));
        assert_eq!(config.feishu.open_base(), "https://open.larksuite.com");
        assert_eq!(config.login_providers(), ["dingtalk", "feishu"]);
        Ok(())
    });
    let mut config = Config::default();
    config.feishu.app_id = Some("cli_x".into());
    config.feishu.region = "mars".into();
    config.feishu.token_endpoint = "v9".into();
    config.login.providers = vec!["wecom".into()];
    let keys: Vec<String> = config.problems().into_iter().map(|p| p.key).collect();
    for key in ["feishu.app_secret", "feishu.tenant_keys", "feishu.region", "feishu.token_endpoint", "login.providers"]
    {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    config.feishu.tenant_keys = vec!["dingcorp".into()];
    config.dingtalk.corp_id = Some("dingcorp".into());
    let problems = config.problems();
    assert!(
        problems.iter().any(|p| p.key == "feishu.tenant_keys" && p.message.contains("one provider")),
        "{problems:?}"
    );
}

#[test]
fn local_takes_the_feishu_tenants_alone_and_serves_them_after_its_corps() {
    Jail::expect_with(|jail| {
        seed_local_env(jail);
        jail.set_env("DINGBRIDGE_CLOUD__CORP_IDS", "[\"dingcorpa\"]");
        jail.set_env("DINGBRIDGE_FEISHU__TENANT_KEYS", "[\"736588c9260f175d\", \"dingcorpa\"]");
        let config = Config::load(None, &[]).unwrap();
        let corps: Vec<String> = config.local_corps().iter().map(ToString::to_string).collect();
        assert_eq!(corps, ["dingcorpa", "736588c9260f175d"], "listed once, the default first");
        jail.set_env("DINGBRIDGE_FEISHU__APP_SECRET", "feishu-secret-value");
        let keys = problems_of(Config::load(None, &[]).unwrap_err());
        assert_eq!(keys, ["feishu.app_id"], "the app's secret is the cloud's");
        Ok(())
    });
}

#[test]
fn modes_parse_the_seeds_spelling() {
    assert_eq!(Mode::parse("DEV_DEBUG"), Some(Mode::Dev));
    assert_eq!(Mode::parse(" Cloud "), Some(Mode::Cloud));
    assert_eq!(Mode::parse("edge"), None);
    assert!(is_origin("https://a.example:8443"));
    assert!(!is_origin("https://a.example/x"));
    assert!(!is_origin("ftp://a.example"));
}

const OIDC_TOML: &str = r#"
    [[oidc.clients]]
    client_id = "grafana"
    client_secret = "grafana-client-secret-value"
    redirect_uris = ["https://grafana.example.com/login/generic_oauth"]

    [[oidc.clients]]
    client_id = "argocd-cli"
    redirect_uris = ["http://localhost:8085/auth/callback"]
"#;

#[test]
fn oidc_clients_load_with_defaults_and_their_secrets_are_redacted() {
    Jail::expect_with(|jail| {
        jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{OIDC_TOML}"))?;
        let config = Config::load(None, &[]).unwrap();
        let clients = crate::oidc::clients(&config).unwrap();
        let grafana = clients.get("grafana").unwrap();
        assert_eq!(grafana.auth_method, application::usecases::oidc::ClientAuthMethod::ClientSecretBasic);
        assert!(grafana.scopes.iter().any(|s| s == "offline_access"), "all known scopes by default");
        assert!(clients.get("argocd-cli").unwrap().is_public());
        assert_eq!(crate::oidc::settings(&config).issuer, "http://127.0.0.1:8080");
        assert!(!config.redacted_json().contains("grafana-client-secret-value"));
        assert!(!format!("{config:?}").contains("grafana-client-secret-value"));
        Ok(())
    });
}

#[test]
fn bad_oidc_and_forward_auth_settings_name_their_key() {
    let cases = [
        (
            "[[oidc.clients]]\nclient_id = \"x\"\nclient_secret = \"0123456789abcdef\"\nredirect_uris = [\"http://grafana.example.com/cb\"]",
            "oidc.clients[0].redirect_uris[0]",
        ),
        (
            "[[oidc.clients]]\nclient_id = \"x\"\nclient_secret = \"short\"\nredirect_uris = [\"https://a.example/cb\"]",
            "oidc.clients[0].client_secret",
        ),
        ("[oidc]\ncode_ttl_secs = 600", "oidc.code_ttl_secs"),
        ("[oidc]\nsubject = \"email\"", "oidc.subject"),
        ("[oidc]\nsigning_algs = [\"HS256\"]", "oidc.signing_algs"),
        ("[forward_auth]\nreturn_origins = [\"https://app.example.com/path\"]", "forward_auth.return_origins"),
        ("[session]\ncookie_domain = \"other.example\"", "session.cookie_domain"),
    ];
    for (extra, key) in cases {
        Jail::expect_with(|jail| {
            jail.create_file("dingbridge.toml", &format!("{DEV_TOML}\n{extra}"))?;
            let keys = problems_of(Config::load(None, &[]).unwrap_err());
            assert!(keys.iter().any(|k| k == key), "{extra}: {keys:?}");
            Ok(())
        });
    }
}

#[test]
fn a_cookie_domain_must_cover_the_public_url() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "dingbridge.toml",
            &format!(
                "public_url = \"https://sso.example.com\"\n{DEV_TOML}\n[session]\ncookie_domain = \"example.com\""
            ),
        )?;
        let config = Config::load(None, &[]).unwrap();
        assert_eq!(config.session.cookie_domain.as_deref(), Some("example.com"));
        Ok(())
    });
}
