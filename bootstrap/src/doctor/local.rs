//! Local mode's checks: the cloud relay (reachable, credentials accepted) and PostgreSQL
//! (reachable, migrations current).

use serde_json::Value;

use super::{Finding, Status};
use crate::config::Config;

/// The findings of local mode.
pub(super) async fn run(config: &Config, http: &reqwest::Client) -> Vec<Finding> {
    let mut out = Vec::new();
    let base = config.cloud.base_url.trim_end_matches('/');
    let reachable = match http.get(format!("{base}/healthz")).send().await {
        Ok(res) if res.status().is_success() => {
            out.push(Finding::ok("cloud.reachable", format!("the cloud at {base} answers /healthz")));
            true
        }
        Ok(res) => {
            out.push(Finding::new(
                "cloud.reachable",
                Status::Fail,
                format!("{base}/healthz answered HTTP {}", res.status().as_u16()),
                "sign-ins, messages and the contact feed all go through the cloud",
                "cloud.base_url must be the cloud's URL (DINGDING_CLOUD_HOST), and the cloud must be running",
            ));
            false
        }
        Err(err) => {
            out.push(Finding::new(
                "cloud.reachable",
                Status::Fail,
                format!("the cloud at {base} cannot be reached: {}", super::describe(err)),
                "sign-ins, messages and the contact feed all go through the cloud",
                "allow outbound HTTPS from this network to the cloud, and check cloud.base_url (DINGDING_CLOUD_HOST)",
            ));
            false
        }
    };
    if reachable {
        out.push(relay_credentials(config, http, base).await);
    }
    out.extend(postgres(&config.database.url).await);
    out
}

/// `GET /relay/v1/events?after=0&wait=0&limit=1` as this relay client: 200 means accepted.
async fn relay_credentials(config: &Config, http: &reqwest::Client, base: &str) -> Finding {
    let id = config.cloud.client_id.clone().unwrap_or_default();
    let secret = config.cloud.client_secret.as_ref().map(|s| s.expose().to_owned());
    let request = http
        .get(format!("{base}/relay/v1/events"))
        .query(&[("after", "0"), ("wait", "0"), ("limit", "1")])
        .basic_auth(&id, secret);
    let fix = "cloud.client_id and cloud.client_secret (DINGDING_SECRET_USER / DINGDING_SECRET_PASSWORD) must equal one [[relay.clients]] id and secret in the cloud's configuration";
    match request.send().await {
        Ok(res) if res.status().is_success() => {
            Finding::ok("cloud.relay_credentials", format!("the cloud accepts relay client {id}"))
        }
        Ok(res) => {
            let status = res.status().as_u16();
            let code = res.json::<Value>().await.ok().and_then(|b| b["code"].as_str().map(str::to_owned));
            Finding::new(
                "cloud.relay_credentials",
                Status::Fail,
                format!("the cloud refused relay client {id}: HTTP {status} {}", code.unwrap_or_default()),
                "every relay call (sign-in, message, member, feed) is refused",
                if status == 429 {
                    format!("wait for the cloud's relay.auth_window_secs, then fix: {fix}")
                } else {
                    fix.to_owned()
                },
            )
        }
        Err(err) => Finding::new(
            "cloud.relay_credentials",
            Status::Fail,
            format!("the relay API cannot be reached: {}", super::describe(err)),
            "every relay call fails",
            fix,
        ),
    }
}

/// PostgreSQL answers, and the migrations this binary carries are all applied.
async fn postgres(url: &str) -> Vec<Finding> {
    match adapters::outbound::postgres::ops::pending_migrations(url).await {
        Ok(pending) if pending.is_empty() => vec![
            Finding::ok("postgres.reachable", "PostgreSQL answers at database.url"),
            Finding::ok("postgres.migrations", "every migration is applied"),
        ],
        Ok(pending) => vec![
            Finding::ok("postgres.reachable", "PostgreSQL answers at database.url"),
            Finding::new(
                "postgres.migrations",
                Status::Warn,
                format!("{} migration(s) are not applied yet: {}", pending.len(), pending.join(", ")),
                "serve applies them at start; until then this binary and the schema disagree",
                "run `dingbridge --config <file> migrate` (or start the service)",
            ),
        ],
        Err(application::ports::StoreError::Unavailable(message)) => vec![Finding::new(
            "postgres.reachable",
            Status::Fail,
            message,
            "local keeps users, sessions and the outbox in PostgreSQL: it cannot start without it",
            "start PostgreSQL, and check database.url (DATABASE_URL): postgres://user:password@host:port/database",
        )],
        Err(err) => vec![
            Finding::ok("postgres.reachable", "PostgreSQL answers at database.url"),
            Finding::new(
                "postgres.migrations",
                Status::Fail,
                err.to_string(),
                "the schema cannot be checked",
                "check that the database.url user may read the __diesel_schema_migrations table",
            ),
        ],
    }
}
