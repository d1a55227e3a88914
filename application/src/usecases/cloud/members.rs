//! Member look-ups on the cloud, through the provider serving the tenant.

use domain::{CorpId, MemberProfile};
use tracing::instrument;

use crate::ports::{MemberKey, Providers, RelayClient};

use super::*;

/// Fetches a member's current profile from the provider serving the corp (tenant)
/// (its `find_userid` and `get_member`).
pub struct FetchMember {
    providers: Providers,
}

impl FetchMember {
    /// Builds the use case.
    pub fn new(providers: Providers) -> Self {
        Self { providers }
    }

    /// Errors: `Forbidden` (corp outside the client's list, or served by no provider);
    /// `NotMember`; `Unavailable`/`Rejected` from the provider.
    #[instrument(skip_all, fields(client = %client.id, %corp_id))]
    pub async fn execute(
        &self,
        client: &RelayClient,
        corp_id: &CorpId,
        key: &MemberKey,
    ) -> Result<MemberProfile, CloudError> {
        ensure_corp(client, corp_id)?;
        let entry = self
            .providers
            .for_tenant(corp_id)
            .ok_or_else(|| CloudError::Forbidden(format!("no identity provider serves the corp {corp_id}")))?;
        let idp = &entry.idp;
        let userid = match key {
            MemberKey::UserId(userid) => userid.clone(),
            MemberKey::UnionId(union_id) => idp.find_userid(corp_id, union_id).await?,
        };
        let details = idp.get_member(corp_id, &userid).await?;
        Ok(MemberProfile::from_details(entry.key.clone(), corp_id.clone(), details, None))
    }
}
