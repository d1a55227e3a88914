//! Legacy `oapi.dingtalk.com/topapi/*` endpoints: users (docs/dingtalk-api.md §C) and work notifications (§D).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::state::{DayStats, Emulator, ForbiddenEntry, RecordedSend, SendOutcome, china_day};
use super::wire::{Incoming, Params, Reply, canonical_json};

/// docs/dingtalk-api.md §D.1: `userid_list` "最大用户列表长度100".
pub(crate) const MAX_USERIDS: usize = 100;
/// docs/dingtalk-api.md §D.1: `dept_id_list` max 20.
pub(crate) const MAX_DEPTS: usize = 20;
/// docs/dingtalk-api.md §D.1: `msg` ≤ 2048 bytes (measured on its compact JSON serialization).
pub(crate) const MAX_MSG_BYTES: usize = 2048;
/// docs/dingtalk-api.md §D.6: per user per day per internal app.
pub(crate) const DAILY_LIMIT: u64 = 500;
/// docs/dingtalk-api.md §D.6: per user per day per ISV app (the send doc says 100, the result doc also 50).
pub(crate) const ISV_DAILY_LIMIT: u64 = 100;
/// docs/dingtalk-api.md §D.5: recall window.
const RECALL_WINDOW_MS: i64 = 24 * 3_600_000;

/// docs/dingtalk-api.md §D.2 work-notification message types.
const MSG_TYPES: [&str; 8] = ["text", "image", "voice", "file", "link", "oa", "markdown", "action_card"];

/// The authenticated caller of a topapi call: an internal app (main corp) or an ISV suite acting
/// for one authorized corp.
struct AppCall {
    /// AppKey, or the suite key for an ISV corp token.
    app_key: String,
    /// The app's AgentID, or the suite's AgentID in that corp (its authorization).
    agent_id: i64,
    /// The corp whose directory and messaging the token reaches.
    corp_id: String,
    /// Whether the token is an ISV corp token (docs/dingtalk-api.md §B.4).
    isv: bool,
    params: Params,
}

/// Resolves the token (docs/dingtalk-api.md §0.3: query `access_token` first, then the body) and parses the
/// body. Accepted: internal-app tokens (main corp) and ISV corp tokens (docs/dingtalk-api.md §B.4: the token's
/// corp only; it stops working when the corp relieves the suite). Token failures are wrapped as
/// errcode 88 (`sub_code` 40000 blank / 40014 invalid); user tokens and suite tokens are not
/// accepted (docs/dingtalk-api.md §C.1 "a token obtained via 免登 flow cannot be used"; a suite token is not a
/// corp token).
fn authenticate(emu: &Emulator, req: &Incoming) -> Result<AppCall, Reply> {
    let params = req.params();
    let token = req
        .query("access_token")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| params.as_ref().and_then(|p| p.text("access_token")));
    let Some(token) = token else {
        return Err(Reply::topapi_88("40000", "access_token is blank"));
    };
    let bad_token = || Reply::topapi_88("40014", "不合法的access_token");
    let (app_key, agent_id, corp_id, isv) = if let Some(app_token) = emu.app_token(&token) {
        let org = emu.org();
        let Some(app) = org.app(&app_token.app_key) else {
            return Err(bad_token());
        };
        (app.app_key.clone(), app.agent_id, org.corp().corp_id.clone(), false)
    } else if let Some((corp_token, auth)) = emu.corp_token(&token) {
        (corp_token.suite_key, auth.agent_id, corp_token.corp_id, true)
    } else {
        return Err(bad_token());
    };
    // UNCONFIRMED: an unparseable body; we answer 400002 无效的参数.
    let Some(params) = params else {
        return Err(invalid("无效的参数"));
    };
    Ok(AppCall { app_key, agent_id, corp_id, isv, params })
}

fn invalid(errmsg: &str) -> Reply {
    Reply::topapi_err(400002, errmsg)
}

