//! Deployments and deployment statuses, validated as GitHub does (or stricter, where GitHub's
//! answer depends on repository state).

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    App, Q, created, full, gh_error, is_url, ok, opt_bool, opt_str, paginate, param, parse_object,
    reject, unprocessable,
};
use crate::state::{self, Deployment, DeploymentStatus};

pub(super) async fn create_deployment(
    AxState(app): AxState<App>,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let m = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let r = (|| {
        let git_ref = opt_str(&m, "ref")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unprocessable("Invalid request.\n\n\"ref\" wasn't supplied."))?;
        let environment = opt_str(&m, "environment")?.unwrap_or_else(|| "production".into());
        let task = opt_str(&m, "task")?.unwrap_or_else(|| "deploy".into());
        let description = opt_str(&m, "description")?;
        let payload = match m.get("payload") {
            None | Some(Value::Null) => json!({}),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| {
                unprocessable("Invalid request.\n\nFor 'payload', it is not valid JSON.")
            })?,
            Some(_) => {
                return Err(unprocessable(
                    "Invalid request.\n\nFor 'payload', it is not an object.",
                ));
            }
        };
        if opt_bool(&m, "auto_merge")? != Some(false) {
            return Err(reject(
                StatusCode::CONFLICT,
                "Conflict merging the default branch into the ref (send auto_merge: false).",
            ));
        }
        match m.get("required_contexts") {
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
            _ => {
                return Err(reject(
                    StatusCode::CONFLICT,
                    "Conflict: Commit status checks failed (send required_contexts: []).",
                ));
            }
        }
        let production =
            opt_bool(&m, "production_environment")?.unwrap_or(environment == "production");
        let transient = opt_bool(&m, "transient_environment")?.unwrap_or(false);
        let sha = if git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit()) {
            git_ref.clone()
        } else {
            "0".repeat(40)
        };
        Ok((
            git_ref,
            environment,
            task,
            description,
            payload,
            production,
            transient,
            sha,
        ))
    })();
    let (git_ref, environment, task, description, payload, production, transient, sha) = match r {
        Ok(v) => v,
        Err(resp) => return resp.into_response(),
    };
    let mut s = app.lock();
    let now = state::now();
    let d = Deployment {
        id: s.id(),
        repo: full(&owner, &repo),
        sha,
        git_ref,
        task,
        payload,
        environment,
        description,
        production_environment: production,
        transient_environment: transient,
        creator: s.token_user.clone(),
        created_at: now,
        updated_at: now,
    };
    s.deployments.push(d.clone());
    created(d.json(&app.base))
}

pub(super) async fn list_deployments(
    AxState(app): AxState<App>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    let mut found: Vec<&Deployment> = s
        .deployments
        .iter()
        .filter(|d| d.repo == repo)
        .filter(|d| param(&q, "sha").is_none_or(|v| d.sha == v))
        .filter(|d| param(&q, "ref").is_none_or(|v| d.git_ref == v))
        .filter(|d| param(&q, "task").is_none_or(|v| d.task == v))
        .filter(|d| param(&q, "environment").is_none_or(|v| d.environment == v))
        .collect();
    found.reverse();
    let page: Vec<Value> = paginate(&found, &q)
        .into_iter()
        .map(|d| d.json(&app.base))
        .collect();
    ok(Value::Array(page))
}

pub(super) async fn get_deployment(
    AxState(app): AxState<App>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    match s.deployments.iter().find(|d| d.repo == repo && d.id == id) {
        Some(d) => ok(d.json(&app.base)),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

const STATES: [&str; 7] = [
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
];

pub(super) async fn create_status(
    AxState(app): AxState<App>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> Response {
    let m = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let r = (|| {
        let st = opt_str(&m, "state")?
            .ok_or_else(|| unprocessable("Invalid request.\n\n\"state\" wasn't supplied."))?;
        if !STATES.contains(&st.as_str()) {
            return Err(unprocessable(&format!(
                "Invalid request.\n\nFor 'state', \"{st}\" is not a valid state."
            )));
        }
        let description = opt_str(&m, "description")?.unwrap_or_default();
        if description.chars().count() > 140 {
            return Err(unprocessable(
                "Validation Failed: description is too long (maximum is 140 characters)",
            ));
        }
        let mut urls = Vec::new();
        for key in ["log_url", "environment_url", "target_url"] {
            let v = opt_str(&m, key)?.unwrap_or_default();
            if !v.is_empty() && !is_url(&v) {
                return Err(unprocessable(&format!(
                    "Validation Failed: {key} must use http(s) scheme"
                )));
            }
            urls.push(v);
        }
        let auto_inactive = opt_bool(&m, "auto_inactive")?.unwrap_or(true);
        let environment = opt_str(&m, "environment")?;
        let log_url = if urls[0].is_empty() {
            urls[2].clone()
        } else {
            urls[0].clone()
        };
        Ok((
            st,
            description,
            log_url,
            urls[1].clone(),
            auto_inactive,
            environment,
        ))
    })();
    let (st, description, log_url, environment_url, auto_inactive, environment) = match r {
        Ok(v) => v,
        Err(resp) => return resp.into_response(),
    };
    let mut s = app.lock();
    let repo = full(&owner, &repo);
    let Some(d) = s
        .deployments
        .iter()
        .find(|d| d.repo == repo && d.id == id)
        .cloned()
    else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let status = DeploymentStatus {
        id: s.id(),
        deployment_id: id,
        state: st.clone(),
        description,
        environment: environment.unwrap_or_else(|| d.environment.clone()),
        environment_url,
        log_url,
        creator: s.token_user.clone(),
        created_at: state::now(),
    };
    s.statuses.push(status.clone());
    // GitHub's auto_inactive: earlier non-transient, non-production deployments of the same
    // environment whose latest state is success become inactive.
    if st == "success" && auto_inactive {
        let older: Vec<u64> = s
            .deployments
            .iter()
            .filter(|o| {
                o.repo == repo
                    && o.id != id
                    && o.environment == d.environment
                    && !o.production_environment
                    && !o.transient_environment
            })
            .map(|o| o.id)
            .collect();
        for oid in older {
            let latest = s
                .statuses
                .iter()
                .rev()
                .find(|x| x.deployment_id == oid)
                .map(|x| x.state.clone());
            if latest.as_deref() == Some("success") {
                let sid = s.id();
                let creator = s.token_user.clone();
                s.statuses.push(DeploymentStatus {
                    id: sid,
                    deployment_id: oid,
                    state: "inactive".into(),
                    description: String::new(),
                    environment: d.environment.clone(),
                    environment_url: String::new(),
                    log_url: String::new(),
                    creator,
                    created_at: state::now(),
                });
            }
        }
    }
    created(status.json(&app.base, &repo))
}

pub(super) async fn list_statuses(
    AxState(app): AxState<App>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Query(q): Q,
) -> Response {
    let s = app.lock();
    let repo = full(&owner, &repo);
    if !s.deployments.iter().any(|d| d.repo == repo && d.id == id) {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let mut found: Vec<&DeploymentStatus> = s
        .statuses
        .iter()
        .filter(|x| x.deployment_id == id)
        .collect();
    found.reverse();
    let page: Vec<Value> = paginate(&found, &q)
        .into_iter()
        .map(|x| x.json(&app.base, &repo))
        .collect();
    ok(Value::Array(page))
}
