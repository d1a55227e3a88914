//! Tests of the relay client against a stub cloud on 127.0.0.1:0.

use std::time::{Duration, Instant};

use application::ports::{CloudGateway, GatewayError, MemberKey, RelaySendRequest};
use base64::Engine;
use domain::{
    CorpId, DeliveryId, DeptId, LoginFailure, LoginState, MessageBody, MessageState, RecipientOutcome, Recipients,
    UnionId, UserId,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{HttpCloudGateway, RelayConfig, RelayConfigError};
use crate::outbound::test_stub::{Reply, Seen, Stub, StubBuilder};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const CLIENT_ID: &str = "local-a";
const SECRET: &str = "s3cr3t-relay-client-secret";
const KEY: &str = "0190c5e2-7b1a-7c3e-9d4f-1a2b3c4d5e6f";

const MEMBER: &str = r#"{"corp_id":"dingcorp1","union_id":"z21HjQliSzpw0Yxxxx","userid":"manager4220","open_id":"123","name":"张三","avatar_url":null,"title":"工程师","org_email":"zs@corp.example","email":null,"mobile":"150xxxx9144","dept_ids":[1,42],"active":true}"#;

fn receipt_json(key: &str, state: &str) -> String {
    json!({"key": key, "state": state, "task_ids": [256271667526_i64], "errors": []}).to_string()
}

fn config_for(base: impl Into<String>) -> RelayConfig {
    let mut config = RelayConfig::new(base, CLIENT_ID, SecretString::from(SECRET));
    config.timeout = Duration::from_secs(5);
    config
}

fn gateway_with(config: RelayConfig) -> HttpCloudGateway {
    HttpCloudGateway::new(reqwest::Client::new(), config)
}

fn gateway(stub: &Stub) -> HttpCloudGateway {
    gateway_with(config_for(stub.base()))
}

/// A gateway that makes exactly one attempt per call.
fn single_attempt(stub: &Stub) -> HttpCloudGateway {
    let mut config = config_for(stub.base());
    config.max_attempts = 1;
    gateway_with(config)
}

fn state() -> LoginState {
    LoginState::from_random_bytes(&[7; 32])
}

fn corp() -> Result<CorpId, domain::ValidationError> {
    CorpId::parse("dingcorp1")
}

fn send_request() -> Result<RelaySendRequest, domain::ValidationError> {
    Ok(RelaySendRequest {
        key: KEY.to_owned(),
        corp_id: corp()?,
        recipients: Recipients::new(vec![UserId::parse("manager4220")?, UserId::parse("u2")?], vec![DeptId::new(42)?])?,
        body: MessageBody::parse(&json!({"msgtype": "text", "text": {"content": "你好"}}))?,
    })
}

/// Asserts the headers every call carries; returns the request id.
fn assert_common_headers(seen: &Seen) -> String {
    let auth = seen.header("authorization");
    let encoded = auth.strip_prefix("Basic ").unwrap_or_else(|| panic!("not Basic auth: {auth:?}"));
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(String::from_utf8_lossy(&decoded), format!("{CLIENT_ID}:{SECRET}"));
    assert_eq!(seen.header("accept"), "application/json");
    let request_id = seen.header("x-request-id");
    let uuid = uuid::Uuid::parse_str(request_id).unwrap_or_else(|e| panic!("x-request-id {request_id:?}: {e}"));
    assert_eq!(uuid.get_version_num(), 4);
    request_id.to_owned()
}

fn status_path() -> String {
    format!("/relay/v1/messages/{KEY}")
}

fn recall_path() -> String {
    format!("/relay/v1/messages/{KEY}/recall")
}

// ---------------------------------------------------------------- requests and answers

#[tokio::test]
async fn start_login_posts_the_intent_and_returns_the_authorize_url() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/logins", |_, _| {
            Reply::status(201, r#"{"authorize_url":"https://login.dingtalk.com/oauth2/auth?client_id=x&state=s"}"#)
        })
        .start()
        .await?;
    let url = gateway(&stub)
        .start_login(
            &crate::outbound::dingtalk::provider_key(),
            &state(),
            "https://app.example.com/auth/dingtalk/complete",
        )
        .await?;
    assert_eq!(url, "https://login.dingtalk.com/oauth2/auth?client_id=x&state=s");
    let seen = stub.route("POST", "/relay/v1/logins").seen();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/relay/v1/logins"));
    assert_common_headers(&seen[0]);
    assert_eq!(seen[0].header("content-type"), "application/json");
    assert_eq!(
        seen[0].body,
        json!({"state": state().expose(), "provider": "dingtalk", "complete_url": "https://app.example.com/auth/dingtalk/complete"})
    );
    Ok(())
}

