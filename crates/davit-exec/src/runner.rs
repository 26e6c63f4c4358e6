//! Walking a plan: steps in order, undo in reverse on failure, events for the timeline.

use crate::{ExecError, Executor, HttpResponse};
use async_trait::async_trait;
use davit_core::{Action, Failure, Plan, Probe, ProbeExpect, Step};
use std::time::{Duration, Instant};

/// Something worth showing on the timeline.
#[derive(Debug)]
pub enum Event<'a> {
    StepStarted {
        index: usize,
        total: usize,
        summary: &'a str,
    },
    StepDone {
        index: usize,
        summary: &'a str,
        elapsed: Duration,
    },
    StepFailed {
        index: usize,
        summary: &'a str,
        error: &'a str,
    },
    Undoing {
        summary: &'a str,
    },
    UndoFailed {
        summary: &'a str,
        error: &'a str,
    },
    /// What a step found or made, beside its summary ("database backup ... verified").
    Note {
        text: &'a str,
    },
}

/// Receives events; the CLI prints them, GitHub Actions turns them into groups.
pub trait Observer: Send + Sync {
    fn event(&self, e: &Event<'_>);
}

/// An observer that drops everything.
pub struct Quiet;
impl Observer for Quiet {
    fn event(&self, _: &Event<'_>) {}
}

#[derive(Debug, thiserror::Error)]
#[error("step {index} ({summary}) failed: {cause}{}", undo_note(.undo_errors))]
pub struct PlanError {
    pub index: usize,
    pub summary: String,
    pub cause: StepError,
    /// The failed step was a check of the release (a health gate, Swarm keeping the update):
    /// its failure is a verdict that the release is bad, not a fault of the host.
    pub verdict: bool,
    /// Undo steps that themselves failed: the host may need attention.
    pub undo_errors: Vec<String>,
}

/// Why one step failed, by kind, so callers decide on types rather than on message text.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A host operation failed: a process exited non-zero, timed out, could not start, or a
    /// file operation failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A health probe did not pass in time; the message says what it saw last.
    #[error("{0}")]
    Probe(String),
    /// The host did not settle in time (nginx workers of an earlier configuration still busy).
    #[error("{0}")]
    Unsettled(String),
    /// A signal stopped the plan before this step.
    #[error("cancelled (SIGINT/SIGTERM) before this step; reverting")]
    Cancelled,
    /// An [`Action`] refused or failed; the failure says why and what to do.
    #[error("{}", .0.message)]
    Action(Failure),
}

/// How the caller performs the plan's [`Action`] steps (the runner knows commands, files and
/// probes; pulling with retries or taking a verified backup is the deploy's knowledge).
#[async_trait]
pub trait Actions: Send + Sync {
    async fn run(&self, exec: &dyn Executor, action: &Action) -> Result<(), Failure>;
}

/// For plans without actions: any action fails.
pub struct NoActions;

#[async_trait]
impl Actions for NoActions {
    async fn run(&self, _exec: &dyn Executor, action: &Action) -> Result<(), Failure> {
        Err(Failure::infra(format!(
            "nothing here can perform: {}",
            action.render()
        )))
    }
}

impl StepError {
    /// The standard error of a command that exited non-zero.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            StepError::Exec(ExecError::Failed { stderr, .. }) => Some(stderr),
            _ => None,
        }
    }

    /// The standard output of a command that exited non-zero.
    pub fn stdout(&self) -> Option<&str> {
        match self {
            StepError::Exec(ExecError::Failed { stdout, .. }) => Some(stdout),
            _ => None,
        }
    }
}

fn undo_note(errs: &[String]) -> String {
    if errs.is_empty() {
        String::new()
    } else {
        format!(
            "; cleaning up also failed ({}): {}",
            errs.len(),
            errs.join("; ")
        )
    }
}

/// A flag set by a signal handler (SIGINT/SIGTERM): the runner stops before the next step and
/// undoes what was done, so a cancelled deploy reverts instead of stopping half-way.
#[derive(Clone, Default, Debug)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Run `plan` on `exec`. On failure of step i, the undo steps of steps i, i-1, ..., 1 run in that
/// order (a step's undo must be safe when the step only half happened, like `docker rm -f`).
pub async fn run_plan(
    exec: &dyn Executor,
    plan: &Plan,
    obs: &dyn Observer,
) -> Result<(), PlanError> {
    run_plan_cancellable(exec, plan, obs, &Cancel::new()).await
}

