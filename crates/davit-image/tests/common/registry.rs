//! A throwaway local registry (Debian's `docker-registry`) for push and pull tests; also
//! included by the deploy suites (T24) with `#[path]`, so it needs nothing but std and `which`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Skip (printing why), or under CI=true fail, when the registry program is missing.
fn require_registry(bin: Option<&str>) -> bool {
    if bin.is_some() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "docker-registry is required in CI (CI=true) but is not installed (apt-get install docker-registry)"
        );
    }
    eprintln!("SKIP: docker-registry is not installed (set CI=true to make this a failure)");
    false
}

/// A `docker-registry` (distribution) on 127.0.0.1:<free port> with temporary storage,
/// killed and removed on drop.
pub struct Registry {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Option<Registry> {
        let bin = ["docker-registry", "registry"]
            .into_iter()
            .find(|b| which::which(b).is_ok());
        if !require_registry(bin) {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(bin.unwrap())
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(&addr, "/v2/").is_some_and(|(s, _)| s == 200) {
                return Some(Registry {
                    addr,
                    child,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker-registry did not answer on {addr}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.0 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
