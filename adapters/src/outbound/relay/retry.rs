//! How one attempt can fail, which failures are worth another attempt, how long to wait, and
//! what the caller finally sees.

use std::time::Duration;

use application::ports::GatewayError;
use backon::ExponentialBuilder;

/// Delay before the first retry.
pub(super) const MIN_DELAY: Duration = Duration::from_millis(200);
/// Longest delay between attempts computed by the backoff (before jitter).
pub(super) const MAX_DELAY: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The `code` of a 502 that is DingTalk's permanent refusal, not a transient failure.
const UPSTREAM_REFUSED: &str = "upstream_refused";
/// The `code` of a 404 that means "not a member of the corp".
const NOT_MEMBER: &str = "not_member";

/// Whether a call may be sent again after it may have reached the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// The call is idempotent on the cloud: retry every transient failure.
    Idempotent,
    /// A repeat could conflict (a duplicate login state) or find nothing (a single-use result):
    /// retry only when nothing was sent (a connect error).
    ConnectOnly,
}

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// No connection could be made: nothing was sent.
    Connect(String),
    /// The attempt timed out; the request may have reached the cloud.
    Timeout(String),
    /// Another transport failure (connection reset, body cut off); the request may have reached the cloud.
    Transport(String),
    /// The cloud answered a non-2xx status.
    Status {
        /// HTTP status.
        status: u16,
        /// `ErrorBody.code`, when the body was one.
        code: Option<String>,
        /// `ErrorBody.message`, or a sentence naming the status.
        message: String,
        /// `Retry-After` in seconds, when present and numeric.
        retry_after: Option<Duration>,
    },
    /// The cloud answered 2xx with a body that is not the expected shape.
    UnexpectedBody(String),
}

impl Failure {
    /// Transient failures: retrying later may succeed (connect errors, timeouts, transport
    /// errors, 429, 502 other than `upstream_refused`, 503, 504).
    pub(super) fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Transport(_) => true,
            Self::Status { status, code, .. } => match status {
                429 | 503 | 504 => true,
                502 => code.as_deref() != Some(UPSTREAM_REFUSED),
                _ => false,
            },
            Self::UnexpectedBody(_) => false,
        }
    }

    /// What the caller sees after the last attempt.
    pub(super) fn into_gateway_error(self) -> GatewayError {
        match self {
            Self::Connect(detail) => {
                GatewayError::Unavailable(format!("the cloud relay could not be reached: {detail}"))
            }
            Self::Timeout(detail) => {
                GatewayError::Unavailable(format!("the cloud relay did not answer in time: {detail}"))
            }
            Self::Transport(detail) => {
                GatewayError::Unavailable(format!("the exchange with the cloud relay failed: {detail}"))
            }
            Self::UnexpectedBody(detail) => {
                GatewayError::Unavailable(format!("the cloud answered an unexpected body: {detail}"))
            }
            Self::Status { status, code, message, .. } => match (status, code.as_deref()) {
                (401 | 403, _) => GatewayError::Forbidden(message),
                (404, Some(NOT_MEMBER)) => GatewayError::NotMember,
                (404, _) => GatewayError::NotFound,
                (502, Some(UPSTREAM_REFUSED)) => GatewayError::Rejected(message),
                // Request timeout and throttling are the cloud's state, not the request's fault.
                (408 | 429, _) => GatewayError::Unavailable(status_detail(status, code.as_deref(), &message)),
                // 400, 409, 422 and the other client errors: the request itself is refused.
                (400..=499, _) => GatewayError::Invalid(message),
                _ => GatewayError::Unavailable(status_detail(status, code.as_deref(), &message)),
            },
        }
    }
}

fn status_detail(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) => format!("the cloud answered HTTP {status} {code}: {message}"),
        None => format!("the cloud answered HTTP {status}: {message}"),
    }
}

/// THE retry policy: whether `failure` is worth another attempt of a call that replays as `replay`.
pub(super) fn should_retry(replay: Replay, failure: &Failure) -> bool {
    match replay {
        Replay::Idempotent => failure.is_transient(),
        Replay::ConnectOnly => matches!(failure, Failure::Connect(_)),
    }
}

