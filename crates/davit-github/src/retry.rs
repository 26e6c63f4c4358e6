//! When to try a GitHub call again, and how long to wait first.
//!
//! GitHub fails in a few recognisable ways: 5xx from its edge (502 is common during incidents),
//! timeouts, and rate limits, which come as 429 or as a 403 carrying `retry-after` or
//! `x-ratelimit-remaining: 0` (secondary rate limits). Those are worth a bounded number of
//! retries; every other 4xx is a decision GitHub made about the request, so retrying it only
//! delays the error. A 5xx or a timeout is also *ambiguous*: the request may have landed, which
//! matters for creates (see `GithubClient::create`).

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// Bounds on retrying. Production defaults wait seconds; tests shrink them to milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts per call, first one included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Deadline for one attempt (connect, send, full response body).
    pub request_timeout: Duration,
    /// The longest rate-limit wait davit accepts; a longer `retry-after` fails at once rather
    /// than holding a deploy job for an hour.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(90),
        }
    }
}

impl RetryPolicy {
    /// Millisecond backoffs and a short timeout, for tests against the local fake.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            request_timeout: Duration::from_millis(500),
            max_rate_limit_wait: Duration::from_secs(5),
        }
    }

    /// Wait before attempt `next` (2, 3, ...): exponential, capped, with jitter so parallel jobs
    /// hitting the same outage do not retry in lockstep.
    pub fn backoff(&self, next: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << (next.saturating_sub(2)).min(16));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// What to do with one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Done,
    /// Try again. `wait` is what the server asked for; `ambiguous` means the request may have
    /// taken effect.
    Retry {
        reason: String,
        wait: Option<Duration>,
        ambiguous: bool,
    },
    /// Rate limited for longer than the policy accepts.
    TooLong(Duration),
    Fail,
}

/// Classify a response by status and headers (the message only breaks a tie for 403s that
/// name a rate limit without the headers).
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now_epoch: i64,
    policy: &RetryPolicy,
) -> Verdict {
    if status.is_success() {
        return Verdict::Done;
    }
    let wait = server_wait(headers, now_epoch);
    if status.is_server_error() {
        return Verdict::Retry {
            reason: format!("HTTP {}", status.as_u16()),
            wait,
            ambiguous: true,
        };
    }
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (headers.contains_key("retry-after")
                || header(headers, "x-ratelimit-remaining") == Some("0")
                || message.to_ascii_lowercase().contains("rate limit")));
    if rate_limited {
        if let Some(w) = wait
            && w > policy.max_rate_limit_wait
        {
            return Verdict::TooLong(w);
        }
        // GitHub's guidance for a secondary limit without `retry-after` is to wait at least a
        // minute; the exponential backoff (capped by the policy) is the bounded version of that.
        return Verdict::Retry {
            reason: format!("rate limited (HTTP {})", status.as_u16()),
            wait,
            ambiguous: false,
        };
    }
    Verdict::Fail
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `retry-after` (seconds), else the primary limit's reset time when the budget is spent.
fn server_wait(headers: &HeaderMap, now_epoch: i64) -> Option<Duration> {
    if let Some(secs) = header(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header(headers, "x-ratelimit-remaining") == Some("0")
        && let Some(reset) =
            header(headers, "x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok())
    {
        return Some(Duration::from_secs(
            reset.saturating_sub(now_epoch).max(1) as u64
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    fn c(status: u16, headers: &[(&'static str, &str)], msg: &str) -> Verdict {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &h(headers),
            msg,
            1_000,
            &RetryPolicy::default(),
        )
    }

    #[test]
    fn server_errors_retry_and_may_have_landed() {
        assert!(matches!(
            c(502, &[], ""),
            Verdict::Retry {
                ambiguous: true,
                wait: None,
                ..
            }
        ));
        assert!(matches!(c(503, &[], ""), Verdict::Retry { .. }));
    }

    #[test]
    fn rate_limits_retry_with_the_servers_wait() {
        assert_eq!(
            c(403, &[("retry-after", "7")], "secondary rate limit"),
            Verdict::Retry {
                reason: "rate limited (HTTP 403)".into(),
                wait: Some(Duration::from_secs(7)),
                ambiguous: false
            }
        );
        assert_eq!(
            c(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030")
                ],
                ""
            ),
            Verdict::Retry {
                reason: "rate limited (HTTP 403)".into(),
                wait: Some(Duration::from_secs(30)),
                ambiguous: false
            }
        );
        assert!(matches!(c(429, &[], ""), Verdict::Retry { wait: None, .. }));
        assert!(matches!(
            c(403, &[], "You have exceeded a secondary rate limit"),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            c(429, &[("retry-after", "3600")], ""),
            Verdict::TooLong(Duration::from_secs(3600))
        );
    }

    #[test]
    fn other_client_errors_never_retry() {
        for s in [400, 401, 404, 409, 422] {
            assert_eq!(c(s, &[], ""), Verdict::Fail, "{s}");
        }
        assert_eq!(
            c(403, &[], "Resource not accessible by integration"),
            Verdict::Fail
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        for _ in 0..20 {
            let b2 = p.backoff(2);
            assert!(b2 >= Duration::from_millis(50) && b2 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(100) && b3 <= Duration::from_millis(200));
            assert!(p.backoff(30) <= Duration::from_millis(300));
        }
    }
}