#[tokio::test]
async fn take_login_result_gets_the_state_and_maps_a_member() -> TestResult {
    let path = format!("/relay/v1/logins/{}", state().expose());
    let stub = StubBuilder::new()
        .on("GET", &path, |_, _| Reply::ok(format!(r#"{{"member":{MEMBER},"failure":null,"error":null}}"#)))
        .start()
        .await?;
    let profile = gateway(&stub).take_login_result(&state()).await?.map_err(|f| format!("{f:?}"))?;
    assert_eq!(profile.corp_id, corp()?);
    assert_eq!(profile.union_id, UnionId::parse("z21HjQliSzpw0Yxxxx")?);
    assert_eq!(profile.userid, UserId::parse("manager4220")?);
    assert_eq!(profile.name, "张三");
    assert_eq!(profile.dept_ids, vec![DeptId::new(1)?, DeptId::new(42)?]);
    let seen = stub.route("GET", &path).seen();
    assert_eq!(seen.len(), 1);
    assert_common_headers(&seen[0]);
    assert_eq!(seen[0].body, Value::Null);
    Ok(())
}

#[tokio::test]
async fn take_login_result_maps_failures() -> TestResult {
    let path = format!("/relay/v1/logins/{}", state().expose());
    let stub = StubBuilder::new()
        .on("GET", &path, |n, _| match n {
            1 => Reply::ok(r#"{"member":null,"failure":"not_member","error":null}"#),
            _ => Reply::ok(r#"{"member":null,"failure":"consent_denied","error":"access_denied"}"#),
        })
        .start()
        .await?;
    let gateway = gateway(&stub);
    assert_eq!(gateway.take_login_result(&state()).await?, Err(LoginFailure::NotMember));
    assert_eq!(
        gateway.take_login_result(&state()).await?,
        Err(LoginFailure::ConsentDenied { error: "access_denied".into() })
    );
    Ok(())
}

#[tokio::test]
async fn send_message_posts_the_message_and_maps_the_receipt() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |_, _| Reply::ok(receipt_json(KEY, "sent")))
        .start()
        .await?;
    let receipt = gateway(&stub).send_message(&send_request()?).await?;
    assert_eq!(receipt.key, KEY);
    assert_eq!(receipt.state, MessageState::Sent);
    assert_eq!(receipt.delivery_ids, vec![DeliveryId::parse("256271667526")?]);
    let seen = stub.route("POST", "/relay/v1/messages").seen();
    assert_eq!(seen.len(), 1);
    assert_common_headers(&seen[0]);
    assert_eq!(
        seen[0].body,
        json!({
            "key": KEY,
            "corp_id": "dingcorp1",
            "recipients": {"userids": ["manager4220", "u2"], "dept_ids": [42], "to_all": false},
            "body": {"msgtype": "text", "text": {"content": "你好"}},
        })
    );
    Ok(())
}

#[tokio::test]
async fn send_message_to_everyone_sends_to_all() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |_, _| Reply::ok(receipt_json(KEY, "accepted")))
        .start()
        .await?;
    let mut request = send_request()?;
    request.recipients = Recipients::everyone();
    let receipt = gateway(&stub).send_message(&request).await?;
    assert_eq!(receipt.state, MessageState::Accepted);
    let seen = stub.route("POST", "/relay/v1/messages").seen();
    assert_eq!(seen[0].body["recipients"], json!({"userids": [], "dept_ids": [], "to_all": true}));
    Ok(())
}

#[tokio::test]
async fn message_status_gets_the_record_and_maps_the_report() -> TestResult {
    let body = json!({
        "receipt": {"key": KEY, "state": "completed", "task_ids": [1, 2], "errors": ["batch 3: 33012"]},
        "done": true,
        "percent": 100,
        "recipients": [
            {"userid": "manager4220", "outcome": "read"},
            {"userid": "u2", "outcome": "forbidden", "code": "143106"},
        ],
        "invalid_dept_ids": [9],
    })
    .to_string();
    let stub = StubBuilder::new().on("GET", &status_path(), move |_, _| Reply::ok(body.clone())).start().await?;
    let (receipt, report) = gateway(&stub).message_status(KEY).await?;
    assert_eq!(receipt.state, MessageState::Completed);
    assert_eq!(receipt.delivery_ids, vec![DeliveryId::parse("1")?, DeliveryId::parse("2")?]);
    assert_eq!(receipt.errors, vec!["batch 3: 33012".to_owned()]);
    assert!(report.done);
    assert_eq!(report.percent, 100);
    assert_eq!(
        report.recipients,
        vec![
            (UserId::parse("manager4220")?, RecipientOutcome::Read),
            (UserId::parse("u2")?, RecipientOutcome::Forbidden { code: "143106".into() }),
        ]
    );
    assert_eq!(report.invalid_depts, vec![DeptId::new(9)?]);
    let seen = stub.route("GET", &status_path()).seen();
    assert_eq!(seen.len(), 1);
    assert_common_headers(&seen[0]);
    Ok(())
}

#[tokio::test]
async fn recall_message_posts_to_recall() -> TestResult {
    let stub =
        StubBuilder::new().on("POST", &recall_path(), |_, _| Reply::ok(receipt_json(KEY, "recalled"))).start().await?;
    let receipt = gateway(&stub).recall_message(KEY).await?;
    assert_eq!(receipt.state, MessageState::Recalled);
    let seen = stub.route("POST", &recall_path()).seen();
    assert_eq!(seen.len(), 1);
    assert_common_headers(&seen[0]);
    assert_eq!(seen[0].body, Value::Null);
    Ok(())
}

#[tokio::test]
async fn get_member_queries_by_userid_or_union_id() -> TestResult {
    let stub = StubBuilder::new().on("GET", "/relay/v1/members", |_, _| Reply::ok(MEMBER)).start().await?;
    let gateway = gateway(&stub);
    let by_userid = gateway.get_member(&corp()?, &MemberKey::UserId(UserId::parse("manager4220")?)).await?;
    let by_union = gateway.get_member(&corp()?, &MemberKey::UnionId(UnionId::parse("z21HjQliSzpw0Yxxxx")?)).await?;
    assert_eq!(by_userid, by_union);
    assert_eq!(by_userid.title.as_deref(), Some("工程师"));
    assert_eq!(by_userid.org_email.as_deref(), Some("zs@corp.example"));
    assert!(by_userid.active);
    let seen = stub.route("GET", "/relay/v1/members").seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_common_headers(s);
    }
    assert_eq!(seen[0].query.get("corp_id").map(String::as_str), Some("dingcorp1"));
    assert_eq!(seen[0].query.get("userid").map(String::as_str), Some("manager4220"));
    assert!(!seen[0].query.contains_key("union_id"));
    assert_eq!(seen[1].query.get("corp_id").map(String::as_str), Some("dingcorp1"));
    assert_eq!(seen[1].query.get("union_id").map(String::as_str), Some("z21HjQliSzpw0Yxxxx"));
    assert!(!seen[1].query.contains_key("userid"));
    Ok(())
}

