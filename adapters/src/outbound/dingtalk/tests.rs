//! Tests of the DingTalk client against the stub server, with the sample
//! bodies of docs/dingtalk-api.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use application::ports::{IdentityError, IdentityProvider, Messenger, MessengerError, UpstreamError, WaitReason};
use domain::{
    AgentId, AuthCode, Batch, CorpId, DeliveryId, DeptId, Forbidden, LoginState, MessageBody, UnionId, UserId,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::stub::{Reply, Seen, Stub, StubBuilder};
use super::wire::path;
use super::{DingTalkApp, DingTalkClient, DingTalkConfig};
use crate::outbound::governor::{Governor, GovernorConfig};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SECRET: &str = "s3cr3t-app-secret-value";

// Sample bodies, verbatim from docs/dingtalk-api.md.
const USER_TOKEN_OK: &str = r#"{"accessToken":"abcd","refreshToken":"abcd","expireIn":7200,"corpId":"corpxxxx"}"#; // §A.3
const USERS_ME_OK: &str = r#"{"nick":"zhangsan","avatarUrl":"https://xxx","mobile":"150xxxx9144","openId":"123","unionId":"z21HjQliSzpw0Yxxxx","email":"zhangsan@alibaba-inc.com","stateCode":"86"}"#; // §A.4
const GET_BY_UNIONID_OK: &str =
    r#"{"errcode":0,"errmsg":"ok","result":{"contact_type":0,"userid":"zhangsan"},"request_id":"zcqi5450rpit"}"#; // §C.1
const NOT_FOUND_60121: &str = r#"{"errcode":60121,"errmsg":"找不到该用户","request_id":"zcqi5450rpit"}"#; // §C.1
const USER_GET_OK: &str = r#"{"errcode":0,"errmsg":"ok","result":{"active":true,"admin":true,"boss":false,"dept_id_list":[1],"dept_order_list":[{"dept_id":1,"order":176220178909140512}],"exclusive_account":false,"hide_mobile":false,"leader_in_dept":[{"dept_id":1,"leader":false}],"mobile":"199...","name":"金华","real_authed":true,"role_list":[{"group_name":"默认","id":3935025514,"name":"主管理员"}],"senior":false,"state_code":"86","unionid":"vQR2X...","userid":"18293148161178525"},"request_id":"16lzmj9nqoklx"}"#; // §C.2
const ASYNC_SEND_OK: &str = r#"{"errcode":0,"task_id":256271667526,"request_id":"4jzllmte0wau"}"#; // §D.1
const PROGRESS_OK: &str =
    r#"{"errcode":0,"errmsg":"ok","progress":{"progress_in_percent":100,"status":2},"request_id":"5y2znla8tw3d"}"#; // §D.3
const RESULT_OK: &str = r#"{"errcode":0,"send_result":{"failed_user_id_list":[],"forbidden_list":[],"invalid_dept_id_list":[],"invalid_user_id_list":[],"read_user_id_list":["manager4220"],"unread_user_id_list":[]},"request_id":"6pcvwp6jcows"}"#; // §D.4
const RECALL_OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#; // §D.5
const TOKEN_88_40014: &str = r#"{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token","errmsg":"ding talk error[subcode=40014,submsg=不合法的access_token]","request_id":"16l4ew3d47pdp"}"#; // §0.3
const V1_INVALID_AUTH: &str = r#"{"code":"InvalidAuthentication","requestid":"30EE8654-1AA2-7D88-8248-9518547248AA","message":"不合法的access_token"}"#; // §0.2
const BAD_CREDENTIALS: &str =
    r#"{"requestid":"x","code":"invalidClientIdOrSecret","message":"无效的clientId或者clientSecret"}"#; // §B.1
const QPS_LIMIT: &str = r#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","requestid":"r","message":"qps"}"#; // §0.2, §G.1

fn corp() -> Result<CorpId, domain::ValidationError> {
    CorpId::parse("dingcorp1")
}

/// The client's settings for the stub. These tests are about the protocol, so the call governor
/// neither paces (10,000 calls/s) nor retries a throttled call; `governed` tests the pacing.
fn config(stub: &Stub) -> Result<DingTalkConfig, domain::ValidationError> {
    let mut config = DingTalkConfig::new("dingappkey", SecretString::from(SECRET));
    config.login_base = stub.base();
    config.api_base = format!("{}/", stub.base());
    config.oapi_base = stub.base();
    config.timeout = Duration::from_secs(5);
    config.governor = governor(10_000.0, 0);
    Ok(config)
}

fn governor(rate_per_second: f64, max_retries: u32) -> Arc<Governor> {
    Arc::new(Governor::new(GovernorConfig {
        rate_per_second,
        max_retries,
        max_wait: Duration::from_secs(5),
        ..GovernorConfig::default()
    }))
}

fn internal() -> DingTalkApp {
    #[allow(clippy::expect_used)]
    DingTalkApp::Internal { agent_id: AgentId::new(300001).expect("agent id"), corp_id: corp().expect("corp id") }
}

fn client_with(config: DingTalkConfig) -> DingTalkClient {
    DingTalkClient::new(reqwest::Client::new(), config, internal())
}

fn client(stub: &Stub) -> Result<DingTalkClient, domain::ValidationError> {
    Ok(client_with(config(stub)?))
}

fn union() -> Result<UnionId, domain::ValidationError> {
    UnionId::parse("z21HjQliSzpw0Yxxxx")
}

/// Answers `ok` when the call carries `access_token=tok-2` or later, `refused` for `tok-1`.
fn refuse_first_token(ok: &'static str, refused: Reply) -> impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static {
    let refused = std::sync::Mutex::new(Some(refused));
    move |_, seen| {
        if seen.query.get("access_token").map(String::as_str) == Some("tok-1") {
            if let Ok(mut slot) = refused.lock()
                && let Some(reply) = slot.take()
            {
                return reply;
            }
            return Reply::ok(TOKEN_88_40014);
        }
        Reply::ok(ok)
    }
}

fn upstream(result: Result<UserId, IdentityError>) -> Option<UpstreamError> {
    match result {
        Err(IdentityError::Upstream(e)) => Some(e),
        _ => None,
    }
}

// ---------------------------------------------------------------- §A login

#[tokio::test]
async fn authorize_url_is_encoded() -> TestResult {
    let stub = StubBuilder::new().start().await?;
    let mut config = config(&stub)?;
    config.login_base = format!("{}/", stub.base());
    config.scope = "openid corpid".to_owned();
    let client = client_with(config);
    let state = LoginState::from_random_bytes(&[7u8; 32]);
    let redirect = "https://bridge.example/auth/dingtalk/callback?x=1&y=a b";
    let url = client.authorize_url(&state, redirect, "challenge");

    assert!(
        url.starts_with(&format!("{}/oauth2/auth?redirect_uri=https%3A%2F%2Fbridge.example%2F", stub.base())),
        "{url}"
    );
    assert!(!url.contains("x=1&y"), "the redirect_uri must be encoded: {url}");
    let parsed = reqwest::Url::parse(&url)?;
    let pairs: Vec<(String, String)> = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let expected: Vec<(String, String)> = [
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("client_id", "dingappkey"),
        ("scope", "openid corpid"),
        ("state", state.expose()),
        ("prompt", "consent"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(pairs, expected);
    assert_eq!(parsed.path(), "/oauth2/auth");
    Ok(())
}

#[tokio::test]
async fn exchange_code_maps_users_me() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::USER_TOKEN, |_, _| Reply::ok(USER_TOKEN_OK))
        .on(path::USERS_ME, |_, _| Reply::ok(USERS_ME_OK))
        .start()
        .await?;
    let identity = client(&stub)?.exchange_code(&AuthCode::parse("f85c6code")?, None).await?;

    assert_eq!(identity.union_id.as_str(), "z21HjQliSzpw0Yxxxx");
    assert_eq!(identity.open_id.as_ref().map(|o| o.as_str()), Some("123"));
    assert_eq!(identity.corp_id.as_ref().map(CorpId::as_str), Some("corpxxxx"));
    assert_eq!(identity.nick, "zhangsan");
    assert_eq!(identity.avatar_url.as_deref(), Some("https://xxx"));
    assert_eq!(identity.email.as_deref(), Some("zhangsan@alibaba-inc.com"));
    assert_eq!(identity.mobile.as_deref(), Some("150xxxx9144"));

    let token_call = stub.route(path::USER_TOKEN).seen();
    assert_eq!(token_call.len(), 1);
    assert_eq!(token_call[0].method, "POST");
    assert_eq!(
        token_call[0].body,
        json!({"clientId": "dingappkey", "clientSecret": SECRET, "code": "f85c6code", "grantType": "authorization_code"})
    );
    let me_call = stub.route(path::USERS_ME).seen();
    assert_eq!(me_call.len(), 1);
    assert_eq!(me_call[0].method, "GET");
    assert_eq!(me_call[0].headers.get("x-acs-dingtalk-access-token").map(String::as_str), Some("abcd"));
    assert_eq!(stub.calls(path::APP_TOKEN), 0, "login needs no app token");
    Ok(())
}

#[tokio::test]
async fn exchange_code_absent_or_empty_fields_are_none() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::USER_TOKEN, |_, _| Reply::ok(r#"{"accessToken":"u","refreshToken":"r","expireIn":7200}"#))
        .on(path::USERS_ME, |_, _| Reply::ok(r#"{"unionId":"u-1","nick":"zs","email":"","mobile":"","visitor":false}"#))
        .start()
        .await?;
    let identity = client(&stub)?.exchange_code(&AuthCode::parse("c")?, None).await?;
    assert_eq!(identity.union_id.as_str(), "u-1");
    assert_eq!((identity.open_id, identity.corp_id), (None, None));
    assert_eq!((identity.avatar_url, identity.email, identity.mobile), (None, None, None));
    Ok(())
}

#[tokio::test]
async fn exchange_code_without_union_id_is_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::USER_TOKEN, |_, _| Reply::ok(USER_TOKEN_OK))
        .on(path::USERS_ME, |_, _| Reply::ok(r#"{"nick":"zs","unionId":""}"#))
        .start()
        .await?;
    let result = client(&stub)?.exchange_code(&AuthCode::parse("c")?, None).await;
    assert!(matches!(result, Err(IdentityError::Upstream(UpstreamError::Unavailable(_)))), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn refused_code_is_invalid_code_and_bad_credentials_are_rejected() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::USER_TOKEN, |n, _| match n {
            1 => Reply::status(400, r#"{"code":"invalidCode","requestid":"r","message":"无效的授权码"}"#),
            2 => Reply::status(409, r#"{"code":"invalidCode","requestid":"r","message":"无效的授权码"}"#),
            3 => Reply::status(400, BAD_CREDENTIALS),
            4 => Reply::status(403, QPS_LIMIT),
            _ => Reply::status(503, "Service Unavailable"),
        })
        .on(path::USERS_ME, |_, _| Reply::ok(USERS_ME_OK))
        .start()
        .await?;
    let client = client(&stub)?;
    let code = AuthCode::parse("used-code")?;
    assert_eq!(client.exchange_code(&code, None).await, Err(IdentityError::InvalidCode));
    assert_eq!(client.exchange_code(&code, None).await, Err(IdentityError::InvalidCode));
    assert_eq!(
        client.exchange_code(&code, None).await,
        Err(IdentityError::Upstream(UpstreamError::Rejected {
            code: "invalidClientIdOrSecret".into(),
            message: "无效的clientId或者clientSecret".into()
        }))
    );
    assert!(matches!(
        client.exchange_code(&code, None).await,
        Err(IdentityError::Upstream(UpstreamError::Throttled(_)))
    ));
    assert!(matches!(
        client.exchange_code(&code, None).await,
        Err(IdentityError::Upstream(UpstreamError::Unavailable(_)))
    ));
    assert_eq!(stub.calls(path::USERS_ME), 0);
    Ok(())
}

// ---------------------------------------------------------------- §C members

#[tokio::test]
async fn find_userid_success() -> TestResult {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK)).start().await?;
    let userid = client(&stub)?.find_userid(&corp()?, &union()?).await?;
    assert_eq!(userid.as_str(), "zhangsan");
    let seen = stub.route(path::GET_BY_UNIONID).seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].query.get("access_token").map(String::as_str), Some("tok-1"));
    assert_eq!(seen[0].body, json!({"unionid": "z21HjQliSzpw0Yxxxx"}));
    let token = stub.route(path::APP_TOKEN).seen();
    assert_eq!(token[0].body, json!({"appKey": "dingappkey", "appSecret": SECRET}));
    Ok(())
}

#[tokio::test]
async fn find_userid_60121_is_not_member_and_other_corps_are_not_served() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(NOT_FOUND_60121))
        .on(path::USER_GET, |_, _| Reply::ok(NOT_FOUND_60121))
        .start()
        .await?;
    let client = client(&stub)?;
    assert_eq!(client.find_userid(&corp()?, &union()?).await, Err(IdentityError::NotMember));
    assert_eq!(client.get_member(&corp()?, &UserId::parse("zhangsan")?).await, Err(IdentityError::NotMember));
    let other = CorpId::parse("dingother")?;
    assert_eq!(client.find_userid(&other, &union()?).await, Err(IdentityError::CorpNotServed(other.clone())));
    assert_eq!(client.get_member(&other, &UserId::parse("x")?).await, Err(IdentityError::CorpNotServed(other)));
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 1);
    assert_eq!(stub.calls(path::USER_GET), 1);
    Ok(())
}

