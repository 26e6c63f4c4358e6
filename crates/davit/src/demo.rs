//! `davit demo`: the whole release cycle on the bundled demo app, on this machine's Docker.
//!
//! It builds three images of the demo app (v1, v2, and a v3 whose health check stays green while
//! one request in five fails with a 503), deploys staging with compose, deploys production v1
//! then v2 with blue-green behind a davit-managed nginx, then the bad v3. While simulated users
//! send traffic, verification judges v3 from that traffic (the managed nginx's log of every
//! response) and rolls back to v2 within a fraction of a second; the error-rate analysis (a
//! Prometheus the demo starts, scraping both colors) watches beside it. The health probe alone
//! would have kept v3. Everything goes through the same library calls `davit deploy` and `davit verify` use, so
//! the demo is an honest preview, not a simulation.
//!
//! Production is a whole release, not one container: the web process plus two workers and a
//! scheduler run from the same image (`davit-demo-app worker`, `davit-demo-app scheduler`). After
//! each step the demo prints what every process runs, read from the host's container labels, so
//! web, workers and scheduler are seen moving together, back to v2 with the rollback too.
//!
//! `--strategy swarm` tells the same story on a multi-node swarm instead ([`crate::demo_swarm`]).

use crate::cli::DemoArgs;
use davit_config::Config;
use davit_core::{Cmd, Exit, Failure};
use davit_deploy::{Options, Target};
use davit_exec::{Executor, Local, Timeline};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const APP: &str = "demo";
pub const IMAGE: &str = "davit-demo";

