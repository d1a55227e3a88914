//! Tests of the client acting for a third-party suite (docs/dingtalk-api.md §B.4, §D.1) and
//! of [`DingTalkApps`], against the stub server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use application::ports::{
    CorpAuthorization, IdentityError, IdentityProvider, Messenger, MessengerError, StoreError, SuiteStore, SuiteTicket,
    UpstreamError,
};
use async_trait::async_trait;
use domain::{AgentId, Batch, CorpId, DeliveryId, MessageBody, Timestamp, UnionId, UserId};
use secrecy::SecretString;
use serde_json::json;

use super::client::legacy_signature;
use super::stub::{Reply, Seen, Stub, StubBuilder};
use super::wire::path;
use super::{CorpTokenApi, DingTalkApp, DingTalkApps, DingTalkClient, DingTalkConfig};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SUITE_KEY: &str = "suitep1f5test";
const SUITE_SECRET: &str = "suite-secret-value";
const ASYNC_SEND_OK: &str = r#"{"errcode":0,"task_id":256271667526,"request_id":"4jzllmte0wau"}"#; // §D.1
const GET_BY_UNIONID_OK: &str =
    r#"{"errcode":0,"errmsg":"ok","result":{"contact_type":0,"userid":"zhangsan"},"request_id":"zcqi5450rpit"}"#; // §C.1

/// An in-memory suite store.
#[derive(Default)]
struct Suites {
    ticket: Mutex<Option<String>>,
    authorizations: Mutex<HashMap<CorpId, CorpAuthorization>>,
}

impl Suites {
    fn with(ticket: Option<&str>, corps: &[(&CorpId, Option<i64>)]) -> Arc<Self> {
        let suites = Self::default();
        *suites.ticket.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ticket.map(str::to_owned);
        for (corp, agent) in corps {
            suites.authorize(corp, *agent, true);
        }
        Arc::new(suites)
    }

    fn authorize(&self, corp: &CorpId, agent: Option<i64>, active: bool) {
        let authorization = CorpAuthorization {
            suite_key: SUITE_KEY.to_owned(),
            corp_id: corp.clone(),
            agent_id: agent.and_then(|a| AgentId::new(a).ok()),
            permanent_code: None,
            active,
            updated_at: Timestamp::from_millis(0),
        };
        self.authorizations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(corp.clone(), authorization);
    }
}

#[async_trait]
impl SuiteStore for Suites {
    async fn put_ticket(&self, _: &str, ticket: &str, _: Timestamp) -> Result<(), StoreError> {
        *self.ticket.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ticket.to_owned());
        Ok(())
    }
    async fn ticket(&self, suite_key: &str) -> Result<Option<SuiteTicket>, StoreError> {
        assert_eq!(suite_key, SUITE_KEY);
        let ticket = self.ticket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Ok(ticket.map(|ticket| SuiteTicket {
            suite_key: suite_key.to_owned(),
            ticket,
            updated_at: Timestamp::from_millis(0),
        }))
    }
    async fn put_authorization(&self, _: &CorpAuthorization) -> Result<(), StoreError> {
        Ok(())
    }
    async fn authorization(&self, suite_key: &str, corp_id: &CorpId) -> Result<Option<CorpAuthorization>, StoreError> {
        assert_eq!(suite_key, SUITE_KEY);
        Ok(self.authorizations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(corp_id).cloned())
    }
    async fn authorizations(&self, _: &str) -> Result<Vec<CorpAuthorization>, StoreError> {
        Ok(self.authorizations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect())
    }
}

fn corp_a() -> Result<CorpId, domain::ValidationError> {
    CorpId::parse("dingcorpa")
}

fn corp_b() -> Result<CorpId, domain::ValidationError> {
    CorpId::parse("dingcorpb")
}

