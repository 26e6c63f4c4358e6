//! A throwaway OpenSSH server on a random 127.0.0.1 port, for tests of the `Ssh` executor.
//!
//! Each test starts its own: an ed25519 host key and client key made with `ssh-keygen` in a
//! temp dir under the target dir (not `/tmp`, so the T10 scan of `/tmp` for key bytes only sees
//! what davit wrote there), a minimal `sshd_config`, and `sshd -D -e` as a child whose log goes
//! to a file the tests read (`Accepted publickey` lines count connections). Dropping it kills
//! sshd and every session process under it, stopped ones included.
//!
//! sshd needs root (it switches users) and `/run/sshd` (privilege separation). When it cannot
//! run, tests skip with a printed reason, except under `CI=true`, where they fail: a CI job that
//! silently skipped the host-key tests would report a security property it never checked.

use davit_core::Secret;
use davit_exec::SshConfig;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// The client's private key (OpenSSH format), as a deploy-key secret would hold it.
    pub client_key: String,
}

/// Why sshd cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    for tool in ["/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-keyscan"] {
        if which::which(tool).is_err() {
            return Some(format!(
                "`{tool}` is missing (apt-get install -y openssh-server openssh-client)"
            ));
        }
    }
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => None,
        _ => Some("sshd tests need root (sshd switches users)".into()),
    }
}

/// Start an sshd, or return None after printing why not (a panic when CI=true).
pub fn start_or_skip(test: &str) -> Option<Sshd> {
    if let Some(why) = unavailable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why}; CI=true, so this is a failure, not a skip");
        }
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    Some(Sshd::start())
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "davit-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    pub fn start() -> Sshd {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        keygen(&dir.path().join("host_ed25519"));
        keygen(&dir.path().join("client"));
        std::fs::copy(
            dir.path().join("client.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let client_key = std::fs::read_to_string(dir.path().join("client")).unwrap();
        // The harness keeps no copy of the private key on disk: the secret lives in memory
        // only, as it would in a CI secret.
        std::fs::remove_file(dir.path().join("client")).unwrap();
        let mut s = Sshd {
            dir,
            port: 0,
            child: None,
            client_key,
        };
        s.spawn();
        s
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// Start sshd on a fresh random port (retrying if another process grabbed it first), or
    /// on the current port when it is set (a restart must keep the address).
    fn spawn(&mut self) {
        let keep_port = self.port != 0;
        for _attempt in 0..5 {
            let port = if keep_port { self.port } else { free_port() };
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel INFO\nMaxSessions 50\nMaxStartups 100\n",
                hk = self.path("host_ed25519").display(),
                pid = self.path("sshd.pid").display(),
                ak = self.path("authorized_keys").display(),
            );
            std::fs::write(self.path("sshd_config"), config).unwrap();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path("sshd.log"))
                .unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(self.path("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("sshd exited early ({status}): {}", self.log());
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if keep_port {
                // The old listener may linger for a moment; try the same port again.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("sshd did not start: {}", self.log());
    }

    /// Stop sshd (and its sessions), make a new host key, start it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        std::fs::remove_file(self.path("host_ed25519")).unwrap();
        std::fs::remove_file(self.path("host_ed25519.pub")).unwrap();
        keygen(&self.path("host_ed25519"));
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for pid in descendants(child.id()) {
                kill("-KILL", pid);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `ssh-ed25519 AAAA...` of the current host key.
    pub fn host_public_key(&self) -> String {
        let pubkey = std::fs::read_to_string(self.path("host_ed25519.pub")).unwrap();
        let mut w = pubkey.split_whitespace();
        format!("{} {}", w.next().unwrap(), w.next().unwrap())
    }

    /// A known_hosts line for this server as ssh looks it up (`[127.0.0.1]:port`).
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key())
    }

    /// `SHA256:...` of the current host key.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.path("host_ed25519.pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// A config trusting this server through known_hosts, with short test timeouts.
    pub fn config(&self) -> SshConfig {
        let mut cfg = SshConfig::new("127.0.0.1", "root", Secret::new(self.client_key.clone()));
        cfg.port = self.port;
        cfg.known_hosts = Some(Secret::new(self.known_hosts_line()));
        cfg.connect_timeout = Duration::from_secs(5);
        cfg.command_timeout = Duration::from_secs(60);
        cfg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// How many logins sshd accepted: one per TCP connection that authenticated.
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// The listening sshd.
    pub fn listener_pid(&self) -> u32 {
        self.child.as_ref().expect("sshd runs").id()
    }

    /// The per-connection sshd processes (monitor and session), not the listener.
    pub fn session_pids(&self) -> Vec<u32> {
        self.child
            .as_ref()
            .map(|c| descendants(c.id()))
            .unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn kill(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Every live descendant of `root`, found by walking parent pids in /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces, so parse after the last ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p && !out.contains(&pid) {
                out.push(pid);
                frontier.push(pid);
            }
        }
    }
    out
}
