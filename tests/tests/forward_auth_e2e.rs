//! Forward-auth behind a real nginx (`auth_request`), with the configuration of
//! docs/examples/nginx-forward-auth.conf: nginx on 127.0.0.1 in front of a tiny app that echoes
//! the request headers it receives, asking dingbridge's `GET /auth/verify` about each request.
//! dingbridge (dev stack + emulator) runs on the same host, another port, so its session cookie
//! reaches nginx (cookies are per host, not per port).
//!
//! nginx is started unprivileged-style with a generated main configuration (`-p <tempdir>
//! -c <file>`, `daemon off`, one process, pid/logs/temp paths in the temp dir). Without an nginx
//! binary the test fails under `CI=true` and is skipped otherwise (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Map, Value, json};
use tests::emulator::ConsentMode;
use tests::stack::{SERVICE_TOKEN, Stack, StackOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const EXAMPLE: &str = include_str!("../../docs/examples/nginx-forward-auth.conf");

/// The nginx binary, or why there is none.
fn nginx_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .ok_or_else(|| "no nginx binary on PATH (nor in /usr/sbin); `apt-get install nginx`".to_owned())
}

/// A free loopback port (bound and released: nginx binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The app behind nginx: answers every request with `{"path", "headers"}` (header names in
/// lower case) and counts the requests.
async fn echo_app() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = head.split("\r\n");
                let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned();
                let mut headers = Map::new();
                for line in lines.take_while(|l| !l.is_empty()) {
                    if let Some((name, value)) = line.split_once(':') {
                        headers.insert(name.trim().to_ascii_lowercase(), Value::String(value.trim().to_owned()));
                    }
                }
                let body = json!({"path": path, "headers": headers}).to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, hits)
}

/// A running nginx; killed on drop.
struct Nginx {
    child: Child,
    origin: String,
    prefix: PathBuf,
}

impl Nginx {
    /// nginx on `port` with the example's `server` block for `dingbridge` and `app`.
    async fn start(binary: &Path, port: u16, dingbridge: &str, app: &str) -> Result<Self, String> {
        let prefix = std::env::temp_dir().join(format!("dingbridge-nginx-{port}-{}", std::process::id()));
        std::fs::create_dir_all(prefix.join("logs")).map_err(|e| e.to_string())?;
        let server = EXAMPLE
            .replace("LISTEN", &format!("127.0.0.1:{port}"))
            .replace("DINGBRIDGE_URL", dingbridge)
            .replace("APP_URL", app);
        std::fs::write(prefix.join("server.conf"), server).map_err(|e| e.to_string())?;
        let p = prefix.display();
        // Test-only main configuration: foreground, a single process (no workers switching to
        // another user), everything under the prefix.
        let main = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {p}/logs/access.log;\n  client_body_temp_path {p}/client_body;\n  \
             proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  \
             scgi_temp_path {p}/scgi;\n  include {p}/server.conf;\n}}\n"
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, main).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .arg("-c")
            .arg(&conf)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut nginx = Self { child, origin: format!("http://127.0.0.1:{port}"), prefix };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", nginx.error_log()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not listen on {port} within 10 s: {}", nginx.error_log()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Follows redirects from `start` until one points at `origin`; returns that URL (not requested).
async fn follow_until(browser: &reqwest::Client, start: &str, origin: &str) -> String {
    let mut url = reqwest::Url::parse(start).unwrap();
    for _ in 0..10 {
        let res = browser.get(url.clone()).send().await.unwrap();
        if res.status() != StatusCode::FOUND {
            panic!("{url}: {} {}", res.status(), res.text().await.unwrap());
        }
        url = url.join(&location(&res)).unwrap();
        if url.as_str().starts_with(&format!("{origin}/")) {
            return url.to_string();
        }
    }
    panic!("no redirect back to {origin}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_signs_in_through_dingbridge_and_passes_the_identity() {
    let binary = match nginx_binary() {
        Ok(binary) => binary,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and nginx is missing: {why}"),
        Err(why) => return eprintln!("skipping: {why}"),
    };
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let stack =
        Stack::start(StackOptions { return_origins: vec![origin.clone()], ..StackOptions::ephemeral() }).await.unwrap();
    let (app, hits) = echo_app().await;
    let nginx = match Nginx::start(&binary, port, &stack.base_url, &app).await {
        Ok(nginx) => nginx,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and nginx does not run: {why}"),
        Err(why) => return eprintln!("skipping: nginx does not run here: {why}"),
    };
    assert_eq!(nginx.origin, origin);
    let browser = reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap();
    let page = format!("{origin}/app/hello");

    // Not signed in: 302 to dingbridge's sign-in, returning to the page; the app saw nothing,
    // forged identity headers or not.
    let res = browser.get(&page).header("X-Auth-Request-User", "forged").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "{}", nginx.error_log());
    let sign_in = location(&res);
    assert_eq!(sign_in, format!("{}/auth/dingtalk/login?return_to={page}", stack.base_url));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the app is not reached unauthenticated");

    // Sign in (emulator consent as manager4220); dingbridge sends the browser back to nginx.
    stack.emulator.state().set_consent(ConsentMode::Approve { who: "manager4220".into() });
    let back = follow_until(&browser, &sign_in, &origin).await;
    assert_eq!(back, page, "the sign-in returns to the page (forward_auth.return_origins)");

    // Through nginx to the app, with the identity headers (and the forged one replaced).
    let res = browser.get(&back).header("X-Auth-Request-User", "forged").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", nginx.error_log());
    let echoed: Value = res.json().await.unwrap();
    assert_eq!(echoed["path"], "/app/hello");
    let headers = &echoed["headers"];
    let users: Vec<Value> = reqwest::Client::new()
        .get(format!("{}/api/users", stack.base_url))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = users.iter().find(|u| u["userid"] == "manager4220").unwrap()["id"].clone();
    assert_eq!(headers["x-auth-request-user"], user_id, "{echoed}");
    assert_eq!(headers["x-auth-request-preferred-username"], "manager4220", "{echoed}");
    assert_eq!(headers["x-auth-request-email"], "zhangsan@corp.example", "{echoed}");
    assert_eq!(headers["x-auth-request-groups"], "1,2", "{echoed}");
    assert_eq!(headers["x-auth-request-corp-id"], "dingemucorp0001", "{echoed}");
    assert!(headers.get("cookie").is_some(), "the app gets the request as sent: {echoed}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Signed out at dingbridge: nginx sends the browser to sign in again.
    let res = browser.post(format!("{}/auth/logout", stack.base_url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = browser.get(&page).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(location(&res).starts_with(&format!("{}/auth/dingtalk/login", stack.base_url)));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    drop(nginx);
    stack.stop_and_clean().await;
}
