//! The script protocol: every operation is a POSIX `sh` script written to ssh's stdin, so
//! nothing that varies (and no secret) is ever in an argv (T01, T09); the command's status
//! comes back behind a random marker, which tells a remote `exit 255` from ssh's own.

use super::http::find;
use super::trust::classify;
use super::{Attempt, NO_MASTER, REMOTE_KILL_GRACE_SECS, Raw, Ssh};
use crate::ExecError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use davit_core::Cmd;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl Ssh {
    /// Run `body` with `sh -s` on the host. The body must leave its status in `$?` at the end;
    /// a trailer reports it behind a random marker, so a remote 255 is not mistaken for ssh's.
    ///
    /// When the client could not hand the request to the master (it exited between the check
    /// and the request, or before confirming the session) it falls back to a connection of its
    /// own, which [`NO_MASTER`] refuses at once and marks. The script travels on stdin, which the
    /// master forwards only after confirming the session, so nothing ran on the host: the script
    /// is sent once more over a fresh master. Once the shell has started, a failure is reported, never retried: the
    /// command may have had effects.
    pub(super) async fn script(&self, body: String, timeout: Duration) -> Result<Raw, ExecError> {
        self.ensure_master().await?;
        match self.script_once(&body, timeout).await {
            Err(Attempt::NotStarted(lost)) => {
                tracing::info!(host = %self.name, error = %lost, "ssh request never reached the host; reconnecting and sending it again");
                if let Err(again) = self.ensure_master().await {
                    // The first error says what happened (stalled, lost); the second why
                    // davit could not carry on. Both already name the host: keep it once.
                    let bare = |e: &ExecError| match e {
                        ExecError::Io { source, .. } => source.to_string(),
                        other => other.to_string(),
                    };
                    return Err(self.conn_error(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("{}; reconnecting failed too: {}", bare(&lost), bare(&again)),
                    ));
                }
                match self.script_once(&body, timeout).await {
                    Ok(raw) => Ok(raw),
                    Err(Attempt::NotStarted(e) | Attempt::Failed(e)) => Err(e),
                }
            }
            Err(Attempt::Failed(e)) => Err(e),
            Ok(raw) => Ok(raw),
        }
    }

    /// One try of [`Self::script`] over the current master.
    pub(super) async fn script_once(&self, body: &str, timeout: Duration) -> Result<Raw, Attempt> {
        let marker = format!(
            "davit-status-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let mut script = String::with_capacity(body.len() + 256);
        // Start markers: whatever a login shell's rc files print before our script runs is
        // noise, not the command's output, and is cut off at these lines.
        let _ = writeln!(
            script,
            "printf '%s\\n' '{marker}-out'; printf '%s\\n' '{marker}-err' >&2"
        );
        let _ = writeln!(
            script,
            "davit_status() {{ printf '\\n%s %s\\n' '{marker}' \"$1\" >&2; exit \"$1\"; }}"
        );
        let _ = writeln!(
            script,
            "davit_missing() {{ printf '\\n%s missing\\n' '{marker}' >&2; exit 127; }}"
        );
        script.push_str(body);
        if !body.ends_with('\n') {
            script.push('\n');
        }
        script.push_str("davit_status $?\n");

        let mut c = tokio::process::Command::new("ssh");
        c.args(&self.opts)
            // Clients stay quiet (the command's stderr is data); the master logs at INFO, above.
            .args(["-o", "ControlMaster=no", "-o", "LogLevel=ERROR"])
            // When the master dies mid-request, a client falls back to its own connection; it
            // has no key by then, and on a black-holed host it would only hang or leave failed
            // logins (fail2ban food). ProxyCommand is only used for that fallback: make it fail
            // at once, marked, so `script` knows the request never left this machine.
            .arg("-o")
            .arg(format!("ProxyCommand=sh -c 'echo {NO_MASTER} >&2; exit 1'"))
            .arg("--")
            .arg(&self.cfg.host)
            .arg("sh -s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().map_err(|e| {
            Attempt::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                self.conn_error(
                    e.kind(),
                    "`ssh` is not installed; hint: install openssh-client".into(),
                )
            } else {
                self.conn_error(e.kind(), format!("cannot run ssh: {e}"))
            })
        })?;
        let mut stdin = child.stdin.take().expect("stdin was piped");
        let mut stdout = child.stdout.take().expect("stdout was piped");
        let mut stderr = child.stderr.take().expect("stderr was piped");
        let run = async {
            // Feed the script while draining both outputs, so a chatty command cannot deadlock
            // us on a full pipe before it has read its stdin.
            let feed = async {
                let _ = stdin.write_all(script.as_bytes()).await;
                let _ = stdin.shutdown().await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (_, o, e) = tokio::join!(
                feed,
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err)
            );
            o.and(e)?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(Attempt::Failed(
                    self.conn_error(e.kind(), format!("ssh I/O failed: {e}")),
                ));
            }
            // Dropping the future drops the child: kill_on_drop kills the local client, the
            // master closes the channel, and the remote `timeout` ends the command.
            Err(_) => return Err(Attempt::Failed(timeout_marker(timeout))),
        };
        // The client fell back to its own connection (never reached the master) and the shell
        // never printed its first line: the request did not reach the host.
        let never_sent = find(&err, NO_MASTER.as_bytes()).is_some()
            && find(&err, format!("{marker}-err\n").as_bytes()).is_none();
        let out = after_line(out, format!("{marker}-out\n").as_bytes());
        let err = String::from_utf8_lossy(&after_line(err, format!("{marker}-err\n").as_bytes()))
            .into_owned();
        let needle = format!("\n{marker} ");
        match err.rfind(&needle) {
            Some(at) => {
                let word = err[at + needle.len()..].trim();
                let missing = word == "missing";
                let code = if missing {
                    127
                } else {
                    word.parse().unwrap_or(-1)
                };
                Ok(Raw {
                    status: code,
                    stdout: out,
                    stderr: err[..at].to_string(),
                    missing,
                })
            }
            None => {
                // No trailer: the script never finished, so this is ssh (or the connection)
                // failing, whatever the exit code. Check the master before the next operation.
                self.suspect.store(true, Ordering::SeqCst);
                let log = std::fs::read_to_string(self.path("master.log")).unwrap_or_default();
                let mut text = err.clone();
                if !log.trim().is_empty() {
                    text.push('\n');
                    text.push_str(&log);
                }
                let (kind, mut msg) = classify(&text, &self.cfg, false);
                if status.code() != Some(255) {
                    let _ = write!(
                        msg,
                        " (the remote shell ended without reporting a status: {status})"
                    );
                }
                let e = self.conn_error(kind, msg);
                Err(if never_sent {
                    Attempt::NotStarted(e)
                } else {
                    Attempt::Failed(e)
                })
            }
        }
    }

    /// [`Self::script`] whose timeout becomes [`ExecError::Timeout`] naming `what`.
    pub(super) async fn op(&self, body: String, what: &str) -> Result<Raw, ExecError> {
        self.timed(body, self.cfg.command_timeout, what).await
    }

    pub(super) async fn timed(
        &self,
        body: String,
        timeout: Duration,
        what: &str,
    ) -> Result<Raw, ExecError> {
        self.script(body, timeout).await.map_err(|e| match e {
            ExecError::Timeout { timeout, .. } => ExecError::Timeout {
                host: self.name.clone(),
                command: what.to_string(),
                timeout,
            },
            other => other,
        })
    }

    pub(super) fn io_err(&self, op: &'static str, path: &Path, raw: &Raw) -> ExecError {
        let msg = raw.stderr.trim();
        let kind = if msg.contains("No such file") || msg.contains("nonexistent") {
            std::io::ErrorKind::NotFound
        } else if msg.contains("Permission denied") {
            std::io::ErrorKind::PermissionDenied
        } else {
            std::io::ErrorKind::Other
        };
        let text = if msg.is_empty() {
            format!("failed with status {}", raw.status)
        } else {
            msg.lines().last().unwrap_or(msg).to_string()
        };
        ExecError::Io {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            source: std::io::Error::new(kind, text),
        }
    }

    pub(super) fn quote_err(&self, op: &'static str, path: &Path, e: QuoteError) -> ExecError {
        ExecError::Io {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        }
    }

    pub(super) fn qpath(&self, op: &'static str, path: &Path) -> Result<String, ExecError> {
        let s = path.to_str().ok_or_else(|| {
            self.quote_err(op, path, QuoteError("the path is not valid UTF-8".into()))
        })?;
        if s.is_empty() {
            return Err(self.quote_err(op, path, QuoteError("the path is empty".into())));
        }
        sh_quote(s).map_err(|e| self.quote_err(op, path, e))
    }

    /// The command part of [`Executor::run`]'s script; errors name the offending value.
    pub(super) fn command_script(&self, cmd: &Cmd, timeout: Duration) -> Result<String, String> {
        let q = |s: &str, what: &str| sh_quote(s).map_err(|e| format!("{what}: {e}"));
        let mut s = String::new();
        if let Some(dir) = &cmd.cwd {
            let d = dir
                .to_str()
                .ok_or("the working directory is not valid UTF-8")?;
            let _ = writeln!(s, "cd -- {} || davit_status 1", q(d, "working directory")?);
        }
        for (k, v) in &cmd.env {
            davit_core::validate::env_name("environment variable", k).map_err(|e| e.to_string())?;
            // A builtin: the value goes from the script into the environment, never into argv.
            let _ = writeln!(s, "export {k}={}", q(v.expose(), k)?);
        }
        if cmd.program.is_empty() {
            return Err("the program name is empty".into());
        }
        let prog = q(&cmd.program, "program")?;
        let _ = writeln!(s, "command -v {prog} >/dev/null 2>&1 || davit_missing");
        // Remote side of the timeout: the local kill ends our ssh client, but a command on the
        // host would keep running without a TTY to hang up; `timeout` (coreutils, busybox)
        // ends it too. Slightly later than the local bound so the local error is the one seen.
        let secs = timeout.as_secs() + 2;
        let _ = writeln!(
            s,
            "davit_run() {{ if command -v timeout >/dev/null 2>&1; then timeout -k {REMOTE_KILL_GRACE_SECS} {secs} \"$@\"; else \"$@\"; fi; }}"
        );
        let mut line = format!("davit_run {prog}");
        for a in &cmd.args {
            line.push(' ');
            line.push_str(&q(a, "argument")?);
        }
        match &cmd.stdin {
            None => {
                // Never inherit the script's own stdin: the command would eat the script.
                let _ = writeln!(s, "{line} </dev/null");
            }
            Some(body) => {
                let delim = heredoc_delim();
                let _ = writeln!(s, "base64 -d <<'{delim}' | {line}");
                push_heredoc(&mut s, &delim, body.expose().as_bytes());
            }
        }
        Ok(s)
    }
}

