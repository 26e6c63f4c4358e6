//! The fake's memory: every object GitHub would hold for the routes davit uses, plus the faults
//! waiting to fire and the log of requests received.
//!
//! Objects keep the fields davit reads and render to JSON in GitHub's shapes (timestamps in
//! whole seconds, `user.login`, newest deployment first), so the client under test parses the
//! same documents it would get from api.github.com.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// GitHub's timestamps have whole seconds; the fake does the same so "edited" checks see what
/// they would see in production.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A deployment as created through `POST /repos/{o}/{r}/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub repo: String,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub task: String,
    pub payload: Value,
    pub environment: String,
    pub description: Option<String>,
    pub production_environment: bool,
    pub transient_environment: bool,
    pub creator: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a deployment's status history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentStatus {
    pub id: u64,
    pub deployment_id: u64,
    pub state: String,
    pub description: String,
    pub environment: String,
    pub environment_url: String,
    pub log_url: String,
    pub creator: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub id: u64,
    pub repo: String,
    pub title: String,
    pub body: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub locked: bool,
    pub labels: Vec<String>,
    pub user: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub repo: String,
    pub issue: u64,
    pub user: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `GET /orgs/{org}/teams/{slug}/members` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamSetup {
    Members(Vec<String>),
    /// Answer every lookup with this HTTP status (404 unknown team, 403 no `members: read`).
    Fail(u16),
}

/// A request as the fake received it. `Authorization` is never stored: only its scheme, so a
/// test can scan every recorded field for a leaked secret without tripping over the one place
/// the token belongs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub auth_scheme: Option<String>,
    pub body: String,
    /// The status the fake answered with (after any injected fault).
    pub status: u16,
}

/// A failure to inject on matching requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Fault {
    /// HTTP method to match, any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Exact path, or a prefix when it ends with `*`.
    pub path: String,
    /// How many matching requests fail before the route behaves again.
    #[serde(default = "one")]
    pub times: u32,
    /// Status to answer with; 0 keeps the handler's status (a pure delay).
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Run the real handler first (the request "lands") and only then fail or delay the
    /// response: a lost response, the case that makes naive retries duplicate records.
    #[serde(default)]
    pub after_handler: bool,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// Answer `status` (e.g. 502) instead of handling the request.
    pub fn status(method: &str, path: &str, status: u16) -> Self {
        Fault {
            method: Some(method.to_string()),
            path: path.to_string(),
            times: 1,
            status,
            ..Default::default()
        }
    }

    /// GitHub's secondary rate limit: 403 with `retry-after`.
    pub fn secondary_rate_limit(method: &str, path: &str, retry_after_secs: u64) -> Self {
        let mut f = Fault::status(method, path, 403);
        f.headers
            .insert("retry-after".into(), retry_after_secs.to_string());
        f.message = Some("You have exceeded a secondary rate limit. Please wait a few minutes before you try again.".into());
        f
    }

    /// The primary rate limit: 403 with `x-ratelimit-remaining: 0` and a reset time.
    pub fn primary_rate_limit(method: &str, path: &str, reset_in_secs: i64) -> Self {
        let mut f = Fault::status(method, path, 403);
        f.headers.insert("x-ratelimit-remaining".into(), "0".into());
        f.headers.insert(
            "x-ratelimit-reset".into(),
            (Utc::now().timestamp() + reset_in_secs).to_string(),
        );
        f.message = Some("API rate limit exceeded".into());
        f
    }

    /// Hold the response for `ms` (past the client's timeout), keeping the handler's answer.
    pub fn delay(method: &str, path: &str, ms: u64) -> Self {
        Fault {
            method: Some(method.to_string()),
            path: path.to_string(),
            times: 1,
            delay_ms: ms,
            ..Default::default()
        }
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Let the request take effect before the fault hits the response.
    pub fn landing(mut self) -> Self {
        self.after_handler = true;
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        if self.times == 0 {
            return false;
        }
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        }
    }
}

/// Everything the fake holds. Locked briefly by handlers and by the control API; never held
/// across an await.
#[derive(Debug, Default)]
pub struct State {
    pub next_id: u64,
    pub deployments: Vec<Deployment>,
    pub statuses: Vec<DeploymentStatus>,
    pub issues: Vec<Issue>,
    pub comments: Vec<Comment>,
    pub teams: HashMap<(String, String), TeamSetup>,
    /// Environment name -> required reviewer logins (empty: the environment has no rule).
    pub environments: HashMap<String, Vec<String>>,
    /// Run id -> review history (`GET .../actions/runs/{id}/approvals`).
    pub run_approvals: HashMap<u64, Vec<Value>>,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    /// The login the API token belongs to: the author of issues and comments made through it.
    pub token_user: String,
    /// When set, requests must carry exactly this token.
    pub expected_token: Option<String>,
}

