//! The emulated organisation: corp, apps, departments, members and outsiders.
//!
//! A [`Fixture`] is plain serde data (JSON file or [`Fixture::default`]); [`Org`] is the expanded,
//! indexed form the handlers read (generated users materialised, look-ups by userid/unionid).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The whole emulated world, as stored in a fixture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fixture {
    /// The one organisation (corp) the emulated apps belong to.
    pub corp: CorpFixture,
    /// Internal apps of the corp (client id = `app_key`).
    pub apps: Vec<AppFixture>,
    /// Department tree (`parent_id` absent for the root).
    pub departments: Vec<DeptFixture>,
    /// Named members of the corp.
    pub users: Vec<UserFixture>,
    /// Bulk members generated from a template (`user0001..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_users: Option<GeneratedUsers>,
    /// DingTalk accounts that are NOT members of the corp (can log in, are unknown to topapi).
    #[serde(default)]
    pub outsiders: Vec<OutsiderFixture>,
    /// Further organisations (customers of the ISV suites); their members are visible only to
    /// corp tokens of that corp (docs/dingtalk-api.md §B.4). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_corps: Vec<OtherCorpFixture>,
    /// Third-party (ISV) suite apps (docs/dingtalk-api.md §B.4–§B.5, §E). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<SuiteFixture>,
}

/// A further organisation with its own departments and members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherCorpFixture {
    /// The corp.
    pub corp: CorpFixture,
    /// Department tree (`parent_id` absent for the root).
    #[serde(default)]
    pub departments: Vec<DeptFixture>,
    /// Members. A person in several orgs keeps one unionid (docs/dingtalk-api.md §0.4) but has a userid per org.
    #[serde(default)]
    pub users: Vec<UserFixture>,
}

/// A third-party (ISV) suite app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteFixture {
    /// SuiteKey (Client ID of the ISV app; also the callback owner key, docs/dingtalk-api.md §E.1).
    pub suite_key: String,
    /// SuiteSecret.
    pub suite_secret: String,
    /// Callback signature token (docs/dingtalk-api.md §E.1).
    pub token: String,
    /// Callback EncodingAESKey: 43 characters of `[A-Za-z0-9]` (docs/dingtalk-api.md §E.1).
    pub aes_key: String,
    /// Callback URL; when set, the suite's push target is configured at start (it can also be set
    /// later with `POST /_admin/callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The ISV developer's own corp: the `corp_id` of SyncHTTP suite_ticket items (docs/dingtalk-api.md §E.6 does
    /// not say which corp they carry). Absent = the fixture's main corp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_corp_id: Option<String>,
    /// Corps that installed (authorized) the suite.
    #[serde(default)]
    pub authorizations: Vec<SuiteAuthorization>,
}

/// One corp's authorization of a suite (what an `org_suite_auth` push carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteAuthorization {
    /// The authorizing corp.
    pub corp_id: String,
    /// The suite's AgentID inside that corp (work notifications must use it, docs/dingtalk-api.md §D.1).
    pub agent_id: i64,
    /// The permanent code issued at authorization.
    pub permanent_code: String,
}

impl SuiteFixture {
    /// The authorization of `corp_id`, if that corp installed the suite.
    pub fn authorization(&self, corp_id: &str) -> Option<&SuiteAuthorization> {
        self.authorizations.iter().find(|a| a.corp_id == corp_id)
    }
}

/// The corp (organisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpFixture {
    /// `corpId` (`ding...`).
    pub corp_id: String,
    /// Display name.
    pub name: String,
}

/// An internal app registered in the corp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppFixture {
    /// Client ID / AppKey.
    pub app_key: String,
    /// Client Secret / AppSecret.
    pub app_secret: String,
    /// AgentID used for work notifications.
    pub agent_id: i64,
    /// Registered redirect URLs (docs/dingtalk-api.md §A.1: `redirect_uri` must match one). Empty = accept any
    /// `http(s)://` URL (convenient for tests on random ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
}

/// A department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeptFixture {
    /// Department id (root is 1).
    pub dept_id: i64,
    /// Department name.
    pub name: String,
    /// Parent department (absent for the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,
}

