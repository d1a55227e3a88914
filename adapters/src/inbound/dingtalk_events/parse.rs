//! Parsing of decrypted DingTalk event callbacks (docs/dingtalk-api.md §E.6, §B.5) into
//! [`DingTalkEvent`]s. All knowledge of DingTalk's event JSON lives here.
//!
//! - Legacy HTTP events carry `EventType` at the top level: `check_url`,
//!   `check_create_suite_url`, `check_update_suite_url`, `suite_ticket`
//!   (`SuiteKey`, `SuiteTicket`), `tmp_auth_code` / `change_auth` /
//!   `suite_relieve` (`SuiteKey`, `AuthCorpId`), and the contact events
//!   (§E.6: current format `CorpId`, `eventId`, `timeStamp`, `userId: [..]`;
//!   older format `CorpId`, `TimeStamp`, `UserId: [..]`; departments
//!   `deptId` / `DeptId`).
//! - SyncHTTP pushes (`SYNC_HTTP_PUSH_HIGH` / `SYNC_HTTP_PUSH_MEDIUM`) carry a
//!   `bizData` array; each item has `biz_type` and `biz_data` (a JSON string):
//!   2 = suite_ticket (`suiteTicket`), 4 = org authorization (`syncAction`
//!   `org_suite_auth` with `permanent_code`, `auth_corp_info.corpid`,
//!   `auth_info.agent[0].agentid` — the seed's reading, which docs/dingtalk-api.md does not
//!   spell out — or `org_suite_relieve`).
//!
//! Every item is parsed on its own: one malformed item of a SyncHTTP batch
//! yields a [`ParseProblem`] for that item only, and the others still count.
//! Unknown event types and SyncHTTP `biz_type`s become
//! [`DingTalkEvent::Unknown`] (acknowledged, never an error). Problems never
//! quote a ticket or a permanent code.

use super::handle::{ContactChange, DingTalkEvent, SecretText};
use domain::{AgentId, CorpId, DeptId, UserId};
use serde_json::{Map, Value};

/// Contact event types (docs/dingtalk-api.md §E.6) that go into the per-corp feed.
pub const CONTACT_EVENT_TYPES: [&str; 7] = [
    "user_add_org",
    "user_modify_org",
    "user_leave_org",
    "user_active_org",
    "org_dept_create",
    "org_dept_modify",
    "org_dept_remove",
];

/// Longest event type quoted in an [`DingTalkEvent::Unknown`] (the rest is cut).
const MAX_TYPE_CHARS: usize = 64;

/// Why one event (or one SyncHTTP item) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", item.map(|i| format!("bizData[{i}]: ")).unwrap_or_default())]
pub struct ParseProblem {
    /// The index of the SyncHTTP `bizData` item, when the problem is inside one.
    pub item: Option<usize>,
    /// What is wrong (no secret values).
    pub message: String,
}

impl ParseProblem {
    fn top(message: impl Into<String>) -> Self {
        Self { item: None, message: message.into() }
    }
}

/// Parses a decrypted callback message. `owner_key` is the owner key of the crypto that verified
/// it (AppKey, corp id or SuiteKey, docs/dingtalk-api.md §E.1): it stands in for the suite key where the event
/// names none (SyncHTTP items, a legacy event without `SuiteKey`).
///
/// Returns one entry per event: one for a legacy event, one per `bizData` item for SyncHTTP.
pub fn parse_events(plaintext: &str, owner_key: &str) -> Vec<Result<DingTalkEvent, ParseProblem>> {
    let value: Value = match serde_json::from_str(plaintext) {
        Ok(v) => v,
        Err(e) => return vec![Err(ParseProblem::top(format!("the message is not JSON: {e}")))],
    };
    let Value::Object(msg) = value else {
        return vec![Err(ParseProblem::top("the message is not a JSON object"))];
    };
    let Some(event_type) = msg.get("EventType").and_then(Value::as_str) else {
        return vec![Err(ParseProblem::top("the message has no EventType"))];
    };
    let lower = event_type.to_ascii_lowercase();
    match lower.as_str() {
        "sync_http_push_high" | "sync_http_push_medium" => parse_sync(&msg, owner_key),
        _ => vec![parse_legacy(&lower, event_type, &msg, owner_key).map_err(ParseProblem::top)],
    }
}

