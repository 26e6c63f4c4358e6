//! Who may approve: team members, an environment's required reviewers, and a run's
//! environment approvals.

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{App, Q, gh_error, ok, paginate};
use crate::state;

pub(super) async fn team_members(
    AxState(app): AxState<App>,
    Path((org, slug)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let s = app.lock();
    match s.teams.get(&(org, slug)) {
        Some(state::TeamSetup::Members(m)) => {
            let page: Vec<Value> = paginate(m, &q).iter().map(|l| state::user(l)).collect();
            ok(Value::Array(page))
        }
        Some(state::TeamSetup::Fail(code)) => gh_error(
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            if *code == 403 {
                "Resource not accessible by integration"
            } else {
                "Not Found"
            },
        ),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn get_environment(
    AxState(app): AxState<App>,
    Path((_owner, _repo, name)): Path<(String, String, String)>,
) -> Response {
    let s = app.lock();
    match s.environments.get(&name) {
        Some(reviewers) => {
            let mut rules = Vec::new();
            if !reviewers.is_empty() {
                rules.push(json!({
                    "id": 1,
                    "type": "required_reviewers",
                    "prevent_self_review": true,
                    "reviewers": reviewers.iter().map(|r| json!({"type": "User", "reviewer": state::user(r)})).collect::<Vec<_>>(),
                }));
            }
            ok(json!({"id": 1, "name": name, "protection_rules": rules}))
        }
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

pub(super) async fn run_approvals(
    AxState(app): AxState<App>,
    Path((_owner, _repo, run_id)): Path<(String, String, u64)>,
) -> Response {
    let s = app.lock();
    ok(Value::Array(
        s.run_approvals.get(&run_id).cloned().unwrap_or_default(),
    ))
}
