//! Feishu wire shapes, private to this client (docs/feishu-api.md). Every optional field is
//! `Option`/`default`: Feishu omits fields the app has no scope for (§A.5, §C.1).

use serde::{Deserialize, Serialize};

/// `POST /open-apis/auth/v3/tenant_access_token/internal` body (docs/feishu-api.md §B.1).
#[derive(Serialize)]
pub(super) struct TenantTokenRequest<'a> {
    pub app_id: &'a str,
    pub app_secret: &'a str,
}

/// Its answer: fields at the top level, no `data` (docs/feishu-api.md §B.1); HTTP 200 also for
/// failures (`code` 10003, 10014).
#[derive(Deserialize)]
pub(super) struct TenantTokenResponse {
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    pub tenant_access_token: Option<String>,
    /// Remaining seconds (at most 7200).
    #[serde(default)]
    pub expire: i64,
}

/// The code-to-token body (docs/feishu-api.md §A.3); credentials in the body only (§A.3:
/// Basic auth and a body secret together is 20070). `redirect_uri` is optional there and not
/// sent (if sent it must equal the authorize one).
#[derive(Serialize)]
pub(super) struct UserTokenRequest<'a> {
    pub grant_type: &'static str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<&'a str>,
}

/// The token endpoint's answer, success or failure: RFC 6749 fields plus `code`
/// (docs/feishu-api.md §A.3).
#[derive(Deserialize)]
pub(super) struct UserTokenResponse {
    #[serde(default)]
    pub code: i64,
    pub access_token: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The common envelope `{code, msg, data}` (docs/feishu-api.md §0.2).
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    pub code: i64,
    #[serde(default)]
    pub msg: String,
    pub data: Option<T>,
}

/// `authen/v1/user_info` `data` (docs/feishu-api.md §A.5); all strings.
#[derive(Deserialize)]
pub(super) struct UserInfo {
    #[serde(default)]
    pub name: String,
    pub avatar_url: Option<String>,
    pub open_id: Option<String>,
    pub union_id: Option<String>,
    pub tenant_key: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// `contact/v3/users/:user_id` `data` (docs/feishu-api.md §C.1).
#[derive(Deserialize)]
pub(super) struct ContactUserData {
    pub user: ContactUser,
}

/// `data.user` of docs/feishu-api.md §C.1 (the fields dingbridge keeps).
#[derive(Deserialize)]
pub(super) struct ContactUser {
    pub union_id: Option<String>,
    pub user_id: Option<String>,
    #[serde(default)]
    pub name: String,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    pub job_title: Option<String>,
    pub avatar: Option<Avatar>,
    pub status: Option<UserStatus>,
}

/// `user.avatar` (docs/feishu-api.md §C.1).
#[derive(Deserialize)]
pub(super) struct Avatar {
    pub avatar_240: Option<String>,
    pub avatar_origin: Option<String>,
}

/// `user.status` (docs/feishu-api.md §C.1); every flag defaults to "not set".
#[derive(Deserialize, Default)]
pub(super) struct UserStatus {
    #[serde(default)]
    pub is_frozen: bool,
    #[serde(default)]
    pub is_resigned: bool,
    #[serde(default)]
    pub is_activated: bool,
    #[serde(default)]
    pub is_exited: bool,
    #[serde(default)]
    pub is_unjoin: bool,
}

impl UserStatus {
    /// Active member = activated and neither frozen, resigned, exited nor unjoined
    /// (docs/feishu-api.md §C.1, inferred there from the state list).
    pub fn active(&self) -> bool {
        self.is_activated && !self.is_frozen && !self.is_resigned && !self.is_exited && !self.is_unjoin
    }
}

/// `None` for an absent or empty string (Feishu may send `""` for an unset field, §H).
pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `data` of a §D.1 send (docs/feishu-api.md): only the message id is read.
#[derive(Deserialize)]
pub(super) struct SentMessage {
    pub message_id: Option<String>,
}

/// `data` of `read_users` (docs/feishu-api.md §D.6): the readers of one message.
#[derive(Deserialize)]
pub(super) struct ReadUsersData {
    #[serde(default)]
    pub items: Vec<Reader>,
}

/// One reader (docs/feishu-api.md §D.6), as the asked `user_id_type`.
#[derive(Deserialize)]
pub(super) struct Reader {
    pub user_id: Option<String>,
}
