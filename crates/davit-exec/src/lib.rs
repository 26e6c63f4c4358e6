//! Runs plans. Strategies decide; this crate does.
//!
//! An [`Executor`] is the set of primitive operations davit needs on a host: run a process, write
//! a file atomically, read, rename, copy, append, and make an HTTP request from that host's point
//! of view. `Local` does them here, `Recording` only records them (dry-run and plan tests), and
//! the SSH backend (remote hosts) implements the same trait by running them over one multiplexed
//! connection. [`runner::run_plan`] walks a `Plan` on any executor and, when a step fails, runs the
//! `undo` steps of what was done in reverse, so compensation lives in one place.

pub mod drain;
pub mod local;
pub mod ready;
pub mod recording;
pub mod runner;
pub mod ssh;
pub mod timeline;

use async_trait::async_trait;
use davit_core::Cmd;
use std::path::Path;
use std::time::Duration;

pub use local::Local;
pub use recording::Recording;
pub use runner::{Event, Observer, PlanError, StepError, run_plan};
pub use ssh::{Ssh, SshConfig};
pub use timeline::Timeline;

/// What a finished process left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// One HTTP answer, as much as probes need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{host}: `{program}` is not installed or not on PATH")]
    Missing { host: String, program: String },
    #[error("{host}: could not start `{command}`: {source}")]
    Spawn {
        host: String,
        command: String,
        source: std::io::Error,
    },
    #[error("{host}: `{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        host: String,
        command: String,
        timeout: Duration,
    },
    #[error("{host}: `{command}` exited with {status}{}", tail(.stderr))]
    Failed {
        host: String,
        command: String,
        status: i32,
        stderr: String,
        /// Its standard output: not shown (it may be long), but read where progress lines say
        /// how far the command got (which migration a migration hook was applying).
        stdout: String,
    },
    #[error("{host}: {op} {path}: {source}")]
    Io {
        host: String,
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{host}: HTTP {url}: {message}")]
    Http {
        host: String,
        url: String,
        message: String,
    },
}

/// The last lines of a failed command's stderr, enough to see why without flooding the log.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(8);
    format!(": {}", lines[start..].join("\n  "))
}

/// Primitive operations on one host.
#[async_trait]
pub trait Executor: Send + Sync {
    /// A name for messages: `local`, `deploy@web-1`.
    fn host(&self) -> &str;
    /// Run a process to completion and return its output whatever the exit status.
    async fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;
    /// Write a file atomically with a mode: a half-written file is never visible under `path`.
    async fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ExecError>;
    /// Create a file only if it does not exist (O_EXCL): the primitive behind the deploy lock.
    /// Returns false when the file already exists.
    async fn create_exclusive(&self, path: &Path, contents: &[u8]) -> Result<bool, ExecError>;
    /// Append one line (a ledger record) in a single write.
    async fn append_line(&self, path: &Path, line: &str) -> Result<(), ExecError>;
    /// Read a file; `None` when it does not exist.
    async fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, ExecError>;
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError>;
    async fn copy(&self, from: &Path, to: &Path) -> Result<(), ExecError>;
    /// Remove a file; not an error when it is already gone.
    async fn remove_file(&self, path: &Path) -> Result<(), ExecError>;
    async fn mkdir(&self, path: &Path, mode: u32) -> Result<(), ExecError>;
    /// An HTTP GET from this host's point of view (probes of ports bound to its loopback).
    async fn http_get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, ExecError>;
    /// Whether `program` can be run on this host.
    async fn has_program(&self, program: &str) -> bool;

    /// [`Executor::http_get`] with a `Host` header (the name the app answers to, e.g. one of
    /// Django's ALLOWED_HOSTS) instead of the probed address. Executors that cannot set one
    /// refuse rather than probe with the wrong name.
    async fn http_get_as(
        &self,
        url: &str,
        host: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpResponse, ExecError> {
        match host {
            None => self.http_get(url, timeout).await,
            Some(h) => Err(ExecError::Http {
                host: self.host().to_string(),
                url: url.to_string(),
                message: format!("this executor cannot send the Host header {h}"),
            }),
        }
    }

    /// Run a process and turn a non-zero exit into an error carrying its stderr.
    async fn run_ok(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = self.run(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ExecError::Failed {
                host: self.host().to_string(),
                command: cmd.render(),
                status: out.status,
                stderr: out.stderr,
                stdout: out.stdout,
            })
        }
    }
}

/// Check every program a plan needs before running any of it, naming all missing ones at once.
pub async fn missing_programs(exec: &dyn Executor, programs: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    for p in programs {
        if !exec.has_program(p).await {
            missing.push(p.clone());
        }
    }
    missing
}
