//! A dev-mode dingbridge wired to an in-process DingTalk emulator and an in-process Feishu
//! emulator, all on loopback: people sign in with either provider. Used by the `sandbox`
//! binary and the end-to-end tests.

use std::path::PathBuf;

use anyhow::Context;
use bootstrap::config::{Config, Mode, Secret};
use bootstrap::oidc::{OidcClientConfig, OidcSection};
use bootstrap::{Listener, build, serve};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::emulator::{self, EmulatorConfig, RunningEmulator};
use crate::feishu_emulator::{self, FeishuEmulatorConfig, FeishuFixture, RunningFeishuEmulator};

/// The service token the stack accepts on `/api/*`.
pub const SERVICE_TOKEN: &str = "sandbox-service-token-0123456789";

/// The confidential test relying party (`client_secret_basic`) of [`oidc_section`].
pub const OIDC_CONFIDENTIAL_ID: &str = "rp-confidential";
/// Its secret.
pub const OIDC_CONFIDENTIAL_SECRET: &str = "rp-confidential-secret-0123456789";
/// Its registered redirect URI (nothing listens there: tests stop at the redirect).
pub const OIDC_CONFIDENTIAL_REDIRECT: &str = "http://127.0.0.1:9/confidential/callback";
/// Its registered post-logout redirect URI.
pub const OIDC_CONFIDENTIAL_LOGGED_OUT: &str = "http://127.0.0.1:9/confidential/logged-out";
/// The public test relying party (PKCE, no secret) of [`oidc_section`].
pub const OIDC_PUBLIC_ID: &str = "rp-public";
/// Its registered loopback redirect URI (RFC 8252 §7.3: any port of it is accepted too).
pub const OIDC_PUBLIC_REDIRECT: &str = "http://127.0.0.1/public/callback";

/// `[oidc]` registering the two test relying parties: [`OIDC_CONFIDENTIAL_ID`]
/// (`client_secret_basic`) and [`OIDC_PUBLIC_ID`] (public, PKCE), every scope each; other
/// settings at their defaults.
pub fn oidc_section() -> OidcSection {
    OidcSection {
        clients: vec![
            OidcClientConfig {
                client_id: OIDC_CONFIDENTIAL_ID.into(),
                client_secret: Some(Secret::from(OIDC_CONFIDENTIAL_SECRET)),
                token_endpoint_auth_method: Some("client_secret_basic".into()),
                redirect_uris: vec![OIDC_CONFIDENTIAL_REDIRECT.into()],
                post_logout_redirect_uris: vec![OIDC_CONFIDENTIAL_LOGGED_OUT.into()],
                scopes: None,
                corp_ids: Vec::new(),
                dept_ids: Vec::new(),
                id_token_signed_response_alg: None,
            },
            OidcClientConfig {
                client_id: OIDC_PUBLIC_ID.into(),
                client_secret: None,
                token_endpoint_auth_method: Some("none".into()),
                redirect_uris: vec![OIDC_PUBLIC_REDIRECT.into()],
                post_logout_redirect_uris: Vec::new(),
                scopes: None,
                corp_ids: Vec::new(),
                dept_ids: Vec::new(),
                id_token_signed_response_alg: None,
            },
        ],
        ..OidcSection::default()
    }
}

/// The governor's rate (calls/s per app and API) in the harness's unpaced runs: tests about
/// anything but DingTalk's limits run at full speed, with the emulator's §G.1 limit off too.
pub const UNPACED_RATE: f64 = 10_000.0;

/// Where and how to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// dingbridge's listen address (`127.0.0.1:0` picks a free port).
    pub bind: String,
    /// The emulator's listen address.
    pub emulator_bind: String,
    /// The SQLite database file.
    pub database: PathBuf,
    /// Emulator settings (fixture, TTLs).
    pub emulator: EmulatorConfig,
    /// The Feishu emulator's settings (its app becomes `[feishu]`).
    pub feishu: FeishuEmulatorConfig,
    /// The Feishu emulator's listen address.
    pub feishu_bind: String,
    /// Configure `[events]` with the fixture's first suite (token, aes_key, owner key = SuiteKey),
    /// so the emulator can push to `<base_url>/dingtalk/events`.
    pub events: bool,
    /// Act as the fixture's first third-party suite instead of its internal app: `[suite]` with
    /// the suite's key and secret and its authorized corps as `corp_ids`, and no `[dingtalk]` app
    /// (implies `events`).
    pub suite: bool,
    /// `[oidc]`, e.g. [`oidc_section`] (the OpenID Provider is on when it registers a client).
    pub oidc: Option<OidcSection>,
    /// `forward_auth.return_origins`: origins (of a proxy in front of an app) a sign-in may
    /// return to.
    pub return_origins: Vec<String>,
    /// DingTalk's limits off: the emulator's per-app, per-API limit (docs/dingtalk-api.md §G.1)
    /// switched off and the governor at [`UNPACED_RATE`]. `false` keeps the real ones (the
    /// emulator's 20/s, the governor's `[governor]` defaults): the sandbox and the limits tests.
    pub unpaced: bool,
}