pub async fn run(a: DemoArgs) -> Result<Exit, Failure> {
    let exec = Local::new();
    let tl = Timeline::default();
    let dir = absolute(&a.dir);
    if a.strategy == crate::cli::DemoStrategy::Swarm {
        return crate::demo_swarm::run(&a, &crate::demo_swarm::folder(&dir), &tl).await;
    }
    prerequisites(&exec).await?;
    teardown(&exec, &dir).await;
    if a.down {
        tl.note("demo removed (containers, proxy, state)");
        return Ok(Exit::Ok);
    }

    section(
        &tl,
        "1/6 build the demo app images (FROM scratch, static binary)",
    );
    let bin = app_binary(a.app_bin.as_deref(), &tl).await?;
    for (version, faults) in [
        ("v1", vec![]),
        ("v2", vec![]),
        ("v3", vec![("FAULT_ERROR_RATIO", "0.2".to_string())]),
    ] {
        build_image(&exec, &bin, &format!("{IMAGE}:{version}"), version, &faults).await?;
        tl.note(&format!("built {IMAGE}:{version}"));
    }

    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::infra(format!("cannot create {}: {e}", dir.display()))
            .with_hint("run the demo from a writable folder or pass --dir")
    })?;
    let config_path = dir.join("davit.toml");
    std::fs::write(&config_path, demo_config(a.port_base))
        .map_err(|e| Failure::infra(format!("cannot write {}: {e}", config_path.display())))?;
    let cfg =
        Config::load(&config_path).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let no_secrets = |_: &str| None;
    let staging = Target::resolve(&cfg, "staging", &no_secrets)?;
    let prod = Target::resolve(&cfg, "production", &no_secrets)?;
    let opts = Options::default();
    let analysis = davit_verify::analysis_spec(&cfg, &Default::default())?;
    let prometheus = start_prometheus(&dir, a.port_base).await?;
    tl.note(&format!(
        "Prometheus scrapes both colors every second at {prometheus}"
    ));

    section(&tl, "2/6 staging: compose deploy of v1");
    davit_deploy::deploy(&exec, &staging, "v1", &opts, &tl).await?;
    tl.note(&format!("staging serves v1 at {}", staging.public_url()));

    section(&tl, "3/6 production: blue-green deploy of v1");
    davit_deploy::deploy(&exec, &prod, "v1", &opts, &tl).await?;
    quick_verify(&exec, &prod, "v1", &tl).await?;
    show_processes(&exec, &prod, &tl).await?;

    section(
        &tl,
        "4/6 production: blue-green deploy of v2 (v1 stays up for rollback), with metric analysis",
    );
    davit_deploy::deploy(&exec, &prod, "v2", &opts, &tl).await?;
    show_processes(&exec, &prod, &tl).await?;
    let users = simulated_users(format!("{}/", prod.public_url()));
    let mut good = davit_verify::VerifyOptions::from_target(&prod);
    good.version = Some("v2".into());
    good.watch = Duration::from_secs(12);
    good.analysis = analysis.clone();
    let v2 = davit_verify::verify(&exec, &prod, &good, &tl).await;
    let v2 = match v2 {
        Ok(v) => v,
        Err(e) => {
            users.abort();
            return Err(e);
        }
    };
    if !v2.healthy {
        users.abort();
        return Err(Failure::infra(format!(
            "demo release v2 failed verification: {}",
            v2.reason.unwrap_or_default()
        )));
    }

    section(
        &tl,
        "5/6 production: deploy v3, which stays healthy but fails one request in five",
    );
    let deployed = davit_deploy::deploy(&exec, &prod, "v3", &opts, &tl).await;
    if let Err(e) = deployed {
        users.abort();
        return Err(e);
    }
    tl.note("v3 passed its health gate and is live; verify watches its error rate");
    if let Err(e) = show_processes(&exec, &prod, &tl).await {
        users.abort();
        return Err(e);
    }
    let mut vopts = davit_verify::VerifyOptions::from_target(&prod);
    vopts.version = Some("v3".into());
    vopts.analysis = analysis.clone();
    let verdict = davit_verify::verify(&exec, &prod, &vopts, &tl).await;
    users.abort();
    let verdict = verdict?;
    let after = show_processes(&exec, &prod, &tl).await?;
    if verdict.healthy {
        return Err(Failure::infra(
            "the bad release v3 was not caught by verification (the demo expects it to fail)",
        )
        .with_hint("check that Prometheus scrapes the demo (see .davit/demo/prometheus.yml)"));
    }

    section(&tl, "6/6 result");
    let url = format!("{}/", prod.public_url());
    let resp = exec
        .http_get(&url, Duration::from_secs(2))
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    let serving = resp.header("x-app-version").unwrap_or("?").to_string();
    let obs = davit_deploy::observe(&exec, &prod, None).await?;
    println!(
        "{}",
        crate::commands::ledger_table(&obs.ledger, obs.live_release().as_deref())
    );
    println!(
        "bad release v3 caught by: {}",
        verdict.reason.as_deref().unwrap_or("?")
    );
    if let Some(t) = verdict.traffic.as_ref().filter(|t| t.decided.is_some()) {
        println!("  {}", t.describe());
        if let Some(secs) = t.first_failure_to_decision_secs {
            println!(
                "  detection: {secs:.2}s from the first failed request in the window to the decision"
            );
        }
    }
    if let Some(a) = &verdict.analysis {
        for m in a.measurements.iter().filter(|m| m.metric == "error-rate") {
            println!(
                "  round {} error-rate = {} (must satisfy {}): {:?}",
                m.round,
                m.value
                    .map(davit_analysis::run::fmt_value)
                    .unwrap_or_else(|| "-".into()),
                m.threshold,
                m.outcome
            );
        }
    }
    println!(
        "detected {:.1}s into verification, restored {:.2}s after the decision",
        verdict.detected_after_secs.unwrap_or_default(),
        verdict.restored_after_secs.unwrap_or_default()
    );
    println!("production serves {serving} at {url} (try: curl -i {url})");
    println!("staging serves v1 at {}/", staging.public_url());
    println!("clean up with: davit demo --down --dir {}", a.dir.display());
    println!("every process of production: {}", after.line());
    if serving != "v2" {
        return Err(Failure::infra(format!(
            "after the rollback production serves {serving}, expected v2"
        )));
    }
    if !after.all_on("v2") {
        return Err(Failure::infra(format!(
            "after the rollback not every process runs v2: {}",
            after.line()
        )));
    }
    Ok(Exit::Ok)
}