#[tokio::test]
async fn each_logical_call_has_its_own_request_id() -> TestResult {
    let stub = StubBuilder::new().on("GET", "/relay/v1/members", |_, _| Reply::ok(MEMBER)).start().await?;
    let gateway = gateway(&stub);
    let key = MemberKey::UserId(UserId::parse("manager4220")?);
    gateway.get_member(&corp()?, &key).await?;
    gateway.get_member(&corp()?, &key).await?;
    let seen = stub.route("GET", "/relay/v1/members").seen();
    assert_ne!(assert_common_headers(&seen[0]), assert_common_headers(&seen[1]));
    Ok(())
}

// ---------------------------------------------------------------- URLs

#[tokio::test]
async fn a_base_url_path_prefix_is_kept_with_or_without_a_trailing_slash() -> TestResult {
    let stub = StubBuilder::new()
        .prefix("/prefix")
        .on("POST", "/relay/v1/messages", |_, _| Reply::ok(receipt_json(KEY, "sent")))
        .on("GET", &status_path(), |_, _| {
            Reply::ok(
                json!({"receipt": {"key": KEY, "state": "sent", "task_ids": [], "errors": []},
                       "done": false, "percent": 0, "recipients": [], "invalid_dept_ids": []})
                .to_string(),
            )
        })
        .start()
        .await?;
    assert!(stub.base().ends_with("/prefix"));
    gateway_with(config_for(format!("{}/", stub.base()))).send_message(&send_request()?).await?;
    gateway_with(config_for(stub.base())).message_status(KEY).await?;
    let seen = stub.route("POST", "/relay/v1/messages").seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/prefix/relay/v1/messages");
    let seen = stub.route("GET", &status_path()).seen();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("GET", format!("/prefix{}", status_path()).as_str()));
    Ok(())
}