impl StackOptions {
    /// Both on free loopback ports, with a fresh database file under the system temp dir.
    pub fn ephemeral() -> Self {
        let database = std::env::temp_dir().join(format!("dingbridge-test-{}.db", uuid_like()));
        Self {
            bind: "127.0.0.1:0".into(),
            emulator_bind: "127.0.0.1:0".into(),
            database,
            emulator: EmulatorConfig::default(),
            feishu: FeishuEmulatorConfig::default(),
            feishu_bind: "127.0.0.1:0".into(),
            events: false,
            suite: false,
            oidc: None,
            return_origins: Vec::new(),
            unpaced: true,
        }
    }

    /// [`StackOptions::ephemeral`] with the test relying parties of [`oidc_section`] registered.
    pub fn with_oidc() -> Self {
        Self { oidc: Some(oidc_section()), ..Self::ephemeral() }
    }
}

fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running stack. Dropping it stops dingbridge (the emulator stops with the runtime);
/// [`Stack::stop`] stops both gracefully and deletes an ephemeral database.
pub struct Stack {
    /// dingbridge's base URL, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The emulator.
    pub emulator: RunningEmulator,
    /// The Feishu emulator (`[feishu]` points at it).
    pub feishu: RunningFeishuEmulator,
    /// The database file.
    pub database: PathBuf,
    /// The configuration dingbridge runs with.
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// The dev-mode configuration for a dingbridge at `public_url` talking to the emulator at `emulator_url`.
pub fn dev_config(
    public_url: &str,
    bind: &str,
    emulator_url: &str,
    database: &std::path::Path,
    emulator: &EmulatorConfig,
) -> anyhow::Result<Config> {
    let app = emulator.fixture.apps.first().context("the emulator fixture has no app")?;
    let mut config =
        Config { mode: Mode::Dev, bind: bind.to_owned(), public_url: public_url.to_owned(), ..Config::default() };
    config.database.url = format!("sqlite://{}", database.display());
    config.dingtalk.login_base = emulator_url.to_owned();
    config.dingtalk.api_base = emulator_url.to_owned();
    config.dingtalk.oapi_base = emulator_url.to_owned();
    config.dingtalk.app_key = Some(app.app_key.clone());
    config.dingtalk.app_secret = Some(Secret::from(app.app_secret.as_str()));
    config.dingtalk.agent_id = Some(app.agent_id);
    config.dingtalk.corp_id = Some(emulator.fixture.corp.corp_id.clone());
    config.api.service_tokens = vec![Secret::from(SERVICE_TOKEN)];
    let problems = config.problems();
    anyhow::ensure!(problems.is_empty(), "invalid sandbox configuration: {problems:?}");
    Ok(config)
}

/// `[feishu]` for the Feishu emulator at `emulator_url` serving `fixture`'s app and tenant.
pub fn feishu_section(emulator_url: &str, fixture: &FeishuFixture) -> bootstrap::config::FeishuSection {
    bootstrap::config::FeishuSection {
        app_id: Some(fixture.app_id.clone()),
        app_secret: Some(Secret::from(fixture.app_secret.as_str())),
        tenant_keys: vec![fixture.tenant_key.clone()],
        open_base: emulator_url.to_owned(),
        accounts_base: emulator_url.to_owned(),
        verification_token: Some(Secret::from(fixture.verification_token.as_str())),
        encrypt_key: Some(Secret::from(fixture.encrypt_key.as_str())),
        ..bootstrap::config::FeishuSection::default()
    }
}

impl Stack {
    /// Starts the emulators, then dingbridge in dev mode pointed at them.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let mut emulator_config = options.emulator.clone();
        if options.unpaced {
            emulator_config.qps_limit = None;
        }
        let emulator = emulator::start(emulator_config, &options.emulator_bind).await?;
        let feishu = feishu_emulator::start(options.feishu.clone(), &options.feishu_bind).await?;
        let listener = Listener::bind(&options.bind).await?;
        let public_url = format!("http://{}", listener.local_addr());
        let mut config =
            dev_config(&public_url, &options.bind, &emulator.base_url(), &options.database, &options.emulator)?;
        config.feishu = feishu_section(&feishu.base_url(), &options.feishu.fixture);
        if options.events || options.suite {
            let suite = options.emulator.fixture.suites.first().context("the emulator fixture has no suite")?;
            config.events.token = Some(Secret::from(suite.token.as_str()));
            config.events.aes_key = Some(Secret::from(suite.aes_key.as_str()));
            config.events.owner_key = Some(suite.suite_key.clone());
            if options.suite {
                config.dingtalk.app_key = None;
                config.dingtalk.app_secret = None;
                config.dingtalk.agent_id = None;
                config.dingtalk.corp_id = None;
                config.suite.suite_key = Some(suite.suite_key.clone());
                config.suite.suite_secret = Some(Secret::from(suite.suite_secret.as_str()));
                config.suite.corp_ids = suite.authorizations.iter().map(|a| a.corp_id.clone()).collect();
            }
        }
        if let Some(oidc) = &options.oidc {
            config.oidc = oidc.clone();
        }
        config.forward_auth.return_origins.clone_from(&options.return_origins);
        if options.unpaced {
            config.governor.rate_per_second = UNPACED_RATE;
        }
        let problems = config.problems();
        anyhow::ensure!(problems.is_empty(), "invalid stack configuration: {problems:?}");
        let (stop, server) = Self::launch(&config, listener).await?;
        Ok(Self { base_url: public_url, emulator, feishu, database: options.database, config, stop, server })
    }