fn not_found_user() -> Reply {
    Reply::topapi_err(60121, "找不到该用户")
}

macro_rules! auth_or_return {
    ($emu:expr, $req:expr) => {
        match authenticate($emu, $req) {
            Ok(call) => call,
            Err(reply) => return reply,
        }
    };
}

// docs/dingtalk-api.md §C.1 — `POST /topapi/user/getbyunionid` `{"unionid"}`.
pub(crate) fn getbyunionid(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    let Some(unionid) = call.params.text("unionid") else {
        return invalid("无效的参数");
    };
    // The unionid is looked up in the caller's corp only (the same person has another userid in
    // another corp, docs/dingtalk-api.md §0.4).
    let org = emu.org();
    match org.directory(&call.corp_id).and_then(|d| d.user_by_unionid(&unionid)) {
        Some(u) => Reply::topapi_ok(json!({"result": {"contact_type": 0, "userid": u.userid}}), true),
        None => not_found_user(),
    }
}

// docs/dingtalk-api.md §C.2 — `POST /topapi/v2/user/get` `{"userid","language"}`.
pub(crate) fn user_get(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    // UNCONFIRMED: a missing userid; we answer 400002 无效的参数 (§C.2 lists it).
    let Some(userid) = call.params.text("userid") else {
        return invalid("无效的参数");
    };
    let org = emu.org();
    // docs/dingtalk-api.md §C.2: 60121 also for "another org".
    let Some(u) = org.directory(&call.corp_id).and_then(|d| d.user(&userid)) else {
        return not_found_user();
    };
    // docs/dingtalk-api.md §C.2: `state_code` and `telephone` are "not for ISV apps"; `mobile` is for internal
    // apps with the 手机号 permission only.
    let internal = !call.isv;
    let mut r = Map::new();
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            r.insert(k.to_owned(), json!(v));
        }
    };
    opt("avatar", &u.avatar);
    if internal {
        opt("state_code", &u.state_code);
        opt("mobile", &u.mobile);
        opt("telephone", &u.telephone);
    }
    opt("manager_userid", &u.manager_userid);
    opt("job_number", &u.job_number);
    opt("title", &u.title);
    opt("email", &u.email);
    opt("work_place", &u.work_place);
    opt("remark", &u.remark);
    opt("org_email", &u.org_email);
    r.insert("userid".into(), json!(u.userid));
    r.insert("unionid".into(), json!(u.unionid));
    r.insert("name".into(), json!(u.name));
    r.insert("hide_mobile".into(), json!(u.hide_mobile));
    r.insert("exclusive_account".into(), json!(false));
    r.insert("dept_id_list".into(), json!(u.dept_id_list));
    let orders: Vec<Value> = u
        .dept_id_list
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"dept_id": d, "order": 176_220_178_909_140_512_i64 + i as i64}))
        .collect();
    r.insert("dept_order_list".into(), json!(orders));
    let leaders: Vec<Value> =
        u.dept_id_list.iter().map(|d| json!({"dept_id": d, "leader": u.leader_in_dept.contains(d)})).collect();
    r.insert("leader_in_dept".into(), json!(leaders));
    if let Some(h) = u.hired_date {
        r.insert("hired_date".into(), json!(h));
    }
    r.insert("active".into(), json!(u.active));
    r.insert("real_authed".into(), json!(u.real_authed));
    r.insert("senior".into(), json!(u.senior));
    r.insert("admin".into(), json!(u.admin));
    r.insert("boss".into(), json!(u.boss));
    let roles = if u.admin {
        json!([{"group_name": "默认", "id": 3_935_025_514_i64, "name": "主管理员"}])
    } else {
        json!([])
    };
    r.insert("role_list".into(), roles);
    r.insert("union_emp_ext".into(), json!({}));
    Reply::topapi_ok(json!({"result": Value::Object(r)}), true)
}

