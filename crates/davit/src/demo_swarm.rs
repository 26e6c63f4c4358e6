//! `davit demo --strategy swarm`: the demo's story (v1, v2, a bad v3 taken back, v2 serving)
//! with the swarm strategy on a three-node Docker Swarm that the demo makes on this machine
//! ([`crate::swarm_lab`]) and removes at the end.
//!
//! Each release goes out through the `davit` binary itself, `davit deploy production --version
//! vN`, run on the manager node (in its network namespace, with its engine in `DOCKER_HOST`,
//! `host = "local"`), as a workflow step on a manager would. So the demo shows exactly what a
//! user gets, and a deploy's exit code is the verdict. The bad v3 exits as soon as it starts:
//! Swarm rolls the update back by itself and davit reports the failure (exit 1), never a
//! success. The demo then asks every node's proxy which version answers.

use crate::cli::DemoArgs;
use crate::demo::{app_binary, build_image, section};
use crate::swarm_lab::{Lab, TOOLS};
use davit_core::{Exit, Failure};
use davit_exec::{Executor, Local, Timeline};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The swarm demo's own image name, so its crashing v3 never replaces the blue-green demo's.
pub const IMAGE: &str = "davit-demo-swarm";

/// The proxy image `scripts/build-swarm-proxy.sh` builds (nothing can be pulled here).
pub const PROXY_IMAGE: &str = "davit/haproxy:bookworm";

const NODES: u8 = 3;

pub async fn run(a: &DemoArgs, dir: &Path, tl: &Timeline) -> Result<Exit, Failure> {
    let exec = Local::new();
    prerequisites(&exec).await?;
    crate::swarm_lab::sweep()?;
    let _ = std::fs::remove_dir_all(dir.join("state"));
    if a.down {
        tl.note("swarm demo removed (nodes, state)");
        return Ok(Exit::Ok);
    }

    section(tl, "1/5 build the demo app images (v3 exits at once)");
    let bin = app_binary(a.app_bin.as_deref(), tl).await?;
    let mut images = vec![PROXY_IMAGE.to_string()];
    for (version, faults) in [
        ("v1", vec![]),
        ("v2", vec![]),
        ("v3", vec![("FAULT_CRASH_AFTER_SECS", "0".to_string())]),
    ] {
        let tag = format!("{IMAGE}:{version}");
        build_image(&exec, &bin, &tag, version, &faults).await?;
        images.push(tag);
    }

    section(
        tl,
        &format!("2/5 a {NODES}-node swarm on this machine (a network namespace and dockerd each)"),
    );
    let lab = Lab::start(NODES)?;
    lab.form_swarm()?;
    lab.load_images(&images)?;
    for n in &lab.nodes {
        tl.note(&format!("node {} at {}", n.name, n.addr));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infra(format!("cannot create {}: {e}", dir.display())))?;
    let config = dir.join("davit.toml");
    std::fs::write(&config, config_text(a.port_base))
        .map_err(|e| Failure::infra(format!("cannot write {}: {e}", config.display())))?;

    section(
        tl,
        "3/5 production: swarm deploy of v1, then v2 (start-first)",
    );
    for version in ["v1", "v2"] {
        let code = davit_on_manager(
            &lab,
            &config,
            &["deploy", "production", "--version", version],
        )?;
        if code != Some(0) {
            return Err(Failure::infra(format!(
                "the swarm deploy of {version} failed (exit {code:?})"
            )));
        }
        tl.note(&format!("{version} is out on every node"));
    }

    section(
        tl,
        "4/5 production: deploy v3, whose tasks exit as soon as they start",
    );
    let code = davit_on_manager(&lab, &config, &["deploy", "production", "--version", "v3"])?;
    if code != Some(1) {
        return Err(Failure::infra(format!(
            "the bad release v3 was not reported as rejected (exit {code:?}, want 1)"
        )));
    }
    tl.note("Swarm rolled v3 back by itself; davit reported the failure (exit 1)");

    section(tl, "5/5 result");
    davit_on_manager(&lab, &config, &["releases", "production"])?;
    let mut serving = Vec::new();
    for n in &lab.nodes {
        let url = format!("http://{}:{}/", n.addr, a.port_base);
        let v = match exec.http_get(&url, Duration::from_secs(3)).await {
            Ok(r) => r.header("x-app-version").unwrap_or("?").to_string(),
            Err(e) => format!("nothing ({e})"),
        };
        println!("node {} serves {v} at {url}", n.name);
        serving.push(v);
    }
    println!("the demo's swarm is removed now; run it again with: davit demo --strategy swarm");
    drop(lab);
    if serving.iter().any(|v| v != "v2") {
        return Err(Failure::infra(format!(
            "after v3 was taken back the nodes serve {serving:?}, expected v2 on each"
        )));
    }
    Ok(Exit::Ok)
}

/// Runs this `davit` binary on the manager node (its network namespace, its engine) and
/// returns its exit code; its output goes to the terminal.
fn davit_on_manager(lab: &Lab, config: &Path, args: &[&str]) -> Result<Option<i32>, Failure> {
    let manager = &lab.nodes[0];
    let me = std::env::current_exe()
        .map_err(|e| Failure::infra(format!("where is davit itself: {e}")))?;
    let status = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", manager.name))
        .arg(&me)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("DOCKER_HOST", &manager.docker_host)
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_ACTIONS")
        .status()
        .map_err(|e| Failure::infra(format!("run nsenter: {e}")))?;
    Ok(status.code())
}

async fn prerequisites(exec: &dyn Executor) -> Result<(), Failure> {
    let mut problems = Vec::new();
    if !is_root() {
        problems.push(
            "root, to make the nodes' network namespaces and engines; hint: sudo davit demo --strategy swarm".to_string(),
        );
    }
    for tool in TOOLS {
        if !exec.has_program(tool).await {
            problems.push(format!(
                "`{tool}`; hint: apt-get install -y iproute2 util-linux iptables docker.io"
            ));
        }
    }
    if davit_deploy::docker::engine_reachable(exec).await.is_err() {
        problems.push("this machine's Docker engine (the images are built there); hint: systemctl start docker".into());
    } else if !has_image(PROXY_IMAGE) {
        problems.push(format!(
            "the proxy image {PROXY_IMAGE}; hint: scripts/build-swarm-proxy.sh builds it (scripts/demo.sh --strategy swarm runs it)"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::infra(format!(
            "the swarm demo needs:\n  - {}",
            problems.join("\n  - ")
        )))
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn has_image(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The swarm demo's davit.toml: production is the swarm, davit runs on its manager.
fn config_text(port: u16) -> String {
    format!(
        r#"# Written by `davit demo --strategy swarm`.
state_dir = "state"

[app]
name = "{app}"
port = 8000

[image]
name = "{IMAGE}"
pull = "never"

[health]
path = "/health"
interval_ms = 250
consecutive = 2
deadline_secs = 60

[environments.production]
strategy = "swarm"

[environments.production.swarm]
published_port = {port}
replicas = 3
parallelism = 1
monitor_secs = 3
update_timeout_secs = 240
proxy_image = "{PROXY_IMAGE}"
health_cmd = ["/davit-demo-app", "health"]
"#,
        app = crate::demo::APP,
    )
}

/// The demo's folder for the swarm story, beside the blue-green one's.
pub fn folder(dir: &Path) -> PathBuf {
    dir.join("swarm")
}
