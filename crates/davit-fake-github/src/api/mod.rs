//! The GitHub REST routes davit calls, with GitHub's validation rules, plus the middleware that
//! checks authentication, records requests and fires injected faults.
//!
//! Validation is deliberately at least as strict as GitHub: a request shape GitHub would reject
//! (422), or accept only depending on repository state (a deployment without `auto_merge: false`
//! or `required_contexts: []` can answer 409 on a real repository), fails here every time, so
//! the client is tested against the worst case rather than the lucky one.
//!
//! Here: the router, the shared request helpers and the gate; the routes themselves are in
//! `deployments` (deployments and their statuses), `issues` (issues, comments, locks: the
//! approval thread) and `approvals` (teams, environments, run approvals: who may approve).

mod approvals;
mod deployments;
mod gate;
mod issues;

use approvals::{get_environment, run_approvals, team_members};
use deployments::{
    create_deployment, create_status, get_deployment, list_deployments, list_statuses,
};
use gate::gate;
use issues::{
    create_comment, create_issue, edit_comment, get_issue, list_comments, list_issues, lock_issue,
    update_issue,
};

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Map, Value, json};

use crate::state::State;

#[derive(Clone)]
pub struct App {
    pub state: Arc<Mutex<State>>,
    /// The fake's own URL, used to build `url`/`html_url` fields.
    pub base: String,
}

impl App {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) type Q = Query<Vec<(String, String)>>;

pub fn router(app: App) -> Router {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/deployments",
            post(create_deployment).get(list_deployments),
        )
        .route(
            "/repos/{owner}/{repo}/deployments/{id}",
            get(get_deployment),
        )
        .route(
            "/repos/{owner}/{repo}/deployments/{id}/statuses",
            post(create_status).get(list_statuses),
        )
        .route(
            "/repos/{owner}/{repo}/issues",
            post(create_issue).get(list_issues),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}",
            get(get_issue).patch(update_issue),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/lock",
            put(lock_issue),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            get(list_comments).post(create_comment),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}",
            patch(edit_comment),
        )
        .route("/orgs/{org}/teams/{slug}/members", get(team_members))
        .route(
            "/repos/{owner}/{repo}/environments/{name}",
            get(get_environment),
        )
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals",
            get(run_approvals),
        )
        .merge(crate::control::router())
        .fallback(|| async { gh_error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

/// GitHub's error document.
pub fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

/// A rejected request, kept small so validation helpers can return it by value.
pub struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        gh_error(self.0, &self.1)
    }
}

pub(super) fn reject(status: StatusCode, message: &str) -> Reject {
    Reject(status, message.to_string())
}

pub(super) fn unprocessable(message: &str) -> Reject {
    reject(StatusCode::UNPROCESSABLE_ENTITY, message)
}

pub(super) fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub(super) fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

pub(super) fn parse_object(bytes: &Bytes) -> Result<Map<String, Value>, Reject> {
    if bytes.is_empty() {
        return Err(reject(StatusCode::BAD_REQUEST, "Problems parsing JSON"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(reject(
            StatusCode::BAD_REQUEST,
            "Body should be a JSON object",
        )),
        Err(_) => Err(reject(StatusCode::BAD_REQUEST, "Problems parsing JSON")),
    }
}

pub(super) fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(unprocessable(&format!(
            "Invalid request.\n\nFor '{key}', it is not a string."
        ))),
    }
}

pub(super) fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, Reject> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(unprocessable(&format!(
            "Invalid request.\n\nFor '{key}', it is not a boolean."
        ))),
    }
}

pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

pub(super) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// GitHub pagination: `per_page` (max 100, default 30) and `page` (from 1).
pub(super) fn paginate<T: Clone>(items: &[T], q: &[(String, String)]) -> Vec<T> {
    let per_page = param(q, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = param(q, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

pub(super) fn full(owner: &str, repo: &str) -> String {
    format!("{owner}/{repo}")
}
