//! [`Messenger`] for [`FeishuClient`]: bot messages to people (docs/feishu-api.md §D).
//!
//! - **Send** (§D.1): one `POST /open-apis/im/v1/messages?receive_id_type=user_id` per recipient,
//!   each with a `uuid` derived from the caller's idempotency key and the recipient, so a batch
//!   sent again (after a timeout, a crash, a throttle) is at most one message per person — Feishu
//!   keeps at most one success per `uuid` for an hour (§D.1). Batch send (§D.3) is not used: it
//!   takes no `uuid`.
//! - **Pacing**: every send passes the call governor twice — the API lane (Feishu's 50/s per app,
//!   §0.4) and a lane per recipient at [`PER_USER_INTERVAL`] (Feishu's 5 messages a second to one
//!   person, §D.1) — so the limits are respected by pacing rather than learnt from refusals.
//! - **Bodies** ([`render`]): the neutral `text`, `markdown`, `link` become Feishu `text` /
//!   `post`; Feishu's own `post` and `interactive` pass through (§D.2); any other is refused
//!   before any call (and was refused before it was stored, by [`super::FeishuBodyRules`]).
//! - **Delivery id**: the recipients' outcomes, `userid=om_…` for a message sent and
//!   `userid!code` for a person Feishu refused (§D.1 codes 230013, 230029, 230053, 99992351 …),
//!   comma-joined. Progress is done at once (the API is synchronous); results ask
//!   `read_users` (§D.6) per message; recall deletes each message (§D.5).

use std::time::Duration;

use application::ports::{Messenger, MessengerError, UpstreamError};
use async_trait::async_trait;
use domain::{Batch, CorpId, DeliveryId, Forbidden, MessageBody, SendProgress, SendResult, UserId};
use reqwest::header::AUTHORIZATION;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::FeishuClient;
use super::body::{Rendered, render};
use super::config::join;
use super::errors::upstream;
use super::wire::{Envelope, ReadUsersData, SentMessage};

/// Spacing of messages to one person: 250 ms, i.e. 4 a second, under Feishu's 5 QPS per
/// recipient (docs/feishu-api.md §D.1) with room for jitter.
pub const PER_USER_INTERVAL: Duration = Duration::from_millis(250);

const SEND: &str = "im/v1/messages";
const READ_USERS: &str = "im/v1/messages/read_users";
const RECALL: &str = "im/v1/messages/recall";

/// Codes of §D.1 that refuse one recipient, not the message: 230013 outside the bot's
/// availability (also resigned people), 230029 resigned, 230053 stopped the bot's messages,
/// 230035 no permission to message them, 230038 cross-tenant, 230034 / 99992351 not a valid id.
const RECIPIENT_CODES: [i64; 7] = [230_013, 230_029, 230_053, 230_035, 230_038, 230_034, 99_992_351];
/// Of [`RECIPIENT_CODES`], the ones that say the id is unknown (reported as invalid users).
const INVALID_ID_CODES: [i64; 2] = [230_034, 99_992_351];

