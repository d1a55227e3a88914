//! The DingTalk HTTP client (API.md §A–§D): implements `IdentityProvider` and `Messenger`.
