//! Issues and their comments, labels and locks: the approval thread davit-approve writes and
//! reads.

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{
    App, Q, Reject, created, full, gh_error, ok, opt_str, paginate, param, parse_object,
    unprocessable,
};
use crate::state::{self, Comment, Issue, State};

fn labels_of(m: &Map<String, Value>) -> Result<Option<Vec<String>>, Reject> {
    match m.get("labels") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|l| match l {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| unprocessable("Invalid request.\n\nlabel without name")),
                _ => Err(unprocessable(
                    "Invalid request.\n\nFor 'labels', invalid item",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(unprocessable(
            "Invalid request.\n\nFor 'labels', it is not an array.",
        )),
    }
}

const MAX_BODY: usize = 65536;

pub(super) async fn create_issue(
    AxState(app): AxState<App>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let m = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let r = (|| {
        let title = opt_str(&m, "title")?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| unprocessable("Invalid request.\n\n\"title\" wasn't supplied."))?;
        let body = opt_str(&m, "body")?.unwrap_or_default();
        if body.chars().count() > MAX_BODY {
            return Err(unprocessable(
                "Validation Failed: body is too long (maximum is 65536 characters)",
            ));
        }
        let labels = labels_of(&m)?.unwrap_or_default();
        Ok((title, body, labels))
    })();
    let (title, body, labels) = match r {
        Ok(v) => v,
        Err(resp) => return resp.into_response(),
    };
    let mut s = app.lock();
    let repo = full(&owner, &repo);
    let number = s.issues.iter().filter(|i| i.repo == repo).count() as u64 + 1;
    let now = state::now();
    let issue = Issue {
        number,
        id: s.id(),
        repo,
        title,
        body,
        state: "open".into(),
        state_reason: None,
        locked: false,
        labels,
        user: s.token_user.clone(),
        created_at: now,
        updated_at: now,
        closed_at: None,
    };
    s.issues.push(issue.clone());
    created(issue.json(&app.base, 0))
}

fn comment_count(s: &State, repo: &str, number: u64) -> usize {
    s.comments
        .iter()
        .filter(|c| c.repo == repo && c.issue == number)
        .count()
}

pub(super) async fn list_issues(
    AxState(app): AxState<App>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    let want_state = param(&q, "state").unwrap_or("open");
    let want_labels: Vec<&str> = param(&q, "labels")
        .map(|l| l.split(',').filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    let mut found: Vec<&Issue> = s
        .issues
        .iter()
        .filter(|i| i.repo == repo)
        .filter(|i| want_state == "all" || i.state == want_state)
        .filter(|i| want_labels.iter().all(|l| i.labels.iter().any(|x| x == l)))
        .filter(|i| param(&q, "creator").is_none_or(|c| i.user == c))
        .collect();
    found.reverse();
    let page: Vec<Value> = paginate(&found, &q)
        .into_iter()
        .map(|i| i.json(&app.base, comment_count(&s, &repo, i.number)))
        .collect();
    ok(Value::Array(page))
}

pub(super) async fn get_issue(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    match s
        .issues
        .iter()
        .find(|i| i.repo == repo && i.number == number)
    {
        Some(i) => ok(i.json(&app.base, comment_count(&s, &repo, number))),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn update_issue(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let m = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let r = (|| {
        let st = opt_str(&m, "state")?;
        if let Some(st) = &st
            && st != "open"
            && st != "closed"
        {
            return Err(unprocessable(
                "Invalid request.\n\nFor 'state', it is not open or closed.",
            ));
        }
        let reason = opt_str(&m, "state_reason")?;
        if let Some(r) = &reason
            && !["completed", "not_planned", "reopened"].contains(&r.as_str())
        {
            return Err(unprocessable(
                "Invalid request.\n\nFor 'state_reason', invalid value.",
            ));
        }
        Ok((
            st,
            reason,
            opt_str(&m, "title")?,
            opt_str(&m, "body")?,
            labels_of(&m)?,
        ))
    })();
    let (st, reason, title, new_body, labels) = match r {
        Ok(v) => v,
        Err(resp) => return resp.into_response(),
    };
    let mut s = app.lock();
    let repo = full(&owner, &repo);
    let Some(i) = s.issue_mut(&repo, number) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let now = state::now();
    if let Some(st) = st {
        i.closed_at = (st == "closed").then_some(now);
        i.state = st;
        i.state_reason = reason;
    }
    if let Some(t) = title {
        i.title = t;
    }
    if let Some(b) = new_body {
        i.body = b;
    }
    if let Some(l) = labels {
        i.labels = l;
    }
    i.updated_at = now;
    let i = i.clone();
    ok(i.json(&app.base, comment_count(&s, &repo, number)))
}

pub(super) async fn lock_issue(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
) -> Response {
    let mut s = app.lock();
    match s.issue_mut(&full(&owner, &repo), number) {
        Some(i) => {
            i.locked = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn list_comments(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    if !s
        .issues
        .iter()
        .any(|i| i.repo == repo && i.number == number)
    {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    // Oldest first, like GitHub.
    let found: Vec<&Comment> = s
        .comments
        .iter()
        .filter(|c| c.repo == repo && c.issue == number)
        .collect();
    let page: Vec<Value> = paginate(&found, &q)
        .into_iter()
        .map(|c| c.json(&app.base))
        .collect();
    ok(Value::Array(page))
}

fn comment_body(m: &Map<String, Value>) -> Result<String, Reject> {
    let b = opt_str(m, "body")?
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| unprocessable("Invalid request.\n\n\"body\" wasn't supplied."))?;
    if b.chars().count() > MAX_BODY {
        return Err(unprocessable(
            "Validation Failed: body is too long (maximum is 65536 characters)",
        ));
    }
    Ok(b)
}

pub(super) async fn create_comment(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let b = match parse_object(&body).and_then(|m| comment_body(&m)) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let mut s = app.lock();
    let user = s.token_user.clone();
    match s.add_comment(&full(&owner, &repo), number, &user, &b, None) {
        Some(c) => created(c.json(&app.base)),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn edit_comment(
    AxState(app): AxState<App>,
    Path((_owner, _repo, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let b = match parse_object(&body).and_then(|m| comment_body(&m)) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    match app.lock().edit_comment(id, &b) {
        Some(c) => ok(c.json(&app.base)),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