/// What each process of an environment runs: the web as the proxy serves it, every other
/// process from its containers' labels (running ones only).
struct Processes {
    web: String,
    /// (process, version, running containers), sorted.
    others: Vec<(String, String, usize)>,
}

impl Processes {
    fn line(&self) -> String {
        let mut parts = vec![format!("web {}", self.web)];
        for (p, v, n) in &self.others {
            parts.push(if *n == 1 {
                format!("{p} {v}")
            } else {
                format!("{p} {v} ×{n}")
            });
        }
        parts.join(" · ")
    }

    /// The web and every other process on `version`, one version per process.
    fn all_on(&self, version: &str) -> bool {
        self.web == version && self.others.iter().all(|(_, v, _)| v == version)
    }
}

/// Read and print what every process of `t` runs now (truth from the host, not the ledger).
async fn show_processes(
    exec: &dyn Executor,
    t: &Target,
    tl: &Timeline,
) -> Result<Processes, Failure> {
    let url = format!("{}/", t.public_url());
    let web = exec
        .http_get(&url, Duration::from_secs(2))
        .await
        .ok()
        .and_then(|r| r.header("x-app-version").map(String::from))
        .unwrap_or_else(|| "down".into());
    let seen = davit_deploy::processes::observe(exec, &t.app, &t.environment, "")
        .await
        .map_err(Failure::infra)?;
    let others = davit_deploy::processes::versions(&seen)
        .into_iter()
        .filter(|(p, _, _)| p != "web")
        .collect();
    let now = Processes { web, others };
    tl.note(&format!("processes: {}", now.line()));
    Ok(now)
}

pub(crate) fn section(tl: &Timeline, title: &str) {
    tl.note(&format!("── {title} ──"));
}

/// A short verify (no long watch) for the good releases, to keep the demo brisk.
async fn quick_verify(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    tl: &Timeline,
) -> Result<(), Failure> {
    let mut o = davit_verify::VerifyOptions::from_target(t);
    o.version = Some(version.into());
    o.watch = Duration::from_secs(2);
    let v = davit_verify::verify(exec, t, &o, tl).await?;
    if v.healthy {
        Ok(())
    } else {
        Err(Failure::infra(format!(
            "demo release {version} failed verification"
        )))
    }
}

/// The demo's davit.toml: also a readable example of a real one.
pub fn demo_config(base: u16) -> String {
    format!(
        r#"# Written by `davit demo`.
state_dir = "state"

[app]
name = "{APP}"
port = 8000

[image]
name = "{IMAGE}"
pull = "never"

[health]
path = "/health"
interval_ms = 250
consecutive = 3
deadline_secs = 30

# The release's processes, all from the one image: the web behind the proxy, two workers that
# finish the task they are on when stopped (SIGTERM, then up to 5 s), and a scheduler that must
# never run twice (the old one stops before the new one starts).
[processes.web]

[processes.worker]
command = ["worker"]
replicas = 2
ready = {{ up_secs = 1 }}
stop_signal = "SIGTERM"
stop_grace_secs = 5

[processes.scheduler]
command = ["scheduler"]
singleton = true
ready = {{ up_secs = 1 }}
stop_grace_secs = 5

[environments.staging]
strategy = "compose"
port = {staging}

[environments.production]
strategy = "blue-green"
ports = {{ public = {base}, blue = {blue}, green = {green} }}
# Judged from its own traffic too: the simulated users send about 40 requests a second, so a
# 2 s window with at least 20 of them.
verify = {{ watch_secs = 30, interval_ms = 500, failure_limit = 3, traffic_window_ms = 2000, traffic_min_requests = 20 }}

# Golden signals from the Prometheus the demo starts (scraping blue and green every second).
[analysis]
interval = "2s"
initial_delay = "3s"
failure_limit = 1
inconclusive = "rollback"
templates = ["error-rate", "p95-latency"]
error_rate_max = 0.05
p95_latency_max_secs = 2.0
window = "10s"
# Prometheus' own scrapes of /metrics are not user traffic.
selector = 'color="{{{{color}}}}",path!="/metrics"'

[analysis.prometheus]
url = "http://127.0.0.1:{prom}"
"#,
        staging = base + 10,
        blue = base + 1,
        green = base + 2,
        prom = base + 20,
    )
}

