//! `bench` — measures dingbridge across real processes on loopback and prints a plain-text table.
//!
//! It builds nothing: it starts the already-built `dingtalk-emulator` and `dingbridge-proc` binaries
//! found next to itself (same target directory), a cloud on SQLite and a local on a fresh PostgreSQL
//! database (dropped at the end), then measures, in this order:
//!
//! 1. throughput: `--messages` messages posted to local by `--concurrency` callers (accepted/s,
//!    latency of the `202`), delivered/s end to end (until the emulator has accepted every
//!    `asyncsend_v2`), and how many app tokens were fetched meanwhile (run first, on a fresh cloud,
//!    so the count covers the cloud's whole life so far);
//! 2. the latency the cloud relay adds per message (`--relay-samples` sends, alternately straight to
//!    the emulator and through `POST /relay/v1/messages`);
//! 3. full login round trips through local, cloud and emulator (`--logins`), then the same against a
//!    single dev-mode process;
//! 4. the relay's accept path under `wrk` (`--relay-load-secs` at c=16 and at c=64, unique keys,
//!    on a fresh cloud whose sender keeps DingTalk's pace) beside a bare HTTP round trip to the
//!    emulator at the same concurrency as the reference, and the event callback under `wrk`
//!    (`--event-load-secs`, alone and during a purge of 1,000,000 expired nonces); then a soak:
//!    `--soak-rate` messages/s through local, cloud and emulator for `--soak-secs` (the `202`
//!    latency, delivery, and each process's RSS growth over the second half); then the relay
//!    load again against the soak's unpaced cloud, for comparison;
//! 5. peak RSS (`VmHWM`) of the local and cloud processes;
//! 6. the OpenID Provider on the dev-mode process: `--oidc-samples` sequential authorize→token
//!    round trips for an already signed-in session (`GET /oidc/authorize` with the session cookie
//!    → 302 with a code → `POST /oidc/token`), then `--oidc-token-requests` refresh-token grants
//!    from `--oidc-concurrency` callers (each rotating its own chain), as token-endpoint requests/s.
//!
//! 7. the burst (`--burst`): DingTalk's real 20 calls/s at the emulator, the default governor;
//! 8. the monthly quota (`--quota N`): N metered calls left at the emulator, N + 1 messages; the
//!    last waits as `waiting_quota`, no call is made for it, and it goes out after the emulator's
//!    month turns and `dingbridge quota resume`.
//! 9. several instances (`--cluster N`): N messages through 1 cloud + 1 local, then through
//!    2 clouds + 2 locals, each set on its own two PostgreSQL databases, the emulator enforcing
//!    20 calls/s: accepted/s, delivered/s and the busiest 1-second window (the cluster-wide
//!    governor's measured peak rate). On two cores a second instance shows its overhead, not a
//!    speed-up, and delivery is DingTalk's pace either way.
//!
//! Every loop is bounded by its count and by a global deadline; all traffic stays on 127.0.0.1.
//! Run it with `cargo run --release -p tests --bin bench -- [options]` or `bench/run.sh`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use adapters::outbound::postgres::testing::TestDatabase;
use anyhow::{Context, bail, ensure};
use clap::Parser;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tests::procs::{Proc, free_port};
use tokio::process::{Child, Command};

const CORP: &str = "dingemucorp0001";
const APP_KEY: &str = "dingemuappkey0001";
const APP_SECRET: &str = "emulator-app-secret";
const AGENT_ID: i64 = 300_001;
const ASYNCSEND: &str = "/topapi/message/corpconversation/asyncsend_v2";
const APP_TOKEN: &str = "/v1.0/oauth2/accessToken";
const SERVICE_TOKEN: &str = "bench-service-token-0123456789";
const RELAY_CLIENT: (&str, &str) = ("bench-local", "bench-relay-secret-0123456789");
/// The fixture user who approves every login.
const LOGIN_USER: &str = "manager4220";
/// How many generated users (`user0001..`) the emulator's built-in fixture has; messages are spread
/// over them so no one reaches the emulator's daily limit of 500 per user.
const GENERATED_USERS: usize = 400;
/// How often the emulator is asked how many messages it has accepted.
const DELIVERY_POLL: Duration = Duration::from_millis(200);
/// Per-request timeout of the benchmark's HTTP clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The benchmark's OIDC relying party (dev mode).
const OIDC_CLIENT: (&str, &str) = ("bench-rp", "bench-rp-secret-0123456789");
const OIDC_REDIRECT: &str = "http://127.0.0.1:9/bench/callback";

/// Targets.
const TARGET_ACCEPTED_PER_SEC: f64 = 1500.0;
const TARGET_ACCEPT_P99_MS: f64 = 50.0;
const TARGET_RSS_MB: f64 = 64.0;
const TARGET_TOKEN_CALLS: usize = 1;
const TARGET_RELAY_ACCEPT_PER_SEC: f64 = 5000.0;
const TARGET_RELAY_ACCEPT_P99_MS: f64 = 15.0;
const TARGET_EVENTS_PER_SEC: f64 = 8000.0;
const TARGET_SOAK_P99_MS: f64 = 50.0;
const TARGET_SOAK_MAX_MS: f64 = 250.0;
/// RSS growth allowed over the second half of the soak, percent.
const TARGET_SOAK_RSS_GROWTH_PCT: f64 = 10.0;
const TARGET_EVENTS_P99_MS: f64 = 10.0;
const TARGET_EVENTS_PURGE_P99_MS: f64 = 100.0;
/// Expired nonces the cloud purges while the second event load runs.
const EXPIRED_NONCES: u64 = 1_000_000;
/// The event subscription of the benchmark's event cloud (docs/dingtalk-api.md §E.1).
const EVENTS_TOKEN: &str = "benchEventsToken";

/// Benchmark of dingbridge (emulator + cloud + local on loopback, and dev mode).
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Messages posted to local in the throughput run.
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Concurrent callers in the throughput run.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Sequential full logins (split deployment, then dev mode).
    #[arg(long, default_value_t = 200)]
    logins: usize,
    /// Sequential sends per path (direct to the emulator, through the cloud relay).
    #[arg(long, default_value_t = 1000)]
    relay_samples: usize,
    /// Sequential authorize→token round trips (dev mode, signed in).
    #[arg(long, default_value_t = 200)]
    oidc_samples: usize,
    /// Refresh-token grants in the token-endpoint run (dev mode).
    #[arg(long, default_value_t = 2000)]
    oidc_token_requests: usize,
    /// Concurrent callers in the token-endpoint run (each its own grant).
    #[arg(long, default_value_t = 16)]
    oidc_concurrency: usize,
    /// Messages in the burst run under DingTalk's real limit (0 skips it; at 18 calls/s 2,000
    /// take about 111 s).
    #[arg(long, default_value_t = 2000)]
    burst: usize,
    /// Metered calls the emulator allows in the quota run, which posts one message more (0 skips
    /// it): that one must wait as `waiting_quota` and go out after the month turns.
    #[arg(long, default_value_t = 5)]
    quota: usize,
    /// Messages through 1 cloud + 1 local and then 2 clouds + 2 locals on PostgreSQL, under
    /// DingTalk's real 20 calls/s (0 skips it; at 18 calls/s 1,000 take about 56 s per set).
    #[arg(long, default_value_t = 1000)]
    cluster: usize,
    /// Seconds of `wrk` load on `POST /relay/v1/messages` at each of c=16 and c=64 (0 skips it;
    /// needs `wrk`, which bench/run.sh installs).
    #[arg(long, default_value_t = 10)]
    relay_load_secs: u64,
    /// Seconds of `wrk` load on the event callback (`POST /dingtalk/events`, c=16), once on its
    /// own and once while the cloud purges 1,000,000 expired nonces (0 skips both; needs `wrk`
    /// and `sqlite3`, which bench/run.sh installs).
    #[arg(long, default_value_t = 10)]
    event_load_secs: u64,
    /// Seconds of the soak: a steady `--soak-rate` messages/s posted to local (split deployment,
    /// delivered through the cloud to the emulator); 0 skips it.
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,
    /// Messages per second in the soak.
    #[arg(long, default_value_t = 100)]
    soak_rate: u64,
    /// Global deadline, seconds.
    #[arg(long, default_value_t = 1500)]
    deadline_secs: u64,
}

/// The global deadline every loop checks.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn check(self, what: &str) -> anyhow::Result<()> {
        if Instant::now() >= self.0 {
            bail!("global deadline passed during {what}");
        }
        Ok(())
    }
}