/// [`run_plan`], checking `cancel` before each step. A step in progress finishes (a rename or a
/// reload is never interrupted half-way); then everything done so far is undone.
pub async fn run_plan_cancellable(
    exec: &dyn Executor,
    plan: &Plan,
    obs: &dyn Observer,
    cancel: &Cancel,
) -> Result<(), PlanError> {
    run_plan_with(exec, plan, obs, cancel, &NoActions)
        .await
        .map(|_| ())
}

/// [`run_plan_cancellable`] with `actions` performing the plan's [`Action`] steps. Returns the
/// best-effort steps that failed (index from 1, and why); the plan carried on past them.
pub async fn run_plan_with(
    exec: &dyn Executor,
    plan: &Plan,
    obs: &dyn Observer,
    cancel: &Cancel,
    actions: &dyn Actions,
) -> Result<Vec<(usize, StepError)>, PlanError> {
    let total = plan.steps.len();
    let mut tolerated = Vec::new();
    for (i, ps) in plan.steps.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(undo_from(exec, plan, i, StepError::Cancelled, obs, true, actions).await);
        }
        obs.event(&Event::StepStarted {
            index: i + 1,
            total,
            summary: &ps.summary,
        });
        let started = Instant::now();
        match run_step_with(exec, &ps.step, actions).await {
            Ok(()) => {
                obs.event(&Event::StepDone {
                    index: i + 1,
                    summary: &ps.summary,
                    elapsed: started.elapsed(),
                });
                #[cfg(debug_assertions)]
                kill_point(&ps.summary);
            }
            Err(cause) => {
                obs.event(&Event::StepFailed {
                    index: i + 1,
                    summary: &ps.summary,
                    error: &cause.to_string(),
                });
                if ps.best_effort {
                    tolerated.push((i + 1, cause));
                    continue;
                }
                return Err(undo_from(exec, plan, i, cause, obs, false, actions).await);
            }
        }
    }
    Ok(tolerated)
}

/// Undo steps `..=i` (or `..i` when step i never started) in reverse.
async fn undo_from(
    exec: &dyn Executor,
    plan: &Plan,
    i: usize,
    cause: StepError,
    obs: &dyn Observer,
    before_step: bool,
    actions: &dyn Actions,
) -> PlanError {
    let done_steps = if before_step {
        &plan.steps[..i]
    } else {
        &plan.steps[..=i]
    };
    let mut undo_errors = Vec::new();
    for done in done_steps.iter().rev() {
        if done.undo.is_empty() {
            continue;
        }
        obs.event(&Event::Undoing {
            summary: &done.summary,
        });
        for u in &done.undo {
            if let Err(e) = run_step_with(exec, u, actions).await {
                obs.event(&Event::UndoFailed {
                    summary: &done.summary,
                    error: &e.to_string(),
                });
                undo_errors.push(format!("{}: {e}", done.summary));
            }
        }
    }
    let failed = &plan.steps[i];
    let verdict = !matches!(cause, StepError::Cancelled)
        && (failed.check || matches!(failed.step, Step::WaitHttp(_)));
    PlanError {
        index: i + 1,
        summary: failed.summary.clone(),
        cause,
        verdict,
        undo_errors,
    }
}

/// Run one step (a plan's [`Action`] steps need [`run_step_with`]).
pub async fn run_step(exec: &dyn Executor, step: &Step) -> Result<(), StepError> {
    run_step_with(exec, step, &NoActions).await
}

