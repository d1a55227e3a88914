//! DingTalk's JSON shapes (private to the module). Unknown fields are ignored:
//! real responses carry many more (docs/dingtalk-api.md §C.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Paths of the endpoints used (docs/dingtalk-api.md §A.3, §A.4, §B.1, §B.4, §C.1, §C.2, §D.1, §D.3–§D.5).
pub(super) mod path {
    pub const APP_TOKEN: &str = "/v1.0/oauth2/accessToken";
    pub const CORP_TOKEN: &str = "/v1.0/oauth2/corpAccessToken";
    pub const LEGACY_CORP_TOKEN: &str = "/service/get_corp_token";
    pub const USER_TOKEN: &str = "/v1.0/oauth2/userAccessToken";
    pub const USERS_ME: &str = "/v1.0/contact/users/me";
    pub const GET_BY_UNIONID: &str = "/topapi/user/getbyunionid";
    pub const USER_GET: &str = "/topapi/v2/user/get";
    pub const ASYNC_SEND: &str = "/topapi/message/corpconversation/asyncsend_v2";
    pub const SEND_BY_TEMPLATE: &str = "/topapi/message/corpconversation/sendbytemplate";
    pub const SEND_PROGRESS: &str = "/topapi/message/corpconversation/getsendprogress";
    pub const SEND_RESULT: &str = "/topapi/message/corpconversation/getsendresult";
    pub const RECALL: &str = "/topapi/message/corpconversation/recall";
}

/// `POST /v1.0/oauth2/accessToken` request (docs/dingtalk-api.md §B.1).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppTokenRequest<'a> {
    pub app_key: &'a str,
    pub app_secret: &'a str,
}

/// `POST /v1.0/oauth2/accessToken` response (docs/dingtalk-api.md §B.1); `expireIn` seconds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppTokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub expire_in: i64,
}

/// `POST /v1.0/oauth2/corpAccessToken` request (docs/dingtalk-api.md §B.4); the response
/// has the [`AppTokenResponse`] shape `{accessToken, expireIn}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CorpTokenRequest<'a> {
    pub suite_key: &'a str,
    pub suite_secret: &'a str,
    pub auth_corp_id: &'a str,
    pub suite_ticket: &'a str,
}

/// Legacy `service/get_corp_token` response (docs/dingtalk-api.md §B.4):
/// `{"access_token","errcode":0,"errmsg":"ok","expires_in":7200}`.
#[derive(Deserialize)]
pub(super) struct LegacyTokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: i64,
}

/// `POST /v1.0/oauth2/userAccessToken` request (docs/dingtalk-api.md §A.3).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserTokenRequest<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub code: &'a str,
    pub grant_type: &'a str,
}

/// `POST /v1.0/oauth2/userAccessToken` response (docs/dingtalk-api.md §A.3); `corpId` only
/// with the `corpid` scope. `refreshToken`/`expireIn` are not used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserTokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub corp_id: Option<String>,
}

/// `GET /v1.0/contact/users/me` response (docs/dingtalk-api.md §A.4): all strings, omitted when unavailable.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsersMe {
    #[serde(default)]
    pub nick: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub open_id: Option<String>,
    #[serde(default)]
    pub union_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `topapi/user/getbyunionid` response (docs/dingtalk-api.md §C.1).
#[derive(Deserialize)]
pub(super) struct GetByUnionIdResponse {
    pub result: GetByUnionIdResult,
}

/// Its `result`.
#[derive(Deserialize)]
pub(super) struct GetByUnionIdResult {
    pub userid: String,
}

/// `topapi/v2/user/get` response (docs/dingtalk-api.md §C.2).
#[derive(Deserialize)]
pub(super) struct UserGetResponse {
    pub result: UserGetResult,
}

/// The `result` fields dingbridge uses (docs/dingtalk-api.md §C.2).
#[derive(Deserialize)]
pub(super) struct UserGetResult {
    pub userid: String,
    pub unionid: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub org_email: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub dept_id_list: Vec<i64>,
    #[serde(default)]
    pub active: bool,
}

/// `asyncsend_v2` response (docs/dingtalk-api.md §D.1): `task_id` Number; `errmsg` may be absent.
#[derive(Deserialize)]
pub(super) struct AsyncSendResponse {
    pub task_id: i64,
}

/// `getsendprogress` response (docs/dingtalk-api.md §D.3).
#[derive(Deserialize)]
pub(super) struct ProgressResponse {
    pub progress: Progress,
}

/// Its `progress`: `status` 0 not started, 1 processing, 2 done.
#[derive(Deserialize)]
pub(super) struct Progress {
    #[serde(default)]
    pub progress_in_percent: i64,
    #[serde(default)]
    pub status: i64,
}

/// `getsendresult` response (docs/dingtalk-api.md §D.4).
#[derive(Deserialize)]
pub(super) struct SendResultResponse {
    #[serde(default)]
    pub send_result: SendResultWire,
}

/// Its `send_result`: every list may be absent.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SendResultWire {
    pub read_user_id_list: Vec<String>,
    pub unread_user_id_list: Vec<String>,
    pub failed_user_id_list: Vec<String>,
    pub invalid_user_id_list: Vec<String>,
    pub forbidden_user_id_list: Vec<String>,
    pub forbidden_list: Vec<ForbiddenWire>,
    pub invalid_dept_id_list: Vec<i64>,
}

/// A `forbidden_list` item `{code: String, count: Number, userid: String}`.
/// `code` is read as a string or a number; `count` is not used.
#[derive(Deserialize)]
pub(super) struct ForbiddenWire {
    #[serde(default)]
    pub code: Value,
    #[serde(default)]
    pub userid: String,
}

/// The `{"errcode":0}` of a call whose success carries nothing (recall, docs/dingtalk-api.md §D.5).
#[derive(Deserialize)]
pub(super) struct Empty {}

/// `Some(s)` unless `s` is absent or blank.
pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}