fn parse_legacy(
    lower: &str,
    raw_type: &str,
    msg: &Map<String, Value>,
    owner_key: &str,
) -> Result<DingTalkEvent, String> {
    let suite_key = || string_field(msg, &["SuiteKey", "suiteKey"]).unwrap_or_else(|| owner_key.to_owned());
    Ok(match lower {
        "check_url" | "check_create_suite_url" | "check_update_suite_url" => {
            DingTalkEvent::CheckUrl { event_type: lower.to_owned() }
        }
        "suite_ticket" => {
            let ticket = string_field(msg, &["SuiteTicket", "suiteTicket"])
                .filter(|t| !t.is_empty())
                .ok_or("suite_ticket without SuiteTicket")?;
            DingTalkEvent::SuiteTicket { suite_key: suite_key(), ticket: SecretText::new(ticket) }
        }
        "tmp_auth_code" => DingTalkEvent::TmpAuthCode { suite_key: suite_key(), corp_id: auth_corp(msg, lower)? },
        "change_auth" => DingTalkEvent::ChangeAuth { suite_key: suite_key(), corp_id: auth_corp(msg, lower)? },
        "suite_relieve" => DingTalkEvent::Relieve { suite_key: suite_key(), corp_id: auth_corp(msg, lower)? },
        t if CONTACT_EVENT_TYPES.contains(&t) => DingTalkEvent::Contact(parse_contact(t, msg)?),
        _ => DingTalkEvent::Unknown { event_type: raw_type.chars().take(MAX_TYPE_CHARS).collect() },
    })
}

fn auth_corp(msg: &Map<String, Value>, event_type: &str) -> Result<CorpId, String> {
    let raw = string_field(msg, &["AuthCorpId", "authCorpId", "CorpId"])
        .ok_or_else(|| format!("{event_type} without AuthCorpId"))?;
    CorpId::parse(&raw).map_err(|e| format!("{event_type}: {}", e.message))
}

