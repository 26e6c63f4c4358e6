//! The process planner: how a release's processes other than web move from one release to the
//! next, the same for every strategy.
//!
//! A release is one image run as several processes (web, workers, a scheduler). The strategy
//! decides how the web changes (blue-green, compose, ...); this module plans everything around
//! it, so that a deploy is all or nothing:
//! - new workers start beside the old ones and must be ready (health check, command, or staying
//!   up) before anything else changes;
//! - a singleton (Celery beat) is never running twice, not even for an instant: the old one stops
//!   (its stop signal, its grace period) before the new one starts; the gap is measured afterwards
//!   from Docker's own timestamps ([`singleton_gaps`]);
//! - the strategy's web steps go in the middle ([`plan_release`] takes them as a closure);
//! - only then are the old workers drained: their stop signal (SIGTERM is Celery's warm shutdown)
//!   and their grace period, so running tasks finish before the container goes.
//!
//! Every step that changes something carries its undo, so a failure anywhere (a worker that never
//! gets ready, a web switch that fails) reverts every process: the new containers stop, the old
//! singleton and old workers start again. A rollback is the same plan for a recorded release; the
//! caller leaves out migrations and hooks. Containers are found by their labels
//! (`davit.process`), never by name patterns, and volumes are never removed.

use crate::target::Target;
use crate::{NewRelease, Observed};
use davit_config::{AppSet, HealthCmd, ProcessSpec, Readiness};
use davit_core::plan::shell_quote;
use davit_core::{Cmd, ContainerReady, Plan, ReadyCheck, Step};
use davit_exec::Executor;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The label that marks a container as one of a release's processes (value: the process name).
pub const PROCESS_LABEL: &str = "davit.process";

/// A process container davit finds on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcContainer {
    pub name: String,
    pub process: String,
    pub release: String,
    pub version: String,
    pub running: bool,
    /// The blue-green color of a web container (empty for every other process).
    pub color: String,
}

/// What the planner needs to know of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcObserved {
    pub containers: Vec<ProcContainer>,
    pub network_exists: bool,
}

/// The release the processes move to (or back to, for a rollback).
#[derive(Debug, Clone)]
pub struct ProcRelease<'a> {
    pub app: &'a str,
    pub environment: &'a str,
    pub id: &'a str,
    pub version: &'a str,
    pub image: &'a str,
    /// The release's env file (0600), the same the web process gets.
    pub env_file: &'a Path,
}

/// `docker ps` of every process container of an environment, stopped ones too.
pub fn ps_cmd(app: &str, environment: &str) -> Cmd {
    crate::docker::ps_labelled(
        app,
        environment,
        PROCESS_LABEL,
        &[
            ".Names",
            &format!(".Label \"{PROCESS_LABEL}\""),
            ".Label \"davit.release\"",
            ".Label \"davit.version\"",
            ".State",
            ".Label \"davit.color\"",
        ],
    )
}

