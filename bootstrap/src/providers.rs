//! The providers' clients, built from the configuration: DingTalk's apps (the internal app of
//! `[dingtalk]`, the suite of `[suite]`) and Feishu's (`[feishu]`), registered side by side as
//! identity providers (`Providers`) and messengers (`Messengers`).

use std::sync::Arc;
use std::time::Duration;

use adapters::inbound::http;
use adapters::outbound::dingtalk::quota::QuotaAccountant;
use adapters::outbound::dingtalk::{CorpTokenApi, DingTalkApp, DingTalkApps, DingTalkClient, DingTalkConfig};
use adapters::outbound::governor::{Governor, GovernorConfig};
use anyhow::Context;
use application::ports::{
    Clock, MessageRules, Messenger, Messengers, ProviderEntry, Providers, QuotaStore, SuiteStore,
};
use domain::{AgentId, CorpId};
use secrecy::SecretString;
use tracing::info;

use super::{CloudStores, ClusterShared, http_client};
use crate::config::{self, Config};

/// The client settings for `client_id`/`client_secret` with `[dingtalk]`'s hosts, scope and
/// timeout, paced by `governor` and accounted by `quota` (one each per process, shared by every app).
fn dingtalk_config(
    config: &Config,
    client_id: String,
    client_secret: SecretString,
    governor: &Arc<Governor>,
    quota: &Arc<QuotaAccountant>,
) -> DingTalkConfig {
    let d = &config.dingtalk;
    let mut dt = DingTalkConfig::new(client_id, client_secret);
    dt.governor = governor.clone();
    dt.quota = Some(quota.clone());
    dt.login_base.clone_from(&d.login_base);
    dt.api_base.clone_from(&d.api_base);
    dt.oapi_base.clone_from(&d.oapi_base);
    dt.scope.clone_from(&d.scope);
    dt.timeout = Duration::from_secs(d.timeout_secs);
    dt
}

/// The identity providers (DingTalk's apps, and Feishu's app when `[feishu]` is configured),
/// their messengers routed by tenant, the corps (tenants) the built-in dev client may act for,
/// and the tenants of providers other than DingTalk (DingTalk's recipient rules skip them).
pub(super) struct DingTalk {
    pub(super) providers: Providers,
    pub(super) messenger: Arc<dyn Messenger>,
    pub(super) corp_ids: Vec<CorpId>,
    pub(super) other_tenants: Vec<CorpId>,
}

/// What the provider clients share with the other instances ([`ClusterShared`]).
pub(super) struct Shared {
    slots: Option<Arc<dyn adapters::outbound::governor::SlotBook>>,
    tokens: Option<Arc<dyn adapters::outbound::dingtalk::TokenBook>>,
}

impl Shared {
    pub(super) fn of<S: ClusterShared>(store: &Arc<S>) -> Self {
        Self { slots: store.clone().slot_book(), tokens: store.clone().token_book() }
    }
}

