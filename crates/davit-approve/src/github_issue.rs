//! The `github-issue` provider: ask in an issue, poll its comments, close it with the answer.
//!
//! Works on every plan and for private repositories, where GitHub's required reviewers may not
//! be available. The loop only gathers facts (issue state, comments, team members) and hands
//! them to [`evaluate`]; it adds the one fact the API cannot give, a comment whose body changed
//! between two polls, and it fails closed on everything it cannot read.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;
use davit_github::{CloseReason, GithubClient, Issue, IssueComment};

use crate::evaluate::{CommentView, IssueView, TeamMembers, Verdict, deadline, evaluate};
use crate::policy::{APPROVE_WORDS, DENY_WORDS, Policy};
use crate::{ApproveError, Decision, Provider, ReleaseInfo};

#[derive(Debug, Clone)]
pub struct IssueGateOptions {
    pub poll_interval: Duration,
    pub labels: Vec<String>,
}

impl Default for IssueGateOptions {
    fn default() -> Self {
        IssueGateOptions {
            poll_interval: Duration::from_secs(15),
            labels: vec!["davit-approval".into()],
        }
    }
}

/// Ask for approval in an issue and wait for the decision.
///
/// `Ok` carries the decision (approved or denied); `Err` means the gate could not work at all
/// (bad settings, missing permission), which also keeps production untouched.
pub async fn github_issue(
    client: &GithubClient,
    policy: &Policy,
    release: &ReleaseInfo,
    opts: &IssueGateOptions,
) -> Result<Decision, ApproveError> {
    let teams = expand_teams(client, policy).await;
    if let Some((team, err)) = teams
        .iter()
        .find_map(|(t, r)| r.as_ref().err().map(|e| (t, e)))
    {
        // Fail before asking anyone: an approval that cannot be checked is worthless.
        tracing::error!("cannot expand approver team {team}: {err}");
        let verdict = Verdict::Denied {
            reason: format!("could not expand team {team} ({err}); failing closed"),
            by: None,
            at: Utc::now(),
        };
        return Ok(Decision::from_verdict(
            &verdict,
            Provider::GithubIssue,
            release,
            None,
        ));
    }
    check_enough_approvers(policy, &teams)?;

    let key = format!("davit-approval:{}", random_hex());
    let title = format!(
        "Approve {} to {}?",
        one_line(&release.version),
        one_line(&release.environment)
    );
    let body = issue_body(policy, release, &key);
    let issue = client
        .create_issue(&title, &body, &opts.labels, &key)
        .await?;
    tracing::info!(
        "waiting for approval in {} (until {})",
        issue.html_url,
        deadline(policy, &view(&issue))
    );

    let verdict = wait(client, policy, &issue, &teams, opts).await?;
    let decision = Decision::from_verdict(
        &verdict,
        Provider::GithubIssue,
        release,
        Some(issue.html_url.clone()),
    );
    finish(client, &issue, &decision).await;
    Ok(decision)
}

async fn expand_teams(client: &GithubClient, policy: &Policy) -> TeamMembers {
    let mut out = TeamMembers::new();
    for t in &policy.teams {
        let r = client
            .team_members(&t.org, &t.slug)
            .await
            .map_err(|e| match e.hint() {
                Some(h) => format!("{e}; hint: {h}"),
                None => e.to_string(),
            });
        out.insert(t.clone(), r);
    }
    out
}

/// With teams expanded, a policy that needs more approvers than exist can never pass: say so
/// now rather than after the timeout.
fn check_enough_approvers(policy: &Policy, teams: &TeamMembers) -> Result<(), ApproveError> {
    let mut people: BTreeSet<String> = policy.users.iter().cloned().collect();
    for m in teams.values().flatten() {
        people.extend(m.iter().map(|x| x.to_lowercase()));
    }
    if !policy.allow_self_approval {
        people.remove(&policy.requested_by);
    }
    if people.len() < policy.min_approvals {
        return Err(ApproveError::bad_input(
            format!(
                "{} approval(s) are required but only {} person(s) other than the requester can give one",
                policy.min_approvals,
                people.len()
            ),
            "add approvers or lower min-approvals",
        ));
    }
    Ok(())
}