/// A member of the corp. Optional fields are omitted from API answers when absent (docs/dingtalk-api.md §C.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserFixture {
    /// userid (unique inside the corp).
    pub userid: String,
    /// unionid (unique across orgs of one developer).
    pub unionid: String,
    /// openId as returned by `/v1.0/contact/users/me`.
    pub open_id: String,
    /// Display name (also `nick` on `users/me`).
    pub name: String,
    /// Mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Country calling code, e.g. `86`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_code: Option<String>,
    /// Personal mailbox (returned by `users/me` and `v2/user/get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Enterprise mailbox (`org_email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_email: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Employee number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_number: Option<String>,
    /// Avatar URL (omitted = default avatar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Departments the user belongs to.
    #[serde(default)]
    pub dept_id_list: Vec<i64>,
    /// Account activated.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Corp administrator.
    #[serde(default)]
    pub admin: bool,
    /// Corp boss.
    #[serde(default)]
    pub boss: bool,
    /// Senior-executive mode.
    #[serde(default)]
    pub senior: bool,
    /// Real-name authenticated.
    #[serde(default = "default_true")]
    pub real_authed: bool,
    /// Mobile hidden from colleagues.
    #[serde(default)]
    pub hide_mobile: bool,
    /// Manager's userid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_userid: Option<String>,
    /// Extension number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    /// Work place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    /// Remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Hire date, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hired_date: Option<i64>,
    /// Departments this user leads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_in_dept: Vec<i64>,
}

fn default_true() -> bool {
    true
}

/// Template for bulk members: `{prefix}0001..{prefix}{count:04}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedUsers {
    /// How many users to generate.
    pub count: u32,
    /// userid prefix (`user` → `user0001`).
    pub userid_prefix: String,
    /// Department of every generated user.
    pub dept_id: i64,
}

/// A DingTalk account outside the corp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutsiderFixture {
    /// unionid.
    pub unionid: String,
    /// openId.
    pub open_id: String,
    /// Nickname.
    pub nick: String,
    /// Personal mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Country calling code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_code: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

impl Fixture {
    /// Reads a fixture from a JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Fixture> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading fixture {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("parsing fixture {}", path.display()))
    }

    /// Parses a fixture from JSON text and checks it is consistent.
    pub fn from_json(text: &str) -> anyhow::Result<Fixture> {
        let fixture: Fixture = serde_json::from_str(text)?;
        Org::build(&fixture)?;
        Ok(fixture)
    }
}

fn user(
    userid: &str,
    name: &str,
    mobile: &str,
    email: Option<&str>,
    title: &str,
    job_number: &str,
    dept_id_list: Vec<i64>,
) -> UserFixture {
    UserFixture {
        userid: userid.to_owned(),
        unionid: format!("union-{userid}"),
        open_id: format!("open-{userid}"),
        name: name.to_owned(),
        mobile: Some(mobile.to_owned()),
        state_code: Some("86".to_owned()),
        email: email.map(str::to_owned),
        org_email: None,
        title: Some(title.to_owned()),
        job_number: Some(job_number.to_owned()),
        avatar: None,
        dept_id_list,
        active: true,
        admin: false,
        boss: false,
        senior: false,
        real_authed: true,
        hide_mobile: false,
        manager_userid: None,
        telephone: None,
        work_place: None,
        remark: None,
        hired_date: None,
        leader_in_dept: Vec::new(),
    }
}

