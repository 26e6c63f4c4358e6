//! Getting the release's image onto the host before anything starts (T24).
//!
//! A registry that is down, rate-limited, or refusing the credentials must stop a deploy before
//! the new version starts, and must not hang it. So the pull runs before the plan, with bounded
//! retries for what can pass by itself (connection refused, timeouts, 429, 5xx) and none for what
//! cannot (unknown tag, denied, unauthorized): those fail at once with the fix. The plan then
//! finds the image present and never pulls mid-switch.

use davit_core::Failure;
use davit_exec::Executor;
use std::time::Duration;

/// How many times a transient failure is tried in all.
pub const ATTEMPTS: u32 = 3;

/// Why a `docker pull` failed, read from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// Will not pass by retrying; the hint says what to do.
    Permanent(&'static str),
    /// May pass by itself; `rate_limited` waits longer between tries.
    Transient { rate_limited: bool },
}

/// Classify docker's message. Unknown messages count as transient: a bounded retry costs
/// seconds, while giving up on a registry hiccup costs a deploy.
pub fn classify(stderr: &str) -> PullError {
    let s = stderr.to_ascii_lowercase();
    // Permanent causes first: a tag like 1.429.0 must not read as a rate limit.
    if s.contains("permission denied") && s.contains("docker daemon") {
        return PullError::Permanent(
            "the deploy user cannot use docker on the host: add it to the docker group (or use a user that can)",
        );
    }
    if s.contains("name unknown") {
        return PullError::Permanent(
            "the repository is not in the registry: check image.name in davit.toml",
        );
    }
    if s.contains("manifest unknown")
        || (s.contains("manifest for") && s.contains("not found"))
        || s.contains("no matching manifest")
    {
        return PullError::Permanent(
            "the tag is not in the registry: check the version (the image job's output) and that the push finished",
        );
    }
    if s.contains("unauthorized")
        || s.contains("denied")
        || s.contains("authentication required")
        || s.contains("no basic auth credentials")
    {
        return PullError::Permanent(
            "the registry refused the credentials on the host: run `docker login <registry>` there (or check the deploy user's ~/.docker/config.json)",
        );
    }
    if s.contains("invalid reference format") {
        return PullError::Permanent("image.name and the version must form a valid reference");
    }
    if s.contains("toomanyrequests")
        || s.contains("too many requests")
        || s.contains("status 429")
        || s.contains("rate limit")
    {
        return PullError::Transient { rate_limited: true };
    }
    PullError::Transient {
        rate_limited: false,
    }
}

/// The wait before try `n + 1` (n counts from 1).
fn backoff(n: u32, rate_limited: bool) -> Duration {
    let base = if rate_limited { 5 } else { 1 };
    Duration::from_secs(base * 2u64.pow(n - 1))
}

/// Pull `image` on the host: at most [`ATTEMPTS`] tries for transient failures, one for
/// permanent ones.
pub async fn pull(exec: &dyn Executor, image: &str) -> Result<(), Failure> {
    let cmd = crate::docker::pull(image);
    let mut last = String::new();
    for n in 1..=ATTEMPTS {
        let out = exec.run(&cmd).await.map_err(|e| {
            Failure::infra(format!("cannot run docker pull on {}: {e}", exec.host()))
        })?;
        if out.success() {
            return Ok(());
        }
        last = out.stderr.trim().lines().last().unwrap_or("").to_string();
        match classify(&out.stderr) {
            PullError::Permanent(hint) => {
                return Err(Failure::infra(format!(
                    "cannot pull {image} on {}; nothing was started: {last}",
                    exec.host()
                ))
                .with_hint(hint));
            }
            PullError::Transient { rate_limited } if n < ATTEMPTS => {
                let wait = backoff(n, rate_limited);
                tracing::warn!(
                    image,
                    attempt = n,
                    ?wait,
                    "docker pull failed: {last}; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            PullError::Transient { .. } => {}
        }
    }
    Err(Failure::infra(format!(
        "cannot pull {image} on {} after {ATTEMPTS} tries; nothing was started: {last}",
        exec.host()
    ))
    .with_hint(
        "the registry is unreachable or overloaded from the host: check it (and the host's network), then deploy again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_messages_are_sorted_into_retry_or_stop() {
        // Messages as docker 20.10 prints them.
        let refused = "Error response from daemon: Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused";
        let timeout = "Error response from daemon: Get \"https://r.example/v2/\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)";
        let unavailable =
            "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable";
        let limited =
            "Error response from daemon: toomanyrequests: You have reached your pull rate limit.";
        let unknown = "Error response from daemon: manifest for 127.0.0.1:5000/shop:v9 not found: manifest unknown: manifest unknown";
        let denied = "Error response from daemon: pull access denied for shop, repository does not exist or may require 'docker login': denied: requested access to the resource is denied";
        let unauthorized = "Error response from daemon: Head \"https://ghcr.io/v2/o/shop/manifests/v9\": unauthorized";
        for m in [refused, timeout, unavailable] {
            assert_eq!(
                classify(m),
                PullError::Transient {
                    rate_limited: false
                },
                "{m}"
            );
        }
        assert_eq!(
            classify(limited),
            PullError::Transient { rate_limited: true }
        );
        let tag_with_429 = "Error response from daemon: manifest for r.example/shop:1.429.0 not found: manifest unknown: manifest unknown";
        let no_repo = "Error response from daemon: pull access denied for 127.0.0.1:5000/nope, repository does not exist: name unknown: repository name not known to registry";
        let socket = "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock";
        assert!(matches!(classify(tag_with_429), PullError::Permanent(h) if h.contains("tag")));
        assert!(matches!(classify(no_repo), PullError::Permanent(h) if h.contains("image.name")));
        assert!(matches!(classify(socket), PullError::Permanent(h) if h.contains("docker group")));
        for m in [unknown, denied, unauthorized] {
            assert!(matches!(classify(m), PullError::Permanent(_)), "{m}");
        }
        assert!(matches!(classify(unknown), PullError::Permanent(h) if h.contains("tag")));
        assert!(matches!(classify(denied), PullError::Permanent(h) if h.contains("docker login")));
    }

    #[test]
    fn backoff_grows_and_waits_longer_when_rate_limited() {
        assert_eq!(backoff(1, false), Duration::from_secs(1));
        assert_eq!(backoff(2, false), Duration::from_secs(2));
        assert_eq!(backoff(2, true), Duration::from_secs(10));
    }
}