/// The internal app of `[dingtalk]` and/or the suite of `[suite]` (validated by
/// `Config::problems`), with Feishu's app beside them when `[feishu]` is configured. With both
/// DingTalk apps, the internal app signs people in and serves its corp; the suite serves the corps
/// that authorized it.
pub(super) fn dingtalk(
    config: &Config,
    suites: Arc<dyn SuiteStore>,
    quota: Arc<dyn QuotaStore>,
    shared: Shared,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<DingTalk> {
    let Shared { slots, tokens } = shared;
    let (feishu_tokens, feishu_slots) = (tokens.clone(), slots.clone());
    if tokens.is_some() {
        info!("DingTalk tokens are shared with every instance on this database");
    }
    let d = &config.dingtalk;
    let http = http_client(Duration::from_secs(d.timeout_secs))?;
    let mut governor = Governor::new(config.governor.to_config());
    if let Some(book) = slots {
        info!("the call governor's slots are shared with every instance on this database");
        governor = governor.with_shared(book);
    }
    let governor = Arc::new(governor);
    let quota = Arc::new(QuotaAccountant::new(quota, clock, config.quota.to_config()));
    let mut clients = Vec::new();
    let mut corp_ids = Vec::new();
    if let Some(app_key) = d.app_key.clone().filter(|k| !k.trim().is_empty()) {
        let secret = d.app_secret.as_ref().context("dingtalk.app_secret is required")?.to_secret_string();
        let corp_id = CorpId::parse(d.corp_id.as_deref().unwrap_or_default()).context("dingtalk.corp_id")?;
        let agent_id =
            AgentId::new(d.agent_id.context("dingtalk.agent_id is required")?).context("dingtalk.agent_id")?;
        let mut dt = dingtalk_config(config, app_key, secret, &governor, &quota);
        dt.tokens.clone_from(&tokens);
        dt.validate().map_err(|e| anyhow::anyhow!("dingtalk.{e}"))?;
        corp_ids.push(corp_id.clone());
        clients.push(DingTalkClient::new(http.clone(), dt, DingTalkApp::Internal { agent_id, corp_id }));
    }
    let s = &config.suite;
    if let (Some(suite_key), Some(secret)) = (s.suite_key.clone(), s.suite_secret.as_ref()) {
        let mut dt = dingtalk_config(config, suite_key.clone(), secret.to_secret_string(), &governor, &quota);
        dt.tokens.clone_from(&tokens);
        dt.validate().map_err(|e| anyhow::anyhow!("suite: {e}"))?;
        let corp_token_api = if s.corp_token_api == "legacy" { CorpTokenApi::Legacy } else { CorpTokenApi::V1 };
        for corp in &s.corp_ids {
            corp_ids.push(CorpId::parse(corp).context("suite.corp_ids")?);
        }
        info!(%suite_key, ?corp_token_api, "third-party suite app enabled");
        clients.push(DingTalkClient::new(http, dt, DingTalkApp::Suite { suites, corp_token_api }));
    }
    let mut clients = clients.into_iter();
    let login = clients.next().context("configure [dingtalk] (an internal app) or [suite] (a third-party suite)")?;
    let apps = Arc::new(DingTalkApps::new(login, clients.collect()));
    // DingTalk serves every corp Feishu does not name (the only provider before Feishu).
    let mut providers = Providers::single(adapters::outbound::dingtalk::provider_key(), apps.clone());
    let mut messengers = Messengers::new(apps);
    let mut other_tenants = Vec::new();
    if let Some(client) = feishu(config, feishu_tokens, feishu_slots)? {
        let tenants = feishu_tenants(config)?;
        corp_ids.extend(tenants.iter().cloned());
        other_tenants.extend(tenants.iter().cloned());
        let client = Arc::new(client);
        messengers = messengers.with(tenants.clone(), client.clone());
        providers =
            providers.with(ProviderEntry { key: adapters::outbound::feishu::provider_key(), idp: client, tenants });
    }
    Ok(DingTalk { providers, messenger: Arc::new(messengers), corp_ids, other_tenants })
}

/// The message body rules of every tenant (local and cloud, every mode): Feishu's for
/// `feishu.tenant_keys`, DingTalk's for every other tenant (the only provider before Feishu, so
/// existing deployments check bodies exactly as before).
pub(super) fn message_rules(config: &Config) -> MessageRules {
    let feishu_tenants: Vec<CorpId> = config.feishu.tenant_keys.iter().filter_map(|t| CorpId::parse(t).ok()).collect();
    let rules = MessageRules::new(Arc::new(adapters::outbound::dingtalk::body::DingTalkBodyRules));
    if feishu_tenants.is_empty() {
        rules
    } else {
        rules.with(feishu_tenants, Arc::new(adapters::outbound::feishu::FeishuBodyRules))
    }
}

/// `feishu.tenant_keys` as corp ids (validated by `Config::problems`).
fn feishu_tenants(config: &Config) -> anyhow::Result<Vec<CorpId>> {
    config.feishu.tenant_keys.iter().map(|t| CorpId::parse(t)).collect::<Result<_, _>>().context("feishu.tenant_keys")
}

/// Feishu's event callback (`POST /feishu/events`) when `[feishu] verification_token` is set.
pub(super) fn feishu_events_http<S: CloudStores>(
    config: &Config,
    store: &Arc<S>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<http::feishu_events::FeishuEventsHttp>>> {
    let f = &config.feishu;
    let (Some(app_id), Some(token)) = (f.app_id.clone().filter(|_| f.is_configured()), &f.verification_token) else {
        return Ok(None);
    };
    let tenants = feishu_tenants(config)?;
    info!(encrypted = f.encrypt_key.is_some(), "Feishu event callback enabled at /feishu/events");
    Ok(Some(Arc::new(http::feishu_events::FeishuEventsHttp {
        crypto: adapters::inbound::feishu_events::FeishuEventCrypto::new(
            f.encrypt_key.as_ref().map(config::Secret::to_secret_string),
            token.to_secret_string(),
        ),
        app_id,
        tenants,
        append: application::usecases::contact_events::AppendContactEvents::new(store.clone()),
        clock: clock.clone(),
        max_body_bytes: usize::try_from(config.events.max_body_bytes).unwrap_or(usize::MAX),
    })))
}

/// The Feishu / Lark app of `[feishu]` (validated by `Config::problems`), if configured.
fn feishu(
    config: &Config,
    tokens: Option<Arc<dyn adapters::outbound::dingtalk::TokenBook>>,
    slots: Option<Arc<dyn adapters::outbound::governor::SlotBook>>,
) -> anyhow::Result<Option<adapters::outbound::feishu::FeishuClient>> {
    use adapters::outbound::feishu::{FeishuClient, FeishuConfig, TokenEndpoint};
    let f = &config.feishu;
    let Some(app_id) = f.app_id.clone().filter(|_| f.is_configured()) else {
        return Ok(None);
    };
    let secret = f.app_secret.as_ref().context("feishu.app_secret is required")?.to_secret_string();
    let tenants = feishu_tenants(config)?;
    let mut fc = FeishuConfig::new(app_id.clone(), secret, tenants.clone());
    fc.open_base = f.open_base();
    fc.accounts_base = f.accounts_base();
    fc.token_endpoint = if f.token_endpoint == "v3" { TokenEndpoint::V3 } else { TokenEndpoint::V2 };
    fc.scope.clone_from(&f.scope);
    fc.timeout = Duration::from_secs(f.timeout_secs);
    fc.tokens = tokens;
    if let Some(book) = slots {
        // Several instances pace Feishu's limits together, like DingTalk's (lanes are per app).
        let governor = Governor::new(GovernorConfig {
            rate_per_second: adapters::outbound::feishu::DEFAULT_RATE_PER_SECOND,
            ..config.governor.to_config()
        });
        fc.governor = Arc::new(governor.with_shared(book));
    }
    fc.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = http_client(fc.timeout)?;
    info!(%app_id, tenants = tenants.len(), "Feishu app enabled");
    Ok(Some(FeishuClient::new(http, fc)))
}
