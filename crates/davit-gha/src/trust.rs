//! Untrusted triggers (T07): the privileged steps refuse to run for code that is not the
//! repository's own.
//!
//! A deploy, rollback, verify, backup, lock release, approval or registry push holds production
//! or registry credentials. On GitHub Actions some triggers hand such a step code or data that a
//! stranger wrote:
//!
//! * `pull_request` (and `pull_request_review`, `pull_request_review_comment`) for a pull request
//!   from a fork: the checkout is the fork's code. GitHub withholds secrets by default, but a
//!   repository setting, a self-hosted runner or an ssh key in a runner image can still expose
//!   production. Refused, with no override: that is the point.
//! * `pull_request_target`: runs the base branch's workflow *with* secrets and a write token. It
//!   is safe only while the checked-out code is the base branch's. Refused when the commit
//!   checked out in `$GITHUB_WORKSPACE` (or in a folder the step reads code from, such as the one
//!   holding `davit.toml`) is the pull request's head, its merge commit, or a merge of its head;
//!   refused as well when that commit cannot be read (fail closed).
//! * `workflow_run` whose triggering run came from a fork (`workflow_run.head_repository` is not
//!   `workflow_run.repository`): its artifacts and outputs were produced by the fork's code.
//!
//! Every other trigger (push, workflow_dispatch, release, schedule, merge_group, ...) runs the
//! repository's own code and passes. Off Actions (`GITHUB_ACTIONS` not `true`: a laptop) nothing
//! is checked. A payload that cannot be read or lacks the fields above, under one of those pull
//! request triggers, is refused.
//!
//! The refusal is [`Exit::BadInput`](davit_core::Exit) (2): the fix is in the workflow (its
//! trigger or its checkout), and running it again unchanged will not pass. Strings from the
//! payload that the fork controls (branch names, titles) are never printed; repository names
//! and commit ids are printed only after reducing them to safe characters, so a message cannot
//! carry a workflow command.

use davit_core::Failure;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit checked out in a working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// `HEAD`'s commit id (lowercase hex).
    pub head: String,
    /// Its parents, read from the commit object itself (present even in a shallow clone, where
    /// the parent commits are not).
    pub parents: Vec<String>,
}

/// A folder whose code a step runs or reads, and what is checked out there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDir {
    /// How messages name it (`$GITHUB_WORKSPACE`, or the path).
    pub label: String,
    /// The checkout, or why it could not be read.
    pub checkout: Result<Checkout, String>,
}

/// What started this run, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Trigger<'a> {
    /// `GITHUB_EVENT_NAME`.
    pub event: &'a str,
    /// The text of the event payload (`GITHUB_EVENT_PATH`), or why it could not be read.
    /// Consulted only for the pull request triggers.
    pub payload: Result<&'a str, &'a str>,
    /// The checkouts the step uses. Consulted only for `pull_request_target`.
    pub code: &'a [CodeDir],
}

/// The verdict on a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not on GitHub Actions, or no event: nothing to judge.
    Skipped,
    /// The code and inputs are the repository's own.
    Trusted,
    /// The step must not run.
    Refused(Refusal),
}

/// Why a trigger is refused and how to proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The event name (safe characters only).
    pub event: String,
    /// Completes "refusing to <action> from a <event> run ...".
    pub reason: String,
    pub hint: String,
}

impl Refusal {
    /// The error every binary prints and exits with (exit code 2).
    pub fn failure(&self, action: &str) -> Failure {
        Failure::bad_input(
            format!(
                "refusing to {action} from a {} run {}",
                self.event, self.reason
            ),
            self.hint.clone(),
        )
    }
}

impl Decision {
    /// `Err` with the refusal as a [`Failure`] for `action` ("deploy", "push an image").
    pub fn into_result(self, action: &str) -> Result<(), Failure> {
        match self {
            Decision::Refused(r) => Err(r.failure(action)),
            Decision::Skipped | Decision::Trusted => Ok(()),
        }
    }
}

/// Triggers whose checkout is the pull request's code, without secrets by default.
const PULL_REQUEST_EVENTS: [&str; 3] = [
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
];

