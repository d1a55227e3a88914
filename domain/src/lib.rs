//! dingbridge domain: the values the rest of the system passes around.
//!
//! Every constrained value is a newtype with a private field and a fallible
//! constructor (`parse`/`new`): a value that exists is valid. Nothing here does
//! I/O, reads a clock or draws randomness; callers pass those in.
//!
//! Protocol facts live in each provider's adapter and cite its reference under `docs/`.

pub mod digest;
pub mod error;
pub mod ids;
pub mod login;
pub mod member;
pub mod message;
pub mod provider;
pub mod recipients;
pub mod time;

pub use error::ValidationError;
pub use ids::{AgentId, CorpId, DeptId, OpenId, UnionId, UserId};
pub use login::{AuthCode, LoginAttempt, LoginFailure, LoginState, PkceVerifier, ReturnTo, SessionToken};
pub use member::{Identity, MemberDetails, MemberProfile, User};
pub use message::{BodyKind, Content, MessageBody};
pub use provider::ProviderKey;
pub use recipients::{Batch, Recipients};
pub use time::Timestamp;
pub mod delivery;
pub use delivery::{
    BatchRecord, DeliveryId, DeliveryReport, Forbidden, MessageState, RecipientOutcome, SendProgress, SendResult,
    SkipReason,
};