/// Parses a comma-separated list, trimming blanks.
fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Validates `msg` (docs/dingtalk-api.md §D.1/§D.2). JSON bodies carry an object, form bodies a JSON string; a
/// JSON string inside a JSON body is accepted too (UNCONFIRMED leniency).
fn parse_msg(params: &Params) -> Result<Value, &'static str> {
    let msg = match params.value("msg") {
        None => return Err("msg不能为空"),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| "msg不是合法的JSON")?,
        Some(v) => v.clone(),
    };
    let Value::Object(obj) = &msg else {
        return Err("msg必须是JSON对象");
    };
    let Some(msgtype) = obj.get("msgtype").and_then(Value::as_str) else {
        return Err("msgtype不能为空");
    };
    if !MSG_TYPES.contains(&msgtype) {
        return Err("不支持的msgtype");
    }
    if !obj.get(msgtype).is_some_and(Value::is_object) {
        return Err("缺少msgtype对应的消息内容");
    }
    if msg.to_string().len() > MAX_MSG_BYTES {
        return Err("msg长度超过2048字节");
    }
    Ok(msg)
}

// docs/dingtalk-api.md §D.1 — `POST /topapi/message/corpconversation/asyncsend_v2`.
// Every validation failure answers errcode 400002 (UNCONFIRMED where docs/dingtalk-api.md gives no code: the
// real service may use other codes/messages for some of these).
pub(crate) fn asyncsend_v2(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    // UNCONFIRMED: a missing or foreign agent_id → 400002 "agentId不合法" (wording borrowed from §D.5).
    match call.params.int("agent_id") {
        Ok(Some(a)) if a == call.agent_id => {}
        _ => return invalid("agentId不合法"),
    }
    let msg = match parse_msg(&call.params) {
        Ok(m) => m,
        Err(why) => return invalid(why),
    };
    deliver(emu, &call, msg)
}

