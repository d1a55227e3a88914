//! dingbridge bootstrap: configuration, the one `match` on deploy mode that
//! picks adapters, the HTTP server with graceful shutdown, and background jobs.
//!
//! [`serve`] takes an already bound listener and a shutdown future
//! (mini-redis style), so tests and the sandbox run it on `127.0.0.1:0`.

pub mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::inbound::http::{self, CloudHttp, CookieSettings, LocalHttp, Probes, ReadinessCheck};
use adapters::outbound::dingtalk::{DingTalkClient, DingTalkConfig};
use adapters::outbound::sqlite::SqliteStore;
use adapters::outbound::system::{OsRandom, SystemClock};
use anyhow::{Context, bail};
use application::ports::{
    Clock, CloudGateway, IdentityProvider, ListUsers, LoginAttemptStore, LoginIntentStore, LoginResultStore, Messenger,
    RandomSource, RelayClient, UserRepository,
};
use application::usecases::cloud::{
    CreateLoginIntent, FetchMember, HandleCallback, RelayRecall, RelaySend, RelayStatus, TakeLoginResult,
};
use application::usecases::in_process::{CloudUseCases, InProcessGateway};
use application::usecases::local::{
    CompleteLogin, CurrentUser, GetUser, ListUsersQuery, Logout, MessageStatus, RecallMessage, SendMessage, StartLogin,
};
use domain::{AgentId, CorpId};
use salvo::conn::{Acceptor, Listener as _, TcpListener};
use salvo::prelude::*;
use tracing::{info, warn};

pub use config::{Config, ConfigError, Mode};

/// How often expired login attempts, intents and results are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);
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

