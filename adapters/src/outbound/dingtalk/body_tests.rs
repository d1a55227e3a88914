//! DingTalk's body rules (moved from the core's message tests when bodies became neutral: the
//! same bodies, the same fields and codes).

use domain::{DeptId, MessageBody, Recipients, UserId, ValidationError};
use serde_json::{Map, Value, json};

use super::*;

/// Parses (the neutral envelope) then checks by DingTalk's rules.
fn dingtalk(msg: &Value) -> Result<MessageBody, ValidationError> {
    let body = MessageBody::parse(msg)?;
    check_body(&body)?;
    Ok(body)
}

fn field_of(result: Result<MessageBody, ValidationError>) -> Option<(String, &'static str)> {
    result.err().map(|e| (e.field, e.code))
}

#[test]
fn every_type_in_its_dingtalk_shape_is_accepted() {
    let bodies = [
        json!({"msgtype":"text","text":{"content":"hello"}}),
        json!({"msgtype":"markdown","markdown":{"title":"T","text":"# hi"}}),
        json!({"msgtype":"link","link":{"messageUrl":"https://a.example","picUrl":"@lADOADmaWMzazQKA","title":"T","text":"x"}}),
        json!({"msgtype":"link","link":{"messageUrl":"dingtalk://dingtalkclient/page/link?url=x","picUrl":"@l","title":"T","text":"x"}}),
        json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","single_title":"查看详情","single_url":"https://a.example"}}),
        json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_orientation":"1","btn_json_list":[{"title":"a","action_url":"https://a.example"},{"title":"b","action_url":"dingtalk://x"}]}}),
        json!({"msgtype":"oa","oa":{"message_url":"https://a.example","head":{"bgcolor":"FFBBBBBB","text":"h"},"status_bar":{"status_value":"进行中","status_bg":"0xFFF65E5E"},"body":{"title":"t","form":[{"key":"姓名:","value":"张三"}],"rich":{"num":"15.6","unit":"元"},"content":"c","author":"a"}}}),
        json!({"msgtype":"image","image":{"media_id":"@lADOADmaWMzazQKA"}}),
        json!({"msgtype":"file","file":{"media_id":"@lAz"}}),
        json!({"msgtype":"voice","voice":{"media_id":"@lAz","duration":"10"}}),
        json!({"msgtype":"template","template":{"template_id":"tpl-1_a","data":{"message":"hi","url":"https://a.example"}}}),
        json!({"msgtype":"template","template":{"template_id":"tpl1"}}),
    ];
    for body in bodies {
        let parsed = dingtalk(&body);
        assert!(parsed.is_ok(), "{body}: {parsed:?}");
        assert_eq!(parsed.map(|b| b.as_json().clone()).ok(), Some(body));
    }
}

#[test]
fn another_providers_msgtype_is_unsupported_and_the_neutral_link_needs_a_picture_here() {
    assert_eq!(
        field_of(dingtalk(&json!({"msgtype":"post","post":{"zh_cn":{"content":[]}}}))),
        Some(("body.msgtype".into(), "unsupported"))
    );
    assert_eq!(
        field_of(dingtalk(&json!({"msgtype":"link","link":{"messageUrl":"https://a","title":"T","text":"x"}}))),
        Some(("body.link.picUrl".into(), "required"))
    );
    assert_eq!(
        field_of(dingtalk(
            &json!({"msgtype":"link","link":{"messageUrl":"myapp://x","picUrl":"@l","title":"T","text":"x"}})
        )),
        Some(("body.link.messageUrl".into(), "invalid"))
    );
}

#[test]
fn unknown_and_mismatched_keys_are_refused() {
    assert_eq!(
        field_of(dingtalk(&json!({"msgtype":"image","image":{"media_id":"@a","url":"x"}}))),
        Some(("body.image.url".into(), "unknown_field"))
    );
    assert_eq!(
        field_of(dingtalk(
            &json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"body":{"title":"t"},"extra":1}})
        )),
        Some(("body.oa.extra".into(), "unknown_field"))
    );
}

