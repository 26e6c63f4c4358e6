//! The master connection's lifecycle: set up trust and open one multiplexed OpenSSH
//! connection ([`Ssh::connect`]), notice when it died and open it again, and close it on drop.
//! The private key exists on disk only for a handshake (T10).

use super::trust::{Trust, classify, conn_err, normalize_pin};
use super::{CONTROL_PERSIST_SECS, KEEPALIVE_COUNT, Ssh, SshConfig};
use crate::ExecError;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

impl Ssh {
    /// Set up host-key trust, open the master connection and check the host has what the
    /// file operations need (`sh`, `base64`).
    pub async fn connect(cfg: SshConfig) -> Result<Ssh, ExecError> {
        let name = if cfg.port == 22 {
            format!("{}@{}", cfg.user, cfg.host)
        } else {
            format!("{}@{}:{}", cfg.user, cfg.host, cfg.port)
        };
        let fail = |msg: String| conn_err(&name, std::io::ErrorKind::InvalidInput, msg);
        // T02: a host or user starting with '-' would be an ssh option; reject, don't escape.
        if let Err(e) = davit_core::validate::hostname("ssh host", &cfg.host) {
            return Err(fail(e.to_string()));
        }
        let user_ok = !cfg.user.is_empty()
            && !cfg.user.starts_with('-')
            && cfg
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !user_ok {
            return Err(fail(format!(
                "invalid ssh user {:?}; hint: use letters, digits, '.', '_' and '-', not starting with '-'",
                cfg.user
            )));
        }
        if cfg.port == 0 {
            return Err(fail("ssh port 0 is not a port; hint: use 1-65535".into()));
        }
        if cfg.private_key.expose().trim().is_empty() {
            return Err(fail(
                "the ssh private key is empty; hint: set the deploy key secret (the contents of the private key file)".into(),
            ));
        }
        // T12: decide the trust source before touching the network.
        let known = cfg
            .known_hosts
            .as_ref()
            .map(|k| k.expose().as_str())
            .filter(|k| {
                k.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            });
        let pin = cfg
            .fingerprint
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let trust = match (known, pin) {
            (Some(_), Some(_)) => {
                return Err(fail(
                    "both known_hosts and a host key fingerprint are set; hint: set exactly one, so it is clear which one davit trusts".into(),
                ));
            }
            (None, None) => {
                return Err(fail(format!(
                    "no host key to verify {} against: known_hosts is empty and no fingerprint is pinned; davit never connects unverified; hint: set known_hosts to the output of `ssh-keyscan -p {} {}` (checked out of band), or pin the key with fingerprint = \"SHA256:...\" from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host",
                    cfg.host, cfg.port, cfg.host
                )));
            }
            (Some(k), None) => Trust::KnownHosts(k.to_string()),
            (None, Some(p)) => Trust::Pin(normalize_pin(p).map_err(fail)?),
        };

        let dir = private_dir().map_err(|e| {
            conn_err(
                &name,
                e.kind(),
                format!("cannot create a private temp dir: {e}"),
            )
        })?;
        let mut ssh = Ssh {
            opts: Vec::new(),
            name,
            cfg,
            dir: Some(dir),
            suspect: AtomicBool::new(false),
            reconnect: tokio::sync::Mutex::new(()),
        };
        ssh.opts = ssh.base_opts();
        let known_hosts = match trust {
            Trust::KnownHosts(k) => k,
            Trust::Pin(p) => ssh.pinned_known_hosts(&p).await?,
        };
        write_private(&ssh.path("known_hosts"), known_hosts.as_bytes()).map_err(|e| {
            ssh.conn_error(e.kind(), format!("cannot write the known_hosts file: {e}"))
        })?;
        ssh.start_master().await?;
        // Everything else assumes a POSIX sh and base64 on the host: say so once, up front.
        let raw = ssh
            .script(
                "command -v base64 >/dev/null 2>&1 || { echo 'base64 is missing' >&2; exit 3; }\n"
                    .to_string(),
                ssh.cfg.connect_timeout + Duration::from_secs(10),
            )
            .await?;
        if raw.status != 0 {
            return Err(ssh.conn_error(
                std::io::ErrorKind::NotFound,
                format!(
                    "the host has no `base64`, which davit needs to move files; hint: install coreutils (or busybox) on the host{}",
                    crate::tail(&raw.stderr)
                ),
            ));
        }
        Ok(ssh)
    }

    /// The control socket; `ssh -S <it> -O check <host>` tells whether the connection is up.
    pub fn control_path(&self) -> PathBuf {
        self.path("cm")
    }

    pub(super) fn path(&self, file: &str) -> PathBuf {
        self.dir
            .as_ref()
            .expect("the dir lives as long as Ssh")
            .path()
            .join(file)
    }

    pub(super) fn conn_error(&self, kind: std::io::ErrorKind, message: String) -> ExecError {
        conn_err(&self.name, kind, message)
    }