#[tokio::test]
async fn a_bare_host_with_a_trailing_slash_works() -> TestResult {
    let stub =
        StubBuilder::new().on("POST", &recall_path(), |_, _| Reply::ok(receipt_json(KEY, "recalled"))).start().await?;
    gateway_with(config_for(format!("{}/", stub.base()))).recall_message(KEY).await?;
    assert_eq!(stub.calls("POST", &recall_path()), 1);
    Ok(())
}

#[tokio::test]
async fn path_segments_and_query_values_are_percent_encoded() -> TestResult {
    let key = "a b/c?d#e%f";
    let stub = StubBuilder::new()
        .on("GET", "/relay/v1/messages/a%20b%2Fc%3Fd%23e%25f", move |_, _| {
            Reply::ok(
                json!({"receipt": {"key": key, "state": "sent", "task_ids": [], "errors": []},
                       "done": false, "percent": 0, "recipients": [], "invalid_dept_ids": []})
                .to_string(),
            )
        })
        .on("GET", "/relay/v1/members", |_, _| Reply::ok(MEMBER))
        .start()
        .await?;
    let gateway = gateway(&stub);
    let (receipt, _) = gateway.message_status(key).await?;
    assert_eq!(receipt.key, key);
    let union = "u+1&userid=evil=#x";
    gateway.get_member(&corp()?, &MemberKey::UnionId(UnionId::parse(union)?)).await?;
    let seen = stub.route("GET", "/relay/v1/members").seen();
    assert_eq!(seen[0].query.get("union_id").map(String::as_str), Some(union));
    assert!(!seen[0].query.contains_key("userid"));
    Ok(())
}

#[tokio::test]
async fn dot_and_empty_keys_are_refused_before_sending() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages/recall", |_, _| Reply::ok(receipt_json("..", "recalled")))
        .start()
        .await?;
    let gateway = gateway(&stub);
    for key in ["", ".", ".."] {
        assert!(matches!(gateway.recall_message(key).await, Err(GatewayError::Invalid(_))), "{key:?}");
        assert!(matches!(gateway.message_status(key).await, Err(GatewayError::Invalid(_))), "{key:?}");
    }
    assert_eq!(stub.calls("POST", "/relay/v1/messages/recall"), 0);
    Ok(())
}

// ---------------------------------------------------------------- error mapping

#[tokio::test]
async fn statuses_and_codes_map_to_gateway_errors() -> TestResult {
    let cases: Vec<(u16, &str, GatewayError)> = vec![
        (401, "unauthorized", GatewayError::Forbidden("why 401".into())),
        (403, "forbidden", GatewayError::Forbidden("why 403".into())),
        (404, "not_found", GatewayError::NotFound),
        (404, "not_member", GatewayError::NotMember),
        (400, "invalid_login_state", GatewayError::Invalid("why 400".into())),
        (409, "idempotency_key_reused", GatewayError::Invalid("why 409".into())),
        (422, "validation_failed", GatewayError::Invalid("why 422".into())),
        (502, "upstream_refused", GatewayError::Rejected("why 502".into())),
    ];
    for (status, code, expected) in cases {
        let stub = StubBuilder::new()
            .on("POST", "/relay/v1/messages", move |_, _| Reply::error(status, code, &format!("why {status}")))
            .start()
            .await?;
        let got = gateway(&stub).send_message(&send_request()?).await;
        assert_eq!(got, Err(expected), "{status} {code}");
        assert_eq!(stub.calls("POST", "/relay/v1/messages"), 1, "{status} {code} is not retried");
    }
    Ok(())
}

