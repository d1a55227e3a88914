//! The dev-mode [`CloudGateway`]: local and cloud in one process, so local's
//! requests call the cloud use cases directly, as one fixed relay client.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{CorpId, DeliveryReport, LoginState, MemberProfile, ProviderKey};

use super::cloud::{CloudError, CreateLoginIntent, FetchMember, RelayRecall, RelaySend, RelayStatus, TakeLoginResult};
use super::feed::{DEFAULT_LIMIT, FeedQuery, ReadContactFeed};
use crate::ports::{
    CloudGateway, ContactFeedPage, GatewayError, LoginOutcome, MemberKey, RelayClient, RelayReceipt, RelaySendRequest,
};

/// The cloud use cases a gateway in the same process calls.
pub struct CloudUseCases {
    /// Login intents.
    pub create_intent: CreateLoginIntent,
    /// Login results.
    pub take_result: TakeLoginResult,
    /// Accepting messages (the background sender shares it: [`super::cloud::DeliverRelayed`]).
    pub send: Arc<RelaySend>,
    /// Delivery reports.
    pub status: RelayStatus,
    /// Recall.
    pub recall: RelayRecall,
    /// Member look-up.
    pub fetch_member: FetchMember,
    /// The contact-event feed.
    pub read_feed: ReadContactFeed,
}

/// [`CloudGateway`] calling [`CloudUseCases`] in process as `client`.
pub struct InProcessGateway {
    client: RelayClient,
    cloud: CloudUseCases,
}

impl InProcessGateway {
    /// Builds the gateway.
    pub fn new(client: RelayClient, cloud: CloudUseCases) -> Self {
        Self { client, cloud }
    }
}

impl From<CloudError> for GatewayError {
    fn from(err: CloudError) -> Self {
        match err {
            CloudError::InvalidState | CloudError::NotFound => Self::NotFound,
            CloudError::Forbidden(msg) => Self::Forbidden(msg),
            CloudError::KeyReused | CloudError::UnknownProvider(_) | CloudError::Invalid(_) => {
                Self::Invalid(err.to_string())
            }
            CloudError::NotMember => Self::NotMember,
            CloudError::Unavailable(msg) => Self::Unavailable(msg),
            CloudError::Rejected(msg) => Self::Rejected(msg),
            CloudError::Store(store) => Self::Unavailable(store.to_string()),
        }
    }
}

#[async_trait]
impl CloudGateway for InProcessGateway {
    async fn start_login(
        &self,
        provider: &ProviderKey,
        state: &LoginState,
        complete_url: &str,
    ) -> Result<String, GatewayError> {
        Ok(self.cloud.create_intent.execute(&self.client, provider, state, complete_url).await?)
    }

    async fn take_login_result(&self, state: &LoginState) -> Result<LoginOutcome, GatewayError> {
        Ok(self.cloud.take_result.execute(&self.client, state).await?)
    }

    async fn send_message(&self, request: &RelaySendRequest) -> Result<RelayReceipt, GatewayError> {
        Ok(self.cloud.send.accept(&self.client, request).await?)
    }

    async fn message_status(&self, key: &str) -> Result<(RelayReceipt, DeliveryReport), GatewayError> {
        Ok(self.cloud.status.execute(&self.client, key).await?)
    }

    async fn recall_message(&self, key: &str) -> Result<RelayReceipt, GatewayError> {
        Ok(self.cloud.recall.execute(&self.client, key).await?)
    }

    async fn get_member(&self, corp_id: &CorpId, key: &MemberKey) -> Result<MemberProfile, GatewayError> {
        Ok(self.cloud.fetch_member.execute(&self.client, corp_id, key).await?)
    }

    /// The feed of the dev client's corps, [`DEFAULT_LIMIT`] events a page. `Invalid` when
    /// `after` < 0 or `wait_secs` > 30.
    async fn contact_events(&self, after: i64, wait_secs: u32) -> Result<ContactFeedPage, GatewayError> {
        let query = FeedQuery::new(after, i64::from(wait_secs), i64::from(DEFAULT_LIMIT))
            .map_err(|e| GatewayError::Invalid(e.message))?;
        Ok(self.cloud.read_feed.execute(&self.client, &query).await?)
    }
}
