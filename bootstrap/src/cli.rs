//! The `dingbridge` command line: `serve`, `migrate`, `check-config`, `doctor`, `oidc rotate-keys`,
//! `completions`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::{Listener, build, migrate, serve, shutdown_signal};
use clap::{Parser, Subcommand};

/// dingbridge: "Login with DingTalk", the org directory and work notifications,
/// with user data kept inside the protected network.
#[derive(Debug, Parser)]
#[command(name = "dingbridge", version, about)]
struct Cli {
    /// Configuration file (default: ./dingbridge.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log line format on stderr (default: `[log] format`, else text).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<crate::telemetry::LogFormat>,
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
    /// Check the configuration against DingTalk (cloud, dev) or the cloud and PostgreSQL (local);
    /// exit 1 when something blocks.
    Doctor {
        /// Print the findings as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script for bash, zsh or fish to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// The OpenID Provider (local and dev modes).
    Oidc {
        #[command(subcommand)]
        command: OidcCommand,
    },
    /// DingTalk's monthly quota of metered calls (cloud and dev modes): without a subcommand,
    /// this month's figures per corp.
    Quota {
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<QuotaCommand>,
    },
    /// Relayed messages held for an operator (cloud and dev modes, `delivery.uncertain_batches =
    /// "hold"`): a cloud instance stopped during one of their DingTalk calls, so a batch may or
    /// may not have been sent.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RelayCommand {
    /// Send the held message again: every batch without a task id goes out (a person who already
    /// got an uncertain batch does not see it twice: DingTalk delivers the same content to a
    /// person once a day).
    Resend(HeldMessage),
    /// Give the held message up: its unsent batches fail and the message ends `failed`.
    Abandon(HeldMessage),
}

/// Which relayed message.
#[derive(Debug, clap::Args)]
struct HeldMessage {
    /// The relay client that sent it.
    #[arg(long, value_name = "CLIENT_ID")]
    client_id: String,
    /// Its idempotency key (local's message id).
    #[arg(long, value_name = "KEY")]
    key: String,
}

#[derive(Debug, Subcommand)]
enum QuotaCommand {
    /// Let a corp's metered calls (work notifications) go again this month after DingTalk
    /// answered 90020, e.g. once the org bought an add-on pack. Waiting messages go out at their
    /// next retry.
    Resume {
        /// The corp, e.g. dingxxxxxxxx.
        #[arg(long, value_name = "CORP_ID")]
        corp_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum OidcCommand {
    /// Create new signing keys now; the previous ones stop signing but stay in the JWKS until
    /// every token they signed has expired (plus a day). Running services pick the new keys up
    /// within 10 minutes.
    RotateKeys,
}

/// The shells `dingbridge completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script of `shell` to stdout.
fn completions(shell: CompletionShell) {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "dingbridge", &mut std::io::stdout());
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
    if let Command::Completions { shell } = cli.command {
        completions(shell);
        return ExitCode::SUCCESS;
    }
    let config = match load(&cli) {
        Ok(config) => config,
        Err(code) => {
            crate::telemetry::init_logging(cli.log_format.unwrap_or_default());
            return code;
        }
    };
    crate::telemetry::init_logging(cli.log_format.unwrap_or(config.log.format));
    match cli.command {
        Command::Completions { .. } => ExitCode::SUCCESS,
        Command::Doctor { json } => {
            let report = crate::doctor::run(&config).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", report.to_text());
            }
            if report.blocking { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
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
        Command::Relay { command } => {
            let (held, resend) = match command {
                RelayCommand::Resend(held) => (held, true),
                RelayCommand::Abandon(held) => (held, false),
            };
            match crate::resolve_uncertain(&config, &held.client_id, &held.key, resend).await {
                Ok(receipt) => {
                    let what = if resend { "due now; the sender sends its unsent batches" } else { "abandoned" };
                    println!("message {} of {}: {what} (state {})", held.key, held.client_id, receipt.state.as_str());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Quota { command: Some(QuotaCommand::Resume { corp_id }), .. } => {
            match crate::resume_quota(&config, &corp_id).await {
                Ok(released) => {
                    println!("metered calls of {corp_id} go again this month; {released} held message(s) are due now");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Quota { json, command: None } => match crate::quota_figures(&config).await {
            Ok(figures) => {
                if json {
                    let rows: Vec<_> = figures
                        .iter()
                        .map(|f| {
                            serde_json::json!({
                                "corp_id": f.corp_id, "month": f.month, "metered_calls": f.metered_calls,
                                "monthly_limit": f.monthly_limit, "remaining": f.remaining, "exhausted": f.exhausted,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
                } else {
                    println!(
                        "{:<24} {:<8} {:>13} {:>13} {:>10}  state",
                        "corp_id", "month", "metered_calls", "monthly_limit", "remaining"
                    );
                    for f in &figures {
                        let state = if f.exhausted { "exhausted (90020): metered calls wait" } else { "ok" };
                        println!(
                            "{:<24} {:<8} {:>13} {:>13} {:>10}  {state}",
                            f.corp_id, f.month, f.metered_calls, f.monthly_limit, f.remaining
                        );
                    }
                }
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
