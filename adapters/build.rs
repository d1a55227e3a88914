//! Build script: decides whether this build's PostgreSQL tests are compiled as `#[ignore]`d.
//!
//! A test that cannot run must not report `ok`, and libtest cannot mark a test ignored once it is
//! running. So the decision is made here, at build time: when the test server (the host and port
//! of `DINGBRIDGE_TEST_PG_ADMIN_URL`, by default `127.0.0.1:5432`) does not accept a TCP
//! connection and `CI` is not `true`, this script sets `--cfg pg_unavailable`, a cargo warning
//! says so, and every PostgreSQL test carries
//! `#[cfg_attr(pg_unavailable, ignore = "...")]`: `cargo test` lists them as `ignored` (with the
//! reason) and counts them as ignored, not passed. `cargo test -- --include-ignored` runs them
//! anyway (and they fail without the server).
//!
//! Under `CI=true` the cfg is never set: the tests run, and a missing server fails them. A test
//! that runs while the server is unreachable fails too (it never passes by skipping itself).
//!
//! Caveat: the probe is cached like any build script output. It runs again only when `CI` or
//! `DINGBRIDGE_TEST_PG_ADMIN_URL` change (or this file does). After starting or stopping
//! PostgreSQL, `touch adapters/build.rs tests/build.rs` (or change one of those variables) so that
//! the next `cargo test` probes again; otherwise tests built while it was up fail while it is down,
//! and tests built while it was down stay ignored.
//!
//! `tests/build.rs` (the end-to-end tests, which start a local on PostgreSQL) includes this file
//! as a module and calls [`main`].

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The environment variable with the test server's admin URL (as in `postgres::testing`).
const ADMIN_URL_VAR: &str = "DINGBRIDGE_TEST_PG_ADMIN_URL";
/// The admin URL used when [`ADMIN_URL_VAR`] is not set.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long the probe waits for each address.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Declares the cfg, and sets it when the test server cannot be reached outside CI.
pub fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_unavailable)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed={ADMIN_URL_VAR}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    let url = std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
    // No TCP address (a Unix socket, an unparsable URL): let the tests run and decide.
    let Some(address) = tcp_address(&url) else { return };
    let reachable = address
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok()));
    if !reachable {
        println!("cargo::rustc-cfg=pg_unavailable");
        println!(
            "cargo::warning=PostgreSQL not reachable at {address}: its tests are built as ignored \
             (start it, or set {ADMIN_URL_VAR}, then `touch adapters/build.rs tests/build.rs`)"
        );
    }
}

/// `host:port` of a `postgres://` URL or a `host=… port=…` connection string (port 5432 unless
/// given); `None` for a Unix socket or when there is no host.
fn tcp_address(url: &str) -> Option<String> {
    let (host, port) = if let Some((_, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host_port = host_port.split(',').next().unwrap_or_default();
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => (host, port),
            _ => (host_port, "5432"),
        }
    } else {
        let value =
            |key: &str| url.split_whitespace().find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
        (value("host")?, value("port").unwrap_or("5432"))
    };
    if host.is_empty() || host.starts_with('/') || host.starts_with("%2F") || host.starts_with("%2f") {
        return None;
    }
    Some(format!("{host}:{port}"))
}
