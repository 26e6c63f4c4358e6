//! The github-issue provider against the local fake GitHub: T13 bypass attempts all end denied,
//! real approvals pass, and the issue is closed with the decision.

use std::time::Duration;

use davit_approve::{Decision, IssueGateOptions, Policy, ReleaseInfo, github_issue};
use davit_core::Secret;
use davit_fake_github::{FakeGithub, Fault};
use davit_github::{GithubClient, Repo, RetryPolicy};

const TOKEN_CANARY: &str = "ghp_CANARYapprove0123456789CANARY";

fn client(fake: &FakeGithub) -> GithubClient {
    GithubClient::new(
        fake.url(),
        Secret::new(TOKEN_CANARY.to_string()),
        Repo::parse(fake.repo()).unwrap(),
    )
    .unwrap()
    .with_policy(RetryPolicy::fast())
}

fn release() -> ReleaseInfo {
    ReleaseInfo {
        version: "1.4.0".into(),
        environment: "production".into(),
        image: "ghcr.io/davit-dev/app:1.4.0".into(),
        digest: format!("sha256:{}", "c".repeat(64)),
        release_id: "r-20240101-1".into(),
        commits: "abc123 fix login\ndef456 faster search".into(),
        scan_result: "0 critical, 2 low (under policy)".into(),
        requested_by: "carol".into(),
        run_url: Some("https://github.com/davit-dev/app/actions/runs/7".into()),
    }
}

/// Timeouts are whole seconds on GitHub's clock (issue `created_at`), so "long" means the test
/// decides well before it and "short" means the deadline passes within a second or two.
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(2);

fn policy(approvers: &str, min: usize, timeout: Duration) -> Policy {
    Policy::new(approvers, min, false, "carol", timeout).unwrap()
}

fn opts() -> IssueGateOptions {
    IssueGateOptions {
        poll_interval: Duration::from_millis(10),
        labels: vec!["davit-approval".into()],
    }
}

/// Start the gate in the background; the test then plays the humans on the fake.
fn gate(
    fake: &FakeGithub,
    policy: Policy,
) -> tokio::task::JoinHandle<Result<Decision, davit_approve::ApproveError>> {
    let c = client(fake);
    tokio::spawn(async move { github_issue(&c, &policy, &release(), &opts()).await })
}

async fn decided(
    h: tokio::task::JoinHandle<Result<Decision, davit_approve::ApproveError>>,
) -> Decision {
    h.await.unwrap().unwrap()
}

fn last_comment(fake: &FakeGithub) -> String {
    fake.comments(1).last().unwrap().body.clone()
}

#[tokio::test]
async fn a_listed_approver_approves_and_the_issue_is_closed_as_completed() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice, bob", 1, LONG));
    let issue = fake.wait_for_issue(1).await;
    assert!(issue.labels.contains(&"davit-approval".to_string()));
    for must in [
        "1.4.0",
        "sha256:",
        "abc123 fix login",
        "0 critical",
        "@carol",
        "@alice",
    ] {
        assert!(
            issue.body.contains(must),
            "issue body lacks {must}:\n{}",
            issue.body
        );
    }
    fake.add_comment(1, "alice", "Approve\nthe rollout plan looks fine");
    let d = decided(h).await;
    assert!(d.approved, "{d:?}");
    assert_eq!(d.by, ["alice"]);
    assert_eq!(d.requested_by, "carol");
    assert_eq!(
        d.issue_url.as_deref(),
        Some(issue.html_url(fake.url()).as_str())
    );
    let closed = fake.issue(1).unwrap();
    assert_eq!(closed.state, "closed");
    assert_eq!(closed.state_reason.as_deref(), Some("completed"));
    assert!(last_comment(&fake).contains("Approved"));
    // The decision is JSON for the ledger and the deployment payload.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["provider"], "github-issue");
    assert_eq!(json["by"][0], "alice");
    assert!(json["at"].is_string());
}

#[tokio::test]
async fn min_two_approvals_must_come_from_two_people() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice, bob, dan", 2, LONG));
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "alice", "approve");
    fake.add_comment(1, "alice", "lgtm");
    fake.add_comment(1, "bob", "/approve");
    let d = decided(h).await;
    assert!(d.approved);
    assert_eq!(d.by, ["alice", "bob"]);
}

#[tokio::test]
async fn team_members_can_approve() {
    let fake = FakeGithub::start();
    fake.set_team("acme", "release", &["dave", "erin"]);
    let h = gate(&fake, policy("acme/release", 1, LONG));
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "Dave", "LGTM");
    let d = decided(h).await;
    assert!(d.approved);
    assert_eq!(d.by, ["dave"]);
}

#[tokio::test]
async fn a_deny_from_an_approver_ends_the_wait() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice, bob", 2, LONG));
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "alice", "approve");
    fake.add_comment(1, "bob", "deny\nnot during the sale");
    let d = decided(h).await;
    assert!(!d.approved);
    assert_eq!(d.by, ["bob"]);
    assert_eq!(d.reason, "denied by @bob");
    let closed = fake.issue(1).unwrap();
    assert_eq!(closed.state_reason.as_deref(), Some("not_planned"));
    assert!(last_comment(&fake).contains("Denied"));
}

