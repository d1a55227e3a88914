//! IM tests of the Feishu emulator (docs/feishu-api.md §D): send, uuid dedupe, per-receiver QPS,
//! availability, recall, read receipts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::tests::env;
use super::*;

const SEND: &str = "/open-apis/im/v1/messages?receive_id_type=open_id";

fn text_body(to: &str, text: &str) -> Value {
    json!({"receive_id": to, "msg_type": "text", "content": json!({"text": text}).to_string()})
}

impl super::tests::Env {
    async fn send(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

#[tokio::test]
async fn send_dedupes_by_uuid_and_limits_each_receiver_to_5_per_second() {
    let env = env().await;
    let token = env.tenant_token().await;
    let mut body = text_body("ou_feishu_alice", "hello");
    body["uuid"] = json!("a0d69e20-1dd1-458b-k525-dfeca4015204");
    let (status, v) = env.send(&token, SEND, body.clone()).await;
    assert_eq!((status, v["code"].as_i64(), v["msg"].as_str()), (200, Some(0), Some("success")), "{v}");
    let d = &v["data"];
    let id = d["message_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("om_"));
    assert!(d["chat_id"].as_str().unwrap().starts_with("oc_"));
    assert_eq!(d["create_time"].as_str().unwrap(), env.emu.messages()[0].at_ms.to_string());
    assert_eq!(
        d["sender"],
        json!({"id": tests::APP_ID, "id_type": "app_id", "sender_type": "app", "tenant_key": "736588c9260f175d"})
    );
    assert_eq!(d["body"]["content"], "{\"text\":\"hello\"}");

    let (status, v) = env.send(&token, SEND, body).await;
    assert_eq!((status, v["data"]["message_id"].as_str()), (200, Some(id.as_str())), "same uuid, same message");
    assert_eq!(env.emu.message_count(), 1);

    // Four more make five within the second; the sixth is refused and not stored.
    for i in 0..4 {
        let (status, _) = env.send(&token, SEND, text_body("ou_feishu_alice", &format!("m{i}"))).await;
        assert_eq!(status, 200);
    }
    let (status, v) = env.send(&token, SEND, text_body("ou_feishu_alice", "sixth")).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(230020)));
    assert_eq!(env.emu.message_count(), 5);
    // Another receiver is not limited; a second later alice is again reachable (emulator clock).
    let by_user_id = "/open-apis/im/v1/messages?receive_id_type=user_id";
    assert_eq!(env.send(&token, by_user_id, text_body("fs_carol", "hi")).await.0, 200);
    env.emu.advance_clock(1);
    assert_eq!(env.send(&token, SEND, text_body("ou_feishu_alice", "later")).await.0, 200);
    let stored = env.emu.messages();
    assert_eq!(stored.len(), 7);
    assert_eq!(stored[5].receive_id_type, "user_id");
    assert_eq!(stored[5].open_id, "ou_feishu_carol");
    assert_eq!(stored[0].uuid.as_deref(), Some("a0d69e20-1dd1-458b-k525-dfeca4015204"));
}

#[tokio::test]
async fn send_validation_and_availability() {
    let env = env().await;
    let token = env.tenant_token().await;
    let (status, v) = env.send(&token, SEND, text_body("ou_feishu_bob", "resigned")).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(230013)));
    assert_eq!(env.send(&token, SEND, text_body("ou_feishu_dave", "unavailable")).await.1["code"], 230013);
    let (status, v) = env.send(&token, SEND, text_body("ou_test", "x")).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(99992351)));
    assert_eq!(
        env.send(&token, "/open-apis/im/v1/messages", text_body("ou_feishu_alice", "x")).await.1["code"],
        230001
    );
    let bad = json!({"receive_id": "ou_feishu_alice", "msg_type": "text", "content": "{not json"});
    assert_eq!(env.send(&token, SEND, bad).await.1["code"], 230001);
    let mismatch = json!({"receive_id": "ou_feishu_alice", "msg_type": "post", "content": "{\"text\":\"x\"}"});
    assert_eq!(env.send(&token, SEND, mismatch).await.1["code"], 230001);
    let post = json!({"zh_cn": {"title": "t", "content": [[{"tag": "text", "text": "x".repeat(31 * 1024)}]]}});
    let long = json!({"receive_id": "ou_feishu_alice", "msg_type": "post", "content": post.to_string()});
    assert_eq!(env.send(&token, SEND, long).await.1["code"], 230025);
    let card = json!({"receive_id": "ou_feishu_alice", "msg_type": "interactive",
        "content": json!({"schema": "2.0", "body": {"elements": []}}).to_string()});
    assert_eq!(env.send(&token, SEND, card).await.1["code"], 0);
    let (status, v) = env.send("t-unknown", SEND, text_body("ou_feishu_alice", "x")).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(99991663)));
    assert_eq!(env.emu.message_count(), 1);
}