#[tokio::test]
async fn transient_statuses_map_to_unavailable() -> TestResult {
    for (status, code) in
        [(429, "rate_limited"), (500, "internal"), (503, "unavailable"), (502, "bad_gateway"), (504, "gateway_timeout")]
    {
        let stub = StubBuilder::new()
            .on("GET", "/relay/v1/members", move |_, _| Reply::error(status, code, "busy"))
            .start()
            .await?;
        let got = single_attempt(&stub).get_member(&corp()?, &MemberKey::UserId(UserId::parse("manager4220")?)).await;
        match got {
            Err(GatewayError::Unavailable(detail)) => assert!(detail.contains(&status.to_string()), "{detail}"),
            other => panic!("{status} {code}: {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn error_statuses_without_an_error_body_map_by_status() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", &status_path(), |_, _| Reply::status(404, "<html>not here</html>"))
        .on("POST", &recall_path(), |_, _| Reply::status(503, "<html>maintenance</html>"))
        .on("POST", "/relay/v1/messages", |_, _| Reply::status(403, ""))
        .start()
        .await?;
    let gateway = single_attempt(&stub);
    assert_eq!(gateway.message_status(KEY).await, Err(GatewayError::NotFound));
    assert!(matches!(gateway.recall_message(KEY).await, Err(GatewayError::Unavailable(_))));
    assert!(matches!(
        gateway.send_message(&send_request()?).await,
        Err(GatewayError::Forbidden(m)) if m.contains("403")
    ));
    Ok(())
}

#[tokio::test]
async fn a_garbage_2xx_body_is_unavailable_and_not_retried() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |_, _| Reply::ok("this is not json"))
        .on("GET", &status_path(), |_, _| Reply::ok(r#"{"unexpected":"shape"}"#))
        .on("POST", &recall_path(), |_, _| Reply::ok(receipt_json(KEY, "exploded")))
        .on("GET", "/relay/v1/members", |_, _| {
            Reply::ok(MEMBER.replace(r#""corp_id":"dingcorp1""#, r#""corp_id":"not a corp""#))
        })
        .start()
        .await?;
    let gateway = gateway(&stub);
    let results = [
        gateway.send_message(&send_request()?).await.map(|_| ()),
        gateway.message_status(KEY).await.map(|_| ()),
        gateway.recall_message(KEY).await.map(|_| ()),
        gateway.get_member(&corp()?, &MemberKey::UserId(UserId::parse("manager4220")?)).await.map(|_| ()),
    ];
    for result in results {
        match result {
            Err(GatewayError::Unavailable(detail)) => {
                assert!(detail.contains("the cloud answered an unexpected body"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stub.calls("POST", "/relay/v1/messages"), 1);
    assert_eq!(stub.calls("GET", &status_path()), 1);
    Ok(())
}

#[tokio::test]
async fn a_receipt_for_another_key_is_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |_, _| Reply::ok(receipt_json("someone-else", "sent")))
        .start()
        .await?;
    assert!(matches!(
        gateway(&stub).send_message(&send_request()?).await,
        Err(GatewayError::Unavailable(d)) if d.contains("someone-else")
    ));
    Ok(())
}

#[tokio::test]
async fn a_login_result_with_neither_member_nor_failure_is_unavailable() -> TestResult {
    let path = format!("/relay/v1/logins/{}", state().expose());
    let stub = StubBuilder::new()
        .on("GET", &path, |_, _| Reply::ok(r#"{"member":null,"failure":null,"error":null}"#))
        .start()
        .await?;
    assert!(matches!(gateway(&stub).take_login_result(&state()).await, Err(GatewayError::Unavailable(_))));
    Ok(())
}

#[tokio::test]
async fn an_authorize_url_that_is_not_a_url_is_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/logins", |_, _| Reply::status(201, r#"{"authorize_url":"javascript:alert(1)"}"#))
        .start()
        .await?;
    assert!(matches!(
        gateway(&stub)
            .start_login(&crate::outbound::dingtalk::provider_key(), &state(), "https://app.example.com/c")
            .await,
        Err(GatewayError::Unavailable(_))
    ));
    Ok(())
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn send_message_is_retried_after_two_503s_with_the_same_request_id() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |n, _| match n {
            1 | 2 => Reply::error(503, "unavailable", "try again shortly"),
            _ => Reply::ok(receipt_json(KEY, "sent")),
        })
        .start()
        .await?;
    let receipt = gateway(&stub).send_message(&send_request()?).await?;
    assert_eq!(receipt.state, MessageState::Sent);
    let seen = stub.route("POST", "/relay/v1/messages").seen();
    assert_eq!(seen.len(), 3);
    let ids: Vec<String> = seen.iter().map(assert_common_headers).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(seen.iter().all(|s| s.body == seen[0].body && s.body["key"] == KEY));
    Ok(())
}

#[tokio::test]
async fn status_recall_and_member_are_retried_on_transient_failures() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", &status_path(), |n, _| match n {
            1 => Reply::error(502, "bad_gateway", "proxy"),
            _ => Reply::ok(
                json!({"receipt": {"key": KEY, "state": "sent", "task_ids": [], "errors": []},
                       "done": false, "percent": 50, "recipients": [], "invalid_dept_ids": []})
                .to_string(),
            ),
        })
        .on("POST", &recall_path(), |n, _| match n {
            1 => Reply::status(504, ""),
            _ => Reply::ok(receipt_json(KEY, "recalled")),
        })
        .on("GET", "/relay/v1/members", |n, _| match n {
            1 => Reply::error(503, "unavailable", "db"),
            _ => Reply::ok(MEMBER),
        })
        .start()
        .await?;
    let gateway = gateway(&stub);
    assert_eq!(gateway.message_status(KEY).await?.1.percent, 50);
    assert_eq!(gateway.recall_message(KEY).await?.state, MessageState::Recalled);
    gateway.get_member(&corp()?, &MemberKey::UserId(UserId::parse("manager4220")?)).await?;
    assert_eq!(stub.calls("GET", &status_path()), 2);
    assert_eq!(stub.calls("POST", &recall_path()), 2);
    assert_eq!(stub.calls("GET", "/relay/v1/members"), 2);
    Ok(())
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |n, _| match n {
            1 => Reply::error(429, "rate_limited", "slow down").header("retry-after", "1"),
            _ => Reply::ok(receipt_json(KEY, "sent")),
        })
        .start()
        .await?;
    let started = Instant::now();
    gateway(&stub).send_message(&send_request()?).await?;
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(stub.calls("POST", "/relay/v1/messages"), 2);
    Ok(())
}

#[tokio::test]
async fn start_login_is_not_retried_on_503() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/logins", |_, _| Reply::error(503, "unavailable", "busy"))
        .start()
        .await?;
    let got = gateway(&stub)
        .start_login(&crate::outbound::dingtalk::provider_key(), &state(), "https://app.example.com/c")
        .await;
    assert!(matches!(got, Err(GatewayError::Unavailable(_))), "{got:?}");
    assert_eq!(stub.calls("POST", "/relay/v1/logins"), 1);
    Ok(())
}

#[tokio::test]
async fn take_login_result_is_not_retried_on_503() -> TestResult {
    let path = format!("/relay/v1/logins/{}", state().expose());
    let stub = StubBuilder::new().on("GET", &path, |_, _| Reply::error(503, "unavailable", "busy")).start().await?;
    let got = gateway(&stub).take_login_result(&state()).await;
    assert!(matches!(got, Err(GatewayError::Unavailable(_))), "{got:?}");
    assert_eq!(stub.calls("GET", &path), 1);
    Ok(())
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", "/relay/v1/messages", |_, _| Reply::error(503, "unavailable", "down"))
        .start()
        .await?;
    let config = config_for(stub.base());
    assert_eq!(config.max_attempts, 4, "the default");
    let got = gateway_with(config).send_message(&send_request()?).await;
    assert!(matches!(got, Err(GatewayError::Unavailable(_))), "{got:?}");
    assert_eq!(stub.calls("POST", "/relay/v1/messages"), 4);
    let seen = stub.route("POST", "/relay/v1/messages").seen();
    let ids: Vec<String> = seen.iter().map(assert_common_headers).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    Ok(())
}

#[tokio::test]
async fn a_slow_cloud_times_out_as_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", "/relay/v1/members", |_, _| Reply::ok(MEMBER).after(Duration::from_secs(2)))
        .on("POST", "/relay/v1/logins", |_, _| {
            Reply::status(201, r#"{"authorize_url":"https://x.example/"}"#).after(Duration::from_secs(2))
        })
        .start()
        .await?;
    let mut config = config_for(stub.base());
    config.timeout = Duration::from_millis(200);
    config.max_attempts = 2;
    let gateway = gateway_with(config);
    // A deadline, not a measurement: two 200 ms attempts must end well within it.
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        gateway.get_member(&corp()?, &MemberKey::UserId(UserId::parse("manager4220")?)),
    )
    .await
    .expect("the call outlived its timeouts");
    assert!(matches!(&got, Err(GatewayError::Unavailable(d)) if d.contains("in time")), "{got:?}");
    assert_eq!(stub.calls("GET", "/relay/v1/members"), 2, "a timeout is retried for idempotent calls");
    let got =
        gateway.start_login(&crate::outbound::dingtalk::provider_key(), &state(), "https://app.example.com/c").await;
    assert!(matches!(got, Err(GatewayError::Unavailable(_))), "{got:?}");
    assert_eq!(stub.calls("POST", "/relay/v1/logins"), 1, "a timed-out login may have reached the cloud");
    Ok(())
}

