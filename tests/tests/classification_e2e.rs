//! The emulator's error answers against the DingTalk client's classification, code by code: every
//! code of docs/dingtalk-api.md §G.2's table (transcribed below with its row) is injected with the
//! emulator's fault vocabulary, and the client — a fresh one per code, so a ban or a token refusal
//! cannot leak into the next — must land it in the row's class. The two sides are written
//! separately (the emulator's `faults.rs` from the reference's shapes, the client's `errors.rs`
//! from its table), so this catches a misreading on either side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use adapters::outbound::dingtalk::{DingTalkApp, DingTalkClient, DingTalkConfig};
use adapters::outbound::governor::{Governor, GovernorConfig};
use application::ports::{IdentityError, IdentityProvider, UpstreamError};
use domain::{AgentId, CorpId, UnionId};
use secrecy::SecretString;
use tests::emulator::{EmulatorConfig, FaultRule, RunningEmulator, start};

const GET_BY_UNIONID: &str = "/topapi/user/getbyunionid";
const APP_TOKEN: &str = "/v1.0/oauth2/accessToken";

/// The classes of docs/dingtalk-api.md §G.2 as the client reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Transient,
    Throttled,
    Token,
    Permanent,
    NotMember,
    Unrecognized,
}

fn class_of(result: Result<domain::UserId, IdentityError>) -> Option<Class> {
    match result {
        Ok(_) => None,
        Err(IdentityError::NotMember) => Some(Class::NotMember),
        Err(IdentityError::Upstream(error)) => Some(match error {
            UpstreamError::Unavailable(_) => Class::Transient,
            UpstreamError::Throttled(_) | UpstreamError::Held { .. } => Class::Throttled,
            UpstreamError::TokenRejected(_) => Class::Token,
            UpstreamError::Rejected { .. } => Class::Permanent,
            UpstreamError::Unrecognized { .. } => Class::Unrecognized,
        }),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// A client for the emulator's internal app: no pacing, no retries of throttled calls.
fn client(emulator: &RunningEmulator, fixture: &EmulatorConfig) -> DingTalkClient {
    let app = fixture.fixture.apps.first().unwrap();
    let mut config = DingTalkConfig::new(app.app_key.clone(), SecretString::from(app.app_secret.clone()));
    config.login_base = emulator.base_url();
    config.api_base = emulator.base_url();
    config.oapi_base = emulator.base_url();
    config.timeout = Duration::from_secs(5);
    config.governor = Arc::new(Governor::new(GovernorConfig {
        rate_per_second: 10_000.0,
        max_retries: 0,
        ..GovernorConfig::default()
    }));
    let corp_id = CorpId::parse(&fixture.fixture.corp.corp_id).unwrap();
    DingTalkClient::new(
        reqwest::Client::new(),
        config,
        DingTalkApp::Internal { agent_id: AgentId::new(app.agent_id).unwrap(), corp_id },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_section_g2_code_lands_in_its_class() {
    let fixture = EmulatorConfig { qps_limit: None, ..EmulatorConfig::default() };
    let emulator = start(fixture.clone(), "127.0.0.1:0").await.unwrap();
    let corp = CorpId::parse(&fixture.fixture.corp.corp_id).unwrap();
    let union = UnionId::parse("union-user0001").unwrap();
    // (fault word on the legacy `getbyunionid`, expected class), row by row of §G.2.
    let legacy: Vec<(String, Class)> = [
        // transient / busy
        (vec!["-1", "400001", "500", "1430003"], Class::Transient),
        // throttled (90001 bans the IP: throttled too)
        (
            vec![
                "90018", "90002", "90005", "90006", "90007", "90008", "90009", "90010", "90011", "90012", "90013",
                "90014", "90001", "90003", "90004", "90017",
            ],
            Class::Throttled,
        ),
        // token invalid / expired (the client renews once; the fault stays, so it reports it)
        (vec!["40014", "42001", "40001", "33001", "41001", "88/40014", "88/40000"], Class::Token),
        // bad credentials, permission, not found / input, the month's quota (§G.1)
        (
            vec![
                "40096", "40089", "40088", "40080", "40085", "60011", "50002", "50004", "60020", "33012", "40035",
                "400002", "40078", "43004", "43005", "88/60011", "90020",
            ],
            Class::Permanent,
        ),
        (vec!["60121"], Class::NotMember),
        // "An errcode not in this table is retried within a bounded budget"
        (vec!["71001", "88/71002"], Class::Unrecognized),
    ]
    .into_iter()
    .flat_map(|(words, class)| words.into_iter().map(move |w| (w.to_owned(), class)))
    .collect();
    let mut checked = 0;
    for (word, expected) in &legacy {
        emulator.state().clear_faults();
        emulator.state().set_fault(FaultRule::error(GET_BY_UNIONID, word));
        let got = class_of(client(&emulator, &fixture).find_userid(&corp, &union).await);
        assert_eq!(got, Some(*expected), "errcode {word} (docs/dingtalk-api.md §G.2)");
        checked += 1;
    }
    // The v1.0 family, on the app-token endpoint every call starts with (a token-class answer
    // there is a refusal of the credentials: nothing to renew).
    for (word, expected) in [
        ("-1", Class::Transient),       // 503 serviceBusy
        ("500", Class::Transient),      // 500 unknownError
        ("429", Class::Transient),      // 429 system.busy
        ("503", Class::Transient),      // 503
        ("403qps", Class::Throttled),   // 403 Forbidden.AccessDenied.QpsLimitForAppkeyAndApi
        ("403perm", Class::Permanent),  // 403 …AccessTokenPermissionDenied
        ("403ip", Class::Permanent),    // 403 …IpNotInWhiteList
        ("403quota", Class::Permanent), // 403 …ApiCountLimitForOrg
        ("88/40014", Class::Permanent), // 400 InvalidAuthentication on the token endpoint
    ] {
        emulator.state().clear_faults();
        emulator.state().set_fault(FaultRule::error(APP_TOKEN, word));
        let got = class_of(client(&emulator, &fixture).find_userid(&corp, &union).await);
        assert_eq!(got, Some(expected), "v1.0 fault {word} (docs/dingtalk-api.md §0.2, §G.2)");
        checked += 1;
    }
    emulator.state().clear_faults();
    assert!(client(&emulator, &fixture).find_userid(&corp, &union).await.is_ok(), "and without a fault it works");
    eprintln!("classification: {checked} codes checked against the emulator");
    emulator.stop().await;
}
