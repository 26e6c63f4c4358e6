//! The GitHub REST routes davit calls, with GitHub's validation rules, plus the middleware that
//! checks authentication, records requests and fires injected faults.
//!
//! Validation is deliberately at least as strict as GitHub: a request shape GitHub would reject
//! (422), or accept only depending on repository state (a deployment without `auto_merge: false`
//! or `required_contexts: []` can answer 409 on a real repository), fails here every time, so
//! the client is tested against the worst case rather than the lucky one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Map, Value, json};

use crate::state::{self, Comment, Deployment, DeploymentStatus, Issue, RecordedRequest, State};

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

type Q = Query<Vec<(String, String)>>;

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

fn reject(status: StatusCode, message: &str) -> Reject {
    Reject(status, message.to_string())
}

fn unprocessable(message: &str) -> Reject {
    reject(StatusCode::UNPROCESSABLE_ENTITY, message)
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Authentication, recording and fault injection for every GitHub route. Control routes
/// (`/_fake/...`) pass straight through and are not recorded.
async fn gate(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    if path.starts_with("/_fake") {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let method = parts.method.to_string();
    let (auth_scheme, token) = match parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match v.split_once(' ') {
            Some((s, t)) => (Some(s.to_string()), Some(t.trim().to_string())),
            None => (Some(String::new()), None),
        },
        None => (None, None),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION)
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Record before anything can stall, so a request whose answer is delayed past the client's
    // timeout is still visible to the test.
    let (index, fault, expected) = {
        let mut s = app.lock();
        s.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            headers,
            auth_scheme: auth_scheme.clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            status: 0,
        });
        (
            s.requests.len() - 1,
            s.take_fault(&method, &path),
            s.expected_token.clone(),
        )
    };

    let response = 'answer: {
        let scheme_ok = matches!(auth_scheme.as_deref(), Some("Bearer" | "token" | "bearer"));
        let token_ok = match (&token, &expected) {
            (Some(t), Some(e)) => t == e,
            (Some(t), None) => !t.is_empty(),
            (None, _) => false,
        };
        if !scheme_ok || !token_ok {
            break 'answer gh_error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        let has_body = !bytes.is_empty();
        if has_body && matches!(parts.method, Method::POST | Method::PATCH | Method::PUT) {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !ct.starts_with("application/json") {
                break 'answer gh_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported 'Content-Type' header",
                );
            }
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        match fault {
            Some(f) if !f.after_handler => {
                tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
                if f.status == 0 {
                    next.run(request).await
                } else {
                    fault_response(&f)
                }
            }
            Some(f) => {
                let real = next.run(request).await;
                tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
                if f.status == 0 {
                    real
                } else {
                    fault_response(&f)
                }
            }
            None => next.run(request).await,
        }
    };
    if let Some(r) = app.lock().requests.get_mut(index) {
        r.status = response.status().as_u16();
    }
    response
}

fn fault_response(f: &state::Fault) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut r = if status.is_server_error() && f.message.is_none() {
        // What a proxy in front of GitHub sends: not JSON.
        (status, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response()
    } else {
        gh_error(status, f.message.as_deref().unwrap_or("injected fault"))
    };
    for (k, v) in &f.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            r.headers_mut().insert(name, value);
        }
    }
    r
}

fn parse_object(bytes: &Bytes) -> Result<Map<String, Value>, Reject> {
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

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(unprocessable(&format!(
            "Invalid request.\n\nFor '{key}', it is not a string."
        ))),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, Reject> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(unprocessable(&format!(
            "Invalid request.\n\nFor '{key}', it is not a boolean."
        ))),
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// GitHub pagination: `per_page` (max 100, default 30) and `page` (from 1).
fn paginate<T: Clone>(items: &[T], q: &[(String, String)]) -> Vec<T> {
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

fn full(owner: &str, repo: &str) -> String {
    format!("{owner}/{repo}")
}

async fn create_deployment(
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

async fn list_deployments(
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

async fn get_deployment(
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

async fn create_status(
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

async fn list_statuses(
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

async fn create_issue(
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

async fn list_issues(
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

async fn get_issue(
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

async fn update_issue(
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

async fn lock_issue(
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

async fn list_comments(
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

async fn create_comment(
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

async fn edit_comment(
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

async fn team_members(
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

async fn get_environment(
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

async fn run_approvals(
    AxState(app): AxState<App>,
    Path((_owner, _repo, run_id)): Path<(String, String, u64)>,
) -> Response {
    let s = app.lock();
    ok(Value::Array(
        s.run_approvals.get(&run_id).cloned().unwrap_or_default(),
    ))
}
