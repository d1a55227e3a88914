//! `dingbridge doctor` (README "Operating dingbridge"): one test per finding, each provoking it
//! with the emulator's fault modes (docs/dingtalk-api.md §0.2, §G) or a broken configuration, and
//! asserting the diagnosis — what is wrong and the key or console step that fixes it. The
//! dingbridge under test runs in process in dev mode (the cloud's checks) or cloud mode (the relay
//! local's checks call), on SQLite; the PostgreSQL checks use a fresh database when the server is
//! reachable (built as ignored otherwise, see `adapters/build.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use bootstrap::config::{RelayClientConfig, Secret};
use bootstrap::doctor::{self, Report, Status};
use bootstrap::{Config, Listener, Mode};
use tests::emulator::FaultRule;
use tests::stack::{Stack, StackOptions};

const DINGBRIDGE: &str = env!("CARGO_BIN_EXE_dingbridge-proc");

async fn stack() -> Stack {
    Stack::start(StackOptions { events: true, ..StackOptions::ephemeral() }).await.expect("stack starts")
}

fn status(report: &Report, check: &str) -> Status {
    report.finding(check).unwrap_or_else(|| panic!("no {check} finding: {report:#?}")).status
}

fn fix(report: &Report, check: &str) -> String {
    report.finding(check).unwrap().fix.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_deployment_passes_every_check() {
    let stack = stack().await;
    let report = doctor::run(&stack.config).await;
    for check in [
        "dingtalk.app_token",
        "dingtalk.permission.qyapi_get_member",
        "dingtalk.permission.work_notification",
        "dingtalk.ip_whitelist",
        "clock_skew",
        "redirect_url",
        "callback",
    ] {
        assert_eq!(status(&report, check), Status::Ok, "{check}: {report:#?}");
    }
    // What cannot be probed with the app's token is said so, with the console step.
    for check in ["dingtalk.permission.Contact.User.Read", "dingtalk.app_published"] {
        assert_eq!(status(&report, check), Status::Skip, "{check}: {report:#?}");
    }
    // The quota as dingbridge counted it (docs/dingtalk-api.md §G.3).
    assert_eq!(status(&report, "dingtalk.quota"), Status::Ok, "{report:#?}");
    assert!(report.finding("dingtalk.quota").unwrap().what.contains("of 5000 metered calls"), "{report:#?}");
    assert!(fix(&report, "dingtalk.permission.Contact.User.Read").contains("Contact.User.Read"));
    assert!(fix(&report, "dingtalk.app_published").contains("版本管理与发布"));
    // Feishu beside DingTalk (docs/feishu-api.md §B.1, §A.5, §E.2).
    for check in ["feishu.tenant_token", "feishu.tenant_keys", "feishu.redirect_url", "feishu.events"] {
        assert_eq!(status(&report, check), Status::Ok, "{check}: {report:#?}");
    }
    assert!(!report.blocking, "{}", report.to_text());
    assert!(report.to_text().contains("0 failures"), "{}", report.to_text());
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn feishu_credentials_and_tenant_mistakes_are_named_with_their_fix() {
    let stack = stack().await;
    let mut config = stack.config.clone();
    config.feishu.app_secret = Some(Secret::from("not-the-secret"));
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "feishu.tenant_token"), Status::Fail, "{report:#?}");
    assert!(fix(&report, "feishu.tenant_token").contains("feishu.app_secret"), "{report:#?}");

    let mut config = stack.config.clone();
    config.feishu.tenant_keys = vec!["0000000000000000".into()];
    config.feishu.verification_token = Some(Secret::from("not-the-token"));
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "feishu.tenant_keys"), Status::Fail, "{report:#?}");
    assert!(fix(&report, "feishu.tenant_keys").contains("736588c9260f175d"), "{report:#?}");
    // The running service holds the real token: a doctor run with another one sees the URL check refused.
    assert_eq!(status(&report, "feishu.events"), Status::Fail, "{report:#?}");
    assert!(report.blocking);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_app_secret_is_named_with_where_to_copy_it_from() {
    let stack = stack().await;
    let mut config = stack.config.clone();
    config.dingtalk.app_secret = Some(Secret::from("not-the-secret"));
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "dingtalk.app_token"), Status::Fail);
    let finding = report.finding("dingtalk.app_token").unwrap();
    assert!(finding.what.contains("invalidClientIdOrSecret"), "{finding:?}");
    assert!(finding.fix.contains("dingtalk.app_secret") && finding.fix.contains("凭证与基础信息"), "{finding:?}");
    assert!(report.blocking);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_member_permission_names_the_console_permission() {
    let stack = stack().await;
    stack.emulator.state().set_fault(FaultRule::error("/topapi/user/getbyunionid", "403perm"));
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.permission.qyapi_get_member"), Status::Fail);
    assert!(report.finding("dingtalk.permission.qyapi_get_member").unwrap().what.contains("60011"));
    assert!(fix(&report, "dingtalk.permission.qyapi_get_member").contains("qyapi_get_member"));
    assert!(fix(&report, "dingtalk.permission.qyapi_get_member").contains("权限管理"));
    assert_eq!(status(&report, "dingtalk.permission.work_notification"), Status::Ok);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permission_refusal_wrapped_as_88_with_a_sub_code_is_read_from_the_sub_code() {
    let stack = stack().await;
    stack.emulator.state().set_fault(FaultRule::error("/topapi/user/getbyunionid", "88/60011"));
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.permission.qyapi_get_member"), Status::Fail, "{report:#?}");
    assert!(report.finding("dingtalk.permission.qyapi_get_member").unwrap().what.contains("60011"));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_work_notification_permission_is_found_by_its_probe() {
    let stack = stack().await;
    stack.emulator.state().set_fault(FaultRule::error("/topapi/message/corpconversation/getsendprogress", "50004"));
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.permission.work_notification"), Status::Fail);
    assert!(fix(&report, "dingtalk.permission.work_notification").contains("工作通知"));
    assert_eq!(status(&report, "dingtalk.permission.qyapi_get_member"), Status::Ok);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_egress_ip_outside_the_whitelist_is_reported_with_the_console_step() {
    let stack = stack().await;
    stack.emulator.state().set_fault(FaultRule::error("/v1.0/oauth2/accessToken", "403ip"));
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.ip_whitelist"), Status::Fail);
    let finding = report.finding("dingtalk.ip_whitelist").unwrap();
    assert!(finding.what.contains("IpNotInWhiteList"), "{finding:?}");
    assert!(finding.fix.contains("服务器出口IP"), "{finding:?}");
    // The legacy family says 60020.
    stack.emulator.state().clear_faults();
    stack.emulator.state().set_fault(FaultRule::error("/topapi/user/getbyunionid", "403ip"));
    let report = doctor::run(&stack.config).await;
    assert!(report.finding("dingtalk.ip_whitelist").unwrap().what.contains("60020"));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_monthly_quota_blocks() {
    let stack = stack().await;
    stack.emulator.state().set_fault(FaultRule::error("/topapi/message/corpconversation/getsendprogress", "403quota"));
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.quota"), Status::Fail);
    assert!(report.finding("dingtalk.quota").unwrap().what.contains("90020"));
    assert!(report.blocking);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_against_dingtalks_date_header_beyond_the_push_window_blocks() {
    let stack = stack().await;
    stack.emulator.state().advance_clock(3600);
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "clock_skew"), Status::Fail, "{report:#?}");
    assert!(report.finding("clock_skew").unwrap().what.contains(" -3"), "about -3600 s: {report:#?}");
    assert!(fix(&report, "clock_skew").contains("timedatectl"));
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_whose_keys_differ_from_the_servers_fails_check_url() {
    let stack = stack().await;
    let mut config = stack.config.clone();
    config.events.aes_key = Some(Secret::from("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "callback"), Status::Fail);
    assert!(fix(&report, "callback").contains("events.aes_key"), "{report:#?}");
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_public_url_fails_the_redirect_and_callback_checks() {
    let stack = stack().await;
    let mut config = stack.config.clone();
    config.public_url = format!("http://127.0.0.1:{}", tests::procs::free_port().unwrap());
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "redirect_url"), Status::Fail);
    assert!(fix(&report, "redirect_url").contains("/auth/dingtalk/callback"));
    assert_eq!(status(&report, "callback"), Status::Fail);
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suite_without_a_ticket_blocks_and_an_old_one_warns() {
    use application::ports::SuiteStore;
    let stack = stack().await;
    let mut config = stack.config.clone();
    config.suite.suite_key = Some("suitedoctorprobe".into());
    config.suite.suite_secret = Some(Secret::from("suite-secret"));
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "suite_ticket"), Status::Fail);
    assert!(fix(&report, "suite_ticket").contains("重新推送 suite_ticket"));
    let store = adapters::outbound::sqlite::SqliteStore::connect(&config.database.url, 1).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let eight_hours_ago = domain::Timestamp::from_millis(i64::try_from(now).unwrap() - 8 * 3_600_000);
    store.put_ticket("suitedoctorprobe", "ticket", eight_hours_ago).await.unwrap();
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "suite_ticket"), Status::Warn, "{report:#?}");
    stack.stop_and_clean().await;
}

/// A cloud in process (SQLite, the stack's emulator) serving relay client `office`.
async fn cloud(stack: &Stack) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr());
    let mut config = stack.config.clone();
    config.mode = Mode::Cloud;
    config.public_url.clone_from(&base);
    config.database.url = format!("sqlite://{}.cloud.db", stack.database.display());
    config.relay.clients = vec![RelayClientConfig {
        id: "office".into(),
        secret: Secret::from("office-relay-secret-0123456789"),
        corp_ids: vec![stack.config.dingtalk.corp_id.clone().unwrap()],
        complete_url_origins: vec!["http://127.0.0.1:1".into()],
    }];
    let app = bootstrap::build(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bootstrap::serve(app, listener, async move {
        let _ = stopped.await;
    }));
    (base, stop)
}

fn local_config(cloud: &str, secret: &str, database: &str) -> Config {
    let mut config = Config { mode: Mode::Local, ..Config::default() };
    config.cloud.base_url = cloud.to_owned();
    config.cloud.client_id = Some("office".into());
    config.cloud.client_secret = Some(Secret::from(secret));
    config.database.url = database.to_owned();
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn from_local_an_unreachable_cloud_and_refused_credentials_are_told_apart() {
    let stack = stack().await;
    let nowhere = format!("http://127.0.0.1:{}", tests::procs::free_port().unwrap());
    let no_pg = "postgres://postgres@127.0.0.1:1/none";
    let report = doctor::run(&local_config(&nowhere, "office-relay-secret-0123456789", no_pg)).await;
    assert_eq!(status(&report, "cloud.reachable"), Status::Fail);
    assert!(fix(&report, "cloud.reachable").contains("cloud.base_url"));
    assert!(report.finding("cloud.relay_credentials").is_none());
    assert_eq!(status(&report, "postgres.reachable"), Status::Fail);
    assert!(fix(&report, "postgres.reachable").contains("database.url"));

    let (cloud, stop) = cloud(&stack).await;
    let report = doctor::run(&local_config(&cloud, "office-relay-secret-0123456789", no_pg)).await;
    assert_eq!(status(&report, "cloud.reachable"), Status::Ok);
    assert_eq!(status(&report, "cloud.relay_credentials"), Status::Ok, "{report:#?}");
    let report = doctor::run(&local_config(&cloud, "a-wrong-relay-secret-0123", no_pg)).await;
    assert_eq!(status(&report, "cloud.relay_credentials"), Status::Fail);
    assert!(report.finding("cloud.relay_credentials").unwrap().what.contains("401"));
    assert!(fix(&report, "cloud.relay_credentials").contains("[[relay.clients]]"));
    let _ = stop.send(());
    stack.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(pg_unavailable, ignore = "PostgreSQL was not reachable when this was built (see adapters/build.rs)")]
async fn from_local_postgres_is_reachable_and_pending_migrations_are_named_until_applied() {
    let db = adapters::outbound::postgres::testing::TestDatabase::create().await.unwrap();
    let nowhere = format!("http://127.0.0.1:{}", tests::procs::free_port().unwrap());
    let config = local_config(&nowhere, "office-relay-secret-0123456789", db.url());
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "postgres.reachable"), Status::Ok);
    assert_eq!(status(&report, "postgres.migrations"), Status::Warn, "a fresh database: {report:#?}");
    assert!(fix(&report, "postgres.migrations").contains("dingbridge"));
    adapters::outbound::postgres::migrate(db.url()).await.unwrap();
    let report = doctor::run(&config).await;
    assert_eq!(status(&report, "postgres.migrations"), Status::Ok);
    db.drop_database().await.unwrap();
}