#[tokio::test]
async fn get_member_maps_the_real_sample() -> TestResult {
    let stub = StubBuilder::new().on(path::USER_GET, |_, _| Reply::ok(USER_GET_OK)).start().await?;
    let member = client(&stub)?.get_member(&corp()?, &UserId::parse("18293148161178525")?).await?;
    assert_eq!(member.userid.as_str(), "18293148161178525");
    assert_eq!(member.union_id.as_str(), "vQR2X...");
    assert_eq!(member.name, "金华");
    assert_eq!(member.mobile.as_deref(), Some("199..."));
    assert_eq!(member.dept_ids, vec![DeptId::new(1)?]);
    assert!(member.active);
    assert_eq!((member.avatar_url, member.title, member.org_email, member.email), (None, None, None, None));
    let seen = stub.route(path::USER_GET).seen();
    assert_eq!(seen[0].body, json!({"userid": "18293148161178525", "language": "zh_CN"}));
    Ok(())
}

#[tokio::test]
async fn get_member_maps_optional_fields() -> TestResult {
    let body = r#"{"errcode":0,"errmsg":"ok","result":{"userid":"zhangsan","unionid":"u1","name":"张三","avatar":"https://a/x.png","title":"","org_email":"zs@corp.example","email":"zs@example.com","mobile":"150","dept_id_list":[1,919684607],"active":false,"create_time":"2024-07-15T07:05:43.000Z"}}"#;
    let stub = StubBuilder::new().on(path::USER_GET, move |_, _| Reply::ok(body)).start().await?;
    let member = client(&stub)?.get_member(&corp()?, &UserId::parse("zhangsan")?).await?;
    assert_eq!(member.avatar_url.as_deref(), Some("https://a/x.png"));
    assert_eq!(member.title, None);
    assert_eq!(member.org_email.as_deref(), Some("zs@corp.example"));
    assert_eq!(member.email.as_deref(), Some("zs@example.com"));
    assert_eq!(member.dept_ids, vec![DeptId::new(1)?, DeptId::new(919684607)?]);
    assert!(!member.active);
    Ok(())
}

