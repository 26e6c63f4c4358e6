//! The SSH executor: every [`Executor`] operation on a remote host, through the system `ssh`.
//!
//! Why the system client and not a Rust SSH library: OpenSSH is what operators already trust,
//! audit and configure on their runners, its host-key checking and multiplexing are battle-tested,
//! and it keeps a crypto stack out of this crate. The design choices, each for a threat in
//! `RELIABILITY.md`:
//!
//! - **Script over stdin (T01, T09).** The local `ssh` argv is constant: options, `-p`, `-l`, the
//!   host and the fixed remote command `sh -s`. Everything that varies — `cd`, `export`s of the
//!   command's environment (secret values included), the command line with every argument quoted
//!   by [`sh_quote`], and the command's stdin (base64 in a here-document with a random delimiter,
//!   so it is byte-exact and cannot end the document early) — is a POSIX `sh` script written to
//!   ssh's stdin. So no secret is ever in an argv, neither ours nor a remote process's, where
//!   `/proc/*/cmdline` would show it to every user of either machine. The script reports the
//!   command's exit status on stderr behind a random marker, which is how a remote `exit 255` is
//!   told apart from ssh's own 255 (connection or host-key failure): the latter becomes an
//!   [`ExecError`] naming the host and the fix, never a failed command.
//! - **One multiplexed connection.** [`Ssh::connect`] opens an OpenSSH ControlMaster whose socket
//!   lives in a private 0700 temp dir; every later operation is a mux client over it, so a deploy
//!   pays one handshake, not one per command. The private key (a `Secret`) is written 0600 only
//!   for the handshake and deleted as soon as the master is up (or failed): a crash outside that
//!   second cannot leave it behind (T10). If the master dies, the next operation re-opens it
//!   (writing the key for that handshake only). Drop runs `ssh -O exit` and removes the temp dir.
//!   sshd's `MaxSessions` (default 10) bounds how many operations may run at once on one `Ssh`.
//! - **Host keys are always verified (T11, T12).** Either known_hosts content (plain or hashed
//!   entries) or a pinned `SHA256:` fingerprint; for a pin, `ssh-keyscan` fetches the host's keys
//!   and only the key with that fingerprint is trusted. Then `StrictHostKeyChecking=yes` with
//!   only that file, the global file ignored, and `-F /dev/null` so no user config (ProxyCommand,
//!   a lax `StrictHostKeyChecking`) can weaken it. Empty known_hosts and no pin fail closed before
//!   any packet is sent.
//! - **Bounded everything (T26).** `ConnectTimeout` for TCP and the banner, a hard bound on the
//!   handshake, `ServerAliveInterval`/`CountMax` so a black-holed connection is detected, and a
//!   per-command timeout that kills the local client and (through `timeout` on the host when it
//!   exists) the remote command.
//!
//! The host needs a POSIX `sh` and `base64` (checked by `connect`), `timeout` to end commands
//! that outlive their bound (optional), and `curl` for [`Executor::http_get`].
//!
//! Docker needs no special case: the deploy library builds `docker ...` commands and they run on
//! the host through [`Executor::run`] like anything else. For our purposes this is equivalent to
//! `DOCKER_HOST=ssh://user@host` (which also runs the docker CLI's counterpart on the host over
//! ssh), but it reuses the one verified, multiplexed connection for docker, nginx and file
//! operations instead of a second connection with its own host-key and key handling, and the
//! same `docker` command lines work unchanged on `Local`.

use crate::{ExecError, Executor, HttpResponse, Output};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use davit_core::{Cmd, Secret};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to reach and trust one host.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// DNS name or IP address (never starting with `-`).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// known_hosts content (plain or hashed entries), e.g. from a secret or the config. For a
    /// port other than 22, entries name the host as `[host]:port`, as `ssh-keyscan -p` prints.
    /// Set this or `fingerprint`, not both; with neither, `connect` refuses (fails closed).
    pub known_hosts: Option<Secret<String>>,
    /// A pinned host key fingerprint as printed by `ssh-keygen -lf`: `SHA256:...`. The host's
    /// key with this fingerprint is fetched with `ssh-keyscan` and is the only one trusted.
    pub fingerprint: Option<String>,
    /// The private key (OpenSSH or PEM format), without a passphrase.
    pub private_key: Secret<String>,
    /// Bound on TCP connect and the SSH banner (`ConnectTimeout`), and on `ssh-keyscan`.
    pub connect_timeout: Duration,
    /// Default bound on one operation when the `Cmd` has no timeout of its own.
    pub command_timeout: Duration,
    /// Keepalive period (`ServerAliveInterval`); three unanswered ones close the connection.
    pub keepalive_interval: Duration,
}