impl Default for Fixture {
    /// The built-in org; `tests/fixtures/org.json` holds the same content.
    fn default() -> Self {
        let mut manager = user(
            "manager4220",
            "张三",
            "15000009144",
            Some("zhangsan@example.com"),
            "Engineering Manager",
            "0001",
            vec![1, 2],
        );
        manager.unionid = "z21HjQliSzpw0YWCiiSWeV8giEiE".to_owned();
        manager.open_id = "Lk1B2iPKiPziPWmWZbyGsXwiEiE".to_owned();
        manager.org_email = Some("zhangsan@corp.example".to_owned());
        manager.avatar = Some("https://static.example.com/avatar/zhangsan.png".to_owned());
        manager.admin = true;
        manager.hired_date = Some(1_577_836_800_000);
        manager.leader_in_dept = vec![2];

        let mut lisi =
            user("lisi0002", "李四", "15000002222", Some("lisi@example.com"), "Software Engineer", "0002", vec![2]);
        lisi.manager_userid = Some("manager4220".to_owned());
        lisi.work_place = Some("杭州".to_owned());

        let mut wangwu = user("wangwu0003", "王五", "15000003333", None, "Sales Lead", "0003", vec![3]);
        wangwu.telephone = Some("8003".to_owned());

        let mut zhaoliu =
            user("zhaoliu0004", "赵六", "15000004444", Some("zhaoliu@example.com"), "Intern", "0004", vec![2]);
        zhaoliu.active = false;
        zhaoliu.real_authed = false;
        zhaoliu.remark = Some("not yet activated".to_owned());

        Fixture {
            corp: CorpFixture { corp_id: "dingemucorp0001".to_owned(), name: "Emulated Corp".to_owned() },
            apps: vec![AppFixture {
                app_key: "dingemuappkey0001".to_owned(),
                app_secret: "emulator-app-secret".to_owned(),
                agent_id: 300001,
                redirect_uris: Vec::new(),
            }],
            departments: vec![
                DeptFixture { dept_id: 1, name: "Emulated Corp".to_owned(), parent_id: None },
                DeptFixture { dept_id: 2, name: "Engineering".to_owned(), parent_id: Some(1) },
                DeptFixture { dept_id: 3, name: "Sales".to_owned(), parent_id: Some(1) },
            ],
            users: vec![manager, lisi, wangwu, zhaoliu],
            generated_users: Some(GeneratedUsers { count: 400, userid_prefix: "user".to_owned(), dept_id: 2 }),
            outsiders: vec![OutsiderFixture {
                unionid: "outsider-union-0001".to_owned(),
                open_id: "outsider-open-0001".to_owned(),
                nick: "Outsider".to_owned(),
                email: Some("outsider@example.com".to_owned()),
                mobile: None,
                state_code: None,
                avatar: None,
            }],
            other_corps: vec![second_corp()],
            suites: vec![SuiteFixture {
                suite_key: "suiteemukey0001".to_owned(),
                suite_secret: "emulator-suite-secret".to_owned(),
                token: "emutoken".to_owned(),
                aes_key: "emuSuiteAesKey0123456789abcdefghijklmnopqrs".to_owned(),
                callback_url: None,
                provider_corp_id: None,
                authorizations: vec![
                    SuiteAuthorization {
                        corp_id: "dingemucorp0001".to_owned(),
                        agent_id: 400001,
                        permanent_code: "emu-permanent-code-0001".to_owned(),
                    },
                    SuiteAuthorization {
                        corp_id: "dingemucorp0002".to_owned(),
                        agent_id: 400002,
                        permanent_code: "emu-permanent-code-0002".to_owned(),
                    },
                ],
            }],
        }
    }
}

/// The second corp of the built-in fixture: it authorized the suite only. `c2lisi03` is the same
/// person as the main corp's `lisi0002` (same unionid, another userid — docs/dingtalk-api.md §0.4).
fn second_corp() -> OtherCorpFixture {
    let mut boss = user("c2boss01", "周七", "15000005555", Some("zhouqi@second.example"), "CEO", "C001", vec![1]);
    boss.admin = true;
    boss.boss = true;
    let staff = user("c2staff02", "吴八", "15000006666", None, "Operator", "C002", vec![2]);
    let mut lisi = user("c2lisi03", "李四", "15000002222", Some("lisi@example.com"), "Consultant", "C003", vec![2]);
    lisi.unionid = "union-lisi0002".to_owned();
    lisi.open_id = "open-c2lisi03".to_owned();
    OtherCorpFixture {
        corp: CorpFixture { corp_id: "dingemucorp0002".to_owned(), name: "Second Emulated Corp".to_owned() },
        departments: vec![
            DeptFixture { dept_id: 1, name: "Second Emulated Corp".to_owned(), parent_id: None },
            DeptFixture { dept_id: 2, name: "Operations".to_owned(), parent_id: Some(1) },
        ],
        users: vec![boss, staff, lisi],
    }
}

/// One corp's member directory (departments and members, indexed).
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    pub(crate) corp: CorpFixture,
    pub(crate) depts: BTreeMap<i64, DeptFixture>,
    /// Every member, named first, then generated, in fixture order (then members added later).
    pub(crate) users: Vec<UserFixture>,
    /// How many of `users` are named (not generated).
    pub(crate) named_count: usize,
    by_userid: HashMap<String, usize>,
    by_unionid: HashMap<String, usize>,
}