/// The `uuid` of the message to `userid` for the batch named `idempotency_key`: the first 16
/// bytes of SHA-256 over both, written as a hyphenated UUID (36 characters; docs/feishu-api.md
/// §D.1 allows 50).
pub fn message_uuid(idempotency_key: &str, userid: &UserId) -> String {
    let digest = Sha256::digest(format!("{idempotency_key}\n{userid}").as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// One recipient's outcome inside a delivery id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Sent: the `om_…` message id.
    Sent(String),
    /// Refused for this person with Feishu's code.
    Refused(i64),
}

/// Encodes the outcomes as a delivery id (`userid=om_…` / `userid!code`, comma-joined).
fn encode(outcomes: &[(UserId, Outcome)]) -> Result<DeliveryId, UpstreamError> {
    let text = outcomes
        .iter()
        .map(|(userid, outcome)| match outcome {
            Outcome::Sent(message_id) => format!("{userid}={message_id}"),
            Outcome::Refused(code) => format!("{userid}!{code}"),
        })
        .collect::<Vec<_>>()
        .join(",");
    DeliveryId::parse(&text).map_err(|e| UpstreamError::Unavailable(format!("Feishu delivery id: {}", e.message)))
}

/// Reads a delivery id [`encode`] made. Errors: `Rejected{code: "delivery_id_not_feishu"}`.
fn decode(delivery: &DeliveryId) -> Result<Vec<(UserId, Outcome)>, MessengerError> {
    let not_ours = || {
        MessengerError::Upstream(UpstreamError::Rejected {
            code: "delivery_id_not_feishu".into(),
            message: format!("delivery id {:?} was not made by the Feishu client", delivery.as_str()),
        })
    };
    delivery
        .as_str()
        .split(',')
        .map(|entry| {
            if let Some((userid, message_id)) = entry.rsplit_once('=')
                && message_id.starts_with("om_")
            {
                Ok((UserId::parse(userid).map_err(|_| not_ours())?, Outcome::Sent(message_id.to_owned())))
            } else if let Some((userid, code)) = entry.rsplit_once('!') {
                let code = code.parse().map_err(|_| not_ours())?;
                Ok((UserId::parse(userid).map_err(|_| not_ours())?, Outcome::Refused(code)))
            } else {
                Err(not_ours())
            }
        })
        .collect()
}

impl FeishuClient {
    fn serves_messages(&self, tenant: &CorpId) -> Result<(), MessengerError> {
        if self.inner.config.tenant_keys.contains(tenant) {
            Ok(())
        } else {
            Err(MessengerError::CorpNotServed(tenant.clone()))
        }
    }

    /// Waits for the governor's slots: the API lane, then the recipient's lane when given.
    /// Errors: `Throttled` when a lane's queue is longer than the governor's `max_wait`.
    async fn pace(&self, api: &'static str, recipient: Option<&UserId>) -> Result<(), UpstreamError> {
        let config = &self.inner.config;
        let app = format!("feishu:{}", config.app_id);
        let refused = |r: crate::outbound::governor::Refusal| {
            UpstreamError::Throttled(format!("Feishu {api}: held back by the call governor ({})", r.reason()))
        };
        config.governor.admit(&app, api).await.map_err(refused)?;
        if let Some(userid) = recipient {
            config.governor.admit_every(&app, &format!("{api}@{userid}"), PER_USER_INTERVAL).await.map_err(refused)?;
        }
        Ok(())
    }

    /// One §D.1 send to `userid`. `Ok(Outcome::Refused)` for a recipient code; `Err` for
    /// anything that refuses the message or should be tried again.
    async fn send_one(&self, userid: &UserId, rendered: &Rendered, uuid: String) -> Result<Outcome, UpstreamError> {
        self.pace(SEND, Some(userid)).await?;
        let inner = &self.inner;
        let url = join(&inner.config.open_base, "/open-apis/im/v1/messages");
        let body = json!({
            "receive_id": userid.as_str(),
            "msg_type": rendered.msg_type,
            "content": rendered.content,
            "uuid": uuid,
        });
        let answer = inner
            .with_tenant_token(SEND, |token| {
                inner
                    .http
                    .post(&url)
                    .query(&[("receive_id_type", "user_id")])
                    .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
                    .json(&body)
            })
            .await?;
        match answer.json::<Envelope<SentMessage>>(SEND)? {
            Envelope { code: 0, data: Some(SentMessage { message_id: Some(id) }), .. } if id.starts_with("om_") => {
                Ok(Outcome::Sent(id))
            }
            Envelope { code: 0, .. } => {
                Err(UpstreamError::Unavailable(format!("{SEND} answered code 0 without om_ id")))
            }
            Envelope { code, .. } if RECIPIENT_CODES.contains(&code) => Ok(Outcome::Refused(code)),
            Envelope { code, msg, .. } => Err(upstream(answer.status, code, &msg)),
        }
    }

    /// Whether `userid` has read `message_id` (§D.6, `user_id_type=user_id`, first page).
    async fn has_read(&self, message_id: &str, userid: &UserId) -> Result<bool, UpstreamError> {
        self.pace(READ_USERS, None).await?;
        let inner = &self.inner;
        let url = join(&inner.config.open_base, &format!("/open-apis/im/v1/messages/{message_id}/read_users"));
        let answer = inner
            .with_tenant_token(READ_USERS, |token| {
                inner
                    .http
                    .get(&url)
                    .query(&[("user_id_type", "user_id"), ("page_size", "100")])
                    .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            })
            .await?;
        match answer.json::<Envelope<ReadUsersData>>(READ_USERS)? {
            Envelope { code: 0, data, .. } => {
                Ok(data.is_some_and(|d| d.items.iter().any(|i| i.user_id.as_deref() == Some(userid.as_str()))))
            }
            Envelope { code, msg, .. } => Err(upstream(answer.status, code, &msg)),
        }
    }
}

#[async_trait]
impl Messenger for FeishuClient {
    /// One `im/v1/messages` call per user id of the batch (docs/feishu-api.md §D.1), paced per
    /// app and per person, each with `uuid` = [`message_uuid`]`(idempotency_key, userid)`.
    /// Errors: `CorpNotServed` for a tenant outside `tenant_keys`; `Rejected` for departments
    /// or "everyone" (`recipients_unsupported`: Feishu messages go to named people here), a body
    /// [`render`] refuses, or a message-level refusal (230001 invalid, 230025 too long, 230022
    /// sensitive …); `Throttled` / `Unavailable` for a call to try again — the messages already
    /// sent are not sent twice then, their `uuid`s are the same.
    async fn send(
        &self,
        corp_id: &CorpId,
        batch: &Batch,
        body: &MessageBody,
        idempotency_key: &str,
    ) -> Result<DeliveryId, MessengerError> {
        self.serves_messages(corp_id)?;
        if !batch.dept_ids().is_empty() || batch.to_all() {
            return Err(MessengerError::Upstream(UpstreamError::Rejected {
                code: "recipients_unsupported".into(),
                message: "Feishu messages go to named people (userid_list); departments and everyone are not sent"
                    .into(),
            }));
        }
        let rendered = render(body).map_err(|e| UpstreamError::Rejected { code: e.code.into(), message: e.message })?;
        let mut outcomes = Vec::with_capacity(batch.user_ids().len());
        for userid in batch.user_ids() {
            let outcome = self.send_one(userid, &rendered, message_uuid(idempotency_key, userid)).await?;
            outcomes.push((userid.clone(), outcome));
        }
        Ok(encode(&outcomes)?)
    }

    /// Always done (100 %): `im/v1/messages` answers once the message exists (docs/feishu-api.md
    /// §D.1). Errors: `CorpNotServed`; `Rejected{delivery_id_not_feishu}` for another client's id.
    async fn progress(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendProgress, MessengerError> {
        self.serves_messages(corp_id)?;
        decode(delivery)?;
        Ok(SendProgress { percent: 100, done: true })
    }

    /// Per recipient: sent messages are `read` or `unread` by `read_users` (docs/feishu-api.md
    /// §D.6); refused ones are `invalid_users` (unknown id) or `forbidden` with Feishu's code.
    /// Errors as [`Messenger::progress`], plus `Upstream` for a failed `read_users` call.
    async fn result(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendResult, MessengerError> {
        self.serves_messages(corp_id)?;
        let mut result = SendResult::default();
        for (userid, outcome) in decode(delivery)? {
            match outcome {
                Outcome::Sent(message_id) => {
                    if self.has_read(&message_id, &userid).await? {
                        result.read.push(userid);
                    } else {
                        result.unread.push(userid);
                    }
                }
                Outcome::Refused(code) if INVALID_ID_CODES.contains(&code) => result.invalid_users.push(userid),
                Outcome::Refused(code) => result.forbidden.push(Forbidden { userid, code: code.to_string() }),
            }
        }
        Ok(result)
    }

    /// `DELETE /open-apis/im/v1/messages/:message_id` for each message sent (docs/feishu-api.md
    /// §D.5); one already deleted (230110) counts as recalled. Errors: `Rejected` with 230009
    /// when the tenant's recall window has passed; others as [`Messenger::result`].
    async fn recall(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<(), MessengerError> {
        self.serves_messages(corp_id)?;
        let inner = &self.inner;
        for (_, outcome) in decode(delivery)? {
            let Outcome::Sent(message_id) = outcome else { continue };
            self.pace(RECALL, None).await?;
            let url = join(&inner.config.open_base, &format!("/open-apis/im/v1/messages/{message_id}"));
            let answer = inner
                .with_tenant_token(RECALL, |token| {
                    inner.http.delete(&url).header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
                })
                .await?;
            match answer.json::<Envelope<Value>>(RECALL)? {
                Envelope { code: 0 | 230_110, .. } => {}
                Envelope { code, msg, .. } => return Err(upstream(answer.status, code, &msg).into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(raw: &str) -> UserId {
        UserId::parse(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn uuids_are_stable_per_batch_and_person_and_fit_feishus_50_characters() {
        let a = message_uuid("c/k/0", &uid("u1"));
        assert_eq!(a, message_uuid("c/k/0", &uid("u1")));
        assert_ne!(a, message_uuid("c/k/0", &uid("u2")));
        assert_ne!(a, message_uuid("c/k/1", &uid("u1")));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn delivery_ids_round_trip_and_another_providers_are_refused() {
        let outcomes = vec![(uid("u1"), Outcome::Sent("om_abc".into())), (uid("u2"), Outcome::Refused(230_013))];
        let id = encode(&outcomes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.as_str(), "u1=om_abc,u2!230013");
        assert_eq!(decode(&id).ok(), Some(outcomes));
        let dingtalk = DeliveryId::parse("256271667526").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            decode(&dingtalk),
            Err(MessengerError::Upstream(UpstreamError::Rejected { code, .. })) if code == "delivery_id_not_feishu"
        ));
    }
}