/// The wait before the next attempt: the backoff's (jitter included, at most [`MAX_DELAY`]), or
/// longer when the cloud asked for it with `Retry-After` (capped at [`MAX_RETRY_AFTER`]).
/// `None` (no attempts left) stays `None`.
pub(super) fn next_delay(failure: &Failure, backoff: Option<Duration>) -> Option<Duration> {
    let delay = backoff?.min(MAX_DELAY);
    match failure {
        Failure::Status { retry_after: Some(asked), .. } => Some(delay.max((*asked).min(MAX_RETRY_AFTER))),
        _ => Some(delay),
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is ignored).
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Exponential backoff with jitter from [`MIN_DELAY`] to [`MAX_DELAY`], for `max_attempts`
/// attempts in all (so `max_attempts - 1` retries).
pub(super) fn backoff(max_attempts: u32) -> ExponentialBuilder {
    let retries = usize::try_from(max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    ExponentialBuilder::new().with_jitter().with_min_delay(MIN_DELAY).with_max_delay(MAX_DELAY).with_max_times(retries)
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    fn status(status: u16, code: Option<&str>) -> Failure {
        Failure::Status { status, code: code.map(str::to_owned), message: "m".into(), retry_after: None }
    }

    #[test]
    fn idempotent_calls_retry_transient_failures_only() {
        let retried = [
            Failure::Connect("refused".into()),
            Failure::Timeout("t".into()),
            Failure::Transport("reset".into()),
            status(429, Some("rate_limited")),
            status(502, None),
            status(502, Some("bad_gateway")),
            status(503, Some("unavailable")),
            status(504, None),
        ];
        for failure in &retried {
            assert!(should_retry(Replay::Idempotent, failure), "{failure:?}");
        }
        let not_retried = [
            status(400, Some("invalid_login_state")),
            status(401, Some("unauthorized")),
            status(403, Some("forbidden")),
            status(404, Some("not_found")),
            status(404, Some("not_member")),
            status(409, Some("idempotency_key_reused")),
            status(422, Some("validation_failed")),
            status(500, Some("internal")),
            status(502, Some("upstream_refused")),
            Failure::UnexpectedBody("garbage".into()),
        ];
        for failure in &not_retried {
            assert!(!should_retry(Replay::Idempotent, failure), "{failure:?}");
        }
    }

    #[test]
    fn connect_only_calls_retry_connect_errors_only() {
        assert!(should_retry(Replay::ConnectOnly, &Failure::Connect("refused".into())));
        for failure in [
            Failure::Timeout("t".into()),
            Failure::Transport("reset".into()),
            status(503, Some("unavailable")),
            status(429, None),
            status(502, None),
        ] {
            assert!(!should_retry(Replay::ConnectOnly, &failure), "{failure:?}");
        }
    }

    #[test]
    fn retry_after_lengthens_the_delay_up_to_30_seconds() {
        let asked = |secs| Failure::Status {
            status: 429,
            code: None,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        let backoff = Some(Duration::from_millis(300));
        assert_eq!(next_delay(&asked(2), backoff), Some(Duration::from_secs(2)));
        assert_eq!(next_delay(&asked(3600), backoff), Some(MAX_RETRY_AFTER));
        assert_eq!(next_delay(&asked(0), backoff), backoff);
        assert_eq!(next_delay(&status(503, None), backoff), backoff);
        assert_eq!(next_delay(&asked(2), None), None, "no attempts left stays no attempts left");
        assert_eq!(next_delay(&status(503, None), Some(MAX_DELAY * 2)), Some(MAX_DELAY), "jitter stays under the cap");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn the_backoff_gives_max_attempts_minus_one_delays_within_bounds() {
        let delays: Vec<Duration> = backoff(4).build().collect();
        assert_eq!(delays.len(), 3);
        for delay in &delays {
            // Jitter adds up to the delay itself.
            assert!(*delay >= MIN_DELAY && *delay <= MAX_DELAY * 2, "{delay:?}");
        }
        assert_eq!(backoff(1).build().count(), 0);
        assert_eq!(backoff(0).build().count(), 0);
    }

    #[test]
    fn statuses_map_to_gateway_errors() {
        let message = |s: u16, c: &str| Failure::Status {
            status: s,
            code: Some(c.to_owned()),
            message: "why".into(),
            retry_after: None,
        };
        let cases = [
            (message(401, "unauthorized"), GatewayError::Forbidden("why".into())),
            (message(403, "forbidden"), GatewayError::Forbidden("why".into())),
            (message(404, "not_member"), GatewayError::NotMember),
            (message(404, "not_found"), GatewayError::NotFound),
            (status(404, None), GatewayError::NotFound),
            (message(400, "invalid_login_state"), GatewayError::Invalid("why".into())),
            (message(409, "idempotency_key_reused"), GatewayError::Invalid("why".into())),
            (message(422, "validation_failed"), GatewayError::Invalid("why".into())),
            (message(502, "upstream_refused"), GatewayError::Rejected("why".into())),
        ];
        for (failure, expected) in cases {
            assert_eq!(failure.into_gateway_error(), expected);
        }
        for failure in [
            message(429, "rate_limited"),
            message(500, "internal"),
            message(503, "unavailable"),
            status(502, None),
            status(504, None),
            Failure::Connect("c".into()),
            Failure::Timeout("t".into()),
            Failure::Transport("x".into()),
            Failure::UnexpectedBody("b".into()),
        ] {
            assert!(matches!(failure.clone().into_gateway_error(), GatewayError::Unavailable(_)), "{failure:?}");
        }
    }
}
