//! T07 untrusted trigger, through the real binaries: on GitHub Actions, a `pull_request_target`
//! run that checked out the pull request's head, or a run for a fork's pull request, is refused
//! before anything touches production or a registry; trusted triggers get past the guard.
//!
//! No Docker needed: the refused runs must stop before any command, and the positive controls
//! only have to reach the deploy itself (which then fails: the image does not exist).

use davit_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BASE_SHA: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";

/// A workspace with one commit (the "checked-out code"), davit.toml in it, and an event file.
struct Run {
    sb: Sandbox,
    workspace: PathBuf,
    config: PathBuf,
    event: PathBuf,
    /// The workspace's HEAD.
    head: String,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Run {
    fn new(app: &str) -> Run {
        let sb = Sandbox::new(app);
        let workspace = sb.dir.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        git(&workspace, &["init", "-q"]);
        git(&workspace, &["commit", "-q", "--allow-empty", "-m", "pr"]);
        let head = git(&workspace, &["rev-parse", "HEAD"]);
        let config = workspace.join("davit.toml");
        std::fs::write(
            &config,
            sb.config_text(&format!("davit-test-{app}-no-such-image"), ""),
        )
        .unwrap();
        let event = sb.dir.path().join("event.json");
        Run {
            sb,
            workspace,
            config,
            event,
            head,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.sb.dir.path().join("state")
    }

    /// Write a pull request payload whose head is `pr_head`, from `head_repo` into acme/shop.
    fn pull_request_payload(&self, pr_head: &str, head_repo: &str) {
        let repo = |id: u64, full: &str| {
            serde_json::json!({
                "id": id, "name": "shop", "full_name": full,
                "fork": full != "acme/shop",
                "owner": { "login": full.split('/').next().unwrap() },
            })
        };
        let payload = serde_json::json!({
            "action": "synchronize",
            "number": 7,
            "pull_request": {
                "number": 7,
                "title": "innocent\n::add-mask::x",
                "merge_commit_sha": null,
                "head": {
                    "ref": "patch-1\n::error::forged",
                    "sha": pr_head,
                    "repo": repo(if head_repo == "acme/shop" { 1 } else { 2 }, head_repo),
                },
                "base": { "ref": "main", "sha": BASE_SHA, "repo": repo(1, "acme/shop") },
            },
            "repository": repo(1, "acme/shop"),
            "sender": { "login": "mallory" },
        });
        std::fs::write(&self.event, payload.to_string()).unwrap();
    }

    /// One of davit's binaries as a GitHub Actions step would run it for `event`, with nothing
    /// of this process's own Actions environment (when the tests themselves run on a runner).
    fn command(&self, binary: &str, event: &str) -> Command {
        let mut c = Command::new(bin(binary));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("GITHUB_") || k.starts_with("RUNNER_") || k.starts_with("DAVIT_") {
                c.env_remove(k);
            }
        }
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_EVENT_PATH", &self.event)
            .env("GITHUB_WORKSPACE", &self.workspace)
            .env("DAVIT_CONFIG", &self.config)
            .current_dir(&self.workspace);
        c
    }

    fn deploy(&self, event: &str) -> Output {
        self.command("davit", event)
            .args(["deploy", "production", "--version", "v1", "--config"])
            .arg(&self.config)
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn have_git() -> bool {
    require("git")
}

/// The refusal the task is about: pull_request_target with the pull request's head checked out.
#[test]
fn t07_pull_request_target_with_head_checkout_is_refused_before_anything_runs() {
    if !have_git() {
        return;
    }
    let run = Run::new("t-t07-head");
    run.pull_request_payload(&run.head, "mallory/shop");
    let out = run.deploy("pull_request_target");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let short = &run.head[..12];
    let message = format!(
        "refusing to deploy from a pull_request_target run that checked out the pull request's \
         head ({short}) in $GITHUB_WORKSPACE: code from a fork would run with this workflow's \
         secrets"
    );
    assert!(stderr.contains(&format!("error: {message}\n")), "{stderr}");
    assert!(
        stderr.contains("hint: check out the base branch instead (actions/checkout without `ref:`"),
        "{stderr}"
    );
    // The run view gets the same, as an escaped annotation; nothing from the payload leaks and no
    // workflow command is forged.
    assert!(
        stdout.starts_with(&format!("::error title=davit::{message}%0Ahint: ")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    for forged in ["patch-1", "forged", "add-mask", "innocent"] {
        assert!(
            !stdout.contains(forged) && !stderr.contains(forged),
            "{forged}: {stdout}{stderr}"
        );
    }
    // Nothing was attempted: no state folder, so no lock and no ledger.
    assert!(
        !run.state_dir().exists(),
        "the refused deploy touched {}",
        run.state_dir().display()
    );
}

/// Every privileged command and binary refuses a fork's pull_request run; the read-only and
/// dry-run commands do not (they may fail later for their own reasons).
#[test]
fn t07_fork_pull_request_is_refused_by_every_privileged_step() {
    if !have_git() {
        return;
    }
    let run = Run::new("t-t07-fork");
    run.pull_request_payload(&run.head, "mallory/shop");
    let refused: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "davit",
            vec!["deploy", "production", "--version", "v1"],
            "deploy",
        ),
        ("davit", vec!["rollback", "production"], "roll back"),
        (
            "davit",
            vec!["verify", "production"],
            "verify (and possibly roll back) a release",
        ),
        (
            "davit",
            vec!["lock", "release", "production"],
            "release a deploy lock",
        ),
        (
            "davit",
            vec!["backup", "now", "production"],
            "take a database backup",
        ),
        (
            "davit",
            vec!["backup", "list", "production"],
            "list database backups",
        ),
        (
            "davit-verify",
            vec!["production"],
            "verify (and possibly roll back) a release",
        ),
        (
            "davit-approve",
            vec!["--release-version", "v1", "--approvers", "octocat"],
            "approve a release",
        ),
        (
            "davit-image",
            vec!["run", "--push", "--images", "ghcr.io/acme/shop"],
            "push an image",
        ),
    ];
    for (binary, args, action) in refused {
        let out = run
            .command(binary, "pull_request")
            .args(&args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{binary} {args:?}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "error: refusing to {action} from a pull_request run for a pull request from the \
                 fork mallory/shop (into acme/shop)"
            )),
            "{binary} {args:?}: {stderr}"
        );
        assert!(
            stderr.contains("there is no override for forks"),
            "{stderr}"
        );
    }
    assert!(
        !run.state_dir().exists(),
        "a refused step touched the state folder"
    );

    for args in [
        vec!["deploy", "production", "--version", "v1", "--dry-run"],
        vec!["releases", "production"],
        vec!["lock", "status", "production"],
    ] {
        let out = run
            .command("davit", "pull_request")
            .args(&args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(
            !stderr.contains("refusing to"),
            "{args:?}: {stdout}\n{stderr}"
        );
    }
    let out = run
        .command("davit-image", "pull_request")
        .args(["meta", "--images", "ghcr.io/acme/shop"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
}

/// Positive controls: the same workspace and payload on push, a same-repository pull request,
/// and pull_request_target with the base checked out all get past the guard and reach the
/// deploy (which fails afterwards: the image does not exist).
#[test]
fn t07_trusted_triggers_get_past_the_guard() {
    if !have_git() {
        return;
    }
    let run = Run::new("t-t07-ok");
    let other = "1111111111111111111111111111111111111111";
    let cases = [
        ("push", run.head.as_str(), "mallory/shop"),
        ("workflow_dispatch", run.head.as_str(), "mallory/shop"),
        ("pull_request", run.head.as_str(), "acme/shop"),
        ("pull_request_target", other, "mallory/shop"),
    ];
    for (event, pr_head, head_repo) in cases {
        run.pull_request_payload(pr_head, head_repo);
        let out = run.deploy(event);
        let (stdout, stderr) = text(&out);
        assert!(
            !stderr.contains("refusing to"),
            "{event}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("deploy v1 to production"),
            "{event}: the deploy did not start: {stdout}\n{stderr}"
        );
    }
    // Off Actions (a laptop) nothing is checked, even with a hostile event lying around.
    run.pull_request_payload(&run.head, "mallory/shop");
    let out = run
        .command("davit", "pull_request_target")
        .env_remove("GITHUB_ACTIONS")
        .args(["deploy", "production", "--version", "v1"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!stderr.contains("refusing to"), "{stdout}\n{stderr}");
    assert!(stderr.contains("deploy v1 to production"), "{stderr}");
}
