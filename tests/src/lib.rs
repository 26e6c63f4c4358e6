//! Support for the end-to-end suites: real components or a loud failure.
//!
//! These tests run davit against the real Docker engine and a real nginx. When a component is
//! missing they skip with a reason on a laptop, but with `CI=true` they fail: a CI run that
//! silently skipped the real-infrastructure tests would prove nothing.

pub mod act;
pub mod hosts;

use davit_config::Config;
use davit_deploy::Target;
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Whether a component is usable; panics under CI=true when it is not.
pub fn require(component: &str) -> bool {
    let ok = match component {
        "docker" => Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "nginx" => which::which("nginx").is_ok(),
        other => which::which(other).is_ok(),
    };
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{component} is required by this test and missing; CI=true does not allow skipping (run scripts/install-deps.sh)"
            );
        }
        eprintln!("SKIP: {component} is not available here (set CI=true to make this a failure)");
    }
    ok
}

pub fn require_all(components: &[&str]) -> bool {
    components.iter().all(|c| require(c))
}

/// A free TCP port on loopback (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if taken.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of one of davit's binaries (`davit`, `davit-gate`, `davit-image`, `davit-approve`,
/// `davit-verify`) in this build's target folder, building them all once per test process when
/// any is missing (a plain `cargo test` does not build other packages' binaries).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    const ALL: [&str; 5] = [
        "davit",
        "davit-gate",
        "davit-image",
        "davit-approve",
        "davit-verify",
    ];
    BUILT.get_or_init(|| {
        if ALL.iter().all(|b| dir.join(b).exists()) {
            return;
        }
        let mut c = Command::new("cargo");
        c.arg("build").current_dir(repo_root());
        for b in ALL {
            c.args(["-p", b]);
        }
        let st = c.status().expect("cargo");
        assert!(st.success(), "building the davit binaries failed");
    });
    dir.join(name)
}

/// The static demo app binary, built once per test process.
pub fn demo_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(davit::demo::build_static_app(&repo_root()))
            .unwrap_or_else(|e| panic!("building the demo app: {e}"))
    })
    .clone()
}

/// Build `<repo>:<version>` of the demo app with faults baked in (once per process and tag).
pub fn demo_image(repo: &str, version: &str, faults: &[(&str, &str)]) {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let tag = format!("{repo}:{version}");
    let built = BUILT.get_or_init(Default::default);
    if built.lock().unwrap().contains(&tag) {
        return;
    }
    let bin = demo_binary();
    let env: Vec<(&str, String)> = faults.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(davit::demo::build_image(
        &davit_exec::Local::new(),
        &bin,
        &tag,
        version,
        &env,
    ))
    .unwrap_or_else(|e| panic!("building {tag}: {e}"));
    built.lock().unwrap().insert(tag);
}

/// One isolated environment: its own app name, ports, state folder and containers.
pub struct Sandbox {
    pub app: String,
    pub dir: tempfile::TempDir,
    pub public: u16,
    pub blue: u16,
    pub green: u16,
    pub staging: u16,
}

impl Sandbox {
    pub fn new(app: &str) -> Sandbox {
        let s = Sandbox {
            app: app.to_string(),
            dir: tempfile::tempdir().unwrap(),
            public: free_port(),
            blue: free_port(),
            green: free_port(),
            staging: free_port(),
        };
        s.cleanup();
        s
    }

    /// A davit.toml for this sandbox with `extra` TOML appended (tables for production).
    pub fn config_text(&self, image_repo: &str, extra: &str) -> String {
        format!(
            r#"
state_dir = "{state}"
[app]
name = "{app}"
port = 8000
[image]
name = "{image_repo}"
pull = "never"
[health]
interval_ms = 100
consecutive = 2
deadline_secs = 20
[environments.staging]
strategy = "compose"
port = {staging}
[environments.production]
strategy = "blue-green"
ports = {{ public = {public}, blue = {blue}, green = {green} }}
{extra}
"#,
            state = self.dir.path().join("state").display(),
            app = self.app,
            staging = self.staging,
            public = self.public,
            blue = self.blue,
            green = self.green,
        )
    }

