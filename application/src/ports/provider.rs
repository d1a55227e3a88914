//! Identity provider and messenger ports (implemented by each provider's client), and the
//! [`Providers`] registry that picks the provider of a login or of a tenant.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    AuthCode, Batch, CorpId, DeliveryId, Identity, LoginState, MemberDetails, MessageBody, PkceVerifier, ProviderKey,
    Recipients, SendProgress, SendResult, SkipReason, UnionId, UserId, ValidationError,
};

use super::{IdentityError, MessengerError, StoreError};

/// Sign-in with a provider and the org's member directory.
///
/// Every other provider is one more adapter
/// implementing this trait.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The URL to send the browser to (the provider's authorize page, its reference §A.1) for
    /// `state`, coming back to `redirect_uri` (the cloud's `/auth/{provider}/callback`), with
    /// `code_challenge` (PKCE S256, RFC 7636 §4.3) when the provider supports PKCE. Pure.
    fn authorize_url(&self, state: &LoginState, redirect_uri: &str, code_challenge: &str) -> String;

    /// Exchanges the authorization code for the person's identity (the provider's token
    /// endpoint, then its current-user call), sending `code_verifier` where the provider supports PKCE.
    /// The user token is used once and never cached. Errors: [`IdentityError::InvalidCode`]
    /// for a refused code; [`IdentityError::NotMember`] when the provider says the person may
    /// not use the app; `Upstream` otherwise.
    async fn exchange_code(
        &self,
        code: &AuthCode,
        code_verifier: Option<PkceVerifier>,
    ) -> Result<Identity, IdentityError>;

    /// The member's `userid` in `corp_id`, looked up by their union id.
    /// Errors: [`IdentityError::NotMember`] when the provider says the person is not a member
    /// of the tenant; `CorpNotServed` when no
    /// app is configured for the corp; `Upstream` otherwise.
    async fn find_userid(&self, corp_id: &CorpId, union_id: &UnionId) -> Result<UserId, IdentityError>;

    /// The org's details of a member (its directory's user record).
    /// Errors as [`IdentityProvider::find_userid`].
    async fn get_member(&self, corp_id: &CorpId, userid: &UserId) -> Result<MemberDetails, IdentityError>;
}

/// One identity provider a deployment serves: its key, its client, and the tenants (corps) it
/// serves. A tenant belongs to one provider.
#[derive(Clone)]
pub struct ProviderEntry {
    /// The key (route segment and stored `provider` value).
    pub key: ProviderKey,
    /// The client.
    pub idp: Arc<dyn IdentityProvider>,
    /// The tenants it serves; empty means "every tenant no other provider names" (the
    /// deployment's only provider, in tests).
    pub tenants: Vec<CorpId>,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEntry").field("key", &self.key).field("tenants", &self.tenants).finish_non_exhaustive()
    }
}

/// The identity providers a cloud serves, side by side (docs/design.md "Providers side by
/// side"): the login use cases pick one by the key in the route, the directory use cases by
/// the tenant they are asked about.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    entries: Vec<ProviderEntry>,
}

impl Providers {
    /// A registry of one provider serving every tenant.
    pub fn single(key: ProviderKey, idp: Arc<dyn IdentityProvider>) -> Self {
        Self { entries: vec![ProviderEntry { key, idp, tenants: Vec::new() }] }
    }

    /// Adds a provider (a later entry with the same key replaces nothing: the first wins).
    #[must_use]
    pub fn with(mut self, entry: ProviderEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// The provider with `key`, if served.
    pub fn get(&self, key: &ProviderKey) -> Option<&Arc<dyn IdentityProvider>> {
        self.entries.iter().find(|e| &e.key == key).map(|e| &e.idp)
    }

    /// The provider serving `tenant`: the one naming it, else one with no tenant list.
    pub fn for_tenant(&self, tenant: &CorpId) -> Option<&ProviderEntry> {
        self.entries
            .iter()
            .find(|e| e.tenants.contains(tenant))
            .or_else(|| self.entries.iter().find(|e| e.tenants.is_empty()))
    }

    /// The keys served, in registration order.
    pub fn keys(&self) -> impl Iterator<Item = &ProviderKey> {
        self.entries.iter().map(|e| &e.key)
    }
}

/// Messages to people (work notifications, bot messages): each provider's adapter implements it
/// and knows the app that serves each tenant; the cloud picks one by tenant ([`Messengers`]).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Messenger: Send + Sync {
    /// Sends `body` to one batch of recipients in `corp_id` and returns what the provider gave
    /// back for it (the adapter documents its calls and its delivery ids).
    ///
    /// `idempotency_key` names this batch of this message (the same on every attempt; the
    /// cloud's is `{client_id}/{key}/{batch index}`): a provider that deduplicates sends by a
    /// caller's key is given one derived from it, so a resend is never a second message there.
    /// Where the provider has no such key, callers record the delivery id and never resend a
    /// batch that has one. Errors: `CorpNotServed` when no app serves the tenant; `Upstream` with
    /// the provider's refusal (`Rejected`: permanent, the body or the recipients; others: try
    /// again later).
    async fn send(
        &self,
        corp_id: &CorpId,
        batch: &Batch,
        body: &MessageBody,
        idempotency_key: &str,
    ) -> Result<DeliveryId, MessengerError>;

