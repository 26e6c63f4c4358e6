//! Notifications (Slack, a webhook) after verification, as the analysis spec asks. They never
//! fail verification: a notification that cannot be sent becomes a timeline warning.

use crate::{Verdict, VerifyOptions};
use davit_deploy::Target;
use davit_exec::Timeline;

/// Slack / webhook notifications on rollback or success, as the analysis spec asks. Never fails
/// verification: problems become timeline warnings.
pub(crate) async fn notify(
    opts: &VerifyOptions,
    t: &Target,
    verdict: &Verdict,
    timeline: &Timeline,
) {
    let verified = verdict.rolled_back_to.as_ref().map(|_| true);
    notify_with(opts, t, verdict, timeline, verified).await;
}

/// [`notify`] with the rollback's outcome given: `Some(false)` is a rollback that failed.
pub(crate) async fn notify_with(
    opts: &VerifyOptions,
    t: &Target,
    verdict: &Verdict,
    timeline: &Timeline,
    rollback_verified: Option<bool>,
) {
    let (Some(spec), Some(analysis)) = (&opts.analysis, &verdict.analysis) else {
        return;
    };
    let notifier =
        davit_analysis::notify::Notifier::from_env(|k| std::env::var(k).ok(), spec.notify.clone());
    let ctx = davit_analysis::notify::Context {
        environment: t.environment.clone(),
        version: verdict.version.clone(),
        rolled_back_to: verdict.rolled_back_to.clone(),
        rollback_verified,
        run_url: run_url(|k| std::env::var(k).ok()),
    };
    // The probes or the traffic decided while the analysis was still measuring: the
    // notification tells what verify did and why, not the analysis' unfinished "keep".
    let decided_by_verify;
    let analysis = if !verdict.healthy
        && !verdict.held
        && !verdict.infra_failure
        && analysis.action == davit_analysis::Action::Keep
    {
        decided_by_verify = davit_analysis::Verdict {
            status: davit_analysis::Status::Failed,
            action: davit_analysis::Action::Rollback,
            reason: verdict.reason.clone().unwrap_or_default(),
            ..analysis.clone()
        };
        &decided_by_verify
    } else {
        analysis
    };
    for w in notifier.send(&ctx, analysis).await {
        timeline.note(&format!("warning: {w}"));
    }
}

/// The link to this workflow run, from the runner's environment.
fn run_url(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    match (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_link_needs_all_three_runner_variables() {
        let env = |k: &str| match k {
            "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
            "GITHUB_REPOSITORY" => Some("acme/shop".to_string()),
            "GITHUB_RUN_ID" => Some("42".to_string()),
            _ => None,
        };
        assert_eq!(
            run_url(env).as_deref(),
            Some("https://github.com/acme/shop/actions/runs/42")
        );
        assert_eq!(run_url(|k| env(k).filter(|_| k != "GITHUB_RUN_ID")), None);
    }
}