#[test]
fn template_rules_and_data_as_a_string() {
    let body = json!({"msgtype":"template","template":{"template_id":"tpl-1","data":{"message":"hi"}}});
    let parsed = dingtalk(&body).ok();
    assert_eq!(parsed.as_ref().and_then(template_of), Some(("tpl-1", r#"{"message":"hi"}"#.to_owned())));
    let bare = dingtalk(&json!({"msgtype":"template","template":{"template_id":"t"}})).ok();
    assert_eq!(bare.as_ref().and_then(template_of), Some(("t", "{}".to_owned())));
    assert_eq!(MessageBody::text("x").ok().as_ref().and_then(template_of).map(|(id, _)| id.to_owned()), None);
    let cases = [
        (json!({"template_id":""}), "body.template.template_id", "required"),
        (json!({"template_id":"a b"}), "body.template.template_id", "invalid"),
        (json!({"data":{}}), "body.template.template_id", "required"),
        (json!({"template_id":"t","data":{"n":1}}), "body.template.data.n", "invalid"),
        (json!({"template_id":"t","data":[]}), "body.template.data", "invalid"),
        (json!({"template_id":"t","extra":1}), "body.template.extra", "unknown_field"),
    ];
    for (inner, field, code) in cases {
        let result = dingtalk(&json!({"msgtype":"template","template":inner}));
        assert_eq!(field_of(result), Some((field.to_owned(), code)), "{inner}");
    }
    let many: Map<String, Value> = (0..51).map(|i| (format!("v{i}"), json!("x"))).collect();
    let result = dingtalk(&json!({"msgtype":"template","template":{"template_id":"t","data":many}}));
    assert_eq!(field_of(result), Some(("body.template.data".into(), "too_many")));
}

#[test]
fn over_2048_bytes_is_too_large() {
    let text = |content: String| dingtalk(&json!({"msgtype":"text","text":{"content":content}}));
    assert!(text("a".repeat(2000)).is_ok());
    assert_eq!(field_of(text("a".repeat(2010))), Some(("body".into(), "too_large")));
    // 700 three-byte characters = 2100 bytes although only 700 characters.
    assert_eq!(field_of(text("钉".repeat(700))), Some(("body".into(), "too_large")));
    assert_eq!(field_of(text("a".repeat(3000))), Some(("body.text.content".into(), "too_long")));
    let markdown = json!({"msgtype":"markdown","markdown":{"title":"T","text":"a".repeat(5001)}});
    assert_eq!(field_of(dingtalk(&markdown)), Some(("body.markdown.text".into(), "too_long")));
}

#[test]
fn action_card_rules() {
    let both = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","single_title":"a","single_url":"https://x","btn_json_list":[]}});
    assert_eq!(field_of(dingtalk(&both)), Some(("body.action_card".into(), "invalid")));
    let empty = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_json_list":[]}});
    assert_eq!(field_of(dingtalk(&empty)), Some(("body.action_card.btn_json_list".into(), "required")));
    let bad_url = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_json_list":[{"title":"a","action_url":"https://x"},{"title":"b","action_url":"javascript:alert(1)"}]}});
    assert_eq!(field_of(dingtalk(&bad_url)), Some(("body.action_card.btn_json_list[1].action_url".into(), "invalid")));
    let bad_orientation = json!({"msgtype":"action_card","action_card":{"title":"T","markdown":"m","btn_orientation":"2","btn_json_list":[{"title":"a","action_url":"https://x"}]}});
    assert_eq!(field_of(dingtalk(&bad_orientation)), Some(("body.action_card.btn_orientation".into(), "invalid")));
}

#[test]
fn oa_rules() {
    let bad_color = json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"red","text":"h"},"body":{"title":"t"}}});
    assert_eq!(field_of(dingtalk(&bad_color)), Some(("body.oa.head.bgcolor".into(), "invalid")));
    let rows: Vec<_> = (0..7).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
    let many = json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"body":{"form": rows}}});
    assert_eq!(field_of(dingtalk(&many)), Some(("body.oa.body.form".into(), "too_many")));
    let empty_body =
        json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"body":{}}});
    assert_eq!(field_of(dingtalk(&empty_body)), Some(("body.oa.body".into(), "required")));
}

#[test]
fn voice_duration_must_be_under_60() {
    let long = json!({"msgtype":"voice","voice":{"media_id":"@a","duration":"60"}});
    assert_eq!(field_of(dingtalk(&long)), Some(("body.voice.duration".into(), "invalid")));
}

#[test]
fn status_bar_needs_at_most_five_users() -> Result<(), ValidationError> {
    let body = dingtalk(
        &json!({"msgtype":"oa","oa":{"message_url":"https://a","head":{"bgcolor":"FFBBBBBB","text":"h"},"status_bar":{"status_value":"v","status_bg":"0xFFF65E5E"},"body":{"title":"t"}}}),
    )?;
    let users = |n: usize| (0..n).map(|i| UserId::parse(&format!("u{i}"))).collect::<Result<Vec<_>, _>>();
    let rules = DingTalkBodyRules;
    assert!(rules.check(&body, &Recipients::new(users(5)?, vec![])?).is_ok());
    assert_eq!(
        rules.check(&body, &Recipients::new(users(6)?, vec![])?).err().map(|e| e.field),
        Some("body.oa.status_bar".into())
    );
    assert!(rules.check(&body, &Recipients::new(users(1)?, vec![DeptId::new(1)?])?).is_err());
    assert!(rules.check(&body, &Recipients::everyone()).is_err());
    assert!(rules.check(&MessageBody::text("x")?, &Recipients::everyone()).is_ok());
    Ok(())
}
