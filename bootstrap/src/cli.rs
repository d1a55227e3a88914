//! The `dingbridge` command line: `serve`, `migrate`, `check-config`, `oidc rotate-keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::{Listener, build, migrate, serve, shutdown_signal};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// dingbridge: "Login with DingTalk", the org directory and work notifications,
/// with user data kept inside the protected network.
#[derive(Debug, Parser)]
#[command(name = "dingbridge", version, about)]
struct Cli {
    /// Configuration file (default: ./dingbridge.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Deploy mode: dev (both roles, SQLite), cloud (relay to DingTalk) or local (PostgreSQL).
        #[arg(long, value_parser = ["dev", "cloud", "local"])]
        mode: Option<String>,
        /// Listen address, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit non-zero if it is invalid.
    CheckConfig,
    /// The OpenID Provider (local and dev modes).
    Oidc {
        #[command(subcommand)]
        command: OidcCommand,
    },
}

#[derive(Debug, Subcommand)]
enum OidcCommand {
    /// Create new signing keys now; the previous ones stop signing but stay in the JWKS until
    /// every token they signed has expired (plus a day). Running services pick the new keys up
    /// within 10 minutes.
    RotateKeys,
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    let mut overrides = Vec::new();
    if let Command::Serve { mode, bind } = &cli.command {
        overrides.extend(mode.clone().map(|m| ("mode", m)));
        overrides.extend(bind.clone().map(|b| ("bind", b)));
    }
    Config::load(cli.config.as_deref(), &overrides).map_err(|err| {
        eprintln!("{err}");
        ExitCode::from(2)
    })
}

/// Parses the command line and runs the command; returns the process exit code
/// (0 ok, 1 runtime failure, 2 invalid configuration or usage).
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match cli.command {
        Command::CheckConfig => {
            println!("{}", config.redacted_json());
            ExitCode::SUCCESS
        }
        Command::Oidc { command: OidcCommand::RotateKeys } => match crate::rotate_signing_keys(&config).await {
            Ok(report) => {
                println!(
                    "new signing keys: {}; published keys: {}; retired keys deleted: {}",
                    report.created.join(", "),
                    report.published,
                    report.deleted
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate => match migrate(&config).await {
            Ok(()) => {
                println!("migrations applied to {}", config.database.url);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { .. } => {
            let app = match build(&config).await {
                Ok(app) => app,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    return ExitCode::FAILURE;
                }
            };
            let listener = match Listener::bind(&config.bind).await {
                Ok(listener) => listener,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(mode = %config.mode, addr = %listener.local_addr(), public_url = %config.public_url, "dingbridge listening");
            serve(app, listener, shutdown_signal()).await;
            ExitCode::SUCCESS
        }
    }
}
