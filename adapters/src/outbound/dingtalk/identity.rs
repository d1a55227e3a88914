//! [`IdentityProvider`] for [`DingTalkClient`]: OAuth login (docs/dingtalk-api.md §A) and
//! the org's member directory (docs/dingtalk-api.md §C).

use application::ports::{IdentityError, IdentityProvider, UpstreamError};
use async_trait::async_trait;
use domain::{AuthCode, CorpId, DeptId, Identity, LoginState, MemberDetails, OpenId, PkceVerifier, UnionId, UserId};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde_json::json;

use super::DingTalkClient;
use super::client::{Corp, CorpError};
use super::config::join;
use super::errors::{CallError, classify_http, decode_v1};
use super::wire::{
    GetByUnionIdResponse, UserGetResponse, UserTokenRequest, UserTokenResponse, UsersMe, non_empty, path,
};

/// errcode "找不到该用户": not a member of the corp (docs/dingtalk-api.md §C.1, §C.2).
const NOT_MEMBER: &str = "60121";
/// The v1.0 code for bad app credentials (docs/dingtalk-api.md §B.1, §G.2).
const BAD_CREDENTIALS: &str = "invalidClientIdOrSecret";

/// Percent-encodes everything but RFC 3986 unreserved characters (fallback
/// for a `login_base` that does not parse as a URL).
fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Maps a legacy failure of §C calls: `Rejected` 60121 → `NotMember`.
fn member_error(error: UpstreamError) -> IdentityError {
    match error {
        UpstreamError::Rejected { code, .. } if code == NOT_MEMBER => IdentityError::NotMember,
        other => IdentityError::Upstream(other),
    }
}

/// Classifies a non-2xx answer of `userAccessToken` (docs/dingtalk-api.md §A.3): bad app
/// credentials (`invalidClientIdOrSecret`) and other app-side refusals (403
/// `Forbidden.AccessDenied.*`: permission, IP whitelist) stay `Upstream`, as
/// do 429/5xx (`Unavailable`) and QPS limits (`Throttled`); any other 4xx
/// refuses the code → `InvalidCode`.
fn user_token_error(status: StatusCode, body: &[u8]) -> IdentityError {
    match classify_http(status, body) {
        CallError::Upstream(UpstreamError::Rejected { code, message })
            if code == BAD_CREDENTIALS || code.starts_with("Forbidden.AccessDenied.") =>
        {
            IdentityError::Upstream(UpstreamError::Rejected { code, message })
        }
        CallError::Upstream(UpstreamError::Rejected { .. }) | CallError::Token { .. } if status.is_client_error() => {
            IdentityError::InvalidCode
        }
        other => IdentityError::Upstream(other.into_upstream()),
    }
}

impl DingTalkClient {
    async fn identity_corp(&self, corp_id: &CorpId) -> Result<Corp, IdentityError> {
        self.inner.corp(corp_id).await.map_err(|e| match e {
            CorpError::NotServed => IdentityError::CorpNotServed(corp_id.clone()),
            CorpError::Upstream(e) => IdentityError::Upstream(e),
        })
    }
}

