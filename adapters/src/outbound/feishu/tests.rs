//! Unit tests of the Feishu client against a stub server answering canned Feishu bodies
//! (docs/feishu-api.md §A.3, §A.5, §B.1, §C.1, §0.3).

use application::ports::{IdentityError, IdentityProvider, UpstreamError};
use domain::{AuthCode, CorpId, LoginState, PkceVerifier, UnionId, UserId};
use secrecy::SecretString;

use super::{FeishuClient, FeishuConfig};
use crate::outbound::test_stub::{Reply, Stub, StubBuilder};

const TENANT: &str = "736588c9260f175d";
const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";
const USER_TOKEN_PATH: &str = "/open-apis/authen/v2/oauth/token";
const USER_INFO_PATH: &str = "/open-apis/authen/v1/user_info";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tenant() -> CorpId {
    CorpId::parse(TENANT).unwrap_or_else(|e| panic!("{e}"))
}

fn client(stub: &Stub) -> FeishuClient {
    let mut config = FeishuConfig::new("cli_test", SecretString::from("secret"), vec![tenant()]);
    config.open_base = stub.base();
    config.accounts_base = stub.base();
    FeishuClient::new(reqwest::Client::new(), config)
}

fn tenant_token() -> Reply {
    Reply::ok(r#"{"code":0,"msg":"ok","tenant_access_token":"t-abc","expire":7200}"#)
}

fn contact_user(user_id: &str, activated: bool) -> String {
    format!(
        r#"{{"code":0,"msg":"success","data":{{"user":{{"union_id":"on_1","user_id":"{user_id}","open_id":"ou_1","name":"李雷",
        "job_title":"工程师","enterprise_email":"lilei@corp.example","email":"","avatar":{{"avatar_240":"https://a/240"}},
        "department_ids":["od-1"],"status":{{"is_frozen":false,"is_resigned":false,"is_activated":{activated},"is_exited":false,"is_unjoin":false}}}}}}}}"#
    )
}

#[test]
fn the_authorize_url_carries_the_app_state_redirect_and_an_s256_challenge() {
    let mut config = FeishuConfig::new("cli_a5d611352af9d00b", SecretString::from("s"), vec![tenant()]);
    config.scope = "contact:user.employee_id:readonly".into();
    let client = FeishuClient::new(reqwest::Client::new(), config);
    let state = LoginState::from_random_bytes(&[1; 32]);
    let url = client.authorize_url(&state, "https://sso.example/auth/feishu/callback", "E9Mel");
    let parsed = url::Url::parse(&url).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.origin().ascii_serialization(), "https://accounts.feishu.cn");
    assert_eq!(parsed.path(), "/open-apis/authen/v1/authorize");
    let query: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "cli_a5d611352af9d00b");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["redirect_uri"], "https://sso.example/auth/feishu/callback");
    assert_eq!(query["state"], state.expose());
    assert_eq!(query["code_challenge"], "E9Mel");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "contact:user.employee_id:readonly");
}

#[tokio::test]
async fn a_code_becomes_an_identity_keyed_by_tenant_and_union_id() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", USER_TOKEN_PATH, |_, _| {
            Reply::ok(r#"{"code":0,"access_token":"eyJuser","expires_in":7200,"token_type":"Bearer","scope":""}"#)
        })
        .on("GET", USER_INFO_PATH, |_, _| {
            Reply::ok(
                r#"{"code":0,"msg":"success","data":{"name":"李雷","avatar_url":"https://a/x","open_id":"ou_1","union_id":"on_1",
                "tenant_key":"736588c9260f175d","email":"claimed@example.com","mobile":"+8613800000001"}}"#,
            )
        })
        .start()
        .await?;
    let verifier = PkceVerifier::from_random_bytes(&[2; 32]);
    let identity = client(&stub).exchange_code(&AuthCode::parse("code-1")?, Some(verifier.clone())).await?;
    assert_eq!(identity.union_id.as_str(), "on_1");
    assert_eq!(identity.corp_id, Some(tenant()));
    assert_eq!(identity.open_id.as_ref().map(|o| o.as_str()), Some("ou_1"));
    assert_eq!(identity.email.as_deref(), Some("claimed@example.com"));
    let sent = stub.route("POST", USER_TOKEN_PATH).seen();
    assert_eq!(sent[0].body["grant_type"], "authorization_code");
    assert_eq!(sent[0].body["client_id"], "cli_test");
    assert_eq!(sent[0].body["code"], "code-1");
    assert_eq!(sent[0].body["code_verifier"], verifier.expose());
    let info = stub.route("GET", USER_INFO_PATH).seen();
    assert_eq!(info[0].header("authorization"), "Bearer eyJuser");
    Ok(())
}