impl SshConfig {
    /// Port 22, 10 s connect timeout, 15 min command timeout, 10 s keepalives; no host-key
    /// material yet (set `known_hosts` or `fingerprint`, or `connect` fails closed).
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        private_key: Secret<String>,
    ) -> Self {
        SshConfig {
            host: host.into(),
            port: 22,
            user: user.into(),
            known_hosts: None,
            fingerprint: None,
            private_key,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(15 * 60),
            keepalive_interval: Duration::from_secs(10),
        }
    }
}

/// Unanswered keepalives before ssh gives up on a connection.
const KEEPALIVE_COUNT: u32 = 3;
/// How long the master stays up with no client, so a crashed davit does not leave it forever.
const CONTROL_PERSIST_SECS: u32 = 300;
/// Grace between the remote `timeout` sending TERM and KILL.
const REMOTE_KILL_GRACE_SECS: u64 = 5;

/// A remote host reached through one multiplexed OpenSSH connection.
pub struct Ssh {
    name: String,
    cfg: SshConfig,
    /// Private dir (0700): known_hosts, the control socket, the master's log, briefly the key.
    dir: Option<tempfile::TempDir>,
    /// `ssh` options shared by the master and every client.
    opts: Vec<String>,
    /// Set when an operation failed at the ssh level: the next one checks the master first.
    suspect: AtomicBool,
    reconnect: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh").field("host", &self.name).finish()
    }
}

/// What the fallback ProxyCommand prints: a client that says it went without the master.
const NO_MASTER: &str = "davit-ssh-request-had-no-master";

/// How one try of a script failed: whether the remote shell ever started decides whether
/// sending it again is safe.
enum Attempt {
    NotStarted(ExecError),
    Failed(ExecError),
}

