//! Real Prometheus and the real demo app for the analysis tests, or a loud failure under CI.
//!
//! Each test starts its own Prometheus (random loopback port, temporary TSDB, a config rendered
//! by `davit_analysis::scrape`) and its own demo-app processes, and Drop guards kill them, so
//! tests never share state and a failed assertion leaves nothing running.

#![allow(dead_code)]

use davit_analysis::scrape::{ScrapeTarget, render_prometheus_yml};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Whether Prometheus is installed. Missing: a skip with the reason on a laptop, a failure
/// under `CI=true` (a CI run that silently skipped these would prove nothing).
pub fn require_prometheus() -> Option<PathBuf> {
    let found = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("prometheus"))
                    .find(|p| p.exists())
            })
        });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "prometheus is required by this test and missing; CI=true does not allow skipping (apt-get install -y prometheus)"
            );
        }
        eprintln!(
            "SKIP: prometheus is not installed (apt-get install -y prometheus; set CI=true to make this a failure)"
        );
    }
    found
}

/// One real-infrastructure test at a time: the latency test measures latency, and two
/// Prometheus servers plus their load on two cores would make its figures noisy. (tokio's
/// Mutex: the guard is held across awaits; it works across the tests' separate runtimes.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30s");
}

/// Kills the child on drop (SIGKILL; these are throwaway test processes).
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo-app binary, built once per test process into its own target dir (a nested
/// `cargo build` on the outer target dir could wait on the outer cargo's lock).
pub fn demo_app_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test> → target
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let dir = target.join("analysis-demo-app");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-q", "-p", "davit-demo-app", "--target-dir"])
            .arg(&dir)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building davit-demo-app failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = dir.join("debug/davit-demo-app");
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// A demo-app process on a free loopback port.
pub struct DemoApp {
    pub port: u16,
    _proc: Proc,
}

impl DemoApp {
    pub fn start(version: &str, faults: &[(&str, &str)]) -> DemoApp {
        let port = free_port();
        let mut cmd = Command::new(demo_app_bin());
        cmd.env_clear()
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("APP_VERSION", version)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in faults {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("demo app starts");
        wait_port(port, "demo app", &mut child);
        DemoApp {
            port,
            _proc: Proc {
                child,
                name: "demo-app".into(),
            },
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A Prometheus server scraping `targets` every second.
pub struct Prom {
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Prom {
    pub fn start(bin: &Path, targets: &[ScrapeTarget]) -> Prom {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            render_prometheus_yml("app", Duration::from_secs(1), "/metrics", targets),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        wait_port(port, "prometheus", &mut child);
        let url = format!("http://127.0.0.1:{port}");
        let prom = Prom {
            url,
            _proc: Proc {
                child,
                name: "prometheus".into(),
            },
            _dir: dir,
        };
        prom.wait_ready();
        prom
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http_get(&format!("{}/-/ready", self.url)).is_some_and(|(s, _)| s == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus not ready within 30s");
    }

    /// Wait until Prometheus has scraped every target at least `samples` times, so rate
    /// windows have data; the analysis itself starts after this.
    pub fn wait_scraped(&self, samples: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let q = format!("min(count_over_time(up[1m])) >= {samples} and min(up) == 1");
        while Instant::now() < deadline {
            let url = format!("{}/api/v1/query?query={}", self.url, encode(&q));
            if let Some((200, body)) = http_get(&url)
                && body.contains("\"value\"")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prometheus did not scrape the targets {samples} times within 60s");
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A minimal blocking GET (no client dependency in the helpers): (status, body).
pub fn http_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Steady traffic to `/` of the given apps from a few threads until dropped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    /// `workers` threads per app, each sending a request every `pause` (plus its latency).
    pub fn start(urls: &[String], workers: usize, pause: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for url in urls {
            for _ in 0..workers {
                let stop = stop.clone();
                let url = format!("{url}/");
                threads.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = http_get(&url);
                        std::thread::sleep(pause);
                    }
                }));
            }
        }
        Traffic { stop, threads }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
