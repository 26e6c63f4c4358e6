//! `davit demo`: the whole release cycle on the bundled demo app, on this machine's Docker.
//!
//! It builds three images of the demo app (v1, v2, and a v3 that passes its start-up health gate
//! and then starts failing), deploys staging with compose, deploys production v1 then v2 with
//! blue-green behind a davit-managed nginx, then the bad v3, which verification catches and rolls
//! back to v2. Everything goes through the same library calls `davit deploy` and `davit verify`
//! use, so the demo is an honest preview, not a simulation.

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
        (
            "v3",
            vec![("FAULT_FAIL_AFTER_SECS", a.bad_after_secs.to_string())],
        ),
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

    section(&tl, "2/6 staging: compose deploy of v1");
    davit_deploy::deploy(&exec, &staging, "v1", &opts, &tl).await?;
    tl.note(&format!("staging serves v1 at {}", staging.public_url()));

    section(&tl, "3/6 production: blue-green deploy of v1");
    davit_deploy::deploy(&exec, &prod, "v1", &opts, &tl).await?;
    quick_verify(&exec, &prod, "v1", &tl).await?;

    section(
        &tl,
        "4/6 production: blue-green deploy of v2 (v1 stays up for rollback)",
    );
    davit_deploy::deploy(&exec, &prod, "v2", &opts, &tl).await?;
    quick_verify(&exec, &prod, "v2", &tl).await?;

    section(
        &tl,
        &format!(
            "5/6 production: deploy v3, which is healthy for {}s and then fails",
            a.bad_after_secs
        ),
    );
    davit_deploy::deploy(&exec, &prod, "v3", &opts, &tl).await?;
    tl.note("v3 passed its health gate and is live; verify watches it");
    let mut vopts = davit_verify::VerifyOptions::from_target(&prod);
    vopts.version = Some("v3".into());
    let verdict = davit_verify::verify(&exec, &prod, &vopts, &tl).await?;
    if verdict.healthy {
        return Err(Failure::infra(
            "the bad release v3 was not caught by verification (the demo expects it to fail)",
        )
        .with_hint(
            "raise --bad-after-secs below the verify watch window or check the demo app image",
        ));
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
        "bad release detected after {:.1}s, restored in {:.2}s",
        verdict.detected_after_secs.unwrap_or_default(),
        verdict.restored_after_secs.unwrap_or_default()
    );
    println!("production serves {serving} at {url} (try: curl -i {url})");
    println!("staging serves v1 at {}/", staging.public_url());
    println!("clean up with: davit demo --down --dir {}", a.dir.display());
    if serving != "v2" {
        return Err(Failure::infra(format!(
            "after the rollback production serves {serving}, expected v2"
        )));
    }
    Ok(Exit::Ok)
}

fn section(tl: &Timeline, title: &str) {
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

[environments.staging]
strategy = "compose"
port = {staging}

[environments.production]
strategy = "blue-green"
ports = {{ public = {base}, blue = {blue}, green = {green} }}
verify = {{ watch_secs = 20, interval_ms = 500, failure_limit = 3 }}
"#,
        staging = base + 10,
        blue = base + 1,
        green = base + 2,
    )
}

async fn prerequisites(exec: &dyn Executor) -> Result<(), Failure> {
    let mut problems = Vec::new();
    if let Err(e) = davit_deploy::docker::engine_reachable(exec).await {
        problems.push(format!(
            "the Docker engine is not reachable ({e}); hint: install docker.io and start it (systemctl start docker), and make sure you may use /var/run/docker.sock"
        ));
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
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid = pid.trim();
        if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
            let _ = exec.run(&Cmd::new("kill").args(["-QUIT", pid])).await;
            // nginx exits within a moment; wait so the port is free for the next run.
            for _ in 0..50 {
                if !exec
                    .run(&Cmd::new("kill").args(["-0", pid]))
                    .await
                    .is_ok_and(|o| o.success())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("state"));
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