#[test]
fn the_command_prints_json_and_exits_non_zero_when_something_blocks() {
    let dir = std::env::temp_dir().join(format!("dingbridge-doctor-{}", tests::procs::free_port().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("local.toml");
    let nowhere = format!("http://127.0.0.1:{}", tests::procs::free_port().unwrap());
    std::fs::write(
        &file,
        format!(
            "mode = \"local\"\n[database]\nurl = \"postgres://postgres@127.0.0.1:1/none\"\n[cloud]\nbase_url = \"{nowhere}\"\nclient_id = \"office\"\nclient_secret = \"office-relay-secret-0123456789\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(DINGBRIDGE)
        .args(["--config", file.to_str().unwrap(), "doctor", "--json"])
        .env_clear()
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mode"], "local");
    assert_eq!(report["blocking"], true);
    let checks: Vec<_> = report["findings"].as_array().unwrap().iter().map(|f| f["check"].clone()).collect();
    assert!(checks.contains(&"cloud.reachable".into()), "{report}");
    assert!(report["findings"][0]["fix"].as_str().unwrap().contains("cloud.base_url"));
    let text = Command::new(DINGBRIDGE)
        .args(["--config", file.to_str().unwrap(), "doctor"])
        .env_clear()
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("[FAIL] cloud.reachable") && text.contains("fix: "), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_dingbridge_saw_exhausted_blocks_until_it_is_resumed() {
    let stack = stack().await;
    let corp_id = stack.config.dingtalk.corp_id.clone().unwrap();
    // One message meets DingTalk's 90020 (docs/dingtalk-api.md §G.3): the cloud marks the month.
    stack.emulator.state().set_monthly_quota(Some(0));
    let res = reqwest::Client::new()
        .post(format!("{}/api/messages", stack.base_url))
        .bearer_auth(tests::stack::SERVICE_TOKEN)
        .json(&serde_json::json!({"recipients": {"userids": ["manager4220"]}, "body": {"msgtype": "text", "text": {"content": "over quota"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !bootstrap::quota_figures(&stack.config).await.unwrap().iter().any(|f| f.exhausted) {
        assert!(std::time::Instant::now() < deadline, "the cloud never marked the quota");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stack.emulator.state().set_monthly_quota(None);
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.quota"), Status::Fail, "{report:#?}");
    assert!(report.finding("dingtalk.quota").unwrap().what.contains("exhausted (90020)"));
    assert!(fix(&report, "dingtalk.quota").contains(&format!("dingbridge quota resume --corp-id {corp_id}")));
    assert!(report.blocking);
    bootstrap::resume_quota(&stack.config, &corp_id).await.unwrap();
    let report = doctor::run(&stack.config).await;
    assert_eq!(status(&report, "dingtalk.quota"), Status::Ok, "{report:#?}");
    stack.stop_and_clean().await;
}