// ---------------------------------------------------------------- §D messaging

#[tokio::test]
async fn send_posts_the_documented_body_and_returns_task_id() -> TestResult {
    let stub = StubBuilder::new().on(path::ASYNC_SEND, |_, _| Reply::ok(ASYNC_SEND_OK)).start().await?;
    let client = client(&stub)?;
    let users = vec![UserId::parse("a")?, UserId::parse("b")?, UserId::parse("c")?];
    let batch = Batch::new(users, vec![DeptId::new(1)?, DeptId::new(2)?], false)?;
    let body = MessageBody::text("hello")?;
    let task = client.send(&corp()?, &batch, &body, "k").await?;
    assert_eq!(task, DeliveryId::parse("256271667526")?);

    let everyone = Batch::new(vec![], vec![], true)?;
    client.send(&corp()?, &everyone, &body, "k").await?;

    let seen = stub.route(path::ASYNC_SEND).seen();
    assert_eq!(seen[0].query.get("access_token").map(String::as_str), Some("tok-1"));
    assert_eq!(
        seen[0].body,
        json!({"agent_id": 300001, "userid_list": "a,b,c", "dept_id_list": "1,2", "msg": {"msgtype": "text", "text": {"content": "hello"}}})
    );
    assert!(seen[0].body["agent_id"].is_u64());
    assert!(seen[0].body["msg"].is_object());
    assert_eq!(seen[1].body, json!({"agent_id": 300001, "to_all_user": true, "msg": body.as_json()}));
    Ok(())
}

