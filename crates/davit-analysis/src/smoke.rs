//! Run the user's smoke test against the new release, with `BASE_URL` set.
//!
//! Metrics say how real traffic fares; a smoke test checks the paths that matter most even
//! when traffic is thin. The command is an argv list run directly (no shell, so nothing in a
//! URL or a config value is ever interpreted), in its own process group so that a script's
//! children are stopped with it when the timeout fires, and its output is kept (bounded) for
//! the step summary.

use crate::spec::SmokeSpec;
use serde::Serialize;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of output kept per stream (the end, where the failure usually is).
const KEEP: usize = 16 * 1024;

/// What the smoke test did.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeResult {
    pub passed: bool,
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub elapsed_secs: f64,
    /// The last part of stdout and stderr.
    pub stdout: String,
    pub stderr: String,
    /// Set when the command could not be started at all.
    pub error: Option<String>,
}

impl SmokeResult {
    /// One line for the timeline and the summary.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("smoke test could not start: {e}");
        }
        if self.timed_out {
            return format!("smoke test timed out after {:.1}s", self.elapsed_secs);
        }
        match self.code {
            Some(0) => format!("smoke test passed in {:.1}s", self.elapsed_secs),
            Some(c) => format!("smoke test failed with exit code {c}"),
            None => "smoke test was killed by a signal".into(),
        }
    }
}

/// Run `spec.command` with `BASE_URL=base_url` (plus `extra_env`) in `cwd`.
pub async fn run_smoke(
    spec: &SmokeSpec,
    base_url: &str,
    cwd: Option<&Path>,
    extra_env: &[(String, String)],
) -> SmokeResult {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&spec.command[0]);
    cmd.args(&spec.command[1..])
        .env("BASE_URL", base_url)
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let failed_start = |e: String| SmokeResult {
        passed: false,
        code: None,
        timed_out: false,
        elapsed_secs: started.elapsed().as_secs_f64(),
        stdout: String::new(),
        stderr: String::new(),
        error: Some(e),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed_start(format!("{}: {e}", spec.command[0])),
    };
    let pid = child.id();
    let out = tokio::spawn(tail(child.stdout.take()));
    let err = tokio::spawn(tail(child.stderr.take()));
    let (code, timed_out) = match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(e)) => return failed_start(format!("waiting for the smoke test: {e}")),
        Err(_) => {
            // The whole group: a script's curl or test runner must not outlive the step.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            (None, true)
        }
    };
    // Readers end when the pipes close; after a group kill that is immediate. The bound
    // covers a grandchild that left the group and kept the pipe open.
    let grab = |h: tokio::task::JoinHandle<String>| async move {
        tokio::time::timeout(Duration::from_secs(2), h)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let stdout = grab(out).await;
    let stderr = grab(err).await;
    SmokeResult {
        passed: code == Some(0) && !timed_out,
        code,
        timed_out,
        elapsed_secs: started.elapsed().as_secs_f64(),
        stdout,
        stderr,
        error: None,
    }
}

async fn tail(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut s) = stream else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP {
                    kept.drain(..kept.len() - KEEP);
                }
            }
        }
    }
    if kept.len() > KEEP {
        kept.drain(..kept.len() - KEEP);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], timeout_ms: u64) -> SmokeSpec {
        SmokeSpec {
            command: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn base_url_is_set_and_output_captured() {
        let r = run_smoke(
            &spec(&["sh", "-c", "echo url=$BASE_URL; echo oops >&2"], 10_000),
            "http://127.0.0.1:18082",
            None,
            &[],
        )
        .await;
        assert!(r.passed, "{r:?}");
        assert_eq!(r.stdout, "url=http://127.0.0.1:18082\n");
        assert_eq!(r.stderr, "oops\n");
        assert_eq!(
            r.summary().split(' ').take(3).collect::<Vec<_>>(),
            ["smoke", "test", "passed"]
        );
    }

    #[tokio::test]
    async fn base_url_is_data_not_code() {
        // The URL reaches the command as an env value; no shell ever parses it.
        let r = run_smoke(
            &spec(&["printenv", "BASE_URL"], 10_000),
            "http://x/$(id);`id`",
            None,
            &[],
        )
        .await;
        assert_eq!(r.stdout, "http://x/$(id);`id`\n");
    }

    #[tokio::test]
    async fn failure_missing_program_and_timeout() {
        let r = run_smoke(&spec(&["sh", "-c", "exit 3"], 10_000), "u", None, &[]).await;
        assert!(!r.passed);
        assert_eq!(r.code, Some(3));
        assert!(r.summary().contains("exit code 3"));

        let r = run_smoke(&spec(&["/nonexistent/smoke"], 10_000), "u", None, &[]).await;
        assert!(!r.passed);
        assert!(r.error.is_some());

        // A child that would outlive its parent is killed with the group. It names itself first
        // and would then live 30 s, so once the timeout fired it must be gone soon: watched,
        // not slept on.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = format!(
            "sh -c 'echo $$ > {p}.tmp && mv {p}.tmp {p} && exec sleep 30' & sleep 30",
            p = pid_file.display()
        );
        let started = Instant::now();
        let r = run_smoke(&spec(&["sh", "-c", &script], 300), "u", None, &[]).await;
        assert!(r.timed_out && !r.passed, "{r:?}");
        loop {
            match std::fs::read_to_string(&pid_file) {
                Ok(pid) if gone(pid.trim()) => break,
                Ok(_) => {}
                // Never ran: the group was killed before the child started, and a child that
                // survived would have named itself by now.
                Err(_) if started.elapsed() > Duration::from_secs(10) => break,
                Err(_) => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the background child was not killed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// No such process, a zombie that nobody reaps (the killed child's parent died with it), or
    /// one with SIGKILL pending (on a loaded machine it may not have been scheduled to die yet).
    fn gone(pid: &str) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return true;
        };
        const SIGKILL_BIT: u64 = 1 << (9 - 1);
        status.lines().any(|l| {
            let (key, value) = l.split_once(':').unwrap_or_default();
            let value = value.trim();
            match key {
                "State" => value.starts_with('Z'),
                "SigPnd" | "ShdPnd" => {
                    u64::from_str_radix(value, 16).is_ok_and(|m| m & SIGKILL_BIT != 0)
                }
                _ => false,
            }
        })
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let r = run_smoke(
            &spec(
                &[
                    "sh",
                    "-c",
                    "head -c 200000 /dev/zero | tr '\\0' a; echo END",
                ],
                10_000,
            ),
            "u",
            None,
            &[],
        )
        .await;
        assert!(r.passed);
        assert_eq!(r.stdout.len(), KEEP);
        assert!(r.stdout.ends_with("END\n"));
    }
}