/// `corp-<authCorpId>-<n>`: a new token on every call, as docs/dingtalk-api.md §B.4/§B.6 say.
fn corp_token_reply(n: usize, seen: &Seen) -> Reply {
    let corp = seen.body["authCorpId"].as_str().unwrap_or("none");
    Reply::ok(format!(r#"{{"accessToken":"corp-{corp}-{n}","expireIn":7200}}"#))
}

/// A stub issuing corp tokens ([`corp_token_reply`]) and answering `send` with a task id.
async fn sending_stub(send: &'static str) -> std::io::Result<Stub> {
    StubBuilder::new().on(path::CORP_TOKEN, corp_token_reply).on(send, |_, _| Reply::ok(ASYNC_SEND_OK)).start().await
}

fn suite_client(stub: &Stub, suites: Arc<Suites>, api: CorpTokenApi) -> DingTalkClient {
    let mut config = DingTalkConfig::new(SUITE_KEY, SecretString::from(SUITE_SECRET));
    config.login_base = stub.base();
    config.api_base = stub.base();
    config.oapi_base = stub.base();
    config.timeout = Duration::from_secs(5);
    DingTalkClient::new(reqwest::Client::new(), config, DingTalkApp::Suite { suites, corp_token_api: api })
}

fn batch() -> Result<Batch, domain::ValidationError> {
    Batch::new(vec![UserId::parse("u1")?], vec![], false)
}

#[tokio::test]
async fn each_corp_gets_its_own_token_and_agent_id() -> TestResult {
    let stub = sending_stub(path::ASYNC_SEND).await?;
    let (a, b) = (corp_a()?, corp_b()?);
    let client =
        suite_client(&stub, Suites::with(Some("ticket-1"), &[(&a, Some(11)), (&b, Some(22))]), CorpTokenApi::V1);
    let body = MessageBody::text("hi")?;
    for _ in 0..3 {
        client.send(&a, &batch()?, &body, "k").await?;
        client.send(&b, &batch()?, &body, "k").await?;
    }
    let tokens = stub.route(path::CORP_TOKEN).seen();
    assert_eq!(tokens.len(), 2, "one token per corp, cached");
    assert_eq!(
        tokens[0].body,
        json!({"suiteKey": SUITE_KEY, "suiteSecret": SUITE_SECRET, "authCorpId": "dingcorpa", "suiteTicket": "ticket-1"})
    );
    assert_eq!(tokens[1].body["authCorpId"], "dingcorpb");
    let sends = stub.route(path::ASYNC_SEND).seen();
    assert_eq!(sends.len(), 6);
    for (i, send) in sends.iter().enumerate() {
        let (token, agent) = if i % 2 == 0 { ("corp-dingcorpa-1", 11) } else { ("corp-dingcorpb-2", 22) };
        assert_eq!(send.query.get("access_token").map(String::as_str), Some(token), "send {i}");
        assert_eq!(send.body["agent_id"], agent, "send {i}");
    }
    assert_eq!(stub.calls(path::APP_TOKEN), 0, "a suite never asks for an app token");
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_for_one_corp_fetch_one_token() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::CORP_TOKEN, |n, seen| corp_token_reply(n, seen).after(Duration::from_millis(50)))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let a = corp_a()?;
    let client = suite_client(&stub, Suites::with(Some("t"), &[(&a, Some(11))]), CorpTokenApi::V1);
    let union = UnionId::parse("z21HjQliSzpw0Yxxxx")?;
    let calls = (0..50).map(|_| client.find_userid(&a, &union));
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result?, UserId::parse("zhangsan")?);
    }
    assert_eq!(stub.calls(path::CORP_TOKEN), 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_corp_token_is_refetched_once() -> TestResult {
    const TOKEN_88_40014: &str = r#"{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token","errmsg":"x"}"#; // §0.3
    let stub = StubBuilder::new()
        .on(path::CORP_TOKEN, corp_token_reply)
        .on(path::ASYNC_SEND, |n, _| if n == 1 { Reply::ok(TOKEN_88_40014) } else { Reply::ok(ASYNC_SEND_OK) })
        .start()
        .await?;
    let a = corp_a()?;
    let client = suite_client(&stub, Suites::with(Some("t"), &[(&a, Some(11))]), CorpTokenApi::V1);
    assert_eq!(client.send(&a, &batch()?, &MessageBody::text("hi")?, "k").await?, DeliveryId::parse("256271667526")?);
    assert_eq!(stub.calls(path::CORP_TOKEN), 2);
    let sends = stub.route(path::ASYNC_SEND).seen();
    assert_eq!(sends[1].query.get("access_token").map(String::as_str), Some("corp-dingcorpa-2"));
    Ok(())
}

#[tokio::test]
async fn legacy_get_corp_token_signs_the_request() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::LEGACY_CORP_TOKEN, |_, _| {
            Reply::ok(r#"{"access_token":"1cc1bb3xxxx","errcode":0,"errmsg":"ok","expires_in":7200}"#)
        })
        .on(path::ASYNC_SEND, |_, _| Reply::ok(ASYNC_SEND_OK))
        .start()
        .await?;
    let a = corp_a()?;
    let client = suite_client(&stub, Suites::with(Some("ticket+/="), &[(&a, Some(11))]), CorpTokenApi::Legacy);
    client.send(&a, &batch()?, &MessageBody::text("hi")?, "k").await?;
    let seen = stub.route(path::LEGACY_CORP_TOKEN).seen();
    assert_eq!(seen.len(), 1);
    let q = &seen[0].query;
    assert_eq!(q.get("accessKey").map(String::as_str), Some(SUITE_KEY));
    assert_eq!(q.get("suiteTicket").map(String::as_str), Some("ticket+/="));
    let timestamp = q.get("timestamp").cloned().unwrap_or_default();
    assert!(timestamp.parse::<i64>().is_ok_and(|ms| ms > 1_700_000_000_000), "{timestamp}");
    // The stub decodes the query, so the signature arrives as plain Base64.
    let expected = legacy_signature(SUITE_SECRET, &timestamp, "ticket+/=")?;
    assert_eq!(q.get("signature"), Some(&expected));
    assert_eq!(seen[0].body, json!({"auth_corpid": "dingcorpa"}));
    let sends = stub.route(path::ASYNC_SEND).seen();
    assert_eq!(sends[0].query.get("access_token").map(String::as_str), Some("1cc1bb3xxxx"));
    Ok(())
}