impl Directory {
    fn build(
        corp: &CorpFixture,
        departments: &[DeptFixture],
        named: &[UserFixture],
        generated: Option<&GeneratedUsers>,
    ) -> anyhow::Result<Directory> {
        let mut users = named.to_vec();
        let named_count = users.len();
        if let Some(generated) = generated {
            for n in 1..=generated.count {
                let userid = format!("{}{n:04}", generated.userid_prefix);
                users.push(UserFixture {
                    unionid: format!("union-{userid}"),
                    open_id: format!("open-{userid}"),
                    name: format!("User {n:04}"),
                    mobile: None,
                    state_code: None,
                    email: None,
                    title: None,
                    job_number: None,
                    dept_id_list: vec![generated.dept_id],
                    ..user(&userid, "", "", None, "", "", Vec::new())
                });
            }
        }
        let depts: BTreeMap<i64, DeptFixture> = departments.iter().map(|d| (d.dept_id, d.clone())).collect();
        let mut dir = Directory {
            corp: corp.clone(),
            depts,
            users,
            named_count,
            by_userid: HashMap::new(),
            by_unionid: HashMap::new(),
        };
        dir.reindex()?;
        Ok(dir)
    }

    /// Rebuilds the look-ups, checking ids are unique and departments exist.
    fn reindex(&mut self) -> anyhow::Result<()> {
        let mut by_userid = HashMap::new();
        let mut by_unionid = HashMap::new();
        let corp = &self.corp.corp_id;
        for (i, u) in self.users.iter().enumerate() {
            anyhow::ensure!(by_userid.insert(u.userid.clone(), i).is_none(), "duplicate userid {} in {corp}", u.userid);
            anyhow::ensure!(
                by_unionid.insert(u.unionid.clone(), i).is_none(),
                "duplicate unionid {} in {corp}",
                u.unionid
            );
            for d in &u.dept_id_list {
                anyhow::ensure!(self.depts.contains_key(d), "user {} is in unknown department {d} of {corp}", u.userid);
            }
        }
        self.by_userid = by_userid;
        self.by_unionid = by_unionid;
        Ok(())
    }

    pub(crate) fn user(&self, userid: &str) -> Option<&UserFixture> {
        self.by_userid.get(userid).and_then(|&i| self.users.get(i))
    }

    pub(crate) fn user_by_unionid(&self, unionid: &str) -> Option<&UserFixture> {
        self.by_unionid.get(unionid).and_then(|&i| self.users.get(i))
    }

    /// A department and all its sub-departments (docs/dingtalk-api.md §D.1: `dept_id_list` includes sub-depts).
    pub(crate) fn dept_subtree(&self, root: i64) -> Vec<i64> {
        let mut out = vec![root];
        let mut i = 0;
        while let Some(&current) = out.get(i) {
            for d in self.depts.values() {
                if d.parent_id == Some(current) && !out.contains(&d.dept_id) {
                    out.push(d.dept_id);
                }
            }
            i += 1;
        }
        out
    }

    /// Removes a member (they left the corp); `None` when not a member.
    pub(crate) fn remove_user(&mut self, userid: &str) -> Option<UserFixture> {
        let i = *self.by_userid.get(userid)?;
        let removed = self.users.remove(i);
        if i < self.named_count {
            self.named_count -= 1;
        }
        // Removing keeps the remaining ids unique and departments valid.
        let _ = self.reindex();
        Some(removed)
    }

    /// Adds a member (listed with the named ones); fails on a duplicate id or unknown department.
    pub(crate) fn add_user(&mut self, user: UserFixture) -> anyhow::Result<()> {
        anyhow::ensure!(self.user(&user.userid).is_none(), "userid {} already exists", user.userid);
        anyhow::ensure!(self.user_by_unionid(&user.unionid).is_none(), "unionid {} already exists", user.unionid);
        for d in &user.dept_id_list {
            anyhow::ensure!(self.depts.contains_key(d), "unknown department {d}");
        }
        self.users.insert(self.named_count, user);
        self.named_count += 1;
        self.reindex()
    }
}

