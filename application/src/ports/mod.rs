//! Ports: what the use cases need from the outside world.
//!
//! | port | implemented by |
//! |---|---|
//! | [`IdentityProvider`] | each provider's HTTP client (`adapters::outbound::<provider>`), chosen through [`Providers`] |
//! | [`Messenger`] | each provider's HTTP client, chosen by tenant through [`Messengers`] |
//! | [`UserRepository`], [`SessionStore`], [`LoginAttemptStore`], [`MessageStore`], [`FeedCursorStore`] (local side) | SQLite / PostgreSQL |
//! | [`SuiteStore`], [`EventStore`], [`FeedSignal`] (cloud side, event callbacks and the contact feed) | SQLite / PostgreSQL |
//! | [`LoginIntentStore`], [`LoginResultStore`], [`RelayMessageStore`], [`QuotaStore`], [`RecipientLedgerStore`] (cloud side) | SQLite / PostgreSQL |
//! | [`BodyRules`] (local and cloud), chosen by tenant through [`MessageRules`] | each provider's message body rules (in the provider's adapter) |
//! | [`RecipientLimits`] (cloud side) | the provider's silent-drop rules over [`RecipientLedgerStore`] (in the provider's adapter) |
//! | [`GrantStore`], [`SigningKeyStore`] (local side, the OpenID Provider) | SQLite / PostgreSQL |
//! | [`CloudGateway`] | in-process (dev mode) or the relay HTTP client (local mode) |
//! | [`Clock`], [`RandomSource`] | system clock, OS CSPRNG |

mod errors;
mod events;
mod gateway;
mod oidc;
mod provider;
mod stores;
mod system;

pub use errors::{GatewayError, IdentityError, MessengerError, StoreError, UpstreamError, WaitReason};
pub use events::{
    ContactEvent, ContactFeedPage, CorpAuthorization, DirectoryChange, EventStore, FeedEntry, FeedSignal, SuiteStore,
    SuiteTicket,
};
pub use gateway::{CloudGateway, MemberKey, RelayClient, RelayReceipt, RelaySendRequest, RelayWaiting};
pub use oidc::{
    AuthorizationCode, CodeRedemption, Grant, GrantStore, RefreshRotation, RefreshToken, SignerError, SigningAlgorithm,
    SigningKey, SigningKeyStore, TokenSigner,
};
pub use provider::{
    BodyRules, ByTenant, IdentityProvider, MessageRules, Messenger, Messengers, ProviderEntry, Providers,
    RecipientLimits,
};
pub use stores::{
    Binding, BindingStore, ClaimedRelay, FeedCursorStore, ListMessages, ListUsers, LoginAttemptStore, LoginIntent,
    LoginIntentStore, LoginOutcome, LoginResultStore, MessageRecord, MessageStore, QuotaStore, QuotaUsage,
    RecipientLedgerStore, RelayMessageRecord, RelayMessageStore, Session, SessionStore, UserRepository,
};
pub use system::{Clock, DispatchTrigger, Durability, RandomSource};

#[cfg(any(test, feature = "mock"))]
pub use events::{MockEventStore, MockFeedSignal, MockSuiteStore};
#[cfg(any(test, feature = "mock"))]
pub use gateway::MockCloudGateway;
#[cfg(any(test, feature = "mock"))]
pub use oidc::{MockGrantStore, MockSigningKeyStore, MockTokenSigner};
#[cfg(any(test, feature = "mock"))]
pub use provider::{MockBodyRules, MockIdentityProvider, MockMessenger, MockRecipientLimits};
#[cfg(any(test, feature = "mock"))]
pub use stores::{
    MockBindingStore, MockFeedCursorStore, MockLoginAttemptStore, MockLoginIntentStore, MockLoginResultStore,
    MockMessageStore, MockQuotaStore, MockRecipientLedgerStore, MockRelayMessageStore, MockSessionStore,
    MockUserRepository,
};
#[cfg(any(test, feature = "mock"))]
pub use system::{MockClock, MockDispatchTrigger, MockDurability, MockRandomSource};
