//! `dingbridge doctor` (README "Operating dingbridge"): reads the configuration and checks what
//! the most frequent DingTalk set-up mistakes break, printing each finding as what is wrong, why
//! it matters and the exact console step or configuration key that fixes it.
//!
//! - cloud and dev ([`dingtalk`]): the app token (bad key or secret), each permission the
//!   features need (probed with a harmless call, docs/dingtalk-api.md §G.2 "permission"), the
//!   egress IP whitelist (60020), the monthly quota (90020), the clock against DingTalk's `Date`
//!   header, the event callback at `public_url` answering `check_url`, the redirect URL, and a
//!   suite's `suite_ticket` age;
//! - local ([`local`]): the cloud reachable, the relay credentials accepted, PostgreSQL reachable
//!   and its migrations current.
//!
//! A finding is `ok`, `warn`, `fail` (blocks: the exit code is 1) or `skip` (not checkable
//! here). The report prints as text or, with `--json`, as one JSON document.

pub mod dingtalk;
pub mod feishu;
pub mod local;

use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Mode};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works now, but something will break or is degraded.
    Warn,
    /// Blocks: a feature cannot work until it is fixed.
    Fail,
    /// Not checkable from here (the reason is in `what`).
    Skip,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable id, e.g. `dingtalk.app_token`, `dingtalk.permission.qyapi_get_member`.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub what: String,
    /// Why it matters (empty for `ok`).
    pub why: String,
    /// The console step or configuration key that fixes it (empty for `ok`).
    pub fix: String,
}

impl Finding {
    /// A passing check.
    pub fn ok(check: &str, what: impl Into<String>) -> Self {
        Self { check: check.to_owned(), status: Status::Ok, what: what.into(), why: String::new(), fix: String::new() }
    }

    /// A finding with its reason and fix.
    pub fn new(check: &str, status: Status, what: impl Into<String>, why: &str, fix: impl Into<String>) -> Self {
        Self { check: check.to_owned(), status, what: what.into(), why: why.to_owned(), fix: fix.into() }
    }
}

/// Every finding of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mode checked.
    pub mode: String,
    /// Whether any finding blocks (`fail`).
    pub blocking: bool,
    /// In check order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The finding of `check`, if it ran.
    pub fn finding(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }

    /// The report as text: one line per finding, then `why` and `fix` lines for the others.
    pub fn to_text(&self) -> String {
        let mut out = format!("dingbridge doctor ({} mode)\n", self.mode);
        for f in &self.findings {
            let mark = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out.push_str(&format!("[{mark}] {}: {}\n", f.check, f.what));
            if !f.why.is_empty() {
                out.push_str(&format!("       why: {}\n", f.why));
            }
            if !f.fix.is_empty() {
                out.push_str(&format!("       fix: {}\n", f.fix));
            }
        }
        let count = |s: Status| self.findings.iter().filter(|f| f.status == s).count();
        out.push_str(&format!(
            "{} ok, {} warnings, {} failures, {} skipped{}\n",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Skip),
            if self.blocking { ": something blocks (exit 1)" } else { "" }
        ));
        out
    }
}

/// A transport error with its causes (`: `-separated), without the URL (its query can carry a token).
pub(crate) fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every check of `config.mode`. Never fails: what cannot be checked is a finding.
pub async fn run(config: &Config) -> Report {
    let findings = match crate::http_client(PROBE_TIMEOUT) {
        Err(err) => vec![Finding::new(
            "http_client",
            Status::Fail,
            format!("the HTTP client could not be built: {err:#}"),
            "no check can reach DingTalk or the cloud",
            "check the system's TLS set-up",
        )],
        Ok(http) => match config.mode {
            Mode::Cloud | Mode::Dev => {
                let mut findings = dingtalk::run(config, &http).await;
                findings.extend(feishu::run(config, &http).await);
                findings
            }
            Mode::Local => local::run(config, &http).await,
        },
    };
    Report { mode: config.mode.to_string(), blocking: findings.iter().any(|f| f.status == Status::Fail), findings }
}
