//! The Salvo HTTP API: one router per role, one `ApiError`.
