//! Classifying Feishu's answers (docs/feishu-api.md §0.2–§0.4, §A.3, §A.5, §C.1).

use application::ports::{IdentityError, UpstreamError};

/// Token codes after which the cached tenant token is dropped and the call made once more with a
/// fresh one (docs/feishu-api.md §0.3: 99991663 invalid or expired, 99991664/99991665 invalid,
/// 99991671 malformed; the official Go SDK retries on the same set).
pub(super) const TENANT_TOKEN_CODES: [i64; 4] = [99_991_663, 99_991_664, 99_991_665, 99_991_671];

/// Throttle codes (docs/feishu-api.md §0.4): 99991400 (with HTTP 429), 11232, 230020, 90217.
const THROTTLE_CODES: [i64; 4] = [99_991_400, 11_232, 230_020, 90_217];

/// Transient codes: 20050 server error, 20072 temporarily unavailable (§A.3), 2200/5000
/// internal error under load (§0.4), 40003 internal error (§C.1).
const TRANSIENT_CODES: [i64; 5] = [20_050, 20_072, 2_200, 5_000, 40_003];

/// A non-zero `code` (with its HTTP status) as an [`UpstreamError`].
pub(super) fn upstream(status: u16, code: i64, message: &str) -> UpstreamError {
    let message = format!("Feishu {code}: {}", message.chars().take(300).collect::<String>());
    if status == 429 || THROTTLE_CODES.contains(&code) {
        UpstreamError::Throttled(message)
    } else if status >= 500 || TRANSIENT_CODES.contains(&code) {
        UpstreamError::Unavailable(message)
    } else if TENANT_TOKEN_CODES.contains(&code) {
        UpstreamError::TokenRejected(message)
    } else {
        UpstreamError::Rejected { code: code.to_string(), message }
    }
}

/// The code-to-token endpoint's refusals (docs/feishu-api.md §A.3): the code itself refused
/// (20003 unknown or used, 20004 expired, 20065 used, 20049 PKCE failed, 20071 `redirect_uri`
/// mismatch, 20024 another app's code) → `InvalidCode`; the person may not use the app (20008
/// user does not exist, 20009 app not installed in their tenant, 20010 outside the app's
/// availability, 20066 user status invalid) → `NotMember`; others as [`upstream`].
pub(super) fn token_refusal(status: u16, code: i64, message: &str) -> IdentityError {
    match code {
        20_003 | 20_004 | 20_065 | 20_049 | 20_071 | 20_024 => IdentityError::InvalidCode,
        20_008 | 20_009 | 20_010 | 20_066 => IdentityError::NotMember,
        _ => IdentityError::Upstream(upstream(status, code, message)),
    }
}

/// `user_info` refusals (docs/feishu-api.md §A.5): 20021 resigned, 20022 frozen, 20023 not
/// registered → `NotMember` (the person cannot be signed in); others as [`upstream`].
pub(super) fn user_info_refusal(status: u16, code: i64, message: &str) -> IdentityError {
    match code {
        20_021..=20_023 => IdentityError::NotMember,
        _ => IdentityError::Upstream(upstream(status, code, message)),
    }
}

/// Directory refusals (docs/feishu-api.md §C.1, §0 generic codes): 41050 outside the app's
/// contact scope, 41012 invalid user id, 99992351/99992359/99992360/99992363/99992364 unknown
/// ids, 99992361 open_id of another app, 99992381 union_id of another tenant → `NotMember`.
pub(super) fn contact_refusal(status: u16, code: i64, message: &str) -> IdentityError {
    match code {
        41_050 | 41_012 | 99_992_351 | 99_992_359 | 99_992_360 | 99_992_361 | 99_992_363 | 99_992_364 | 99_992_381 => {
            IdentityError::NotMember
        }
        _ => IdentityError::Upstream(upstream(status, code, message)),
    }
}
