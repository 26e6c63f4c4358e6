//! The decision for every trigger the module docs list, and reading a real git checkout.

use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const MERGE: &str = "e5bd3914e2e596debea16f433f57875b5b90bcd6";
const BASE: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";

fn repo(id: u64, owner: &str, fork: bool) -> Value {
    json!({
        "id": id,
        "name": "shop",
        "full_name": format!("{owner}/shop"),
        "private": false,
        "fork": fork,
        "owner": { "login": owner, "type": "User" },
        "html_url": format!("https://github.com/{owner}/shop"),
    })
}

/// A pull_request / pull_request_target payload (trimmed to the fields GitHub always sends
/// and this module reads, plus untrusted strings it must not print).
fn pr_payload(head_repo: Value) -> String {
    json!({
        "action": "synchronize",
        "number": 42,
        "pull_request": {
            "number": 42,
            "state": "open",
            "title": "fix\n::add-mask::x",
            "merge_commit_sha": MERGE,
            "head": {
                "label": "mallory:patch-1",
                "ref": "patch-1\n::set-output name=x::y",
                "sha": HEAD,
                "user": { "login": "mallory" },
                "repo": head_repo,
            },
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": BASE,
                "user": { "login": "acme" },
                "repo": repo(1, "acme", false),
            },
        },
        "repository": repo(1, "acme", false),
        "sender": { "login": "mallory" },
    })
    .to_string()
}

fn workflow_run_payload(event: &str, head_repo: Value) -> String {
    json!({
        "action": "completed",
        "workflow_run": {
            "id": 30433642,
            "name": "ci",
            "event": event,
            "status": "completed",
            "conclusion": "success",
            "head_branch": "patch-1",
            "head_sha": HEAD,
            "pull_requests": [],
            "head_repository": head_repo,
            "repository": repo(1, "acme", false),
        },
        "repository": repo(1, "acme", false),
    })
    .to_string()
}

fn checkout(head: &str, parents: &[&str]) -> Vec<CodeDir> {
    vec![CodeDir {
        label: "$GITHUB_WORKSPACE".into(),
        checkout: Ok(Checkout {
            head: head.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }),
    }]
}

fn decide_on(event: &str, payload: &str, code: &[CodeDir]) -> Decision {
    decide(&Trigger {
        event,
        payload: Ok(payload),
        code,
    })
}

