//! Deployment records: what makes every davit release show up in GitHub's Environments view.
//!
//! A deployment is created per staging or production rollout (and per rollback, for the
//! restored release) and its status moves `in_progress` -> `success` / `failure` / `inactive`.
//! The payload carries davit's own facts (release id, image digest, strategy, approval) under a
//! `davit` key and is built only from those fields, so nothing else (and no secret) can ride
//! along. Creating a deployment is not idempotent, so every create carries a unique key that a
//! retry uses to find a create whose response was lost (T34).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Call, GithubClient, q};
use crate::error::{GithubError, Permission};

/// A GitHub deployment id. Serializable so it can be kept in the release ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub u64);

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why this deployment exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    #[default]
    Deploy,
    /// The restored release after a rollback.
    Rollback,
}

/// What davit records about a rollout. Field by field, so the payload is exactly this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewDeployment {
    /// `staging`, `production`, ...
    pub environment: String,
    /// The branch or tag the release came from (shown in the payload and description).
    pub git_ref: String,
    /// The commit in the image. GitHub's `ref` is set to it, so the record points at exactly
    /// what runs even if the branch has moved since the build.
    pub sha: String,
    /// The davit release id from the ledger.
    pub release_id: String,
    /// Image reference; any `user:password@` is stripped before it is sent.
    pub image: String,
    pub digest: String,
    /// `compose`, `blue-green`, `swarm`, `kubernetes`, ...
    pub strategy: String,
    pub kind: DeploymentKind,
    /// For a rollback: the deployment that was rolled back.
    pub rollback_of: Option<DeploymentId>,
    /// The approval decision (davit-approve's `Decision` as JSON), for production.
    pub approval: Option<Value>,
    /// Identifies this create across retries and job re-runs. Defaults to a fresh random key;
    /// pass something stable (e.g. `{run_id}-{release_id}-deploy`) to also survive a re-run.
    pub key: Option<String>,
    /// Defaults to `environment == "production"`.
    pub production: Option<bool>,
}

/// The `davit` part of a deployment payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DavitPayload {
    pub release_id: String,
    pub image: String,
    pub digest: String,
    pub strategy: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub kind: DeploymentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<DeploymentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    pub key: String,
}

/// A deployment as GitHub returns it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub environment: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Deployment {
    /// davit's payload, when davit created this deployment.
    pub fn davit(&self) -> Option<DavitPayload> {
        serde_json::from_value(self.payload.get("davit")?.clone()).ok()
    }
}

/// Deployment status states, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Queued,
    Pending,
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Queued => "queued",
            DeploymentState::Pending => "pending",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// A status to add to a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub state: DeploymentState,
    /// Shortened to GitHub's 140 characters.
    pub description: String,
    /// Where the environment is reachable (shown as "View deployment").
    pub environment_url: Option<String>,
    /// The run that did it.
    pub log_url: Option<String>,
}

/// A status as GitHub returns it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DeploymentStatus {
    pub id: u64,
    pub state: DeploymentState,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub environment_url: Option<String>,
    #[serde(default)]
    pub log_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The task davit's deployments use, so they can be told apart from other tools'.
pub const TASK: &str = "deploy:davit";

/// `registry/app:tag` without any `user:password@` in front of the registry. Credentials can
/// only sit before the first `/`; an `@` there followed by a digest is `name@sha256:...`.
pub fn strip_credentials(image: &str) -> String {
    let host_end = image.find('/').unwrap_or(image.len());
    if let Some(at) = image[..host_end].rfind('@') {
        let rest = &image[at + 1..];
        let is_digest = rest.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty()
                && alg.chars().all(|c| c.is_ascii_alphanumeric())
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !is_digest {
            return rest.to_string();
        }
    }
    image.to_string()
}

fn random_key() -> String {
    let b: [u8; 12] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// GitHub rejects status descriptions over 140 characters.
fn short(s: &str) -> String {
    if s.chars().count() <= 140 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(139).collect();
        t.push('…');
        t
    }
}

impl NewDeployment {
    pub(crate) fn payload(&self, key: &str) -> DavitPayload {
        DavitPayload {
            release_id: self.release_id.clone(),
            image: strip_credentials(&self.image),
            digest: self.digest.clone(),
            strategy: self.strategy.clone(),
            git_ref: self.git_ref.clone(),
            kind: self.kind,
            rollback_of: self.rollback_of,
            approval: self.approval.clone(),
            key: key.to_string(),
        }
    }
}