async fn prerequisites(exec: &dyn Executor) -> Result<(), Failure> {
    let mut problems = Vec::new();
    if let Err(e) = davit_deploy::docker::engine_reachable(exec).await {
        problems.push(format!(
            "the Docker engine is not reachable ({e}); hint: install docker.io and start it (systemctl start docker), and make sure you may use /var/run/docker.sock"
        ));
    }
    if !exec.has_program("prometheus").await {
        problems.push(
            "prometheus is not installed; hint: apt-get install -y prometheus (scripts/install-deps.sh does this)".into(),
        );
    }
    if !exec.has_program("nginx").await {
        problems.push(
            "nginx is not installed; hint: apt-get install -y nginx-light (scripts/install-deps.sh does this)".into(),
        );
    }
    if davit_deploy::docker::compose_flavor(exec).await.is_none() {
        problems.push(
            "neither `docker compose` nor `docker-compose` works; hint: apt-get install -y docker-compose".into(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::infra(format!(
            "the demo needs:\n  - {}",
            problems.join("\n  - ")
        )))
    }
}

/// Remove everything a previous demo left: containers, the proxy, the state folder.
pub async fn teardown(exec: &dyn Executor, dir: &Path) {
    let ids = exec
        .run(&Cmd::new("docker").args(["ps", "-aq", "--filter", &format!("label=davit.app={APP}")]))
        .await
        .map(|o| o.stdout)
        .unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = exec
            .run(&Cmd::new("docker").args(["rm", "-f"]).args(ids))
            .await;
    }
    let pid_file = dir
        .join("state")
        .join(format!("{APP}-production"))
        .join("nginx")
        .join("nginx.pid");
    stop_process(exec, &pid_file, "-QUIT").await;
    stop_process(exec, &dir.join("prometheus.pid"), "-TERM").await;
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let _ = std::fs::remove_dir_all(dir.join("prometheus"));
    let _ = std::fs::remove_file(dir.join("prometheus.pid"));
}

/// Signal the process named in a pid file and wait (up to 5 s) until it is gone, so its port is
/// free for the next demo run.
async fn stop_process(exec: &dyn Executor, pid_file: &Path, signal: &str) {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = pid.trim();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return;
    }
    let _ = exec.run(&Cmd::new("kill").args([signal, pid])).await;
    for _ in 0..50 {
        let alive = exec
            .run(&Cmd::new("kill").args(["-0", pid]))
            .await
            .is_ok_and(|o| o.success());
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start a Prometheus for the demo that scrapes both production colors every second. It keeps
/// running after the demo (so its graphs can be looked at) until `davit demo --down`.
async fn start_prometheus(dir: &Path, base: u16) -> Result<String, Failure> {
    let port = base + 20;
    let cfg = davit_analysis::scrape::render_prometheus_yml(
        "demo",
        Duration::from_secs(1),
        "/metrics",
        &davit_analysis::scrape::blue_green_targets("127.0.0.1", base + 1, base + 2),
    );
    let cfg_path = dir.join("prometheus.yml");
    std::fs::write(&cfg_path, cfg)
        .map_err(|e| Failure::infra(format!("write {}: {e}", cfg_path.display())))?;
    let log = std::fs::File::create(dir.join("prometheus.log"))
        .map_err(|e| Failure::infra(format!("prometheus log: {e}")))?;
    let mut child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| {
            Failure::infra(format!("could not start prometheus: {e}"))
                .with_hint("apt-get install -y prometheus")
        })?;
    std::fs::write(dir.join("prometheus.pid"), child.id().to_string())
        .map_err(|e| Failure::infra(format!("prometheus pid file: {e}")))?;
    let url = format!("http://127.0.0.1:{port}");
    let exec = Local::new();
    for _ in 0..100 {
        // A Prometheus that could not bind (port taken) exits at once; do not mistake another
        // process answering on that port for ours.
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Failure::infra(format!(
                "prometheus exited ({status}); see {}",
                dir.join("prometheus.log").display()
            ))
            .with_hint(format!("is port {port} free? pass another --port-base")));
        }
        if exec
            .http_get(&format!("{url}/-/ready"), Duration::from_secs(1))
            .await
            .is_ok_and(|r| r.status == 200)
        {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::infra(format!(
        "prometheus did not become ready at {url}; see {}",
        dir.join("prometheus.log").display()
    ))
    .with_hint(format!("is port {port} free? pass another --port-base")))
}

