//! GitHub deployment records around deploys and rollbacks.
//!
//! Both the `davit` CLI (deploy, manual rollback) and verification (automatic rollback) change
//! what runs in an environment, so both record it in GitHub's Environments view the same way:
//! a deployment per release moving from in_progress to success or failure, and on rollback the
//! bad deployment marked failure (or inactive, when a person rolled back a healthy release) plus
//! a new deployment for the restored release. Recording is best effort by construction
//! ([`DeploymentRecorder`] never fails): the deploy's outcome never depends on the GitHub API.

use davit_core::Failure;
use davit_deploy::{Report, Target};
use davit_github::{DeploymentId, DeploymentKind, DeploymentRecorder, NewDeployment, RolledBack};

pub struct Records {
    rec: DeploymentRecorder,
    sha: String,
    git_ref: String,
}

impl Records {
    /// Enabled on a runner with a token (`GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`);
    /// a no-op elsewhere. Must be called inside the tokio runtime.
    pub fn from_env() -> Records {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let rec = if var("GITHUB_TOKEN").is_some() {
            DeploymentRecorder::from_env()
        } else {
            DeploymentRecorder::disabled()
        };
        Records {
            rec,
            sha: var("GITHUB_SHA").unwrap_or_default(),
            git_ref: var("GITHUB_REF_NAME").unwrap_or_default(),
        }
    }

    pub fn disabled() -> Records {
        Records {
            rec: DeploymentRecorder::disabled(),
            sha: String::new(),
            git_ref: String::new(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.rec.is_enabled() && !self.sha.is_empty()
    }

    fn new_deployment(
        &self,
        t: &Target,
        release_id: &str,
        image: &str,
        digest: &str,
        approval: Option<serde_json::Value>,
        kind: DeploymentKind,
    ) -> NewDeployment {
        NewDeployment {
            environment: t.environment.clone(),
            git_ref: self.git_ref.clone(),
            sha: self.sha.clone(),
            release_id: release_id.to_string(),
            image: image.to_string(),
            digest: digest.to_string(),
            strategy: t.strategy.as_str().to_string(),
            kind,
            approval,
            // Stable across retries and re-runs of the same job, so neither duplicates it.
            key: std::env::var("GITHUB_RUN_ID")
                .ok()
                .map(|run| format!("{run}-{release_id}-{kind:?}")),
            ..Default::default()
        }
    }

    /// Open the deployment record before anything changes; None when disabled or it failed.
    pub async fn begin_deploy(
        &self,
        t: &Target,
        release_id: &str,
        image: &str,
        digest: &str,
        approval: Option<serde_json::Value>,
    ) -> Option<DeploymentId> {
        if !self.is_enabled() {
            return None;
        }
        let d = self.new_deployment(
            t,
            release_id,
            image,
            digest,
            approval,
            DeploymentKind::Deploy,
        );
        self.rec.start(&d).await
    }

    /// Close it with the outcome.
    pub async fn end_deploy(
        &self,
        t: &Target,
        id: Option<DeploymentId>,
        result: &Result<Report, Failure>,
    ) {
        if id.is_none() {
            return;
        }
        match result {
            Ok(r) => {
                let version = r.record.as_ref().map(|r| r.version.as_str()).unwrap_or("");
                self.rec
                    .success(id, Some(&t.public_url()), &format!("{version} is live"))
                    .await
            }
            Err(f) => self.rec.failure(id, &short(&f.message)).await,
        }
    }

    /// After a rollback that restored a release: mark the live (bad) deployment and record the
    /// restored release as a new one.
    pub async fn rolled_back(&self, t: &Target, report: &Report, mark: RolledBack) {
        if !self.is_enabled() {
            return;
        }
        let Some(restored) = &report.record else {
            return;
        };
        let bad = self.rec.live(&t.environment).await.map(|d| d.id);
        let d = self.new_deployment(
            t,
            &restored.id,
            &restored.image,
            restored.digest.as_deref().unwrap_or(""),
            None,
            DeploymentKind::Rollback,
        );
        let new_id = self.rec.rollback(bad, mark, &d).await;
        self.rec
            .success(
                new_id,
                Some(&t.public_url()),
                &format!("rolled back to {}", restored.version),
            )
            .await;
    }

    /// Warnings from failed record writes, for the summary.
    pub fn warnings(&self) -> Vec<String> {
        self.rec.warnings()
    }
}

/// GitHub caps status descriptions at 140 characters.
fn short(s: &str) -> String {
    let first = s.lines().next().unwrap_or("");
    if first.chars().count() <= 140 {
        first.to_string()
    } else {
        let mut t: String = first.chars().take(137).collect();
        t.push_str("...");
        t
    }
}