#[tokio::test]
async fn messenger_refuses_other_corps() -> TestResult {
    let stub = StubBuilder::new().start().await?;
    let client = client(&stub)?;
    let other = CorpId::parse("dingother")?;
    let batch = Batch::new(vec![UserId::parse("a")?], vec![], false)?;
    let result = client.send(&other, &batch, &MessageBody::text("x")?, "k").await;
    assert_eq!(result, Err(MessengerError::CorpNotServed(other.clone())));
    assert_eq!(client.recall(&other, &DeliveryId::parse("1")?).await, Err(MessengerError::CorpNotServed(other)));
    assert_eq!(stub.calls(path::APP_TOKEN), 0);
    Ok(())
}

#[tokio::test]
async fn progress_result_and_recall() -> TestResult {
    let result_body = r#"{"errcode":0,"send_result":{"failed_user_id_list":["f1"],"forbidden_list":[{"code":"143106","count":1,"userid":"u1"},{"code":143105,"count":2,"userid":"u2"}],"forbidden_user_id_list":["u1","u3"],"invalid_dept_id_list":[5],"invalid_user_id_list":["bad1"],"read_user_id_list":["manager4220"],"unread_user_id_list":["r1","r2"]},"request_id":"6pcvwp6jcows"}"#;
    let stub = StubBuilder::new()
        .on(path::SEND_PROGRESS, |_, _| Reply::ok(PROGRESS_OK))
        .on(path::SEND_RESULT, move |n, _| Reply::ok(if n == 1 { RESULT_OK } else { result_body }))
        .on(path::RECALL, |_, _| Reply::ok(RECALL_OK))
        .start()
        .await?;
    let client = client(&stub)?;
    let task = DeliveryId::parse("456")?;

    let progress = client.progress(&corp()?, &task).await?;
    assert_eq!((progress.percent, progress.done), (100, true));

    let sample = client.result(&corp()?, &task).await?;
    assert_eq!(sample.read, vec![UserId::parse("manager4220")?]);
    assert!(sample.unread.is_empty() && sample.failed.is_empty() && sample.forbidden.is_empty());

    let full = client.result(&corp()?, &task).await?;
    assert_eq!(full.failed, vec![UserId::parse("f1")?]);
    assert_eq!(full.unread, vec![UserId::parse("r1")?, UserId::parse("r2")?]);
    assert_eq!(full.invalid_users, vec![UserId::parse("bad1")?]);
    assert_eq!(full.invalid_depts, vec![DeptId::new(5)?]);
    assert_eq!(
        full.forbidden,
        vec![
            Forbidden { userid: UserId::parse("u1")?, code: "143106".into() },
            Forbidden { userid: UserId::parse("u2")?, code: "143105".into() },
            Forbidden { userid: UserId::parse("u3")?, code: String::new() },
        ]
    );

    client.recall(&corp()?, &task).await?;

    let agent_task = json!({"agent_id": 300001, "task_id": 456});
    assert_eq!(stub.route(path::SEND_PROGRESS).seen()[0].body, agent_task);
    assert_eq!(stub.route(path::SEND_RESULT).seen()[0].body, agent_task);
    assert_eq!(stub.route(path::RECALL).seen()[0].body, json!({"agent_id": 300001, "msg_task_id": 456}));
    assert_eq!(stub.calls(path::APP_TOKEN), 1);
    Ok(())
}