#[async_trait]
impl IdentityProvider for DingTalkClient {
    /// `{login_base}/oauth2/auth?redirect_uri=..&response_type=code&client_id=<AppKey or SuiteKey>&scope=<scope>&state=..&prompt=consent`
    /// (docs/dingtalk-api.md §A.1), form-URL-encoded (a space in `scope` becomes `+`). DingTalk
    /// documents no PKCE, so `_code_challenge` is not sent.
    fn authorize_url(&self, state: &LoginState, redirect_uri: &str, _code_challenge: &str) -> String {
        let config = &self.inner.config;
        let base = join(&config.login_base, "/oauth2/auth");
        let params = [
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("client_id", config.client_id.as_str()),
            ("scope", config.scope.as_str()),
            ("state", state.expose()),
            ("prompt", "consent"),
        ];
        match reqwest::Url::parse_with_params(&base, params) {
            Ok(url) => url.into(),
            Err(error) => {
                tracing::error!(%error, "dingtalk login_base is not a valid URL");
                let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode_component(v))).collect();
                format!("{base}?{}", query.join("&"))
            }
        }
    }

    /// `POST /v1.0/oauth2/userAccessToken` (docs/dingtalk-api.md §A.3) then
    /// `GET /v1.0/contact/users/me` with the user token (docs/dingtalk-api.md §A.4). The user
    /// token is used once and dropped. `unionId` must be present (else
    /// `Unavailable`); absent or empty optional fields become `None`;
    /// `corp_id` comes from the token response (only with the `corpid` scope).
    /// Errors: [`IdentityError::InvalidCode`] for a 4xx refusal of the code;
    /// `Upstream(Rejected)` for `invalidClientIdOrSecret`; a refused user
    /// token on `users/me` is `Upstream(TokenRejected)` (it cannot be renewed). DingTalk
    /// documents no PKCE, so `_code_verifier` is not sent.
    async fn exchange_code(
        &self,
        code: &AuthCode,
        _code_verifier: Option<PkceVerifier>,
    ) -> Result<Identity, IdentityError> {
        let inner = &self.inner;
        let config = &inner.config;
        let body = UserTokenRequest {
            client_id: &config.client_id,
            client_secret: config.client_secret.expose_secret(),
            code: code.expose(),
            grant_type: "authorization_code",
        };
        let request = inner.http.post(inner.api_url(path::USER_TOKEN)).json(&body);
        let (status, bytes) = inner.execute(path::USER_TOKEN, request).await?;
        if !status.is_success() {
            return Err(user_token_error(status, &bytes));
        }
        let token: UserTokenResponse =
            decode_v1(status, &bytes, false).map_err(|e| IdentityError::Upstream(e.into_upstream()))?;
        if token.access_token.is_empty() {
            return Err(UpstreamError::Unavailable("userAccessToken returned an empty accessToken".to_owned()).into());
        }

        let mut header = HeaderValue::from_str(&token.access_token)
            .map_err(|_| UpstreamError::Unavailable("userAccessToken returned an unusable accessToken".to_owned()))?;
        header.set_sensitive(true);
        drop(token.access_token);
        let request = inner.http.get(inner.api_url(path::USERS_ME)).header("x-acs-dingtalk-access-token", header);
        let (status, bytes) = inner.execute(path::USERS_ME, request).await?;
        let me: UsersMe = decode_v1(status, &bytes, true).map_err(|e| IdentityError::Upstream(e.into_upstream()))?;
        let union_id = non_empty(me.union_id)
            .and_then(|raw| UnionId::parse(&raw).ok())
            .ok_or_else(|| UpstreamError::Unavailable("users/me returned no valid unionId".to_owned()))?;
        Ok(Identity {
            union_id,
            open_id: non_empty(me.open_id).and_then(|raw| OpenId::parse(&raw).ok()),
            corp_id: non_empty(token.corp_id).and_then(|raw| CorpId::parse(&raw).ok()),
            nick: me.nick.unwrap_or_default(),
            avatar_url: non_empty(me.avatar_url),
            email: non_empty(me.email),
            mobile: non_empty(me.mobile),
        })
    }

    /// `POST /topapi/user/getbyunionid` `{"unionid":..}` → `result.userid`
    /// (docs/dingtalk-api.md §C.1) with the corp's token. Errors: `CorpNotServed` for a corp
    /// the app does not serve; `NotMember` for errcode 60121; `Upstream` otherwise
    /// (a missing or invalid `userid` is `Unavailable`).
    async fn find_userid(&self, corp_id: &CorpId, union_id: &UnionId) -> Result<UserId, IdentityError> {
        let corp = self.identity_corp(corp_id).await?;
        let response: GetByUnionIdResponse = self
            .inner
            .oapi_post(&corp, path::GET_BY_UNIONID, &json!({ "unionid": union_id.as_str() }))
            .await
            .map_err(member_error)?;
        UserId::parse(&response.result.userid)
            .map_err(|_| UpstreamError::Unavailable("getbyunionid returned an invalid userid".to_owned()).into())
    }

    /// `POST /topapi/v2/user/get` `{"userid":..,"language":"zh_CN"}` (docs/dingtalk-api.md
    /// §C.2) → userid, unionid, name, avatar, title, org_email, email, mobile,
    /// dept_id_list (non-positive ids dropped), active. Empty strings become
    /// `None`. Errors as [`IdentityProvider::find_userid`].
    async fn get_member(&self, corp_id: &CorpId, userid: &UserId) -> Result<MemberDetails, IdentityError> {
        let corp = self.identity_corp(corp_id).await?;
        let response: UserGetResponse = self
            .inner
            .oapi_post(&corp, path::USER_GET, &json!({ "userid": userid.as_str(), "language": "zh_CN" }))
            .await
            .map_err(member_error)?;
        let user = response.result;
        let malformed = |field: &str| UpstreamError::Unavailable(format!("v2/user/get returned an invalid {field}"));
        Ok(MemberDetails {
            userid: UserId::parse(&user.userid).map_err(|_| malformed("userid"))?,
            union_id: UnionId::parse(&user.unionid).map_err(|_| malformed("unionid"))?,
            name: user.name.unwrap_or_default(),
            avatar_url: non_empty(user.avatar),
            title: non_empty(user.title),
            org_email: non_empty(user.org_email),
            email: non_empty(user.email),
            mobile: non_empty(user.mobile),
            dept_ids: user.dept_id_list.into_iter().filter_map(|id| DeptId::new(id).ok()).collect(),
            active: user.active,
        })
    }
}