#[tokio::test]
async fn token_endpoint_refusals_map_to_invalid_code_not_member_or_upstream() -> TestResult {
    // docs/feishu-api.md §A.3: errors are {code, error, error_description} with HTTP 400/500/503.
    let cases: [(u16, &str, IdentityError); 4] = [
        (400, r#"{"code":20003,"error":"invalid_grant","error_description":"not found"}"#, IdentityError::InvalidCode),
        (400, r#"{"code":20049,"error":"invalid_grant","error_description":"pkce"}"#, IdentityError::InvalidCode),
        (
            400,
            r#"{"code":20010,"error":"invalid_grant","error_description":"no permission"}"#,
            IdentityError::NotMember,
        ),
        (
            500,
            r#"{"code":20050,"error":"server_error","error_description":"retry"}"#,
            IdentityError::Upstream(UpstreamError::Unavailable("Feishu 20050: server_error: retry".into())),
        ),
    ];
    for (status, body, expected) in cases {
        let body = body.to_owned();
        let stub = StubBuilder::new()
            .on("POST", USER_TOKEN_PATH, move |_, _| Reply::status(status, body.clone()))
            .start()
            .await?;
        let got = client(&stub).exchange_code(&AuthCode::parse("c")?, None).await;
        assert_eq!(got.err(), Some(expected));
    }
    Ok(())
}

#[tokio::test]
async fn a_resigned_person_at_user_info_is_not_a_member() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", USER_TOKEN_PATH, |_, _| Reply::ok(r#"{"code":0,"access_token":"eyJ","expires_in":7200}"#))
        .on("GET", USER_INFO_PATH, |_, _| Reply::ok(r#"{"code":20021,"msg":"user resigned"}"#))
        .start()
        .await?;
    assert_eq!(client(&stub).exchange_code(&AuthCode::parse("c")?, None).await.err(), Some(IdentityError::NotMember));
    Ok(())
}

#[tokio::test]
async fn the_directory_uses_one_cached_tenant_token_and_renews_a_refused_one_once() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", TOKEN_PATH, |_, _| tenant_token())
        .on("GET", "/open-apis/contact/v3/users/on_1", |n, _| {
            if n == 2 {
                // docs/feishu-api.md §0.3: an invalid or expired tenant token.
                Reply::status(400, r#"{"code":99991663,"msg":"Invalid access token for authorization"}"#)
            } else {
                Reply::ok(contact_user("fs_1", true))
            }
        })
        .on("GET", "/open-apis/contact/v3/users/fs_1", |_, _| Reply::ok(contact_user("fs_1", false)))
        .start()
        .await?;
    let client = client(&stub);
    let union = UnionId::parse("on_1")?;
    assert_eq!(client.find_userid(&tenant(), &union).await?, UserId::parse("fs_1")?);
    assert_eq!(client.find_userid(&tenant(), &union).await?, UserId::parse("fs_1")?, "renewed after 99991663");
    assert_eq!(stub.calls("POST", TOKEN_PATH), 2, "one fetch, one renewal");
    let seen = stub.route("GET", "/open-apis/contact/v3/users/on_1").seen();
    assert_eq!(seen[0].query["user_id_type"], "union_id");
    assert_eq!(seen[0].header("authorization"), "Bearer t-abc");

    let member = client.get_member(&tenant(), &UserId::parse("fs_1")?).await?;
    assert_eq!(member.name, "李雷");
    assert_eq!(member.org_email.as_deref(), Some("lilei@corp.example"));
    assert_eq!(member.email, None, "an empty string is no email");
    assert_eq!(member.avatar_url.as_deref(), Some("https://a/240"));
    assert!(!member.active, "not activated is inactive");
    Ok(())
}

#[tokio::test]
async fn other_tenants_and_invisible_people_are_not_members() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", TOKEN_PATH, |_, _| tenant_token())
        .on("GET", "/open-apis/contact/v3/users/on_x", |_, _| {
            Reply::status(400, r#"{"code":41050,"msg":"no user authority error"}"#)
        })
        .start()
        .await?;
    let client = client(&stub);
    let other = CorpId::parse("2ca1d211f64f6438")?;
    assert_eq!(
        client.find_userid(&other, &UnionId::parse("on_x")?).await.err(),
        Some(IdentityError::CorpNotServed(other))
    );
    assert_eq!(stub.calls("POST", TOKEN_PATH), 0, "a tenant not served costs no call");
    assert_eq!(client.find_userid(&tenant(), &UnionId::parse("on_x")?).await.err(), Some(IdentityError::NotMember));
    Ok(())
}

#[tokio::test]
async fn bad_app_credentials_and_throttling_are_classified() -> TestResult {
    let stub = StubBuilder::new()
        .on("POST", TOKEN_PATH, |_, _| Reply::ok(r#"{"code":10014,"msg":"app secret invalid"}"#))
        .start()
        .await?;
    let got = client(&stub).get_member(&tenant(), &UserId::parse("fs_1")?).await;
    assert!(
        matches!(got, Err(IdentityError::Upstream(UpstreamError::Rejected { ref code, .. })) if code == "10014"),
        "{got:?}"
    );
    let stub = StubBuilder::new()
        .on("POST", TOKEN_PATH, |_, _| tenant_token())
        .on("GET", "/open-apis/contact/v3/users/fs_1", |_, _| {
            Reply::status(429, r#"{"code":99991400,"msg":"request trigger frequency limit"}"#)
                .header("x-ogw-ratelimit-reset", "1")
        })
        .start()
        .await?;
    let got = client(&stub).get_member(&tenant(), &UserId::parse("fs_1")?).await;
    assert!(matches!(got, Err(IdentityError::Upstream(UpstreamError::Throttled(_)))), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn the_v3_token_endpoint_is_on_the_accounts_host() -> TestResult {
    // docs/feishu-api.md §A.3: "the token endpoint changes … to https://accounts.feishu.cn/oauth/v3/token".
    let stub = StubBuilder::new()
        .on("POST", "/oauth/v3/token", |_, _| Reply::ok(r#"{"code":0,"access_token":"eyJ","expires_in":7200}"#))
        .on("GET", USER_INFO_PATH, |_, _| {
            Reply::ok(
                r#"{"code":0,"data":{"name":"n","open_id":"ou_1","union_id":"on_1","tenant_key":"736588c9260f175d"}}"#,
            )
        })
        .start()
        .await?;
    let mut config = FeishuConfig::new("cli_test", SecretString::from("secret"), vec![tenant()]);
    config.open_base = stub.base();
    config.accounts_base = stub.base();
    config.token_endpoint = super::TokenEndpoint::V3;
    let identity =
        FeishuClient::new(reqwest::Client::new(), config).exchange_code(&AuthCode::parse("c")?, None).await?;
    assert_eq!(identity.union_id.as_str(), "on_1");
    assert_eq!(stub.calls("POST", "/oauth/v3/token"), 1);
    assert!(
        stub.route("POST", "/oauth/v3/token").seen()[0].body.get("code_verifier").is_none(),
        "no verifier without PKCE"
    );
    Ok(())
}
