//! The deploy lock: one deploy per environment and host at a time.
//!
//! Two people (or a CI run and a person) deploying at once is how a host ends up with two half
//! switches. The lock is a file created with O_EXCL on the deploy host (atomic on any POSIX file
//! system, and over SSH with the same primitive), holding who took it, from which run, when, and
//! for which version, so the loser can print the holder. A lock left by a CI run that died is
//! freed only when it is CI-owned and older than its TTL; a lock a person took by hand is never
//! freed automatically, because only that person knows whether their deploy is still running.

use crate::target::Target;
use davit_core::{Exit, Failure};
use davit_exec::Executor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random; only the taker can release without --force.
    pub token: String,
    pub actor: String,
    /// The workflow run (CI) or empty.
    #[serde(default)]
    pub run_url: String,
    /// The machine the deploy runs from, and its process id.
    pub machine: String,
    pub pid: u32,
    pub version: String,
    pub operation: String,
    /// RFC 3339 UTC.
    pub since: String,
    /// Taken by CI (eligible for stale release after `ttl_secs`).
    pub ci: bool,
    pub ttl_secs: u64,
    /// The kernel boot and pid namespace the holder's `pid` lives in (see [`process_space`]);
    /// empty in locks written before it existed.
    #[serde(default)]
    pub process_space: String,
}

impl Holder {
    pub fn describe(&self) -> String {
        let age = self
            .age()
            .map(|a| format!("{}s ago", a.as_secs()))
            .unwrap_or_else(|| "at an unknown time".into());
        // Every field is text from whoever wrote the lock file: one escaped line each (T47).
        use davit_core::text::line;
        let mut s = format!(
            "{} ({} of {}) since {} ({age}) from {} pid {}",
            line(&self.actor),
            line(&self.operation),
            line(&self.version),
            line(&self.since),
            line(&self.machine),
            self.pid
        );
        if !self.run_url.is_empty() {
            s.push_str(&format!(", run {}", line(&self.run_url)));
        }
        s
    }

    fn age(&self) -> Option<Duration> {
        let since = chrono::DateTime::parse_from_rfc3339(&self.since).ok()?;
        (chrono::Utc::now() - since.with_timezone(&chrono::Utc))
            .to_std()
            .ok()
    }

    /// A dead CI run's lock past its TTL: freed without a person.
    pub fn is_stale(&self) -> bool {
        self.ci && self.age().is_some_and(|a| a.as_secs() > self.ttl_secs)
    }

    /// The holder ran in this very process space (same machine, kernel boot and pid namespace)
    /// and its process is gone: a davit killed mid-deploy (T28). Its pid is asked with
    /// `kill(pid, 0)`, where only "no such process" means gone: a process of another user
    /// (EPERM), or one hidden from /proc (`hidepid`), reads as alive, as does a reused pid, which
    /// errs on the side of waiting.
    pub fn is_dead_here(&self) -> bool {
        if self.process_space.is_empty()
            || self.process_space != process_space()
            || self.machine != machine()
        {
            return false;
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }

    /// The warning when this lock was freed to take a new one.
    pub fn freed_note(&self) -> String {
        if self.is_dead_here() {
            format!(
                "freed the lock of a davit run that is no longer running (pid {}): {}",
                self.pid,
                self.describe()
            )
        } else {
            format!("freed a stale CI lock: {}", self.describe())
        }
    }
}

/// `<boot id>/<pid namespace>`: where a pid means one process. Two machines (or containers) with
/// the same host name never share it, so a lock from elsewhere is never judged by our /proc.
pub fn process_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.is_empty() || ns.is_empty() {
        return String::new();
    }
    format!("{boot}/{ns}")
}

pub fn lock_path(t: &Target) -> PathBuf {
    t.state_dir.join("deploy.lock")
}

/// A held lock; release it with [`Lock::release`] on every path (success, failure, cancel).
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    pub holder: Holder,
    /// A stale lock that was freed to take this one (reported as a warning).
    pub freed_stale: Option<Holder>,
}

/// Settings for taking the lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long to wait for another deploy to finish.
    pub wait: Duration,
    pub ttl: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: Duration::from_secs(
                std::env::var("DAVIT_LOCK_WAIT_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(120),
            ),
            ttl: Duration::from_secs(1800),
        }
    }
}

fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn run_url() -> String {
    match (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        (Ok(s), Ok(r), Ok(id)) => format!("{s}/{r}/actions/runs/{id}"),
        _ => String::new(),
    }
}

/// Read the current holder, if any.
pub async fn status(exec: &dyn Executor, t: &Target) -> Result<Option<Holder>, Failure> {
    let bytes = exec
        .read_file(&lock_path(t))
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    Ok(bytes.map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|_| Holder {
            token: String::new(),
            actor: "unknown (unreadable lock file)".into(),
            run_url: String::new(),
            machine: "unknown".into(),
            pid: 0,
            version: "?".into(),
            operation: "?".into(),
            since: String::new(),
            ci: false,
            ttl_secs: 0,
            process_space: String::new(),
        })
    }))
}