#[tokio::test]
async fn connection_refused_is_unavailable_quickly() -> TestResult {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let mut config = config_for(format!("http://{addr}"));
    config.max_attempts = 2;
    let gateway = gateway_with(config);
    let deadline = Duration::from_secs(5);
    let got = tokio::time::timeout(deadline, gateway.send_message(&send_request()?)).await.expect("not quick");
    assert!(matches!(&got, Err(GatewayError::Unavailable(d)) if d.contains("could not be reached")), "{got:?}");
    let got = tokio::time::timeout(
        deadline,
        gateway.start_login(&crate::outbound::dingtalk::provider_key(), &state(), "https://app.example.com/c"),
    )
    .await
    .expect("not quick");
    assert!(matches!(&got, Err(GatewayError::Unavailable(d)) if d.contains("could not be reached")), "{got:?}");
    Ok(())
}

// ---------------------------------------------------------------- the contact-event feed

const FEED_EVENT: &str = r#"{"cursor":12,"corp_id":"dingcorp1","event_id":"ev-1","event_type":"user_leave_org","userids":["manager4220"],"dept_ids":[],"received_at":1750000000000}"#;

#[tokio::test]
async fn contact_events_long_polls_after_the_cursor_and_maps_the_page() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", "/relay/v1/events", |_, _| Reply::ok(format!(r#"{{"events":[{FEED_EVENT}],"next":12}}"#)))
        .start()
        .await?;
    let page = gateway(&stub).contact_events(11, 25).await?;
    assert_eq!(page.next, 12);
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].cursor, 12);
    assert_eq!(page.entries[0].event.change, application::ports::DirectoryChange::MemberLeft);
    assert_eq!(page.entries[0].event.userids, vec![UserId::parse("manager4220")?]);
    let seen = stub.route("GET", "/relay/v1/events").seen();
    assert_eq!(seen.len(), 1);
    assert_common_headers(&seen[0]);
    assert_eq!(seen[0].query.get("after").map(String::as_str), Some("11"));
    assert_eq!(seen[0].query.get("wait").map(String::as_str), Some("25"));
    Ok(())
}

