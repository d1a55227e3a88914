//! `feishu-emulator` — serves the Feishu / Lark emulator (the `open.*` and `accounts.*` hosts on
//! one port, docs/feishu-api.md §G.1).
//!
//! Prints exactly one line `feishu-emulator listening on http://127.0.0.1:PORT` to stdout once it
//! accepts connections, logs to stderr (`RUST_LOG` filter, default `info`), and stops gracefully on
//! Ctrl-C / SIGTERM. The admin API (`/_admin/consent`, `/_admin/calls`, `/_admin/messages`, …)
//! is described in `tests/src/feishu_emulator/mod.rs`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Parser;
use tests::feishu_emulator::{FeishuEmulatorConfig, FeishuFixture, start};

/// Feishu emulator for tests and the developer sandbox.
#[derive(Debug, Parser)]
#[command(name = "feishu-emulator", version)]
struct Args {
    /// Address to listen on (use port 0 for a random port).
    #[arg(long, default_value = "127.0.0.1:9001")]
    bind: String,
    /// Fixture JSON file (default: the built-in app, tenant and people).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Calls allowed per second per API (docs/feishu-api.md §0.4 tier 4: 50); 0 = no limit (default).
    #[arg(long, default_value_t = 0)]
    qps_limit: u32,
    /// Messages per second to one person (docs/feishu-api.md §D.1: 5); 0 = no limit.
    #[arg(long, default_value_t = 5)]
    per_user_qps: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tests::init_emulator_logs();
    let args = Args::parse();
    let fixture = match &args.fixture {
        Some(path) => FeishuFixture::load(path)?,
        None => FeishuFixture::default(),
    };
    let config = FeishuEmulatorConfig { fixture, per_user_qps: args.per_user_qps, ..FeishuEmulatorConfig::default() };
    let running = start(config, &args.bind).await?;
    running.state().set_api_qps(Some(args.qps_limit).filter(|qps| *qps > 0));
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "feishu-emulator listening on {}", running.base_url())?;
        out.flush()?;
    }
    bootstrap::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}
