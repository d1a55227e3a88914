//! In-process checks of the OpenAPI document (`/openapi.json`) of dev and cloud mode, served
//! through `with_common` exactly as the binaries serve it: the security schemes and each
//! operation's security, the `Idempotency-Key` header, the enums and the documented statuses.
//! (`tests/fuzz/run.sh` fuzzes the running processes against the same document.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::Value;

use super::test_support::{cloud, local, oidc, relay, store};
use super::{Probes, cloud_router, dev_router};

async fn served(router: Router) -> Value {
    let mut res = TestClient::get("http://127.0.0.1/openapi.json").send(&Service::new(router)).await;
    assert_eq!(res.status_code.map(|s| s.as_u16()), Some(200));
    res.take_json().await.unwrap()
}

fn probes() -> Arc<Probes> {
    Arc::new(Probes { checks: Vec::new() })
}

fn security(doc: &Value, method: &str, path: &str) -> Value {
    doc["paths"][path][method]["security"].clone()
}

fn statuses(doc: &Value, method: &str, path: &str) -> Vec<String> {
    let responses = doc["paths"][path][method]["responses"].as_object();
    responses.unwrap_or_else(|| panic!("{method} {path} missing")).keys().cloned().collect()
}

/// The schema a (possibly `$ref`) schema object names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let parameters = doc["paths"][path][method]["parameters"].as_array();
    parameters
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[tokio::test]
async fn the_dev_document_declares_security_idempotency_keys_and_enums() {
    let (store, _dir) = store().await;
    let doc = served(dev_router(local(&store), Some(oidc(&store)), cloud(&store), None, probes())).await;

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["service_token"]["type"], "http");
    assert_eq!(schemes["service_token"]["scheme"], "bearer");
    assert_eq!(schemes["relay_client"]["scheme"], "basic");
    assert_eq!(schemes["session_cookie"]["type"], "apiKey");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "dingbridge_session");

    let bearer = serde_json::json!([{"service_token": []}]);
    let session = serde_json::json!([{"session_cookie": []}]);
    for (method, path) in [
        ("get", "/api/users"),
        ("get", "/api/users/{id}"),
        ("get", "/api/messages"),
        ("post", "/api/messages"),
        ("get", "/api/messages/{id}"),
        ("post", "/api/messages/{id}/recall"),
    ] {
        assert_eq!(security(&doc, method, path), bearer, "{method} {path}");
    }
    assert_eq!(security(&doc, "get", "/api/me"), session);
    assert_eq!(security(&doc, "post", "/api/me/messages"), session);
    assert_eq!(security(&doc, "post", "/auth/logout"), serde_json::json!([{}, {"session_cookie": []}]));
    for (method, path) in [("get", "/healthz"), ("get", "/auth/dingtalk/login"), ("post", "/dingtalk/events")] {
        assert!(security(&doc, method, path).is_null(), "{method} {path} is public");
    }

    for path in ["/api/messages", "/api/me/messages"] {
        let key = parameter(&doc, "post", path, "Idempotency-Key");
        assert_eq!(key["in"], "header", "{path}");
        assert_ne!(key["required"], true, "{path}");
        let schema = resolve(&doc, &key["schema"]);
        assert_eq!(
            (schema["type"].as_str(), &schema["minLength"], &schema["maxLength"]),
            (Some("string"), &1.into(), &128.into())
        );
        assert_eq!(schema["pattern"], r"^[\x21-\x7E]{1,128}$");
        let codes = statuses(&doc, "post", path);
        for code in ["202", "400", "409", "413", "415", "422", "500", "503"] {
            assert!(codes.contains(&code.to_owned()), "POST {path} lacks {code}: {codes:?}");
        }
        assert!(!codes.contains(&"200".to_owned()), "POST {path} never answers 200");
    }

    let states = ["accepted", "relayed", "sent", "completed", "failed", "recalled"];
    let status = resolve(&doc, &parameter(&doc, "get", "/api/messages", "status")["schema"]);
    assert_eq!(status["enum"], serde_json::json!(states));
    let view = &doc["components"]["schemas"]["adapters.inbound.http.dto.OutboxMessageView"];
    assert_eq!(resolve(&doc, &view["properties"]["state"]["allOf"][0])["enum"], serde_json::json!(states));
    let outcome = &doc["components"]["schemas"]["adapters.inbound.http.dto.RecipientView"]["properties"]["outcome"];
    let outcomes = ["read", "unread", "failed", "forbidden", "invalid_user", "pending", "skipped"];
    assert_eq!(resolve(&doc, &outcome["allOf"][0])["enum"], serde_json::json!(outcomes));

    let limit = &parameter(&doc, "get", "/api/messages", "limit")["schema"];
    assert_eq!((&limit["minimum"], &limit["maximum"]), (&1.into(), &500.into()));
    let offset = &parameter(&doc, "get", "/api/users", "offset")["schema"];
    assert_eq!(
        (&offset["format"], &offset["minimum"], &offset["maximum"]),
        (&"int32".into(), &0.into(), &2147483647.into())
    );
    let corp = resolve(&doc, &parameter(&doc, "get", "/api/users", "corp_id")["schema"]);
    assert_eq!(corp["pattern"], "^[A-Za-z0-9_-]{1,64}$");
    let since = resolve(&doc, &parameter(&doc, "get", "/api/messages", "since")["schema"]);
    assert_eq!(since["oneOf"][0]["format"], "date-time");

    let body = &doc["components"]["schemas"]["MessageBody"];
    let variants = body["oneOf"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(variants.len(), 11, "{body}");
    let names: Vec<&Value> = variants.iter().map(|v| &v["properties"]["msgtype"]["enum"][0]).collect();
    assert_eq!(names[9..], [&serde_json::json!("post"), &serde_json::json!("interactive")], "{body}");
    assert_eq!(variants[9]["properties"]["post"]["minProperties"], 1, "{body}");
    assert_eq!(variants[2]["properties"]["link"]["required"], serde_json::json!(["messageUrl", "title", "text"]));
    assert_eq!(variants[0]["properties"]["msgtype"]["enum"], serde_json::json!(["text"]), "{body}");
    assert_eq!(variants[0]["properties"]["text"]["required"], serde_json::json!(["content"]), "{body}");
    assert_eq!(variants[0]["additionalProperties"], false, "{body}");

    let event = &doc["paths"]["/dingtalk/events"]["post"];
    let body = resolve(&doc, &event["requestBody"]["content"]["application/json"]["schema"]);
    assert_eq!(body["required"], serde_json::json!(["encrypt"]));
    let reply = resolve(&doc, &event["responses"]["200"]["content"]["application/json"]["schema"]);
    let mut keys: Vec<&String> = reply["properties"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["encrypt", "msg_signature", "nonce", "timeStamp"]);
    for name in ["signature", "msg_signature", "timestamp", "nonce"] {
        assert_eq!(parameter(&doc, "post", "/dingtalk/events", name)["in"], "query");
    }
}

