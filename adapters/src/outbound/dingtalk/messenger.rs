//! [`Messenger`] for [`DingTalkClient`]: work notifications (docs/dingtalk-api.md §D).

use application::ports::{Messenger, MessengerError, UpstreamError};
use async_trait::async_trait;
use domain::{Batch, CorpId, DeliveryId, DeptId, Forbidden, MessageBody, SendProgress, SendResult, UserId};
use serde_json::{Map, Value, json};

use super::DingTalkClient;
use super::client::{Corp, CorpError};
use super::wire::{AsyncSendResponse, Empty, ProgressResponse, SendResultResponse, SendResultWire, path};

impl DingTalkClient {
    /// The served corp and its agent id (docs/dingtalk-api.md §D.1).
    async fn messenger_corp(&self, corp_id: &CorpId) -> Result<(Corp, i64), MessengerError> {
        let corp = self.inner.corp(corp_id).await.map_err(|e| match e {
            CorpError::NotServed => MessengerError::CorpNotServed(corp_id.clone()),
            CorpError::Upstream(e) => MessengerError::Upstream(e),
        })?;
        let agent_id = corp.agent_id()?.get();
        Ok((corp, agent_id))
    }
}

/// `asyncsend_v2` takes at most 100 user ids and 20 department ids per call (docs/dingtalk-api.md
/// §D.1), and an app may reach at most 5000 people a minute (§D.6): the core's batches and
/// messages (`domain::recipients`) are cut within these, so every batch is one call.
const _: () = assert!(
    domain::recipients::MAX_USERS_PER_CALL <= 100
        && domain::recipients::MAX_DEPTS <= 20
        && domain::recipients::MAX_USERS <= 5000
);

/// DingTalk's `task_id` (a positive integer, docs/dingtalk-api.md §D.1) held by a delivery id
/// this client made. Errors: `Upstream(Rejected{code: "delivery_id_not_dingtalk"})` for any other
/// delivery id (one another provider made cannot be asked about here).
fn task_id(delivery: &DeliveryId) -> Result<i64, MessengerError> {
    match delivery.as_str().parse::<i64>() {
        Ok(task_id) if task_id > 0 => Ok(task_id),
        _ => Err(MessengerError::Upstream(UpstreamError::Rejected {
            code: "delivery_id_not_dingtalk".into(),
            message: format!("delivery id {delivery:?} is not a DingTalk task_id"),
        })),
    }
}

/// The `asyncsend_v2` body (docs/dingtalk-api.md §D.1): `agent_id` as a number,
/// `userid_list`/`dept_id_list` comma-joined and omitted when empty,
/// `to_all_user` only when true, `msg` as a JSON object. For a `template`
/// body, the `sendbytemplate` body instead: the same recipient fields,
/// `template_id`, and `data` as a JSON string (docs/seed.md §E6).
fn send_body(agent_id: i64, batch: &Batch, body: &MessageBody) -> Value {
    let mut map = Map::new();
    map.insert("agent_id".to_owned(), json!(agent_id));
    if !batch.user_ids().is_empty() {
        let list: Vec<&str> = batch.user_ids().iter().map(UserId::as_str).collect();
        map.insert("userid_list".to_owned(), Value::String(list.join(",")));
    }
    if !batch.dept_ids().is_empty() {
        let list: Vec<String> = batch.dept_ids().iter().map(ToString::to_string).collect();
        map.insert("dept_id_list".to_owned(), Value::String(list.join(",")));
    }
    if batch.to_all() {
        map.insert("to_all_user".to_owned(), Value::Bool(true));
    }
    match super::body::template_of(body) {
        Some((template_id, data)) => {
            map.insert("template_id".to_owned(), Value::String(template_id.to_owned()));
            map.insert("data".to_owned(), Value::String(data));
        }
        None => {
            map.insert("msg".to_owned(), body.as_json().clone());
        }
    }
    Value::Object(map)
}

/// Parses user ids DingTalk reported, skipping (and logging) any that are not valid ids.
fn user_ids(list: Vec<String>, field: &'static str) -> Vec<UserId> {
    list.into_iter()
        .filter_map(|raw| {
            let parsed = UserId::parse(&raw).ok();
            if parsed.is_none() {
                tracing::warn!(field, "getsendresult returned an invalid user id; skipped");
            }
            parsed
        })
        .collect()
}

