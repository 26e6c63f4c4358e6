//! The local executor: processes via tokio, files via std, HTTP via reqwest.

use crate::{ExecError, Executor, HttpResponse, Output};
use async_trait::async_trait;
use davit_core::Cmd;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Runs everything on this machine.
pub struct Local {
    name: String,
    http: reqwest::Client,
}

impl Default for Local {
    fn default() -> Self {
        Local::new()
    }
}

impl Local {
    pub fn new() -> Self {
        Local {
            name: "local".to_string(),
            // No connection pool reuse across probes: each probe should see what a new client
            // sees (a fresh connection through the proxy), not a keep-alive to an old upstream.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .no_proxy()
                .build()
                .expect("reqwest client with static settings"),
        }
    }

    fn io_err(&self, op: &'static str, path: &Path, source: std::io::Error) -> ExecError {
        ExecError::Io {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

#[async_trait]
impl Executor for Local {
    fn host(&self) -> &str {
        &self.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let mut c = tokio::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        for (k, v) in &cmd.env {
            c.env(k, v.expose());
        }
        if let Some(dir) = &cmd.cwd {
            c.current_dir(dir);
        }
        let mut child = c.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ExecError::Missing {
                    host: self.name.clone(),
                    program: cmd.program.clone(),
                }
            } else {
                ExecError::Spawn {
                    host: self.name.clone(),
                    command: cmd.render(),
                    source,
                }
            }
        })?;
        if let Some(body) = &cmd.stdin {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            let data = body.expose().as_bytes().to_vec();
            // Write in the background so a child that does not read stdin cannot deadlock us.
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }
        let wait = child.wait_with_output();
        let out = match cmd.timeout {
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(ExecError::Timeout {
                        host: self.name.clone(),
                        command: cmd.render(),
                        timeout: t,
                    });
                }
            },
            None => wait.await,
        }
        .map_err(|source| ExecError::Spawn {
            host: self.name.clone(),
            command: cmd.render(),
            source,
        })?;
        // Captured output is redacted where it is taken in (T46): hooks, docker and nginx may
        // echo a secret, and everything downstream (errors, ledger, summary) starts from here.
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: redacted(&out.stdout),
            stderr: redacted(&out.stderr),
        })
    }

    async fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ExecError> {
        let tmp = temp_beside(path);
        let result = (|| {
            // Created with the final mode from the start, so a secret is never briefly 0644.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(contents)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io_err("write", path, e));
        }
        Ok(())
    }

    async fn create_exclusive(&self, path: &Path, contents: &[u8]) -> Result<bool, ExecError> {
        // Complete before visible (T45): the holder record is written and synced under a temp
        // name, then hard-linked to `path`. link(2) fails when `path` exists, which keeps the
        // O_EXCL semantics, and a full disk fails the temp write, so no empty or partial lock
        // file can ever appear under `path`.
        let tmp = temp_beside(path);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(contents)?;
                f.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io_err("create", path, e));
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(path);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.io_err("create", path, e)),
        }
    }

    async fn append_line(&self, path: &Path, line: &str) -> Result<(), ExecError> {
        let mut record = line.trim_end_matches('\n').to_string();
        record.push('\n');
        append_whole(path, record.as_bytes()).map_err(|e| self.io_err("append to", path, e))
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, ExecError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err("read", path, e)),
        }
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        std::fs::rename(from, to).map_err(|e| self.io_err("rename", from, e))
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        let bytes = std::fs::read(from).map_err(|e| self.io_err("read", from, e))?;
        let mode = std::fs::metadata(from)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        self.write_file(to, &bytes, mode).await
    }

    async fn remove_file(&self, path: &Path) -> Result<(), ExecError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err("remove", path, e)),
        }
    }

    async fn mkdir(&self, path: &Path, mode: u32) -> Result<(), ExecError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| self.io_err("mkdir", path, e))
    }

    async fn http_get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, ExecError> {
        self.http_get_as(url, None, timeout).await
    }

    async fn http_get_as(
        &self,
        url: &str,
        host: Option<&str>,
        timeout: Duration,
    ) -> Result<HttpResponse, ExecError> {
        let err = |message: String| ExecError::Http {
            host: self.name.clone(),
            url: url.to_string(),
            message,
        };
        let mut req = self.http.get(url).timeout(timeout);
        if let Some(h) = host {
            req = req.header(reqwest::header::HOST, h);
        }
        let resp = req.send().await.map_err(|e| err(describe_reqwest(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.text().await.map_err(|e| err(describe_reqwest(&e)))?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn has_program(&self, program: &str) -> bool {
        which::which(program).is_ok()
    }
}

fn redacted(bytes: &[u8]) -> String {
    davit_core::redact::redacted(&String::from_utf8_lossy(bytes))
}

/// A private temp name in `path`'s folder (same file system, so rename and link work).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.davit-tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// Make a new directory entry durable (best effort: not every file system syncs directories).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// Append whole lines or nothing (T44). A tail left by a write that never finished (a crash, or
/// a full disk under an older davit) is cut back to the last newline first, so the new record
/// starts on its own line instead of being glued to a fragment. A write that fails part-way
/// (ENOSPC after some bytes) is cut back to where it started. Success is reported only after
/// fsync.
pub fn append_whole(path: &Path, record: &[u8]) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let created = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut whole = len;
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            let mut all = Vec::new();
            f.seek(SeekFrom::Start(0))?;
            f.read_to_end(&mut all)?;
            whole = all
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i as u64 + 1);
            f.set_len(whole)?;
            f.sync_all()?;
        }
    }
    if let Err(e) = f.write_all(record).and_then(|()| f.sync_data()) {
        // Cutting back frees what the partial write took, so this works on a full disk.
        let _ = f.set_len(whole).and_then(|()| f.sync_all());
        return Err(e);
    }
    if created {
        sync_dir(path);
    }
    Ok(())
}

/// The bytes at the end of a ledger-like file that are not a whole line (a write that never
/// finished), or None when it ends with a newline or is empty.
pub fn torn_tail(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.last() {
        None | Some(b'\n') => None,
        Some(_) => {
            let start = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            Some(&bytes[start..])
        }
    }
}

/// reqwest's Display hides the cause ("error sending request"); the cause is what users need.
fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use davit_core::{FileBody, Secret};

    #[tokio::test]
    async fn runs_with_env_and_stdin_and_reports_status() {
        let l = Local::new();
        let out = l
            .run(
                &Cmd::new("sh")
                    .args(["-c", "read x; echo \"$x-$SECRET\"; exit 3"])
                    .secret_env("SECRET", Secret::new("s".into()))
                    .stdin(FileBody::Plain("in".into())),
            )
            .await
            .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "in-s\n");
    }

    #[tokio::test]
    async fn timeout_kills_and_missing_program_is_named() {
        let l = Local::new();
        let e = l
            .run(
                &Cmd::new("sleep")
                    .arg("5")
                    .timeout(Duration::from_millis(100)),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        let e = l.run(&Cmd::new("davit-no-such-tool")).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "local: `davit-no-such-tool` is not installed or not on PATH"
        );
    }

    #[tokio::test]
    async fn write_file_is_atomic_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.env");
        let l = Local::new();
        l.write_file(&p, b"A=1\n", 0o600).await.unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A failed write (directory missing) leaves nothing behind and the error names the path.
        let e = l
            .write_file(&dir.path().join("no/such/file"), b"x", 0o600)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no/such/file"), "{e}");
    }
}
