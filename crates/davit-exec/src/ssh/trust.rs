//! Whom to trust and what ssh's failures mean: host keys from known_hosts content or a pinned
//! `SHA256:` fingerprint (T11, T12), and ssh's stderr turned into a sentence with the fix.

use super::master::write_private;
use super::{KEEPALIVE_COUNT, NO_MASTER, Ssh, SshConfig};
use crate::ExecError;
use std::process::Stdio;
use std::time::Duration;

pub(super) enum Trust {
    KnownHosts(String),
    Pin(String),
}

impl Ssh {
    /// Fetch the host's keys and keep the one whose fingerprint is the pin, as known_hosts.
    pub(super) async fn pinned_known_hosts(&self, pin: &str) -> Result<String, ExecError> {
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
}

/// Check a pin looks like `SHA256:<43 base64 chars>`; return it without padding.
pub(super) fn normalize_pin(pin: &str) -> Result<String, String> {
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
pub(super) fn conn_err(name: &str, kind: std::io::ErrorKind, message: String) -> ExecError {
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
pub(super) fn classify(
    stderr: &str,
    cfg: &SshConfig,
    handshake: bool,
) -> (std::io::ErrorKind, String) {
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