/// A contact event in the current or the older format (docs/dingtalk-api.md §E.6).
fn parse_contact(event_type: &str, msg: &Map<String, Value>) -> Result<ContactChange, String> {
    let corp = string_field(msg, &["CorpId", "corpId"]).ok_or_else(|| format!("{event_type} without CorpId"))?;
    let corp_id = CorpId::parse(&corp).map_err(|e| format!("{event_type}: {}", e.message))?;
    let userids = list(msg, &["userId", "UserId"])
        .into_iter()
        .map(|raw| UserId::parse(&raw).map_err(|e| format!("{event_type}: {}", e.message)))
        .collect::<Result<Vec<_>, _>>()?;
    let dept_ids = list(msg, &["deptId", "DeptId"])
        .into_iter()
        .map(|raw| {
            raw.parse::<i64>()
                .map_err(|_| format!("{event_type}: department id {raw:?} is not a number"))
                .and_then(|n| DeptId::new(n).map_err(|e| format!("{event_type}: {}", e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ContactChange {
        corp_id,
        event_type: event_type.to_owned(),
        event_id: string_field(msg, &["eventId", "EventId"]).filter(|id| !id.is_empty()),
        userids,
        dept_ids,
        occurred_at: string_field(msg, &["timeStamp", "TimeStamp", "EventTime"]),
    })
}

fn parse_sync(msg: &Map<String, Value>, owner_key: &str) -> Vec<Result<DingTalkEvent, ParseProblem>> {
    let Some(items) = msg.get("bizData").and_then(Value::as_array) else {
        return vec![Err(ParseProblem::top("SyncHTTP push without a bizData array"))];
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_sync_item(item, owner_key).map_err(|message| ParseProblem { item: Some(i), message }))
        .collect()
}

/// One SyncHTTP `bizData` item (docs/dingtalk-api.md §E.6, §B.5).
fn parse_sync_item(item: &Value, owner_key: &str) -> Result<DingTalkEvent, String> {
    let item = item.as_object().ok_or("the item is not a JSON object")?;
    let biz_type = item.get("biz_type").and_then(as_i64).ok_or("the item has no numeric biz_type")?;
    let data = biz_data(item)?;
    let suite_key = owner_key.to_owned();
    match biz_type {
        2 => {
            let ticket = string_field(&data, &["suiteTicket", "SuiteTicket"])
                .filter(|t| !t.is_empty())
                .ok_or("biz_type 2 without suiteTicket")?;
            Ok(DingTalkEvent::SuiteTicket { suite_key, ticket: SecretText::new(ticket) })
        }
        4 => {
            let action = string_field(&data, &["syncAction"]).ok_or("biz_type 4 without syncAction")?;
            let action = action.to_ascii_lowercase();
            let corp = string_field(item, &["corp_id"])
                .or_else(|| {
                    data.get("auth_corp_info").and_then(Value::as_object).and_then(|c| string_field(c, &["corpid"]))
                })
                .ok_or("biz_type 4 without corp_id")?;
            let corp_id = CorpId::parse(&corp).map_err(|e| format!("biz_type 4: {}", e.message))?;
            match action.as_str() {
                "org_suite_auth" => {
                    let agent_id = match first_agent_id(&data) {
                        Some(raw) => Some(AgentId::new(raw).map_err(|e| format!("biz_type 4: {}", e.message))?),
                        None => None,
                    };
                    let permanent_code = string_field(&data, &["permanent_code", "permanentCode"])
                        .filter(|c| !c.is_empty())
                        .map(SecretText::new);
                    Ok(DingTalkEvent::OrgSuiteAuth { suite_key, corp_id, agent_id, permanent_code })
                }
                "org_suite_relieve" => Ok(DingTalkEvent::Relieve { suite_key, corp_id }),
                "org_suite_change" => Ok(DingTalkEvent::ChangeAuth { suite_key, corp_id }),
                other => Ok(DingTalkEvent::Unknown {
                    event_type: format!(
                        "biz_type 4 syncAction {}",
                        other.chars().take(MAX_TYPE_CHARS).collect::<String>()
                    ),
                }),
            }
        }
        other => Ok(DingTalkEvent::Unknown { event_type: format!("biz_type {other}") }),
    }
}

/// `biz_data`: a JSON string holding an object (docs/dingtalk-api.md §E.6), or (leniently) the object itself.
fn biz_data(item: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    match item.get("biz_data") {
        Some(Value::String(raw)) => match serde_json::from_str(raw) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("biz_data is not a JSON object".to_owned()),
            Err(e) => Err(format!("biz_data is not JSON: {e}")),
        },
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err("biz_data is neither a JSON string nor an object".to_owned()),
        None => Err("the item has no biz_data".to_owned()),
    }
}

/// `auth_info.agent[0].agentid` (the seed's reading of biz_type 4).
fn first_agent_id(data: &Map<String, Value>) -> Option<i64> {
    data.get("auth_info")?.get("agent")?.as_array()?.first()?.get("agentid").and_then(as_i64)
}

/// The first of `keys` that holds a string or a number, as text.
fn string_field(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match map.get(*k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The first of `keys` that holds an array (of strings or numbers) or a single value, as texts.
fn list(map: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    keys.iter()
        .find_map(|k| match map.get(*k)? {
            Value::Array(items) => Some(items.iter().filter_map(text).collect()),
            Value::Null => None,
            single => text(single).map(|s| vec![s]),
        })
        .unwrap_or_default()
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const SUITE: &str = "suitekey1";

    fn one(value: Value) -> Result<DingTalkEvent, ParseProblem> {
        let mut out = parse_events(&value.to_string(), SUITE);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn corp(raw: &str) -> CorpId {
        CorpId::parse(raw).unwrap()
    }

    fn item(biz_type: i64, corp_id: &str, data: &Value) -> Value {
        json!({"gmt_create": 1, "biz_type": biz_type, "open_cursor": 0, "subscribe_id": "s_0", "id": 1,
               "gmt_modified": 1, "biz_id": SUITE, "biz_data": data.to_string(), "corp_id": corp_id, "status": 0})
    }

    #[test]
    fn url_checks() {
        for t in ["check_url", "check_create_suite_url", "check_update_suite_url"] {
            let event = one(json!({"EventType": t, "Random": "brdkKLMW"})).unwrap();
            assert_eq!(event, DingTalkEvent::CheckUrl { event_type: t.into() });
        }
    }

    #[test]
    fn legacy_suite_ticket() {
        let event =
            one(json!({"SuiteKey": "suiteX", "EventType": "suite_ticket", "TimeStamp": 1, "SuiteTicket": "tk"}));
        assert_eq!(
            event.unwrap(),
            DingTalkEvent::SuiteTicket { suite_key: "suiteX".into(), ticket: SecretText::new("tk") }
        );
        let missing = one(json!({"SuiteKey": "suiteX", "EventType": "suite_ticket"}));
        assert!(missing.is_err());
    }

    #[test]
    fn isv_events() {
        let base = |t: &str| json!({"EventType": t, "SuiteKey": SUITE, "TimeStamp": 1, "AuthCorpId": "dingcorpa", "AuthCode": "secret"});
        assert_eq!(
            one(base("tmp_auth_code")).unwrap(),
            DingTalkEvent::TmpAuthCode { suite_key: SUITE.into(), corp_id: corp("dingcorpa") }
        );
        assert_eq!(
            one(base("change_auth")).unwrap(),
            DingTalkEvent::ChangeAuth { suite_key: SUITE.into(), corp_id: corp("dingcorpa") }
        );
        assert_eq!(
            one(base("suite_relieve")).unwrap(),
            DingTalkEvent::Relieve { suite_key: SUITE.into(), corp_id: corp("dingcorpa") }
        );
        assert!(one(json!({"EventType": "tmp_auth_code", "SuiteKey": SUITE})).is_err());
    }

    #[test]
    fn contact_events_current_format() {
        for t in CONTACT_EVENT_TYPES {
            let event = one(json!({"EventType": t, "EventTime": 1663143335567_i64, "CorpId": "dingcorpa", "BizId": "b",
                                   "eventId": "ev1", "timeStamp": "1685501863357", "userId": ["015xxxx227"], "deptId": [2, "3"]}))
            .unwrap();
            let DingTalkEvent::Contact(change) = event else { panic!("{t} is not a contact event") };
            assert_eq!(change.event_type, t);
            assert_eq!(change.corp_id, corp("dingcorpa"));
            assert_eq!(change.event_id.as_deref(), Some("ev1"));
            assert_eq!(change.userids, vec![UserId::parse("015xxxx227").unwrap()]);
            assert_eq!(change.dept_ids, vec![DeptId::new(2).unwrap(), DeptId::new(3).unwrap()]);
            assert_eq!(change.occurred_at.as_deref(), Some("1685501863357"));
        }
    }

    #[test]
    fn contact_events_older_format() {
        let event =
            one(json!({"EventType": "user_add_org", "TimeStamp": 43535463645_i64, "UserId": ["user1", "user2"], "CorpId": "dingcorpa"}))
                .unwrap();
        let DingTalkEvent::Contact(change) = event else { panic!("not a contact event") };
        assert_eq!(change.userids.len(), 2);
        assert_eq!(change.event_id, None);
        assert_eq!(change.occurred_at.as_deref(), Some("43535463645"));
        let dept = one(json!({"EventType": "org_dept_remove", "CorpId": "dingcorpa", "DeptId": [5]})).unwrap();
        let DingTalkEvent::Contact(change) = dept else { panic!("not a contact event") };
        assert_eq!(change.dept_ids, vec![DeptId::new(5).unwrap()]);
    }

    #[test]
    fn contact_events_need_a_valid_corp_and_ids() {
        assert!(one(json!({"EventType": "user_add_org", "userId": ["u"]})).is_err());
        assert!(one(json!({"EventType": "user_add_org", "CorpId": "ding corp", "userId": ["u"]})).is_err());
        assert!(one(json!({"EventType": "org_dept_create", "CorpId": "dingcorpa", "deptId": ["x"]})).is_err());
    }

    #[test]
    fn unknown_events_are_events_not_problems() {
        let event = one(json!({"EventType": "bpms_task_change", "CorpId": "dingcorpa"})).unwrap();
        assert_eq!(event, DingTalkEvent::Unknown { event_type: "bpms_task_change".into() });
    }

    #[test]
    fn non_json_and_missing_event_type_are_problems() {
        assert!(parse_events("not json", SUITE)[0].is_err());
        assert!(parse_events("[1]", SUITE)[0].is_err());
        assert!(parse_events("{\"x\":1}", SUITE)[0].is_err());
    }

    #[test]
    fn sync_http_items() {
        let auth = json!({"syncAction": "org_suite_auth", "permanent_code": "perm",
                          "auth_corp_info": {"corpid": "dingcorpb", "corp_name": "B"},
                          "auth_info": {"agent": [{"agentid": 42, "agent_name": "x"}]}, "eventId": "e"});
        let push = json!({"EventType": "SYNC_HTTP_PUSH_HIGH", "bizData": [
            item(2, "dingprovider", &json!({"syncAction": "suite_ticket", "suiteTicket": "tk2", "eventId": "e"})),
            item(4, "dingcorpb", &auth),
            item(4, "dingcorpc", &json!({"syncAction": "org_suite_relieve"})),
            item(4, "dingcorpc", &json!({"syncAction": "something_new"})),
            item(7, "dingcorpc", &json!({})),
        ]});
        let out: Vec<_> = parse_events(&push.to_string(), SUITE).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            out,
            vec![
                DingTalkEvent::SuiteTicket { suite_key: SUITE.into(), ticket: SecretText::new("tk2") },
                DingTalkEvent::OrgSuiteAuth {
                    suite_key: SUITE.into(),
                    corp_id: corp("dingcorpb"),
                    agent_id: Some(AgentId::new(42).unwrap()),
                    permanent_code: Some(SecretText::new("perm")),
                },
                DingTalkEvent::Relieve { suite_key: SUITE.into(), corp_id: corp("dingcorpc") },
                DingTalkEvent::Unknown { event_type: "biz_type 4 syncAction something_new".into() },
                DingTalkEvent::Unknown { event_type: "biz_type 7".into() },
            ]
        );
    }

    #[test]
    fn one_bad_item_does_not_lose_the_batch() {
        let push = json!({"EventType": "SYNC_HTTP_PUSH_MEDIUM", "bizData": [
            item(2, "dingprovider", &json!({"suiteTicket": "tk"})),
            {"biz_type": 2, "biz_data": "{not json"},
            item(4, "dingcorpb", &json!({"permanent_code": "secret-perm"})),
            item(4, "dingcorpb", &json!({"syncAction": "org_suite_auth"})),
        ]});
        let out = parse_events(&push.to_string(), SUITE);
        assert_eq!(out.len(), 4);
        assert!(out[0].is_ok());
        let problem = out[1].clone().unwrap_err();
        assert_eq!(problem.item, Some(1));
        let problem = out[2].clone().unwrap_err();
        assert!(!problem.to_string().contains("secret-perm"));
        assert_eq!(
            out[3].clone().unwrap(),
            DingTalkEvent::OrgSuiteAuth {
                suite_key: SUITE.into(),
                corp_id: corp("dingcorpb"),
                agent_id: None,
                permanent_code: None
            }
        );
        assert!(parse_events(&json!({"EventType": "SYNC_HTTP_PUSH_HIGH"}).to_string(), SUITE)[0].is_err());
    }
}