pub fn parse_ps(out: &str) -> Vec<ProcContainer> {
    let mut v: Vec<ProcContainer> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('\t').collect();
            match f.as_slice() {
                [name, process, release, version, state, rest @ ..] if !process.is_empty() => {
                    Some(ProcContainer {
                        name: name.to_string(),
                        process: process.to_string(),
                        release: release.to_string(),
                        version: version.to_string(),
                        running: matches!(*state, "running" | "restarting"),
                        color: rest.first().map(|c| c.to_string()).unwrap_or_default(),
                    })
                }
                _ => None,
            }
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Read the process containers and whether the network exists. Changes nothing.
pub async fn observe(
    exec: &dyn Executor,
    app: &str,
    environment: &str,
    network: &str,
) -> Result<ProcObserved, String> {
    let o = exec
        .run_ok(&ps_cmd(app, environment))
        .await
        .map_err(|e| e.to_string())?;
    let net = Cmd::new("docker")
        .args(["network", "inspect", "--format", "{{.Name}}", network])
        .timeout(Duration::from_secs(30));
    let network_exists = exec.run(&net).await.is_ok_and(|o| o.success());
    Ok(ProcObserved {
        containers: parse_ps(&o.stdout),
        network_exists,
    })
}

/// `<app>-<environment>-<process>-<release>-<replica>`: unique per release, so the new
/// containers run beside the old ones.
pub fn container_name(rel: &ProcRelease<'_>, process: &str, replica: u32) -> String {
    format!(
        "{}-{}-{process}-{}-{replica}",
        rel.app, rel.environment, rel.id
    )
}

/// `docker run -d` for one container of a process.
pub fn run_cmd(rel: &ProcRelease<'_>, network: &str, p: &ProcessSpec, replica: u32) -> Cmd {
    let name = container_name(rel, &p.name, replica);
    let mut c = Cmd::new("docker").args(["run", "-d", "--name", &name]);
    for l in [
        format!("davit.app={}", rel.app),
        format!("davit.environment={}", rel.environment),
        format!("davit.release={}", rel.id),
        format!("davit.version={}", rel.version),
        format!("{PROCESS_LABEL}={}", p.name),
        format!("davit.replica={replica}"),
    ] {
        c = c.arg("--label").arg(l);
    }
    c = c
        .arg("--env-file")
        .arg(rel.env_file.display().to_string())
        .args(["--network", network])
        .args(["--restart", "unless-stopped"])
        .args(["--stop-signal", &p.stop_signal])
        .arg("--stop-timeout")
        .arg(p.stop_grace_secs.to_string());
    for m in &p.mounts {
        c = c.arg("--mount").arg(m.docker_arg());
    }
    if let Some(h) = &p.healthcheck {
        c = health_args(c, h);
    }
    c = c.arg(rel.image);
    if let Some(cmd) = &p.command {
        c = c.args(cmd.iter().cloned());
    }
    c.timeout(Duration::from_secs(120))
}

/// `docker run`'s health check flags for a compose `healthcheck:` (Docker runs `--health-cmd`
/// through a shell, so the CMD form is quoted into one line).
pub fn health_args(c: Cmd, h: &HealthCmd) -> Cmd {
    let cmd = match h.test.first().map(String::as_str) {
        Some("CMD-SHELL") => h.test[1..].join(" "),
        _ => h.test[1..]
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    };
    c.arg("--health-cmd")
        .arg(cmd)
        .arg("--health-interval")
        .arg(format!("{}ms", h.interval_ms))
        .arg("--health-timeout")
        .arg(format!("{}ms", h.timeout_ms))
        .arg("--health-retries")
        .arg(h.retries.to_string())
        .arg("--health-start-period")
        .arg(format!("{}ms", h.start_period_ms))
}

/// Stop with the container's own stop signal, then SIGKILL after `grace` seconds.
pub fn stop_cmd(name: &str, grace: u64) -> Cmd {
    Cmd::new("docker")
        .args(["stop", "--time"])
        .arg(grace.to_string())
        .arg(name)
        .timeout(Duration::from_secs(grace + 60))
}

fn start_cmd(name: &str) -> Cmd {
    Cmd::new("docker")
        .args(["start", name])
        .timeout(Duration::from_secs(60))
}

/// Remove a stopped container; never its volumes (no `-v`).
fn rm_cmd(name: &str) -> Cmd {
    Cmd::new("docker")
        .args(["rm", "-f", name])
        .timeout(Duration::from_secs(60))
}

/// The readiness wait for a new container of a process (web is the strategy's).
pub fn ready_step(container: &str, r: &Readiness) -> Option<Step> {
    let (check, deadline) = match r {
        Readiness::Http => return None,
        Readiness::Healthcheck { timeout_secs } => (ReadyCheck::Healthy, *timeout_secs),
        Readiness::Command { run, timeout_secs } => {
            (ReadyCheck::Command { run: run.clone() }, *timeout_secs)
        }
        Readiness::UpFor { secs } => (ReadyCheck::UpFor { secs: *secs }, secs + 30),
    };
    Some(Step::WaitReady(ContainerReady {
        container: container.to_string(),
        check,
        interval: Duration::from_millis(500),
        deadline: Duration::from_secs(deadline),
    }))
}

/// The network and the named volumes in `volumes`: created when missing, never removed (no undo).
pub fn plan_network_and_volumes(
    plan: &mut Plan,
    set: &AppSet,
    volumes: &[String],
    seen_network: bool,
) {
    if !seen_network {
        plan.push(
            format!(
                "create network {} (processes and services resolve each other by name)",
                set.network
            ),
            Step::Exec(
                Cmd::new("docker")
                    .args(["network", "create", &set.network])
                    .timeout(Duration::from_secs(60)),
            ),
        );
    }
    for v in volumes {
        // `docker volume create` of an existing volume is a no-op that keeps its data.
        plan.push(
            format!("volume {v} exists (kept across every deploy and rollback)"),
            Step::Exec(
                Cmd::new("docker")
                    .args(["volume", "create", v])
                    .timeout(Duration::from_secs(60)),
            ),
        );
    }
}

fn start_new(
    plan: &mut Plan,
    rel: &ProcRelease<'_>,
    set: &AppSet,
    seen: &ProcObserved,
    p: &ProcessSpec,
) {
    for i in 1..=p.replicas {
        let name = container_name(rel, &p.name, i);
        if let Some(c) = seen.containers.iter().find(|c| c.name == name) {
            if c.running {
                // Left by an interrupted run of this same release: it counts.
                continue;
            }
            plan.push(
                format!("remove {name}, a stopped leftover of an earlier attempt"),
                Step::ExecIgnoringFailure(rm_cmd(&name)),
            );
        }
        plan.push_with_undo(
            format!(
                "start {} {i}/{} of {} ({})",
                p.name, p.replicas, rel.version, rel.id
            ),
            Step::Exec(run_cmd(rel, &set.network, p, i)),
            vec![
                Step::ExecIgnoringFailure(stop_cmd(&name, p.stop_grace_secs)),
                Step::ExecIgnoringFailure(rm_cmd(&name)),
            ],
        );
        if let Some(r) = ready_step(&name, &p.readiness) {
            plan.push(format!("{name} is ready"), r);
        }
    }
}

fn old_of<'a>(
    seen: &'a ProcObserved,
    rel: &ProcRelease<'_>,
    process: &str,
) -> impl Iterator<Item = &'a ProcContainer> {
    let id = rel.id.to_string();
    let process = process.to_string();
    seen.containers
        .iter()
        .filter(move |c| c.process == process && c.release != id)
}

