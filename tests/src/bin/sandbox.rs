//! `sandbox`: the DingTalk emulator plus a dev-mode dingbridge wired to it, on
//! loopback. Open the printed URL, click "Continue with DingTalk", pick a
//! person on the emulated consent page, and send yourself a notification.

use std::path::PathBuf;

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
        events: true,
        suite: args.suite,
    };
    let stack = Stack::start(options).await?;
    if args.suite {
        stack.connect_suite().await?;
    }
    let base = &stack.base_url;
    let emu = stack.emulator.base_url();
    println!(
        r#"
dingbridge sandbox is running (dev mode, DingTalk emulated).

  Open:           {base}/
  Emulator:       {emu}   (recorded calls: {emu}/_admin/calls, work notifications: {emu}/_admin/sends)
  API docs:       {base}/swagger-ui
  Service token:  {SERVICE_TOKEN}

Send a work notification to three members:
  curl -s -X POST {base}/api/messages \
    -H 'Authorization: Bearer {SERVICE_TOKEN}' -H 'Content-Type: application/json' \
    -d '{{"recipients":{{"userids":["manager4220","lisi0002","wangwu0003"]}},"body":{{"msgtype":"text","text":{{"content":"Hello from dingbridge"}}}}}}'

Press Ctrl-C to stop.
"#
    );
    bootstrap::shutdown_signal().await;
    stack.stop().await;
    Ok(())
}
