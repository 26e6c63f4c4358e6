//! Production deploys through the fake GitHub API: the approval gate in front, deployment
//! records around, rollback records after (issue 5's "shown by", and T13 at the process level).

use davit_fake_github::FakeGithub;
use davit_tests::*;
use std::process::{Command, Output};
use std::time::Duration;

const TOKEN: &str = "ghs_canaryTOKEN0123456789";

/// A command with the runner-like environment pointing at the fake API.
fn cmd(fake: &FakeGithub, name: &str) -> Command {
    let mut c = Command::new(bin(name));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .env("GITHUB_API_URL", fake.url())
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", fake.repo())
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_ACTOR", "dev-dora")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("DAVIT_LOCK_WAIT_SECS", "30");
    c
}

/// Run davit-approve in the background; `respond` plays the humans on the issue.
fn approve_with(fake: &FakeGithub, approvers: &str, respond: impl FnOnce(u64)) -> Output {
    // Wait for this run's issue, not an earlier run's (which is still the last one until the
    // new one is opened).
    let before = fake.issues().len();
    let child = cmd(fake, "davit-approve")
        .args(["--approvers", approvers, "--release-version", "v1"])
        .args(["--poll-interval", "100ms", "--timeout", "4s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let issue = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            let issues = fake.issues();
            (issues.len() > before).then(|| issues.last().map(|i| i.number))?
        })
        .expect("the approval issue was never opened");
    respond(issue);
    child.wait_with_output().unwrap()
}

#[test]
fn production_deploy_is_approved_recorded_and_rolled_back_with_records() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-gh";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-gh");
    let t = sb.target(repo, "production", "");
    let config = sb.dir.path().join("davit.toml");
    let fake = FakeGithub::start();
    let public = format!("http://127.0.0.1:{}/", sb.public);

    // A non-approver's "approve" does not count: denied, and the pipeline deploys nothing.
    let denied = approve_with(&fake, "alice", |issue| {
        fake.add_comment(issue, "mallory", "approve");
    });
    assert_eq!(
        denied.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(fake.deployments().is_empty());
    assert!(!t.ledger_path().exists());

    // An approver's comment: approved, and the decision travels into the deploy.
    let approved = approve_with(&fake, "alice", |issue| {
        fake.add_comment(issue, "alice", "approve");
    });
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let decision = String::from_utf8_lossy(&approved.stdout).trim().to_string();
    assert!(decision.contains("alice"), "{decision}");

    let deploy = |version: &str, approval: &str| {
        cmd(&fake, "davit")
            .args(["deploy", "production", "--version", version, "--config"])
            .arg(&config)
            .args(["--approval-json", approval])
            .output()
            .unwrap()
    };
    let out = deploy("v1", &decision);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deps = fake.deployments();
    assert_eq!(deps.len(), 1, "exactly one deployment record");
    let d = &deps[0];
    assert_eq!(d.environment, "production");
    assert_eq!(d.sha, "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(d.payload["davit"]["strategy"], "blue-green");
    assert_eq!(d.payload["davit"]["approval"]["by"][0], "alice");
    let states: Vec<String> = fake
        .statuses(d.id)
        .iter()
        .map(|s| s.state.clone())
        .collect();
    assert_eq!(states, vec!["in_progress", "success"]);
    let success = fake.statuses(d.id).pop().unwrap();
    assert_eq!(
        success.environment_url,
        format!("http://127.0.0.1:{}", sb.public)
    );
    assert_eq!(
        success.log_url,
        "https://github.example/davit-dev/app/actions/runs/4242"
    );
    // The approval is in the ledger too.
    let ledger = std::fs::read_to_string(t.ledger_path()).unwrap();
    assert!(ledger.contains("\"alice\""), "{ledger}");

    // v2, then a manual rollback: v2's record goes inactive, v1 gets a new successful record.
    assert!(deploy("v2", "").status.success());
    let out = cmd(&fake, "davit")
        .args(["rollback", "production", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    block_on(async { assert_eq!(version_at(&public).await, "v1") });
    let deps = fake.deployments();
    assert_eq!(deps.len(), 3, "deploy v1, deploy v2, restored v1");
    let last_state = |id: u64| fake.statuses(id).last().map(|s| s.state.clone());
    assert_eq!(last_state(deps[1].id).as_deref(), Some("inactive"));
    assert_eq!(deps[2].payload["davit"]["kind"], "rollback");
    assert_eq!(last_state(deps[2].id).as_deref(), Some("success"));

    // T08: the token never appears in any request body the API received.
    for r in fake.requests() {
        assert!(
            !r.body.contains(TOKEN),
            "token leaked into {} {}",
            r.method,
            r.path
        );
    }
}

/// T34 at the process level: the API failing does not change the deploy's outcome.
#[test]
fn t34_deploy_succeeds_when_github_is_down() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-gh34";
    demo_image(repo, "v1", &[]);
    let sb = Sandbox::new("t-gh34");
    let _t = sb.target(repo, "production", "");
    let config = sb.dir.path().join("davit.toml");
    let fake = FakeGithub::start();
    fake.inject(davit_fake_github::Fault::status("POST", "/repos/*", 502).times(100));
    let out = cmd(&fake, "davit")
        .args(["deploy", "production", "--version", "v1", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning:"),
        "the failed record should be a warning: {stderr}"
    );
    assert!(fake.deployments().is_empty());
    block_on(async {
        assert_eq!(
            version_at(&format!("http://127.0.0.1:{}/", sb.public)).await,
            "v1"
        )
    });
}