fn refusal(d: Decision, action: &str) -> Failure {
    match d {
        Decision::Refused(r) => r.failure(action),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What every refusal shares: exit 2, one line, no workflow command, no payload strings.
fn assert_safe(f: &Failure) {
    assert_eq!(f.exit, davit_core::Exit::BadInput);
    assert!(f.hint.as_deref().is_some_and(|h| !h.is_empty()));
    for text in [f.message.as_str(), f.hint.as_deref().unwrap()] {
        assert!(!text.contains('\n'), "{text}");
        assert!(!text.contains("::"), "{text}");
        assert!(!text.contains("patch-1"), "branch name printed: {text}");
    }
}

#[test]
fn push_and_workflow_dispatch_are_trusted_without_reading_anything() {
    for event in [
        "push",
        "workflow_dispatch",
        "release",
        "schedule",
        "merge_group",
    ] {
        let d = decide(&Trigger {
            event,
            payload: Err("not read"),
            code: &[],
        });
        assert_eq!(d, Decision::Trusted, "{event}");
    }
}

#[test]
fn same_repo_pull_request_is_trusted() {
    let p = pr_payload(repo(1, "acme", false));
    for event in PULL_REQUEST_EVENTS {
        assert_eq!(decide_on(event, &p, &[]), Decision::Trusted, "{event}");
    }
}

#[test]
fn fork_pull_request_is_refused() {
    let p = pr_payload(repo(2, "mallory", true));
    for event in PULL_REQUEST_EVENTS {
        let f = refusal(decide_on(event, &p, &[]), "deploy");
        assert_safe(&f);
        assert!(
            f.message.starts_with(&format!(
                "refusing to deploy from a {event} run for a pull request from the fork \
                 mallory/shop (into acme/shop)"
            )),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("no override"));
    }
}

#[test]
fn fork_is_recognized_by_id_owner_or_deletion_too() {
    // Same full name (case differs only): not a fork.
    let mut same = repo(1, "ACME", false);
    same["owner"]["login"] = json!("acme");
    assert_eq!(
        decide_on("pull_request", &pr_payload(same), &[]),
        Decision::Trusted
    );
    // Same name but another repository id (renamed / transferred): fork.
    let mut other_id = repo(7, "acme", false);
    other_id["full_name"] = json!("acme/shop");
    assert!(matches!(
        decide_on("pull_request", &pr_payload(other_id), &[]),
        Decision::Refused(_)
    ));
    // A fork owned by someone else, even if the payload's names agreed.
    let mut foreign = repo(1, "mallory", true);
    foreign["full_name"] = json!("acme/shop");
    assert!(matches!(
        decide_on("pull_request", &pr_payload(foreign), &[]),
        Decision::Refused(_)
    ));
    // head.repo null: the fork was deleted.
    let f = refusal(
        decide_on("pull_request", &pr_payload(Value::Null), &[]),
        "deploy",
    );
    assert_safe(&f);
    assert!(
        f.message.contains("a fork that was deleted"),
        "{}",
        f.message
    );
}

#[test]
fn hostile_repository_names_are_reduced_to_safe_characters() {
    let mut evil = repo(2, "mallory", true);
    evil["full_name"] = json!("mallory/x\n::set-env name=A::b %0A");
    let f = refusal(decide_on("pull_request", &pr_payload(evil), &[]), "deploy");
    assert_safe(&f);
    assert!(
        f.message.contains("mallory/x???set-env?name?A??b??0A"),
        "{}",
        f.message
    );
}

#[test]
fn pull_request_target_with_base_checkout_is_trusted() {
    let p = pr_payload(repo(2, "mallory", true));
    assert_eq!(
        decide_on(
            "pull_request_target",
            &p,
            &checkout(BASE, &["1111111111111111111111111111111111111111"])
        ),
        Decision::Trusted
    );
}

#[test]
fn pull_request_target_with_head_checkout_is_refused() {
    let p = pr_payload(repo(2, "mallory", true));
    let f = refusal(
        decide_on("pull_request_target", &p, &checkout(HEAD, &[BASE])),
        "deploy",
    );
    assert_safe(&f);
    assert_eq!(
        f.message,
        "refusing to deploy from a pull_request_target run that checked out the pull \
         request's head (6dcb09b5b578) in $GITHUB_WORKSPACE: code from a fork would run with \
         this workflow's secrets"
    );
    assert!(f.hint.unwrap().contains("actions/checkout without `ref:`"));
    // Upper-case ids from elsewhere compare equal.
    assert!(matches!(
        decide_on(
            "pull_request_target",
            &p,
            &checkout(&HEAD.to_uppercase(), &[])
        ),
        Decision::Refused(_)
    ));
    // A same-repository pull request's head is refused as well, named as such.
    let own = pr_payload(repo(1, "acme", false));
    let f = refusal(
        decide_on("pull_request_target", &own, &checkout(HEAD, &[])),
        "deploy",
    );
    assert!(
        f.message.contains("code from the pull request would run"),
        "{}",
        f.message
    );
}

#[test]
fn pull_request_target_with_merge_checkout_is_refused() {
    let p = pr_payload(repo(2, "mallory", true));
    // refs/pull/N/merge as the payload recorded it.
    let f = refusal(
        decide_on("pull_request_target", &p, &checkout(MERGE, &[BASE, HEAD])),
        "deploy",
    );
    assert!(
        f.message
            .contains("the pull request's merge commit (e5bd3914e2e5)"),
        "{}",
        f.message
    );
    // A newer test merge (or a local merge) of the head.
    let f = refusal(
        decide_on(
            "pull_request_target",
            &p,
            &checkout("2222222222222222222222222222222222222222", &[BASE, HEAD]),
        ),
        "deploy",
    );
    assert!(
        f.message.contains("a merge of the pull request's head"),
        "{}",
        f.message
    );
}

#[test]
fn pull_request_target_with_unknown_checkout_is_refused() {
    let p = pr_payload(repo(2, "mallory", true));
    let code = vec![CodeDir {
        label: "$GITHUB_WORKSPACE".into(),
        checkout: Err("git rev-parse failed: fatal: not a git repository".into()),
    }];
    let f = refusal(decide_on("pull_request_target", &p, &code), "deploy");
    assert_safe(&f);
    assert!(
        f.message
            .contains("cannot be read (git rev-parse failed: fatal: not a git repository)"),
        "{}",
        f.message
    );
    assert!(f.hint.unwrap().contains("check out the base branch"));
    let f = refusal(decide_on("pull_request_target", &p, &[]), "deploy");
    assert!(f.message.contains("no checkout was given"), "{}", f.message);
}

#[test]
fn pull_request_target_checks_every_code_folder() {
    let p = pr_payload(repo(2, "mallory", true));
    let mut code = checkout(BASE, &[]);
    code.push(CodeDir {
        label: "pr".into(),
        checkout: Ok(Checkout {
            head: HEAD.into(),
            parents: vec![],
        }),
    });
    let f = refusal(decide_on("pull_request_target", &p, &code), "deploy");
    assert!(
        f.message.contains("head (6dcb09b5b578) in pr:"),
        "{}",
        f.message
    );
    // A definite match wins over an unreadable folder listed first.
    let mut code = vec![CodeDir {
        label: "cfg".into(),
        checkout: Err("not a git repository".into()),
    }];
    code.extend(checkout(HEAD, &[]));
    let f = refusal(decide_on("pull_request_target", &p, &code), "deploy");
    assert!(
        f.message.contains("checked out the pull request's head"),
        "{}",
        f.message
    );
}

#[test]
fn workflow_run_from_a_fork_is_refused() {
    let own = workflow_run_payload("push", repo(1, "acme", false));
    assert_eq!(decide_on("workflow_run", &own, &[]), Decision::Trusted);
    let own_pr = workflow_run_payload("pull_request", repo(1, "acme", false));
    assert_eq!(decide_on("workflow_run", &own_pr, &[]), Decision::Trusted);

    let fork = workflow_run_payload("pull_request", repo(2, "mallory", true));
    let f = refusal(decide_on("workflow_run", &fork, &[]), "deploy");
    assert_safe(&f);
    assert_eq!(
        f.message,
        "refusing to deploy from a workflow_run run triggered by a pull_request run from the \
         fork mallory/shop (into acme/shop): its artifacts and outputs come from untrusted code"
    );
    let gone = workflow_run_payload("pull_request", Value::Null);
    let f = refusal(decide_on("workflow_run", &gone, &[]), "deploy");
    assert!(
        f.message.contains("a fork that was deleted"),
        "{}",
        f.message
    );
}

#[test]
fn malformed_payload_is_refused() {
    let cases: [(&str, Result<&str, &str>, &str); 7] = [
        (
            "pull_request",
            Err("cannot read it: No such file or directory (os error 2)"),
            "No such file",
        ),
        ("pull_request_target", Ok("{not json"), "not JSON"),
        ("pull_request", Ok("[]"), "not a JSON object"),
        ("pull_request", Ok("{}"), "no pull_request object"),
        (
            "pull_request",
            Ok(
                r#"{"pull_request":{"head":{"sha":"x"},"base":{"repo":{"full_name":"acme/shop"}}}}"#,
            ),
            "pull_request.head.repo is missing",
        ),
        (
            "pull_request_target",
            Ok(
                r#"{"pull_request":{"head":{"repo":null},"base":{"repo":{"full_name":"acme/shop"}}}}"#,
            ),
            "pull_request.head.sha is missing",
        ),
        (
            "workflow_run",
            Ok(r#"{"workflow_run":{"repository":{"full_name":"acme/shop"}}}"#),
            "workflow_run.head_repository is missing",
        ),
    ];
    for (event, payload, detail) in cases {
        let d = decide(&Trigger {
            event,
            payload,
            code: &checkout(BASE, &[]),
        });
        let f = refusal(d, "deploy");
        assert_safe(&f);
        assert!(
            f.message
                .contains("event payload ($GITHUB_EVENT_PATH) cannot be used"),
            "{}",
            f.message
        );
        assert!(f.message.contains(detail), "{event}: {}", f.message);
    }
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn no_git(_: &Path) -> Result<Checkout, String> {
    panic!("git must not be consulted here")
}

#[test]
fn off_actions_nothing_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event.json");
    std::fs::write(&path, pr_payload(repo(2, "mallory", true))).unwrap();
    let path = path.to_str().unwrap();
    for actions in [None, Some("false"), Some("")] {
        let mut vars = vec![
            ("GITHUB_EVENT_NAME", "pull_request_target"),
            ("GITHUB_EVENT_PATH", path),
        ];
        if let Some(a) = actions {
            vars.push(("GITHUB_ACTIONS", a));
        }
        assert_eq!(assess(&env_of(&vars), &[], &no_git), Decision::Skipped);
    }
    // On Actions without an event name (act with no event): nothing to judge either.
    assert_eq!(
        assess(&env_of(&[("GITHUB_ACTIONS", "true")]), &[], &no_git),
        Decision::Skipped
    );
    assert!(guard_with(&[("GITHUB_ACTIONS", "false")]).is_ok());
}

fn guard_with(vars: &[(&str, &str)]) -> Result<(), Failure> {
    assess(&env_of(vars), &[], &no_git).into_result("deploy")
}

#[test]
fn assess_reads_the_payload_and_the_checkouts_only_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, pr_payload(repo(2, "mallory", true))).unwrap();
    let event = event.to_str().unwrap();
    // push: no payload read (the path does not even exist), no git.
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_EVENT_PATH", "/nonexistent/event.json"),
    ];
    assert_eq!(assess(&env_of(&vars), &[], &no_git), Decision::Trusted);
    // pull_request from a fork: refused without git.
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_EVENT_PATH", event),
    ];
    assert!(matches!(
        assess(&env_of(&vars), &[], &no_git),
        Decision::Refused(_)
    ));
    // pull_request_target: the workspace and each code folder are read.
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request_target"),
        ("GITHUB_EVENT_PATH", event),
        ("GITHUB_WORKSPACE", "/ws"),
    ];
    let seen = std::sync::Mutex::new(Vec::new());
    let read = |p: &Path| {
        seen.lock().unwrap().push(p.to_path_buf());
        Ok(Checkout {
            head: if p == Path::new("/ws") { BASE } else { HEAD }.into(),
            parents: vec![],
        })
    };
    let d = assess(
        &env_of(&vars),
        &[PathBuf::from("/ws/sub"), PathBuf::new()],
        &read,
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            PathBuf::from("/ws"),
            PathBuf::from("/ws/sub"),
            PathBuf::from(".")
        ]
    );
    let f = refusal(d, "deploy");
    assert!(f.message.contains("in /ws/sub:"), "{}", f.message);
    // No workspace variable: unknown, refused.
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request_target"),
        ("GITHUB_EVENT_PATH", event),
    ];
    let f = guard_with(&vars).unwrap_err();
    assert!(
        f.message.contains("GITHUB_WORKSPACE is not set"),
        "{}",
        f.message
    );
    // No payload file: malformed, refused.
    let vars = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "workflow_run"),
    ];
    let f = guard_with(&vars).unwrap_err();
    assert!(
        f.message.contains("GITHUB_EVENT_PATH is not set"),
        "{}",
        f.message
    );
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

