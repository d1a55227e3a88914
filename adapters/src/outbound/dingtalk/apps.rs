//! Several DingTalk apps behind one [`IdentityProvider`] + [`Messenger`]: an
//! internal app and a third-party suite served by the same cloud.

use application::ports::{IdentityError, IdentityProvider, Messenger, MessengerError};
use async_trait::async_trait;
use domain::{
    AuthCode, Batch, CorpId, DeliveryId, Identity, LoginState, MemberDetails, MessageBody, PkceVerifier, SendProgress,
    SendResult, UnionId, UserId,
};

use super::DingTalkClient;

/// Routes each call to the app that serves its corp.
///
/// The first client signs people in (`authorize_url`, `exchange_code`: its
/// Client ID is the OAuth client). Every per-corp call goes to the first
/// client that serves the corp, in order — an internal app serves its one
/// corp, a suite every corp with an active authorization — and fails with
/// `CorpNotServed` only when none does. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DingTalkApps {
    login: DingTalkClient,
    others: Vec<DingTalkClient>,
}

impl DingTalkApps {
    /// `login` signs people in and is asked first; `others` follow in order.
    pub fn new(login: DingTalkClient, others: Vec<DingTalkClient>) -> Self {
        Self { login, others }
    }

    fn clients(&self) -> impl Iterator<Item = &DingTalkClient> {
        std::iter::once(&self.login).chain(&self.others)
    }
}

/// Tries `$call` on each client until one serves the corp.
macro_rules! first_serving {
    ($apps:expr, $not_served:path, $corp:expr, |$client:ident| $call:expr) => {{
        for $client in $apps.clients() {
            match $call.await {
                Err($not_served(_)) => continue,
                other => return other,
            }
        }
        Err($not_served($corp.clone()))
    }};
}

#[async_trait]
impl IdentityProvider for DingTalkApps {
    /// The login client's authorize URL (docs/dingtalk-api.md §A.1).
    fn authorize_url(&self, state: &LoginState, redirect_uri: &str, code_challenge: &str) -> String {
        self.login.authorize_url(state, redirect_uri, code_challenge)
    }

    /// Exchanges the code with the login client (docs/dingtalk-api.md §A.3, §A.4).
    async fn exchange_code(
        &self,
        code: &AuthCode,
        code_verifier: Option<PkceVerifier>,
    ) -> Result<Identity, IdentityError> {
        self.login.exchange_code(code, code_verifier).await
    }

    /// `getbyunionid` through the app serving `corp_id` (docs/dingtalk-api.md §C.1).
    async fn find_userid(&self, corp_id: &CorpId, union_id: &UnionId) -> Result<UserId, IdentityError> {
        first_serving!(self, IdentityError::CorpNotServed, corp_id, |c| c.find_userid(corp_id, union_id))
    }

    /// `v2/user/get` through the app serving `corp_id` (docs/dingtalk-api.md §C.2).
    async fn get_member(&self, corp_id: &CorpId, userid: &UserId) -> Result<MemberDetails, IdentityError> {
        first_serving!(self, IdentityError::CorpNotServed, corp_id, |c| c.get_member(corp_id, userid))
    }
}

#[async_trait]
impl Messenger for DingTalkApps {
    /// A send through the app serving `corp_id` (docs/dingtalk-api.md §D.1).
    async fn send(
        &self,
        corp_id: &CorpId,
        batch: &Batch,
        body: &MessageBody,
        idempotency_key: &str,
    ) -> Result<DeliveryId, MessengerError> {
        first_serving!(self, MessengerError::CorpNotServed, corp_id, |c| c.send(corp_id, batch, body, idempotency_key))
    }

    /// Progress through the app serving `corp_id` (docs/dingtalk-api.md §D.3).
    async fn progress(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendProgress, MessengerError> {
        first_serving!(self, MessengerError::CorpNotServed, corp_id, |c| c.progress(corp_id, delivery))
    }

    /// Result through the app serving `corp_id` (docs/dingtalk-api.md §D.4).
    async fn result(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendResult, MessengerError> {
        first_serving!(self, MessengerError::CorpNotServed, corp_id, |c| c.result(corp_id, delivery))
    }

    /// Recall through the app serving `corp_id` (docs/dingtalk-api.md §D.5).
    async fn recall(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<(), MessengerError> {
        first_serving!(self, MessengerError::CorpNotServed, corp_id, |c| c.recall(corp_id, delivery))
    }
}