/// The named volumes the release's processes mount (the services' own are theirs).
pub fn process_volumes(set: &AppSet) -> Vec<String> {
    let mut v: Vec<String> = set
        .processes
        .iter()
        .flat_map(|p| &p.mounts)
        .filter_map(|m| match &m.source {
            davit_config::MountSource::Volume(v) => Some(v.clone()),
            davit_config::MountSource::Bind(_) => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every process of the release moved, the web steps in the middle. See the module docs for the
/// order; each change carries its undo, so a failure anywhere reverts every process. The network
/// and volumes come first and separately ([`plan_network_and_volumes`]): the migration hook runs
/// on that network before any process of the new release starts.
pub fn plan_release(
    plan: &mut Plan,
    set: &AppSet,
    rel: &ProcRelease<'_>,
    seen: &ProcObserved,
    web: impl FnOnce(&mut Plan),
) {
    // 1. New workers beside the old ones, each ready before anything else changes.
    for p in set.others().filter(|p| !p.singleton) {
        start_new(plan, rel, set, seen, p);
    }
    // 2. Singletons: the old one stops before the new one starts (never two at once).
    for p in set.others().filter(|p| p.singleton) {
        for old in old_of(seen, rel, &p.name).filter(|c| c.running) {
            plan.push_with_undo(
                format!(
                    "stop {} of {} ({}): a singleton never runs twice, so {} is not running until its replacement starts",
                    p.name, old.version, old.name, p.name
                ),
                Step::Exec(stop_cmd(&old.name, p.stop_grace_secs)),
                vec![Step::ExecIgnoringFailure(start_cmd(&old.name))],
            );
        }
        start_new(plan, rel, set, seen, p);
    }
    // 3. The web process, as the strategy moves it.
    web(plan);
    // 4. Drain the old workers (and processes the new release no longer has).
    let mut drained: Vec<&ProcContainer> = Vec::new();
    for c in seen
        .containers
        .iter()
        .filter(|c| c.running && c.release != rel.id)
    {
        let spec = set.processes.iter().find(|p| p.name == c.process);
        if spec.is_some_and(|p| p.singleton || p.web) {
            continue;
        }
        drained.push(c);
        let grace = spec.map_or(30, |p| p.stop_grace_secs);
        let why = if spec.is_some() {
            "its running tasks to finish"
        } else {
            "it to stop (the new release has no such process)"
        };
        plan.push_with_undo(
            format!(
                "drain {} of {} ({}): stop signal, then up to {grace}s for {why}",
                c.process, c.version, c.name
            ),
            Step::Exec(stop_cmd(&c.name, grace)),
            vec![Step::ExecIgnoringFailure(start_cmd(&c.name))],
        );
    }
}

/// After the release is recorded: remove the old releases' stopped process containers (their
/// volumes stay). Failures here leave a stopped container behind and nothing else.
///
/// A singleton this move stopped stays (stopped) until the next move: Docker's timestamps on it
/// are how the gap is measured ([`singleton_gaps`]), and its logs stay readable meanwhile.
pub fn plan_cleanup(plan: &mut Plan, rel: &ProcRelease<'_>, seen: &ProcObserved, set: &AppSet) {
    for c in seen.containers.iter().filter(|c| c.release != rel.id) {
        let spec = set.processes.iter().find(|p| p.name == c.process);
        if spec.is_some_and(|p| p.web || (p.singleton && c.running)) {
            continue;
        }
        plan.push(
            format!(
                "remove {} of {} ({}), stopped",
                c.process, c.version, c.name
            ),
            Step::ExecIgnoringFailure(rm_cmd(&c.name)),
        );
    }
}

/// The labels of the web process's containers, so `davit status` finds every process of a
/// release the same way (the color's own labels come from the strategy).
pub fn web_label(set: &AppSet) -> Option<String> {
    set.web().map(|w| format!("{PROCESS_LABEL}={}", w.name))
}

/// How long each singleton was not running during a move: from the old container's finish to
/// the new one's start, as Docker recorded them.
pub async fn singleton_gaps(
    exec: &dyn Executor,
    set: &AppSet,
    rel: &ProcRelease<'_>,
    before: &ProcObserved,
) -> Vec<(String, Duration)> {
    let mut out = Vec::new();
    for p in set.others().filter(|p| p.singleton) {
        let Some(old) = old_of(before, rel, &p.name).find(|c| c.running) else {
            continue;
        };
        let new = container_name(rel, &p.name, 1);
        let c = Cmd::new("docker")
            .args([
                "inspect",
                "--format",
                "{{.State.FinishedAt}} {{.State.StartedAt}}",
            ])
            .args([old.name.as_str(), new.as_str()])
            .timeout(Duration::from_secs(30));
        let Ok(o) = exec.run(&c).await else { continue };
        let lines: Vec<&str> = o.stdout.lines().collect();
        if let [old_line, new_line] = lines.as_slice()
            && let (Some(finished), Some(started)) = (
                old_line.split_whitespace().next(),
                new_line.split_whitespace().nth(1),
            )
            && let Some(gap) = gap(finished, started)
        {
            out.push((p.name.clone(), gap));
        }
    }
    out
}

/// The singletons' gaps of a move that succeeded, on the timeline ("celery-beat was not running
/// for 0.4s"): the price of never running twice, said rather than hidden.
pub(crate) async fn report_gaps(
    exec: &dyn Executor,
    t: &Target,
    rel: &NewRelease,
    before: Option<&ProcObserved>,
    observer: &dyn davit_exec::Observer,
) {
    let (Some(set), Some(before)) = (&t.processes, before) else {
        return;
    };
    let env_file = crate::env_path(t, &rel.id);
    for (p, gap) in singleton_gaps(exec, set, &of(t, rel, &env_file), before).await {
        observer.event(&davit_exec::Event::Note {
            text: &format!(
                "{p} was not running for {:.1}s (the old one stopped before the new one started: never two at once)",
                gap.as_secs_f64()
            ),
        });
    }
}

/// `started - finished`, both RFC 3339 as Docker prints them; None when unparsable or negative
/// (which would mean two were running at once).
pub fn gap(finished: &str, started: &str) -> Option<Duration> {
    let f = chrono::DateTime::parse_from_rfc3339(finished).ok()?;
    let s = chrono::DateTime::parse_from_rfc3339(started).ok()?;
    (s - f).to_std().ok()
}

/// What each process of an environment runs, for `davit status` and the ledger.
pub fn versions(seen: &ProcObserved) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for c in seen.containers.iter().filter(|c| c.running) {
        match out
            .iter_mut()
            .find(|(p, v, _)| *p == c.process && *v == c.version)
        {
            Some(e) => e.2 += 1,
            None => out.push((c.process.clone(), c.version.clone(), 1)),
        }
    }
    out.sort();
    out
}

/// A strategy's plan with processes: the network and volumes the release's processes use,
/// before anything else (the migration hook runs on that network). Nothing without processes.
pub(crate) fn push_network(plan: &mut Plan, t: &Target, obs: &Observed) {
    if let Some(set) = &t.processes {
        let seen = obs.procs.as_ref().is_some_and(|p| p.network_exists);
        plan_network_and_volumes(plan, set, &process_volumes(set), seen);
    }
}

/// The strategy's web steps (`web`) with every other process of `rel` moved around them
/// ([`plan_release`]); just the web steps without processes.
pub(crate) fn around_web(
    plan: &mut Plan,
    t: &Target,
    rel: &NewRelease,
    obs: &Observed,
    web: impl FnOnce(&mut Plan),
) {
    let Some(set) = &t.processes else {
        return web(plan);
    };
    let env_file = crate::env_path(t, &rel.id);
    let seen = obs.procs.clone().unwrap_or_default();
    plan_release(plan, set, &of(t, rel, &env_file), &seen, web);
}

/// The old releases' stopped process containers removed, at the end of a plan that moved
/// every process to `rel` (nothing fallible comes after it but the ledger record).
pub(crate) fn push_cleanup(plan: &mut Plan, t: &Target, rel: &NewRelease, obs: &Observed) {
    if let Some(set) = &t.processes {
        let env_file = crate::env_path(t, &rel.id);
        let seen = obs.procs.clone().unwrap_or_default();
        plan_cleanup(plan, &of(t, rel, &env_file), &seen, set);
    }
}

fn of<'a>(t: &'a Target, rel: &'a NewRelease, env_file: &'a Path) -> ProcRelease<'a> {
    ProcRelease {
        app: &t.app,
        environment: &t.environment,
        id: &rel.id,
        version: &rel.version,
        image: &rel.image,
        env_file,
    }
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