/// Users of the demo shop: about 40 requests a second to the public URL until aborted, so the
/// analysis has real traffic to measure. Bounded to loopback and to the demo's lifetime.
fn simulated_users(url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let exec = Local::new();
        loop {
            let _ = exec.http_get(&url, Duration::from_secs(2)).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The repository root: the nearest ancestor with the demo app's sources.
pub fn repo_root() -> Option<PathBuf> {
    let start = std::env::current_dir().ok()?;
    start
        .ancestors()
        .find(|d| d.join("examples/demo-app/Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// The static demo app binary: the one given, or built from this repository with cargo.
pub async fn app_binary(explicit: Option<&Path>, tl: &Timeline) -> Result<PathBuf, Failure> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Failure::bad_input(
                format!("demo app binary {} does not exist", p.display()),
                "pass the path of a statically linked davit-demo-app, or omit --app-bin to build it",
            ))
        };
    }
    let root = repo_root().ok_or_else(|| {
        Failure::bad_input(
            "cannot find the demo app sources (examples/demo-app) above the current folder",
            "run davit demo from the davit repository, or pass --app-bin <static davit-demo-app>",
        )
    })?;
    tl.note("building the static demo app with cargo (crt-static)");
    build_static_app(&root).await
}

/// Build the demo app as a static binary in its own target folder (so it never waits on, or
/// invalidates, the workspace's normal build).
pub async fn build_static_app(root: &Path) -> Result<PathBuf, Failure> {
    let target_dir = root.join("target").join("demo-static");
    let cargo = which::which("cargo").map_err(|_| {
        Failure::infra("cargo is not on PATH").with_hint(
            "install Rust (rustup) or pass --app-bin with a prebuilt static davit-demo-app",
        )
    })?;
    let triple = "x86_64-unknown-linux-gnu";
    let cmd = Cmd::new(cargo.display().to_string())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "davit-demo-app",
            "--target",
            triple,
        ])
        .env("CARGO_TARGET_DIR", target_dir.display().to_string())
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .cwd(root)
        .timeout(Duration::from_secs(600));
    Local::new()
        .run_ok(&cmd)
        .await
        .map_err(|e| Failure::infra(format!("building the demo app failed: {e}")))?;
    Ok(target_dir
        .join(triple)
        .join("release")
        .join("davit-demo-app"))
}

/// Build `tag` FROM scratch with the static binary and the version (and faults) baked in.
pub async fn build_image(
    exec: &dyn Executor,
    bin: &Path,
    tag: &str,
    version: &str,
    env: &[(&str, String)],
) -> Result<(), Failure> {
    let ctx = tempfile::tempdir().map_err(|e| Failure::infra(format!("temp dir: {e}")))?;
    std::fs::copy(bin, ctx.path().join("davit-demo-app"))
        .map_err(|e| Failure::infra(format!("copy {}: {e}", bin.display())))?;
    let mut dockerfile =
        format!("FROM scratch\nCOPY davit-demo-app /davit-demo-app\nENV APP_VERSION={version}\n");
    for (k, v) in env {
        dockerfile.push_str(&format!("ENV {k}={v}\n"));
    }
    dockerfile.push_str("EXPOSE 8000\nENTRYPOINT [\"/davit-demo-app\"]\n");
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile)
        .map_err(|e| Failure::infra(format!("write Dockerfile: {e}")))?;
    let cmd = Cmd::new("docker")
        .args(["build", "--quiet", "--tag", tag])
        .arg(ctx.path().display().to_string())
        .timeout(Duration::from_secs(300));
    exec.run_ok(&cmd)
        .await
        .map_err(|e| Failure::infra(format!("docker build of {tag} failed: {e}")))?;
    Ok(())
}