#[tokio::test]
async fn progress_not_done() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::SEND_PROGRESS, |_, _| {
            Reply::ok(r#"{"errcode":0,"errmsg":"ok","progress":{"progress_in_percent":40,"status":1}}"#)
        })
        .start()
        .await?;
    let progress = client(&stub)?.progress(&corp()?, &DeliveryId::parse("1")?).await?;
    assert_eq!((progress.percent, progress.done), (40, false));
    Ok(())
}

// ---------------------------------------------------------------- §B app token

#[tokio::test]
async fn app_token_is_cached_across_calls() -> TestResult {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK)).start().await?;
    let client = client(&stub)?;
    let clone = client.clone();
    for _ in 0..5 {
        client.find_userid(&corp()?, &union()?).await?;
        clone.find_userid(&corp()?, &union()?).await?;
    }
    assert_eq!(stub.calls(path::APP_TOKEN), 1);
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 10);
    assert!(
        stub.route(path::GET_BY_UNIONID)
            .seen()
            .iter()
            .all(|s| s.query.get("access_token").map(String::as_str) == Some("tok-1"))
    );
    Ok(())
}

#[tokio::test]
async fn app_token_within_the_margin_is_refreshed() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |n, _| Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":200}}"#)))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let client = client(&stub)?; // margin 300 s > lifetime 200 s: stale at once
    for _ in 0..3 {
        client.find_userid(&corp()?, &union()?).await?;
    }
    assert_eq!(stub.calls(path::APP_TOKEN), 3);
    let tokens: Vec<String> =
        stub.route(path::GET_BY_UNIONID).seen().iter().filter_map(|s| s.query.get("access_token").cloned()).collect();
    assert_eq!(tokens, vec!["tok-1", "tok-2", "tok-3"]);

    // With a margin below the lifetime the same token is reused.
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |n, _| Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":200}}"#)))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let mut config = config(&stub)?;
    config.token_refresh_margin_secs = 60;
    let client = client_with(config);
    for _ in 0..3 {
        client.find_userid(&corp()?, &union()?).await?;
    }
    assert_eq!(stub.calls(path::APP_TOKEN), 1);
    Ok(())
}

