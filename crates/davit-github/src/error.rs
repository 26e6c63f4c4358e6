//! Typed GitHub API errors that tell the user which permission or setting to fix.
//!
//! A bare "403 Forbidden" from a workflow is the most common way a GitHub integration fails,
//! and the fix is always the same kind: grant one more permission to the job's token. Every
//! call therefore declares the [`Permission`] it needs, and a 403 that is not a rate limit turns
//! into [`GithubError::PermissionDenied`] naming it (T06).

use std::fmt;
use std::time::Duration;

use davit_core::{Exit, Failure};

/// A token permission, spelled the way a workflow's `permissions:` block spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    DeploymentsRead,
    DeploymentsWrite,
    IssuesRead,
    IssuesWrite,
    /// Organization members (team expansion). `GITHUB_TOKEN` can never have it.
    MembersRead,
    ActionsRead,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::DeploymentsRead => "deployments: read",
            Permission::DeploymentsWrite => "deployments: write",
            Permission::IssuesRead => "issues: read",
            Permission::IssuesWrite => "issues: write",
            Permission::MembersRead => "members: read",
            Permission::ActionsRead => "actions: read",
        })
    }
}

impl Permission {
    /// How to grant it.
    pub fn hint(self) -> String {
        match self {
            Permission::MembersRead => "team approvers need a token that can read organization \
                 members (a GitHub App token with `members: read`, or a classic PAT with \
                 `read:org`); the workflow's GITHUB_TOKEN cannot, so list users instead or pass \
                 such a token"
                .to_string(),
            p => format!("add `permissions: {{ {p} }}` to the job that runs this step"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("{var} is not set")]
    MissingEnv { var: &'static str, hint: String },

    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "GitHub API {method} {path}: 403 forbidden, the token lacks `{permission}` ({message})"
    )]
    PermissionDenied {
        method: String,
        path: String,
        permission: Permission,
        message: String,
    },

    #[error("GitHub API {method} {path}: 401 bad credentials ({message})")]
    Unauthorized {
        method: String,
        path: String,
        message: String,
    },

    #[error("GitHub API {method} {path}: 404 not found ({message})")]
    NotFound {
        method: String,
        path: String,
        permission: Permission,
        message: String,
    },

    #[error("GitHub API {method} {path}: HTTP {status} ({message})")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },

    #[error(
        "GitHub API {method} {path}: rate limited for {wait:?}, longer than the {max:?} davit waits"
    )]
    RateLimited {
        method: String,
        path: String,
        wait: Duration,
        max: Duration,
    },

    #[error("GitHub API {method} {path}: gave up after {attempts} attempts, last: {last}")]
    RetriesExhausted {
        method: String,
        path: String,
        attempts: u32,
        last: String,
    },

    #[error("GitHub API {method} {path}: unexpected response: {reason}")]
    Decode {
        method: String,
        path: String,
        reason: String,
    },

    #[error("cannot build the GitHub client: {0}")]
    Client(String),
}

impl GithubError {
    /// The `hint:` line for the user.
    pub fn hint(&self) -> Option<String> {
        match self {
            GithubError::MissingEnv { hint, .. } => Some(hint.clone()),
            GithubError::PermissionDenied { permission, .. } => Some(permission.hint()),
            GithubError::NotFound { permission, .. } => Some(format!(
                "GitHub answers 404 both for a missing object and for one the token may not see; \
                 check the name, then: {}",
                permission.hint()
            )),
            GithubError::Unauthorized { .. } => Some(
                "pass a valid token in GITHUB_TOKEN (the action's `github-token` input); it may \
                 have expired"
                    .into(),
            ),
            GithubError::RateLimited { .. } | GithubError::RetriesExhausted { .. } => Some(
                "GitHub is failing or throttling; re-run the job later (see githubstatus.com)"
                    .into(),
            ),
            GithubError::Invalid { what, .. } => Some(format!("fix the {what}")),
            _ => None,
        }
    }

    /// True when the token is missing a permission: retrying cannot help.
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            GithubError::PermissionDenied { .. } | GithubError::Unauthorized { .. }
        )
    }

    /// The exit-code view at a binary's edge: configuration problems are bad input (2), the
    /// rest is infrastructure (3).
    pub fn to_failure(&self) -> Failure {
        let exit = match self {
            GithubError::MissingEnv { .. }
            | GithubError::Invalid { .. }
            | GithubError::PermissionDenied { .. }
            | GithubError::Unauthorized { .. } => Exit::BadInput,
            _ => Exit::Infra,
        };
        Failure {
            exit,
            message: self.to_string(),
            hint: self.hint(),
        }
    }
}