/// Run one step, with `actions` performing an [`Action`].
pub async fn run_step_with(
    exec: &dyn Executor,
    step: &Step,
    actions: &dyn Actions,
) -> Result<(), StepError> {
    let r: Result<(), ExecError> = match step {
        Step::Exec(c) => exec.run_ok(c).await.map(|_| ()),
        Step::ExecIgnoringFailure(c) => match exec.run(c).await {
            Ok(_) | Err(ExecError::Failed { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Step::WriteFile { path, body, mode } => {
            exec.write_file(path, body.expose().as_bytes(), *mode).await
        }
        Step::AppendLine { path, line } => exec.append_line(path, line).await,
        Step::Rename { from, to } => exec.rename(from, to).await,
        Step::Copy { from, to } => exec.copy(from, to).await,
        Step::RemoveFile { path } => exec.remove_file(path).await,
        Step::MkDir { path, mode } => exec.mkdir(path, *mode).await,
        Step::Action(a) => return actions.run(exec, a).await.map_err(StepError::Action),
        Step::WaitHttp(p) => {
            return wait_http(exec, p)
                .await
                .map(|_| ())
                .map_err(StepError::Probe);
        }
        Step::WaitDrained(d) => {
            return crate::drain::wait_drained(exec, d)
                .await
                .map_err(StepError::Unsettled);
        }
        // A container that never gets ready is, like a probe, a health verdict.
        Step::WaitReady(r) => {
            return crate::ready::wait_ready(exec, r)
                .await
                .map_err(StepError::Probe);
        }
    };
    r.map_err(StepError::Exec)
}

/// Whether one response meets the expectation; the error says what differed.
pub fn check_response(resp: &HttpResponse, expect: &ProbeExpect) -> Result<(), String> {
    let want = if expect.status == 0 {
        200
    } else {
        expect.status
    };
    if resp.status != want {
        return Err(format!("status {} (want {want})", resp.status));
    }
    if let Some(needle) = &expect.body_contains
        && !resp.body.contains(needle.as_str())
    {
        return Err(format!("body does not contain {needle:?}"));
    }
    if let Some((name, value)) = &expect.header {
        match resp.header(name) {
            Some(v) if v == value => {}
            other => return Err(format!("header {name} is {other:?} (want {value:?})")),
        }
    }
    if let Some((path, value)) = &expect.json_field {
        let json: serde_json::Value =
            serde_json::from_str(&resp.body).map_err(|_| "body is not JSON".to_string())?;
        let found = path
            .split('.')
            .try_fold(&json, |v, key| v.get(key))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        match found {
            Some(v) if &v == value => {}
            other => return Err(format!(".{path} is {other:?} (want {value:?})")),
        }
    }
    Ok(())
}

/// The outcome of a probe that passed.
#[derive(Debug, Clone)]
pub struct ProbePassed {
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Poll until `consecutive` successes in a row, or fail at the deadline with the last reason.
pub async fn wait_http(exec: &dyn Executor, p: &Probe) -> Result<ProbePassed, String> {
    let started = Instant::now();
    let mut streak = 0;
    let mut attempts = 0;
    let mut last = String::from("no attempt");
    loop {
        attempts += 1;
        match exec
            .http_get_as(&p.url, p.host.as_deref(), p.per_try_timeout)
            .await
        {
            Ok(resp) => match check_response(&resp, &p.expect) {
                Ok(()) => {
                    streak += 1;
                    if streak >= p.consecutive.max(1) {
                        return Ok(ProbePassed {
                            attempts,
                            elapsed: started.elapsed(),
                        });
                    }
                }
                Err(why) => {
                    streak = 0;
                    last = why;
                }
            },
            Err(e) => {
                streak = 0;
                last = match e {
                    ExecError::Http { message, .. } => message,
                    other => other.to_string(),
                };
            }
        }
        if started.elapsed() + p.interval > p.deadline {
            return Err(format!(
                "GET {} did not pass {} time(s) in a row within {}s ({attempts} attempts); last: {last}",
                p.url,
                p.consecutive,
                p.deadline.as_secs_f32()
            ));
        }
        tokio::time::sleep(p.interval).await;
    }
}

/// Crash tests (T41, T42, T49): in debug builds only, `DAVIT_TEST_KILL_AFTER=<text>` makes the
/// process SIGKILL itself right after the first step whose summary contains `<text>`, the
/// moment a crash or an OOM kill would leave the host in. Release builds have no such code.
#[cfg(debug_assertions)]
fn kill_point(summary: &str) {
    if let Ok(at) = std::env::var("DAVIT_TEST_KILL_AFTER")
        && !at.is_empty()
        && summary.contains(&at)
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Output, Recording};
    use davit_core::Cmd;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);
    impl Observer for Collect {
        fn event(&self, e: &Event<'_>) {
            self.0.lock().unwrap().push(format!("{e:?}"));
        }
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("X-App-Version".into(), "v2".into())],
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn failure_runs_undo_in_reverse_including_the_failed_step() {
        let exec = Recording::new("t").with_output(
            "false",
            Output {
                status: 1,
                stderr: "boom".into(),
                ..Default::default()
            },
        );
        let mut plan = Plan::new("t");
        plan.push_with_undo(
            "one",
            Step::Exec(Cmd::new("true").arg("1")),
            vec![Step::Exec(Cmd::new("undo").arg("1"))],
        );
        plan.push("two", Step::Exec(Cmd::new("true").arg("2")));
        plan.push_with_undo(
            "three",
            Step::Exec(Cmd::new("false")),
            vec![Step::Exec(Cmd::new("undo").arg("3"))],
        );
        plan.push("never", Step::Exec(Cmd::new("never")));
        let err = run_plan(&exec, &plan, &Collect::default())
            .await
            .unwrap_err();
        assert_eq!(err.index, 3);
        assert_eq!(err.cause.stderr(), Some("boom"));
        assert!(!err.verdict);
        assert_eq!(
            exec.log(),
            vec![
                "run true 1",
                "run true 2",
                "run false",
                "run undo 3",
                "run undo 1"
            ]
        );
    }

    struct Pulls;
    #[async_trait]
    impl Actions for Pulls {
        async fn run(&self, _exec: &dyn Executor, action: &Action) -> Result<(), Failure> {
            match action {
                Action::Pull { .. } => Ok(()),
                Action::Backup { .. } => Err(Failure::bad_input("no backup", "configure it")),
                other => Err(Failure::infra(format!("not here: {}", other.render()))),
            }
        }
    }

    #[tokio::test]
    async fn actions_run_in_order_and_best_effort_failures_carry_on() {
        let exec = Recording::new("t").with_output(
            "false",
            Output {
                status: 1,
                ..Default::default()
            },
        );
        let mut plan = Plan::new("t");
        plan.push(
            "pull",
            Step::Action(Action::Pull {
                image: "a:1".into(),
            }),
        );
        plan.push_best_effort("record", Step::Exec(Cmd::new("false")));
        plan.push("after", Step::Exec(Cmd::new("true")));
        let tolerated = run_plan_with(&exec, &plan, &Quiet, &Cancel::new(), &Pulls)
            .await
            .unwrap();
        assert_eq!(tolerated.len(), 1);
        assert_eq!(tolerated[0].0, 2);
        assert_eq!(exec.log(), vec!["run false", "run true"]);
        // A refused action fails the plan with its own failure; without a handler, any fails.
        let mut plan = Plan::new("t");
        plan.push("backup", Step::Action(Action::Backup { label: "x".into() }));
        let e = run_plan_with(&exec, &plan, &Quiet, &Cancel::new(), &Pulls)
            .await
            .unwrap_err();
        assert!(
            matches!(&e.cause, StepError::Action(f) if f.message == "no backup"),
            "{e}"
        );
        assert!(run_plan(&exec, &plan, &Quiet).await.is_err());
    }

    #[test]
    fn response_checks_name_what_differed() {
        let mut e = ProbeExpect {
            status: 200,
            json_field: Some(("version".into(), "v2".into())),
            ..Default::default()
        };
        assert!(check_response(&resp(200, r#"{"version":"v2"}"#), &e).is_ok());
        assert_eq!(
            check_response(&resp(200, r#"{"version":"v1"}"#), &e).unwrap_err(),
            ".version is Some(\"v1\") (want \"v2\")"
        );
        assert_eq!(
            check_response(&resp(503, ""), &e).unwrap_err(),
            "status 503 (want 200)"
        );
        e.json_field = None;
        e.header = Some(("x-app-version".into(), "v3".into()));
        assert!(check_response(&resp(200, ""), &e).is_err());
    }

    #[tokio::test]
    async fn probe_needs_consecutive_successes() {
        let url = "http://h/health";
        let exec = Recording::new("t").with_http(
            url,
            vec![
                resp(200, ""),
                resp(500, ""),
                resp(200, ""),
                resp(200, ""),
                resp(200, ""),
            ],
        );
        let p = Probe {
            url: url.into(),
            expect: ProbeExpect::default(),
            per_try_timeout: Duration::from_millis(10),
            interval: Duration::from_millis(1),
            consecutive: 3,
            deadline: Duration::from_secs(5),
            host: None,
        };
        let passed = wait_http(&exec, &p).await.unwrap();
        assert_eq!(passed.attempts, 5);
    }

    #[tokio::test]
    async fn probe_fails_at_deadline_with_last_reason() {
        let url = "http://h/health";
        let exec = Recording::new("t").with_http(url, vec![resp(500, "")]);
        let p = Probe {
            url: url.into(),
            expect: ProbeExpect::default(),
            per_try_timeout: Duration::from_millis(10),
            interval: Duration::from_millis(5),
            consecutive: 2,
            deadline: Duration::from_millis(30),
            host: None,
        };
        let err = wait_http(&exec, &p).await.unwrap_err();
        assert!(err.contains("last: status 500 (want 200)"), "{err}");
    }
}