async fn wait(
    client: &GithubClient,
    policy: &Policy,
    issue: &Issue,
    teams: &TeamMembers,
    opts: &IssueGateOptions,
) -> Result<Verdict, ApproveError> {
    let mut first_bodies: HashMap<u64, String> = HashMap::new();
    let mut reported: BTreeSet<u64> = BTreeSet::new();
    let end = deadline(policy, &view(issue));
    loop {
        // Comments first, state second: a close or lock that happened before the comments
        // were read is always seen, so it can never lose to an approval posted after it.
        let read = async {
            let c = client.list_comments(issue.number).await?;
            let i = client.get_issue(issue.number).await?;
            Ok::<_, davit_github::GithubError>((i, c))
        };
        match read.await {
            Ok((now_issue, comments)) => {
                let views = comment_views(&comments, &mut first_bodies);
                let ev = evaluate(policy, &view(&now_issue), &views, Utc::now(), teams);
                for ig in ev.ignored {
                    if reported.insert(ig.comment_id) {
                        tracing::warn!(
                            "ignoring comment {} by @{}: {}",
                            ig.comment_id,
                            ig.author,
                            ig.why
                        );
                    }
                }
                if ev.verdict != Verdict::Pending {
                    return Ok(ev.verdict);
                }
            }
            // Missing permissions will not fix themselves.
            Err(e) if e.is_permission() => return Err(e.into()),
            Err(e) => {
                tracing::warn!("could not read the approval issue, will try again: {e}");
                if Utc::now() >= end {
                    return Ok(Verdict::Denied {
                        reason: format!(
                            "timed out, and the approval issue could not be read at the end: {e}"
                        ),
                        by: None,
                        at: end,
                    });
                }
            }
        }
        let left = (end - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        // Sleep to the next poll, or just past the deadline for the final look.
        tokio::time::sleep(opts.poll_interval.min(left + Duration::from_millis(10))).await;
    }
}

fn view(i: &Issue) -> IssueView {
    IssueView {
        open: i.is_open(),
        locked: i.locked,
        created_at: i.created_at,
        author: i.user.login.clone(),
    }
}

fn comment_views(
    comments: &[IssueComment],
    first_bodies: &mut HashMap<u64, String>,
) -> Vec<CommentView> {
    comments
        .iter()
        .map(|c| {
            let first = first_bodies.entry(c.id).or_insert_with(|| c.body.clone());
            CommentView {
                id: c.id,
                author: c.user.login.clone(),
                body: c.body.clone(),
                created_at: c.created_at,
                updated_at: c.updated_at,
                body_changed: *first != c.body,
            }
        })
        .collect()
}

/// Comment the decision and close the issue. Best effort: the decision is already made.
async fn finish(client: &GithubClient, issue: &Issue, d: &Decision) {
    let text = if d.approved {
        format!(
            "✅ **Approved** by {} at {}. Deploying {} to {}.",
            d.by.iter()
                .map(|b| format!("@{b}"))
                .collect::<Vec<_>>()
                .join(", "),
            d.at.to_rfc3339(),
            d.version,
            d.environment
        )
    } else {
        format!(
            "⛔ **Denied**: {}. {} is not deployed to {}.",
            d.reason, d.version, d.environment
        )
    };
    if let Err(e) = client.add_comment(issue.number, &text).await {
        tracing::warn!("could not comment the decision on the approval issue: {e}");
    }
    let reason = if d.approved {
        CloseReason::Completed
    } else {
        CloseReason::NotPlanned
    };
    if let Err(e) = client.close_issue(issue.number, reason).await {
        tracing::warn!("could not close the approval issue: {e}");
    }
}

/// Unique, not secret: it only finds this issue again after a lost response.
fn random_hex() -> String {
    let b: [u8; 12] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Values from the release go into markdown; keep titles on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn issue_body(policy: &Policy, r: &ReleaseInfo, key: &str) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "**{}** asks to deploy **{}** to **{}**.\n",
        mention(&r.requested_by),
        one_line(&r.version),
        one_line(&r.environment)
    );
    let _ = writeln!(b, "| | |\n|---|---|");
    let _ = writeln!(b, "| Version | `{}` |", one_line(&r.version));
    if !r.image.is_empty() {
        let _ = writeln!(
            b,
            "| Image | `{}` |",
            one_line(&davit_github::strip_credentials(&r.image))
        );
    }
    if !r.digest.is_empty() {
        let _ = writeln!(b, "| Digest | `{}` |", one_line(&r.digest));
    }
    if !r.release_id.is_empty() {
        let _ = writeln!(b, "| Release | `{}` |", one_line(&r.release_id));
    }
    let scan = if r.scan_result.trim().is_empty() {
        "not reported".to_string()
    } else {
        one_line(&r.scan_result)
    };
    let _ = writeln!(b, "| Scan | {scan} |");
    if let Some(u) = &r.run_url {
        let _ = writeln!(b, "| Run | {u} |");
    }
    let _ = writeln!(b, "\n### Commits since the live release\n");
    if r.commits.trim().is_empty() {
        let _ = writeln!(b, "_none reported_");
    } else {
        let _ = writeln!(b, "```");
        for line in r.commits.lines().take(200) {
            // A fence inside the list must not end the code block.
            let _ = writeln!(b, "{}", line.replace("```", "'''"));
        }
        let _ = writeln!(b, "```");
    }
    let approvers: Vec<String> = policy
        .users
        .iter()
        .map(|u| mention(u))
        .chain(policy.teams.iter().map(|t| format!("@{t}")))
        .collect();
    let _ = writeln!(
        b,
        "\n### How to answer\n\nApprovers: {}. {} distinct approval(s) needed{}.\n\n\
         Comment with a first line of exactly `{}` to approve or `{}` to deny. Only a comment's \
         author and creation time count: **edited comments are ignored**, and so are comments \
         after the deadline ({}). Closing or locking this issue denies.\n",
        approvers.join(", "),
        policy.min_approvals,
        if policy.allow_self_approval {
            ""
        } else {
            "; the requester cannot approve their own release"
        },
        APPROVE_WORDS[0],
        DENY_WORDS[0],
        humantime(policy),
    );
    let _ = writeln!(b, "<!-- {key} -->");
    b
}

fn mention(login: &str) -> String {
    if login.is_empty() {
        "someone".into()
    } else {
        format!("@{login}")
    }
}

fn humantime(policy: &Policy) -> String {
    let s = policy.timeout.as_secs();
    let whole = |unit: u64| s >= unit && (s / unit) * unit == s;
    if whole(3600) {
        format!("{} h after this issue was opened", s / 3600)
    } else if whole(60) {
        format!("{} min after this issue was opened", s / 60)
    } else {
        format!("{:?} after this issue was opened", policy.timeout)
    }
}
