//! Blue-green behind nginx: start the new color beside the live one, gate it on its own port,
//! switch nginx atomically, prove through the public path that the new version answers, and keep
//! the old color running so a rollback is one more switch.

use crate::docker;
use crate::journal::{self, Phase};
use crate::nginx::{self, Files, LiveSite};
use crate::target::{BluGreenPorts, Target, url_host};
use crate::{NewRelease, Observed};
use davit_core::{Cmd, FileBody, Plan, Probe, ProxyDrain, Step};
use std::time::Duration;

pub const COLORS: [&str; 2] = ["blue", "green"];

pub fn other(color: &str) -> &'static str {
    if color == "blue" { "green" } else { "blue" }
}

pub fn port_of(p: BluGreenPorts, color: &str) -> u16 {
    if color == "blue" { p.blue } else { p.green }
}

pub fn container_name(t: &Target, color: &str) -> String {
    format!("{}-{color}", t.prefix())
}

/// The probe of one color on its own port: the health gate.
pub fn direct_probe(t: &Target, p: BluGreenPorts, color: &str, version: &str) -> Probe {
    let base = format!("http://{}:{}", url_host(&t.bind), port_of(p, color));
    crate::health::probe(t, &base, version)
}

/// The probe through nginx: proves the switch took effect for new connections.
pub fn proxy_probe(t: &Target, p: BluGreenPorts, version: &str) -> Probe {
    let base = format!("http://{}:{}", url_host(&t.proxy.listen), p.public);
    Probe {
        interval: Duration::from_millis(100),
        deadline: Duration::from_secs(15),
        ..crate::health::probe(t, &base, version)
    }
}

/// Wait until no nginx worker of an earlier configuration may still send a request to a color
/// about to be stopped or replaced (see [`ProxyDrain`]): the one nginx left at the last reload
/// (this run's, or that of a run killed right after it, T42, T49). A proxied request lasts at
/// most the read timeout; past 60 s the plan carries on and warns, as a websocket can outlive
/// any wait.
pub fn drain(t: &Target) -> Step {
    Step::WaitDrained(ProxyDrain {
        pid_file: Files::of(t).pid(),
        workers: nginx::WORKER_PROCESSES,
        interval: Duration::from_millis(50),
        deadline: Duration::from_secs(t.proxy.read_timeout_secs.clamp(1, 60)),
    })
}

fn push_drain(plan: &mut Plan, t: &Target, color: &str) {
    plan.push_best_effort(
        format!("let nginx workers of an earlier configuration finish what they send to {color}"),
        drain(t),
    );
}

/// The color a new release goes into: the one not live (blue on a first deploy).
pub fn idle_color(obs: &Observed) -> &'static str {
    obs.live.as_ref().map(|l| other(&l.color)).unwrap_or("blue")
}

/// Deploy a new release into the idle color. With processes, every other process moves around
/// the web's steps (see [`crate::processes`]), all or nothing.
pub fn plan_deploy(t: &Target, p: BluGreenPorts, rel: &NewRelease, obs: &Observed) -> Plan {
    plan_start(t, p, rel, obs, true)
}

/// A release started in the idle color; `hooks` false for a rollback that re-creates an old
/// release (its migrations and deploy hooks ran when it was deployed, never again on the old
/// image).
fn plan_start(t: &Target, p: BluGreenPorts, rel: &NewRelease, obs: &Observed, hooks: bool) -> Plan {
    let color = idle_color(obs);
    let mut plan = Plan::new(format!(
        "blue-green deploy of {} ({}) to {} as {color}",
        rel.version, rel.image, t.environment
    ));
    let files = Files::of(t);
    prepare(&mut plan, &files);
    crate::processes::push_network(&mut plan, t, obs);
    crate::push_env(&mut plan, t, rel);
    if hooks {
        crate::push_pre_hooks(&mut plan, t, rel);
    }
    crate::processes::around_web(&mut plan, t, rel, obs, |plan| {
        if obs.seen.nginx_running() {
            push_drain(plan, t, color);
        }
        start_color(plan, t, p, color, rel);
        plan.push(
            format!("health gate: {color} must answer healthy on its own port"),
            Step::WaitHttp(direct_probe(t, p, color, &rel.version)),
        );
        push_switch(plan, t, p, &files, color, &rel.id, &rel.version, obs);
    });
    if hooks {
        crate::push_post_hooks(&mut plan, t, rel);
    }
    crate::processes::push_cleanup(&mut plan, t, rel, obs);
    plan
}

