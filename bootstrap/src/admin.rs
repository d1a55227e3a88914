//! The operator commands on the configured database, outside a running server (the CLI's
//! `dingbridge oidc rotate-keys`, `quota`, `quota resume`, `relay resend|abandon`, `migrate`).

use std::sync::Arc;

use adapters::outbound::dingtalk::quota::QuotaAccountant;
use adapters::outbound::system::SystemClock;
use anyhow::Context;
use application::ports::{Clock, QuotaStore, RelayMessageStore};
use domain::CorpId;

use crate::config::{Config, Mode};
use crate::{is_postgres, oidc, open_postgres, open_sqlite};

/// Creates new OIDC signing keys in the configured database now (the CLI's `dingbridge oidc
/// rotate-keys`; local and dev modes). Errors: cloud mode, the database, key generation.
pub async fn rotate_signing_keys(config: &Config) -> anyhow::Result<application::usecases::oidc::KeyReport> {
    let signer: Arc<dyn application::ports::TokenSigner> = Arc::new(adapters::outbound::jose::JoseSigner::new());
    let report = match config.mode {
        Mode::Cloud => anyhow::bail!("signing keys belong to the OpenID Provider, which runs in local or dev mode"),
        Mode::Local => oidc::signing_keys(&open_postgres(config).await?, signer, config).rotate().await,
        Mode::Dev => oidc::signing_keys(&open_sqlite(config).await?, signer, config).rotate().await,
    };
    report.context("rotating the OIDC signing keys")
}

/// The quota accountant on the configured database (cloud and dev modes), for `dingbridge quota`.
async fn quota_accountant(config: &Config) -> anyhow::Result<QuotaAccountant> {
    let store: Arc<dyn QuotaStore> = match config.mode {
        Mode::Local => anyhow::bail!("the DingTalk quota is accounted by the cloud (mode cloud or dev), not by local"),
        _ if is_postgres(&config.database.url) => open_postgres(config).await?,
        _ => open_sqlite(config).await?,
    };
    Ok(QuotaAccountant::new(store, Arc::new(SystemClock), config.quota.to_config()))
}

/// This month's metered DingTalk calls per corp (the CLI's `dingbridge quota`): the configured
/// corps first (`dingtalk.corp_id`, `suite.corp_ids`), then any other corp with calls.
pub async fn quota_figures(config: &Config) -> anyhow::Result<Vec<adapters::outbound::dingtalk::quota::QuotaFigures>> {
    let accountant = quota_accountant(config).await?;
    let corps: Vec<String> = config.dingtalk.corp_id.iter().chain(&config.suite.corp_ids).cloned().collect();
    accountant.figures(&corps).await.context("reading the quota")
}

/// Lets metered calls of `corp_id` go again this month after DingTalk's `90020` (the CLI's
/// `dingbridge quota resume`): for an org that bought more quota. A running cloud reads the mark on
/// every metered call, and the messages held for the quota are made due at once (the cloud's
/// sender takes them within its poll, 0.5 s). Returns how many held messages were released.
pub async fn resume_quota(config: &Config, corp_id: &str) -> anyhow::Result<u64> {
    let corp = CorpId::parse(corp_id).context("--corp-id")?;
    let (quota, relay): (Arc<dyn QuotaStore>, Arc<dyn RelayMessageStore>) = match config.mode {
        Mode::Local => anyhow::bail!("the DingTalk quota is accounted by the cloud (mode cloud or dev), not by local"),
        _ if is_postgres(&config.database.url) => {
            let store = open_postgres(config).await?;
            (store.clone(), store)
        }
        _ => {
            let store = open_sqlite(config).await?;
            (store.clone(), store)
        }
    };
    let clock = Arc::new(SystemClock);
    QuotaAccountant::new(quota, clock.clone(), config.quota.to_config())
        .resume(corp_id)
        .await
        .context("resuming the quota")?;
    relay
        .release_waiting(&corp, application::ports::WaitReason::WaitingQuota, clock.now())
        .await
        .context("releasing the messages held for the quota")
}

/// An operator's decision on a relayed message held for an uncertain batch (the CLI's
/// `dingbridge relay resend|abandon`; cloud and dev modes): `resend` makes it due now (the
/// running sender takes it within 0.5 s), otherwise it is abandoned (its unsent batches fail).
pub async fn resolve_uncertain(
    config: &Config,
    client_id: &str,
    key: &str,
    resend: bool,
) -> anyhow::Result<application::ports::RelayReceipt> {
    let store: Arc<dyn RelayMessageStore> = match config.mode {
        Mode::Local => anyhow::bail!("relayed messages are kept by the cloud (mode cloud or dev), not by local"),
        _ if is_postgres(&config.database.url) => open_postgres(config).await?,
        _ => open_sqlite(config).await?,
    };
    let case = application::usecases::cloud::ResolveUncertain::new(store, Arc::new(SystemClock));
    let outcome = if resend { case.resend(client_id, key).await } else { case.abandon(client_id, key).await };
    outcome.map_err(|e| match e {
        application::usecases::cloud::CloudError::NotFound => {
            anyhow::anyhow!("no relayed message {key:?} of relay client {client_id:?}")
        }
        other => anyhow::anyhow!(other),
    })
}

/// Runs migrations for the configured database (the CLI's `dingbridge migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    if is_postgres(&config.database.url) {
        adapters::outbound::postgres::migrate(&config.database.url).await.context("migrating the PostgreSQL database")
    } else {
        adapters::outbound::sqlite::migrate(&config.database.url)
            .await
            .with_context(|| format!("migrating {}", config.database.url))
    }
}
