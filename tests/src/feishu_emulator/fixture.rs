//! The tenant the Feishu emulator serves: one self-built app (企业自建应用), its tenant's people
//! and a few people of another tenant (docs/feishu-api.md §0.6 identifiers, §C.1 user fields).
//! Serializable, so a JSON fixture file can be loaded.

use serde::{Deserialize, Serialize};

/// `tenant_key` of the fixture's outsiders (another tenant; docs/feishu-api.md §E.3 example
/// `2ca1d211f64f6438`): `authen/v1/user_info` answers it for them (§A.5 "Tenant membership").
pub const OUTSIDER_TENANT_KEY: &str = "2ca1d211f64f6438";

/// A person's account state (docs/feishu-api.md §C.1 `status`, §A.5 errors 20021–20023).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeishuUserStatus {
    /// Activated member: `is_activated`, nothing else.
    Active,
    /// 离职: `is_resigned`; `user_info` answers 20021, sends answer 230013 (§D.1).
    Resigned,
    /// 暂停: `is_frozen`; `user_info` answers 20022.
    Frozen,
    /// Not activated yet (未激活): `is_activated` false; `user_info` answers 20023 "user not registered".
    Unactivated,
}

/// One person (docs/feishu-api.md §0.6, §A.5, §C.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuUserFixture {
    /// `ou_...`, per app.
    pub open_id: String,
    /// `on_...`, per developer.
    pub union_id: String,
    /// Tenant-wide custom id (≤64 chars, no spaces).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// English name.
    pub en_name: String,
    /// Email (admin-imported, unverified — §A.5 "Verification").
    #[serde(default)]
    pub email: Option<String>,
    /// E.164 mobile, e.g. `+8613800000001`.
    #[serde(default)]
    pub mobile: Option<String>,
    /// Avatar base URL; `None` → the emulator makes one up from the open_id.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Job title.
    #[serde(default)]
    pub job_title: Option<String>,
    /// `od-...` open department ids.
    #[serde(default)]
    pub department_ids: Vec<String>,
    /// Account state.
    pub status: FeishuUserStatus,
    /// Within the app's availability (可用范围): login exchange answers 20010 (§A.3) and sends
    /// answer 230013 (§D.1) otherwise.
    pub available: bool,
}

/// The app, its tenant and the people (docs/feishu-api.md §0.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeishuFixture {
    /// App ID (`cli_...`), the OAuth `client_id`.
    pub app_id: String,
    /// App Secret, the OAuth `client_secret`.
    pub app_secret: String,
    /// The app's tenant.
    pub tenant_key: String,
    /// People of the app's tenant.
    pub users: Vec<FeishuUserFixture>,
    /// People of another tenant ([`OUTSIDER_TENANT_KEY`]): they can sign in (their own
    /// `tenant_key` comes back from `user_info`), but contact/v3 answers 41050 for them.
    #[serde(default)]
    pub outsiders: Vec<FeishuUserFixture>,
    /// The app's Encrypt Key (docs/feishu-api.md §E.1): events are AES-256-CBC encrypted with
    /// SHA-256 of it (§E.4) and signed with it (§E.5). Defaults to [`DEFAULT_ENCRYPT_KEY`] when
    /// left out of a fixture file.
    #[serde(default = "default_encrypt_key")]
    pub encrypt_key: String,
    /// The app's Verification Token (docs/feishu-api.md §E.1), echoed as `header.token` of every
    /// v2.0 event (§E.3) and as `token` of the url_verification request (§E.2). Defaults to
    /// [`DEFAULT_VERIFICATION_TOKEN`] when left out of a fixture file.
    #[serde(default = "default_verification_token")]
    pub verification_token: String,
}

/// Default [`FeishuFixture::encrypt_key`].
pub const DEFAULT_ENCRYPT_KEY: &str = "emu-feishu-encrypt-key";
/// Default [`FeishuFixture::verification_token`].
pub const DEFAULT_VERIFICATION_TOKEN: &str = "emu-feishu-verification-token";

fn default_encrypt_key() -> String {
    DEFAULT_ENCRYPT_KEY.to_owned()
}

fn default_verification_token() -> String {
    DEFAULT_VERIFICATION_TOKEN.to_owned()
}