fn dingtalk_config(config: &Config) -> anyhow::Result<DingTalkConfig> {
    let d = &config.dingtalk;
    let secret = d
        .app_secret
        .as_ref()
        .context("dingtalk.app_secret is required")?
        .to_secret_string();
    let mut dt = DingTalkConfig::new(
        d.app_key.clone().context("dingtalk.app_key is required")?,
        secret,
        AgentId::new(d.agent_id.context("dingtalk.agent_id is required")?).context("dingtalk.agent_id")?,
        CorpId::parse(d.corp_id.as_deref().unwrap_or_default()).context("dingtalk.corp_id")?,
    );
    dt.login_base.clone_from(&d.login_base);
    dt.api_base.clone_from(&d.api_base);
    dt.oapi_base.clone_from(&d.oapi_base);
    dt.scope.clone_from(&d.scope);
    dt.timeout = Duration::from_secs(d.timeout_secs);
    Ok(dt)
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

/// A running application's router plus what its background jobs need.
pub struct App {
    router: Router,
    purge: Option<PurgeJob>,
}

struct PurgeJob {
    attempts: Arc<dyn LoginAttemptStore>,
    intents: Arc<dyn LoginIntentStore>,
    results: Arc<dyn LoginResultStore>,
    clock: Arc<dyn Clock>,
}

impl PurgeJob {
    async fn run_once(&self) {
        let now = self.clock.now();
        let purged = (
            self.attempts.purge_expired(now).await,
            self.intents.purge_expired(now).await,
            self.results.purge_expired(now).await,
        );
        match purged {
            (Ok(a), Ok(i), Ok(r)) if a + i + r > 0 => {
                info!(attempts = a, intents = i, results = r, "purged expired logins")
            }
            (Ok(_), Ok(_), Ok(_)) => {}
            (a, i, r) => warn!(?a, ?i, ?r, "purging expired logins failed"),
        }
    }
}

/// Builds the application for `config.mode`: opens storage (running
/// migrations), builds the DingTalk client, wires the use cases and routes.
/// `public_url` overrides `config.public_url` (tests bind port 0 first).
pub async fn build(config: &Config) -> anyhow::Result<App> {
    match config.mode {
        Mode::Dev => build_dev(config).await,
        Mode::Cloud | Mode::Local => {
            bail!(
                "mode {} is not available in this build yet; use --mode dev",
                config.mode
            )
        }
    }
}

async fn build_dev(config: &Config) -> anyhow::Result<App> {
    let store = Arc::new(
        SqliteStore::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| format!("could not open the database {}", config.database.url))?,
    );
    let dt = dingtalk_config(config)?;
    let corp_id = dt.corp_id.clone();
    let http_client = http_client(dt.timeout)?;
    let dingtalk = Arc::new(DingTalkClient::new(http_client, dt));
    let idp: Arc<dyn IdentityProvider> = dingtalk.clone();
    let messenger: Arc<dyn Messenger> = dingtalk;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn RandomSource> = Arc::new(OsRandom);
    let public = &config.public_url;

    let cloud = CloudUseCases {
        create_intent: CreateLoginIntent::new(
            store.clone(),
            idp.clone(),
            clock.clone(),
            format!("{public}/auth/dingtalk/callback"),
        ),
        take_result: TakeLoginResult::new(store.clone(), clock.clone()),
        send: RelaySend::new(store.clone(), messenger.clone(), clock.clone()),
        status: RelayStatus::new(store.clone(), messenger.clone(), clock.clone()),
        recall: RelayRecall::new(store.clone(), messenger, clock.clone()),
        fetch_member: FetchMember::new(idp.clone()),
    };
    let client = RelayClient {
        id: "dev".into(),
        corp_ids: vec![corp_id.clone()],
        complete_url_origins: vec![public.clone()],
    };
    let gateway: Arc<dyn CloudGateway> = Arc::new(InProcessGateway::new(client, cloud));
    let users: Arc<dyn UserRepository> = store.clone();

    let local = Arc::new(LocalHttp {
        start_login: StartLogin::new(
            store.clone(),
            gateway.clone(),
            random.clone(),
            clock.clone(),
            format!("{public}/auth/dingtalk/complete"),
        ),
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
        logout: Logout::new(store.clone()),
        list_users: ListUsersQuery::new(users.clone()),
        get_user: GetUser::new(users.clone()),
        send_message: SendMessage::new(
            users.clone(),
            store.clone(),
            gateway.clone(),
            random,
            clock.clone(),
            Some(corp_id),
        ),
        message_status: MessageStatus::new(store.clone(), gateway.clone(), clock.clone()),
        recall_message: RecallMessage::new(store.clone(), gateway, clock.clone()),
        service_tokens: config
            .api
            .service_tokens
            .iter()
            .map(config::Secret::to_secret_string)
            .collect(),
        cookies: CookieSettings {
            secure: public.starts_with("https://"),
            session_ttl_secs: config.session.ttl_secs,
        },
    });
    let cloud_http = Arc::new(CloudHttp {
        handle_callback: HandleCallback::new(store.clone(), store.clone(), idp, clock.clone()),
    });
    let db_check: ReadinessCheck = {
        let users = users.clone();
        Arc::new(move || {
            let users = users.clone();
            Box::pin(async move {
                users
                    .list(&ListUsers {
                        corp_id: None,
                        limit: 1,
                        offset: 0,
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
    };
    let probes = Arc::new(Probes {
        checks: vec![("database", db_check)],
    });
    let router = http::dev_router(local, cloud_http, probes);
    Ok(App {
        router,
        purge: Some(PurgeJob {
            attempts: store.clone(),
            intents: store.clone(),
            results: store,
            clock,
        }),
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// gracefully (in-flight requests get 10 s). Background jobs stop with it.
pub async fn serve(app: App, listener: Listener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let server = Server::new(listener.acceptor);
    let handle = server.handle();
    let purge_task = app.purge.map(|job| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            loop {
                tick.tick().await;
                job.run_once().await;
            }
        })
    });
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down gracefully");
        handle.stop_graceful(Some(GRACE));
    });
    server.serve(app.router).await;
    if let Some(task) = purge_task {
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

/// Runs migrations for the configured database (the CLI's `dingbridge migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    match config.mode {
        Mode::Dev | Mode::Cloud => adapters::outbound::sqlite::migrate(&config.database.url)
            .await
            .with_context(|| format!("migrating {}", config.database.url)),
        Mode::Local => bail!("mode local (PostgreSQL) is not available in this build yet"),
    }
}
