//! The local user directory: listing and reading users, refreshing one through the cloud, and
//! bindings to external ids.

use std::sync::Arc;

use domain::{User, ValidationError};
use tracing::{info, instrument};

use crate::ports::{
    Binding, BindingStore, Clock, CloudGateway, GatewayError, ListUsers, RandomSource, SessionStore, StoreError,
    UserRepository,
};
use crate::usecases::members::{MemberSync, SyncError, Synced};

use super::*;

/// Lists users.
pub struct ListUsersQuery {
    users: Arc<dyn UserRepository>,
}

impl ListUsersQuery {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }

    /// A page of users (`limit` clamped to 1–500).
    pub async fn execute(&self, mut query: ListUsers) -> Result<Vec<User>, MessageError> {
        query.limit = query.limit.clamp(1, 500);
        Ok(self.users.list(&query).await?)
    }
}

/// One user by local id.
pub struct GetUser {
    users: Arc<dyn UserRepository>,
}

impl GetUser {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }

    /// Errors: `NotFound`; `Store`.
    pub async fn execute(&self, id: &str) -> Result<User, MessageError> {
        self.users.find(id).await?.ok_or(MessageError::NotFound)
    }
}

/// Fetches a member's current profile through the cloud and stores it.
/// A member who left the org is kept and marked inactive.
pub struct RefreshUser {
    users: Arc<dyn UserRepository>,
    sync: MemberSync,
}

impl RefreshUser {
    /// Builds the use case.
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionStore>,
        gateway: Arc<dyn CloudGateway>,
        random: Arc<dyn RandomSource>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { sync: MemberSync::new(users.clone(), sessions, gateway, random, clock), users }
    }

    /// Also revokes the OIDC grants of a member found to have left (when the OpenID Provider runs).
    #[must_use]
    pub fn with_grants(mut self, grants: Arc<dyn crate::ports::GrantStore>) -> Self {
        self.sync.set_grants(grants);
        self
    }

    /// Re-reads the member through the cloud and stores the org's current
    /// profile. A member who left the org (`NotMember`) is stored with
    /// `active: false` and their sessions are revoked, as the event feed does
    /// for a member who left.
    ///
    /// Errors: `NotFound` (no such local user); `Unavailable` (cloud or provider); `Rejected`; `Store`.
    #[instrument(skip_all, fields(id))]
    pub async fn execute(&self, id: &str) -> Result<User, MessageError> {
        let user = self.users.find(id).await?.ok_or(MessageError::NotFound)?;
        let (corp_id, userid) = (user.profile.corp_id.clone(), user.profile.userid.clone());
        match self.sync.refresh(&corp_id, &userid, Some(user)).await {
            Ok(Synced::Refreshed(user)) => Ok(user),
            Ok(Synced::Deactivated { user, sessions, grants }) => {
                info!(user_id = %user.id, sessions, grants, "member left the org; marked inactive, sessions and grants revoked");
                Ok(user)
            }
            Ok(Synced::Unknown) => Err(MessageError::NotFound),
            Err(SyncError::Gateway(GatewayError::NotFound)) => {
                Err(MessageError::Unavailable("the cloud has no such member".into()))
            }
            Err(SyncError::Gateway(other)) => Err(other.into()),
            Err(SyncError::Store(err)) => Err(err.into()),
        }
    }
}

/// Binds a user to an account of the enterprise system, and reads it back.
pub struct Bindings {
    users: Arc<dyn UserRepository>,
    bindings: Arc<dyn BindingStore>,
    clock: Arc<dyn Clock>,
}

/// Longest external or tenant id, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

fn external_id(field: &str, raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "required", format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_EXTERNAL_ID_CHARS || value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "invalid",
            format!("{field} must be 1–{MAX_EXTERNAL_ID_CHARS} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

impl Bindings {
    /// Builds the use case.
    pub fn new(users: Arc<dyn UserRepository>, bindings: Arc<dyn BindingStore>, clock: Arc<dyn Clock>) -> Self {
        Self { users, bindings, clock }
    }

    /// Creates or replaces the binding of user `id`. Errors: `Invalid` (field named); `NotFound`;
    /// `Conflict` when another user holds that external id in that tenant; `Store`.
    pub async fn put(&self, id: &str, external: &str, tenant: Option<&str>) -> Result<Binding, MessageError> {
        let binding = Binding {
            user_id: id.to_owned(),
            external_id: external_id("external_id", external)?,
            tenant_id: tenant.map(|t| external_id("tenant_id", t)).transpose()?,
            updated_at: self.clock.now(),
        };
        self.users.find(id).await?.ok_or(MessageError::NotFound)?;
        match self.bindings.put(&binding).await {
            Ok(()) => Ok(binding),
            Err(StoreError::Conflict(_)) => Err(MessageError::Conflict(format!(
                "external_id {} is already bound to another user in this tenant",
                binding.external_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// The binding of user `id`, if any. Errors: `Store`.
    pub async fn get(&self, id: &str) -> Result<Option<Binding>, MessageError> {
        Ok(self.bindings.get(id).await?)
    }
}
