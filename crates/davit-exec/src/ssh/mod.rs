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

mod http;
mod master;
mod script;
mod trust;

use crate::{ExecError, Executor, HttpResponse, Output};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use davit_core::{Cmd, Secret};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::parse_http;
pub use script::{QuoteError, sh_quote};
use script::{heredoc_delim, push_heredoc, split};

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
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err("only http:// and https:// URLs can be probed".into()));
        }
        let u = sh_quote(url).map_err(|e| err(e.to_string()))?;
        let header = match host {
            Some(h) => format!(
                "-H {} ",
                sh_quote(&format!("Host: {h}")).map_err(|e| err(e.to_string()))?
            ),
            None => String::new(),
        };
        let secs = format!("{:.3}", timeout.as_secs_f64().max(0.001));
        // Response to a temp file, then base64: binary bodies and curl's own exit status both
        // survive. --noproxy: a probe of the host's loopback must not go through a proxy.
        let s = format!(
            "command -v curl >/dev/null 2>&1 || davit_missing\n\
             t=$(mktemp) || exit 1\n\
             curl -sS -i --noproxy '*' --max-time {secs} {header}-- {u} > \"$t\"\n\
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

#[cfg(test)]
mod tests {
    use super::trust::{classify, normalize_pin};
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