#[test]
fn legacy_signature_matches_an_independent_computation() -> TestResult {
    // The message is `timestamp + "\n" + ticket`.
    let sig = legacy_signature("key", "The quick brown fox", "jumps over the lazy dog")?;
    // Computed with: printf 'The quick brown fox\njumps over the lazy dog' | openssl dgst -sha256 -hmac key -binary | base64
    assert_eq!(sig, "uFZSD3e+RVgsPtBb9lzFJcVBuEp8QIEWqIQBDZrc1Mg=");
    Ok(())
}

#[tokio::test]
async fn unauthorized_relieved_and_unknown_agent_corps() -> TestResult {
    let stub = sending_stub(path::ASYNC_SEND).await?;
    let (a, b) = (corp_a()?, corp_b()?);
    let suites = Suites::with(Some("t"), &[(&a, Some(11)), (&b, None)]);
    let client = suite_client(&stub, suites.clone(), CorpTokenApi::V1);
    let body = MessageBody::text("hi")?;
    let other = CorpId::parse("dingnever")?;
    assert!(
        matches!(client.send(&other, &batch()?, &body, "k").await, Err(MessengerError::CorpNotServed(c)) if c == other)
    );
    let union = UnionId::parse("z21HjQliSzpw0Yxxxx")?;
    assert!(matches!(client.find_userid(&other, &union).await, Err(IdentityError::CorpNotServed(_))));
    match client.send(&b, &batch()?, &body, "k").await {
        Err(MessengerError::Upstream(UpstreamError::Rejected { code, message })) => {
            assert_eq!(code, "agent_id_unknown");
            assert!(message.contains("dingcorpb"), "{message}");
        }
        other => panic!("expected agent_id_unknown, got {other:?}"),
    }
    client.send(&a, &batch()?, &body, "k").await?;
    suites.authorize(&a, Some(11), false);
    assert!(matches!(client.send(&a, &batch()?, &body, "k").await, Err(MessengerError::CorpNotServed(_))));
    assert_eq!(stub.calls(path::ASYNC_SEND), 1, "nothing sent for a relieved corp");
    Ok(())
}