    async fn launch(
        config: &Config,
        listener: Listener,
    ) -> anyhow::Result<(Option<oneshot::Sender<()>>, Option<JoinHandle<()>>)> {
        let app = build(config).await?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(app, listener, async move {
            let _ = stop_rx.await;
        }));
        Ok((Some(stop_tx), Some(server)))
    }

    /// For a stack started with `suite`: points the emulator's push target for the suite at
    /// `<base_url>/dingtalk/events`, then has it push a fresh `suite_ticket` and an
    /// `org_suite_auth` for every corp that authorized the suite — what DingTalk does when the
    /// callback URL is saved and corps install the app (docs/dingtalk-api.md §B.5, §E.6). Errors if a push is
    /// not accepted.
    pub async fn connect_suite(&self) -> anyhow::Result<()> {
        let suite_key = self.config.suite.suite_key.clone().context("the stack was not started with suite")?;
        let admin = self.emulator.base_url();
        let http = reqwest::Client::new();
        let post = |path: String, body: serde_json::Value| {
            let request = http.post(format!("{admin}{path}")).json(&body);
            async move {
                let reply: serde_json::Value = request.send().await?.error_for_status()?.json().await?;
                anyhow::Ok(reply)
            }
        };
        let url = format!("{}/dingtalk/events", self.base_url);
        post("/_admin/callback".into(), serde_json::json!({"owner": "suite", "suite_key": suite_key, "url": url}))
            .await?;
        let ticket = post(format!("/_admin/suites/{suite_key}/ticket"), serde_json::json!({"push": true})).await?;
        anyhow::ensure!(ticket["push"]["accepted"] == true, "suite_ticket push not accepted: {ticket}");
        for corp_id in &self.config.suite.corp_ids {
            let body = serde_json::json!({"suite_key": suite_key, "corp_id": corp_id});
            let auth = post("/_admin/push/org_suite_auth".into(), body).await?;
            anyhow::ensure!(auth["accepted"] == true, "org_suite_auth push for {corp_id} not accepted: {auth}");
        }
        Ok(())
    }

    /// Stops dingbridge gracefully and starts it again on the same database and the same address,
    /// so `base_url` (the OIDC issuer) stays; the emulator keeps running. Retries binding for a
    /// few seconds while the old listener lets go of the port.
    pub async fn restart_in_place(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let addr = self.base_url.trim_start_matches("http://").to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match Listener::bind(&addr).await {
                Ok(listener) => break listener,
                Err(err) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %err, "the old listener still holds the port");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err),
            }
        };
        self.config.bind = addr;
        (self.stop, self.server) = Self::launch(&self.config, listener).await?;
        Ok(())
    }

    /// Stops dingbridge gracefully and starts it again on the same database, on a new free port
    /// (`base_url` and `config.public_url` change; the emulator keeps running). What survives is
    /// what the database kept: nothing in memory (token caches) does.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let listener = Listener::bind("127.0.0.1:0").await?;
        self.base_url = format!("http://{}", listener.local_addr());
        self.config.public_url.clone_from(&self.base_url);
        self.config.bind = listener.local_addr().to_string();
        (self.stop, self.server) = Self::launch(&self.config, listener).await?;
        Ok(())
    }

    /// Stops dingbridge and the emulator gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.emulator.stop().await;
        self.feishu.stop().await;
    }

    /// Stops everything and deletes the database files (for tests).
    pub async fn stop_and_clean(self) {
        let database = self.database.clone();
        self.stop().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
        }
    }
}
