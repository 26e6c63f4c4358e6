//! One isolated environment per scenario, and what the machine is.
//!
//! Each scenario gets its own app name (so container names, compose projects and labels never
//! collide with a demo or a test running beside it), its own free loopback ports and its own
//! temporary state folder. Dropping the sandbox removes its containers, compose networks and its
//! nginx, so an interrupted or failed run does not leave anything listening.

use davit_config::Config;
use davit_deploy::Target;
use std::collections::HashSet;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The image repository the benchmark builds its demo app images into.
pub const IMAGE: &str = "davit-bench-demo";

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if taken.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return Ok(port);
        }
    }
}

/// Health and verification settings of the benchmark environments: davit's demo values.
#[derive(Debug, Clone)]
pub struct Settings {
    pub health_interval_ms: u64,
    pub health_consecutive: u32,
    pub verify_interval_ms: u64,
    pub failure_limit: u32,
    /// Extra nginx directives for the public `location /` (davit's `proxy.snippet`), to try a
    /// proxy setting against the same load.
    pub proxy_snippet: Option<String>,
}

pub struct Sandbox {
    pub app: String,
    pub dir: tempfile::TempDir,
    pub public: u16,
    pub blue: u16,
    pub green: u16,
    /// The published port of the compose scenarios.
    pub compose: u16,
}

impl Sandbox {
    pub fn new(tag: &str) -> anyhow::Result<Sandbox> {
        let s = Sandbox {
            app: format!("bench{}-{tag}", std::process::id()),
            dir: tempfile::Builder::new().prefix("davit-bench-").tempdir()?,
            public: free_port()?,
            blue: free_port()?,
            green: free_port()?,
            compose: free_port()?,
        };
        s.cleanup();
        Ok(s)
    }

    fn config_text(&self, s: &Settings) -> String {
        format!(
            r#"
state_dir = "{state}"
[app]
name = "{app}"
port = 8000
[image]
name = "{IMAGE}"
pull = "never"
[health]
interval_ms = {hi}
consecutive = {hc}
deadline_secs = 60
[environments.staging]
strategy = "compose"
port = {compose}
[environments.production]
strategy = "blue-green"
ports = {{ public = {public}, blue = {blue}, green = {green} }}
verify = {{ watch_secs = 60, interval_ms = {vi}, failure_limit = {fl} }}
{snippet}
"#,
            state = self.dir.path().join("state").display(),
            app = self.app,
            hi = s.health_interval_ms,
            hc = s.health_consecutive,
            vi = s.verify_interval_ms,
            fl = s.failure_limit,
            // A JSON string is a valid TOML basic string.
            snippet = s
                .proxy_snippet
                .as_deref()
                .map_or(String::new(), |x| format!(
                    "proxy = {{ snippet = {} }}",
                    serde_json::to_string(x).unwrap_or_default()
                )),
            compose = self.compose,
            public = self.public,
            blue = self.blue,
            green = self.green,
        )
    }

    /// The resolved target of `env` (`production`: blue-green, `staging`: compose).
    pub fn target(&self, env: &str, s: &Settings) -> anyhow::Result<Target> {
        let path = self.dir.path().join("davit.toml");
        std::fs::write(&path, self.config_text(s))?;
        let cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        Target::resolve(&cfg, env, &|_| None).map_err(|f| anyhow::anyhow!("{f}"))
    }

    /// Remove this sandbox's containers and compose networks, and stop its nginx.
    pub fn cleanup(&self) {
        let ids = docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=davit.app={}", self.app),
        ]);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
        let nets = docker_lines(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=davit-{}-", self.app),
        ]);
        if !nets.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&nets)
                .output();
        }
        let pid_file = self
            .dir
            .path()
            .join(format!("state/{}-production/nginx/nginx.pid", self.app));
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let pid = pid.trim();
            if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                let _ = Command::new("kill").args(["-QUIT", pid]).output();
                // Wait for the master to exit so the next scenario's ports are really free.
                for _ in 0..50 {
                    let alive = Command::new("kill")
                        .args(["-0", pid])
                        .output()
                        .is_ok_and(|o| o.status.success());
                    if !alive {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gb: f64,
    pub kernel: String,
    pub docker: String,
    pub storage_driver: String,
    pub nginx: String,
    pub compose: String,
    /// 1-minute load average when the run started: more than `cpus` means a shared, busy machine.
    pub load_at_start: f64,
    pub load_at_end: f64,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|_| "not installed".into())
}

pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let memory_gb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            .unwrap_or(0.0);
        let compose = {
            let plugin = first_line("docker", &["compose", "version"]);
            if plugin.to_lowercase().contains("version") && !plugin.contains("unknown command") {
                plugin
            } else {
                first_line("docker-compose", &["version", "--short"])
            }
        };
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gb,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            docker: first_line("docker", &["version", "--format", "{{.Server.Version}}"]),
            storage_driver: first_line("docker", &["info", "--format", "{{.Driver}}"]),
            nginx: first_line("nginx", &["-v"]),
            compose,
            load_at_start: load_average(),
            load_at_end: 0.0,
        }
    }
}
