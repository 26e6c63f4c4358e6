//! A fake GitHub REST API that davit's tests can break on purpose.
//!
//! The GitHub API is the one service davit's tests cannot run for real, and the interesting
//! behaviour (no duplicate deployment when a response is lost, a secondary rate limit honoured,
//! an edited approval comment ignored) only shows against a server that keeps state and fails
//! on demand. This crate is that server: deployments and their statuses, issues and comments,
//! team members, environments and run reviews, all in memory; requests are validated the way
//! GitHub validates them (422 on a bad shape, 401 without a token); every request is recorded
//! so tests can count creates and scan bodies for secret canaries; faults (502, rate limits,
//! delays, lost responses) are injected per route.
//!
//! It runs in-process ([`FakeGithub::start`], one per test on a random port, scripted through
//! methods) or standalone (the `davit-fake-github` binary, scripted through the `/_fake/...`
//! control API documented in [`control`]) for end-to-end runs under `act` with
//! `GITHUB_API_URL` pointing at it.

pub mod api;
pub mod control;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use state::{
    Comment, Deployment, DeploymentStatus, Fault, Issue, RecordedRequest, State, TeamSetup,
};

/// The repository the in-process helpers act on; tests set `GITHUB_REPOSITORY` to it.
pub const DEFAULT_REPO: &str = "davit-dev/app";

/// Serve the fake on `listener` until `shutdown` resolves. The binary and [`FakeGithub`] both
/// end up here.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::App { state, base };
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A fake running on its own thread and runtime, so it answers even while a test blocks (for
/// example on a child process started with `assert_cmd`). Dropping it stops the server.
pub struct FakeGithub {
    url: String,
    repo: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGithub {
    /// Start on 127.0.0.1 with a random free port.
    pub fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0")
    }

    pub fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let url = format!("http://{}", std_listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::new()));
        let (tx, rx) = oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name("davit-fake-github".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fake");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    let _ = serve(listener, served, async {
                        let _ = rx.await;
                    })
                    .await;
                });
            })?;
        Ok(FakeGithub {
            url,
            repo: DEFAULT_REPO.to_string(),
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`, the value for `GITHUB_API_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Direct access for anything the helpers below do not cover.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every GitHub request received so far (control calls excluded), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Recorded requests with this method whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(prefix))
            .collect()
    }

    /// Deployments in creation order.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.lock().deployments.clone()
    }

    /// A deployment's statuses in creation order.
    pub fn statuses(&self, deployment_id: u64) -> Vec<DeploymentStatus> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.deployment_id == deployment_id)
            .cloned()
            .collect()
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.lock().issues.clone()
    }

    pub fn issue(&self, number: u64) -> Option<Issue> {
        let repo = self.repo.clone();
        self.lock().issue_mut(&repo, number).map(|i| i.clone())
    }

    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.repo == self.repo && c.issue == issue)
            .cloned()
            .collect()
    }

    /// Wait (up to 10 s, then panic: this is a test helper) until issue `number` exists.
    pub async fn wait_for_issue(&self, number: u64) -> Issue {
        for _ in 0..2000 {
            if let Some(i) = self.issue(number) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("issue #{number} was never created on the fake");
    }

    /// A comment by `user`, created now. Returns its id.
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        self.add_comment_at(issue, user, body, None)
    }

    /// A comment by `user` with an explicit creation time (a late or early approval).
    pub fn add_comment_at(
        &self,
        issue: u64,
        user: &str,
        body: &str,
        created_at: Option<DateTime<Utc>>,
    ) -> u64 {
        let repo = self.repo.clone();
        self.lock()
            .add_comment(&repo, issue, user, body, created_at)
            .expect("issue exists")
            .id
    }

    pub fn edit_comment(&self, id: u64, body: &str) {
        self.lock().edit_comment(id, body).expect("comment exists");
    }

    pub fn close_issue(&self, number: u64) {
        let repo = self.repo.clone();
        let mut s = self.lock();
        let i = s.issue_mut(&repo, number).expect("issue exists");
        i.state = "closed".into();
        i.closed_at = Some(state::now());
    }

    pub fn lock_issue(&self, number: u64) {
        let repo = self.repo.clone();
        self.lock()
            .issue_mut(&repo, number)
            .expect("issue exists")
            .locked = true;
    }

    pub fn set_team(&self, org: &str, slug: &str, members: &[&str]) {
        self.lock().teams.insert(
            (org.into(), slug.into()),
            TeamSetup::Members(members.iter().map(|m| m.to_string()).collect()),
        );
    }

    /// Every lookup of this team answers `status` (404, 403, 500...).
    pub fn fail_team(&self, org: &str, slug: &str, status: u16) {
        self.lock()
            .teams
            .insert((org.into(), slug.into()), TeamSetup::Fail(status));
    }

    /// An environment; with reviewers it has a `required_reviewers` protection rule.
    pub fn set_environment(&self, name: &str, reviewers: &[&str]) {
        self.lock().environments.insert(
            name.into(),
            reviewers.iter().map(|r| r.to_string()).collect(),
        );
    }

    /// A review in a run's approval history (`state`: approved or rejected).
    pub fn add_run_approval(&self, run_id: u64, user: &str, state: &str, environments: &[&str]) {
        let envs: Vec<String> = environments.iter().map(|e| e.to_string()).collect();
        self.lock()
            .run_approvals
            .entry(run_id)
            .or_default()
            .push(control::review_json(user, state, &envs, ""));
    }

    /// Only this exact token is accepted from now on.
    pub fn set_expected_token(&self, token: &str) {
        self.lock().expected_token = Some(token.to_string());
    }

    /// The login issues and comments created through the API are attributed to.
    pub fn set_token_user(&self, login: &str) {
        self.lock().token_user = login.to_string();
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