    /// How far the provider got with a delivery.
    async fn progress(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendProgress, MessengerError>;

    /// Per-recipient outcome of a delivery.
    async fn result(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendResult, MessengerError>;

    /// Takes a delivery back, within the provider's recall window (a refusal after it is
    /// `Upstream(Rejected)`).
    async fn recall(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<(), MessengerError>;
}

/// One port per tenant: a `default` and the entries that name tenants, so a use case asks for
/// "the one serving this tenant" without knowing which provider that is (docs/design.md
/// "Providers side by side"). [`Messengers`] and [`MessageRules`] are its two uses.
pub struct ByTenant<T: ?Sized> {
    default: Arc<T>,
    by_tenant: Vec<(Vec<CorpId>, Arc<T>)>,
}

impl<T: ?Sized> Clone for ByTenant<T> {
    fn clone(&self) -> Self {
        Self { default: self.default.clone(), by_tenant: self.by_tenant.clone() }
    }
}

impl<T: ?Sized> std::fmt::Debug for ByTenant<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<&Vec<CorpId>> = self.by_tenant.iter().map(|(t, _)| t).collect();
        f.debug_struct("ByTenant").field("by_tenant", &tenants).finish_non_exhaustive()
    }
}

impl<T: ?Sized> ByTenant<T> {
    /// Routes every tenant no later entry names to `default`.
    pub fn new(default: Arc<T>) -> Self {
        Self { default, by_tenant: Vec::new() }
    }

    /// Routes `tenants` to `port` (the first entry naming a tenant wins).
    #[must_use]
    pub fn with(mut self, tenants: Vec<CorpId>, port: Arc<T>) -> Self {
        self.by_tenant.push((tenants, port));
        self
    }

    /// The port serving `tenant`.
    pub fn of(&self, tenant: &CorpId) -> &Arc<T> {
        self.by_tenant.iter().find(|(tenants, _)| tenants.contains(tenant)).map_or(&self.default, |(_, p)| p)
    }
}

/// The messengers a cloud serves, side by side: itself a [`Messenger`] that hands each call to
/// the messenger serving the call's tenant, so the relay use cases need not know which provider
/// a tenant belongs to.
pub type Messengers = ByTenant<dyn Messenger>;

#[async_trait]
impl Messenger for ByTenant<dyn Messenger> {
    /// [`Messenger::send`] of the tenant's messenger.
    async fn send(
        &self,
        corp_id: &CorpId,
        batch: &Batch,
        body: &MessageBody,
        idempotency_key: &str,
    ) -> Result<DeliveryId, MessengerError> {
        self.of(corp_id).send(corp_id, batch, body, idempotency_key).await
    }

    /// [`Messenger::progress`] of the tenant's messenger.
    async fn progress(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendProgress, MessengerError> {
        self.of(corp_id).progress(corp_id, delivery).await
    }

    /// [`Messenger::result`] of the tenant's messenger.
    async fn result(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<SendResult, MessengerError> {
        self.of(corp_id).result(corp_id, delivery).await
    }

    /// [`Messenger::recall`] of the tenant's messenger.
    async fn recall(&self, corp_id: &CorpId, delivery: &DeliveryId) -> Result<(), MessengerError> {
        self.of(corp_id).recall(corp_id, delivery).await
    }
}

/// A provider's rules for message bodies: which `msgtype`s it takes (the neutral `text`,
/// `markdown` and `link`, plus its own), their fields and its size limits, and the rules that
/// involve the recipients. Implemented in each provider's adapter; pure (no I/O), so local checks
/// a message before storing it and the cloud again before accepting it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait BodyRules: Send + Sync {
    /// Checks `body` for `recipients`. Errors name the field under `body` (or `recipients`) with
    /// the codes of `domain::MessageBody::parse`, plus `unsupported` for a `msgtype` or an
    /// addressing (departments, everyone) the provider does not take.
    fn check(&self, body: &MessageBody, recipients: &Recipients) -> Result<(), ValidationError>;
}

/// The body rules of every tenant a deployment serves: the tenant's provider's [`BodyRules`].
pub type MessageRules = ByTenant<dyn BodyRules>;

impl ByTenant<dyn BodyRules> {
    /// [`BodyRules::check`] of the provider serving `corp_id`.
    pub fn check(&self, corp_id: &CorpId, body: &MessageBody, recipients: &Recipients) -> Result<(), ValidationError> {
        self.of(corp_id).check(body, recipients)
    }
}

/// The provider's per-recipient rules under which a send **succeeds without reaching the person**
/// (e.g. a daily maximum per person, or the same content to the same person once a day; each
/// provider's adapter implements its own rules, citing its reference). The cloud screens each batch before sending and
/// reports the skipped recipients instead of letting them vanish; its own records are the count.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RecipientLimits: Send + Sync {
    /// Which of `userids` the provider would silently drop if `body` were sent to them in
    /// `corp_id` now, and why (duplicate content before the daily limit). Errors: the store's.
    async fn screen(
        &self,
        corp_id: &CorpId,
        userids: &[UserId],
        body: &MessageBody,
    ) -> Result<Vec<(UserId, SkipReason)>, StoreError>;
    /// Records that the provider accepted `body` for `userids` in `corp_id` now. Errors: the store's.
    async fn record(&self, corp_id: &CorpId, userids: &[UserId], body: &MessageBody) -> Result<(), StoreError>;
}