/// A child process of ours whose pid we keep (for `/proc/<pid>/status`); killed when dropped.
struct Server {
    base_url: String,
    child: Child,
}

impl Server {
    /// Starts `dingbridge-proc [--config FILE] serve --bind 127.0.0.1:<port>` with exactly `env`
    /// (plus `PATH`), like `tests::procs`, and waits until `/healthz` answers.
    async fn start(
        program: &Path,
        port: u16,
        config: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let mut args = Vec::new();
        if let Some(config) = config {
            args.extend(["--config".to_owned(), config.display().to_string()]);
        }
        args.extend(["serve".to_owned(), "--bind".to_owned(), format!("127.0.0.1:{port}")]);
        let log = std::env::var("DINGBRIDGE_E2E_LOG").is_ok();
        let mut child = Command::new(program)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", if log { "info" } else { "warn" })
            .envs(env)
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let started = Instant::now();
        loop {
            if let Ok(res) = client.get(format!("{base_url}/healthz")).send().await
                && res.status().is_success()
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited before becoming healthy: {status}", program.display());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("{base_url} not healthy after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { base_url, child })
    }

    /// Peak resident set size (`VmHWM`), in MiB.
    fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        self.status_mb("VmHWM:")
    }

    /// Resident set size now (`VmRSS`), in MiB.
    fn rss_mb(&self) -> anyhow::Result<f64> {
        self.status_mb("VmRSS:")
    }

    /// A `kB` figure of `/proc/<pid>/status` (`field` with its colon), in MiB.
    fn status_mb(&self, field: &str) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the process has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
        let kb: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .with_context(|| format!("no {field} in /proc/<pid>/status"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {field}"))?;
        Ok(kb / 1024.0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// Sorted latencies in milliseconds.
struct Latencies(Vec<f64>);

impl Latencies {
    fn new(durations: &[Duration]) -> Self {
        let mut ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Self(ms)
    }

    /// Nearest-rank percentile (`q` in 0..=1); 0 when empty.
    fn pct(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn mean(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }

    fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(0.0)
    }
}

/// One row of the printed table.
struct Row {
    figure: String,
    value: String,
    target: String,
    result: String,
}

fn row(figure: impl Into<String>, value: impl Into<String>) -> Row {
    Row { figure: figure.into(), value: value.into(), target: String::new(), result: String::new() }
}

fn judged(figure: impl Into<String>, value: impl Into<String>, target: impl Into<String>, pass: bool) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        target: target.into(),
        result: if pass { "PASS" } else { "MISS" }.to_owned(),
    }
}

fn print_table(title: &str, rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.figure.len()).max().unwrap_or(0).max(6);
    let w1 = rows.iter().map(|r| r.value.len()).max().unwrap_or(0).max(5);
    let w2 = rows.iter().map(|r| r.target.len()).max().unwrap_or(0).max(6);
    println!("{title}");
    println!("{:<w0$}  {:>w1$}  {:<w2$}  result", "figure", "value", "target");
    println!("{}", "-".repeat(w0 + w1 + w2 + 12));
    for r in rows {
        if r.value.is_empty() && r.target.is_empty() {
            println!("{}", r.figure);
        } else {
            println!("{:<w0$}  {:>w1$}  {:<w2$}  {}", r.figure, r.value, r.target, r.result);
        }
    }
}

/// The emulator's admin API.
struct Admin {
    base: String,
    client: reqwest::Client,
}