    pub fn target(&self, image_repo: &str, env: &str, extra: &str) -> Target {
        let path = self.dir.path().join("davit.toml");
        std::fs::write(&path, self.config_text(image_repo, extra)).unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        Target::resolve(&cfg, env, &|_| None).unwrap()
    }

    pub fn container(&self, env: &str, color: &str) -> String {
        format!("davit-{}-{env}-{color}", self.app)
    }

    /// Remove this sandbox's containers and stop its nginx.
    pub fn cleanup(&self) {
        cleanup_app(&self.app, &self.dir.path().join("state"));
    }
}

/// Remove every container of `app` (by its davit label) and stop the production nginx davit
/// started for it under `state_dir`.
pub fn cleanup_app(app: &str, state_dir: &Path) {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=davit.app={app}")])
        .output();
    if let Ok(o) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(ids)
                .output();
        }
    }
    let pid = state_dir.join(format!("{app}-production/nginx/nginx.pid"));
    if let Ok(p) = std::fs::read_to_string(pid) {
        let _ = Command::new("kill").args(["-QUIT", p.trim()]).output();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// GET a URL once: (status, x-app-version header, body).
pub async fn get(url: &str) -> Option<(u16, String, String)> {
    use davit_exec::Executor;
    davit_exec::Local::new()
        .http_get(url, std::time::Duration::from_secs(3))
        .await
        .ok()
        .map(|r| {
            (
                r.status,
                r.header("x-app-version").unwrap_or("").to_string(),
                r.body,
            )
        })
}

/// The version answering through a URL, or "down".
pub async fn version_at(url: &str) -> String {
    match get(url).await {
        Some((200, v, _)) => v,
        Some((status, v, _)) => format!("{status} from {v}"),
        None => "down".into(),
    }
}

/// Run an async test body on a fresh runtime (support helpers build images synchronously).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// Whether a container exists, and whether it runs.
pub fn container_state(name: &str) -> Option<bool> {
    let o = Command::new("docker")
        .args([
            "container",
            "inspect",
            "--format",
            "{{.State.Running}}",
            name,
        ])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim() == "true")
}

/// The events of the ledger, in order, as `event:version` strings.
pub fn ledger_events(t: &Target) -> Vec<String> {
    let text = std::fs::read_to_string(t.ledger_path()).unwrap_or_default();
    davit_deploy::ledger::parse(&text)
        .0
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                serde_json::to_value(r.event).unwrap().as_str().unwrap(),
                r.version
            )
        })
        .collect()
}

/// The swarm strategy's proxy image (HAProxy from Debian, `scripts/build-swarm-proxy.sh`), built
/// once per machine: the script does nothing when the image exists.
pub fn swarm_proxy_image() -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let image = "davit/haproxy:bookworm".to_string();
            let out = Command::new(repo_root().join("scripts/build-swarm-proxy.sh"))
                .arg(&image)
                .output()
                .expect("run scripts/build-swarm-proxy.sh");
            assert!(
                out.status.success(),
                "building {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            image
        })
        .clone()
}

/// Build the Django + Celery example's images (examples/django-celery/build.sh: the debootstrap
/// base is cached), the app tagged `tag`; the app, PostgreSQL and Redis image references. None
/// (skip) when a tool is missing outside CI.
pub fn django_celery_images(tag: &str) -> Option<[String; 3]> {
    if !require_all(&["docker", "debootstrap", "python3", "curl"]) {
        return None;
    }
    let build = Command::new(repo_root().join("examples/django-celery/build.sh"))
        .arg(tag)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "building the example failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let out = String::from_utf8_lossy(&build.stdout);
    let v: Vec<&str> = out.lines().collect();
    assert_eq!(v.len(), 3, "build.sh printed {out:?}");
    Some([v[0].to_string(), v[1].to_string(), v[2].to_string()])
}
