//! The control API under `/_fake/...`: what a test that runs the fake as a separate process (an
//! end-to-end run under `act`) uses to script GitHub's side, the same operations the in-process
//! [`crate::FakeGithub`] handle offers as methods.
//!
//! | route | effect |
//! |---|---|
//! | `GET /_fake/requests`, `DELETE /_fake/requests` | recorded GitHub requests / clear them |
//! | `POST /_fake/faults` ([`crate::Fault`]), `DELETE /_fake/faults` | inject / clear faults |
//! | `GET /_fake/state` | deployments, statuses, issues, comments |
//! | `POST /_fake/comments` `{repo, issue, user, body, created_at?}` | a comment by anyone at any time |
//! | `PATCH /_fake/comments/{id}` `{body}` | edit a comment (moves `updated_at`) |
//! | `POST /_fake/issues/{owner}/{repo}/{number}` `{state?, locked?}` | close, reopen or lock an issue |
//! | `PUT /_fake/teams/{org}/{slug}` `{"members": [..]}` or `{"fail": 404}` | team membership |
//! | `PUT /_fake/environments/{name}` `{reviewers: [..]}` | an environment and its required reviewers |
//! | `POST /_fake/runs/{run_id}/approvals` `{user, state, environments, comment?}` | a review of a run |
//! | `PUT /_fake/auth` `{expected_token?, token_user?}` | which token is valid, whose it is |

use axum::Router;
use axum::extract::{Json, Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{App, gh_error};
use crate::state::{Fault, TeamSetup};

pub fn router() -> Router<App> {
    Router::new()
        .route("/_fake/requests", get(requests).delete(clear_requests))
        .route("/_fake/faults", post(add_fault).delete(clear_faults))
        .route("/_fake/state", get(dump))
        .route("/_fake/comments", post(add_comment))
        .route("/_fake/comments/{id}", patch(edit_comment))
        .route("/_fake/issues/{owner}/{repo}/{number}", post(set_issue))
        .route("/_fake/teams/{org}/{slug}", put(set_team))
        .route("/_fake/environments/{name}", put(set_environment))
        .route("/_fake/runs/{run_id}/approvals", post(add_run_approval))
        .route("/_fake/auth", put(set_auth))
}

async fn requests(AxState(app): AxState<App>) -> Response {
    Json(app.lock().requests.clone()).into_response()
}

async fn clear_requests(AxState(app): AxState<App>) -> StatusCode {
    app.lock().requests.clear();
    StatusCode::NO_CONTENT
}

async fn add_fault(AxState(app): AxState<App>, Json(f): Json<Fault>) -> StatusCode {
    app.lock().faults.push(f);
    StatusCode::CREATED
}

async fn clear_faults(AxState(app): AxState<App>) -> StatusCode {
    app.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn dump(AxState(app): AxState<App>) -> Response {
    let s = app.lock();
    Json(json!({
        "deployments": s.deployments,
        "statuses": s.statuses,
        "issues": s.issues,
        "comments": s.comments,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct NewComment {
    repo: String,
    issue: u64,
    user: String,
    body: String,
    created_at: Option<DateTime<Utc>>,
}

async fn add_comment(AxState(app): AxState<App>, Json(c): Json<NewComment>) -> Response {
    let made = app
        .lock()
        .add_comment(&c.repo, c.issue, &c.user, &c.body, c.created_at);
    match made {
        Some(c) => (StatusCode::CREATED, Json(c.json(&app.base))).into_response(),
        None => gh_error(StatusCode::NOT_FOUND, "no such issue"),
    }
}

#[derive(Deserialize)]
struct Edit {
    body: String,
}

async fn edit_comment(
    AxState(app): AxState<App>,
    Path(id): Path<u64>,
    Json(e): Json<Edit>,
) -> Response {
    let edited = app.lock().edit_comment(id, &e.body);
    match edited {
        Some(c) => Json(c.json(&app.base)).into_response(),
        None => gh_error(StatusCode::NOT_FOUND, "no such comment"),
    }
}

#[derive(Deserialize)]
struct IssueChange {
    state: Option<String>,
    locked: Option<bool>,
}

async fn set_issue(
    AxState(app): AxState<App>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Json(ch): Json<IssueChange>,
) -> Response {
    let mut s = app.lock();
    let Some(i) = s.issue_mut(&format!("{owner}/{repo}"), number) else {
        return gh_error(StatusCode::NOT_FOUND, "no such issue");
    };
    if let Some(st) = ch.state {
        i.closed_at = (st == "closed").then(crate::state::now);
        i.state = st;
    }
    if let Some(l) = ch.locked {
        i.locked = l;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_team(
    AxState(app): AxState<App>,
    Path((org, slug)): Path<(String, String)>,
    Json(t): Json<TeamSetup>,
) -> StatusCode {
    app.lock().teams.insert((org, slug), t);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Env {
    #[serde(default)]
    reviewers: Vec<String>,
}

async fn set_environment(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    Json(e): Json<Env>,
) -> StatusCode {
    app.lock().environments.insert(name, e.reviewers);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Review {
    user: String,
    state: String,
    environments: Vec<String>,
    #[serde(default)]
    comment: String,
}

async fn add_run_approval(
    AxState(app): AxState<App>,
    Path(run_id): Path<u64>,
    Json(r): Json<Review>,
) -> StatusCode {
    app.lock()
        .run_approvals
        .entry(run_id)
        .or_default()
        .push(review_json(&r.user, &r.state, &r.environments, &r.comment));
    StatusCode::CREATED
}

pub fn review_json(user: &str, state: &str, environments: &[String], comment: &str) -> Value {
    json!({
        "state": state,
        "comment": comment,
        "user": crate::state::user(user),
        "environments": environments.iter().map(|e| json!({"name": e})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct Auth {
    expected_token: Option<String>,
    token_user: Option<String>,
}

async fn set_auth(AxState(app): AxState<App>, Json(a): Json<Auth>) -> StatusCode {
    let mut s = app.lock();
    s.expected_token = a.expected_token;
    if let Some(u) = a.token_user {
        s.token_user = u;
    }
    StatusCode::NO_CONTENT
}
