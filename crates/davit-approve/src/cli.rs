//! The `davit-approve` command line: flags (each with a `DAVIT_APPROVE_*` variable, which is how
//! action.yml passes inputs without interpolating them into a script), the provider dispatch,
//! and the outputs. Exit codes: 0 approved, 1 denied, 2 bad input, 3 infrastructure.

use clap::{ArgAction, Parser};
use davit_core::Exit;
use davit_gha::{Annotation, Gha, Level};
use davit_github::GithubClient;

use crate::policy::{Policy, parse_duration};
use crate::{ApproveError, Decision, IssueGateOptions, Provider, ReleaseInfo};

#[derive(Debug, Parser)]
#[command(
    name = "davit-approve",
    about = "Wait for a human yes before production. Exit 0 approved, 1 denied, 2 bad input, 3 infrastructure."
)]
pub struct Args {
    /// Who approves: github-issue (any plan), environment (GitHub required reviewers), tty
    /// (laptop), auto (needs --auto-approve-i-know-what-i-am-doing).
    #[arg(
        long,
        env = "DAVIT_APPROVE_PROVIDER",
        value_enum,
        default_value = "github-issue"
    )]
    pub provider: Provider,
    /// Users and org/team-slug teams, separated by commas or spaces (github-issue).
    #[arg(long, env = "DAVIT_APPROVE_APPROVERS", default_value = "")]
    pub approvers: String,
    /// Distinct approvals needed (github-issue).
    #[arg(long, env = "DAVIT_APPROVE_MIN_APPROVALS", default_value_t = 1)]
    pub min_approvals: usize,
    /// Let the person who asked approve their own release.
    #[arg(long, env = "DAVIT_APPROVE_ALLOW_SELF_APPROVAL", action = ArgAction::Set,
          default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub allow_self_approval: bool,
    /// How long approvals are accepted (500ms, 90s, 30m, 2h); no decision by then denies.
    #[arg(long, env = "DAVIT_APPROVE_TIMEOUT", default_value = "1h")]
    pub timeout: String,
    /// How often the issue is read.
    #[arg(long, env = "DAVIT_APPROVE_POLL_INTERVAL", default_value = "15s")]
    pub poll_interval: String,
    /// The environment being deployed to.
    #[arg(long, env = "DAVIT_APPROVE_ENVIRONMENT", default_value = "production")]
    pub environment: String,
    /// The version to approve (shown to approvers; typed back at the tty prompt).
    #[arg(long, env = "DAVIT_APPROVE_RELEASE_VERSION", default_value = "")]
    pub release_version: String,
    #[arg(long, env = "DAVIT_APPROVE_IMAGE", default_value = "")]
    pub image: String,
    #[arg(long, env = "DAVIT_APPROVE_DIGEST", default_value = "")]
    pub digest: String,
    #[arg(long, env = "DAVIT_APPROVE_RELEASE_ID", default_value = "")]
    pub release_id: String,
    /// Commits since the live release, one per line.
    #[arg(long, env = "DAVIT_APPROVE_COMMITS", default_value = "")]
    pub commits: String,
    /// The scan gate's result, as text.
    #[arg(long, env = "DAVIT_APPROVE_SCAN_RESULT", default_value = "")]
    pub scan_result: String,
    /// Who asked for the release; defaults to GITHUB_ACTOR.
    #[arg(long, env = "DAVIT_APPROVE_REQUESTED_BY")]
    pub requested_by: Option<String>,
    /// Labels for the approval issue, comma-separated.
    #[arg(long, env = "DAVIT_APPROVE_LABELS", default_value = "davit-approval")]
    pub labels: String,
    /// The workflow run (environment provider); defaults to GITHUB_RUN_ID.
    #[arg(long, env = "DAVIT_APPROVE_RUN_ID")]
    pub run_id: Option<u64>,
    /// Required for provider `auto`.
    #[arg(long, env = "DAVIT_APPROVE_AUTO_APPROVE_I_KNOW_WHAT_I_AM_DOING", action = ArgAction::Set,
          default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub auto_approve_i_know_what_i_am_doing: bool,
}