#[tokio::test]
async fn the_cloud_document_declares_basic_auth_and_the_rate_limit_on_every_relay_route() {
    let (store, _dir) = store().await;
    let doc = served(cloud_router(cloud(&store), relay(&store), None, probes())).await;
    let basic = serde_json::json!([{"relay_client": []}]);
    let mut relay_operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let codes: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
            assert!(codes.iter().any(|c| *c == "500"), "{method} {path} lacks 500: {codes:?}");
            if path.starts_with("/relay/v1/") {
                relay_operations += 1;
                assert_eq!(operation["security"], basic, "{method} {path}");
                for code in ["401", "429"] {
                    assert!(codes.iter().any(|c| *c == code), "{method} {path} lacks {code}: {codes:?}");
                }
            }
        }
    }
    assert_eq!(relay_operations, 7);
    let send = statuses(&doc, "post", "/relay/v1/messages");
    for code in ["413", "415", "502"] {
        assert!(send.contains(&code.to_owned()), "POST /relay/v1/messages lacks {code}: {send:?}");
    }
    let key = resolve(&doc, &parameter(&doc, "get", "/relay/v1/messages/{key}", "key")["schema"]);
    assert_eq!(key["pattern"], r"^[\x21-\x7E]{1,128}$");
    let receipt = &doc["components"]["schemas"]["adapters.relay_api.RelayReceiptDto"]["properties"]["state"];
    assert_eq!(resolve(&doc, &receipt["allOf"][0])["enum"].as_array().map(Vec::len), Some(6));
}
