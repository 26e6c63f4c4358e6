//! The gate in front of production: nobody deploys there without a yes from the right people.
//!
//! GitHub's own answer (required reviewers on an Environment) is not offered for private
//! repositories on every plan, so davit brings its own and keeps GitHub's as an option:
//! - `github-issue` ([`github_issue()`]): opens an issue describing the release and waits for
//!   approval comments from listed users and teams; works on any plan;
//! - `environment` ([`environment::environment`]): trusts GitHub's required reviewers, after checking the run
//!   really was approved for that environment;
//! - `tty` ([`terminal`]): asks at the terminal, for laptop runs; `auto` approves, but only with
//!   an explicit flag and a loud warning.
//!
//! Whichever provider answers, the result is a [`Decision`] (who, when, how, where) that
//! serializes to JSON for the release ledger and the deployment payload. The rules themselves
//! are the pure function [`evaluate::evaluate`]; every path that cannot prove an approval ends
//! denied.

pub mod cli;
pub mod environment;
pub mod evaluate;
pub mod github_issue;
pub mod policy;
pub mod terminal;

use chrono::{DateTime, Utc};
use davit_core::{Exit, Failure};
use davit_github::GithubError;
use serde::{Deserialize, Serialize};

pub use evaluate::{CommentView, Evaluation, IssueView, TeamMembers, Verdict, evaluate};
pub use github_issue::{IssueGateOptions, github_issue};
pub use policy::{Policy, TeamRef};

/// Which provider decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    GithubIssue,
    Environment,
    Tty,
    Auto,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GithubIssue => "github-issue",
            Provider::Environment => "environment",
            Provider::Tty => "tty",
            Provider::Auto => "auto",
        }
    }
}

/// What is being approved; shown to approvers and copied into the decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub version: String,
    pub environment: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub release_id: String,
    /// Commits since the live release, one per line.
    #[serde(default)]
    pub commits: String,
    /// The scan gate's verdict, as text.
    #[serde(default)]
    pub scan_result: String,
    pub requested_by: String,
    /// The run asking, for the issue.
    #[serde(default)]
    pub run_url: Option<String>,
}

/// The outcome of an approval, as recorded in the release ledger and deployment payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub approved: bool,
    pub provider: Provider,
    /// Who approved (all of them), or who denied (when a person did).
    pub by: Vec<String>,
    /// When the deciding vote was cast (or the deadline passed).
    pub at: DateTime<Utc>,
    /// Human summary, e.g. "approved by @alice, @bob" or "the approval issue was closed".
    pub reason: String,
    pub requested_by: String,
    pub version: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_url: Option<String>,
}

impl Decision {
    pub(crate) fn from_verdict(
        verdict: &Verdict,
        provider: Provider,
        release: &ReleaseInfo,
        issue_url: Option<String>,
    ) -> Decision {
        let (approved, by, at, reason) = match verdict {
            Verdict::Approved { by, at } => (
                true,
                by.clone(),
                *at,
                format!(
                    "approved by {}",
                    by.iter()
                        .map(|b| format!("@{b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Verdict::Denied { reason, by, at } => {
                (false, by.iter().cloned().collect(), *at, reason.clone())
            }
            // Never handed out as a decision; kept total so a caller bug denies.
            Verdict::Pending => (false, vec![], Utc::now(), "no decision".into()),
        };
        Decision {
            approved,
            provider,
            by,
            at,
            reason,
            requested_by: release.requested_by.clone(),
            version: release.version.clone(),
            environment: release.environment.clone(),
            issue_url,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Why the gate could not decide at all (as opposed to deciding "no").
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("{message}")]
    BadInput { message: String, hint: String },
    #[error(transparent)]
    Github(#[from] GithubError),
}

impl ApproveError {
    pub fn bad_input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApproveError::BadInput {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Exit 2 for input the user must fix, 3 (or 2 for permissions) for GitHub trouble.
    pub fn to_failure(&self) -> Failure {
        match self {
            ApproveError::BadInput { message, hint } => Failure::bad_input(message, hint),
            ApproveError::Github(e) => {
                let mut f = e.to_failure();
                if f.exit == Exit::Ok {
                    f.exit = Exit::Infra;
                }
                f
            }
        }
    }
}
