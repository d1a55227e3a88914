//! Bringing one local member in line with the org, through the cloud. Shared by
//! [`super::local::RefreshUser`] (on demand) and [`super::feed::ApplyContactEvents`] (contact
//! events), so both treat a member who left the same way: kept, inactive, sessions revoked — and,
//! where the OpenID Provider runs, their grants (refresh tokens) revoked too.

use std::sync::Arc;

use domain::{CorpId, MemberProfile, User, UserId};

use crate::ports::{
    Clock, CloudGateway, GatewayError, GrantStore, MemberKey, RandomSource, SessionStore, StoreError, UserRepository,
};

/// What [`MemberSync::refresh`] did.
pub(crate) enum Synced {
    /// The org's current profile is stored (the user is created when it was not known).
    Refreshed(User),
    /// No longer a member: stored inactive, `sessions` sessions and `grants` OIDC grants revoked.
    Deactivated { user: User, sessions: u64, grants: u64 },
    /// No longer a member and not known locally: nothing to do.
    Unknown,
}

/// Why a refresh failed.
pub(crate) enum SyncError {
    /// The cloud's member look-up failed (other than `NotMember`).
    Gateway(GatewayError),
    /// Local storage failed.
    Store(StoreError),
}

impl From<StoreError> for SyncError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// Stores the org's word about a member: the current profile, or inactive with no sessions.
pub(crate) struct MemberSync {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionStore>,
    gateway: Arc<dyn CloudGateway>,
    random: Arc<dyn RandomSource>,
    clock: Arc<dyn Clock>,
    grants: Option<Arc<dyn GrantStore>>,
}

impl MemberSync {
    pub(crate) fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, sessions, gateway, random, clock, grants: None }
    }

    /// Also revokes a leaver's OIDC grants (refresh tokens and the access tokens of them).
    pub(crate) fn set_grants(&mut self, grants: Arc<dyn GrantStore>) {
        self.grants = Some(grants);
    }

    /// Reads `userid` of `corp_id` through the cloud (`known` is its local user, if any) and
    /// stores the current profile, keeping the openId a sign-in stored (the cloud's look-up has
    /// none). `NotMember` → [`MemberSync::deactivate`] a known user, [`Synced::Unknown`] otherwise.
    pub(crate) async fn refresh(
        &self,
        corp_id: &CorpId,
        userid: &UserId,
        known: Option<User>,
    ) -> Result<Synced, SyncError> {
        match self.gateway.get_member(corp_id, &MemberKey::UserId(userid.clone())).await {
            Ok(mut profile) => {
                if profile.open_id.is_none() {
                    profile.open_id = known.and_then(|user| user.profile.open_id);
                }
                Ok(Synced::Refreshed(self.users.upsert(&profile, &self.random.new_id(), self.clock.now()).await?))
            }
            Err(GatewayError::NotMember) => match known {
                Some(user) => Ok(self.deactivate(user).await?),
                None => Ok(Synced::Unknown),
            },
            Err(other) => Err(SyncError::Gateway(other)),
        }
    }

    /// Marks `user` inactive (unless it already is) and deletes all their sessions and grants.
    pub(crate) async fn deactivate(&self, user: User) -> Result<Synced, StoreError> {
        let user = if user.profile.active {
            let profile = MemberProfile { active: false, ..user.profile };
            self.users.upsert(&profile, &self.random.new_id(), self.clock.now()).await?
        } else {
            user
        };
        let sessions = self.sessions.delete_for_user(&user.id).await?;
        let grants = match &self.grants {
            Some(grants) => grants.revoke_grants_for_user(&user.id, self.clock.now()).await?,
            None => 0,
        };
        Ok(Synced::Deactivated { user, sessions, grants })
    }
}
