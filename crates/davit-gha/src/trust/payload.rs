//! Where the code of a pull request or of a triggering run comes from, read from the event
//! payload: the repository's own, or a fork (by name, id or owner; a deleted fork is a fork).
//!
//! Kept apart from the decision so the payload's shape (which fields GitHub sends, which may be
//! null) is one module's concern; names leave it reduced to safe characters.

use super::text::safe_name;
use serde_json::Value;

/// Where the code of a pull request or triggering run comes from.
pub(super) enum Origin {
    Own,
    /// `head` is None when the fork was deleted; names are reduced to safe characters.
    Fork {
        head: Option<String>,
        base: String,
        via: String,
    },
}

pub(super) fn fork_phrase(head: Option<&str>) -> String {
    match head {
        Some(h) => format!("the fork {h}"),
        None => "a fork that was deleted".to_string(),
    }
}

/// A pull request object: fork when the head repository is gone (a deleted fork) or is another
/// repository than the base (by full name, id, or a fork owned by someone else).
pub(super) fn pull_request_origin(pr: &Value) -> Result<Origin, String> {
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
pub(super) fn workflow_run_origin(payload: &Value) -> Result<Origin, String> {
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

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}
