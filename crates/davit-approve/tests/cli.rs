//! The `davit-approve` binary: flags from `DAVIT_APPROVE_*`, exit codes (0 approved, 1 denied,
//! 2 bad input), outputs through `$GITHUB_OUTPUT`, against the local fake GitHub.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use davit_fake_github::FakeGithub;

const BIN: &str = env!("CARGO_BIN_EXE_davit-approve");
const TOKEN_CANARY: &str = "ghp_CANARYcli0123456789CANARY";

/// A command with a scrubbed environment: only what the test sets.
fn cmd(fake: &FakeGithub, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", TOKEN_CANARY)
        .env("GITHUB_REPOSITORY", fake.repo())
        .env("GITHUB_ACTOR", "carol")
        .env("GITHUB_OUTPUT", out)
        .env("NO_COLOR", "1")
        .env("DAVIT_APPROVE_RELEASE_VERSION", "1.4.0")
        .env("DAVIT_APPROVE_POLL_INTERVAL", "10ms")
        .env("DAVIT_APPROVE_TIMEOUT", "60s")
        .stdin(Stdio::null());
    c
}

fn outputs(path: &Path) -> Vec<(String, String)> {
    davit_gha::parse_output_file(&std::fs::read_to_string(path).unwrap_or_default())
}

fn output(path: &Path, name: &str) -> Option<String> {
    outputs(path)
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn t12_empty_approvers_fail_closed_with_exit_2() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for approvers in ["", " , "] {
        let o = cmd(&fake, &out)
            .env("DAVIT_APPROVE_APPROVERS", approvers)
            .output()
            .unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("no approvers"), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }
    assert!(fake.requests().is_empty(), "nothing was asked of GitHub");
    assert_eq!(output(&out, "approved").as_deref(), Some("false"));
}

#[test]
fn a_missing_version_or_token_is_bad_input() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = cmd(&fake, &out)
        .env("DAVIT_APPROVE_APPROVERS", "alice")
        .env_remove("DAVIT_APPROVE_RELEASE_VERSION")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = cmd(&fake, &out)
        .env("DAVIT_APPROVE_APPROVERS", "alice")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(text(&o).1.contains("GITHUB_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_through_an_issue_exits_0_with_outputs() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = cmd(&fake, &out)
        .env("DAVIT_APPROVE_APPROVERS", "alice, bob")
        .env("DAVIT_APPROVE_DIGEST", "sha256:abc")
        .env("DAVIT_APPROVE_COMMITS", "abc fix\ndef feat")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_for_issue(1).await;
    fake.add_comment(1, "bob", "approve");
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(output(&out, "approved").as_deref(), Some("true"));
    assert_eq!(output(&out, "approved-by").as_deref(), Some("bob"));
    let decision: serde_json::Value =
        serde_json::from_str(&output(&out, "decision-json").unwrap()).unwrap();
    assert_eq!(decision["approved"], true);
    assert_eq!(decision["provider"], "github-issue");
    assert_eq!(decision["requested_by"], "carol");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap(),
        decision
    );
    // T08: the token is nowhere the process wrote or sent.
    assert!(!stdout.contains(TOKEN_CANARY) && !stderr.contains(TOKEN_CANARY));
    for r in fake.requests() {
        assert!(
            !format!("{} {} {:?} {}", r.path, r.query, r.headers, r.body).contains(TOKEN_CANARY)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_issue_exits_1() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let child = cmd(&fake, &out)
        .env("DAVIT_APPROVE_APPROVERS", "alice")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_for_issue(1).await;
    fake.close_issue(1);
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert_eq!(output(&out, "approved").as_deref(), Some("false"));
    assert_eq!(output(&out, "approved-by").as_deref(), Some(""));
}

#[test]
fn auto_needs_the_explicit_flag_and_says_so_loudly() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = cmd(&fake, &out)
        .env("DAVIT_APPROVE_PROVIDER", "auto")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    let o = cmd(&fake, &out)
        .args([
            "--provider",
            "auto",
            "--auto-approve-i-know-what-i-am-doing",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("AUTO-APPROVED"), "{err}");
    assert!(fake.requests().is_empty());
}

#[test]
fn environment_provider_checks_the_run_was_approved_for_that_environment() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = |run_id: &str| {
        cmd(&fake, &out)
            .env("DAVIT_APPROVE_PROVIDER", "environment")
            .env("GITHUB_RUN_ID", run_id)
            .output()
            .unwrap()
    };
    // No such environment.
    assert_eq!(run("7").status.code(), Some(1));
    // An environment without required reviewers approves nothing.
    fake.set_environment("production", &[]);
    assert_eq!(run("7").status.code(), Some(1));
    fake.set_environment("production", &["alice"]);
    // The job did not run in the environment: no review for this run.
    let o = run("7");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("environment: production"),
        "{}",
        text(&o).1
    );
    // Approved for staging only.
    fake.add_run_approval(7, "alice", "approved", &["staging"]);
    assert_eq!(run("7").status.code(), Some(1));
    // Self-approval in GitHub does not count either.
    fake.add_run_approval(8, "carol", "approved", &["production"]);
    assert_eq!(run("8").status.code(), Some(1));
    fake.add_run_approval(7, "alice", "approved", &["production"]);
    let o = run("7");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(output(&out, "approved-by").as_deref(), Some("alice"));
    // Outside a run it cannot work at all.
    let o = cmd(&fake, &out)
        .env("DAVIT_APPROVE_PROVIDER", "environment")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tty_without_a_terminal_denies() {
    let fake = FakeGithub::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // setsid detaches from any controlling terminal, so /dev/tty cannot open.
    let Ok(setsid) = which_setsid() else { return };
    let o = Command::new(setsid)
        .arg(BIN)
        .env_clear()
        .env("GITHUB_OUTPUT", &out)
        .env("DAVIT_APPROVE_PROVIDER", "tty")
        .env("DAVIT_APPROVE_RELEASE_VERSION", "1.4.0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    assert_eq!(output(&out, "approved").as_deref(), Some("false"));
    drop(fake);
}

fn which_setsid() -> Result<&'static str, ()> {
    ["/usr/bin/setsid", "/bin/setsid"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or(())
}
