//! The example configurations in `examples/` (installed by the .deb as `/etc/dingbridge/*.toml`)
//! load and validate as they are, so they cannot go stale: a renamed or removed key, or a new
//! required one, fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err, missing_docs)]

use std::path::PathBuf;

use bootstrap::telemetry::LogFormat;
use bootstrap::{Config, Mode};
use figment::Jail;

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")).join(name)
}

fn load(name: &str) -> Config {
    let path = example(name);
    let mut config = None;
    Jail::expect_with(|_jail| {
        config = Some(Config::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{name}: {e}")));
        Ok(())
    });
    config.unwrap()
}

#[test]
fn the_cloud_example_is_a_valid_cloud_with_events_and_metrics_on_loopback() {
    let config = load("cloud.toml");
    assert_eq!(config.mode, Mode::Cloud);
    assert_eq!(config.database.url, "sqlite:///var/lib/dingbridge/cloud.db");
    assert_eq!(config.relay.clients.len(), 1);
    assert_eq!(config.relay.clients[0].corp_ids, ["dingexamplecorpid0000"]);
    assert!(config.events.is_configured());
    assert_eq!(config.events.owner_key.as_deref(), Some("dingexampleappkey0000"));
    assert_eq!(config.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(!config.redacted_json().contains("CHANGE-ME"), "secrets are redacted");
}

#[test]
fn the_local_example_is_a_valid_local_on_postgres() {
    let config = load("local.toml");
    assert_eq!(config.mode, Mode::Local);
    assert!(config.database.url.starts_with("postgres://"));
    assert_eq!(config.cloud.client_id.as_deref(), Some("office"));
    assert_eq!(config.metrics.bind.as_deref(), Some("127.0.0.1:9465"));
    assert_eq!(config.api.service_tokens.len(), 1);
}

#[test]
fn the_dev_example_is_a_valid_dev() {
    let config = load("dev.toml");
    assert_eq!(config.mode, Mode::Dev);
    assert_eq!(config.dingtalk.agent_id, Some(123_456_789));
    assert!(!config.metrics.enabled());
}

#[test]
fn the_env_example_configures_a_local_by_the_seeds_names() {
    let text = std::fs::read_to_string(example(".env.example")).unwrap();
    Jail::expect_with(|jail| {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            jail.set_env(key, value);
        }
        let config = Config::load(None, &[]).unwrap_or_else(|e| panic!(".env.example: {e}"));
        assert_eq!(config.mode, Mode::Local);
        assert_eq!(config.database.url, "postgres://dingbridge@127.0.0.1:5432/dingbridge");
        assert_eq!(config.cloud.base_url, "https://relay.example.com");
        assert_eq!(config.cloud.client_id.as_deref(), Some("office"));
        assert!(config.cloud.client_secret.is_some());
        Ok(())
    });
}
