//! `dingtalk-emulator` — serves the DingTalk emulator (login, api and oapi hosts on one port).
//!
//! Prints exactly one line `dingtalk-emulator listening on http://127.0.0.1:PORT` to stdout once it
//! accepts connections, logs to stderr (`RUST_LOG` filter, default `info`), and stops gracefully on
//! Ctrl-C / SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Parser;
use tests::emulator::{EmulatorConfig, Fixture, start};

/// DingTalk emulator for tests and the developer sandbox.
#[derive(Debug, Parser)]
#[command(name = "dingtalk-emulator", version)]
struct Args {
    /// Address to listen on (use port 0 for a random port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    bind: String,
    /// Fixture JSON file (default: the built-in org).
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Lifetime of login auth codes, seconds.
    #[arg(long, default_value_t = 300)]
    auth_code_ttl_secs: i64,
    /// Lifetime of access tokens, seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_secs: i64,
    /// Calls allowed per second per app per API (docs/dingtalk-api.md §G.1: 20); 0 = no limit.
    #[arg(long, default_value_t = tests::emulator::DEFAULT_QPS_LIMIT)]
    qps_limit: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tests::init_emulator_logs();
    let args = Args::parse();
    let fixture = match &args.fixture {
        Some(path) => Fixture::from_file(path)?,
        None => Fixture::default(),
    };
    let config = EmulatorConfig {
        fixture,
        auth_code_ttl_secs: args.auth_code_ttl_secs,
        token_ttl_secs: args.token_ttl_secs,
        qps_limit: Some(args.qps_limit).filter(|limit| *limit > 0),
    };
    let running = start(config, &args.bind).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "dingtalk-emulator listening on {}", running.base_url())?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
