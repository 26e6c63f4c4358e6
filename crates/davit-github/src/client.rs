//! The client: configuration from the runner's environment and one request path that every
//! endpoint goes through, so retries, timeouts, rate limits and error typing are decided once.
//!
//! octocrab does the HTTP (base URI, auth header, TLS). Its typed endpoint builders and its own
//! retry layer are not used: davit needs to see status and headers of every attempt to apply
//! its policy, and to look for a landed create before retrying it.

use std::future::Future;
use std::time::Duration;

use davit_core::Secret;
use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{GithubError, Permission};
use crate::retry::{RetryPolicy, Verdict, classify};

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn parse(s: &str) -> Result<Repo, GithubError> {
        let invalid = |reason: &str| GithubError::Invalid {
            what: "repository",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (owner, name) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| invalid("expected owner/name"))?;
        let ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !ok(owner) || !ok(name) {
            return Err(invalid(
                "owner and name may only hold letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Repo {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A GitHub REST client bound to one repository.
#[derive(Clone)]
pub struct GithubClient {
    crab: Octocrab,
    api_url: String,
    repo: Repo,
    policy: RetryPolicy,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// HTTP methods davit uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// One API call: what to send and which permission it needs (for the 403 message).
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub body: Option<&'a Value>,
    pub permission: Permission,
}

impl<'a> Call<'a> {
    pub fn get(path: String, permission: Permission) -> Self {
        Call {
            method: Method::Get,
            path,
            body: None,
            permission,
        }
    }
    pub fn post(path: String, body: &'a Value, permission: Permission) -> Self {
        Call {
            method: Method::Post,
            path,
            body: Some(body),
            permission,
        }
    }
    pub fn patch(path: String, body: &'a Value, permission: Permission) -> Self {
        Call {
            method: Method::Patch,
            path,
            body: Some(body),
            permission,
        }
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

enum Attempt {
    Done(String),
    Retry {
        reason: String,
        wait: Option<Duration>,
        ambiguous: bool,
    },
    Fatal(GithubError),
}

impl GithubClient {
    /// Configure from the runner's environment: `GITHUB_API_URL` (default
    /// `https://api.github.com`; GitHub Enterprise Server and tests point it elsewhere),
    /// `GITHUB_TOKEN` and `GITHUB_REPOSITORY`.
    pub fn from_env() -> Result<Self, GithubError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`GithubClient::from_env`] over any variable lookup, so it can be tested without
    /// touching the process environment.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, GithubError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let api_url = get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
        let token = get("GITHUB_TOKEN").ok_or(GithubError::MissingEnv {
            var: "GITHUB_TOKEN",
            hint: "pass the token to the step, e.g. `env: GITHUB_TOKEN: ${{ github.token }}` \
                   (or the action's `github-token` input)"
                .into(),
        })?;
        let repo = get("GITHUB_REPOSITORY").ok_or(GithubError::MissingEnv {
            var: "GITHUB_REPOSITORY",
            hint: "set GITHUB_REPOSITORY=owner/name (the runner sets it in workflows)".into(),
        })?;
        Self::new(&api_url, Secret::new(token), Repo::parse(&repo)?)
    }

    /// Must be called inside a tokio runtime (octocrab spawns its request buffer on it), and
    /// the client must be used on that runtime.
    pub fn new(api_url: &str, token: Secret<String>, repo: Repo) -> Result<Self, GithubError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GithubError::Client(
                "the GitHub client must be created inside a tokio runtime".into(),
            ));
        }
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(GithubError::Invalid {
                what: "GITHUB_API_URL",
                value: api_url,
                reason: "expected an http(s) URL".into(),
            });
        }
        let crab = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|e| GithubError::Invalid {
                what: "GITHUB_API_URL",
                value: api_url.clone(),
                reason: e.to_string(),
            })?
            .personal_token(token.expose().clone())
            .add_header(http::header::ACCEPT, "application/vnd.github+json".into())
            .build()
            .map_err(|e| GithubError::Client(e.to_string()))?;
        Ok(GithubClient {
            crab,
            api_url,
            repo,
            policy: RetryPolicy::default(),
        })
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// `/repos/{owner}/{name}` followed by `rest`.
    pub(crate) fn repo_path(&self, rest: &str) -> String {
        format!(
            "/repos/{}/{}{rest}",
            seg(&self.repo.owner),
            seg(&self.repo.name)
        )
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Reply, octocrab::Error> {
        let path = call.path.as_str();
        // Every payload leaves with known secret values masked (T46): a deployment status
        // description can carry a hook's error output.
        let body = call.body.map(|b| {
            let mut b = b.clone();
            davit_core::redact::redact_json(&mut b);
            b
        });
        let resp = match call.method {
            Method::Get => self.crab._get(path).await?,
            Method::Post => self.crab._post(path, body.as_ref()).await?,
            Method::Patch => self.crab._patch(path, body.as_ref()).await?,
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.crab.body_to_string(resp).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn attempt(&self, call: &Call<'_>) -> Attempt {
        let reply =
            match tokio::time::timeout(self.policy.request_timeout, self.send_once(call)).await {
                Err(_) => {
                    return Attempt::Retry {
                        reason: format!("no answer within {:?}", self.policy.request_timeout),
                        wait: None,
                        ambiguous: true,
                    };
                }
                // A connection error may also come after the request was written.
                Ok(Err(e)) => {
                    return Attempt::Retry {
                        reason: format!("transport error: {e}"),
                        wait: None,
                        ambiguous: true,
                    };
                }
                Ok(Ok(r)) => r,
            };
        let message = error_message(&reply.body);
        let now = chrono::Utc::now().timestamp();
        let method = call.method.as_str().to_string();
        let path = call.path.clone();
        match classify(reply.status, &reply.headers, &message, now, &self.policy) {
            Verdict::Done => Attempt::Done(reply.body),
            Verdict::Retry {
                reason,
                wait,
                ambiguous,
            } => Attempt::Retry {
                reason,
                wait,
                ambiguous,
            },
            Verdict::TooLong(wait) => Attempt::Fatal(GithubError::RateLimited {
                method,
                path,
                wait,
                max: self.policy.max_rate_limit_wait,
            }),
            Verdict::Fail => Attempt::Fatal(match reply.status.as_u16() {
                401 => GithubError::Unauthorized {
                    method,
                    path,
                    message,
                },
                403 => GithubError::PermissionDenied {
                    method,
                    path,
                    permission: call.permission,
                    message,
                },
                404 => GithubError::NotFound {
                    method,
                    path,
                    permission: call.permission,
                    message,
                },
                status => GithubError::Status {
                    method,
                    path,
                    status,
                    message,
                },
            }),
        }
    }

    /// An idempotent call (reads, updates to a fixed state) with bounded retries.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<T, GithubError> {
        self.create(call, || async { Ok(None) }).await
    }

    /// A call that creates something, with bounded retries that never duplicate it.
    ///
    /// Once an attempt has ended ambiguously (timeout, 5xx, broken connection) the create may
    /// have landed, so before every later attempt `find_existing` looks for it and, if found,
    /// its result is returned instead of creating again. If the lookup itself fails, no create
    /// is sent on that attempt: a missing record is recoverable, a duplicate is not.
    pub(crate) async fn create<T, F, Fut>(
        &self,
        call: &Call<'_>,
        find_existing: F,
    ) -> Result<T, GithubError>
    where
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>, GithubError>>,
    {
        let max = self.policy.max_attempts.max(1);
        let mut may_have_landed = false;
        let mut last = String::from("no attempt made");
        for n in 1..=max {
            if n > 1 {
                tracing::debug!(attempt = n, path = %call.path, "retrying GitHub API call");
            }
            let outcome = if may_have_landed {
                match find_existing().await {
                    Ok(Some(found)) => {
                        tracing::info!(
                            path = %call.path,
                            "an earlier attempt had landed; reusing it instead of creating a duplicate"
                        );
                        return Ok(found);
                    }
                    Ok(None) => self.attempt(call).await,
                    Err(e) => Attempt::Retry {
                        reason: format!("could not check for an earlier attempt: {e}"),
                        wait: None,
                        ambiguous: true,
                    },
                }
            } else {
                self.attempt(call).await
            };
            match outcome {
                Attempt::Done(body) => return self.decode(call, &body),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry {
                    reason,
                    wait,
                    ambiguous,
                } => {
                    may_have_landed |= ambiguous && call.method != Method::Get;
                    last = reason;
                    if n == max {
                        break;
                    }
                    let delay = wait.unwrap_or_else(|| self.policy.backoff(n + 1));
                    tracing::warn!(
                        method = call.method.as_str(),
                        path = %call.path,
                        attempt = n,
                        of = max,
                        "GitHub API call failed ({last}); retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Err(GithubError::RetriesExhausted {
            method: call.method.as_str().to_string(),
            path: call.path.clone(),
            attempts: max,
            last,
        })
    }

    fn decode<T: DeserializeOwned>(&self, call: &Call<'_>, body: &str) -> Result<T, GithubError> {
        // 204 answers have no body; callers that expect one ask for `Value`.
        let body = if body.trim().is_empty() { "null" } else { body };
        serde_json::from_str(body).map_err(|e| GithubError::Decode {
            method: call.method.as_str().to_string(),
            path: call.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Every page of a list endpoint (100 per page, at most 50 pages: a bound, not a limit
    /// davit expects to reach).
    pub(crate) async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        permission: Permission,
    ) -> Result<Vec<T>, GithubError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1..=50 {
            let items: Vec<T> = self
                .request(&Call::get(
                    format!("{path}{sep}per_page=100&page={page}"),
                    permission,
                ))
                .await?;
            let n = items.len();
            all.extend(items);
            if n < 100 {
                break;
            }
        }
        Ok(all)
    }
}

/// GitHub's `message`, or the start of a non-JSON body (a proxy's HTML error page).
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body)
        && let Some(m) = v.get("message").and_then(Value::as_str)
    {
        return m.to_string();
    }
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(120).collect()
}

/// Percent-encode one path segment (environment names may hold spaces).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode a query value.
pub(crate) fn q(s: &str) -> String {
    seg(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn from_vars_requires_token_and_repo_and_defaults_the_url() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = GithubClient::from_vars(vars(&[("GITHUB_REPOSITORY", "a/b")])).unwrap_err();
        assert!(matches!(
            e,
            GithubError::MissingEnv {
                var: "GITHUB_TOKEN",
                ..
            }
        ));
        let e = GithubClient::from_vars(vars(&[("GITHUB_TOKEN", "t")])).unwrap_err();
        assert!(matches!(
            e,
            GithubError::MissingEnv {
                var: "GITHUB_REPOSITORY",
                ..
            }
        ));
        let c =
            GithubClient::from_vars(vars(&[("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", "a/b")]))
                .unwrap();
        assert_eq!(c.api_url(), "https://api.github.com");
        let c = GithubClient::from_vars(vars(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
        ]))
        .unwrap();
        assert_eq!(c.api_url(), "https://ghe.example.com/api/v3");
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let e = GithubClient::new(
            "http://127.0.0.1:1",
            Secret::new("t".into()),
            Repo::parse("a/b").unwrap(),
        )
        .unwrap_err();
        assert!(matches!(e, GithubError::Client(_)));
    }

    #[test]
    fn repo_names_are_checked() {
        assert_eq!(Repo::parse("o/r").unwrap().to_string(), "o/r");
        for bad in ["o", "o/", "/r", "o/r/x", "o/..", "o/r?x=1", "-o /r"] {
            assert!(Repo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("prod eu/1"), "prod%20eu%2F1");
        assert_eq!(seg("production"), "production");
    }
}