/// Maps `send_result` (docs/dingtalk-api.md §D.4). `forbidden_list` items become
/// [`Forbidden`] (a numeric `code` is rendered as text); ids in
/// `forbidden_user_id_list` without a `forbidden_list` item become
/// `Forbidden` with code `""`.
fn send_result(wire: SendResultWire) -> SendResult {
    let mut forbidden: Vec<Forbidden> = Vec::new();
    for item in wire.forbidden_list {
        let code = match item.code {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match UserId::parse(&item.userid) {
            Ok(userid) if !forbidden.iter().any(|f| f.userid == userid) => forbidden.push(Forbidden { userid, code }),
            Ok(_) => {}
            Err(_) => tracing::warn!("getsendresult returned a forbidden_list item without a valid userid; skipped"),
        }
    }
    for userid in user_ids(wire.forbidden_user_id_list, "forbidden_user_id_list") {
        if !forbidden.iter().any(|f| f.userid == userid) {
            forbidden.push(Forbidden { userid, code: String::new() });
        }
    }
    SendResult {
        read: user_ids(wire.read_user_id_list, "read_user_id_list"),
        unread: user_ids(wire.unread_user_id_list, "unread_user_id_list"),
        failed: user_ids(wire.failed_user_id_list, "failed_user_id_list"),
        forbidden,
        invalid_users: user_ids(wire.invalid_user_id_list, "invalid_user_id_list"),
        invalid_depts: wire.invalid_dept_id_list.into_iter().filter_map(|id| DeptId::new(id).ok()).collect(),
    }
}

#[async_trait]
impl Messenger for DingTalkClient {
    /// `POST /topapi/message/corpconversation/asyncsend_v2` (docs/dingtalk-api.md §D.1), or
    /// `.../sendbytemplate` for a `template` body, with the corp's token and
    /// `agent_id` → `task_id`. Errors: `CorpNotServed` for a corp the app does
    /// not serve; `Upstream(Rejected{code: "agent_id_unknown"})` for a suite
    /// corp whose authorization carried no agent id; `Upstream` otherwise (a
    /// missing or non-positive `task_id` is `Unavailable`). DingTalk takes no idempotency key:
    /// `idempotency_key` is unused (its same-content rule, §D.6, drops a same-day repeat).
    async fn send(
        &self,
        corp_id: &CorpId,
        batch: &Batch,
        body: &MessageBody,
        _idempotency_key: &str,
    ) -> Result<DeliveryId, MessengerError> {
        // Checked before it was stored and accepted; checked again so a body that bypassed
        // those (a row stored by an older version) fails here, not at DingTalk.
        super::body::check_body(body)
            .map_err(|e| UpstreamError::Rejected { code: e.code.into(), message: e.message })?;
        let (corp, agent_id) = self.messenger_corp(corp_id).await?;
        let request = send_body(agent_id, batch, body);
        let endpoint = if super::body::template_of(body).is_some() { path::SEND_BY_TEMPLATE } else { path::ASYNC_SEND };
        let response: AsyncSendResponse = self.inner.oapi_post(&corp, endpoint, &request).await?;
        if response.task_id <= 0 {
            return Err(UpstreamError::Unavailable("asyncsend_v2 returned an invalid task_id".to_owned()).into());
        }
        DeliveryId::parse(&response.task_id.to_string())
            .map_err(|_| UpstreamError::Unavailable("asyncsend_v2 returned an invalid task_id".to_owned()).into())
    }

    /// `POST .../getsendprogress` `{agent_id, task_id}` (docs/dingtalk-api.md §D.3) →
    /// `percent` = `progress_in_percent` clamped to 0–100, `done` = `status == 2`.
    async fn progress(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendProgress, MessengerError> {
        let (corp, agent_id) = self.messenger_corp(corp_id).await?;
        let request = json!({ "agent_id": agent_id, "task_id": task_id(delivery)? });
        let response: ProgressResponse = self.inner.oapi_post(&corp, path::SEND_PROGRESS, &request).await?;
        let percent = u8::try_from(response.progress.progress_in_percent.clamp(0, 100)).unwrap_or(100);
        Ok(SendProgress { percent, done: response.progress.status == 2 })
    }

    /// `POST .../getsendresult` `{agent_id, task_id}` (docs/dingtalk-api.md §D.4); absent
    /// lists are empty; invalid ids are skipped (logged).
    async fn result(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendResult, MessengerError> {
        let (corp, agent_id) = self.messenger_corp(corp_id).await?;
        let request = json!({ "agent_id": agent_id, "task_id": task_id(delivery)? });
        let response: SendResultResponse = self.inner.oapi_post(&corp, path::SEND_RESULT, &request).await?;
        Ok(send_result(response.send_result))
    }

    /// `POST .../recall` `{agent_id, msg_task_id}` (docs/dingtalk-api.md §D.5). After 24 h
    /// DingTalk answers a permanent error (`Upstream(Rejected)`).
    async fn recall(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<(), MessengerError> {
        let (corp, agent_id) = self.messenger_corp(corp_id).await?;
        let request = json!({ "agent_id": agent_id, "msg_task_id": task_id(delivery)? });
        let _: Empty = self.inner.oapi_post(&corp, path::RECALL, &request).await?;
        Ok(())
    }
}
