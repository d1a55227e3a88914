//! Several instances on loopback sharing PostgreSQL: the DingTalk emulator, two `dingbridge`
//! clouds on one PostgreSQL database and two locals on another, each local relaying to its own
//! cloud (docs/design.md "Several instances"). Used by the cluster tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapters::outbound::postgres::testing::TestDatabase;

use crate::procs::{Proc, free_port};
use crate::split::{CLIENT_A, CORP, SERVICE_TOKEN, env};

pub struct Cluster {
    pub emulator: Proc,
    pub clouds: Vec<Proc>,
    pub locals: Vec<Proc>,
    cloud_db: Option<TestDatabase>,
    local_db: Option<TestDatabase>,
    dir: std::path::PathBuf,
}

/// Starts the emulator, two clouds (paced by the default governor, shared through their
/// database) and two locals; `cloud_env` and `local_env` add to each cloud's and local's
/// environment. Panics when
/// PostgreSQL is unreachable (the tests carry `#[cfg_attr(pg_unavailable, ignore = "…")]`).
pub async fn cluster(
    emulator_bin: &str,
    dingbridge_bin: &str,
    cloud_env: &[(&str, String)],
    local_env: &[(&str, String)],
) -> Cluster {
    cluster_of(2, emulator_bin, dingbridge_bin, cloud_env, local_env).await
}

/// [`cluster`] with `instances` clouds and as many locals (local `i` relays to cloud `i`).
pub async fn cluster_of(
    instances: usize,
    emulator_bin: &str,
    dingbridge_bin: &str,
    cloud_env: &[(&str, String)],
    local_env: &[(&str, String)],
) -> Cluster {
    let cloud_db = TestDatabase::create().await.unwrap_or_else(|err| panic!("{err}"));
    let local_db = TestDatabase::create().await.unwrap_or_else(|err| panic!("{err}"));
    let emulator = Proc::emulator(emulator_bin).await.unwrap();
    let cloud_ports: Vec<u16> = (0..instances).map(|_| free_port().unwrap()).collect();
    let local_ports: Vec<u16> = (0..instances).map(|_| free_port().unwrap()).collect();
    let local_urls: Vec<String> = local_ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let emu = emulator.base_url.clone();
    let dir = std::env::temp_dir().join(format!("dingbridge-cluster-{}", free_port().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut clouds = Vec::new();
    for (i, port) in cloud_ports.into_iter().enumerate() {
        let toml = format!(
            r#"
mode = "cloud"
public_url = "http://127.0.0.1:{port}"
[database]
url = "{db}"
[dingtalk]
login_base = "{emu}"
api_base = "{emu}"
oapi_base = "{emu}"
app_key = "dingemuappkey0001"
app_secret = "emulator-app-secret"
agent_id = 300001
corp_id = "{CORP}"
[[relay.clients]]
id = "{id}"
secret = "{secret}"
complete_url_origins = {origins:?}
"#,
            db = cloud_db.url(),
            id = CLIENT_A.0,
            secret = CLIENT_A.1,
            origins = local_urls,
        );
        let config = dir.join(format!("cloud{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let mut vars = env(&[("RUST_LOG", std::env::var("DINGBRIDGE_CLUSTER_LOG").unwrap_or_else(|_| "info".into()))]);
        vars.extend(env(cloud_env));
        clouds.push(Proc::dingbridge(dingbridge_bin, port, Some(&config), vars).await.unwrap());
    }
    let mut locals = Vec::new();
    for (port, cloud) in local_ports.iter().zip(&clouds) {
        let mut vars = env(&[
            ("DINGBRIDGE_MODE", "local".into()),
            ("DINGBRIDGE_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("DATABASE_URL", local_db.url().to_owned()),
            ("DINGDING_CLOUD_HOST", cloud.base_url.clone()),
            ("DINGDING_SECRET_USER", CLIENT_A.0.into()),
            ("DINGDING_SECRET_PASSWORD", CLIENT_A.1.into()),
            ("DINGBRIDGE_DINGTALK__CORP_ID", CORP.into()),
            ("DINGBRIDGE_API__SERVICE_TOKENS", format!("[\"{SERVICE_TOKEN}\"]")),
        ]);
        vars.extend(env(local_env));
        locals.push(Proc::dingbridge(dingbridge_bin, *port, None, vars).await.unwrap());
    }
    Cluster { emulator, clouds, locals, cloud_db: Some(cloud_db), local_db: Some(local_db), dir }
}

impl Cluster {
    /// Stops every process and drops both databases.
    pub async fn finish(mut self) {
        for proc in self.clouds.iter_mut().chain(self.locals.iter_mut()) {
            let _ = proc.kill().await;
        }
        for db in [self.cloud_db.take(), self.local_db.take()].into_iter().flatten() {
            let _ = db.drop_database().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// Local's PostgreSQL URL (shared by both locals).
    pub fn local_database_url(&self) -> &str {
        self.local_db.as_ref().map(TestDatabase::url).unwrap_or_default()
    }
}