/// Take the lock, waiting up to `opts.wait` for the current holder.
pub async fn acquire(
    exec: &dyn Executor,
    t: &Target,
    operation: &str,
    version: &str,
    opts: &LockOptions,
) -> Result<Lock, Failure> {
    exec.mkdir(&t.state_dir, 0o750)
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    let path = lock_path(t);
    let token: u64 = rand::random();
    let holder = Holder {
        token: format!("{token:016x}"),
        actor: t.actor.clone(),
        run_url: run_url(),
        machine: machine(),
        pid: std::process::id(),
        version: version.to_string(),
        operation: operation.to_string(),
        since: crate::ledger::now(),
        ci: std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")
            || std::env::var("CI").as_deref() == Ok("true"),
        ttl_secs: opts.ttl.as_secs(),
        process_space: process_space(),
    };
    let body = serde_json::to_vec(&holder).expect("holder serializes");
    let deadline = tokio::time::Instant::now() + opts.wait;
    let mut freed_stale = None;
    loop {
        if exec
            .create_exclusive(&path, &body)
            .await
            .map_err(|e| Failure::infra(e.to_string()))?
        {
            return Ok(Lock {
                path,
                holder,
                freed_stale,
            });
        }
        let current = status(exec, t).await?;
        if let Some(h) = &current
            && (h.is_stale() || h.is_dead_here())
            && break_lock(exec, t, h).await?
        {
            freed_stale = Some(h.clone());
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            let who = current
                .map(|h| h.describe())
                .unwrap_or_else(|| "someone (the lock vanished while reading)".into());
            return Err(Failure::new(
                Exit::Infra,
                format!(
                    "{} is locked by another deploy: {who}; waited {}s",
                    t.environment,
                    opts.wait.as_secs()
                ),
            )
            .with_hint(format!(
                "wait for it to finish (DAVIT_LOCK_WAIT_SECS sets how long davit waits); if it is dead, `davit lock release {}` frees it",
                t.environment
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Remove the lock file if it still holds `dead`. Breakers take `deploy.lock.break` (O_EXCL)
/// first: otherwise one waiter could read the dead holder, another break it and take the lock,
/// and the first then delete that live lock. A breaker that died leaves its guard behind; a
/// guard older than [`BREAK_GUARD_SECS`] is removed so the next waiter can try.
async fn break_lock(exec: &dyn Executor, t: &Target, dead: &Holder) -> Result<bool, Failure> {
    let io = |e: davit_exec::ExecError| Failure::infra(e.to_string());
    let guard = t.state_dir.join("deploy.lock.break");
    let now = chrono::Utc::now();
    if !exec
        .create_exclusive(&guard, now.to_rfc3339().as_bytes())
        .await
        .map_err(io)?
    {
        let since = exec.read_file(&guard).await.map_err(io)?.and_then(|b| {
            chrono::DateTime::parse_from_rfc3339(String::from_utf8_lossy(&b).trim()).ok()
        });
        let old = since
            .is_none_or(|s| (now - s.with_timezone(&chrono::Utc)).num_seconds() > BREAK_GUARD_SECS);
        if old {
            exec.remove_file(&guard).await.map_err(io)?;
        }
        return Ok(false);
    }
    let result = async {
        if status(exec, t).await?.as_ref() != Some(dead) {
            return Ok(false);
        }
        exec.remove_file(&lock_path(t)).await.map_err(io)?;
        Ok(true)
    }
    .await;
    let _ = exec.remove_file(&guard).await;
    result
}

/// How old a breaker's guard must be before another waiter removes it.
const BREAK_GUARD_SECS: i64 = 30;

impl Lock {
    /// Remove the lock if it is still ours.
    pub async fn release(self, exec: &dyn Executor, t: &Target) -> Result<(), Failure> {
        match status(exec, t).await? {
            Some(h) if h.token == self.holder.token => exec
                .remove_file(&self.path)
                .await
                .map_err(|e| Failure::infra(e.to_string())),
            _ => Ok(()),
        }
    }
}

/// `davit lock release`: a person frees a lock they judge dead.
pub async fn force_release(exec: &dyn Executor, t: &Target) -> Result<Option<Holder>, Failure> {
    let h = status(exec, t).await?;
    if h.is_some() {
        exec.remove_file(&lock_path(t))
            .await
            .map_err(|e| Failure::infra(e.to_string()))?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(ci: bool, age_secs: i64) -> Holder {
        Holder {
            token: "t".into(),
            actor: "a".into(),
            run_url: String::new(),
            machine: "m".into(),
            pid: 1,
            version: "v1".into(),
            operation: "deploy".into(),
            since: (chrono::Utc::now() - chrono::Duration::seconds(age_secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ci,
            ttl_secs: 60,
            process_space: String::new(),
        }
    }

    #[test]
    fn t28_a_dead_holder_in_this_process_space_is_freed_and_nothing_else() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let here = |pid: u32, space: String| Holder {
            pid,
            process_space: space,
            machine: machine(),
            ..holder(false, 5)
        };
        assert!(!process_space().is_empty());
        assert!(here(dead, process_space()).is_dead_here());
        assert!(
            here(dead, process_space())
                .freed_note()
                .contains("no longer running")
        );
        assert!(
            !here(std::process::id(), process_space()).is_dead_here(),
            "a live holder keeps its lock"
        );
        assert!(
            !here(dead, "other-boot/pid:[1]".into()).is_dead_here(),
            "another machine's pid is not ours to judge"
        );
        assert!(!here(dead, String::new()).is_dead_here(), "old lock files");
        let elsewhere = Holder {
            machine: "another-host".into(),
            ..here(dead, process_space())
        };
        assert!(!elsewhere.is_dead_here(), "another machine name");
        assert!(
            !here(1, process_space()).is_dead_here(),
            "pid 1 lives (and may belong to another user: EPERM is alive)"
        );
    }

    #[test]
    fn t30_only_old_ci_locks_are_stale() {
        assert!(holder(true, 120).is_stale());
        assert!(!holder(true, 10).is_stale());
        assert!(
            !holder(false, 100_000).is_stale(),
            "manual locks never go stale"
        );
    }
}