impl GithubClient {
    /// Create a deployment. Retries never duplicate it: see [`GithubClient`]'s create path.
    pub async fn create_deployment(&self, d: &NewDeployment) -> Result<Deployment, GithubError> {
        let invalid = |what: &'static str, v: &str| GithubError::Invalid {
            what,
            value: v.to_string(),
            reason: "must not be empty".into(),
        };
        if d.environment.trim().is_empty() {
            return Err(invalid("deployment environment", &d.environment));
        }
        if d.sha.trim().is_empty() {
            return Err(invalid("deployment sha", &d.sha));
        }
        let key = d.key.clone().unwrap_or_else(random_key);
        let payload = d.payload(&key);
        let kind = match d.kind {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Rollback => "rollback to",
        };
        let body = json!({
            "ref": d.sha,
            "task": TASK,
            // davit has already gated the release; GitHub must neither merge branches nor
            // re-check commit statuses (either can 409 depending on repository state).
            "auto_merge": false,
            "required_contexts": [],
            "environment": d.environment,
            "production_environment": d.production.unwrap_or(d.environment == "production"),
            "transient_environment": false,
            "description": short(&format!("davit {kind} {} ({})", d.release_id, d.git_ref)),
            "payload": { "davit": payload },
        });
        let call = Call::post(
            self.repo_path("/deployments"),
            &body,
            Permission::DeploymentsWrite,
        );
        self.create(&call, || self.find_deployment(&d.sha, &d.environment, &key))
            .await
    }

    /// The deployment created with this key, if any (the lost-response check).
    async fn find_deployment(
        &self,
        sha: &str,
        environment: &str,
        key: &str,
    ) -> Result<Option<Deployment>, GithubError> {
        let found = self.list_deployments(Some(sha), Some(environment)).await?;
        Ok(found
            .into_iter()
            .find(|d| d.davit().is_some_and(|p| p.key == key)))
    }

    /// davit's deployments, newest first, optionally filtered.
    pub async fn list_deployments(
        &self,
        sha: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<Deployment>, GithubError> {
        let mut path = self.repo_path(&format!("/deployments?task={}", q(TASK)));
        if let Some(s) = sha {
            path.push_str(&format!("&sha={}", q(s)));
        }
        if let Some(e) = environment {
            path.push_str(&format!("&environment={}", q(e)));
        }
        // One page: recent history is what callers need, and the lost-response check looks
        // for a deployment created seconds ago.
        self.request(&Call::get(
            format!("{path}&per_page=100"),
            Permission::DeploymentsRead,
        ))
        .await
    }

    /// Statuses of a deployment, newest first.
    pub async fn list_statuses(
        &self,
        id: DeploymentId,
    ) -> Result<Vec<DeploymentStatus>, GithubError> {
        self.request(&Call::get(
            self.repo_path(&format!("/deployments/{id}/statuses?per_page=100")),
            Permission::DeploymentsRead,
        ))
        .await
    }

    /// Add a status. A retry after a lost response first checks whether the newest status
    /// already is this one, so the history does not stutter.
    pub async fn set_status(
        &self,
        id: DeploymentId,
        s: &StatusUpdate,
    ) -> Result<DeploymentStatus, GithubError> {
        let description = short(&s.description);
        let mut body = json!({
            "state": s.state.as_str(),
            "description": description,
            "auto_inactive": true,
        });
        if let Some(u) = &s.environment_url {
            body["environment_url"] = json!(u);
        }
        if let Some(u) = &s.log_url {
            body["log_url"] = json!(u);
        }
        let call = Call::post(
            self.repo_path(&format!("/deployments/{id}/statuses")),
            &body,
            Permission::DeploymentsWrite,
        );
        self.create(&call, || async {
            let latest = self.list_statuses(id).await?.into_iter().next();
            Ok(latest.filter(|l| {
                l.state == s.state && l.description.as_deref().unwrap_or("") == description
            }))
        })
        .await
    }

    /// The newest davit deployment of `environment` whose latest status is `success`: what is
    /// live, as far as GitHub knows.
    pub async fn live_deployment(
        &self,
        environment: &str,
    ) -> Result<Option<Deployment>, GithubError> {
        for d in self.list_deployments(None, Some(environment)).await? {
            let latest = self.list_statuses(d.id).await?.into_iter().next();
            if latest.is_some_and(|s| s.state == DeploymentState::Success) {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_images_but_digests_kept() {
        assert_eq!(
            strip_credentials("bob:hunter2@registry.example.com/app:1.2"),
            "registry.example.com/app:1.2"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        for kept in [format!("ghcr.io/o/app@{digest}"), format!("app@{digest}")] {
            assert_eq!(strip_credentials(&kept), kept);
        }
        assert_eq!(strip_credentials("tok3n@ghcr.io/o/app"), "ghcr.io/o/app");
        assert_eq!(strip_credentials("app:1"), "app:1");
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        let long = "x".repeat(300);
        assert_eq!(short(&long).chars().count(), 140);
        assert_eq!(short("ok"), "ok");
    }
}