// docs/dingtalk-api.md §D.1 — `POST /topapi/message/corpconversation/sendbytemplate`, the send ISV apps created
// after 2020-11-27 must use. docs/dingtalk-api.md names only the endpoint; the body is the one the Python
// service sends (docs/seed.md §E6, observed against a stub): `{"agent_id","userid_list",
// "template_id","data"}` with `data` a JSON string of the template's variables; recipients as in
// asyncsend_v2 (dept_id_list / to_all_user accepted the same way, UNCONFIRMED). The response is
// asyncsend_v2's `{"errcode":0,"task_id":N}` (the seed reads `task_id`). UNCONFIRMED: error codes;
// a missing template_id or a `data` that is not a JSON object (string or inline) → 400002. Any
// template id is accepted (the emulator has no template registry); internal-app tokens are
// accepted too (docs/dingtalk-api.md does not say they are refused). The recorded send's `msg` is
// `{"template_id", "data": {…}}`.
pub(crate) fn sendbytemplate(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    match call.params.int("agent_id") {
        Ok(Some(a)) if a == call.agent_id => {}
        _ => return invalid("agentId不合法"),
    }
    let Some(template_id) = call.params.text("template_id") else {
        return invalid("template_id不能为空");
    };
    let data = match call.params.value("data") {
        None => Value::Object(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return invalid("data不是合法的JSON对象"),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return invalid("data不是合法的JSON对象"),
    };
    deliver(emu, &call, json!({"template_id": template_id, "data": data}))
}

/// Resolves the recipients of a send (docs/dingtalk-api.md §D.1), applies the §D.6 rules and records it.
fn deliver(emu: &Emulator, call: &AppCall, msg: Value) -> Reply {
    let p = &call.params;
    let userids = p.text("userid_list").map(|s| split_list(&s)).unwrap_or_default();
    if userids.len() > MAX_USERIDS {
        return invalid("userid_list长度超过100");
    }
    let dept_texts = p.text("dept_id_list").map(|s| split_list(&s)).unwrap_or_default();
    if dept_texts.len() > MAX_DEPTS {
        return invalid("dept_id_list长度超过20");
    }
    let mut depts = Vec::with_capacity(dept_texts.len());
    for d in &dept_texts {
        match d.parse::<i64>() {
            Ok(n) => depts.push(n),
            Err(_) => return invalid("dept_id_list不合法"),
        }
    }
    let to_all = match p.boolean("to_all_user") {
        Ok(b) => b.unwrap_or(false),
        Err(()) => return invalid("to_all_user不合法"),
    };
    if userids.is_empty() && depts.is_empty() && !to_all {
        return invalid("userid_list、dept_id_list、to_all_user不能同时为空");
    }

    let org = emu.org();
    let Some(dir) = org.directory(&call.corp_id) else {
        return invalid("corp不存在");
    };
    let mut outcome = SendOutcome::default();
    // Recipients in a stable order: explicit users, then department members, de-duplicated.
    let mut recipients: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |userid: &str, recipients: &mut Vec<String>| {
        if seen.insert(userid.to_owned()) {
            recipients.push(userid.to_owned());
        }
    };
    for u in &userids {
        if dir.user(u).is_some() {
            add(u, &mut recipients);
        } else if !outcome.invalid_user_id_list.contains(u) {
            outcome.invalid_user_id_list.push(u.clone());
        }
    }
    for d in &depts {
        if !dir.depts.contains_key(d) {
            if !outcome.invalid_dept_id_list.contains(d) {
                outcome.invalid_dept_id_list.push(*d);
            }
            continue;
        }
        let subtree = dir.dept_subtree(*d);
        for u in &dir.users {
            if u.dept_id_list.iter().any(|x| subtree.contains(x)) {
                add(&u.userid, &mut recipients);
            }
        }
    }
    if to_all {
        for u in &dir.users {
            add(&u.userid, &mut recipients);
        }
    }

    let content = canonical_json(&msg);
    let daily_limit = if call.isv { ISV_DAILY_LIMIT } else { DAILY_LIMIT };
    let mut st = emu.lock();
    let now = st.now_ms();
    let day = china_day(now);
    for userid in recipients {
        let key = (call.app_key.clone(), call.corp_id.clone(), userid.clone(), day);
        let stats: &mut DayStats = st.daily.entry(key).or_default();
        // docs/dingtalk-api.md §D.6: same content to the same user once per day → 143106; more than 500 (ISV:
        // 100) per user per day per app → 143105. Blocked messages do not count as delivered.
        let dup = stats.contents.get(&content).copied().unwrap_or(0);
        if dup > 0 {
            outcome.forbidden_list.push(ForbiddenEntry { code: "143106".to_owned(), count: dup, userid });
        } else if stats.delivered >= daily_limit {
            outcome.forbidden_list.push(ForbiddenEntry { code: "143105".to_owned(), count: stats.delivered, userid });
        } else {
            stats.delivered += 1;
            *stats.contents.entry(content.clone()).or_default() += 1;
            outcome.unread_user_id_list.push(userid);
        }
    }
    let task_id = st.next_task_id;
    st.next_task_id += 1;
    st.sends.push(RecordedSend {
        task_id,
        app_key: call.app_key.clone(),
        agent_id: call.agent_id,
        userid_list: userids,
        dept_id_list: depts,
        to_all_user: to_all,
        msg,
        corp_id: call.corp_id.clone(),
        at_ms: now,
        outcome,
        recalled: false,
    });
    drop(st);
    // docs/dingtalk-api.md §D.1: `{"errcode":0,"task_id":N,"request_id":".."}` — no errmsg.
    Reply::topapi_ok(json!({"task_id": task_id}), false)
}

/// Finds the task named by `agent_id` + `task_key` that belongs to the calling app.
fn find_task(emu: &Emulator, call: &AppCall, task_key: &str) -> Result<Option<RecordedSend>, ()> {
    let agent = call.params.int("agent_id").map_err(|_| ())?;
    let task = call.params.int(task_key).map_err(|_| ())?;
    let (Some(agent), Some(task)) = (agent, task) else {
        return Err(());
    };
    if agent != call.agent_id {
        return Ok(None);
    }
    let st = emu.lock();
    Ok(st
        .sends
        .iter()
        .find(|s| i64::try_from(s.task_id) == Ok(task) && s.app_key == call.app_key && s.corp_id == call.corp_id)
        .cloned())
}

// UNCONFIRMED: for a missing or unknown task on getsendprogress/getsendresult we answer errcode
// 40035 (the only non-5xx code §D.3 lists; 不合法的参数 in the global table). Results stay
// queryable for the emulator's lifetime (the doc's 24 h / 7 day window is not enforced).
fn task_error(missing: bool) -> Reply {
    if missing { Reply::topapi_err(40035, "缺少参数") } else { Reply::topapi_err(40035, "不合法的参数") }
}

// docs/dingtalk-api.md §D.3 — `POST /topapi/message/corpconversation/getsendprogress` `{"agent_id","task_id"}`.
pub(crate) fn getsendprogress(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    match find_task(emu, &call, "task_id") {
        Err(()) => task_error(true),
        Ok(None) => task_error(false),
        Ok(Some(_)) => Reply::topapi_ok(json!({"progress": {"progress_in_percent": 100, "status": 2}}), true),
    }
}

// docs/dingtalk-api.md §D.4 — `POST /topapi/message/corpconversation/getsendresult` `{"agent_id","task_id"}`.
pub(crate) fn getsendresult(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    let send = match find_task(emu, &call, "task_id") {
        Err(()) => return task_error(true),
        Ok(None) => return task_error(false),
        Ok(Some(s)) => s,
    };
    let o = &send.outcome;
    let forbidden_ids: Vec<&String> = o.forbidden_list.iter().map(|f| &f.userid).collect();
    Reply::topapi_ok(
        json!({"send_result": {
            "failed_user_id_list": o.failed_user_id_list,
            "forbidden_list": o.forbidden_list,
            "forbidden_user_id_list": forbidden_ids,
            "invalid_dept_id_list": o.invalid_dept_id_list,
            "invalid_user_id_list": o.invalid_user_id_list,
            "read_user_id_list": o.read_user_id_list,
            "unread_user_id_list": o.unread_user_id_list,
        }}),
        true,
    )
}

// docs/dingtalk-api.md §D.5 — `POST /topapi/message/corpconversation/recall` `{"agent_id","msg_task_id"}`.
pub(crate) fn recall(emu: &Emulator, req: &Incoming) -> Reply {
    let call = auth_or_return!(emu, req);
    let bad = || invalid("agentId不合法或taskId不合法");
    let send = match find_task(emu, &call, "msg_task_id") {
        Ok(Some(s)) => s,
        _ => return bad(),
    };
    let mut st = emu.lock();
    let now = st.now_ms();
    if now - send.at_ms > RECALL_WINDOW_MS {
        // UNCONFIRMED: docs/dingtalk-api.md gives no code for recalling after 24 h; we answer 400002 with a
        // distinct errmsg.
        return invalid("消息发送超过24小时，不能撤回");
    }
    if let Some(s) = st.sends.iter_mut().find(|s| s.task_id == send.task_id) {
        s.recalled = true;
    }
    drop(st);
    Reply::topapi_ok(json!({}), true)
}

// docs/dingtalk-api.md §0.3 — unknown topapi method → errcode 22 with the derived ApiName.
pub(crate) fn unknown_method(path: &str) -> Reply {
    let api = path.trim_start_matches("/topapi/").trim_matches('/').replace('/', ".");
    let sub_msg = format!("不合法ApiName，ApiName = dingtalk.oapi.{api}");
    Reply {
        status: 200,
        headers: Vec::new(),
        body: super::wire::ReplyBody::Json(json!({
            "errcode": 22,
            "sub_msg": sub_msg,
            "errmsg": format!("Invalid method[submsg={sub_msg}]"),
            "request_id": super::state::random_base36(13),
        })),
    }
}