impl State {
    pub fn new() -> Self {
        State {
            next_id: 1000,
            token_user: "github-actions[bot]".into(),
            ..Default::default()
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The first fault matching the request, with its remaining count consumed.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let f = self.faults.iter_mut().find(|f| f.matches(method, path))?;
        f.times -= 1;
        Some(f.clone())
    }

    pub fn issue_mut(&mut self, repo: &str, number: u64) -> Option<&mut Issue> {
        self.issues
            .iter_mut()
            .find(|i| i.repo == repo && i.number == number)
    }

    pub fn add_comment(
        &mut self,
        repo: &str,
        issue: u64,
        user: &str,
        body: &str,
        created_at: Option<DateTime<Utc>>,
    ) -> Option<Comment> {
        self.issue_mut(repo, issue)?;
        let at = created_at.unwrap_or_else(now);
        let c = Comment {
            id: self.id(),
            repo: repo.to_string(),
            issue,
            user: user.to_string(),
            body: body.to_string(),
            created_at: at,
            updated_at: at,
        };
        self.comments.push(c.clone());
        Some(c)
    }

    /// Change a comment's body the way GitHub does: `updated_at` moves. GitHub's clock has whole
    /// seconds, so an edit in the creation second would look unedited; the fake moves it at
    /// least one second so its `updated_at` check is meaningful (davit also compares bodies).
    pub fn edit_comment(&mut self, id: u64, body: &str) -> Option<Comment> {
        let c = self.comments.iter_mut().find(|c| c.id == id)?;
        c.body = body.to_string();
        c.updated_at = now().max(c.created_at + chrono::Duration::seconds(1));
        Some(c.clone())
    }
}

pub fn user(login: &str) -> Value {
    json!({ "login": login, "type": if login.ends_with("[bot]") { "Bot" } else { "User" } })
}

impl Deployment {
    pub fn json(&self, base: &str) -> Value {
        let url = format!("{base}/repos/{}/deployments/{}", self.repo, self.id);
        json!({
            "id": self.id,
            "url": url,
            "statuses_url": format!("{url}/statuses"),
            "sha": self.sha,
            "ref": self.git_ref,
            "task": self.task,
            "payload": self.payload,
            "environment": self.environment,
            "original_environment": self.environment,
            "description": self.description,
            "production_environment": self.production_environment,
            "transient_environment": self.transient_environment,
            "creator": user(&self.creator),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
        })
    }
}

impl DeploymentStatus {
    pub fn json(&self, base: &str, repo: &str) -> Value {
        json!({
            "id": self.id,
            "state": self.state,
            "description": self.description,
            "environment": self.environment,
            "environment_url": self.environment_url,
            "log_url": self.log_url,
            "target_url": self.log_url,
            "creator": user(&self.creator),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.created_at),
            "deployment_url": format!("{base}/repos/{repo}/deployments/{}", self.deployment_id),
        })
    }
}

impl Issue {
    pub fn html_url(&self, base: &str) -> String {
        format!("{base}/{}/issues/{}", self.repo, self.number)
    }

    pub fn json(&self, base: &str, comments: usize) -> Value {
        json!({
            "id": self.id,
            "number": self.number,
            "url": format!("{base}/repos/{}/issues/{}", self.repo, self.number),
            "html_url": self.html_url(base),
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "state_reason": self.state_reason,
            "locked": self.locked,
            "labels": self.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
            "user": user(&self.user),
            "comments": comments,
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "closed_at": self.closed_at.as_ref().map(ts),
        })
    }
}

impl Comment {
    pub fn json(&self, base: &str) -> Value {
        json!({
            "id": self.id,
            "body": self.body,
            "user": user(&self.user),
            "html_url": format!("{base}/{}/issues/{}#issuecomment-{}", self.repo, self.issue, self.id),
            "issue_url": format!("{base}/repos/{}/issues/{}", self.repo, self.issue),
            "created_at": ts(&self.created_at),
            "updated_at": ts(&self.updated_at),
            "author_association": "NONE",
        })
    }
}