#[tokio::test]
async fn a_long_poll_may_take_its_wait_plus_the_timeout_even_with_a_client_wide_timeout() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", "/relay/v1/events", |_, _| Reply::ok(r#"{"events":[],"next":0}"#).after(Duration::from_millis(700)))
        .start()
        .await?;
    let mut config = config_for(stub.base());
    config.timeout = Duration::from_millis(300);
    config.max_attempts = 1;
    // As bootstrap builds it: the client's own timeout is the configured one.
    let http = reqwest::Client::builder().timeout(config.timeout).build()?;
    let gateway = HttpCloudGateway::new(http, config);
    let page = gateway.contact_events(0, 1).await?;
    assert_eq!((page.entries.len(), page.next), (0, 0));
    let got = gateway.contact_events(0, 0).await;
    assert!(matches!(&got, Err(GatewayError::Unavailable(d)) if d.contains("in time")), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn contact_events_is_retried_and_maps_refusals_and_incoherent_pages() -> TestResult {
    let stub = StubBuilder::new()
        .on("GET", "/relay/v1/events", |n, seen| match (n, seen.query.get("after").map(String::as_str)) {
            (1, _) => Reply::error(503, "unavailable", "db"),
            (_, Some("0")) => Reply::ok(r#"{"events":[],"next":0}"#),
            (_, Some("13")) => Reply::ok(format!(r#"{{"events":[{FEED_EVENT}],"next":12}}"#)),
            _ => Reply::error(422, "validation_failed", "after must be a whole number ≥ 0"),
        })
        .start()
        .await?;
    let gateway = gateway(&stub);
    assert_eq!(gateway.contact_events(0, 0).await?.next, 0);
    assert_eq!(stub.calls("GET", "/relay/v1/events"), 2, "a 503 is retried");
    let got = gateway.contact_events(13, 0).await;
    assert!(matches!(&got, Err(GatewayError::Unavailable(d)) if d.contains("cursor")), "{got:?}");
    let got = gateway.contact_events(-1, 0).await;
    assert!(matches!(&got, Err(GatewayError::Invalid(m)) if m.contains("after")), "{got:?}");
    Ok(())
}

// ---------------------------------------------------------------- configuration

#[test]
fn config_debug_does_not_show_the_secret() {
    let config = RelayConfig::new("https://relay.example.com", CLIENT_ID, SecretString::from(SECRET));
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains(CLIENT_ID));
    let gateway = gateway_with(config);
    let shown = format!("{gateway:?}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[test]
fn config_defaults_and_validation() {
    let valid = RelayConfig::new("https://relay.example.com/prefix/", CLIENT_ID, SecretString::from(SECRET));
    assert_eq!(valid.timeout, Duration::from_secs(10));
    assert_eq!(valid.max_attempts, 4);
    assert_eq!(valid.validate(), Ok(()));
    assert_eq!(RelayConfig::new("http://127.0.0.1:8080", CLIENT_ID, SecretString::from(SECRET)).validate(), Ok(()));

    let field = |config: RelayConfig| config.validate().map_err(|e: RelayConfigError| e.field);
    for bad in [
        "",
        "relay.example.com",
        "ftp://relay.example.com",
        "https://user:pw@relay.example.com",
        "https://relay.example.com/?x=1",
        "https://relay.example.com/#f",
        "mailto:a@b.c",
    ] {
        let config = RelayConfig::new(bad, CLIENT_ID, SecretString::from(SECRET));
        assert_eq!(field(config), Err("base_url"), "{bad:?}");
    }
    let mut config = valid.clone();
    config.client_id = " ".into();
    assert_eq!(field(config), Err("client_id"));
    let mut config = valid.clone();
    config.client_id = "a:b".into();
    assert_eq!(field(config), Err("client_id"));
    let mut config = valid.clone();
    config.client_secret = SecretString::from("");
    assert_eq!(field(config), Err("client_secret"));
    let mut config = valid.clone();
    config.timeout = Duration::ZERO;
    assert_eq!(field(config), Err("timeout"));
    let mut config = valid;
    config.max_attempts = 0;
    assert_eq!(field(config), Err("max_attempts"));
}

#[tokio::test]
async fn an_invalid_base_url_fails_every_call_without_panicking() {
    let gateway = gateway_with(config_for("not a url"));
    assert!(matches!(
        gateway.recall_message(KEY).await,
        Err(GatewayError::Unavailable(d)) if d.contains("base_url")
    ));
}