#[test]
fn git_checkout_reads_head_and_parents_even_in_a_shallow_clone() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("SKIP: git is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["commit", "-q", "--allow-empty", "-m", "base"]);
    let base = git(&origin, &["rev-parse", "HEAD"]);
    git(&origin, &["checkout", "-q", "-b", "pr"]);
    git(&origin, &["commit", "-q", "--allow-empty", "-m", "pr"]);
    let head = git(&origin, &["rev-parse", "HEAD"]);
    git(&origin, &["checkout", "-q", "main"]);
    git(
        &origin,
        &["commit", "-q", "--allow-empty", "-m", "main moves"],
    );
    git(&origin, &["merge", "-q", "--no-ff", "-m", "merge", "pr"]);
    let merge = git(&origin, &["rev-parse", "HEAD"]);

    let c = git_checkout(&origin).unwrap();
    assert_eq!(c.head, merge);
    assert_eq!(c.parents.len(), 2);
    assert_eq!(c.parents[1], head);
    assert_ne!(c.parents[0], base);

    // A depth-1 clone of the merge has no parent commits, but the commit still names them.
    let shallow = dir.path().join("shallow");
    let url = format!("file://{}", origin.display());
    git(
        dir.path(),
        &["clone", "-q", "--depth", "1", &url, "shallow"],
    );
    let c = git_checkout(&shallow).unwrap();
    assert_eq!(c.head, merge);
    assert!(c.parents.contains(&head), "{c:?}");
    // From a subfolder too (davit.toml in a folder of the checkout).
    std::fs::create_dir(shallow.join("deploy")).unwrap();
    assert_eq!(git_checkout(&shallow.join("deploy")).unwrap().head, merge);

    // Not a repository, an empty repository, a missing folder: unknown, with git's reason.
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let e = git_checkout(&plain).unwrap_err();
    assert!(e.starts_with("git rev-parse failed: fatal:"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    assert!(git_checkout(&empty).is_err());
    assert!(git_checkout(&dir.path().join("missing")).is_err());
}