/// Whether an event is one that this module looks into (the others are trusted unread).
pub fn scrutinized(event: &str) -> bool {
    PULL_REQUEST_EVENTS.contains(&event)
        || event == "pull_request_target"
        || event == "workflow_run"
}

const FORK_HINT: &str = "run this step on a trusted trigger once the change \
     is merged (push to the default branch, workflow_dispatch or release) and keep fork pull \
     requests to steps without credentials (gate, image without push); there is no override for \
     forks";

const TARGET_HINT: &str = "check out the base branch instead (actions/checkout \
     without `ref:` does that under pull_request_target), or run this step on push, \
     workflow_dispatch or release; build and test pull request code in a pull_request workflow, \
     which gets no secrets";

const UNKNOWN_CHECKOUT_HINT: &str = "check out the base branch with actions/checkout \
     (without `ref:`) before this step so davit can confirm the code is the repository's own, or \
     run this step on push, workflow_dispatch or release";

const PAYLOAD_HINT: &str = "the GitHub runner writes this file for every job; run \
     this step in an ordinary job, or on push, workflow_dispatch or release";

/// The decision over a trigger: pure, for every case the module docs list.
pub fn decide(t: &Trigger<'_>) -> Decision {
    let event = t.event.trim();
    if event.is_empty() {
        return Decision::Skipped;
    }
    if !scrutinized(event) {
        return Decision::Trusted;
    }
    let shown = safe_name(event);
    let refuse = |reason: String, hint: &str| {
        Decision::Refused(Refusal {
            event: shown.clone(),
            reason,
            hint: hint.to_string(),
        })
    };
    let malformed = |detail: &str| {
        refuse(
            format!(
                "whose event payload ($GITHUB_EVENT_PATH) cannot be used ({}): davit cannot tell \
                 whether the code comes from a fork",
                printable(detail, 200)
            ),
            PAYLOAD_HINT,
        )
    };
    let payload: Value = match t.payload {
        Err(why) => return malformed(why),
        Ok(text) => match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return malformed("it is not a JSON object"),
            Err(e) => return malformed(&format!("not JSON: {e}")),
        },
    };

    if event == "workflow_run" {
        return match workflow_run_origin(&payload) {
            Err(detail) => malformed(&detail),
            Ok(Origin::Own) => Decision::Trusted,
            Ok(Origin::Fork { head, base, via }) => refuse(
                format!(
                    "triggered by a {via} run from {} (into {base}): its artifacts and outputs \
                     come from untrusted code",
                    fork_phrase(head.as_deref())
                ),
                FORK_HINT,
            ),
        };
    }

    let Some(pr) = payload.get("pull_request").filter(|v| v.is_object()) else {
        return malformed("it has no pull_request object");
    };
    let origin = match pull_request_origin(pr) {
        Ok(o) => o,
        Err(detail) => return malformed(&detail),
    };

    if event != "pull_request_target" {
        return match origin {
            Origin::Own => Decision::Trusted,
            Origin::Fork { head, base, .. } => refuse(
                format!(
                    "for a pull request from {} (into {base}): its code and inputs are \
                     untrusted and must not reach production or registry credentials",
                    fork_phrase(head.as_deref())
                ),
                FORK_HINT,
            ),
        };
    }

    // pull_request_target: the base branch's workflow with secrets; safe only on base code.
    let Some(head_sha) = str_at(pr, &["head", "sha"]).filter(|s| is_sha(s)) else {
        return malformed("pull_request.head.sha is missing or not a commit id");
    };
    let head_sha = head_sha.to_ascii_lowercase();
    let merge_sha = str_at(pr, &["merge_commit_sha"])
        .filter(|s| is_sha(s))
        .map(str::to_ascii_lowercase);
    let whose = match origin {
        Origin::Own => "the pull request",
        Origin::Fork { .. } => "a fork",
    };
    for dir in t.code {
        let Ok(c) = &dir.checkout else { continue };
        let head = c.head.to_ascii_lowercase();
        let what = if head == head_sha {
            "the pull request's head"
        } else if merge_sha.as_deref() == Some(head.as_str()) {
            "the pull request's merge commit"
        } else if c.parents.iter().any(|p| p.eq_ignore_ascii_case(&head_sha)) {
            "a merge of the pull request's head"
        } else {
            continue;
        };
        return refuse(
            format!(
                "that checked out {what} ({}) in {}: code from {whose} would run with this \
                 workflow's secrets",
                short(&head),
                dir.label
            ),
            TARGET_HINT,
        );
    }
    let unknown = t.code.iter().find_map(|d| match &d.checkout {
        Err(why) => Some((d.label.as_str(), why.as_str())),
        Ok(_) => None,
    });
    match (t.code.is_empty(), unknown) {
        (true, _) => refuse(
            "but no checkout was given to inspect: it could be the pull request's code, which \
             would run with this workflow's secrets"
                .to_string(),
            UNKNOWN_CHECKOUT_HINT,
        ),
        (false, Some((label, why))) => refuse(
            format!(
                "but the commit checked out in {label} cannot be read ({}): it could be the pull \
                 request's code, which would run with this workflow's secrets",
                printable(why, 200)
            ),
            UNKNOWN_CHECKOUT_HINT,
        ),
        (false, None) => Decision::Trusted,
    }
}