/// Start (or restart) a color from an image.
fn start_color(plan: &mut Plan, t: &Target, p: BluGreenPorts, color: &str, rel: &NewRelease) {
    let name = container_name(t, color);
    plan.push(
        format!("remove what is left in the idle {color} slot"),
        Step::ExecIgnoringFailure(docker::remove(&name)),
    );
    let labels = docker::labels(t, &rel.id, &rel.version, Some(color));
    plan.push_with_undo(
        format!(
            "start {color} with {} on {}:{}",
            rel.version,
            t.bind,
            port_of(p, color)
        ),
        Step::Exec(docker::run_color(
            t,
            &name,
            &rel.image,
            &crate::env_path(t, &rel.id),
            port_of(p, color),
            &labels,
        )),
        // After a switch that did not verify, nginx is back on the other color and its workers
        // of the switch finish first.
        vec![drain(t), Step::ExecIgnoringFailure(docker::remove(&name))],
    );
}

/// The image is already on the host: the pull is the host's part of the plan
/// ([`crate::strategy::Strategy::pulls_image`]).
fn prepare(plan: &mut Plan, files: &Files) {
    plan.push(
        "prepare the state folders",
        Step::MkDir {
            path: files.dir.join("tmp"),
            mode: 0o755,
        },
    );
}

/// Make `color` live: candidate, `nginx -t`, rename, reload, verify through the proxy.
/// Every step after the rename has the rename's undo behind it: restore the previous site file
/// and reload, so a switch that does not verify puts traffic back where it was.
#[allow(clippy::too_many_arguments)]
pub fn push_switch(
    plan: &mut Plan,
    t: &Target,
    p: BluGreenPorts,
    files: &Files,
    color: &str,
    release: &str,
    version: &str,
    obs: &Observed,
) {
    plan.push(
        "write the nginx main configuration",
        Step::WriteFile {
            path: files.main(),
            body: FileBody::Plain(files.main_conf()),
            mode: 0o644,
        },
    );
    plan.push(
        "write the candidate main configuration (includes the candidate site file)",
        Step::WriteFile {
            path: files.candidate_main(),
            body: FileBody::Plain(files.candidate_main_conf()),
            mode: 0o644,
        },
    );
    if obs.live.is_some() {
        plan.push(
            "keep a copy of the live site configuration",
            Step::Copy {
                from: files.site(),
                to: files.previous_site(),
            },
        );
    }
    plan.push_with_undo(
        format!("write the candidate site configuration pointing at {color}"),
        Step::WriteFile {
            path: files.candidate_site(),
            body: FileBody::Plain(nginx::site_conf_with(
                t,
                p.public,
                color,
                release,
                version,
                port_of(p, color),
                &obs.volumes,
            )),
            mode: 0o644,
        },
        vec![Step::RemoveFile {
            path: files.candidate_site(),
        }],
    );
    plan.push(
        "test the candidate with nginx -t (the live file is untouched if it fails)",
        Step::Exec(files.test_candidate().timeout(Duration::from_secs(30))),
    );
    let restore = if obs.live.is_some() {
        vec![
            Step::Copy {
                from: files.previous_site(),
                to: files.site(),
            },
            Step::ExecIgnoringFailure(files.reload().timeout(Duration::from_secs(30))),
        ]
    } else {
        vec![
            Step::ExecIgnoringFailure(files.stop().timeout(Duration::from_secs(30))),
            Step::RemoveFile { path: files.site() },
        ]
    };
    // Write-ahead: a run killed from here on leaves a record of where it was going, which the
    // next run finishes or reverts from what serves (see [`journal`]).
    let intent = journal::Entry::new(
        Phase::Intent,
        LiveSite {
            color: color.to_string(),
            release: release.to_string(),
            version: version.to_string(),
        },
        obs.live.clone(),
    );
    plan.push_with_undo(
        format!("write-ahead: record the switch to {color} ({version}) before making it"),
        Step::AppendLine {
            path: journal::path(t),
            line: intent.line(),
        },
        vec![Step::AppendLine {
            path: journal::path(t),
            line: intent.with_phase(Phase::Reverted).line(),
        }],
    );
    plan.push_with_undo(
        "switch: rename the candidate over the live site file",
        Step::Rename {
            from: files.candidate_site(),
            to: files.site(),
        },
        restore,
    );
    let apply: Cmd = if obs.seen.nginx_running() {
        files.reload()
    } else {
        files.start()
    };
    plan.push(
        if obs.seen.nginx_running() {
            "reload nginx (graceful: in-flight requests finish on the old color)"
        } else {
            "start nginx"
        },
        Step::Exec(apply.timeout(Duration::from_secs(30))),
    );
    plan.push(
        format!("verify through the public path that {version} answers"),
        Step::WaitHttp(proxy_probe(t, p, version)),
    );
    plan.push_best_effort(
        format!("record the switch to {color} ({version}) as done"),
        Step::AppendLine {
            path: journal::path(t),
            line: intent.with_phase(Phase::Done).line(),
        },
    );
}