/// The expanded, indexed world: the main corp (whose internal apps are `apps`), further corps, and
/// the ISV suites with their authorizations.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub(crate) apps: Vec<AppFixture>,
    /// The main corp (the one of `Fixture::corp`).
    pub(crate) main: Directory,
    /// `Fixture::other_corps`.
    pub(crate) others: Vec<Directory>,
    pub(crate) outsiders: Vec<OutsiderFixture>,
    pub(crate) suites: Vec<SuiteFixture>,
}

impl Org {
    /// Expands generated users and checks ids are unique, departments exist and suites are sound.
    pub(crate) fn build(fixture: &Fixture) -> anyhow::Result<Org> {
        let main =
            Directory::build(&fixture.corp, &fixture.departments, &fixture.users, fixture.generated_users.as_ref())?;
        for o in &fixture.outsiders {
            anyhow::ensure!(
                main.user_by_unionid(&o.unionid).is_none(),
                "outsider unionid {} is also a member",
                o.unionid
            );
        }
        anyhow::ensure!(!fixture.apps.is_empty(), "fixture has no apps");
        let mut others: Vec<Directory> = Vec::new();
        for c in &fixture.other_corps {
            anyhow::ensure!(
                c.corp.corp_id != main.corp.corp_id && others.iter().all(|d| d.corp.corp_id != c.corp.corp_id),
                "duplicate corp {}",
                c.corp.corp_id
            );
            others.push(Directory::build(&c.corp, &c.departments, &c.users, None)?);
        }
        let mut org =
            Org { apps: fixture.apps.clone(), main, others, outsiders: fixture.outsiders.clone(), suites: Vec::new() };
        for s in &fixture.suites {
            anyhow::ensure!(org.suite(&s.suite_key).is_none(), "duplicate suite {}", s.suite_key);
            anyhow::ensure!(!s.suite_key.is_empty() && !s.token.is_empty(), "suite key and token must be set");
            super::crypto::aes_key_bytes(&s.aes_key).map_err(|e| anyhow::anyhow!("suite {}: {e}", s.suite_key))?;
            for (i, a) in s.authorizations.iter().enumerate() {
                anyhow::ensure!(
                    org.directory(&a.corp_id).is_some(),
                    "suite {} is authorized by unknown corp {}",
                    s.suite_key,
                    a.corp_id
                );
                anyhow::ensure!(
                    s.authorizations.iter().take(i).all(|b| b.corp_id != a.corp_id),
                    "suite {} has two authorizations of {}",
                    s.suite_key,
                    a.corp_id
                );
            }
            org.suites.push(s.clone());
        }
        Ok(org)
    }

    /// The main corp.
    pub(crate) fn corp(&self) -> &CorpFixture {
        &self.main.corp
    }

    pub(crate) fn app(&self, app_key: &str) -> Option<&AppFixture> {
        self.apps.iter().find(|a| a.app_key == app_key)
    }

    /// A member of the main corp.
    pub(crate) fn user(&self, userid: &str) -> Option<&UserFixture> {
        self.main.user(userid)
    }

    /// A member of the main corp.
    pub(crate) fn user_by_unionid(&self, unionid: &str) -> Option<&UserFixture> {
        self.main.user_by_unionid(unionid)
    }

    pub(crate) fn outsider(&self, unionid: &str) -> Option<&OutsiderFixture> {
        self.outsiders.iter().find(|o| o.unionid == unionid)
    }

    /// The directory of any known corp.
    pub(crate) fn directory(&self, corp_id: &str) -> Option<&Directory> {
        std::iter::once(&self.main).chain(self.others.iter()).find(|d| d.corp.corp_id == corp_id)
    }

    pub(crate) fn directory_mut(&mut self, corp_id: &str) -> Option<&mut Directory> {
        std::iter::once(&mut self.main).chain(self.others.iter_mut()).find(|d| d.corp.corp_id == corp_id)
    }

    pub(crate) fn suite(&self, suite_key: &str) -> Option<&SuiteFixture> {
        self.suites.iter().find(|s| s.suite_key == suite_key)
    }

    pub(crate) fn suite_mut(&mut self, suite_key: &str) -> Option<&mut SuiteFixture> {
        self.suites.iter_mut().find(|s| s.suite_key == suite_key)
    }
}