/// Where the code of a pull request or triggering run comes from.
enum Origin {
    Own,
    /// `head` is None when the fork was deleted; names are reduced to safe characters.
    Fork {
        head: Option<String>,
        base: String,
        via: String,
    },
}

fn fork_phrase(head: Option<&str>) -> String {
    match head {
        Some(h) => format!("the fork {h}"),
        None => "a fork that was deleted".to_string(),
    }
}

/// A pull request object: fork when the head repository is gone (a deleted fork) or is another
/// repository than the base (by full name, id, or a fork owned by someone else).
fn pull_request_origin(pr: &Value) -> Result<Origin, String> {
    let base = pr
        .get("base")
        .and_then(|b| b.get("repo"))
        .filter(|r| r.is_object())
        .ok_or("pull_request.base.repo is missing")?;
    let base_name =
        str_at(base, &["full_name"]).ok_or("pull_request.base.repo.full_name is missing")?;
    let head = pr
        .get("head")
        .filter(|h| h.is_object())
        .ok_or("pull_request.head is missing")?;
    let head_repo = match head.get("repo") {
        None => return Err("pull_request.head.repo is missing".into()),
        Some(Value::Null) => None,
        Some(r) if r.is_object() => Some(r),
        Some(_) => return Err("pull_request.head.repo is not an object".into()),
    };
    origin(
        head_repo,
        base,
        base_name,
        "pull_request",
        "pull_request.head.repo",
    )
}

/// A `workflow_run` payload: fork when the triggering run's head repository is gone or is not
/// this repository.
fn workflow_run_origin(payload: &Value) -> Result<Origin, String> {
    let run = payload
        .get("workflow_run")
        .filter(|v| v.is_object())
        .ok_or("it has no workflow_run object")?;
    let base = run
        .get("repository")
        .filter(|r| r.is_object())
        .ok_or("workflow_run.repository is missing")?;
    let base_name =
        str_at(base, &["full_name"]).ok_or("workflow_run.repository.full_name is missing")?;
    let head_repo = match run.get("head_repository") {
        None => return Err("workflow_run.head_repository is missing".into()),
        Some(Value::Null) => None,
        Some(r) if r.is_object() => Some(r),
        Some(_) => return Err("workflow_run.head_repository is not an object".into()),
    };
    let via = str_at(run, &["event"]).unwrap_or("workflow");
    origin(
        head_repo,
        base,
        base_name,
        via,
        "workflow_run.head_repository",
    )
}