#[tokio::test]
async fn t13_non_approver_approve_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, SHORT));
    let issue = fake.wait_for_issue(1).await;
    fake.add_comment_at(1, "mallory", "approve", Some(issue.created_at));
    let d = decided(h).await;
    assert!(!d.approved, "{d:?}");
    assert!(d.reason.contains("timed out"), "{}", d.reason);
    assert!(d.by.is_empty());
}

#[tokio::test]
async fn t13_self_approval_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice, carol", 1, SHORT));
    let issue = fake.wait_for_issue(1).await;
    fake.add_comment_at(1, "carol", "approve", Some(issue.created_at));
    let d = decided(h).await;
    assert!(!d.approved, "{d:?}");
}

#[tokio::test]
async fn self_approval_counts_only_when_allowed() {
    let fake = FakeGithub::start();
    let p = Policy::new("carol", 1, true, "carol", LONG).unwrap();
    let h = gate(&fake, p);
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "carol", "approve");
    assert!(decided(h).await.approved);
}

#[tokio::test]
async fn t13_edited_comment_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, SHORT));
    let issue = fake.wait_for_issue(1).await;
    let id = fake.add_comment_at(1, "alice", "let me check first", Some(issue.created_at));
    fake.edit_comment(id, "approve");
    let d = decided(h).await;
    assert!(!d.approved, "{d:?}");
}

#[tokio::test]
async fn t13_failed_team_lookup_is_denied_before_asking() {
    for status in [404, 403, 500] {
        let fake = FakeGithub::start();
        fake.fail_team("acme", "release", status);
        let d = github_issue(
            &client(&fake),
            &policy("alice, acme/release", 1, LONG),
            &release(),
            &opts(),
        )
        .await
        .unwrap();
        assert!(!d.approved, "{status}: {d:?}");
        assert!(
            d.reason.contains("could not expand team acme/release"),
            "{}",
            d.reason
        );
        assert!(
            fake.issues().is_empty(),
            "no issue is opened for a gate that cannot work"
        );
        if status == 403 {
            assert!(d.reason.contains("members: read"), "{}", d.reason);
        }
    }
}

#[tokio::test]
async fn t13_closed_issue_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, LONG));
    fake.wait_for_issue(1).await;
    fake.close_issue(1);
    fake.add_comment(1, "alice", "approve");
    let d = decided(h).await;
    assert!(!d.approved, "{d:?}");
    assert_eq!(d.reason, "the approval issue was closed");
}

#[tokio::test]
async fn t13_locked_issue_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, LONG));
    fake.wait_for_issue(1).await;
    fake.lock_issue(1);
    let d = decided(h).await;
    assert!(!d.approved);
    assert_eq!(d.reason, "the approval issue was locked");
}

#[tokio::test]
async fn t13_late_approval_is_denied() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, SHORT));
    let issue = fake.wait_for_issue(1).await;
    // Written (by GitHub's clock) after the deadline.
    fake.add_comment_at(
        1,
        "alice",
        "approve",
        Some(issue.created_at + chrono::Duration::seconds(3600)),
    );
    let d = decided(h).await;
    assert!(!d.approved, "{d:?}");
    assert!(d.reason.contains("timed out"));
}

#[tokio::test]
async fn an_approval_written_before_the_request_does_not_count() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, SHORT));
    let issue = fake.wait_for_issue(1).await;
    fake.add_comment_at(
        1,
        "alice",
        "approve",
        Some(issue.created_at - chrono::Duration::seconds(5)),
    );
    assert!(!decided(h).await.approved);
}

#[tokio::test]
async fn not_enough_possible_approvers_is_bad_input() {
    let fake = FakeGithub::start();
    fake.set_team("acme", "release", &["carol"]);
    let e = github_issue(
        &client(&fake),
        &policy("acme/release", 1, LONG),
        &release(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.to_failure().exit, davit_core::Exit::BadInput, "{e}");
    assert!(fake.issues().is_empty());
}

#[tokio::test]
async fn t34_flaky_github_while_waiting_still_decides_and_opens_one_issue() {
    let fake = FakeGithub::start();
    // The create lands but its answer is lost; later reads fail now and then.
    fake.inject(Fault::status("POST", "/repos/davit-dev/app/issues", 502).landing());
    fake.inject(Fault::status("GET", "/repos/davit-dev/app/issues/1/comments", 502).times(3));
    let h = gate(&fake, policy("alice", 1, LONG));
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "alice", "approve");
    let d = decided(h).await;
    assert!(d.approved);
    assert_eq!(fake.issues().len(), 1, "no duplicate approval issue");
}

#[tokio::test]
async fn a_missing_issues_permission_is_an_error_not_a_wait() {
    let fake = FakeGithub::start();
    let mut f = Fault::status("POST", "/repos/davit-dev/app/issues", 403);
    f.message = Some("Resource not accessible by integration".into());
    fake.inject(f);
    let e = github_issue(
        &client(&fake),
        &policy("alice", 1, LONG),
        &release(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("issues: write"), "{e}");
}

#[tokio::test]
async fn t08_the_token_never_reaches_github_payloads() {
    let fake = FakeGithub::start();
    let h = gate(&fake, policy("alice", 1, LONG));
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "alice", "approve");
    let d = decided(h).await;
    for r in fake.requests() {
        let all = format!("{} {} {:?} {}", r.path, r.query, r.headers, r.body);
        assert!(!all.contains(TOKEN_CANARY), "{} {}", r.method, r.path);
    }
    assert!(!serde_json::to_string(&d).unwrap().contains(TOKEN_CANARY));
}
