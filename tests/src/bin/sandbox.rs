//! `sandbox`: the DingTalk and Feishu emulators plus a dev-mode dingbridge wired to them, on
//! loopback. Open the printed URL, click "Continue with DingTalk" or "Continue with Feishu",
//! pick a person on the emulated consent page, and (as a DingTalk member) send yourself a
//! notification.

use std::path::PathBuf;

use bootstrap::config::Secret;
use bootstrap::oidc::{OidcClientConfig, OidcSection};
use clap::Parser;
use tests::emulator::{EmulatorConfig, Fixture};
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};
use tracing_subscriber::EnvFilter;

/// Run dingbridge (dev mode) against the DingTalk emulator.
#[derive(Debug, Parser)]
#[command(name = "sandbox", about)]
struct Args {
    /// dingbridge's listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// The emulator's listen address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    emulator_bind: String,
    /// The Feishu emulator's listen address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    feishu_bind: String,
    /// SQLite database file (kept between runs).
    #[arg(long, default_value = "data/sandbox.db")]
    database: PathBuf,
    /// Emulator org fixture (JSON); default: the built-in org (tests/fixtures/org.json).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Act as the fixture's third-party suite app (suite tokens per authorized corp) instead of
    /// its internal app; the emulator pushes the suite_ticket and the corps' authorizations at start.
    #[arg(long)]
    suite: bool,
    /// The demo OpenID Connect client's redirect URI (a loopback URL your app listens on).
    #[arg(long, default_value = DEMO_REDIRECT)]
    oidc_redirect_uri: String,
}

/// The demo relying party registered in `[[oidc.clients]]`.
const DEMO_CLIENT_ID: &str = "sandbox-demo";
const DEMO_CLIENT_SECRET: &str = "sandbox-demo-secret-0123456789";
const DEMO_REDIRECT: &str = "http://127.0.0.1:8000/callback";
const DEMO_LOGGED_OUT: &str = "http://127.0.0.1:8000/";

fn demo_oidc(redirect_uri: &str) -> OidcSection {
    OidcSection {
        clients: vec![OidcClientConfig {
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: Some(Secret::from(DEMO_CLIENT_SECRET)),
            token_endpoint_auth_method: Some("client_secret_basic".into()),
            redirect_uris: vec![redirect_uri.to_owned()],
            post_logout_redirect_uris: vec![DEMO_LOGGED_OUT.into()],
            scopes: None,
            corp_ids: Vec::new(),
            dept_ids: Vec::new(),
            id_token_signed_response_alg: None,
        }],
        ..OidcSection::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let fixture = match &args.fixture {
        Some(path) => Fixture::from_file(path)?,
        None => Fixture::default(),
    };
    let options = StackOptions {
        bind: args.bind,
        emulator_bind: args.emulator_bind,
        database: args.database,
        emulator: EmulatorConfig { fixture, ..EmulatorConfig::default() },
        feishu: tests::feishu_emulator::FeishuEmulatorConfig::default(),
        feishu_bind: args.feishu_bind,
        events: true,
        suite: args.suite,
        oidc: Some(demo_oidc(&args.oidc_redirect_uri)),
        return_origins: Vec::new(),
        // The sandbox shows DingTalk as it is: 20 calls/s per app and API, paced by the governor.
        unpaced: false,
    };
    let stack = Stack::start(options).await?;
    if args.suite {
        stack.connect_suite().await?;
    }
    let base = &stack.base_url;
    let emu = stack.emulator.base_url();
    let feishu = stack.feishu.base_url();
    let redirect_encoded: String = url::form_urlencoded::byte_serialize(args.oidc_redirect_uri.as_bytes()).collect();
    println!(
        r#"
dingbridge sandbox is running (dev mode, DingTalk and Feishu emulated).

  Open:           {base}/   (Continue with DingTalk, or Continue with Feishu as 李雷 / ou_feishu_alice)
  Emulator:       {emu}   (recorded calls: {emu}/_admin/calls, work notifications: {emu}/_admin/sends)
  Feishu:         {feishu}   (recorded calls: {feishu}/_admin/calls)
  API docs:       {base}/swagger-ui
  Service token:  {SERVICE_TOKEN}

Send a work notification to three members:
  curl -s -X POST {base}/api/messages \
    -H 'Authorization: Bearer {SERVICE_TOKEN}' -H 'Content-Type: application/json' \
    -d '{{"recipients":{{"userids":["manager4220","lisi0002","wangwu0003"]}},"body":{{"msgtype":"text","text":{{"content":"Hello from dingbridge"}}}}}}'

OpenID Connect Provider (demo client registered):
  Discovery:      {base}/.well-known/openid-configuration
  Client id:      {DEMO_CLIENT_ID}
  Client secret:  {DEMO_CLIENT_SECRET}   (client_secret_basic)
  Redirect URI:   {redirect}
  Sign in:        {base}/oidc/authorize?client_id={DEMO_CLIENT_ID}&response_type=code&scope=openid%20profile%20email%20groups%20offline_access&redirect_uri={redirect_encoded}&state=demo&nonce=demo
                  (without PKCE, as a confidential client may; then read ?code= off the redirect)
  Exchange it:
    curl -s -u {DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET} {base}/oidc/token \
      -d grant_type=authorization_code -d code=CODE --data-urlencode redirect_uri={redirect}

  As a relying party's configuration (e.g. oauth2-proxy, Grafana generic OAuth):
    issuer_url    = "{base}"
    client_id     = "{DEMO_CLIENT_ID}"
    client_secret = "{DEMO_CLIENT_SECRET}"
    redirect_url  = "{redirect}"
    scopes        = "openid profile email groups"

Press Ctrl-C to stop.
"#,
        redirect = args.oidc_redirect_uri,
    );
    bootstrap::shutdown_signal().await;
    stack.stop().await;
    Ok(())
}