fn origin(
    head_repo: Option<&Value>,
    base: &Value,
    base_name: &str,
    via: &str,
    field: &str,
) -> Result<Origin, String> {
    let fork = |head: Option<String>| Origin::Fork {
        head,
        base: safe_name(base_name),
        via: safe_name(via),
    };
    let Some(head) = head_repo else {
        return Ok(fork(None));
    };
    let head_name = str_at(head, &["full_name"]).ok_or(format!("{field}.full_name is missing"))?;
    let other_name = !head_name.eq_ignore_ascii_case(base_name);
    let other_id = matches!(
        (head.get("id").and_then(Value::as_u64), base.get("id").and_then(Value::as_u64)),
        (Some(h), Some(b)) if h != b
    );
    let owner = |r: &Value| str_at(r, &["owner", "login"]).map(str::to_ascii_lowercase);
    let foreign_fork = head.get("fork").and_then(Value::as_bool) == Some(true)
        && matches!((owner(head), owner(base)), (Some(h), Some(b)) if h != b);
    Ok(if other_name || other_id || foreign_fork {
        fork(Some(safe_name(head_name)))
    } else {
        Origin::Own
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// A repository or event name reduced to characters GitHub allows in them; anything else
/// (a newline, `:`, `%`) becomes `?`, so the name can neither start a workflow command nor
/// forge a line.
fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('?');
    }
    out
}

/// Local text (a path, git's stderr) on one line: control characters escaped, length capped.
fn printable(s: &str, max: usize) -> String {
    let one_line: String = s
        .trim()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// Read the checkout of `dir` with git: `HEAD` and its parents from the commit object.
/// Any failure (no git, no folder, not a repository, no commit) is the reason it is unknown.
pub fn git_checkout(dir: &Path) -> Result<Checkout, String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(format!("git {} failed: {first}", args[0]));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let head = run(&["rev-parse", "--verify", "HEAD^{commit}"])?
        .trim()
        .to_ascii_lowercase();
    if !is_sha(&head) {
        return Err(format!(
            "git rev-parse printed {:?}, not a commit id",
            printable(&head, 80)
        ));
    }
    let object = run(&["cat-file", "commit", &head])?;
    let parents = object
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("parent "))
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    Ok(Checkout { head, parents })
}

/// Judge the run from its environment (`env` reads a variable). `code_dirs` are folders the
/// step reads code or configuration from besides `$GITHUB_WORKSPACE` (which is always
/// inspected); `read` reads a folder's checkout (normally [`git_checkout`]) and is called only
/// under `pull_request_target`.
pub fn assess(
    env: &dyn Fn(&str) -> Option<String>,
    code_dirs: &[PathBuf],
    read: &dyn Fn(&Path) -> Result<Checkout, String>,
) -> Decision {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if var("GITHUB_ACTIONS").as_deref() != Some("true") {
        return Decision::Skipped;
    }
    let Some(event) = var("GITHUB_EVENT_NAME") else {
        return Decision::Skipped;
    };
    if !scrutinized(&event) {
        return Decision::Trusted;
    }
    let text = match var("GITHUB_EVENT_PATH") {
        None => Err("GITHUB_EVENT_PATH is not set".to_string()),
        Some(p) => std::fs::read_to_string(&p).map_err(|e| format!("cannot read it: {e}")),
    };
    let mut code = Vec::new();
    if event == "pull_request_target" {
        code.push(CodeDir {
            label: "$GITHUB_WORKSPACE".into(),
            checkout: match var("GITHUB_WORKSPACE") {
                Some(ws) => read(Path::new(&ws)),
                None => Err("GITHUB_WORKSPACE is not set".into()),
            },
        });
        for d in code_dirs {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d.as_path()
            };
            code.push(CodeDir {
                label: printable(&d.display().to_string(), 200),
                checkout: read(d),
            });
        }
    }
    decide(&Trigger {
        event: &event,
        payload: text.as_deref().map_err(String::as_str),
        code: &code,
    })
}

/// The guard every privileged binary calls before it touches production or a registry:
/// `Err` (exit 2) when this run's trigger is untrusted, `Ok` otherwise and off Actions.
/// `action` names what was refused ("deploy", "push an image"); `code_dirs` as in [`assess`].
pub fn guard(action: &str, code_dirs: &[PathBuf]) -> Result<(), Failure> {
    assess(&|k| std::env::var(k).ok(), code_dirs, &git_checkout).into_result(action)
}

/// The folder holding a file the step reads code or configuration from (`davit.toml`), for
/// [`guard`]'s `code_dirs`.
pub fn folder_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

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
}
