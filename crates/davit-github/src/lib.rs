//! davit's GitHub API client: deployment records and the reads and writes of the approval gate.
//!
//! Everything davit tells GitHub goes through [`GithubClient`]: deployments and their statuses
//! (so every release shows in the Environments view), approval issues and comments, team
//! members, environments and run reviews. It is built on octocrab, takes its base URL from
//! `GITHUB_API_URL` (GitHub Enterprise Server, and the local fake in tests) and its token from
//! `GITHUB_TOKEN`, and owns its failure handling: bounded retries with backoff on 5xx, timeouts
//! and rate limits ([`RetryPolicy`]), no duplicate records when a response is lost, and typed
//! errors that name the missing permission on a 403 ([`GithubError`]).
//!
//! Deploy commands use [`DeploymentRecorder`], whose methods cannot fail: a deploy's outcome
//! never depends on a status write.

mod client;
pub mod deployments;
pub mod error;
pub mod issues;
pub mod recorder;
pub mod retry;

pub use client::{GithubClient, Repo};
pub use deployments::{
    DavitPayload, Deployment, DeploymentId, DeploymentKind, DeploymentState, DeploymentStatus,
    NewDeployment, StatusUpdate, strip_credentials,
};
pub use error::{GithubError, Permission};
pub use issues::{CloseReason, Environment, Issue, IssueComment, RunReview, User};
pub use recorder::{DeploymentRecorder, RolledBack, run_url, run_url_from_env};
pub use retry::RetryPolicy;