#[tokio::test]
async fn expire_in_zero_counts_as_7200() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |n, _| Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":0}}"#)))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let client = client(&stub)?;
    for _ in 0..3 {
        client.find_userid(&corp()?, &union()?).await?;
    }
    assert_eq!(stub.calls(path::APP_TOKEN), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_calls_fetch_one_token() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |n, _| {
            Reply::ok(format!(r#"{{"accessToken":"tok-{n}","expireIn":7200}}"#)).after(Duration::from_millis(100))
        })
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let client = client(&stub)?;
    let corp = corp()?;
    let union = union()?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let (client, corp, union) = (client.clone(), corp.clone(), union.clone());
        tasks.spawn(async move { client.find_userid(&corp, &union).await });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        joined??;
        ok += 1;
    }
    assert_eq!(ok, 500);
    assert_eq!(stub.calls(path::APP_TOKEN), 1);
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 500);
    Ok(())
}

#[tokio::test]
async fn token_error_88_40014_refetches_once_and_retries() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::GET_BY_UNIONID, refuse_first_token(GET_BY_UNIONID_OK, Reply::ok(TOKEN_88_40014)))
        .start()
        .await?;
    let client = client(&stub)?;
    assert_eq!(client.find_userid(&corp()?, &union()?).await?.as_str(), "zhangsan");
    assert_eq!(stub.calls(path::APP_TOKEN), 2);
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 2);
    let tokens: Vec<String> =
        stub.route(path::GET_BY_UNIONID).seen().iter().filter_map(|s| s.query.get("access_token").cloned()).collect();
    assert_eq!(tokens, vec!["tok-1", "tok-2"]);
    // The new token is cached.
    client.find_userid(&corp()?, &union()?).await?;
    assert_eq!(stub.calls(path::APP_TOKEN), 2);
    Ok(())
}

#[tokio::test]
async fn token_error_v1_invalid_authentication_refetches_once_and_retries() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::ASYNC_SEND, refuse_first_token(ASYNC_SEND_OK, Reply::status(400, V1_INVALID_AUTH)))
        .start()
        .await?;
    let batch = Batch::new(vec![UserId::parse("a")?], vec![], false)?;
    let task = client(&stub)?.send(&corp()?, &batch, &MessageBody::text("x")?, "k").await?;
    assert_eq!(task.as_str(), "256271667526");
    assert_eq!(stub.calls(path::APP_TOKEN), 2);
    assert_eq!(stub.calls(path::ASYNC_SEND), 2);
    Ok(())
}

#[tokio::test]
async fn persistent_token_error_is_token_rejected() -> TestResult {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, |_, _| Reply::ok(TOKEN_88_40014)).start().await?;
    let client = client(&stub)?;
    let result = client.find_userid(&corp()?, &union()?).await;
    assert!(matches!(upstream(result), Some(UpstreamError::TokenRejected(_))));
    assert_eq!(stub.calls(path::APP_TOKEN), 2);
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 2);
    // The refused token was dropped: the next call fetches again.
    let _ = client.find_userid(&corp()?, &union()?).await;
    assert_eq!(stub.calls(path::APP_TOKEN), 4);
    Ok(())
}

#[tokio::test]
async fn bad_app_credentials_are_rejected() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |_, _| Reply::status(400, BAD_CREDENTIALS))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let result = client(&stub)?.find_userid(&corp()?, &union()?).await;
    assert_eq!(
        upstream(result),
        Some(UpstreamError::Rejected {
            code: "invalidClientIdOrSecret".into(),
            message: "无效的clientId或者clientSecret".into()
        })
    );
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 0);
    Ok(())
}

// ---------------------------------------------------------------- §G classification

async fn find_with(
    reply: fn(usize, &Seen) -> Reply,
) -> Result<(Option<UpstreamError>, Stub), Box<dyn std::error::Error + Send + Sync>> {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, reply).start().await?;
    let result = client(&stub)?.find_userid(&corp()?, &union()?).await;
    Ok((upstream(result), stub))
}

