//! Deployment records that can never fail a deploy.
//!
//! The deploy commands call a [`DeploymentRecorder`] at each phase. Its methods return no
//! `Result`: a record that cannot be written is logged as a warning (and kept for the step
//! summary) and the deploy carries on, so whether production changes never depends on the
//! GitHub API being up (T34). Without a token (a laptop run) the recorder is disabled and every
//! method is a no-op.

use std::sync::Mutex;

use crate::client::GithubClient;
use crate::deployments::{
    Deployment, DeploymentId, DeploymentKind, DeploymentState, NewDeployment, StatusUpdate,
};

/// How the bad deployment is marked when rolling back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolledBack {
    /// The release failed (unhealthy, regression): red in the Environments view.
    Failure,
    /// The release was fine but replaced on purpose (manual rollback): greyed out.
    Inactive,
}

/// Best-effort deployment records for one deploy run.
pub struct DeploymentRecorder {
    client: Option<GithubClient>,
    log_url: Option<String>,
    warnings: Mutex<Vec<String>>,
}

impl DeploymentRecorder {
    /// Record through `client`; the log URL comes from the runner's environment.
    pub fn new(client: GithubClient) -> Self {
        DeploymentRecorder {
            client: Some(client),
            log_url: run_url_from_env(),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Records nothing (no token, `--dry-run`, laptop).
    pub fn disabled() -> Self {
        DeploymentRecorder {
            client: None,
            log_url: None,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// From `GITHUB_API_URL` / `GITHUB_TOKEN` / `GITHUB_REPOSITORY`; disabled (with an info
    /// line) when they are missing, because a deploy from a laptop has nothing to record into.
    pub fn from_env() -> Self {
        match GithubClient::from_env() {
            Ok(c) => Self::new(c),
            Err(e @ crate::GithubError::MissingEnv { .. }) => {
                tracing::info!("GitHub deployment records are off: {e}");
                Self::disabled()
            }
            Err(e) => {
                tracing::warn!("GitHub deployment records are off: {e}");
                Self::disabled()
            }
        }
    }

    /// Override the run URL used as each status's `log_url`.
    pub fn with_log_url(mut self, url: Option<String>) -> Self {
        self.log_url = url;
        self
    }

    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// Warnings so far, for the step summary.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn warn(&self, what: &str, err: &dyn std::fmt::Display) {
        let line = format!("could not {what} (the deploy is not affected): {err}");
        tracing::warn!("{line}");
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    /// Create the deployment and mark it `in_progress`. `None` when records are off or GitHub
    /// failed; pass it on to the other methods regardless.
    pub async fn start(&self, d: &NewDeployment) -> Option<DeploymentId> {
        let client = self.client.as_ref()?;
        let created = match client.create_deployment(d).await {
            Ok(dep) => dep.id,
            Err(e) => {
                self.warn(
                    &format!("create the {} deployment record", d.environment),
                    &e,
                );
                return None;
            }
        };
        let what = match d.kind {
            DeploymentKind::Deploy => format!("deploying {}", d.release_id),
            DeploymentKind::Rollback => format!("rolling back to {}", d.release_id),
        };
        self.status(Some(created), DeploymentState::InProgress, None, &what)
            .await;
        Some(created)
    }

    /// The release is live and healthy.
    pub async fn success(
        &self,
        id: Option<DeploymentId>,
        environment_url: Option<&str>,
        description: &str,
    ) {
        self.status(id, DeploymentState::Success, environment_url, description)
            .await;
    }

    /// The release did not go live (or was rolled back because it was bad).
    pub async fn failure(&self, id: Option<DeploymentId>, description: &str) {
        self.status(id, DeploymentState::Failure, None, description)
            .await;
    }

    /// The release was replaced.
    pub async fn inactive(&self, id: Option<DeploymentId>, description: &str) {
        self.status(id, DeploymentState::Inactive, None, description)
            .await;
    }

    /// Any state, for callers that need `queued` or `error`.
    pub async fn status(
        &self,
        id: Option<DeploymentId>,
        state: DeploymentState,
        environment_url: Option<&str>,
        description: &str,
    ) {
        let (Some(client), Some(id)) = (self.client.as_ref(), id) else {
            return;
        };
        let update = StatusUpdate {
            state,
            description: description.to_string(),
            environment_url: environment_url.map(str::to_string),
            log_url: self.log_url.clone(),
        };
        if let Err(e) = client.set_status(id, &update).await {
            self.warn(&format!("set deployment {id} to {}", state.as_str()), &e);
        }
    }

    /// Record a rollback: mark `bad` (when known) as failure or inactive, then create a new
    /// deployment for the restored release (`restored.kind` is forced to `Rollback` and
    /// `rollback_of` to `bad`) and mark it `in_progress`. Call [`Self::success`] or
    /// [`Self::failure`] on the returned id once the restore is verified.
    pub async fn rollback(
        &self,
        bad: Option<DeploymentId>,
        mark: RolledBack,
        restored: &NewDeployment,
    ) -> Option<DeploymentId> {
        self.client.as_ref()?;
        let why = format!("rolled back to {}", restored.release_id);
        match mark {
            RolledBack::Failure => self.failure(bad, &why).await,
            RolledBack::Inactive => self.inactive(bad, &why).await,
        }
        let mut d = restored.clone();
        d.kind = DeploymentKind::Rollback;
        d.rollback_of = bad.or(d.rollback_of);
        self.start(&d).await
    }

    /// What GitHub shows as live in `environment` (newest davit deployment whose latest status
    /// is success), e.g. to find the bad deployment in a separate rollback run.
    pub async fn live(&self, environment: &str) -> Option<Deployment> {
        let client = self.client.as_ref()?;
        match client.live_deployment(environment).await {
            Ok(d) => d,
            Err(e) => {
                self.warn(&format!("read the live {environment} deployment"), &e);
                None
            }
        }
    }
}

/// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`, when on a runner.
pub fn run_url_from_env() -> Option<String> {
    run_url(|k| std::env::var(k).ok())
}

pub fn run_url(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
    let repo = get("GITHUB_REPOSITORY").filter(|r| !r.is_empty())?;
    let run =
        get("GITHUB_RUN_ID").filter(|r| r.chars().all(|c| c.is_ascii_digit()) && !r.is_empty())?;
    Some(format!(
        "{}/{repo}/actions/runs/{run}",
        server.trim_end_matches('/')
    ))
}
