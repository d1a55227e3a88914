//! Several instances on loopback sharing PostgreSQL: the DingTalk emulator, two `dingbridge`
//! clouds on one PostgreSQL database and two locals on another, each local relaying to its own
//! cloud (docs/design.md "Several instances"). Used by the cluster tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapters::outbound::postgres::testing::TestDatabase;

use crate::procs::{Proc, free_port};
use crate::split::{CLIENT_A, emulator_app_toml, env, local_vars};

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
{app}
[[relay.clients]]
id = "{id}"
secret = "{secret}"
complete_url_origins = {origins:?}
"#,
            db = cloud_db.url(),
            app = emulator_app_toml(&emu),
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
        let mut vars = local_vars(&format!("http://127.0.0.1:{port}"), local_db.url(), &cloud.base_url);
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