#[tokio::test]
async fn without_a_suite_ticket_calls_wait_as_unavailable() -> TestResult {
    let stub = StubBuilder::new().on(path::CORP_TOKEN, corp_token_reply).start().await?;
    let a = corp_a()?;
    let suites = Suites::with(None, &[(&a, Some(11))]);
    let client = suite_client(&stub, suites.clone(), CorpTokenApi::V1);
    match client.send(&a, &batch()?, &MessageBody::text("hi")?, "k").await {
        Err(MessengerError::Upstream(UpstreamError::Unavailable(text))) => {
            assert!(text.contains("suite_ticket"), "{text}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(stub.calls(path::CORP_TOKEN), 0);
    Ok(())
}

#[tokio::test]
async fn a_refused_suite_ticket_waits_for_the_next_push() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::CORP_TOKEN, |_, _| {
            Reply::status(400, r#"{"requestid":"r","code":"invalidSuiteTicket","message":"suiteTicket无效"}"#)
        })
        .start()
        .await?;
    let a = corp_a()?;
    let client = suite_client(&stub, Suites::with(Some("old"), &[(&a, Some(11))]), CorpTokenApi::V1);
    let result = client.send(&a, &batch()?, &MessageBody::text("hi")?, "k").await;
    assert!(
        matches!(&result, Err(MessengerError::Upstream(UpstreamError::Unavailable(text))) if text.contains("invalidSuiteTicket")),
        "{result:?}"
    );
    // Other refusals stay permanent.
    let stub = StubBuilder::new()
        .on(path::CORP_TOKEN, |_, _| {
            Reply::status(400, r#"{"requestid":"r","code":"invalidAuthInfo","message":"授权关系不存在"}"#)
        })
        .start()
        .await?;
    let client = suite_client(&stub, Suites::with(Some("t"), &[(&a, Some(11))]), CorpTokenApi::V1);
    let result = client.send(&a, &batch()?, &MessageBody::text("hi")?, "k").await;
    assert!(
        matches!(&result, Err(MessengerError::Upstream(UpstreamError::Rejected { code, .. })) if code == "invalidAuthInfo"),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_template_body_goes_to_sendbytemplate_with_data_as_a_string() -> TestResult {
    let stub = sending_stub(path::SEND_BY_TEMPLATE).await?;
    let a = corp_a()?;
    let client = suite_client(&stub, Suites::with(Some("t"), &[(&a, Some(11))]), CorpTokenApi::V1);
    let body = MessageBody::parse(
        &json!({"msgtype":"template","template":{"template_id":"tpl-1","data":{"message":"hi","url":"https://a.example"}}}),
    )?;
    let batch = Batch::new(vec![UserId::parse("u1")?, UserId::parse("u2")?], vec![], false)?;
    assert_eq!(client.send(&a, &batch, &body, "k").await?, DeliveryId::parse("256271667526")?);
    let seen = stub.route(path::SEND_BY_TEMPLATE).seen();
    assert_eq!(
        seen[0].body,
        json!({"agent_id": 11, "userid_list": "u1,u2", "template_id": "tpl-1", "data": r#"{"message":"hi","url":"https://a.example"}"#})
    );
    assert_eq!(stub.calls(path::ASYNC_SEND), 0);
    Ok(())
}

#[tokio::test]
async fn apps_route_each_corp_to_the_app_serving_it() -> TestResult {
    let stub = sending_stub(path::ASYNC_SEND).await?;
    let internal_corp = CorpId::parse("dinginternal")?;
    let mut config = DingTalkConfig::new("dingappkey", SecretString::from("app-secret"));
    config.login_base = stub.base();
    config.api_base = stub.base();
    config.oapi_base = stub.base();
    let internal = DingTalkClient::new(
        reqwest::Client::new(),
        config,
        DingTalkApp::Internal { agent_id: AgentId::new(300001)?, corp_id: internal_corp.clone() },
    );
    let a = corp_a()?;
    let suite = suite_client(&stub, Suites::with(Some("t"), &[(&a, Some(11))]), CorpTokenApi::V1);
    let apps = DingTalkApps::new(internal, vec![suite]);
    let body = MessageBody::text("hi")?;
    apps.send(&internal_corp, &batch()?, &body, "k").await?;
    apps.send(&a, &batch()?, &body, "k").await?;
    let nobody = CorpId::parse("dingnobody")?;
    assert!(
        matches!(apps.send(&nobody, &batch()?, &body, "k").await, Err(MessengerError::CorpNotServed(c)) if c == nobody)
    );
    let sends = stub.route(path::ASYNC_SEND).seen();
    assert_eq!(sends[0].body["agent_id"], 300001);
    assert_eq!(sends[0].query.get("access_token").map(String::as_str), Some("tok-1"));
    assert_eq!(sends[1].body["agent_id"], 11);
    assert_eq!(sends[1].query.get("access_token").map(String::as_str), Some("corp-dingcorpa-1"));
    // The first app is the OAuth client.
    let state = domain::LoginState::from_random_bytes(&[7; 32]);
    assert!(apps.authorize_url(&state, "https://x/cb", "challenge").contains("client_id=dingappkey"));
    Ok(())
}