impl FeishuFixture {
    /// Reads a fixture from a JSON file (the serde shape of this struct; `outsiders`,
    /// `encrypt_key`, `verification_token` and the people's optional fields may be left out) and
    /// checks it with [`FeishuFixture::validate`].
    ///
    /// Errors: the file cannot be read, is not JSON of this shape, or fails validation.
    pub fn load(path: &std::path::Path) -> anyhow::Result<FeishuFixture> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let fixture: FeishuFixture =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        fixture.validate()?;
        Ok(fixture)
    }

    /// Checks the fixture: `app_id`, `app_secret` and `tenant_key` are non-empty, and no
    /// `open_id`, `union_id` or `user_id` is used twice across users and outsiders (the emulator
    /// finds people by them, docs/feishu-api.md §0.6).
    ///
    /// Errors: the first problem found, as text.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (what, value) in
            [("app_id", &self.app_id), ("app_secret", &self.app_secret), ("tenant_key", &self.tenant_key)]
        {
            anyhow::ensure!(!value.is_empty(), "fixture {what} is empty");
        }
        let mut seen = std::collections::HashSet::new();
        for u in self.users.iter().chain(&self.outsiders) {
            for (kind, id) in [("open_id", &u.open_id), ("union_id", &u.union_id), ("user_id", &u.user_id)] {
                anyhow::ensure!(!id.is_empty(), "fixture person {} has an empty {kind}", u.name);
                anyhow::ensure!(seen.insert((kind, id.as_str())), "fixture {kind} {id} is used twice");
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn person(
    key: &str,
    name: &str,
    en_name: &str,
    mobile: &str,
    job_title: &str,
    department: &str,
    status: FeishuUserStatus,
    available: bool,
) -> FeishuUserFixture {
    FeishuUserFixture {
        open_id: format!("ou_feishu_{key}"),
        union_id: format!("on_feishu_{key}"),
        user_id: format!("fs_{key}"),
        name: name.to_owned(),
        en_name: en_name.to_owned(),
        email: Some(format!("{key}@feishu-emulator.example")),
        mobile: Some(mobile.to_owned()),
        avatar_url: None,
        job_title: Some(job_title.to_owned()),
        department_ids: vec![department.to_owned()],
        status,
        available,
    }
}

impl Default for FeishuFixture {
    /// The app `cli_a5d611352af9d00b` of tenant `736588c9260f175d` (docs/feishu-api.md §A.1, §0.6
    /// examples) with: alice (active, available), bob (resigned), carol (frozen), dave (active but
    /// outside the availability → 20010), erin (not activated), and one outsider, olivia.
    fn default() -> Self {
        use FeishuUserStatus::{Active, Frozen, Resigned, Unactivated};
        let eng = "od-5b91c9affb665451a16b90b4be367efa";
        let sales = "od-0f2a6c6a1b7d4e2c9e3b8a7d6c5b4a39";
        FeishuFixture {
            app_id: "cli_a5d611352af9d00b".to_owned(),
            app_secret: "EmuFeishuAppSecret0000000000001".to_owned(),
            tenant_key: "736588c9260f175d".to_owned(),
            users: vec![
                person("alice", "李雷", "Li Lei", "+8613800000001", "工程师", eng, Active, true),
                person("bob", "王芳", "Wang Fang", "+8613800000002", "销售", sales, Resigned, true),
                person("carol", "张伟", "Zhang Wei", "+8613800000003", "产品经理", eng, Frozen, true),
                person("dave", "刘洋", "Liu Yang", "+8613800000004", "设计师", sales, Active, false),
                person("erin", "陈静", "Chen Jing", "+8613800000005", "实习生", eng, Unactivated, true),
            ],
            outsiders: vec![person(
                "olivia",
                "赵敏",
                "Zhao Min",
                "+8613900000009",
                "顾问",
                "od-7e6d5c4b3a2918f7e6d5c4b3a2918f7e",
                Active,
                true,
            )],
            encrypt_key: default_encrypt_key(),
            verification_token: default_verification_token(),
        }
    }
}

/// How a person is identified (docs/feishu-api.md §C.1 `user_id_type`, §D.1 `receive_id_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdType {
    /// `open_id`.
    Open,
    /// `union_id`.
    Union,
    /// `user_id`.
    User,
    /// `email` (§D.1 only).
    Email,
}

impl IdType {
    /// Parses a `user_id_type` / `receive_id_type` value; `email` only when `allow_email`.
    pub(crate) fn parse(s: &str, allow_email: bool) -> Option<IdType> {
        match s {
            "open_id" => Some(IdType::Open),
            "union_id" => Some(IdType::Union),
            "user_id" => Some(IdType::User),
            "email" if allow_email => Some(IdType::Email),
            _ => None,
        }
    }

    /// The person's id of this type.
    pub(crate) fn of(self, u: &FeishuUserFixture) -> Option<&str> {
        match self {
            IdType::Open => Some(&u.open_id),
            IdType::Union => Some(&u.union_id),
            IdType::User => Some(&u.user_id),
            IdType::Email => u.email.as_deref(),
        }
    }
}

/// A person found by id, and whether they belong to another tenant.
pub(crate) fn find<'a>(
    users: &'a [FeishuUserFixture],
    outsiders: &'a [FeishuUserFixture],
    id_type: IdType,
    id: &str,
) -> Option<(&'a FeishuUserFixture, bool)> {
    let hit = |u: &&FeishuUserFixture| id_type.of(u) == Some(id);
    users.iter().find(hit).map(|u| (u, false)).or_else(|| outsiders.iter().find(hit).map(|u| (u, true)))
}

/// The avatar URLs (`avatar_72`, `avatar_240`, `avatar_640`, `avatar_origin`) of a person
/// (docs/feishu-api.md §A.5 thumb 72, middle 240, big 640; §C.1 `avatar`).
pub(crate) fn avatars(u: &FeishuUserFixture) -> [String; 4] {
    let base = u
        .avatar_url
        .clone()
        .unwrap_or_else(|| format!("https://s1-imfile.feishucdn.com/static-resource/v1/emu_{}~", u.open_id));
    let sized = |s: &str| {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}image_size={s}&cut_type=&quality=&format=png&sticker_format=.webp")
    };
    [sized("72x72"), sized("240x240"), sized("640x640"), base.clone()]
}