impl Admin {
    async fn calls(&self, path: &str) -> anyhow::Result<usize> {
        let calls: Vec<IgnoredAny> = self
            .client
            .get(format!("{}/_admin/calls", self.base))
            .query(&[("path", path)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(calls.len())
    }

    /// How many `asyncsend_v2` calls the emulator accepted (errcode 0).
    /// How many work notifications the emulator recorded (`GET /_admin/sends/count`: polling the
    /// whole list every 200 ms held the emulator's lock long enough, late in a run, to bunch the
    /// very calls it counted).
    async fn sends(&self) -> anyhow::Result<usize> {
        let count: Value = self
            .client
            .get(format!("{}/_admin/sends/count", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        count["count"].as_u64().and_then(|n| usize::try_from(n).ok()).context("no count in /_admin/sends/count")
    }

    async fn approve(&self, who: &str) -> anyhow::Result<()> {
        self.client
            .post(format!("{}/_admin/consent", self.base))
            .json(&json!({"mode": "approve", "who": who}))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

fn user(i: usize) -> String {
    format!("user{:04}", i % GENERATED_USERS + 1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.messages > 0 && args.concurrency > 0, "--messages and --concurrency must be positive");
    let deadline = Deadline(Instant::now() + Duration::from_secs(args.deadline_secs));
    let bin_dir = std::env::current_exe()?.parent().context("the bench binary has no directory")?.to_path_buf();
    let emulator_bin = bin_dir.join("dingtalk-emulator");
    let dingbridge_bin = bin_dir.join("dingbridge-proc");
    for bin in [&emulator_bin, &dingbridge_bin] {
        ensure!(bin.exists(), "{} is missing: build it first (cargo build --release -p tests --bins)", bin.display());
    }
    let db = TestDatabase::create().await.map_err(anyhow::Error::msg)?;
    let outcome = tokio::time::timeout(
        Duration::from_secs(args.deadline_secs + 30),
        run(&args, deadline, &emulator_bin, &dingbridge_bin, db.url()),
    )
    .await;
    // The processes are gone (killed when `run` returned or was cancelled): drop the database.
    let dropped = db.drop_database().await.map_err(anyhow::Error::msg);
    let rows = outcome.context("global deadline passed")??;
    dropped?;
    print_table(
        &format!(
            "dingbridge benchmark: messages={} concurrency={} logins={} relay-samples={} (127.0.0.1, release build)",
            args.messages, args.concurrency, args.logins, args.relay_samples
        ),
        &rows,
    );
    Ok(())
}

async fn run(
    args: &Args,
    deadline: Deadline,
    emulator_bin: &Path,
    dingbridge_bin: &Path,
    database_url: &str,
) -> anyhow::Result<Vec<Row>> {
    let emulator_program = emulator_bin.to_str().context("non-UTF-8 emulator path")?;
    let dir = TempDir(std::env::temp_dir().join(format!("dingbridge-bench-{}-{}", std::process::id(), free_port()?)));
    std::fs::create_dir_all(&dir.0)?;
    let emulator = Proc::emulator(emulator_program).await?;
    let emu = emulator.base_url.clone();
    let admin = Admin { base: emu.clone(), client: reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()? };

    let (cloud_port, local_port) = (free_port()?, free_port()?);
    let cloud_url = format!("http://127.0.0.1:{cloud_port}");
    let local_url = format!("http://127.0.0.1:{local_port}");
    let cloud_text =
        cloud_toml(&cloud_url, &dir.0.join("cloud.db"), &emu, &local_url, Some(tests::stack::UNPACED_RATE));
    let cloud_config = dir.0.join("cloud.toml");
    std::fs::write(&cloud_config, cloud_text)?;
    let cloud = Server::start(dingbridge_bin, cloud_port, Some(&cloud_config), &HashMap::new())
        .await
        .context("starting the cloud")?;
    let local = Server::start(
        dingbridge_bin,
        local_port,
        None,
        &env(&[
            ("DINGBRIDGE_MODE", "local".into()),
            ("DINGBRIDGE_PUBLIC_URL", local_url.clone()),
            ("DATABASE_URL", database_url.to_owned()),
            ("DINGDING_CLOUD_HOST", cloud_url.clone()),
            ("DINGDING_SECRET_USER", RELAY_CLIENT.0.into()),
            ("DINGDING_SECRET_PASSWORD", RELAY_CLIENT.1.into()),
            ("DINGBRIDGE_DINGTALK__CORP_ID", CORP.into()),
            ("DINGBRIDGE_API__SERVICE_TOKENS", format!("[\"{SERVICE_TOKEN}\"]")),
            // Every benchmark sign-in comes from 127.0.0.1, back to back: lift the sign-in limits.
            ("DINGBRIDGE_LOGIN__PER_ADDRESS_PER_MINUTE", "10000".into()),
            ("DINGBRIDGE_LOGIN__TOTAL_PER_SECOND", "10000".into()),
        ]),
    )
    .await
    .context("starting local")?;

    let mut rows = Vec::new();
    eprintln!("bench: throughput ({} messages, {} callers)", args.messages, args.concurrency);
    rows.extend(throughput(args, deadline, &local.base_url, &admin).await?);
    eprintln!("bench: relay latency ({} samples per path)", args.relay_samples);
    rows.extend(relay_latency(args.relay_samples, deadline, &emu, &cloud.base_url).await?);
    admin.approve(LOGIN_USER).await?;
    eprintln!("bench: logins through local + cloud ({})", args.logins);
    let split = logins(args.logins, deadline, &local.base_url).await?;
    rows.push(row("login round trip, local+cloud+emulator", ""));
    rows.push(row(
        "  p50 / p99 / mean (ms)",
        format!("{:.2} / {:.2} / {:.2}", split.pct(0.5), split.pct(0.99), split.mean()),
    ));

    // The judged loads first, each on a fresh cloud process of its own, while the machine is
    // quiet: after the soak, PostgreSQL (local's 60,000 new rows) and the soak's processes keep
    // a core busy for a while (a full run measured the bare emulator reference at 45,000 req/s
    // after the soak against 80,000–100,000 before it).
    if args.relay_load_secs > 0 {
        // The production setting: the sender paced at DingTalk's limit (the default governor), so
        // the accepted messages queue in the cloud and go out at 18/s behind the load.
        eprintln!("bench: relay accept under wrk load ({} s at c=16 and at c=64)", args.relay_load_secs);
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let config = dir.0.join("cloud-paced.toml");
        std::fs::write(&config, cloud_toml(&url, &dir.0.join("cloud-paced.db"), &emu, &local_url, None))?;
        let paced = Server::start(dingbridge_bin, port, Some(&config), &HashMap::new())
            .await
            .context("starting the paced cloud")?;
        rows.extend(relay_accept_load(args.relay_load_secs, deadline, &emu, &paced.base_url, &dir.0, true)?);
        let rss = paced.peak_rss_mb()?;
        paced.stop().await;
        rows.push(row("  paced cloud peak RSS (MiB)", format!("{rss:.1}")));
    }

    if args.event_load_secs > 0 {
        eprintln!("bench: event callback under wrk load ({} s at c=16, then during a purge)", args.event_load_secs);
        rows.extend(event_load(args.event_load_secs, deadline, dingbridge_bin, &emu, &local_url, &dir.0).await?);
    }

    // Before the unpaced relay load: the messages it accepts would still be draining to the
    // emulator.
    if args.soak_secs > 0 {
        eprintln!(
            "bench: soak ({} s at {} messages/s through local, cloud and emulator)",
            args.soak_secs, args.soak_rate
        );
        rows.extend(soak(args, deadline, &local, &cloud, &admin).await?);
    }

    if args.relay_load_secs > 0 {
        // For comparison, the benchmark's unpaced cloud: its sender sends as fast as the emulator
        // answers, on the same two cores, while the load runs.
        eprintln!("bench: the same relay load with the sender unpaced");
        rows.extend(relay_accept_load(args.relay_load_secs, deadline, &emu, &cloud.base_url, &dir.0, false)?);
    }

    rows.push(row("peak RSS (VmHWM)", ""));
    for (name, server) in [("local", &local), ("cloud", &cloud)] {
        let mb = server.peak_rss_mb()?;
        rows.push(judged(
            format!("  {name} (MiB)"),
            format!("{mb:.1}"),
            format!("< {TARGET_RSS_MB:.0}"),
            mb < TARGET_RSS_MB,
        ));
    }
    local.stop().await;
    cloud.stop().await;

    eprintln!("bench: logins in dev mode ({})", args.logins);
    let dingbridge_program = dingbridge_bin.to_str().context("non-UTF-8 dingbridge path")?;
    let dev = dev_process(dingbridge_program, &dir.0, &emu, "dev", true).await.context("starting dev mode")?;
    let dev_logins = logins(args.logins, deadline, &dev.base_url).await?;
    rows.push(row("login round trip, dev mode (one process)", ""));
    rows.push(row("  p50 / p99 (ms)", format!("{:.2} / {:.2}", dev_logins.pct(0.5), dev_logins.pct(0.99))));
    eprintln!(
        "bench: OIDC in dev mode ({} round trips, {} refresh grants from {} callers)",
        args.oidc_samples, args.oidc_token_requests, args.oidc_concurrency
    );
    rows.extend(oidc(args, deadline, &dev.base_url).await?);
    drop(dev);
    if args.burst > 0 {
        eprintln!("bench: a burst of {} messages for one app under DingTalk's 20 calls/s", args.burst);
        let paced = dev_process(dingbridge_program, &dir.0, &emu, "paced", false).await.context("starting dev mode")?;
        rows.extend(burst(args.burst, deadline, &paced.base_url, &admin).await?);
        drop(paced);
    }
    if args.quota > 0 {
        eprintln!("bench: the monthly quota ({} metered calls left, one message over)", args.quota);
        rows.extend(quota(args.quota, deadline, dingbridge_program, &dir.0, &emu, &admin).await?);
    }
    drop(emulator);
    if args.cluster > 0 {
        eprintln!("bench: {} messages through 1 and then 2 instances of each role on PostgreSQL", args.cluster);
        rows.extend(cluster(args.cluster, deadline, emulator_program, dingbridge_program).await?);
    }
    Ok(rows)
}

/// Posts `n` text messages (message `i` to [`user`]`(i)` with `content(i)`) from 64 callers,
/// round robin over `urls` (each a local's `/api/messages`) with the service `token`; every one
/// must be accepted (`202`), else the error names the status and the answer.
async fn post_all(urls: &[String], token: &str, n: usize, content: impl Fn(usize) -> String) -> anyhow::Result<()> {
    async fn accepted(done: Result<reqwest::Result<reqwest::Response>, tokio::task::JoinError>) -> anyhow::Result<()> {
        let res = done??;
        let status = res.status();
        ensure!(status == StatusCode::ACCEPTED, "a message was not accepted: {status} {}", res.text().await?);
        Ok(())
    }
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, url, token) = (client.clone(), urls[i % urls.len()].clone(), token.to_owned());
        let body = json!({
            "recipients": {"userids": [user(i)]},
            "body": {"msgtype": "text", "text": {"content": content(i)}},
        });
        posts.spawn(async move { client.post(url).bearer_auth(token).json(&body).send().await });
        if posts.len() >= 64
            && let Some(done) = posts.join_next().await
        {
            accepted(done).await?;
        }
    }
    while let Some(done) = posts.join_next().await {
        accepted(done).await?;
    }
    Ok(())
}

/// `n` messages posted (64 callers, round robin over the locals) to 1 cloud + 1 local, then to
/// 2 clouds + 2 locals, each set on fresh PostgreSQL databases with its own emulator at 20 calls/s.
async fn cluster(n: usize, deadline: Deadline, emulator: &str, dingbridge: &str) -> anyhow::Result<Vec<Row>> {
    const DINGTALK_LIMIT: u64 = 20;
    let mut rows = vec![row(
        format!("several instances on PostgreSQL: {n} messages, governor 18/s cluster-wide, emulator enforcing 20/s"),
        "",
    )];
    for instances in [1, 2] {
        let set = tests::cluster::cluster_of(instances, emulator, dingbridge, &[], &[]).await;
        let admin = Admin {
            base: set.emulator.base_url.clone(),
            client: reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?,
        };
        admin
            .client
            .post(format!("{}/_admin/limits", admin.base))
            .json(&json!({"qps": 20}))
            .send()
            .await?
            .error_for_status()?;
        let locals: Vec<String> = set.locals.iter().map(|l| format!("{}/api/messages", l.base_url)).collect();
        let started = Instant::now();
        post_all(&locals, tests::split::SERVICE_TOKEN, n, |i| format!("bench cluster {instances} #{i}")).await?;
        let accepted = started.elapsed();
        while admin.sends().await? < n {
            deadline.check("the cluster run")?;
            tokio::time::sleep(DELIVERY_POLL).await;
        }
        let delivered = started.elapsed();
        let limits: Value = admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?;
        let (busiest, throttled) =
            (limits["busiest_window"].as_u64().unwrap_or(0), limits["throttled"].as_u64().unwrap_or(0));
        set.finish().await;
        #[allow(clippy::cast_precision_loss)]
        let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
        rows.push(row(format!("  {instances} cloud + {instances} local"), ""));
        rows.push(row("    accepted at local (messages/s)", format!("{:.0}", per_sec(accepted))));
        rows.push(row("    delivered at the emulator (messages/s)", format!("{:.1}", per_sec(delivered))));
        rows.push(judged(
            "    the governor's peak: busiest 1-s window (calls)",
            busiest.to_string(),
            format!("<= {DINGTALK_LIMIT}"),
            busiest <= DINGTALK_LIMIT,
        ));
        rows.push(judged("    throttle answers (90018)", throttled.to_string(), "= 0", throttled == 0));
    }
    rows.push(row("  (2 cores: the second set shows the cost of sharing, not a speed-up)", ""));
    Ok(rows)
}

/// A cloud's config on SQLite at `db` against the emulator at `emu`, serving the bench's relay
/// client; `rate` sets the governor (`None`: its default, DingTalk's real pace).
fn cloud_toml(cloud_url: &str, db: &Path, emu: &str, local_url: &str, rate: Option<f64>) -> String {
    let governor = rate.map(|r| format!("[governor]\nrate_per_second = {r}\n")).unwrap_or_default();
    format!(
        r#"
mode = "cloud"
public_url = "{cloud_url}"
[database]
url = "sqlite://{db}"
[dingtalk]
login_base = "{emu}"
api_base = "{emu}"
oapi_base = "{emu}"
app_key = "{APP_KEY}"
app_secret = "{APP_SECRET}"
agent_id = {AGENT_ID}
corp_id = "{CORP}"
{governor}[[relay.clients]]
id = "{id}"
secret = "{secret}"
complete_url_origins = ["{local_url}"]
"#,
        db = db.display(),
        id = RELAY_CLIENT.0,
        secret = RELAY_CLIENT.1,
    )
}

/// A dev-mode process named `name` (its own SQLite file) against the emulator at `emu`, with one
/// OIDC client and the sign-in limits lifted; `unpaced` sets the governor to
/// [`tests::stack::UNPACED_RATE`], otherwise it keeps its default (18 calls/s per API).
async fn dev_process(program: &str, dir: &Path, emu: &str, name: &str, unpaced: bool) -> anyhow::Result<Proc> {
    let port = free_port()?;
    let (config, vars) = dev_setup(dir, emu, name, port, unpaced)?;
    Proc::dingbridge(program, port, Some(&config), vars).await
}

/// The config file and environment of [`dev_process`] `name` on `port` (also for running the
/// CLI against its database).
fn dev_setup(
    dir: &Path,
    emu: &str,
    name: &str,
    port: u16,
    unpaced: bool,
) -> anyhow::Result<(PathBuf, HashMap<String, String>)> {
    let url = format!("http://127.0.0.1:{port}");
    // `[oidc]` with one confidential client; the token-endpoint budget raised for the benchmark.
    let toml = format!(
        r#"
[oidc]
token_requests_per_minute = 10000000
[[oidc.clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{OIDC_REDIRECT}"]
"#,
        id = OIDC_CLIENT.0,
        secret = OIDC_CLIENT.1,
    );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml)?;
    let mut vars = vec![
        ("DINGBRIDGE_MODE", "dev".to_owned()),
        ("DINGBRIDGE_PUBLIC_URL", url),
        ("DINGBRIDGE_DATABASE__URL", format!("sqlite://{}", dir.join(format!("{name}.db")).display())),
        ("DINGBRIDGE_DINGTALK__LOGIN_BASE", emu.to_owned()),
        ("DINGBRIDGE_DINGTALK__API_BASE", emu.to_owned()),
        ("DINGBRIDGE_DINGTALK__OAPI_BASE", emu.to_owned()),
        ("DINGBRIDGE_DINGTALK__APP_KEY", APP_KEY.to_owned()),
        ("DINGBRIDGE_DINGTALK__APP_SECRET", APP_SECRET.to_owned()),
        ("DINGBRIDGE_DINGTALK__AGENT_ID", AGENT_ID.to_string()),
        ("DINGBRIDGE_DINGTALK__CORP_ID", CORP.to_owned()),
        ("DINGBRIDGE_API__SERVICE_TOKENS", format!("[\"{SERVICE_TOKEN}\"]")),
        // Every benchmark sign-in comes from 127.0.0.1, back to back: lift the sign-in limits.
        ("DINGBRIDGE_LOGIN__PER_ADDRESS_PER_MINUTE", "10000".to_owned()),
        ("DINGBRIDGE_LOGIN__TOTAL_PER_SECOND", "10000".to_owned()),
    ];
    if unpaced {
        // Measures dingbridge, not DingTalk's per-API limit: unpaced, like the emulator.
        vars.push(("DINGBRIDGE_GOVERNOR__RATE_PER_SECOND", tests::stack::UNPACED_RATE.to_string()));
    }
    Ok((config, env(&vars)))
}

/// The monthly quota (docs/dingtalk-api.md §G.3) on a fresh dev process: the emulator allows `n`
/// more metered calls this month, `n + 1` messages are posted; `n` are delivered, the last waits
/// as `waiting_quota` at local with no call made for it (checked for 3 s); then the emulator's
/// month turns and `dingbridge quota resume` lets it go. Nothing may be lost or sent twice.
async fn quota(
    n: usize,
    deadline: Deadline,
    program: &str,
    dir: &Path,
    emu: &str,
    admin: &Admin,
) -> anyhow::Result<Vec<Row>> {
    let port = free_port()?;
    let (config, vars) = dev_setup(dir, emu, "quota", port, false)?;
    let dev = Proc::dingbridge(program, port, Some(&config), vars.clone()).await.context("starting dev mode")?;
    let limits: Value = admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?;
    let used = limits["metered_this_month"][CORP].as_u64().unwrap_or(0);
    let allowed = used + u64::try_from(n)?;
    let set = |body: Value| admin.client.post(format!("{}/_admin/limits", admin.base)).json(&body).send();
    set(json!({"monthly_quota": allowed})).await?.error_for_status()?;
    let over_quota = |v: &Value| v["over_quota"].as_u64().unwrap_or(0);
    let sends_before = admin.sends().await?;
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let run_id = std::process::id();
    let mut ids = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let body = json!({
            "recipients": {"userids": [user(i)]},
            "body": {"msgtype": "text", "text": {"content": format!("bench {run_id} quota #{i}")}},
        });
        let res =
            client.post(format!("{}/api/messages", dev.base_url)).bearer_auth(SERVICE_TOKEN).json(&body).send().await?;
        ensure!(res.status() == StatusCode::ACCEPTED, "a quota message was not accepted: {}", res.status());
        let id = res.json::<Value>().await?["id"].as_str().context("no id")?.to_owned();
        ids.push(id);
    }
    while admin.sends().await? < sends_before + n {
        deadline.check("the quota scenario")?;
        tokio::time::sleep(DELIVERY_POLL).await;
    }
    // The one over the quota says why it waits, at local: `queued` until its first attempt,
    // then `waiting_quota` (given 30 s; what it says then is printed).
    let asked_from = Instant::now();
    let waiting_reason = loop {
        deadline.check("the quota scenario")?;
        let mut reasons = Vec::new();
        for id in &ids {
            let view: Value = client
                .get(format!("{}/api/messages/{id}", dev.base_url))
                .bearer_auth(SERVICE_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            if let Some(reason) = view["waiting"].as_str() {
                reasons.push(reason.to_owned());
            }
        }
        match &reasons[..] {
            [reason] if reason == "waiting_quota" || asked_from.elapsed() > Duration::from_secs(30) => {
                break reason.clone();
            }
            _ if asked_from.elapsed() > Duration::from_secs(30) => break format!("{reasons:?}"),
            _ => tokio::time::sleep(DELIVERY_POLL).await,
        }
    };
    let refused: Value = admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held: Value = admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?;
    let calls_while_held = over_quota(&held) - over_quota(&refused);
    let sent_while_held = admin.sends().await? - (sends_before + n);
    // DingTalk's month turns; the operator lets the corp's metered calls go again.
    admin
        .client
        .post(format!("{}/_admin/clock", admin.base))
        .json(&json!({"advance_secs": 32 * 24 * 3600}))
        .send()
        .await?
        .error_for_status()?;
    let resumed = Command::new(program)
        .args(["--config", &config.display().to_string(), "quota", "resume", "--corp-id", CORP])
        .envs(&vars)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .await?;
    ensure!(resumed.success(), "dingbridge quota resume failed");
    let resumed_at = Instant::now();
    while admin.sends().await? < sends_before + n + 1 {
        deadline.check("the quota scenario")?;
        tokio::time::sleep(DELIVERY_POLL).await;
    }
    let after_resume = resumed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let total = admin.sends().await? - sends_before;
    set(json!({"monthly_quota": null})).await?.error_for_status()?;
    drop(dev);
    Ok(vec![
        row(format!("quota: the emulator allows {n} more metered calls this month; {} messages", n + 1), ""),
        judged(
            "  the last one's reason at local",
            waiting_reason.clone(),
            "waiting_quota",
            waiting_reason == "waiting_quota",
        ),
        judged(
            "  calls / sends while it was held (3 s)",
            format!("{calls_while_held} / {sent_while_held}"),
            "0 / 0",
            calls_while_held == 0 && sent_while_held == 0,
        ),
        row("  delivered after the month turned and quota resume (s)", format!("{:.1}", after_resume.as_secs_f64())),
        judged("  delivered in all (each once)", format!("{total}/{}", n + 1), format!("= {}", n + 1), total == n + 1),
    ])
}

/// `n` messages posted at once to a dev process with the default governor, the emulator enforcing
/// DingTalk's 20 calls/s per app and API (docs/dingtalk-api.md §G.1): throttle answers, the
/// busiest second at the emulator, metered calls per delivered message (docs/dingtalk-api.md §G.3).
async fn burst(n: usize, deadline: Deadline, base: &str, admin: &Admin) -> anyhow::Result<Vec<Row>> {
    const RATE: usize = 18;
    const DINGTALK_LIMIT: usize = 20;
    admin
        .client
        .post(format!("{}/_admin/limits", admin.base))
        .json(&json!({"qps": 20}))
        .send()
        .await?
        .error_for_status()?;
    let limits = |v: serde_json::Value| v["throttled"].as_u64().unwrap_or(0);
    let throttled_before =
        limits(admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?);
    let sends_before = admin.sends().await?;
    let started_ms = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
    let started = Instant::now();
    let run_id = std::process::id();
    post_all(&[format!("{base}/api/messages")], SERVICE_TOKEN, n, |i| format!("bench {run_id} burst #{i}")).await?;
    while admin.sends().await? < sends_before + n {
        deadline.check("the burst")?;
        tokio::time::sleep(DELIVERY_POLL).await;
    }
    let elapsed = started.elapsed();
    let throttled = limits(admin.client.get(format!("{}/_admin/limits", admin.base)).send().await?.json().await?)
        - throttled_before;
    #[derive(serde::Deserialize)]
    struct Call {
        at_ms: i64,
    }
    let calls: Vec<Call> = admin
        .client
        .get(format!("{}/_admin/calls", admin.base))
        .query(&[("path", ASYNCSEND)])
        .send()
        .await?
        .json()
        .await?;
    let times: Vec<i64> = calls.iter().map(|c| c.at_ms).filter(|t| *t >= started_ms).collect();
    let mut windows: HashMap<i64, usize> = HashMap::new();
    for t in &times {
        *windows.entry(t.div_euclid(1000)).or_default() += 1;
    }
    let busiest = windows.values().copied().max().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let per_message = times.len() as f64 / n as f64;
    Ok(vec![
        row(format!("burst: {n} messages for one app, governor 18/s, emulator enforcing 20/s"), ""),
        judged("  delivered", format!("{n}/{n}"), format!("= {n}"), true),
        judged("  throttle answers (90018)", throttled.to_string(), "= 0", throttled == 0),
        // Calls leave 1/18 s apart; where they land in the emulator's fixed windows also depends
        // on each call's own latency, so a window can hold one more than the pace. DingTalk's 20
        // is the limit that must hold (and no call may be throttled).
        row("  the governor's pace (calls/s)", RATE.to_string()),
        judged(
            "  busiest 1-s window at the emulator (calls)",
            busiest.to_string(),
            format!("<= {DINGTALK_LIMIT}"),
            busiest <= DINGTALK_LIMIT,
        ),
        row("  time to deliver all (s)", format!("{:.1}", elapsed.as_secs_f64())),
        judged("  metered calls per delivered message", format!("{per_message:.2}"), "<= 1.05", per_message <= 1.05),
    ])
}

/// `--messages` messages to local from `--concurrency` callers; delivery counted at the emulator.
async fn throughput(args: &Args, deadline: Deadline, local: &str, admin: &Admin) -> anyhow::Result<Vec<Row>> {
    let n = args.messages;
    let tokens_before = admin.calls(APP_TOKEN).await?;
    let sends_before = admin.sends().await?;
    let client =
        reqwest::Client::builder().timeout(REQUEST_TIMEOUT).pool_max_idle_per_host(args.concurrency).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let run_id = std::process::id();
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, next, url) = (client.clone(), next.clone(), format!("{local}/api/messages"));
        workers.push(tokio::spawn(async move {
            let mut accepted: Vec<(Duration, Instant)> = Vec::new();
            let mut failures: Vec<String> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if Instant::now() >= deadline.0 {
                    failures.push("global deadline passed".to_owned());
                    break;
                }
                let body = json!({
                    "recipients": {"userids": [user(i)]},
                    "body": {"msgtype": "text", "text": {"content": format!("bench {run_id} throughput #{i}")}},
                });
                let sent = Instant::now();
                match client.post(&url).bearer_auth(SERVICE_TOKEN).json(&body).send().await {
                    Ok(res) if res.status() == StatusCode::ACCEPTED => {
                        let done = Instant::now();
                        // Read the body so the connection goes back to the pool.
                        let _ = res.bytes().await;
                        accepted.push((done - sent, done));
                    }
                    Ok(res) => failures.push(format!("HTTP {}", res.status())),
                    Err(err) => failures.push(err.to_string()),
                }
            }
            (accepted, failures)
        }));
    }

    // Meanwhile, count what the emulator has accepted, every DELIVERY_POLL.
    let (mut latencies, mut last_accept, mut failures) = (Vec::with_capacity(n), started, Vec::new());
    let mut delivered_at = None;
    let mut sends;
    // One task awaiting every caller, so the poll below can wait on it or on the timer.
    let mut workers = tokio::spawn(async move {
        let mut results = Vec::with_capacity(workers.len());
        for worker in workers {
            results.push(worker.await);
        }
        results
    });
    let mut workers_done = false;
    loop {
        if !workers_done {
            tokio::select! {
                results = &mut workers => {
                    for result in results.context("the throughput callers panicked")? {
                        let (accepted, failed) = result.context("a throughput caller panicked")?;
                        for (latency, done) in accepted {
                            latencies.push(latency);
                            last_accept = last_accept.max(done);
                        }
                        failures.extend(failed);
                    }
                    workers_done = true;
                }
                () = tokio::time::sleep(DELIVERY_POLL) => {}
            }
        } else {
            tokio::time::sleep(DELIVERY_POLL).await;
        }
        sends = admin.sends().await? - sends_before;
        let expected = if workers_done { latencies.len() } else { n };
        if sends >= expected && workers_done {
            delivered_at = Some(Instant::now());
            break;
        }
        if Instant::now() >= deadline.0 {
            break;
        }
    }
    let accepted = latencies.len();
    let tokens = admin.calls(APP_TOKEN).await? - tokens_before;
    let asyncsend_calls = admin.calls(ASYNCSEND).await?;
    if !failures.is_empty() {
        eprintln!("bench: {} of {n} messages were not accepted, first: {}", failures.len(), failures[0]);
    }
    let lat = Latencies::new(&latencies);
    let accept_secs = (last_accept - started).as_secs_f64();
    let accepted_rate = if accept_secs > 0.0 { accepted as f64 / accept_secs } else { 0.0 };
    let mut rows = vec![
        row(format!("throughput: {n} messages to local, {} callers", args.concurrency), ""),
        judged("  messages answered 202", format!("{accepted}/{n}"), format!("= {n}"), accepted == n),
        judged(
            "  accepted/s at local",
            format!("{accepted_rate:.0}"),
            format!(">= {TARGET_ACCEPTED_PER_SEC:.0}"),
            accepted_rate >= TARGET_ACCEPTED_PER_SEC,
        ),
        row("  202 latency p50 (ms)", format!("{:.2}", lat.pct(0.5))),
        judged(
            "  202 latency p99 (ms)",
            format!("{:.2}", lat.pct(0.99)),
            format!("< {TARGET_ACCEPT_P99_MS:.0}"),
            lat.pct(0.99) < TARGET_ACCEPT_P99_MS,
        ),
        row("  202 latency max (ms)", format!("{:.2}", lat.max())),
    ];
    match delivered_at {
        Some(at) => {
            let secs = (at - started).as_secs_f64();
            rows.push(row("  delivered/s end to end", format!("{:.0}", accepted as f64 / secs)));
            rows.push(row("  time to deliver all (s)", format!("{secs:.2}")));
        }
        None => rows.push(judged(
            "  delivered before the deadline",
            format!("{sends}/{accepted}"),
            format!("= {accepted}"),
            false,
        )),
    }
    rows.push(judged(
        "  emulator asyncsend_v2 calls / accepted sends",
        format!("{asyncsend_calls} / {sends}"),
        format!("= {accepted}"),
        sends == accepted,
    ));
    rows.push(judged(
        "  app-token calls (accessToken)",
        tokens.to_string(),
        format!("= {TARGET_TOKEN_CALLS}"),
        tokens == TARGET_TOKEN_CALLS,
    ));
    Ok(rows)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppToken {
    access_token: String,
}

/// `samples` sends straight to the emulator alternating with `samples` through the cloud relay.
async fn relay_latency(samples: usize, deadline: Deadline, emu: &str, cloud: &str) -> anyhow::Result<Vec<Row>> {
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let token: AppToken = client
        .post(format!("{emu}/v1.0/oauth2/accessToken"))
        .json(&json!({"appKey": APP_KEY, "appSecret": APP_SECRET}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let run_id = std::process::id();
    let (mut direct, mut relayed) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..samples {
        deadline.check("the relay latency run")?;
        let userid = user(i);
        let body = json!({"msgtype": "text", "text": {"content": format!("bench {run_id} direct #{i}")}});
        let sent = Instant::now();
        let res: Value = client
            .post(format!("{emu}{ASYNCSEND}"))
            .query(&[("access_token", token.access_token.as_str())])
            .json(&json!({"agent_id": AGENT_ID, "userid_list": userid, "msg": body}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        direct.push(sent.elapsed());
        ensure!(res["errcode"] == 0, "direct send #{i} failed: {res}");

        let key = format!("bench-{run_id}-relay-{i}");
        let body = json!({"msgtype": "text", "text": {"content": format!("bench {run_id} relayed #{i}")}});
        let sent = Instant::now();
        let res = client
            .post(format!("{cloud}/relay/v1/messages"))
            .basic_auth(RELAY_CLIENT.0, Some(RELAY_CLIENT.1))
            .json(&json!({"key": key, "corp_id": CORP, "recipients": {"userids": [userid]}, "body": body}))
            .send()
            .await?;
        let status = res.status();
        let _ = res.bytes().await?;
        relayed.push(sent.elapsed());
        ensure!(status.is_success(), "relayed send #{i} answered HTTP {status}");
    }
    let (a, b) = (Latencies::new(&direct), Latencies::new(&relayed));
    Ok(vec![
        row(format!("relay added latency, {samples} sequential sends each"), ""),
        row("  (a) emulator asyncsend_v2 p50 / p99 (ms)", format!("{:.2} / {:.2}", a.pct(0.5), a.pct(0.99))),
        row(
            "  (b) cloud /relay/v1/messages (accept) p50 / p99 (ms)",
            format!("{:.2} / {:.2}", b.pct(0.5), b.pct(0.99)),
        ),
        row(
            "  added (b - a) at p50 / p99 (ms)",
            format!("{:.2} / {:.2}", b.pct(0.5) - a.pct(0.5), b.pct(0.99) - a.pct(0.99)),
        ),
    ])
}

/// What one `wrk` run printed through [`WRK_SCRIPT`]'s `done`.
struct WrkRun {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
}

impl WrkRun {
    #[allow(clippy::cast_precision_loss)]
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `wrk`'s Lua: each request a relayed message with a fresh key (`bench-<run>-<thread>-<n>`) to one
/// of the generated users; `done` prints one `RESULT` line (requests, µs, p50, p99, max in µs,
/// errors including non-2xx answers). Without `RELAY_AUTH` it sends plain `GET`s (the reference).
const WRK_SCRIPT: &str = r#"
local threads = {}
local counter = 0
setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  if os.getenv("RELAY_AUTH") == nil then
    return wrk.format("GET", nil)
  end
  local key = "bench-" .. os.getenv("RUN_ID") .. "-" .. tid .. "-" .. counter
  local user = string.format("user%04d", counter % 400 + 1)
  local body = '{"key":"' .. key .. '","corp_id":"' .. os.getenv("CORP") .. '","recipients":{"userids":["' ..
    user .. '"]},"body":{"msgtype":"text","text":{"content":"bench ' .. key .. '"}}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["Authorization"] = "Basic " .. os.getenv("RELAY_AUTH")}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout + e.status))
end
"#;

/// Runs `wrk -t2 -c<connections> -d<secs>s` on `url` with [`WRK_SCRIPT`]; `relay_auth` (base64 of
/// `id:secret`) makes it post relayed messages, otherwise it sends `GET`s.
fn wrk(script: &Path, url: &str, connections: usize, secs: u64, relay_auth: Option<&str>) -> anyhow::Result<WrkRun> {
    match relay_auth {
        Some(auth) => wrk_with(script, url, connections, secs, &[("RELAY_AUTH", auth)]),
        None => wrk_with(script, url, connections, secs, &[]),
    }
}

/// Runs `wrk -t2 -c<connections> -d<secs>s -s <script> <url>` with `vars` in its environment (and
/// `RUN_ID`, `CORP`) and reads the `RESULT` line the script's `done` prints.
#[allow(clippy::cast_precision_loss)]
fn wrk_with(script: &Path, url: &str, connections: usize, secs: u64, vars: &[(&str, &str)]) -> anyhow::Result<WrkRun> {
    let mut command = std::process::Command::new("wrk");
    command
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s"), "--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .env("RUN_ID", format!("{}-{connections}-{}", std::process::id(), free_port()?))
        .env("CORP", CORP)
        .envs(vars.iter().copied())
        .stderr(Stdio::inherit());
    let output = command.output().context("running wrk (install it: apt-get install wrk)")?;
    ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stdout));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).context("wrk printed no RESULT line")?;
    let n: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
    ensure!(n.len() == 6, "unexpected wrk RESULT line {line:?}");
    Ok(WrkRun {
        requests: n[0],
        seconds: n[1] as f64 / 1e6,
        p50_ms: n[2] as f64 / 1e3,
        p99_ms: n[3] as f64 / 1e3,
        max_ms: n[4] as f64 / 1e3,
        errors: n[5],
    })
}

/// `POST /relay/v1/messages` with unique keys under `wrk` at c=16 and c=64 for `secs` each (the
/// cloud's background sender delivers them to the emulator meanwhile), with a bare HTTP round
/// trip to the emulator (`GET /_admin/limits`) at the same concurrency as the reference.
fn relay_accept_load(
    secs: u64,
    deadline: Deadline,
    emu: &str,
    cloud: &str,
    dir: &Path,
    paced: bool,
) -> anyhow::Result<Vec<Row>> {
    use base64::Engine as _;
    let script = dir.join("relay.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", RELAY_CLIENT.0, RELAY_CLIENT.1));
    let title = if paced {
        format!(
            "relay accept under wrk (-t2, {secs} s each, unique keys), sender at DingTalk's pace (default governor)"
        )
    } else {
        "relay accept under wrk, sender unpaced (10,000/s) beside it — for comparison, not judged".to_owned()
    };
    let mut rows = vec![row(title, "")];
    for connections in [16, 64] {
        deadline.check("the relay accept load")?;
        let bare = wrk(&script, &format!("{emu}/_admin/limits"), connections, secs.div_ceil(2), None)?;
        let run = wrk(&script, &format!("{cloud}/relay/v1/messages"), connections, secs, Some(&auth))?;
        rows.push(row(
            format!("  c={connections} reference: bare emulator GET req/s, p50 / p99 (ms)"),
            format!("{:.0}, {:.2} / {:.2}", bare.per_sec(), bare.p50_ms, bare.p99_ms),
        ));
        let (rate, latency) = (
            (format!("  c={connections} accepted/s"), format!("{:.0}", run.per_sec())),
            (
                format!("  c={connections} p50 / p99 / max (ms)"),
                format!("{:.2} / {:.2} / {:.1}", run.p50_ms, run.p99_ms, run.max_ms),
            ),
        );
        if paced {
            let rate_target = format!(">= {TARGET_RELAY_ACCEPT_PER_SEC:.0}");
            rows.push(judged(rate.0, rate.1, rate_target, run.per_sec() >= TARGET_RELAY_ACCEPT_PER_SEC));
            let p99_target = format!("p99 <= {TARGET_RELAY_ACCEPT_P99_MS:.0}");
            rows.push(judged(latency.0, latency.1, p99_target, run.p99_ms <= TARGET_RELAY_ACCEPT_P99_MS));
        } else {
            rows.push(row(rate.0, rate.1));
            rows.push(row(latency.0, latency.1));
        }
        rows.push(judged(format!("  c={connections} errors"), run.errors.to_string(), "0", run.errors == 0));
    }
    Ok(rows)
}

/// A steady `--soak-rate` messages/s to local for `--soak-secs` (open loop: one post every
/// 1/rate s, each in its own task, so a slow answer never slows the rate), then until every
/// accepted message reached the emulator. Reports the `202` latency, delivery, and each
/// process's RSS growth over the second half (sampled at the half and at the end).
async fn soak(
    args: &Args,
    deadline: Deadline,
    local: &Server,
    cloud: &Server,
    admin: &Admin,
) -> anyhow::Result<Vec<Row>> {
    let (secs, rate) = (args.soak_secs, args.soak_rate.max(1));
    let total = usize::try_from(secs * rate)?;
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
    let sends_before = admin.sends().await?;
    let run_id = std::process::id();
    let url = format!("{}/api/messages", local.base_url);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = Vec::with_capacity(total);
    let mut half_rss = None;
    for i in 0..total {
        tick.tick().await;
        deadline.check("the soak")?;
        if i == total / 2 {
            half_rss = Some((local.rss_mb()?, cloud.rss_mb()?));
        }
        let (client, url) = (client.clone(), url.clone());
        let body = json!({
            "recipients": {"userids": [user(i)]},
            "body": {"msgtype": "text", "text": {"content": format!("bench {run_id} soak #{i}")}},
        });
        posts.push(tokio::spawn(async move {
            let sent = Instant::now();
            let res = client.post(&url).bearer_auth(SERVICE_TOKEN).json(&body).send().await;
            let outcome = match res {
                Ok(res) if res.status() == StatusCode::ACCEPTED => {
                    let _ = res.bytes().await;
                    None
                }
                Ok(res) => {
                    let status = res.status();
                    let body = res.text().await.unwrap_or_default();
                    Some(format!("HTTP {status}: {}", body.chars().take(120).collect::<String>()))
                }
                Err(err) => Some(err.to_string()),
            };
            (outcome, sent.elapsed())
        }));
    }
    let end_rss = (local.rss_mb()?, cloud.rss_mb()?);
    let mut latencies = Vec::with_capacity(total);
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for post in posts {
        match post.await? {
            (None, latency) => latencies.push(latency),
            (Some(why), _) => *refusals.entry(why).or_default() += 1,
        }
    }
    let refused: usize = refusals.values().sum();
    for (why, count) in &refusals {
        eprintln!("bench: soak: {count} post(s) not answered 202: {why}");
    }
    let drained = Instant::now();
    let mut delivered = admin.sends().await? - sends_before;
    while delivered < latencies.len() && drained.elapsed() < Duration::from_secs(120) {
        deadline.check("the soak's delivery")?;
        tokio::time::sleep(DELIVERY_POLL).await;
        delivered = admin.sends().await? - sends_before;
    }
    let lat = Latencies::new(&latencies);
    let (half_local, half_cloud) = half_rss.context("the soak ended before its half")?;
    let growth = |half: f64, end: f64| (end - half) / half * 100.0;
    let mut rows = vec![row(format!("soak: {secs} s at {rate} messages/s, local → cloud → emulator"), "")];
    rows.push(judged("  answered 202", format!("{}/{total}", latencies.len()), format!("= {total}"), refused == 0));
    rows.push(judged(
        "  delivered (emulator asyncsend_v2 calls)",
        format!("{delivered}/{}", latencies.len()),
        format!("= {}", latencies.len()),
        delivered == latencies.len(),
    ));
    rows.push(judged(
        "  202 latency p50 / p99 (ms)",
        format!("{:.2} / {:.2}", lat.pct(0.5), lat.pct(0.99)),
        format!("p99 <= {TARGET_SOAK_P99_MS:.0}"),
        lat.pct(0.99) <= TARGET_SOAK_P99_MS,
    ));
    rows.push(judged(
        "  202 latency max (ms)",
        format!("{:.1}", lat.pct(1.0)),
        format!("<= {TARGET_SOAK_MAX_MS:.0}"),
        lat.pct(1.0) <= TARGET_SOAK_MAX_MS,
    ));
    for (name, half, end) in [("local", half_local, end_rss.0), ("cloud", half_cloud, end_rss.1)] {
        let pct = growth(half, end);
        rows.push(judged(
            format!("  {name} RSS at half → end (MiB), growth"),
            format!("{half:.1} → {end:.1}, {pct:+.1} %"),
            format!("< {TARGET_SOAK_RSS_GROWTH_PCT:.0} %"),
            pct < TARGET_SOAK_RSS_GROWTH_PCT,
        ));
    }
    Ok(rows)
}

/// `wrk`'s Lua for the event callback: each thread loads its share of the pre-signed pushes in
/// `EVENTS_FILE` (one `path<TAB>body` per line, every one a fresh nonce) and sends each once.
const WRK_EVENTS_SCRIPT: &str = r#"
local threads = {}
setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
init = function(args)
  reqs = {}
  local n = 0
  for line in io.lines(os.getenv("EVENTS_FILE")) do
    if n % 2 == tid then
      local tab = string.find(line, "\t", 1, true)
      table.insert(reqs, wrk.format("POST", string.sub(line, 1, tab - 1),
        {["Content-Type"] = "application/json"}, string.sub(line, tab + 1)))
    end
    n = n + 1
  end
  idx = 0
end
request = function()
  idx = idx % #reqs + 1
  return reqs[idx]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout + e.status))
end
"#;

/// Writes `count` pushes of DingTalk's contact event (`user_modify_org`, current HTTP format,
/// docs/dingtalk-api.md §E.6: a fresh `eventId` each), encrypted and signed for `owner` (§E.2,
/// §E.3) with fresh nonces, one `path<TAB>body` line each.
fn write_pushes(file: &Path, crypto: &tests::emulator::CallbackCrypto, count: usize, tag: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    for i in 0..count {
        let event = json!({
            "EventType": "user_modify_org",
            "EventTime": now_ms,
            "CorpId": CORP,
            "BizId": format!("{tag}{i:012}"),
            "eventId": format!("{tag}-{i:012}"),
            "timeStamp": now_ms.to_string(),
            "userId": ["user0001"],
        });
        let encrypt = crypto.encrypt(&event.to_string());
        let (timestamp, nonce) = (now_ms.to_string(), format!("{tag}{i:08}"));
        let signature = crypto.signature(&timestamp, &nonce, &encrypt);
        writeln!(
            out,
            "/dingtalk/events?signature={signature}&msg_signature={signature}&timestamp={timestamp}&nonce={nonce}\t{}",
            json!({ "encrypt": encrypt })
        )?;
    }
    out.flush()?;
    Ok(())
}

/// The event callback under `wrk` at c=16 on a cloud of its own (SQLite): once on its own, then
/// with 1,000,000 expired nonces in its table, restarted so its purge job (first run at start,
/// batches of 5,000) deletes them while the load runs.
async fn event_load(
    secs: u64,
    deadline: Deadline,
    dingbridge_bin: &Path,
    emu: &str,
    local_url: &str,
    dir: &Path,
) -> anyhow::Result<Vec<Row>> {
    use base64::Engine as _;
    let aes_key = base64::engine::general_purpose::STANDARD.encode([7_u8; 32]).trim_end_matches('=').to_owned();
    let crypto =
        tests::emulator::CallbackCrypto::new(EVENTS_TOKEN, &aes_key, APP_KEY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let db = dir.join("cloud-events.db");
    let config = dir.join("cloud-events.toml");
    let events = format!("[events]\ntoken = \"{EVENTS_TOKEN}\"\naes_key = \"{aes_key}\"\nowner_key = \"{APP_KEY}\"\n");
    std::fs::write(&config, format!("{}{events}", cloud_toml(&url, &db, emu, local_url, None)))?;
    let script = dir.join("events.lua");
    std::fs::write(&script, WRK_EVENTS_SCRIPT)?;
    let pushes = dir.join("pushes.txt");
    // More pushes than the load can send, so no nonce repeats (a repeat is a 409, counted as an error).
    let count = usize::try_from(secs).unwrap_or(10) * 16_000;
    let mut rows =
        vec![row(format!("event callback POST /dingtalk/events under wrk (-t2 -c16, {secs} s, fresh nonces)"), "")];

    deadline.check("the event load")?;
    write_pushes(&pushes, &crypto, count, "a")?;
    let cloud = Server::start(dingbridge_bin, port, Some(&config), &HashMap::new())
        .await
        .context("starting the event cloud")?;
    let pushes_arg = pushes.display().to_string();
    let run = wrk_with(&script, &url, 16, secs, &[("EVENTS_FILE", &pushes_arg)])?;
    cloud.stop().await;
    rows.push(judged(
        "  pushes/s",
        format!("{:.0}", run.per_sec()),
        format!(">= {TARGET_EVENTS_PER_SEC:.0}"),
        run.per_sec() >= TARGET_EVENTS_PER_SEC,
    ));
    rows.push(judged(
        "  p50 / p99 / max (ms)",
        format!("{:.2} / {:.2} / {:.1}", run.p50_ms, run.p99_ms, run.max_ms),
        format!("p99 <= {TARGET_EVENTS_P99_MS:.0}"),
        run.p99_ms <= TARGET_EVENTS_P99_MS,
    ));
    rows.push(judged("  errors", run.errors.to_string(), "0", run.errors == 0));

    deadline.check("the event load during a purge")?;
    // 1,000,000 nonces that expired an hour ago, for the purge job to delete.
    let expired_ms =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())? - 3_600_000;
    let sql = format!(
        "INSERT INTO callback_nonces (owner, nonce, keep_until) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL \
         SELECT x + 1 FROM n WHERE x < {EXPIRED_NONCES}) SELECT 'bench-expired', 'e' || x, {expired_ms} FROM n;"
    );
    sqlite(&db, &sql)?;
    write_pushes(&pushes, &crypto, count, "b")?;
    let cloud = Server::start(dingbridge_bin, port, Some(&config), &HashMap::new())
        .await
        .context("restarting the event cloud")?;
    let run = wrk_with(&script, &url, 16, secs, &[("EVENTS_FILE", &pushes_arg)])?;
    let left: u64 = sqlite(&db, &format!("SELECT count(*) FROM callback_nonces WHERE keep_until = {expired_ms};"))?
        .trim()
        .parse()?;
    cloud.stop().await;
    rows.push(row(
        format!("  during the purge of {EXPIRED_NONCES} expired nonces: purged while loaded"),
        format!("{}", EXPIRED_NONCES - left),
    ));
    rows.push(row("    pushes/s", format!("{:.0}", run.per_sec())));
    rows.push(judged(
        "    p50 / p99 / max (ms)",
        format!("{:.2} / {:.2} / {:.1}", run.p50_ms, run.p99_ms, run.max_ms),
        format!("p99 <= {TARGET_EVENTS_PURGE_P99_MS:.0}"),
        run.p99_ms <= TARGET_EVENTS_PURGE_P99_MS,
    ));
    rows.push(judged("    errors", run.errors.to_string(), "0", run.errors == 0));
    let _ = std::fs::remove_file(&pushes);
    Ok(rows)
}

/// Runs `sql` on the SQLite file `db` with the `sqlite3` command; returns what it printed.
fn sqlite(db: &Path, sql: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .context("running sqlite3 (install it: apt-get install sqlite3)")?;
    ensure!(output.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `n` sequential logins from `{base}/auth/dingtalk/login`, each with a fresh cookie jar, following
/// every redirect to the final page.
async fn logins(n: usize, deadline: Deadline, base: &str) -> anyhow::Result<Latencies> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        deadline.check("the login run")?;
        let browser = reqwest::Client::builder().cookie_store(true).timeout(REQUEST_TIMEOUT).build()?;
        let started = Instant::now();
        let res = browser.get(format!("{base}/auth/dingtalk/login")).send().await?;
        let status = res.status();
        let url = res.url().clone();
        let _ = res.bytes().await?;
        times.push(started.elapsed());
        ensure!(status.is_success() && url.as_str().starts_with(base), "login #{i} ended at {url} with HTTP {status}");
    }
    Ok(Latencies::new(&times))
}

/// A signed-in browser for the OIDC run: its cookie jar (session cookie) and a client on it that
/// does not follow redirects.
async fn signed_in_browser(base: &str) -> anyhow::Result<reqwest::Client> {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let login = reqwest::Client::builder().cookie_provider(jar.clone()).timeout(REQUEST_TIMEOUT).build()?;
    let res = login.get(format!("{base}/auth/dingtalk/login")).send().await?;
    ensure!(res.status().is_success(), "the OIDC run's sign-in answered HTTP {}", res.status());
    Ok(reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

#[derive(Deserialize)]
struct Tokens {
    refresh_token: Option<String>,
}

/// One authorize→token round trip (PKCE S256): `GET /oidc/authorize` with the session cookie,
/// the code off the 302, `POST /oidc/token` (client_secret_basic). Returns the refresh token.
async fn authorize_and_exchange(
    browser: &reqwest::Client,
    rp: &reqwest::Client,
    base: &str,
    i: usize,
) -> anyhow::Result<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = format!("bench-verifier-{}-{i:06}-{}", std::process::id(), "x".repeat(24));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = format!("s{i}");
    let res = browser
        .get(format!("{base}/oidc/authorize"))
        .query(&[
            ("client_id", OIDC_CLIENT.0),
            ("redirect_uri", OIDC_REDIRECT),
            ("response_type", "code"),
            ("scope", "openid profile email offline_access"),
            ("state", state.as_str()),
            ("nonce", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await?;
    let location = res.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    ensure!(
        res.status() == StatusCode::FOUND && location.starts_with(OIDC_REDIRECT),
        "authorize #{i} answered HTTP {} to {location:?}",
        res.status()
    );
    let url = reqwest::Url::parse(&location)?;
    let code = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
    let code = code.with_context(|| format!("no code on {location}"))?;
    let res = rp
        .post(format!("{base}/oidc/token"))
        .basic_auth(OIDC_CLIENT.0, Some(OIDC_CLIENT.1))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", OIDC_REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await?;
    let status = res.status();
    ensure!(status == StatusCode::OK, "token #{i} answered HTTP {status}: {}", res.text().await?);
    let tokens: Tokens = res.json().await?;
    tokens.refresh_token.context("no refresh token with offline_access")
}

/// The OIDC figures: authorize→token round trips, then refresh-token grants per second.
async fn oidc(args: &Args, deadline: Deadline, base: &str) -> anyhow::Result<Vec<Row>> {
    let browser = signed_in_browser(base).await?;
    let rp = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.oidc_concurrency.max(1))
        .build()?;
    let samples = args.oidc_samples.max(args.oidc_concurrency);
    let (mut times, mut chains) = (Vec::with_capacity(samples), Vec::with_capacity(args.oidc_concurrency));
    for i in 0..samples {
        deadline.check("the OIDC round-trip run")?;
        let started = Instant::now();
        let refresh_token = authorize_and_exchange(&browser, &rp, base, i).await?;
        times.push(started.elapsed());
        if chains.len() < args.oidc_concurrency {
            chains.push(refresh_token);
        }
    }
    let round_trips = Latencies::new(&times);

    // Refresh-token grants: every caller rotates its own chain (each grant answers a new token).
    let n = args.oidc_token_requests;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(chains.len());
    for (w, mut refresh_token) in chains.into_iter().enumerate() {
        let (rp, next, url) = (rp.clone(), next.clone(), format!("{base}/oidc/token"));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if Instant::now() >= deadline.0 {
                    bail!("global deadline passed during the token-endpoint run");
                }
                let sent = Instant::now();
                let res = rp
                    .post(&url)
                    .basic_auth(OIDC_CLIENT.0, Some(OIDC_CLIENT.1))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
                    .send()
                    .await?;
                let status = res.status();
                ensure!(status == StatusCode::OK, "refresh on chain {w} answered HTTP {status}: {}", res.text().await?);
                let tokens: Tokens = res.json().await?;
                refresh_token = tokens.refresh_token.context("a refresh grant without a new refresh token")?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for worker in workers {
        latencies.extend(worker.await.context("a token-endpoint caller panicked")??);
    }
    let secs = started.elapsed().as_secs_f64();
    let refreshes = Latencies::new(&latencies);
    let rate = if secs > 0.0 { latencies.len() as f64 / secs } else { 0.0 };
    Ok(vec![
        row(format!("OIDC, dev mode: authorize→token round trip, signed in ({samples} sequential)"), ""),
        row(
            "  p50 / p99 / mean (ms)",
            format!("{:.2} / {:.2} / {:.2}", round_trips.pct(0.5), round_trips.pct(0.99), round_trips.mean()),
        ),
        row(format!("OIDC token endpoint: {} refresh grants, {} callers", latencies.len(), args.oidc_concurrency), ""),
        row("  requests/s", format!("{rate:.0}")),
        row("  latency p50 / p99 (ms)", format!("{:.2} / {:.2}", refreshes.pct(0.5), refreshes.pct(0.99))),
    ])
}