#[tokio::test]
async fn errcode_minus_1_is_unavailable_without_retry() -> TestResult {
    let (error, stub) = find_with(|_, _| Reply::ok(r#"{"errcode":-1,"errmsg":"系统繁忙","request_id":"x"}"#)).await?;
    assert!(matches!(error, Some(UpstreamError::Unavailable(_))), "{error:?}");
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 1);
    Ok(())
}

#[tokio::test]
async fn errcode_90018_is_throttled() -> TestResult {
    let (error, _) = find_with(|_, _| Reply::ok(r#"{"errcode":90018,"errmsg":"当前请求过多"}"#)).await?;
    assert!(matches!(error, Some(UpstreamError::Throttled(_))), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn other_errcodes_are_rejected_with_code_and_message() -> TestResult {
    let (error, _) = find_with(|_, _| Reply::ok(r#"{"errcode":400002,"errmsg":"无效的参数"}"#)).await?;
    assert_eq!(error, Some(UpstreamError::Rejected { code: "400002".into(), message: "无效的参数".into() }));
    Ok(())
}

#[tokio::test]
async fn http_403_qps_limit_is_throttled() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |_, _| Reply::status(403, QPS_LIMIT))
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK))
        .start()
        .await?;
    let result = client(&stub)?.find_userid(&corp()?, &union()?).await;
    assert!(matches!(upstream(result), Some(UpstreamError::Throttled(_))));
    let (error, _) = find_with(|_, _| Reply::status(403, QPS_LIMIT)).await?;
    assert!(matches!(error, Some(UpstreamError::Throttled(_))), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn http_503_is_unavailable() -> TestResult {
    let (error, _) = find_with(|_, _| Reply::status(503, "Service Unavailable")).await?;
    assert!(matches!(error, Some(UpstreamError::Unavailable(_))), "{error:?}");
    let stub = StubBuilder::new()
        .on(path::APP_TOKEN, |_, _| Reply::status(503, r#"{"code":"serviceBusy","message":"busy","requestid":"r"}"#))
        .start()
        .await?;
    let result = client(&stub)?.find_userid(&corp()?, &union()?).await;
    assert!(matches!(upstream(result), Some(UpstreamError::Unavailable(_))));
    Ok(())
}

#[tokio::test]
async fn garbage_bodies_are_unavailable() -> TestResult {
    for reply in [
        (|_, _| Reply::ok("")) as fn(usize, &Seen) -> Reply,
        |_, _| Reply::status(502, "<html><body>Bad Gateway</body></html>"),
        |_, _| Reply::ok(r#"{"errcode":0,"errmsg":"ok","result":{"userid":12}}"#),
        |_, _| Reply::ok(r#"{"errcode":0,"errmsg":"ok"}"#),
    ] {
        let (error, _) = find_with(reply).await?;
        assert!(matches!(error, Some(UpstreamError::Unavailable(_))), "{error:?}");
    }
    let stub = StubBuilder::new().on(path::APP_TOKEN, |_, _| Reply::ok("not json at all")).start().await?;
    let result = client(&stub)?.find_userid(&corp()?, &union()?).await;
    assert!(matches!(upstream(result), Some(UpstreamError::Unavailable(_))));
    Ok(())
}

#[tokio::test]
async fn slow_answers_time_out_as_unavailable() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK).after(Duration::from_secs(2)))
        .start()
        .await?;
    let mut config = config(&stub)?;
    config.timeout = Duration::from_millis(200);
    // A deadline, not a measurement: the 200 ms timeout must end the call well within it.
    let result = tokio::time::timeout(Duration::from_secs(5), client_with(config).find_userid(&corp()?, &union()?))
        .await
        .expect("the call outlived its timeout");
    let error = upstream(result);
    assert!(matches!(&error, Some(UpstreamError::Unavailable(m)) if m.contains("timed out")), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn connection_errors_are_unavailable_and_do_not_leak_the_token() -> TestResult {
    let stub = StubBuilder::new().start().await?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let closed_addr = closed.local_addr()?;
    drop(closed);
    let mut config = config(&stub)?;
    config.oapi_base = format!("http://{closed_addr}");
    let result = client_with(config).find_userid(&corp()?, &union()?).await;
    let error = upstream(result);
    let Some(UpstreamError::Unavailable(message)) = &error else {
        return Err(format!("expected Unavailable, got {error:?}").into());
    };
    assert!(!message.contains("access_token") && !message.contains("tok-1"), "{message}");
    Ok(())
}

// ---------------------------------------------------------------- hygiene

#[tokio::test]
async fn debug_output_hides_the_secret() -> TestResult {
    let stub = StubBuilder::new().start().await?;
    let config = config(&stub)?;
    let text = format!("{config:?} {:?}", client_with(config.clone()));
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("dingappkey"));
    Ok(())
}

#[test]
fn config_validation_names_the_field() -> TestResult {
    let mut config = DingTalkConfig::new("k", SecretString::from("s"));
    assert_eq!(config.validate(), Ok(()));
    config.api_base = "api.dingtalk.com".into();
    assert_eq!(config.validate().map_err(|e| e.field), Err("api_base"));
    config.api_base = super::DEFAULT_API_BASE.into();
    config.client_secret = SecretString::from(" ");
    assert_eq!(config.validate().map_err(|e| e.field), Err("client_secret"));
    config.client_secret = SecretString::from("s");
    config.timeout = Duration::ZERO;
    assert_eq!(config.validate().map_err(|e| e.to_string()), Err("timeout must be greater than zero".into()));
    Ok(())
}

#[test]
fn sample_value_is_json() {
    // Guard: every sample constant above is valid JSON (a typo would make tests pass for the wrong reason).
    for sample in [
        USER_TOKEN_OK,
        USERS_ME_OK,
        GET_BY_UNIONID_OK,
        NOT_FOUND_60121,
        USER_GET_OK,
        ASYNC_SEND_OK,
        PROGRESS_OK,
        RESULT_OK,
        RECALL_OK,
        TOKEN_88_40014,
        V1_INVALID_AUTH,
        BAD_CREDENTIALS,
        QPS_LIMIT,
    ] {
        assert!(serde_json::from_str::<Value>(sample).is_ok(), "{sample}");
    }
}

// --- the call governor (docs/dingtalk-api.md §G.1) ---------------------------------------------

#[tokio::test]
async fn a_throttled_call_is_retried_after_the_lanes_one_second_pause() -> TestResult {
    let stub = StubBuilder::new()
        .on(path::GET_BY_UNIONID, |n, _| match n {
            1 => Reply::ok(r#"{"errcode":90018,"errmsg":"当前请求过多"}"#),
            _ => Reply::ok(GET_BY_UNIONID_OK),
        })
        .start()
        .await?;
    let mut config = config(&stub)?;
    config.governor = governor(18.0, 3);
    let client = client_with(config);
    let started = Instant::now();
    let userid = client.find_userid(&corp()?, &union()?).await?;
    assert_eq!(userid.as_str(), "zhangsan");
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 2, "the throttled call was made again");
    assert!(started.elapsed() >= Duration::from_secs(1), "the retry waited for the pause: {:?}", started.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_call_throttled_past_its_retries_is_throttled() -> TestResult {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, |_, _| Reply::status(403, QPS_LIMIT)).start().await?;
    let mut config = config(&stub)?;
    config.governor = governor(10_000.0, 1);
    let result = client_with(config).find_userid(&corp()?, &union()?).await;
    assert!(matches!(upstream(result), Some(UpstreamError::Throttled(_))));
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 2, "one try and one retry");
    Ok(())
}

#[tokio::test]
async fn calls_of_one_api_are_paced_to_the_configured_rate() -> TestResult {
    let stub = StubBuilder::new().on(path::GET_BY_UNIONID, |_, _| Reply::ok(GET_BY_UNIONID_OK)).start().await?;
    let mut config = config(&stub)?;
    config.governor = governor(20.0, 0);
    let client = client_with(config);
    let (corp, union) = (corp()?, union()?);
    client.find_userid(&corp, &union).await?; // the token, and the lane's first slot
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, corp, union) = (client.clone(), corp.clone(), union.clone());
        tasks.spawn(async move { client.find_userid(&corp, &union).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    // Ten more calls at 20/s need at least 10 × 50 ms after the first slot.
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    assert_eq!(stub.calls(path::GET_BY_UNIONID), 11);
    Ok(())
}

#[tokio::test]
async fn an_ip_ban_is_throttled_and_stops_every_call_of_the_process() -> TestResult {
    for ban in
        [r#"{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"xxx"}"#, "<html><body>blocked</body></html>"]
    {
        let stub = StubBuilder::new()
            .on(path::GET_BY_UNIONID, move |_, _| Reply::ok(ban))
            .on(path::USER_GET, |_, _| Reply::ok(r#"{"errcode":0}"#))
            .start()
            .await?;
        let mut config = config(&stub)?;
        config.governor = governor(18.0, 3);
        let client = client_with(config);
        let result = client.find_userid(&corp()?, &union()?).await;
        // Held with its reason and the ban's length (§G.1: 5 minutes), so a message waits that long.
        assert!(matches!(
            upstream(result),
            Some(UpstreamError::Held { reason: WaitReason::IpBanned, retry_after_ms: 300_000, ref detail }) if detail.contains("banned")
        ));
        assert_eq!(stub.calls(path::GET_BY_UNIONID), 1, "a ban is not retried");
        let other = client.get_member(&corp()?, &UserId::parse("manager4220")?).await;
        assert!(matches!(
            other,
            Err(IdentityError::Upstream(UpstreamError::Held { reason: WaitReason::IpBanned, ref detail, .. })) if detail.contains("banned")
        ));
        assert_eq!(stub.calls(path::USER_GET), 0, "nothing reaches DingTalk during the ban");
    }
    Ok(())
}