/// Roll back by switching to a color that still runs (or can be started) with the target release.
/// Every other process moves back around the switch; no hook runs.
pub fn plan_switch_back(
    t: &Target,
    p: BluGreenPorts,
    color: &str,
    rel: &NewRelease,
    start_stopped: bool,
    bad_color: Option<&str>,
    obs: &Observed,
) -> Plan {
    let mut plan = Plan::new(format!(
        "blue-green rollback of {} to {} in {color}",
        t.environment, rel.version
    ));
    let files = Files::of(t);
    let name = container_name(t, color);
    crate::processes::push_network(&mut plan, t, obs);
    crate::processes::around_web(&mut plan, t, rel, obs, |plan| {
        if start_stopped {
            plan.push_with_undo(
                format!("start the stopped {color} container"),
                Step::Exec(
                    Cmd::new("docker")
                        .args(["start", &name])
                        .timeout(Duration::from_secs(60)),
                ),
                vec![Step::ExecIgnoringFailure(docker::stop(&name))],
            );
        }
        // The kept color was serving until the switch away from it: one good answer (checked
        // at once, then every 100ms) is enough to trust it again, and keeps restore time under
        // a second. A container that was stopped and just started gets the full health gate.
        let mut gate = direct_probe(t, p, color, &rel.version);
        if !start_stopped {
            gate.consecutive = 1;
            gate.interval = Duration::from_millis(100);
        }
        plan.push(
            format!(
                "health gate: {color} ({}) must still be healthy",
                rel.version
            ),
            Step::WaitHttp(gate),
        );
        push_switch(plan, t, p, &files, color, &rel.id, &rel.version, obs);
    });
    stop_bad(&mut plan, t, bad_color);
    crate::processes::push_cleanup(&mut plan, t, rel, obs);
    plan
}

/// The rolled-back color stops once everything else moved back (a failure before this point
/// undoes the switch, back to that color, which must then still run).
fn stop_bad(plan: &mut Plan, t: &Target, bad_color: Option<&str>) {
    if let Some(bad) = bad_color {
        push_drain(plan, t, bad);
        plan.push(
            format!("stop the rolled-back {bad} container (kept for its logs)"),
            Step::ExecIgnoringFailure(docker::stop(&container_name(t, bad))),
        );
    }
}

/// Re-create a color from a previous release's image when its container is gone: its env file
/// again, no migration and no deploy hook.
pub fn plan_redeploy(
    t: &Target,
    p: BluGreenPorts,
    rel: &NewRelease,
    bad_color: Option<&str>,
    obs: &Observed,
) -> Plan {
    let mut plan = plan_start(t, p, rel, obs, false);
    plan.title = format!(
        "blue-green rollback of {} to {} (re-created from its image)",
        t.environment, rel.version
    );
    stop_bad(&mut plan, t, bad_color);
    plan
}