#[tokio::test]
async fn recall_and_read_receipts() {
    let env = env().await;
    let token = env.tenant_token().await;
    let (_, v) = env.send(&token, SEND, text_body("ou_feishu_alice", "to read")).await;
    let id = v["data"]["message_id"].as_str().unwrap().to_owned();
    let read_path = format!("/open-apis/im/v1/messages/{id}/read_users?user_id_type=user_id&page_size=10");
    let (status, v) = env.get_auth(&read_path, &token).await;
    assert_eq!((status, v["data"]["items"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(v["data"]["has_more"], false);
    let res = env.http.post(env.url("/_admin/read")).json(&json!({"message_id": id})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, v) = env.get_auth(&read_path, &token).await;
    assert_eq!(v["data"]["items"][0]["user_id"], "fs_alice");
    assert_eq!(v["data"]["items"][0]["user_id_type"], "user_id");
    assert!(v["data"]["items"][0]["timestamp"].is_string());

    let delete = |id: String| {
        let req = env.http.delete(env.url(&format!("/open-apis/im/v1/messages/{id}"))).bearer_auth(&token);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = delete(id.clone()).await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(0)));
    assert!(env.emu.messages()[0].recalled);
    assert_eq!(delete(id.clone()).await.1["code"], 230110);
    assert_eq!(delete("om_unknown".to_owned()).await.1["code"], 230110);

    let (_, v) = env.send(&token, SEND, text_body("ou_feishu_alice", "old")).await;
    let old = v["data"]["message_id"].as_str().unwrap().to_owned();
    env.emu.advance_clock(DEFAULT_RECALL_WINDOW_SECS + 1);
    let token = env.tenant_token().await; // the first one expired meanwhile
    let res = env.http.delete(env.url(&format!("/open-apis/im/v1/messages/{old}"))).bearer_auth(&token).send();
    let res = res.await.unwrap();
    let (status, v) = (res.status().as_u16(), res.json::<Value>().await.unwrap());
    assert_eq!((status, v["code"].as_i64()), (400, Some(230009)));
}

#[tokio::test]
async fn batch_send_progress_read_counts_and_recall() {
    let env = env().await;
    let token = env.tenant_token().await;
    let body = json!({
        "department_ids": ["od-5b91c9affb665451a16b90b4be367efa", "od-unknown", "0"],
        "open_ids": ["ou_feishu_alice", "ou_feishu_dave", "ou_nobody"],
        "user_ids": ["fs_bob"],
        "msg_type": "text",
        "content": {"text": "batch"},
    });
    let (status, v) = env.send(&token, "/open-apis/message/v4/batch_send/", body).await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(0)), "{v}");
    let d = &v["data"];
    let id = d["message_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("bm-"));
    assert_eq!(d["invalid_open_ids"], json!(["ou_nobody"]));
    assert_eq!(d["invalid_department_ids"], json!(["od-unknown", "0"]));
    assert_eq!(d["invalid_user_ids"], json!([]));
    let batch = &env.emu.batches()[0];
    // eng department: alice, carol, erin; plus dave (unavailable) and bob (resigned).
    assert_eq!(batch.recipients.len(), 5);
    assert_eq!(batch.delivered.len(), 3);
    assert!(env.emu.mark_batch_read(&id, "ou_feishu_alice"));
    assert!(!env.emu.mark_batch_read(&id, "ou_feishu_dave"), "not delivered");

    let base = format!("/open-apis/im/v1/batch_messages/{id}");
    let (_, v) = env.get_auth(&format!("{base}/get_progress"), &token).await;
    let p = &v["data"]["batch_message_send_progress"];
    assert_eq!((p["valid_user_ids_count"].as_i64(), p["success_user_ids_count"].as_i64()), (Some(5), Some(3)));
    assert_eq!(p["read_user_ids_count"], 1);
    let (_, v) = env.get_auth(&format!("{base}/read_user"), &token).await;
    assert_eq!(v["data"]["read_user"], json!({"read_count": "1", "total_count": "3"}));
    let res = env.http.delete(env.url(&base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, v) = env.get_auth(&format!("{base}/get_progress"), &token).await;
    assert_eq!(v["data"]["batch_message_recall_progress"], json!({"recall": true, "recall_count": 3}));
    let (status, v) = env.get_auth("/open-apis/im/v1/batch_messages/bm-nope/read_user", &token).await;
    assert_eq!((status, v["code"].as_i64()), (400, Some(230030)));
    let (status, v) = env.send(&token, "/open-apis/message/v4/batch_send", json!({"msg_type": "text"})).await;
    assert_eq!((status, v["code"].as_i64()), (200, Some(10003)), "no recipients list");
    let card = json!({"open_ids": ["ou_feishu_alice"], "msg_type": "interactive", "content": {"text": "x"}});
    assert_eq!(env.send(&token, "/open-apis/message/v4/batch_send", card).await.1["code"], 10003);
}
