//! Keeping the managed nginx up: the proxy is infrastructure, not part of a release.
//!
//! davit starts its own nginx per blue-green environment; nothing else restarts it when it dies
//! or after a reboot. So every davit command that acts on the environment (deploy, rollback,
//! verify) first looks: when a site file says a release is live and the nginx of its pid file is
//! not running, davit tests the live configuration and starts it again, and says so. That is
//! also how verify tells "the proxy is down" (start it; the release is fine) from "the release
//! is bad" (roll back): a dead nginx is never blamed on the app.

use crate::nginx::{self, Files};
use crate::observe::{Observed, Seen};
use crate::strategy;
use crate::target::Target;
use davit_core::{Cmd, Failure};
use davit_exec::Executor;
use std::path::Path;
use std::time::Duration;

/// Whether the process in a pid file runs (`kill -0`, so it works on remote hosts too).
pub async fn pid_alive(exec: &dyn Executor, pid_file: &Path) -> bool {
    let Ok(Some(bytes)) = exec.read_file(pid_file).await else {
        return false;
    };
    let pid = String::from_utf8_lossy(&bytes).trim().to_string();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let c = Cmd::new("kill")
        .args(["-0", &pid])
        .timeout(Duration::from_secs(5));
    exec.run(&c).await.is_ok_and(|o| o.success())
}

/// Is the managed nginx of a blue-green target that has a live release down?
pub async fn proxy_down(exec: &dyn Executor, t: &Target) -> bool {
    if strategy::pick(&t.strategy).managed_proxy().is_none() {
        return false;
    }
    let files = Files::of(t);
    matches!(exec.read_file(&files.site()).await, Ok(Some(_)))
        && !pid_alive(exec, &files.pid()).await
}

/// Start the managed nginx again when a release is live and it is not running. Returns what
/// was done (for the timeline and the warnings), or None when nothing was needed.
pub async fn revive(
    exec: &dyn Executor,
    t: &Target,
    obs: &mut Observed,
) -> Result<Option<String>, Failure> {
    let Some(ports) = strategy::pick(&t.strategy).managed_proxy() else {
        return Ok(None);
    };
    if obs.live.is_none() || obs.seen.nginx_running() {
        return Ok(None);
    }
    let files = Files::of(t);
    // The main file is rewritten on every switch; write it again in case only the site file
    // survived (a restored backup, a cleaned folder).
    exec.mkdir(&files.dir.join("tmp"), 0o755)
        .await
        .and(
            exec.write_file(&files.main(), files.main_conf().as_bytes(), 0o644)
                .await,
        )
        .map_err(|e| Failure::infra(format!("cannot prepare the managed nginx: {e}")))?;
    let start = files.start().timeout(Duration::from_secs(30));
    exec.run_ok(&start).await.map_err(|e| {
        Failure::infra(format!(
            "the proxy is down: the managed nginx of {} was not running and did not start again: {e}",
            t.environment
        ))
        .with_hint(format!(
            "see {} and free the public port {} (another process may hold it); the release itself was not touched",
            files.error_log().display(),
            ports.public
        ))
    })?;
    obs.seen = Seen::Proxy {
        nginx_running: true,
    };
    Ok(Some(format!(
        "the proxy was down: the managed nginx of {} was not running; davit started it again (serving {})",
        t.environment,
        obs.live.as_ref().map(|l| l.version.as_str()).unwrap_or("?")
    )))
}

/// What a deploy or rollback does on the host before it plans, besides the image: find (and
/// unless `dry_run`, create) the volumes the proxy serves, and start the managed nginx again if
/// it died. Returns notes for the report's warnings.
pub async fn prepare_host(
    exec: &dyn Executor,
    t: &Target,
    obs: &mut Observed,
    dry_run: bool,
) -> Result<Vec<String>, Failure> {
    if strategy::pick(&t.strategy).managed_proxy().is_none() {
        return Ok(Vec::new());
    }
    obs.volumes = nginx::volume_dirs(exec, t, !dry_run).await?;
    if dry_run {
        return Ok(Vec::new());
    }
    Ok(revive(exec, t, obs).await?.into_iter().collect())
}
