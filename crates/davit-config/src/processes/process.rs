//! One process of the release resolved: its `[processes.<name>]` table merged over its compose
//! service, defaults filled in, and the rules a process must keep checked.
//!
//! Each concern (command, singleton, replicas, stop signal, grace, mounts) is a function of its
//! own because each merges the two sources with its own precedence and its own problem text;
//! [`process`] calls them in the order their problems are reported.

use super::Resolve;
use super::healthcheck::health_cmd;
use super::mounts::Mounts;
use super::rules::{DEFAULT_GRACE, Problems, SIGNALS, looks_like_scheduler, readiness, signal};
use super::spec::{Mount, ProcessSpec, Readiness};
use super::tables::ProcessConfig;
use crate::Config;
use crate::compose_file::{self, ComposeService};
use davit_core::validate;

/// The process `name`; `s` is its compose service, if the compose file has one.
pub(super) fn process(
    cfg: &Config,
    name: &str,
    s: Option<&ComposeService>,
    web: bool,
    mounts: &Mounts,
    r: &Resolve,
    p: &mut Problems,
) -> ProcessSpec {
    let c = cfg.processes.get(name).cloned().unwrap_or_default();
    let field = format!("processes.{name}");
    p.check(validate::name(&format!("process name {name:?}"), name));
    let command = command(&c, s, name, r, p);
    if !web && command.is_none() && s.is_none() {
        p.push(format!(
            "{field} has no command: add command = [...] (a process other than web needs its own)"
        ));
    }
    let healthcheck = s
        .and_then(|s| s.healthcheck.as_ref())
        .and_then(|h| health_cmd(p, name, h));
    let singleton = singleton(&c, name, &field, web, command.as_deref(), p);
    let replicas = replicas(&c, s);
    check_placement(&c, &field, web, singleton, replicas, p);
    let stop_signal = stop_signal(&c, s, &field, p);
    let stop_grace_secs = stop_grace_secs(&c, s, name, p);
    let mounts = process_mounts(&c, s, name, &field, mounts, p);
    let readiness = if web {
        Readiness::Http
    } else {
        readiness(c.ready.as_ref(), healthcheck.is_some())
    };
    // `ready = { healthcheck = true }` without a compose health check relies on the image's
    // own HEALTHCHECK; a container with none fails readiness loudly in the planner.
    ProcessSpec {
        name: name.to_string(),
        web,
        command,
        replicas: if singleton { 1 } else { replicas },
        singleton,
        readiness,
        healthcheck,
        stop_signal,
        stop_grace_secs,
        mounts,
    }
}

/// argv: davit.toml's, else the compose service's with `${VAR}` expanded; `None` runs the
/// image's own command.
fn command(
    c: &ProcessConfig,
    s: Option<&ComposeService>,
    name: &str,
    r: &Resolve,
    p: &mut Problems,
) -> Option<Vec<String>> {
    match (&c.command, s.and_then(|s| s.command.as_ref())) {
        (Some(cmd), _) => Some(cmd.clone()),
        (None, Some(sc)) => match sc.argv().and_then(|a| {
            a.iter()
                .map(|w| compose_file::interpolate(w, r.lookup))
                .collect::<Result<Vec<_>, _>>()
        }) {
            Ok(a) => Some(a),
            Err(e) => {
                p.push(format!("compose service {name}: command: {e}"));
                None
            }
        },
        (None, None) => None,
    }
}

/// Whether the process must never run twice. A scheduler that does not say is a problem rather
/// than a guess: guessing wrong either fires every job twice or stops a worker for nothing.
fn singleton(
    c: &ProcessConfig,
    name: &str,
    field: &str,
    web: bool,
    command: Option<&[String]>,
    p: &mut Problems,
) -> bool {
    match c.singleton {
        Some(v) => v,
        None if !web && looks_like_scheduler(name, command) => {
            p.push(format!(
                "{field} looks like a scheduler ({}) and does not say whether it may run twice at once\nhint: add [processes.{name}] singleton = true (stopped before its replacement starts, so it never fires twice) or singleton = false",
                command.map(|c| c.join(" ")).unwrap_or_else(|| name.to_string())
            ));
            false
        }
        None => false,
    }
}

/// Containers of the process: davit.toml's, else the compose file's `deploy.replicas`, else 1.
fn replicas(c: &ProcessConfig, s: Option<&ComposeService>) -> u32 {
    c.replicas
        .or_else(|| s.and_then(|s| s.deploy.as_ref()).and_then(|d| d.replicas))
        .unwrap_or(1)
}

/// How many of the process may run at once: a singleton once, web once per color.
fn check_placement(
    c: &ProcessConfig,
    field: &str,
    web: bool,
    singleton: bool,
    replicas: u32,
    p: &mut Problems,
) {
    if singleton && replicas > 1 {
        p.push(format!(
            "{field}: a singleton runs once; remove replicas = {replicas} or singleton = true"
        ));
    }
    if web && replicas > 1 {
        p.push(format!(
            "{field}: the web process runs one container per color; remove replicas"
        ));
    }
    if web && c.singleton == Some(true) {
        p.push(format!("{field}: the web process cannot be a singleton (blue-green runs the new one beside the old)"));
    }
}

/// The signal that stops an old container: davit.toml's, else the compose file's, else SIGTERM.
fn stop_signal(
    c: &ProcessConfig,
    s: Option<&ComposeService>,
    field: &str,
    p: &mut Problems,
) -> String {
    match c
        .stop_signal
        .clone()
        .or_else(|| s.and_then(|s| s.stop_signal.clone()))
    {
        Some(sig) => signal(&sig).unwrap_or_else(|| {
            p.push(format!(
                "{field}: stop signal {sig:?} is not one of {}",
                SIGNALS.join(", ")
            ));
            "SIGTERM".into()
        }),
        None => "SIGTERM".into(),
    }
}

/// Seconds between the stop signal and the kill: davit.toml's, else the compose file's
/// `stop_grace_period`, else the default.
fn stop_grace_secs(
    c: &ProcessConfig,
    s: Option<&ComposeService>,
    name: &str,
    p: &mut Problems,
) -> u64 {
    match (
        c.stop_grace_secs,
        s.and_then(|s| s.stop_grace_period.as_deref()),
    ) {
        (Some(g), _) => g,
        (None, Some(g)) => match compose_file::duration(g) {
            Ok(d) => d.as_secs(),
            Err(e) => {
                p.push(format!("compose service {name}: stop_grace_period: {e}"));
                DEFAULT_GRACE
            }
        },
        (None, None) => DEFAULT_GRACE,
    }
}

/// The process's mounts: davit.toml's `volumes` when given (they replace the compose service's
/// list, they are not merged with it), else the compose service's.
fn process_mounts(
    c: &ProcessConfig,
    s: Option<&ComposeService>,
    name: &str,
    field: &str,
    mounts: &Mounts,
    p: &mut Problems,
) -> Vec<Mount> {
    let mut out = Vec::new();
    match &c.volumes {
        Some(vs) => {
            for (i, v) in vs.iter().enumerate() {
                out.extend(mounts.mount(p, &format!("{field}.volumes[{i}]"), v));
            }
        }
        None => {
            for v in s.map(|s| s.volumes.as_slice()).unwrap_or_default() {
                out.extend(mounts.compose_mount(p, &format!("compose service {name} volumes"), v));
            }
        }
    }
    out
}
