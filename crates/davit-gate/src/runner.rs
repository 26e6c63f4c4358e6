//! Runs the checks: in parallel up to a limit, each with its own timeout, optionally fail-fast.
//!
//! Each check runs in its own process group with stdout and stderr joined into one pipe (so the
//! log reads in the order the tool wrote it) that is copied whole into a log file. Nothing is
//! kept in memory, so a check that prints a gigabyte costs disk, not RAM, and the log is still
//! complete when the runner truncates its own display. When a check finishes, its log is printed
//! in one collapsed group; finished checks print one at a time, so parallel output never
//! interleaves. A timeout or a fail-fast cancel signals the whole group (SIGTERM, then SIGKILL),
//! because killing only `sh` would leave pytest or cargo running and holding the pipe open.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

use davit_gha::Gha;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore, watch};

use crate::config::{Check, Kind, Run, Settings};
use crate::services::{self, NeverReady, Ready};

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    TimedOut,
    /// Stopped because another check failed and fail-fast is on.
    Cancelled,
    /// Never started: fail-fast, or the services it needs never came up.
    NotRun {
        reason: String,
    },
    /// The program could not be started.
    SpawnError {
        error: String,
    },
}

impl Status {
    pub fn ok(&self) -> bool {
        matches!(self, Status::Passed)
    }
    /// Short wording for tables.
    pub fn label(&self) -> String {
        match self {
            Status::Passed => "passed".into(),
            Status::Failed {
                exit_code: Some(c), ..
            } => format!("failed (exit {c})"),
            Status::Failed {
                signal: Some(s), ..
            } => format!("failed (signal {s})"),
            Status::Failed { .. } => "failed".into(),
            Status::TimedOut => "timed out".into(),
            Status::Cancelled => "cancelled (fail-fast)".into(),
            Status::NotRun { reason } => format!("not run: {reason}"),
            Status::SpawnError { error } => format!("could not start: {error}"),
        }
    }
    pub fn icon(&self) -> &'static str {
        match self {
            Status::Passed => "✅",
            Status::Cancelled | Status::NotRun { .. } => "⏭️",
            _ => "❌",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: Kind,
    pub command: String,
    #[serde(flatten)]
    pub status: Status,
    pub seconds: f64,
    pub log: PathBuf,
}

/// Everything the run produced besides the reports.
#[derive(Debug)]
pub struct RunOutcome {
    pub checks: Vec<CheckResult>,
    /// `None` when no check waited for services.
    pub services: Option<Result<Vec<Ready>, NeverReady>>,
}

type BoxFut<'a> = Pin<Box<dyn Future<Output = Option<CheckResult>> + 'a>>;

/// Run all checks of `settings`, printing each one's log as it finishes.
pub async fn run_checks(settings: &Settings, gha: &Gha) -> std::io::Result<RunOutcome> {
    let logs = settings.out_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let permits = Semaphore::new(settings.parallel);
    let (cancel_tx, cancel_rx) = watch::channel::<Option<String>>(None);
    let services_cell: OnceCell<Result<Vec<Ready>, NeverReady>> = OnceCell::new();
    let needs_services =
        !settings.services.is_empty() && settings.checks.iter().any(|c| c.needs_services);
    let wait_services = || async {
        services_cell
            .get_or_init(|| async {
                gha.log(&format!(
                    "waiting up to {:?} for {}",
                    settings.service_timeout,
                    settings
                        .services
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                let r = services::wait_all(&settings.services, settings.service_timeout).await;
                match &r {
                    Ok(ready) => {
                        for s in ready {
                            gha.log(&format!(
                                "{} is ready after {:.1}s",
                                s.service,
                                s.after.as_secs_f64()
                            ));
                        }
                    }
                    Err(e) => gha.log(&format!("error: {e}")),
                }
                r
            })
            .await
    };

    let mut futs: Vec<BoxFut<'_>> = Vec::new();
    if needs_services {
        // Start waiting right away, in parallel with lint, rather than when the first test
        // check gets a slot.
        futs.push(Box::pin(async {
            wait_services().await;
            None
        }));
    }
    for check in &settings.checks {
        let log = logs.join(format!("{}.log", check.name));
        let mut cancel = cancel_rx.clone();
        let cancel_tx = &cancel_tx;
        let permits = &permits;
        let wait_services = &wait_services;
        futs.push(Box::pin(async move {
            let not_run = |reason: String| CheckResult {
                name: check.name.clone(),
                kind: check.kind,
                command: check.run.display(),
                status: Status::NotRun { reason },
                seconds: 0.0,
                log: log.clone(),
            };
            let permit = tokio::select! {
                p = permits.acquire() => p.ok(),
                why = cancelled(&mut cancel) => return Some(not_run(why)),
            };
            if let Some(why) = cancel.borrow().clone() {
                return Some(not_run(why));
            }
            if check.needs_services && needs_services {
                let r = tokio::select! {
                    r = wait_services() => r,
                    why = cancelled(&mut cancel) => return Some(not_run(why)),
                };
                if let Err(e) = r {
                    let names: Vec<&str> = e.down.iter().map(|d| d.0.as_str()).collect();
                    return Some(not_run(format!("{} never came up", names.join(", "))));
                }
            }
            let res = execute(check, &log, &mut cancel).await;
            // Cancel before giving the slot back, so no waiting check starts in between.
            if !res.status.ok() && settings.fail_fast && res.status != Status::Cancelled {
                let _ = cancel_tx.send(Some(format!("fail-fast after {} failed", check.name)));
            }
            drop(permit);
            print_log(gha, &res);
            Some(res)
        }));
    }
    let results = services::join_all(futs.into_iter()).await;
    Ok(RunOutcome {
        checks: results.into_iter().flatten().collect(),
        services: services_cell.into_inner(),
    })
}

/// Resolves (with the reason) once fail-fast cancelled the run; pending forever otherwise.
async fn cancelled(rx: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(why) = rx.borrow_and_update().clone() {
            return why;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn kill_group(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

/// Run one check's process to completion, timeout or cancellation.
async fn execute(
    check: &Check,
    log_path: &Path,
    cancel: &mut watch::Receiver<Option<String>>,
) -> CheckResult {
    let start = Instant::now();
    let result = |status: Status| CheckResult {
        name: check.name.clone(),
        kind: check.kind,
        command: check.run.display(),
        status,
        seconds: start.elapsed().as_secs_f64(),
        log: log_path.to_path_buf(),
    };
    let spawn_err = |e: std::io::Error| {
        result(Status::SpawnError {
            error: e.to_string(),
        })
    };
    let mut file = match File::create(log_path) {
        Ok(f) => f,
        Err(e) => return spawn_err(e),
    };
    let _ = writeln!(
        file,
        "$ {}  (in {})",
        check.run.display(),
        check.dir.display()
    );
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return spawn_err(e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return spawn_err(e),
    };
    let mut cmd = match &check.run {
        Run::Shell(s) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        Run::Argv(v) => {
            let mut c = tokio::process::Command::new(&v[0]);
            c.args(&v[1..]);
            c
        }
    };
    cmd.current_dir(&check.dir)
        .envs(&check.env)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // The Command holds our copies of the pipe's write end; drop them or EOF never comes.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return spawn_err(e),
    };
    let pid = child.id().unwrap_or(0);
    let copier = tokio::task::spawn_blocking(move || {
        let r = std::io::copy(&mut reader, &mut file);
        (r, file)
    });

    let status = tokio::select! {
        s = child.wait() => match s {
            Ok(s) if s.success() => Status::Passed,
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                Status::Failed { exit_code: s.code(), signal: s.signal() }
            }
            Err(e) => Status::SpawnError { error: e.to_string() },
        },
        _ = tokio::time::sleep(check.timeout) => Status::TimedOut,
        _ = cancelled(cancel) => Status::Cancelled,
    };
    if matches!(status, Status::TimedOut | Status::Cancelled) {
        kill_group(pid, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            kill_group(pid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    // Something the check started in the background may still hold the pipe open.
    let copied = match tokio::time::timeout(Duration::from_secs(10), copier).await {
        Ok(Ok(r)) => Some(r),
        _ => {
            kill_group(pid, Signal::SIGKILL);
            None
        }
    };
    let elapsed = start.elapsed();
    if let Some((_, mut file)) = copied {
        let _ = match &status {
            Status::TimedOut => writeln!(
                file,
                "\n[davit-gate] {} timed out after {:?} and was stopped",
                check.name, check.timeout
            ),
            Status::Cancelled => writeln!(
                file,
                "\n[davit-gate] {} was cancelled (fail-fast)",
                check.name
            ),
            s => writeln!(
                file,
                "\n[davit-gate] {} after {:.1}s",
                s.label(),
                elapsed.as_secs_f64()
            ),
        };
    }
    CheckResult {
        seconds: elapsed.as_secs_f64(),
        ..result(status)
    }
}

/// Print a finished check's whole log in one collapsed group.
fn print_log(gha: &Gha, r: &CheckResult) {
    gha.group_start(&format!(
        "{} {} — {} in {:.1}s",
        r.status.icon(),
        r.name,
        r.status.label(),
        r.seconds
    ));
    if let Ok(f) = File::open(&r.log) {
        // Whole lines, in batches, so a huge log never sits in memory at once.
        let mut batch = String::new();
        for line in BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            batch.push_str(&line);
            batch.push('\n');
            if batch.len() > 64 * 1024 {
                gha.log(&batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            gha.log(&batch);
        }
    }
    gha.group_end();
}
