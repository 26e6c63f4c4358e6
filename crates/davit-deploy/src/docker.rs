//! Docker command lines and the read-only observations davit makes before planning.
//!
//! Observations (is the image here, which containers run, which compose flavour exists) happen
//! before a plan is made, so a plan is a pure function of them and `--dry-run` shows what would
//! really run on this host now.

use crate::target::Target;
use davit_core::Cmd;
use davit_exec::Executor;
use std::path::Path;
use std::time::Duration;

/// Labels on every container davit starts, so humans and `davit` can find them.
pub fn labels(t: &Target, release: &str, version: &str, color: Option<&str>) -> Vec<String> {
    let mut l = vec![
        format!("davit.app={}", t.app),
        format!("davit.environment={}", t.environment),
        format!("davit.release={release}"),
        format!("davit.version={version}"),
    ];
    if let Some(c) = color {
        l.push(format!("davit.color={c}"));
    }
    // The web container is one of the release's processes: found by the same label.
    if let Some(p) = t.processes.as_ref().and_then(crate::processes::web_label) {
        l.push(p);
    }
    l
}

/// The env file handed to containers: plain config, secrets, and what davit knows of the release.
pub fn env_file(t: &Target, release: &str, version: &str) -> String {
    let mut s = String::new();
    for (k, v) in &t.env {
        s.push_str(&format!("{k}={v}\n"));
    }
    for (k, v) in &t.secret_env {
        s.push_str(&format!("{k}={}\n", v.expose()));
    }
    for (k, v) in [
        ("DAVIT_APP", t.app.as_str()),
        ("DAVIT_ENVIRONMENT", t.environment.as_str()),
        ("DAVIT_RELEASE", release),
        ("DAVIT_VERSION", version),
    ] {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// `docker run -d` for one blue-green color.
pub fn run_color(
    t: &Target,
    name: &str,
    image: &str,
    env_file: &Path,
    host_port: u16,
    labels: &[String],
) -> Cmd {
    let mut c = Cmd::new("docker").args(["run", "-d", "--name", name]);
    for l in labels {
        c = c.arg("--label").arg(l.clone());
    }
    c = c
        .arg("--env-file")
        .arg(env_file.display().to_string())
        .arg("--publish")
        .arg(format!("{}:{host_port}:{}", t.bind, t.app_port));
    for (volume, mount) in crate::nginx::volume_mounts(t) {
        c = c.arg("--volume").arg(format!("{volume}:{mount}"));
    }
    // With processes, the web shares the app network with them and the services (so `postgres`
    // and `redis` resolve) and mounts its volumes (media shared with the worker).
    if let Some(set) = &t.processes {
        c = c.args(["--network", &set.network]);
        if let Some(web) = set.web() {
            c = c
                .args(["--stop-signal", &web.stop_signal])
                .arg("--stop-timeout")
                .arg(web.stop_grace_secs.to_string());
            for m in &web.mounts {
                c = c.arg("--mount").arg(m.docker_arg());
            }
        }
    }
    c = c.args(["--restart", "unless-stopped"]).arg(image);
    if let Some(cmd) = &t.command {
        c = c.args(cmd.iter().cloned());
    }
    c.timeout(Duration::from_secs(120))
}

/// `docker ps -a` of one environment's containers that carry `label`, one tab-separated row of
/// `columns` (Go template fields such as `.Names`) each: how processes and services are found.
pub fn ps_labelled(app: &str, environment: &str, label: &str, columns: &[&str]) -> Cmd {
    let format: Vec<String> = columns.iter().map(|c| format!("{{{{{c}}}}}")).collect();
    Cmd::new("docker")
        .args(["ps", "-a", "--no-trunc", "--filter"])
        .arg(format!("label=davit.app={app}"))
        .arg("--filter")
        .arg(format!("label=davit.environment={environment}"))
        .arg("--filter")
        .arg(format!("label={label}"))
        .arg("--format")
        .arg(format.join("\t"))
        .timeout(Duration::from_secs(30))
}

/// Remove a container whether it runs or not; failure (no such container) is expected.
pub fn remove(name: &str) -> Cmd {
    Cmd::new("docker")
        .args(["rm", "-f", name])
        .timeout(Duration::from_secs(60))
}

/// Stop a container but keep it (logs stay readable) with a short grace period.
pub fn stop(name: &str) -> Cmd {
    Cmd::new("docker")
        .args(["stop", "--time", "5", name])
        .timeout(Duration::from_secs(60))
}

pub fn pull(image: &str) -> Cmd {
    Cmd::new("docker")
        .args(["pull", image])
        .timeout(Duration::from_secs(600))
}

/// A one-off container of the new image for a hook (migrations), with the app's env. The
/// command goes to the image's ENTRYPOINT (a wait-for-database entrypoint runs first) unless
/// `replace_entrypoint` makes `run[0]` the entrypoint.
/// With `network` (the app network of a release with processes), the hook reaches the services
/// by name, as the processes do.
pub fn hook_in_image(
    image: &str,
    env_file: &Path,
    network: Option<&str>,
    run: &[String],
    replace_entrypoint: bool,
    timeout: Duration,
) -> Cmd {
    let mut c = Cmd::new("docker")
        .args(["run", "--rm", "--env-file"])
        .arg(env_file.display().to_string());
    if let Some(n) = network {
        c = c.args(["--network", n]);
    }
    let c = if replace_entrypoint {
        c.arg("--entrypoint")
            .arg(run[0].clone())
            .arg(image)
            .args(run[1..].iter().cloned())
    } else {
        c.arg(image).args(run.iter().cloned())
    };
    c.timeout(timeout)
}

/// Which compose command this host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeFlavor {
    /// `docker compose` (v2 plugin).
    Plugin,
    /// `docker-compose` (v1 standalone).
    Standalone,
}

impl ComposeFlavor {
    pub fn cmd(self, project: &str, file: &Path) -> Cmd {
        let base = match self {
            ComposeFlavor::Plugin => Cmd::new("docker").arg("compose"),
            ComposeFlavor::Standalone => Cmd::new("docker-compose"),
        };
        base.args(["--project-name", project, "--file"])
            .arg(file.display().to_string())
    }
}

pub async fn compose_flavor(exec: &dyn Executor) -> Option<ComposeFlavor> {
    let plugin = Cmd::new("docker")
        .args(["compose", "version"])
        .timeout(Duration::from_secs(20));
    if exec.run(&plugin).await.is_ok_and(|o| o.success()) {
        return Some(ComposeFlavor::Plugin);
    }
    let v1 = Cmd::new("docker-compose")
        .arg("version")
        .timeout(Duration::from_secs(20));
    if exec.run(&v1).await.is_ok_and(|o| o.success()) {
        return Some(ComposeFlavor::Standalone);
    }
    None
}

/// The local image id (`sha256:...`) of a reference, or None when the host does not have it.
pub async fn image_id(exec: &dyn Executor, image: &str) -> Option<String> {
    let c = Cmd::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .timeout(Duration::from_secs(30));
    match exec.run(&c).await {
        Ok(o) if o.success() => Some(o.stdout.trim().to_string()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// What a named container is, as far as davit cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    pub release: String,
    pub image: String,
}

pub async fn container(exec: &dyn Executor, name: &str) -> Option<ContainerState> {
    let c = Cmd::new("docker")
        .args([
            "container",
            "inspect",
            "--format",
            "{{.State.Running}}|{{index .Config.Labels \"davit.release\"}}|{{.Config.Image}}",
            name,
        ])
        .timeout(Duration::from_secs(30));
    let out = exec.run(&c).await.ok().filter(|o| o.success())?;
    let mut parts = out.stdout.trim().splitn(3, '|');
    Some(ContainerState {
        running: parts.next()? == "true",
        release: parts.next()?.to_string(),
        image: parts.next()?.to_string(),
    })
}

/// Is the Docker engine reachable? The error text is what users need to fix it.
pub async fn engine_reachable(exec: &dyn Executor) -> Result<(), String> {
    let c = Cmd::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .timeout(Duration::from_secs(20));
    match exec.run(&c).await {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(o.stderr.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}
