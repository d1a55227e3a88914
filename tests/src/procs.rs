//! Real processes for end-to-end tests: the emulator binary and the
//! `dingbridge` command line in cloud and local mode, each on loopback, with
//! readiness polled on `/healthz` (no sleeps).

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A child process killed when dropped.
pub struct Proc {
    /// Its base URL.
    pub base_url: String,
    child: Child,
    env: HashMap<String, String>,
    program: String,
    args: Vec<String>,
    /// Where its stderr (the logs) is appended, if captured.
    log: Option<std::path::PathBuf>,
}

/// A free loopback port (bound and released: a tiny race, acceptable in tests).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_healthy(base_url: &str, child: &mut Child, deadline: Duration) -> anyhow::Result<()> {
    let client = reqwest_client()?;
    let started = Instant::now();
    loop {
        if let Ok(res) = client.get(format!("{base_url}/healthz")).send().await
            && res.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("process exited before becoming healthy: {status}");
        }
        if started.elapsed() > deadline {
            bail!("{base_url} not healthy after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reqwest_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?)
}

impl Proc {
    /// Starts the emulator binary on a free port and waits for its "listening on" line.
    pub async fn emulator(program: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(program)
            // Unpaced, like the dingbridge processes of the harness (`crate::stack::UNPACED_RATE`).
            .args(["--bind", "127.0.0.1:0", "--qps-limit", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {program}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .context("emulator did not start in 20 s")??
            .context("emulator closed stdout")?;
        let base_url = line.rsplit(' ').next().context("no URL in the emulator's first line")?.to_owned();
        Ok(Self { base_url, child, env: HashMap::new(), program: program.to_owned(), args: Vec::new(), log: None })
    }

    /// Starts `dingbridge [--config FILE] serve --bind 127.0.0.1:<port>` with exactly `env` (plus
    /// `PATH`), and waits until `/healthz` answers.
    pub async fn dingbridge(
        program: &str,
        port: u16,
        config: Option<&std::path::Path>,
        env: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        Self::dingbridge_logged(program, port, config, env, None).await
    }

    /// [`Proc::dingbridge`] with its stderr appended to `log` (when given) — the log lines, in
    /// the format and at the level `env` sets (`DINGBRIDGE_LOG__FORMAT`, `RUST_LOG`).
    pub async fn dingbridge_logged(
        program: &str,
        port: u16,
        config: Option<&std::path::Path>,
        env: HashMap<String, String>,
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut args = Vec::new();
        if let Some(config) = config {
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        args.extend(["serve".to_owned(), "--bind".to_owned(), format!("127.0.0.1:{port}")]);
        let log = log.map(std::path::Path::to_path_buf);
        let mut child = spawn(program, &args, &env, log.as_deref())?;
        let base_url = format!("http://127.0.0.1:{port}");
        wait_healthy(&base_url, &mut child, Duration::from_secs(30)).await?;
        Ok(Self { base_url, child, env, program: program.to_owned(), args, log })
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and waits for it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Starts the same command again (after [`Proc::kill`]) and waits until healthy.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.child = spawn(&self.program, &self.args, &self.env, self.log.as_deref())?;
        wait_healthy(&self.base_url, &mut self.child, Duration::from_secs(30)).await
    }
}

fn spawn(
    program: &str,
    args: &[String],
    env: &HashMap<String, String>,
    log_file: Option<&std::path::Path>,
) -> anyhow::Result<Child> {
    let log = std::env::var("DINGBRIDGE_E2E_LOG").is_ok();
    let stderr = match log_file {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None if log => Stdio::inherit(),
        None => Stdio::null(),
    };
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", if log { "info" } else { "warn" })
        .envs(env)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {program}"))
}
