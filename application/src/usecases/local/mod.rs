//! Local-side use cases: sign-in, sessions, the user directory and messages.
//! Local reaches the providers only through the [`CloudGateway`](crate::ports::CloudGateway).

/// How long a session lasts, in seconds, unless configured otherwise (7 days).
pub const DEFAULT_SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

mod directory;
mod dispatch;
mod messages;
mod sign_in;

pub use directory::{Bindings, GetUser, ListUsersQuery, MAX_EXTERNAL_ID_CHARS, RefreshUser};
pub use dispatch::{DISPATCH_LEASE_SECS, DispatchOutbox, RETRY_BASE_MS, RETRY_MAX_MS};
pub use messages::{
    ListMessagesQuery, MessageError, MessageStatus, MessageView, RecallMessage, SendMessage, SendMessageCommand,
    waiting_error, waiting_reason,
};
pub use sign_in::{CompleteLogin, CurrentUser, LoginError, Logout, SignedIn, StartLogin};
