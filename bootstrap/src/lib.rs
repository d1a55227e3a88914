//! dingbridge bootstrap: configuration, the one `match` on deploy mode that
//! picks adapters, the HTTP server with graceful shutdown, and background jobs.
//!
//! [`serve`] takes an already bound listener and a shutdown future
//! (mini-redis style), so tests and the sandbox run it on `127.0.0.1:0`.

mod admin;
pub mod cli;
pub mod config;
pub mod doctor;
mod feed;
mod jobs;
pub mod oidc;
mod providers;
mod stores;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::inbound::dingtalk_events::HandleEvents;
use adapters::inbound::dingtalk_events::crypto::CallbackCrypto;
use adapters::inbound::http::{
    self, AuthLimit, AuthLimiter, CloudHttp, CookieSettings, EventsHttp, LocalHttp, Probes, RelayClientCredentials,
    RelayHttp,
};
use adapters::outbound::dingtalk::recipients::DingTalkRecipientLimits;
use adapters::outbound::relay::{HttpCloudGateway, RelayConfig};
use adapters::outbound::system::{OsRandom, SystemClock};
use anyhow::Context;
use application::ports::{
    Clock, CloudGateway, FeedSignal, Messenger, Providers, RandomSource, RelayClient, UserRepository,
};
use application::usecases::cloud::{
    CreateLoginIntent, DeliverRelayed, FetchMember, HandleCallback, ReconcileDeliveries, RelayRecall, RelaySend,
    RelayStatus, TakeLoginResult,
};
use application::usecases::feed::{ApplyContactEvents, ReadContactFeed};
use application::usecases::in_process::{CloudUseCases, InProcessGateway};
use application::usecases::local::{
    Bindings, CompleteLogin, CurrentUser, DispatchOutbox, GetUser, ListMessagesQuery, ListUsersQuery, Logout,
    MessageStatus, RecallMessage, RefreshUser, SendMessage, StartLogin,
};
use domain::CorpId;
use salvo::conn::{Acceptor, Listener as _, TcpListener};
use salvo::prelude::*;
use tracing::{info, warn};

pub use admin::{migrate, quota_figures, resolve_uncertain, resume_quota, rotate_signing_keys};
pub use config::{Config, ConfigError, Mode};
use jobs::{
    Attempts, Dispatcher, Grants, Intents, Leaders, Ledger, Nonces, NotifyTrigger, PURGE_EVERY, PurgeJob,
    RECONCILE_BATCH, RECONCILE_EVERY, RelaySender, Results,
};
use providers::{DingTalk, Shared, dingtalk, feishu_events_http};
use stores::{
    CloudStores, ClusterShared, LocalStores, database_probes, is_postgres, lock_sqlite, open_postgres, open_sqlite,
};