/// Decide, report, and return the exit code.
pub async fn run(args: Args, gha: &Gha) -> Exit {
    match decide(&args, |k| std::env::var(k).ok()).await {
        Ok(d) => {
            report(gha, &d);
            if d.approved { Exit::Ok } else { Exit::Rejected }
        }
        Err(e) => {
            let f = e.to_failure();
            eprintln!("error: {f}");
            let _ = gha.set_output("approved", "false");
            f.exit
        }
    }
}

fn release(
    args: &Args,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ReleaseInfo, ApproveError> {
    let version = args.release_version.trim().to_string();
    if version.is_empty() {
        return Err(ApproveError::bad_input(
            "no release version to approve",
            "pass --release-version (DAVIT_APPROVE_RELEASE_VERSION)",
        ));
    }
    let environment = args.environment.trim().to_string();
    if environment.is_empty() {
        return Err(ApproveError::bad_input(
            "the environment is empty",
            "pass --environment",
        ));
    }
    let requested_by = args
        .requested_by
        .clone()
        .or_else(|| env("GITHUB_ACTOR"))
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(ReleaseInfo {
        version,
        environment,
        image: args.image.clone(),
        digest: args.digest.clone(),
        release_id: args.release_id.clone(),
        commits: args.commits.clone(),
        scan_result: args.scan_result.clone(),
        requested_by,
        run_url: davit_github::run_url(env),
    })
}

/// The provider dispatch, over an environment lookup so tests need not touch the process env.
pub async fn decide(
    args: &Args,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Decision, ApproveError> {
    let release = release(args, &env)?;
    match args.provider {
        Provider::GithubIssue => {
            // Settings first (T12): nothing is asked of GitHub with a policy nobody can pass.
            let policy = Policy::new(
                &args.approvers,
                args.min_approvals,
                args.allow_self_approval,
                &release.requested_by,
                parse_duration(&args.timeout)?,
            )?;
            let opts = IssueGateOptions {
                poll_interval: parse_duration(&args.poll_interval)?
                    .max(std::time::Duration::from_millis(1)),
                labels: args
                    .labels
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect(),
            };
            let client = GithubClient::from_vars(&env)?;
            crate::github_issue(&client, &policy, &release, &opts).await
        }
        Provider::Environment => {
            let client = GithubClient::from_vars(&env)?;
            let run_id = args
                .run_id
                .or_else(|| env("GITHUB_RUN_ID").and_then(|v| v.trim().parse().ok()));
            crate::environment::environment(&client, run_id, args.allow_self_approval, &release)
                .await
        }
        Provider::Tty => Ok(crate::terminal::tty(&release)),
        Provider::Auto => crate::terminal::auto(&release, args.auto_approve_i_know_what_i_am_doing),
    }
}

/// stdout gets the decision JSON (data); outputs and the summary go through davit-gha.
fn report(gha: &Gha, d: &Decision) {
    let json = serde_json::to_string(d).unwrap_or_default();
    println!("{json}");
    let _ = gha.set_output("approved", if d.approved { "true" } else { "false" });
    let _ = gha.set_output("approved-by", &d.by.join(","));
    let _ = gha.set_output("decision-json", &json);
    let headline = if d.approved {
        format!("✅ {} to {}: {}", d.version, d.environment, d.reason)
    } else {
        format!("⛔ {} to {}: {}", d.version, d.environment, d.reason)
    };
    let mut md = format!(
        "### Production approval\n\n{headline}\n\n- provider: `{}`\n- when: {}\n",
        d.provider.as_str(),
        d.at.to_rfc3339()
    );
    if let Some(u) = &d.issue_url {
        md.push_str(&format!("- issue: {u}\n"));
    }
    let _ = gha.summary(&md);
    if !d.approved {
        gha.annotate(
            Level::Error,
            &Annotation {
                title: Some("approval denied".into()),
                message: d.reason.clone(),
                ..Default::default()
            },
        );
    }
}