    /// Options for every invocation. Constant per host: no command, path or secret in them.
    pub(super) fn base_opts(&self) -> Vec<String> {
        let secs = |d: Duration| d.as_secs().max(1).to_string();
        let mut o: Vec<String> = vec!["-F".into(), "/dev/null".into()];
        let kv = [
            ("BatchMode", "yes".to_string()),
            ("IdentitiesOnly", "yes".to_string()),
            ("IdentityAgent", "none".to_string()),
            (
                "IdentityFile",
                self.path("id_davit").to_string_lossy().into_owned(),
            ),
            ("StrictHostKeyChecking", "yes".to_string()),
            (
                "UserKnownHostsFile",
                self.path("known_hosts").to_string_lossy().into_owned(),
            ),
            ("GlobalKnownHostsFile", "/dev/null".to_string()),
            ("UpdateHostKeys", "no".to_string()),
            ("CheckHostIP", "no".to_string()),
            ("PasswordAuthentication", "no".to_string()),
            ("KbdInteractiveAuthentication", "no".to_string()),
            ("ConnectTimeout", secs(self.cfg.connect_timeout)),
            ("ServerAliveInterval", secs(self.cfg.keepalive_interval)),
            ("ServerAliveCountMax", KEEPALIVE_COUNT.to_string()),
            (
                "ControlPath",
                self.control_path().to_string_lossy().into_owned(),
            ),
            ("ForwardAgent", "no".to_string()),
            ("ForwardX11", "no".to_string()),
            ("ClearAllForwardings", "yes".to_string()),
            ("RequestTTY", "no".to_string()),
        ];
        for (k, v) in kv {
            o.push("-o".into());
            o.push(format!("{k}={v}"));
        }
        o.push("-p".into());
        o.push(self.cfg.port.to_string());
        o.push("-l".into());
        o.push(self.cfg.user.clone());
        o
    }

    /// Open the ControlMaster. The key exists on disk only while this runs.
    pub(super) async fn start_master(&self) -> Result<(), ExecError> {
        let key = self.path("id_davit");
        let mut material = self.cfg.private_key.expose().replace("\r\n", "\n");
        if !material.ends_with('\n') {
            // OpenSSH rejects a key file without the final newline, a common copy-paste loss.
            material.push('\n');
        }
        let _ = std::fs::remove_file(self.control_path());
        let log = self.path("master.log");
        // A previous master's last words (a keepalive timeout) must not explain this attempt.
        let _ = std::fs::write(&log, b"");
        let result = async {
            write_private(&key, material.as_bytes()).map_err(|e| {
                self.conn_error(e.kind(), format!("cannot write the private key: {e}"))
            })?;
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&log)
                .map_err(|e| self.conn_error(e.kind(), format!("cannot open a log file: {e}")))?;
            // The master forks into the background after authenticating (-f) and keeps running
            // with no command (-N). Its stderr goes to a file, not a pipe: the forked master
            // would otherwise hold the pipe open and a read to EOF would never end. `-E` keeps
            // its later messages (keepalive timeouts) in the same file for diagnosis.
            let mut c = tokio::process::Command::new("ssh");
            c.args(&self.opts)
                .args(["-o", "ControlMaster=yes"])
                .arg("-o")
                .arg(format!("ControlPersist={CONTROL_PERSIST_SECS}"))
                .args(["-o", "LogLevel=INFO", "-E"])
                .arg(&log)
                .args(["-N", "-f", "--"])
                .arg(&self.cfg.host)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .kill_on_drop(true);
            // ConnectTimeout covers TCP and the banner; this also bounds key exchange and auth.
            let bound = self.cfg.connect_timeout * 2 + Duration::from_secs(10);
            let status = match tokio::time::timeout(bound, c.status()).await {
                Err(_) => {
                    return Err(self.conn_error(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the ssh handshake did not finish within {}s; hint: check that the host is up, sshd answers on port {}, and no firewall drops the traffic",
                            bound.as_secs(),
                            self.cfg.port
                        ),
                    ));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(self.conn_error(
                        e.kind(),
                        "`ssh` is not installed; hint: install openssh-client".into(),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(self.conn_error(e.kind(), format!("cannot run ssh: {e}")));
                }
                Ok(Ok(s)) => s,
            };
            if !status.success() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let (kind, msg) = classify(&text, &self.cfg, true);
                return Err(self.conn_error(kind, msg));
            }
            Ok(())
        }
        .await;
        // T10: whatever happened, the key leaves the disk now; the master is authenticated.
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::write(&log, b"");
        result
    }

    /// Whether the master answers on its control socket.
    pub(super) async fn master_alive(&self) -> bool {
        if !self.control_path().exists() {
            return false;
        }
        let check = tokio::process::Command::new("ssh")
            .args(&self.opts)
            .args(["-O", "check", "--"])
            .arg(&self.cfg.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), check).await,
            Ok(Ok(s)) if s.success()
        )
    }

    /// Re-open the master if a previous operation failed at the ssh level or it went away.
    pub(super) async fn ensure_master(&self) -> Result<(), ExecError> {
        if !self.suspect.load(Ordering::SeqCst) && self.control_path().exists() {
            return Ok(());
        }
        let _guard = self.reconnect.lock().await;
        if self.master_alive().await {
            self.suspect.store(false, Ordering::SeqCst);
            return Ok(());
        }
        tracing::info!(host = %self.name, "ssh connection lost; reconnecting");
        self.start_master().await?;
        self.suspect.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        if dir.path().join("cm").exists() {
            // Close the master; bounded, because Drop must not hang on a wedged process.
            let child = std::process::Command::new("ssh")
                .args(&self.opts)
                .args(["-O", "exit", "--"])
                .arg(&self.cfg.host)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if std::time::Instant::now() > deadline => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        }
        // Belt and braces: the key should be gone already (removed after the handshake).
        let _ = std::fs::remove_file(dir.path().join("id_davit"));
        let _ = dir.close();
    }
}

/// A private temp dir (0700). The control socket path must fit in a `sockaddr_un` with the
/// random suffix ssh adds while creating it, so a long `$TMPDIR` falls back to `/tmp`.
pub(super) fn private_dir() -> std::io::Result<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix("davit-ssh-");
    let dir = match std::env::temp_dir() {
        t if t.as_os_str().len() <= 60 => b.tempdir_in(t)?,
        _ => b.tempdir_in("/tmp")?,
    };
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Create (or replace) a file that is 0600 from its first byte.
pub(super) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