/// How long in-flight requests get to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// A bound listener: bind first (port 0 works), read the address, then [`serve`].
pub struct Listener {
    acceptor: salvo::conn::tcp::TcpAcceptor,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` (e.g. `127.0.0.1:0`). Errors when the address is taken or invalid.
    pub async fn bind(addr: &str) -> anyhow::Result<Self> {
        let acceptor = TcpListener::new(addr.to_owned())
            .try_bind()
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        let addr = acceptor
            .holdings()
            .first()
            .and_then(|h| h.local_addr.clone().into_std())
            .context("the listener has no inet address")?;
        Ok(Self { acceptor, addr })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}
/// The shared outbound HTTP client: rustls, connect timeout, no redirects
/// (DingTalk APIs never redirect; following one could leak a token).
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dingbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("could not build the HTTP client")
}

/// A built application: its router plus what its background jobs need.
pub struct App {
    router: Router,
    /// SQLite modes: this process's hold on the database file (a second instance is refused).
    instance_lock: Option<adapters::outbound::sqlite::InstanceLock>,
    /// Tasks started while building (the cloud's feed listener on PostgreSQL), stopped with it.
    listeners: Vec<tokio::task::JoinHandle<()>>,
    purge: Option<PurgeJob>,
    dispatcher: Option<Dispatcher>,
    /// Cloud and dev: the background sender of relayed messages.
    sender: Option<RelaySender>,
    reconcile: Option<Arc<ReconcileDeliveries>>,
    /// Local and dev: follows the cloud's contact-event feed (`[feed] enabled`).
    feed: Option<feed::FeedPoller>,
    /// On PostgreSQL: who among the instances runs the single-instance jobs (the local feed
    /// poller, the cloud's reconciliation); `None`: this process is the only instance.
    leaders: Leaders,
    /// Cloud: the feed signal, closed at shutdown so waiting long-polls answer at once.
    feed_signal: Option<Arc<dyn FeedSignal>>,
    /// What the mode adds to `/metrics` (the outbox gauges).
    ops: telemetry::Ops,
    /// `/metrics` when `[metrics]` enables it, with its own listener when `metrics.bind` is set.
    metrics: Option<(Arc<adapters::inbound::http::MetricsHttp>, Option<Listener>)>,
    /// Local and dev with `[[oidc.clients]]`: rotates and re-reads the signing keys.
    signing_keys: Option<Arc<application::usecases::oidc::SigningKeys>>,
}

/// The DingTalk event callback, when `[events]` is configured (validated at start-up).
fn events_http<S: CloudStores>(
    config: &Config,
    store: &Arc<S>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<EventsHttp>>> {
    let ev = &config.events;
    let (Some(token), Some(aes_key), Some(owner_key)) = (&ev.token, &ev.aes_key, &ev.owner_key) else {
        return Ok(None);
    };
    let window = Duration::from_secs(u64::try_from(ev.window_secs).context("events.window_secs")?);
    // Pushes may be encrypted for any identity of this deployment (docs/dingtalk-api.md §E.1): the configured
    // owner key first, then the suite key, the app key and the corp id. With the same token and
    // EncodingAESKey in both consoles, an internal app and a suite share the endpoint.
    let mut owners: Vec<&str> = vec![owner_key.as_str()];
    for key in [&config.suite.suite_key, &config.dingtalk.app_key, &config.dingtalk.corp_id].into_iter().flatten() {
        if !key.trim().is_empty() && !owners.contains(&key.as_str()) {
            owners.push(key);
        }
    }
    let cryptos = owners
        .iter()
        .map(|owner| {
            CallbackCrypto::new(token.expose(), aes_key.expose(), owner)
                .map(|c| c.with_window(window))
                .map_err(|e| anyhow::anyhow!("events: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    info!(owner_keys = ?owners, "DingTalk event callback enabled at /dingtalk/events");
    Ok(Some(Arc::new(EventsHttp {
        handle_events: HandleEvents::new(store.clone(), store.clone(), clock.clone(), ev.window_secs),
        cryptos,
        clock: clock.clone(),
        max_body_bytes: usize::try_from(ev.max_body_bytes).context("events.max_body_bytes")?,
    })))
}

/// The contact-feed poller, unless `[feed] enabled = false`.
fn feed_poller<S: LocalStores>(
    store: &Arc<S>,
    gateway: Arc<dyn CloudGateway>,
    config: &Config,
) -> Option<feed::FeedPoller> {
    if !config.feed.enabled {
        info!("[feed] enabled = false: contact events are not applied");
        return None;
    }
    let random: Arc<dyn RandomSource> = Arc::new(OsRandom);
    let watch = Arc::new(telemetry::FeedWatch::new(gateway));
    let apply = ApplyContactEvents::new(
        watch.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        random.clone(),
        Arc::new(SystemClock),
    )
    .with_grants(store.clone());
    Some(feed::FeedPoller::new(apply, config.feed.wait_secs, random, watch))
}

/// How long the relay sender's claim on a message lasts from each batch's start, in ms: the
/// longest one DingTalk call can take (its governor slot wait, then the HTTP timeout) plus 15 s,
/// and at least the default (30 s; 5 + 10 + 15 s with the default settings). A sender that dies leaves its messages to the other instances
/// once it ends.
fn send_lease_ms(config: &Config) -> i64 {
    let call_ms = config.governor.max_wait_ms.saturating_add(config.dingtalk.timeout_secs.saturating_mul(1000));
    i64::try_from(call_ms.saturating_add(15_000))
        .unwrap_or(i64::MAX)
        .max(application::usecases::cloud::DEFAULT_SEND_LEASE_MS)
}

fn cloud_use_cases<S: CloudStores>(
    store: &Arc<S>,
    providers: &Providers,
    messenger: &Arc<dyn Messenger>,
    other_tenants: &[CorpId],
    clock: &Arc<dyn Clock>,
    config: &Config,
) -> (CloudUseCases, RelaySender) {
    let public_url = &config.public_url;
    let notify = Arc::new(tokio::sync::Notify::new());
    let mut send = RelaySend::new(store.clone(), messenger.clone(), clock.clone())
        .with_unrecognized_budget_secs(config.delivery.unrecognized_retry_secs)
        .with_unrecognized_max_attempts(config.delivery.unrecognized_retry_attempts)
        .with_uncertain_policy(config.delivery.uncertain_policy())
        .with_lease_ms(send_lease_ms(config))
        .with_wakeup(Arc::new(NotifyTrigger(notify.clone())))
        .with_body_rules(providers::message_rules(config));
    if config.delivery.screen_recipients {
        // No silent drops (docs/dingtalk-api.md §D.6): third-party suite corps get 100 a day.
        let suite_corps = config.suite.corp_ids.iter().filter_map(|c| CorpId::parse(c).ok());
        let limits = DingTalkRecipientLimits::new(store.clone(), clock.clone(), suite_corps)
            .except(other_tenants.iter().cloned());
        send = send.with_recipient_limits(Arc::new(limits));
    }
    let send = Arc::new(send);
    // Claims name this process, so instances sharing one PostgreSQL never take each other's.
    let instance = OsRandom.new_id();
    info!(%instance, "relay sender instance");
    let job = DeliverRelayed::new(send.clone(), store.clone(), clock.clone()).with_instance(instance);
    let sender = RelaySender { job: Arc::new(job), notify };
    let cases = CloudUseCases {
        create_intent: CreateLoginIntent::new(
            store.clone(),
            providers.clone(),
            clock.clone(),
            Arc::new(OsRandom),
            public_url.clone(),
        ),
        take_result: TakeLoginResult::new(store.clone(), clock.clone()),
        send,
        status: RelayStatus::new(store.clone(), messenger.clone(), clock.clone()),
        recall: RelayRecall::new(store.clone(), messenger.clone(), clock.clone()),
        fetch_member: FetchMember::new(providers.clone()),
        read_feed: ReadContactFeed::new(store.clone(), store.clone()),
    };
    (cases, sender)
}

/// The session cookie's attributes from `public_url` and `[session]`.
fn cookie_settings(config: &Config) -> CookieSettings {
    CookieSettings {
        secure: config.public_url.starts_with("https://"),
        session_ttl_secs: config.session.ttl_secs,
        domain: config.session.cookie_domain.clone().map(|d| d.trim_start_matches('.').to_owned()),
    }
}

fn local_http<S: LocalStores>(
    store: &Arc<S>,
    gateway: Arc<dyn CloudGateway>,
    config: &Config,
    corps: Vec<CorpId>,
) -> (Arc<LocalHttp>, Dispatcher) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn RandomSource> = Arc::new(OsRandom);
    let users: Arc<dyn UserRepository> = store.clone();
    let notify = Arc::new(tokio::sync::Notify::new());
    let public = &config.public_url;
    let dispatcher = Dispatcher {
        outbox: Arc::new(
            DispatchOutbox::new(store.clone(), gateway.clone(), random.clone(), clock.clone())
                .with_lease_secs(config.outbox.lease_secs),
        ),
        notify: notify.clone(),
        workers: config.outbox.workers,
    };
    let local = Arc::new(LocalHttp {
        start_login: StartLogin::new(store.clone(), gateway.clone(), random.clone(), clock.clone(), public.clone())
            .with_return_origins(config.forward_auth.return_origins.clone()),
        complete_login: CompleteLogin::new(
            store.clone(),
            gateway.clone(),
            users.clone(),
            store.clone(),
            random.clone(),
            clock.clone(),
            config.session.ttl_secs,
        ),
        current_user: CurrentUser::new(store.clone(), users.clone(), clock.clone()),
        logout: Logout::new(store.clone()).with_grants(store.clone(), clock.clone()),
        list_users: ListUsersQuery::new(users.clone()),
        get_user: GetUser::new(users.clone()),
        refresh_user: RefreshUser::new(users.clone(), store.clone(), gateway.clone(), random.clone(), clock.clone())
            .with_grants(store.clone()),
        bindings: Bindings::new(users.clone(), store.clone(), clock.clone()),
        send_message: SendMessage::new(
            users.clone(),
            store.clone(),
            store.clone(),
            Arc::new(NotifyTrigger(notify)),
            random,
            clock.clone(),
            corps,
        )
        .with_body_rules(providers::message_rules(config)),
        message_status: MessageStatus::new(store.clone(), gateway.clone(), clock.clone()),
        recall_message: RecallMessage::new(store.clone(), gateway, clock),
        list_messages: ListMessagesQuery::new(store.clone()),
        service_tokens: config.api.service_tokens.iter().map(config::Secret::to_secret_string).collect(),
        cookies: cookie_settings(config),
        login_limiter: http::LoginLimiter::new(http::LoginLimit {
            per_address_per_minute: config.login.per_address_per_minute,
            total_per_second: config.login.total_per_second,
        }),
        forward_auth: oidc::forward_auth(config),
        providers: config.login_providers().iter().filter_map(|p| domain::ProviderKey::parse(p).ok()).collect(),
    });
    (local, dispatcher)
}

/// Builds the application for `config.mode`: opens storage (running
/// migrations), builds the outbound clients, wires the use cases and routes.
/// Errors name what could not be set up (database, DingTalk configuration, cloud URL).
pub async fn build(config: &Config) -> anyhow::Result<App> {
    let mut app = match config.mode {
        Mode::Dev => build_dev(config).await,
        Mode::Cloud => build_cloud(config).await,
        Mode::Local => build_local(config).await,
    }?;
    // `/metrics` (README "Operating dingbridge"): its own listener, or the main one behind a token.
    if let Some(metrics) = app.ops.metrics_http(&config.metrics) {
        let listener = match &config.metrics.bind {
            Some(addr) => Some(Listener::bind(addr).await.context("metrics.bind")?),
            None => None,
        };
        if let Some(listener) = &listener {
            info!(addr = %listener.local_addr(), "metrics served at /metrics");
        }
        app.metrics = Some((metrics, listener));
    }
    Ok(app)
}

async fn build_dev(config: &Config) -> anyhow::Result<App> {
    let instance_lock = lock_sqlite(config)?;
    let store = open_sqlite(config).await?;
    let store_for_ops: Arc<dyn telemetry::OutboxSource> = store.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let DingTalk { providers, messenger, corp_ids, other_tenants } =
        dingtalk(config, store.clone(), store.clone(), Shared::of(&store), clock.clone())?;
    let public = &config.public_url;
    let (cloud, sender) = cloud_use_cases(&store, &providers, &messenger, &other_tenants, &clock, config);
    let events = events_http(config, &store, &clock)?;
    let client =
        RelayClient { id: "dev".into(), corp_ids: corp_ids.clone(), complete_url_origins: vec![public.clone()] };
    let gateway: Arc<dyn CloudGateway> = Arc::new(InProcessGateway::new(client, cloud));
    let feed = feed_poller(&store, gateway.clone(), config);
    let provider = oidc::build(&store, gateway.clone(), config, cookie_settings(config)).await?;
    let (oidc_http, signing_keys) = provider.unzip();
    let (local, dispatcher) = local_http(&store, gateway, config, corp_ids);
    let cloud_http = Arc::new(CloudHttp {
        handle_callback: HandleCallback::new(store.clone(), store.clone(), providers, clock.clone()),
        feishu_events: feishu_events_http(config, &store, &clock)?,
    });
    let probes = database_probes(store.clone());
    Ok(App {
        instance_lock: Some(instance_lock),
        listeners: Vec::new(),
        // SQLite commits are fsynced in groups: every write is on disk before it is acknowledged.
        router: Router::new()
            .hoop(http::DurableAcks(store.clone()))
            .push(http::dev_router(local, oidc_http, cloud_http, events, probes)),
        purge: Some(PurgeJob {
            stores: vec![
                Arc::new(Attempts(store.clone())),
                Arc::new(Intents(store.clone())),
                Arc::new(Results(store.clone())),
                Arc::new(Nonces(store.clone())),
                Arc::new(Ledger(store.clone())),
                Arc::new(Grants(store)),
            ],
            clock,
        }),
        dispatcher: Some(dispatcher),
        sender: Some(sender),
        reconcile: None,
        leaders: Leaders::default(),
        feed,
        feed_signal: None,
        ops: telemetry::Ops::with_outbox(store_for_ops),
        metrics: None,
        signing_keys,
    })
}

fn relay_clients(config: &Config) -> anyhow::Result<Vec<RelayClientCredentials>> {
    config
        .relay
        .clients
        .iter()
        .map(|c| {
            Ok(RelayClientCredentials {
                client: RelayClient {
                    id: c.id.clone(),
                    corp_ids: c.corp_ids.iter().map(|id| CorpId::parse(id)).collect::<Result<_, _>>()?,
                    complete_url_origins: c.complete_url_origins.clone(),
                },
                secret: c.secret.to_secret_string(),
            })
        })
        .collect::<Result<_, domain::ValidationError>>()
        .map_err(|e| anyhow::anyhow!("relay.clients: {e}"))
}

async fn build_cloud_with<S: CloudStores>(config: &Config, store: Arc<S>, probes: Arc<Probes>) -> anyhow::Result<App> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let DingTalk { providers, messenger, other_tenants, .. } =
        dingtalk(config, store.clone(), store.clone(), Shared::of(&store), clock.clone())?;
    let (cloud, sender) = cloud_use_cases(&store, &providers, &messenger, &other_tenants, &clock, config);
    let events = events_http(config, &store, &clock)?;
    // Off by default: every progress query is a metered call (docs/dingtalk-api.md §G.3).
    let reconcile = config
        .delivery
        .budget()
        .map(|rounds| Arc::new(ReconcileDeliveries::new(store.clone(), messenger.clone(), clock.clone(), rounds)));
    let relay = Arc::new(RelayHttp {
        clients: relay_clients(config)?,
        limiter: AuthLimiter::new(AuthLimit {
            max_failures: config.relay.max_auth_failures,
            window: Duration::from_secs(config.relay.auth_window_secs),
        }),
        create_intent: cloud.create_intent,
        take_result: cloud.take_result,
        send: cloud.send,
        status: cloud.status,
        recall: cloud.recall,
        fetch_member: cloud.fetch_member,
        read_feed: cloud.read_feed,
    });
    let cloud_http = Arc::new(CloudHttp {
        handle_callback: HandleCallback::new(store.clone(), store.clone(), providers, clock.clone()),
        feishu_events: feishu_events_http(config, &store, &clock)?,
    });
    let feed_signal: Arc<dyn FeedSignal> = store.clone();
    Ok(App {
        instance_lock: None,
        listeners: Vec::new(),
        // On SQLite, commits are fsynced in groups: every write is on disk before it is
        // acknowledged (PostgreSQL's flush returns at once).
        router: Router::new()
            .hoop(http::DurableAcks(store.clone()))
            .push(http::cloud_router(cloud_http, relay, events, probes)),
        purge: Some(PurgeJob {
            stores: vec![
                Arc::new(Intents(store.clone())),
                Arc::new(Results(store.clone())),
                Arc::new(Ledger(store.clone())),
                Arc::new(Nonces(store)),
            ],
            clock,
        }),
        dispatcher: None,
        sender: Some(sender),
        leaders: Leaders {
            feed: None,
            reconcile: (reconcile.is_some() && is_postgres(&config.database.url)).then(|| {
                adapters::outbound::postgres::leader::Leader::start(
                    &config.database.url,
                    adapters::outbound::postgres::leader::RECONCILE,
                    "delivery reconciliation",
                )
            }),
        },
        reconcile,
        feed: None,
        feed_signal: Some(feed_signal),
        ops: telemetry::Ops::default(),
        metrics: None,
        signing_keys: None,
    })
}

async fn build_cloud(config: &Config) -> anyhow::Result<App> {
    if is_postgres(&config.database.url) {
        let store = open_postgres(config).await?;
        let probes = database_probes(store.clone());
        // Long-polls on this instance wake for events appended by any instance.
        let listener = tokio::spawn(adapters::outbound::postgres::notify::listen_feed(
            config.database.url.clone(),
            store.feed_watch(),
        ));
        let mut app = build_cloud_with(config, store, probes).await?;
        app.listeners.push(listener);
        Ok(app)
    } else {
        let instance_lock = lock_sqlite(config)?;
        let store = open_sqlite(config).await?;
        let probes = database_probes(store.clone());
        let mut app = build_cloud_with(config, store, probes).await?;
        app.instance_lock = Some(instance_lock);
        Ok(app)
    }
}

async fn build_local(config: &Config) -> anyhow::Result<App> {
    let store = open_postgres(config).await?;
    let store_for_ops: Arc<dyn telemetry::OutboxSource> = store.clone();
    let secret = config.cloud.client_secret.as_ref().context("cloud.client_secret is required")?;
    let mut relay = RelayConfig::new(
        config.cloud.base_url.clone(),
        config.cloud.client_id.clone().context("cloud.client_id is required")?,
        secret.to_secret_string(),
    );
    relay.timeout = Duration::from_secs(config.cloud.timeout_secs);
    relay.validate().map_err(|e| anyhow::anyhow!("cloud: {e}"))?;
    let gateway: Arc<dyn CloudGateway> = Arc::new(HttpCloudGateway::new(http_client(relay.timeout)?, relay));
    let feed = feed_poller(&store, gateway.clone(), config);
    let corps = config.local_corps();
    if corps.is_empty() {
        warn!(
            "neither cloud.corp_ids nor dingtalk.corp_id is set: messages for a corp the relay client does not \
             serve are accepted here and refused by the cloud; set cloud.corp_ids to refuse them at once"
        );
    }
    let provider = oidc::build(&store, gateway.clone(), config, cookie_settings(config)).await?;
    let (oidc_http, signing_keys) = provider.unzip();
    let (local, dispatcher) = local_http(&store, gateway, config, corps);
    let probes = database_probes(store.clone());
    Ok(App {
        instance_lock: None,
        listeners: Vec::new(),
        router: http::local_router(local, oidc_http, probes),
        purge: Some(PurgeJob {
            stores: vec![Arc::new(Attempts(store.clone())), Arc::new(Grants(store))],
            clock: Arc::new(SystemClock),
        }),
        dispatcher: Some(dispatcher),
        sender: None,
        reconcile: None,
        leaders: Leaders {
            feed: feed.is_some().then(|| {
                adapters::outbound::postgres::leader::Leader::start(
                    &config.database.url,
                    adapters::outbound::postgres::leader::FEED_POLLER,
                    "feed poller",
                )
            }),
            reconcile: None,
        },
        feed,
        feed_signal: None,
        ops: telemetry::Ops::with_outbox(store_for_ops),
        metrics: None,
        signing_keys,
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// gracefully (in-flight requests get 10 s). Background jobs stop with it.
pub async fn serve(app: App, listener: Listener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let server = Server::new(listener.acceptor);
    let handle = server.handle();
    // Held until the server stops (a second instance on the same SQLite file is refused).
    let _instance_lock = app.instance_lock;
    let mut router = app.router;
    let mut metrics_server = None;
    match app.metrics {
        Some((metrics, Some(own))) => {
            let server = Server::new(own.acceptor);
            let metrics_handle = server.handle();
            let task = tokio::spawn(server.serve(http::service(http::metrics::router(metrics))));
            metrics_server = Some((metrics_handle, task));
        }
        Some((metrics, None)) => router = Router::new().push(http::metrics::router(metrics)).push(router),
        None => {}
    }
    let metrics_stop = metrics_server.as_ref().map(|(h, _)| h.clone());
    let purge_task = app.purge.map(|job| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            loop {
                tick.tick().await;
                job.run_once().await;
            }
        })
    });
    let dispatch_tasks = app.dispatcher.map(Dispatcher::spawn).unwrap_or_default();
    let (stop_sender, sender_stopped) = tokio::sync::watch::channel(false);
    let sender_task = app.sender.map(|sender| sender.spawn(sender_stopped));
    let Leaders { feed: feed_leader, reconcile: reconcile_leader } = app.leaders;
    let reconcile_task = app.reconcile.map(|job| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECONCILE_EVERY);
            loop {
                tick.tick().await;
                // Several instances: only the leader reconciles (each round is metered calls).
                if reconcile_leader.as_ref().is_some_and(|leader| !leader.is_leader()) {
                    continue;
                }
                match job.run_once(RECONCILE_BATCH).await {
                    Ok(0) => {}
                    Ok(n) => info!(completed = n, "reconciled deliveries"),
                    Err(err) => warn!(error = %err, "delivery reconciliation failed"),
                }
            }
        })
    });
    let feed_task = app.feed.map(|poller| tokio::spawn(poller.run_led(feed_leader)));
    let key_task = app.signing_keys.map(|keys| tokio::spawn(oidc::run_key_job(keys)));
    let feed_abort = feed_task.as_ref().map(tokio::task::JoinHandle::abort_handle);
    let feed_signal = app.feed_signal;
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down gracefully");
        // Stop following the feed, and answer the feed's waiting long-polls now, not after 30 s.
        if let Some(poller) = feed_abort {
            poller.abort();
        }
        if let Some(signal) = feed_signal {
            signal.close();
        }
        if let Some(metrics) = metrics_stop {
            metrics.stop_graceful(Some(Duration::from_secs(1)));
        }
        handle.stop_graceful(Some(GRACE));
    });
    server.serve(http::service(router)).await;
    if let Some((_, task)) = metrics_server {
        let _ = task.await;
    }
    if let Some(task) = purge_task {
        task.abort();
    }
    // Let the relay sender finish the run in progress (each call is bounded by the HTTP timeout),
    // so no batch DingTalk accepted is left without its task id.
    let _ = stop_sender.send(true);
    if let Some(mut task) = sender_task
        && tokio::time::timeout(GRACE, &mut task).await.is_err()
    {
        warn!("the relay sender did not finish in time; stopping it");
        task.abort();
    }
    for task in dispatch_tasks.into_iter().chain(reconcile_task).chain(feed_task).chain(key_task).chain(app.listeners) {
        task.abort();
    }
    info!("server stopped");
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