/// What one script run returned.
struct Raw {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
    /// The script said the program was not found on the host.
    missing: bool,
}

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

    fn path(&self, file: &str) -> PathBuf {
        self.dir
            .as_ref()
            .expect("the dir lives as long as Ssh")
            .path()
            .join(file)
    }

    fn conn_error(&self, kind: std::io::ErrorKind, message: String) -> ExecError {
        conn_err(&self.name, kind, message)
    }

    /// Options for every invocation. Constant per host: no command, path or secret in them.
    fn base_opts(&self) -> Vec<String> {
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

    /// Fetch the host's keys and keep the one whose fingerprint is the pin, as known_hosts.
    async fn pinned_known_hosts(&self, pin: &str) -> Result<String, ExecError> {
        let secs = self.cfg.connect_timeout.as_secs().max(1);
        let mut scan = tokio::process::Command::new("ssh-keyscan");
        scan.args(["-T", &secs.to_string(), "-p", &self.cfg.port.to_string()])
            .arg("--")
            .arg(&self.cfg.host)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let bound = self.cfg.connect_timeout * 2 + Duration::from_secs(5);
        let out = match tokio::time::timeout(bound, scan.output()).await {
            Err(_) => {
                return Err(self.conn_error(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "ssh-keyscan got no host keys within {}s; hint: check that the host is up and sshd listens on port {}",
                        bound.as_secs(),
                        self.cfg.port
                    ),
                ));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.conn_error(
                    e.kind(),
                    "`ssh-keyscan` is not installed; hint: install openssh-client".into(),
                ));
            }
            Ok(Err(e)) => {
                return Err(self.conn_error(e.kind(), format!("cannot run ssh-keyscan: {e}")));
            }
            Ok(Ok(out)) => out,
        };
        let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            let why = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(self.conn_error(
                std::io::ErrorKind::ConnectionRefused,
                format!(
                    "could not fetch the host keys (ssh-keyscan within {secs}s{}); hint: check that the host is up and sshd listens on port {}",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    },
                    self.cfg.port
                ),
            ));
        }
        let mut offered = Vec::new();
        for (i, line) in keys.iter().enumerate() {
            let file = self.path(&format!("scan-{i}"));
            write_private(&file, format!("{line}\n").as_bytes())
                .map_err(|e| self.conn_error(e.kind(), format!("cannot write a temp file: {e}")))?;
            let fp = tokio::process::Command::new("ssh-keygen")
                .args(["-l", "-E", "sha256", "-f"])
                .arg(&file)
                .stdin(Stdio::null())
                .output()
                .await;
            let _ = std::fs::remove_file(&file);
            let fp = fp.map_err(|e| {
                self.conn_error(
                    e.kind(),
                    format!("cannot run ssh-keygen (install openssh-client): {e}"),
                )
            })?;
            // `256 SHA256:abc... [host]:port (ED25519)`
            let text = String::from_utf8_lossy(&fp.stdout).into_owned();
            let mut words = text.split_whitespace();
            let (Some(_bits), Some(found)) = (words.next(), words.next()) else {
                continue;
            };
            let kind = text.split_whitespace().last().unwrap_or("").to_string();
            if found.trim_end_matches('=') == pin {
                return Ok(format!("{line}\n"));
            }
            offered.push(format!("{found} {kind}"));
        }
        Err(self.conn_error(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "no host key of {}:{} matches the pinned fingerprint {pin}; the host offered {}; refusing to connect (the host was rebuilt, or someone is in the middle); hint: verify the host's key out of band (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host) and update the pin",
                self.cfg.host,
                self.cfg.port,
                offered.join(", ")
            ),
        ))
    }

    /// Open the ControlMaster. The key exists on disk only while this runs.
    async fn start_master(&self) -> Result<(), ExecError> {
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
    async fn master_alive(&self) -> bool {
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
    async fn ensure_master(&self) -> Result<(), ExecError> {
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

    /// Run `body` with `sh -s` on the host. The body must leave its status in `$?` at the end;
    /// a trailer reports it behind a random marker, so a remote 255 is not mistaken for ssh's.
    ///
    /// When the client could not hand the request to the master (it exited between the check
    /// and the request, or before confirming the session) it falls back to a connection of its
    /// own, which [`NO_MASTER`] refuses at once and marks. The script travels on stdin, which the
    /// master forwards only after confirming the session, so nothing ran on the host: the script
    /// is sent once more over a fresh master. Once the shell has started, a failure is reported, never retried: the
    /// command may have had effects.
    async fn script(&self, body: String, timeout: Duration) -> Result<Raw, ExecError> {
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
    async fn script_once(&self, body: &str, timeout: Duration) -> Result<Raw, Attempt> {
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
    async fn op(&self, body: String, what: &str) -> Result<Raw, ExecError> {
        self.timed(body, self.cfg.command_timeout, what).await
    }

    async fn timed(&self, body: String, timeout: Duration, what: &str) -> Result<Raw, ExecError> {
        self.script(body, timeout).await.map_err(|e| match e {
            ExecError::Timeout { timeout, .. } => ExecError::Timeout {
                host: self.name.clone(),
                command: what.to_string(),
                timeout,
            },
            other => other,
        })
    }

    fn io_err(&self, op: &'static str, path: &Path, raw: &Raw) -> ExecError {
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

    fn quote_err(&self, op: &'static str, path: &Path, e: QuoteError) -> ExecError {
        ExecError::Io {
            host: self.name.clone(),
            op,
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        }
    }

    fn qpath(&self, op: &'static str, path: &Path) -> Result<String, ExecError> {
        let s = path.to_str().ok_or_else(|| {
            self.quote_err(op, path, QuoteError("the path is not valid UTF-8".into()))
        })?;
        if s.is_empty() {
            return Err(self.quote_err(op, path, QuoteError("the path is empty".into())));
        }
        sh_quote(s).map_err(|e| self.quote_err(op, path, e))
    }

    /// The command part of [`Executor::run`]'s script; errors name the offending value.
    fn command_script(&self, cmd: &Cmd, timeout: Duration) -> Result<String, String> {
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
fn after_line(bytes: Vec<u8>, line: &[u8]) -> Vec<u8> {
    match find(&bytes, line) {
        Some(at) => bytes[at + line.len()..].to_vec(),
        None => bytes,
    }
}

/// A random here-document delimiter; base64 text can never contain its `_`.
fn heredoc_delim() -> String {
    format!("DAVIT_EOF_{:016x}", rand::random::<u64>())
}

/// Append `data` as base64 lines, then the `delim` line that ends the here-document.
fn push_heredoc(s: &mut String, delim: &str, data: &[u8]) {
    let enc = B64.encode(data);
    for chunk in enc.as_bytes().chunks(76) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(delim);
    s.push('\n');
}

/// The error [`Ssh::script`] returns on timeout; callers rewrite `command`.
fn timeout_marker(timeout: Duration) -> ExecError {
    ExecError::Timeout {
        host: String::new(),
        command: String::new(),
        timeout,
    }
}

enum Trust {
    KnownHosts(String),
    Pin(String),
}

/// Check a pin looks like `SHA256:<43 base64 chars>`; return it without padding.
fn normalize_pin(pin: &str) -> Result<String, String> {
    let body = pin.strip_prefix("SHA256:").ok_or_else(|| {
        format!(
            "the host key fingerprint {pin:?} is not a SHA256 fingerprint; hint: use the `SHA256:...` form printed by `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` (MD5 pins are not accepted)"
        )
    })?;
    let body = body.trim_end_matches('=');
    let ok = body.len() == 43
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    if !ok {
        return Err(format!(
            "the host key fingerprint {pin:?} is malformed (want SHA256: and 43 base64 characters); hint: copy it whole from `ssh-keygen -lf`"
        ));
    }
    Ok(format!("SHA256:{body}"))
}

/// An ssh-level failure (not a command's): `deploy@web-1: ssh connection: <what>; hint: <fix>`.
fn conn_err(name: &str, kind: std::io::ErrorKind, message: String) -> ExecError {
    ExecError::Io {
        host: name.to_string(),
        op: "ssh",
        path: "connection".to_string(),
        source: std::io::Error::new(kind, message),
    }
}

/// Turn ssh's stderr into a sentence with a fix. Host-key problems first: they are the ones a
/// user must not wave away.
///
/// `handshake` is false for an operation over an established master: then an authentication
/// message comes from the client's fallback attempt after the master died (it has no key by
/// then), and the real news is the lost connection.
fn classify(stderr: &str, cfg: &SshConfig, handshake: bool) -> (std::io::ErrorKind, String) {
    use std::io::ErrorKind as K;
    let hp = format!("{}:{}", cfg.host, cfg.port);
    let scan = format!("ssh-keyscan -p {} {}", cfg.port, cfg.host);
    let detail = stderr
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| {
            !l.is_empty()
                && !l.starts_with('@')
                && !l.starts_with("davit-status-")
                && !l.contains(NO_MASTER)
        })
        .unwrap_or("")
        .to_string();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("Host key for") && stderr.contains("has changed")
    {
        return (
            K::PermissionDenied,
            format!(
                "the host key of {hp} has CHANGED since known_hosts was written: refusing to connect (the host was rebuilt or re-keyed, or someone is in the middle); hint: verify the new key out of band, then update known_hosts (`{scan}`) or the pinned fingerprint"
            ),
        );
    }
    if stderr.contains("Host key verification failed")
        || stderr.contains("No ") && stderr.contains("host key is known")
    {
        return (
            K::PermissionDenied,
            format!(
                "the host key of {hp} is not in the known_hosts davit was given (unknown host): refusing to connect; hint: add the host's key to known_hosts (`{scan}`, checked out of band against `ssh-keygen -lf` on the host) or pin its SHA256 fingerprint"
            ),
        );
    }
    if stderr.contains("Timeout, server") && stderr.contains("not responding") {
        return (
            K::TimedOut,
            format!(
                "the connection to {hp} stalled: {KEEPALIVE_COUNT} keepalives went unanswered; hint: check that the host is up and the network path is not dropping packets"
            ),
        );
    }
    if !handshake {
        return (
            K::ConnectionAborted,
            format!(
                "the ssh connection to {hp} was lost{}; hint: check that the host is up and reachable; the next operation reconnects",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
        );
    }
    if stderr.contains("Permission denied") {
        return (
            K::PermissionDenied,
            format!(
                "{hp} refused the private key for user {} ({detail}); hint: add the matching public key to ~{}/.ssh/authorized_keys on the host and check the user name",
                cfg.user, cfg.user
            ),
        );
    }
    if stderr.contains("timed out") {
        return (
            K::TimedOut,
            format!(
                "could not connect to {hp} within {}s ({detail}); hint: check the host address and port and that a firewall does not drop the traffic",
                cfg.connect_timeout.as_secs().max(1)
            ),
        );
    }
    if stderr.contains("Connection refused") {
        return (
            K::ConnectionRefused,
            format!(
                "{hp} refused the connection; hint: check that sshd runs and listens on port {}",
                cfg.port
            ),
        );
    }
    if stderr.contains("Could not resolve") || stderr.contains("Name or service not known") {
        return (
            K::NotFound,
            format!("cannot resolve {}; hint: check the host name", cfg.host),
        );
    }
    if stderr.contains("Load key") || stderr.contains("invalid format") {
        return (
            K::InvalidInput,
            format!(
                "ssh cannot read the private key ({detail}); hint: paste the whole private key file, without a passphrase"
            ),
        );
    }
    let msg = if detail.is_empty() {
        format!(
            "the ssh connection to {hp} failed or was lost; hint: check that the host is up and reachable"
        )
    } else {
        format!(
            "the ssh connection to {hp} failed or was lost: {detail}; hint: check that the host is up and reachable"
        )
    };
    (K::ConnectionAborted, msg)
}

/// A private temp dir (0700). The control socket path must fit in a `sockaddr_un` with the
/// random suffix ssh adds while creating it, so a long `$TMPDIR` falls back to `/tmp`.
fn private_dir() -> std::io::Result<tempfile::TempDir> {
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
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
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

#[async_trait]
impl Executor for Ssh {
    fn host(&self) -> &str {
        &self.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let timeout = cmd.timeout.unwrap_or(self.cfg.command_timeout);
        let body = self
            .command_script(cmd, timeout)
            .map_err(|m| ExecError::Spawn {
                host: self.name.clone(),
                command: cmd.render(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
            })?;
        let raw = self.timed(body, timeout, &cmd.render()).await?;
        if raw.missing {
            return Err(ExecError::Missing {
                host: self.name.clone(),
                program: cmd.program.clone(),
            });
        }
        // Redacted where it is taken in, like Local (T46).
        Ok(Output {
            status: raw.status,
            stdout: davit_core::redact::redacted(&String::from_utf8_lossy(&raw.stdout)),
            stderr: davit_core::redact::redacted(&raw.stderr),
        })
    }

    async fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), ExecError> {
        let f = self.qpath("write", path)?;
        let (dir, name) = split(path);
        let tmp = self.qpath(
            "write",
            &dir.join(format!(".{name}.davit-tmp-{:016x}", rand::random::<u64>())),
        )?;
        // umask 077: the temp file is private from its first byte, so a secret is never
        // briefly world-readable; the final mode is set before it becomes visible by `mv`.
        let delim = heredoc_delim();
        let mut s = format!("umask 077\nt={tmp}\nbase64 -d > \"$t\" <<'{delim}'\n");
        push_heredoc(&mut s, &delim, contents);
        let _ = write!(
            s,
            "r=$?\n\
             if [ $r -eq 0 ]; then chmod {mode:o} \"$t\" && {{ sync \"$t\" 2>/dev/null; true; }} && mv -f -- \"$t\" {f}; r=$?; fi\n\
             [ $r -eq 0 ] || rm -f -- \"$t\"; (exit $r)\n"
        );
        let raw = self.op(s, &format!("write {}", path.display())).await?;
        if raw.status != 0 {
            return Err(self.io_err("write", path, &raw));
        }
        Ok(())
    }

    async fn create_exclusive(&self, path: &Path, contents: &[u8]) -> Result<bool, ExecError> {
        let f = self.qpath("create", path)?;
        let (dir, name) = split(path);
        let tmp = self.qpath(
            "create",
            &dir.join(format!(".{name}.davit-tmp-{:016x}", rand::random::<u64>())),
        )?;
        // Like Local (T45): the whole record is written and synced under a temp name, then
        // hard-linked to `f`; `ln` (link(2)) fails when `f` exists, the same atomic
        // create-if-absent as O_EXCL, and a full disk fails the temp write, never `f`.
        let delim = heredoc_delim();
        let mut s = format!("umask 022\nf={f}\nt={tmp}\nbase64 -d > \"$t\" <<'{delim}'\n");
        push_heredoc(&mut s, &delim, contents);
        s.push_str(
            "r=$?\n\
             if [ $r -eq 0 ]; then { sync \"$t\" 2>/dev/null; true; }\n\
             if ln -- \"$t\" \"$f\" 2>/dev/null; then echo created\n\
             elif [ -e \"$f\" ] || [ -L \"$f\" ]; then echo exists\n\
             else ln -- \"$t\" \"$f\"; r=$?; fi; fi\n\
             rm -f -- \"$t\"; (exit $r)\n",
        );
        let raw = self.op(s, &format!("create {}", path.display())).await?;
        let said = String::from_utf8_lossy(&raw.stdout);
        match (raw.status, said.trim()) {
            (0, "created") => Ok(true),
            (0, "exists") => Ok(false),
            _ => Err(self.io_err("create", path, &raw)),
        }
    }

    async fn append_line(&self, path: &Path, line: &str) -> Result<(), ExecError> {
        let f = self.qpath("append to", path)?;
        let mut record = line.trim_end_matches('\n').to_string();
        record.push('\n');
        // Whole lines or nothing, like Local (T44): a torn tail (a write that never finished)
        // is cut back to the last newline first; one `printf` of the whole record is a single
        // write(2) with O_APPEND; a write that fails part-way (disk full) is cut back to where
        // it started; success only after sync. `dd` with `seek` and no input truncates there.
        let rec = sh_quote(&record).map_err(|e| self.quote_err("append to", path, e))?;
        let s = format!(
            "umask 027\nf={f}\nr=0\n\
             if [ -s \"$f\" ] && [ \"$(tail -c 1 -- \"$f\" | od -An -tx1 | tr -d ' \\n')\" != 0a ]; then\n\
             n=$(tail -n 1 -- \"$f\" | wc -c); s=$(wc -c < \"$f\")\n\
             dd if=/dev/null of=\"$f\" bs=1 seek=$((s - n)) 2>/dev/null || r=1\n\
             fi\n\
             if [ $r -eq 0 ]; then s=0; [ -e \"$f\" ] && s=$(wc -c < \"$f\")\n\
             if printf '%s' {rec} >> \"$f\" && {{ sync \"$f\" 2>/dev/null || sync; }}; then :; else\n\
             r=1; dd if=/dev/null of=\"$f\" bs=1 seek=$s 2>/dev/null; fi; fi\n\
             (exit $r)\n"
        );
        let raw = self.op(s, &format!("append to {}", path.display())).await?;
        if raw.status != 0 {
            return Err(self.io_err("append to", path, &raw));
        }
        Ok(())
    }

    async fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, ExecError> {
        let f = self.qpath("read", path)?;
        let s = format!(
            "f={f}\nif [ ! -e \"$f\" ] && [ ! -L \"$f\" ]; then echo missing; else echo found && base64 < \"$f\"; fi\n"
        );
        let raw = self.op(s, &format!("read {}", path.display())).await?;
        if raw.status != 0 {
            return Err(self.io_err("read", path, &raw));
        }
        let text = String::from_utf8_lossy(&raw.stdout);
        let mut lines = text.lines();
        match lines.next() {
            Some("missing") => Ok(None),
            Some("found") => {
                let b64: String = lines.collect();
                B64.decode(b64.trim()).map(Some).map_err(|e| ExecError::Io {
                    host: self.name.clone(),
                    op: "read",
                    path: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the host sent malformed base64: {e}"),
                    ),
                })
            }
            _ => Err(self.io_err("read", path, &raw)),
        }
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        let a = self.qpath("rename", from)?;
        let b = self.qpath("rename", to)?;
        // rename(2) semantics: `mv` would move *into* an existing directory instead.
        let s = format!(
            "if [ -d {b} ] && [ ! -d {a} ]; then echo 'destination is a directory' >&2; (exit 1); else mv -f -- {a} {b}; fi\n"
        );
        let raw = self
            .op(s, &format!("rename {} -> {}", from.display(), to.display()))
            .await?;
        if raw.status != 0 {
            return Err(self.io_err("rename", from, &raw));
        }
        Ok(())
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        let a = self.qpath("copy", from)?;
        let b = self.qpath("copy", to)?;
        let (dir, name) = split(to);
        let tmp = self.qpath(
            "copy",
            &dir.join(format!(".{name}.davit-tmp-{:016x}", rand::random::<u64>())),
        )?;
        // Copy beside the target, then rename: like write_file, never a half-copied target.
        let s = format!(
            "umask 077\nt={tmp}\ncp -p -- {a} \"$t\" && mv -f -- \"$t\" {b}\nr=$?; [ $r -eq 0 ] || rm -f -- \"$t\"; (exit $r)\n"
        );
        let raw = self
            .op(s, &format!("copy {} -> {}", from.display(), to.display()))
            .await?;
        if raw.status != 0 {
            return Err(self.io_err("copy", from, &raw));
        }
        Ok(())
    }

    async fn remove_file(&self, path: &Path) -> Result<(), ExecError> {
        let f = self.qpath("remove", path)?;
        let raw = self
            .op(
                format!("rm -f -- {f}\n"),
                &format!("remove {}", path.display()),
            )
            .await?;
        if raw.status != 0 {
            return Err(self.io_err("remove", path, &raw));
        }
        Ok(())
    }

    async fn mkdir(&self, path: &Path, mode: u32) -> Result<(), ExecError> {
        let f = self.qpath("mkdir", path)?;
        let raw = self
            .op(
                format!("mkdir -p -m {mode:o} -- {f}\n"),
                &format!("mkdir {}", path.display()),
            )
            .await?;
        if raw.status != 0 {
            return Err(self.io_err("mkdir", path, &raw));
        }
        Ok(())
    }

    async fn http_get(&self, url: &str, timeout: Duration) -> Result<HttpResponse, ExecError> {
        let err = |message: String| ExecError::Http {
            host: self.name.clone(),
            url: url.to_string(),
            message,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err("only http:// and https:// URLs can be probed".into()));
        }
        let u = sh_quote(url).map_err(|e| err(e.to_string()))?;
        let secs = format!("{:.3}", timeout.as_secs_f64().max(0.001));
        // Response to a temp file, then base64: binary bodies and curl's own exit status both
        // survive. --noproxy: a probe of the host's loopback must not go through a proxy.
        let s = format!(
            "command -v curl >/dev/null 2>&1 || davit_missing\n\
             t=$(mktemp) || exit 1\n\
             curl -sS -i --noproxy '*' --max-time {secs} -- {u} > \"$t\"\n\
             r=$?; [ $r -eq 0 ] && base64 < \"$t\"; rm -f -- \"$t\"; (exit $r)\n"
        );
        // The probe's own timeout bounds the call, plus room for the round trip.
        let raw = self
            .timed(s, timeout + Duration::from_secs(10), &format!("GET {url}"))
            .await?;
        if raw.missing {
            return Err(err(
                "`curl` is not installed on the host, and davit probes ports bound to the host's loopback from the host itself; hint: install curl on the host (apt-get install -y curl)".into(),
            ));
        }
        match raw.status {
            0 => {}
            28 => return Err(err("timed out".into())),
            n => {
                let why = raw.stderr.trim().trim_start_matches("curl: ").to_string();
                return Err(err(if why.is_empty() {
                    format!("curl failed with status {n}")
                } else {
                    why
                }));
            }
        }
        let b64: String = String::from_utf8_lossy(&raw.stdout).lines().collect();
        let bytes = B64
            .decode(b64.trim())
            .map_err(|e| err(format!("the host sent malformed base64: {e}")))?;
        parse_http(&bytes).map_err(err)
    }

    async fn has_program(&self, program: &str) -> bool {
        let Ok(p) = sh_quote(program) else {
            return false;
        };
        if program.is_empty() {
            return false;
        }
        match self
            .op(
                format!("command -v {p} >/dev/null 2>&1\n"),
                &format!("command -v {program}"),
            )
            .await
        {
            Ok(raw) => raw.status == 0,
            Err(e) => {
                tracing::warn!(host = %self.name, "checking for {program}: {e}");
                false
            }
        }
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

fn split(path: &Path) -> (PathBuf, String) {
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

/// Parse `curl -i` output: header blocks (1xx interim ones skipped), then the body.
fn parse_http(bytes: &[u8]) -> Result<HttpResponse, String> {
    let mut rest = bytes;
    loop {
        let end = find(rest, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(rest, b"\n\n").map(|i| (i, 2)))
            .ok_or("the response has no header block")?;
        let head = String::from_utf8_lossy(&rest[..end.0]).into_owned();
        let body = &rest[end.0 + end.1..];
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
        if (100..200).contains(&status) && status != 101 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Ok(HttpResponse {
            status,
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `printf '%s' <quoted>` through a real sh and get the bytes back.
    fn round_trip(s: &str) -> String {
        let q = sh_quote(s).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {q}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn t01_quoting_keeps_hostile_strings_inert() {
        let hostile = [
            "\"; id #",
            "$(id)",
            "`id`",
            "a\nb; id",
            "it's",
            "'",
            "''",
            "'\\''",
            "\\",
            "$HOME ${PATH} $((1+1))",
            "*",
            "~root",
            "-rf",
            "a b\tc",
            "",
            "!event",
            "multi\n\nline\n",
            "ünïcödé ✓",
            "'; touch /tmp/davit-pwned; '",
        ];
        for h in hostile {
            assert_eq!(round_trip(h), h, "{h:?}");
        }
        assert!(!std::path::Path::new("/tmp/davit-pwned").exists());
        assert!(sh_quote("a\0b").is_err());
        assert_eq!(sh_quote("it's").unwrap(), r"'it'\''s'");
        // Always quoted, even when it looks harmless: one rule, no judgement calls.
        assert_eq!(sh_quote("plain").unwrap(), "'plain'");
    }

    #[test]
    fn pins_are_sha256_only() {
        let good = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
        assert_eq!(normalize_pin(good).unwrap(), good);
        assert_eq!(normalize_pin(&format!("{good}=")).unwrap(), good);
        assert!(normalize_pin("MD5:aa:bb").is_err());
        assert!(normalize_pin("SHA256:short").is_err());
        assert!(normalize_pin("uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s").is_err());
    }

    #[test]
    fn ssh_failures_are_classified_with_a_fix() {
        let cfg = SshConfig::new("web-1", "deploy", Secret::new("k".into()));
        let (_, m) = classify(
            "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
            &cfg,
            true,
        );
        assert!(m.contains("CHANGED") && m.contains("hint:"), "{m}");
        let (_, m) = classify(
            "No ED25519 host key is known for [web-1]:22 and you have requested strict checking.\nHost key verification failed.\n",
            &cfg,
            true,
        );
        assert!(
            m.contains("unknown host") && m.contains("ssh-keyscan -p 22 web-1"),
            "{m}"
        );
        let (k, _) = classify(
            "ssh: connect to host web-1 port 22: Connection timed out\n",
            &cfg,
            true,
        );
        assert_eq!(k, std::io::ErrorKind::TimedOut);
        let (k, m) = classify("Timeout, server web-1 not responding.\n", &cfg, true);
        assert_eq!(k, std::io::ErrorKind::TimedOut);
        assert!(m.contains("stalled"), "{m}");
        let (_, m) = classify("deploy@web-1: Permission denied (publickey).\n", &cfg, true);
        assert!(m.contains("authorized_keys"), "{m}");
        // Over an established master, the same words mean the connection went away.
        let (_, m) = classify("root@web-1: Permission denied (publickey).\n", &cfg, false);
        assert!(m.contains("was lost") && m.contains("reconnects"), "{m}");
    }

    #[test]
    fn curl_output_is_parsed_past_interim_responses() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nX-App-Version: v2\r\nContent-Type: text/plain\r\n\r\nbusy\r\n\r\nstill body";
        let r = parse_http(raw).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("x-app-version"), Some("v2"));
        assert_eq!(r.body, "busy\r\n\r\nstill body");
        let r = parse_http(b"HTTP/2 204\r\ndate: x\r\n\r\n").unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(r.body, "");
    }

    #[test]
    fn empty_security_input_fails_closed_without_network() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = SshConfig::new("192.0.2.1", "deploy", Secret::new("key".into()));
        cfg.known_hosts = Some(Secret::new("# nothing\n\n".into()));
        let e = rt
            .block_on(Ssh::connect(cfg.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no host key") && e.contains("hint:"), "{e}");
        cfg.known_hosts = None;
        cfg.fingerprint = Some("  ".into());
        assert!(rt.block_on(Ssh::connect(cfg.clone())).is_err());
        cfg.host = "-oProxyCommand=id".into();
        cfg.fingerprint = Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into());
        let e = rt.block_on(Ssh::connect(cfg)).unwrap_err().to_string();
        assert!(e.contains("may not start with '-'"), "{e}");
    }
}