/// The bytes after the first occurrence of `line`, or all of them when it is absent.
pub(super) fn after_line(bytes: Vec<u8>, line: &[u8]) -> Vec<u8> {
    match find(&bytes, line) {
        Some(at) => bytes[at + line.len()..].to_vec(),
        None => bytes,
    }
}

/// A random here-document delimiter; base64 text can never contain its `_`.
pub(super) fn heredoc_delim() -> String {
    format!("DAVIT_EOF_{:016x}", rand::random::<u64>())
}

/// Append `data` as base64 lines, then the `delim` line that ends the here-document.
pub(super) fn push_heredoc(s: &mut String, delim: &str, data: &[u8]) {
    let enc = B64.encode(data);
    for chunk in enc.as_bytes().chunks(76) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(delim);
    s.push('\n');
}

/// The error [`Ssh::script`] returns on timeout; callers rewrite `command`.
pub(super) fn timeout_marker(timeout: Duration) -> ExecError {
    ExecError::Timeout {
        host: String::new(),
        command: String::new(),
        timeout,
    }
}

/// Why a value cannot be put in a shell script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuoteError(String);

/// Quote one word for POSIX `sh`, strictly: always single quotes, a `'` inside becomes `'\''`,
/// nothing else is special between single quotes (no `$`, backtick, backslash or newline
/// processing). NUL cannot be represented in a shell word (C strings end there, so the rest
/// would silently vanish) and is rejected rather than truncated.
pub fn sh_quote(s: &str) -> Result<String, QuoteError> {
    if s.contains('\0') {
        return Err(QuoteError(
            "contains a NUL byte, which cannot be passed to a program; remove it".into(),
        ));
    }
    Ok(format!("'{}'", s.replace('\'', r"'\''")))
}

pub(super) fn split(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}
