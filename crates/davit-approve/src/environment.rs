//! The `environment` provider: GitHub's required reviewers, verified rather than assumed.
//!
//! When a job declares `environment: production` and that environment has required reviewers,
//! GitHub pauses the run until someone approves. davit cannot see the job's `environment:` key,
//! but it can check the facts that only exist if the pause happened: the environment exists
//! and has a `required_reviewers` rule, and this run's review history holds an approval for it.
//! A job that forgot the `environment:` key (or an environment without reviewers) is denied
//! instead of silently deploying unreviewed.

use chrono::Utc;
use davit_github::GithubClient;

use crate::evaluate::Verdict;
use crate::{ApproveError, Decision, Provider, ReleaseInfo};

/// Check that run `run_id` was approved for `release.environment` by someone other than the
/// requester (unless self-approval is allowed).
pub async fn environment(
    client: &GithubClient,
    run_id: Option<u64>,
    allow_self_approval: bool,
    release: &ReleaseInfo,
) -> Result<Decision, ApproveError> {
    let name = release.environment.as_str();
    let run_id = run_id.ok_or_else(|| {
        ApproveError::bad_input(
            "the environment provider needs the workflow run id",
            "run inside GitHub Actions (GITHUB_RUN_ID) or set DAVIT_APPROVE_RUN_ID",
        )
    })?;
    let verdict = verdict(client, run_id, allow_self_approval, release).await?;
    if let Verdict::Denied { reason, .. } = &verdict {
        tracing::error!("environment {name}: {reason}");
    }
    Ok(Decision::from_verdict(
        &verdict,
        Provider::Environment,
        release,
        None,
    ))
}

async fn verdict(
    client: &GithubClient,
    run_id: u64,
    allow_self_approval: bool,
    release: &ReleaseInfo,
) -> Result<Verdict, ApproveError> {
    let name = release.environment.as_str();
    let denied = |reason: String, by: Option<String>| Verdict::Denied {
        reason,
        by,
        at: Utc::now(),
    };
    let Some(env) = client.environment(name).await? else {
        return Ok(denied(
            format!("environment {name:?} does not exist in this repository"),
            None,
        ));
    };
    if !env.has_required_reviewers {
        return Ok(denied(
            format!(
                "environment {name:?} has no required reviewers, so GitHub approved nothing; \
                 add reviewers or use the github-issue provider"
            ),
            None,
        ));
    }
    let reviews = client.run_reviews(run_id).await?;
    let for_env: Vec<_> = reviews
        .iter()
        .filter(|r| r.environments.iter().any(|e| e.name == name))
        .collect();
    if let Some(r) = for_env.iter().find(|r| r.state == "rejected") {
        return Ok(denied(
            format!("rejected by @{} in GitHub", r.user.login),
            Some(r.user.login.clone()),
        ));
    }
    let requester = release.requested_by.to_lowercase();
    let mut by: Vec<String> = Vec::new();
    for r in for_env.iter().filter(|r| r.state == "approved") {
        let login = r.user.login.clone();
        if !allow_self_approval && login.to_lowercase() == requester {
            tracing::warn!("ignoring @{login}'s approval: self-approval is not allowed");
            continue;
        }
        if !by.contains(&login) {
            by.push(login);
        }
    }
    if by.is_empty() {
        return Ok(denied(
            format!(
                "run {run_id} has no approval for environment {name:?}; is the job declared \
                 with `environment: {name}`?"
            ),
            None,
        ));
    }
    Ok(Verdict::Approved { by, at: Utc::now() })
}
