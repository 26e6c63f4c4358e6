//! The `[processes.*]`, `[services.*]` and `[volumes.*]` tables as a team writes them, and the
//! checks that need nothing but the TOML.
//!
//! Kept apart from resolution because these checks run when the file is read (with the rest of
//! the config's validation, so a typo fails `davit check`), while resolution needs an environment
//! and the compose file and runs only when a deploy asks for the [`AppSet`](super::AppSet).

use super::rules::{Problems, SIGNALS, signal};
use crate::Config;
use davit_core::validate;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[processes.<name>]`: a process run from the release's image. Every field is optional so
/// that a process read from `compose_file` can be refined here (readiness, singleton).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The HTTP process behind the proxy (blue-green as before). Implied for a process named
    /// `web`, or the one app service that publishes ports in the compose file.
    #[serde(default)]
    pub web: Option<bool>,
    /// argv; default the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Containers of this process (not for singletons or web).
    #[serde(default)]
    pub replicas: Option<u32>,
    /// How davit knows a new container is ready (non-web processes).
    #[serde(default)]
    pub ready: Option<ReadyConfig>,
    /// Signal sent to stop an old container (Celery: SIGTERM is its warm shutdown).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Seconds an old container has to finish after its stop signal before it is killed.
    #[serde(default)]
    pub stop_grace_secs: Option<u64>,
    /// Never two at once (a scheduler such as Celery beat): the old one stops before the new
    /// one starts, and the gap is reported.
    #[serde(default)]
    pub singleton: Option<bool>,
    /// `volume:/path[:ro]` or `/host/path:/path[:ro]`.
    #[serde(default)]
    pub volumes: Option<Vec<String>>,
}

/// `ready = { healthcheck = true }`, `{ command = [...] }` or `{ up_secs = 5 }`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReadyConfig {
    /// The container's Docker health check (from the image or the compose file) says healthy.
    #[serde(default)]
    pub healthcheck: bool,
    /// This command, run in the new container, exits 0.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The container is still running this many seconds after it started.
    #[serde(default)]
    pub up_secs: Option<u64>,
    /// How long to wait for readiness before the deploy fails and reverts.
    #[serde(default = "default_ready_timeout")]
    pub timeout_secs: u64,
}

pub(super) fn default_ready_timeout() -> u64 {
    120
}

/// `[services.<name>]`: a database, cache or broker davit starts once and keeps across releases.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub image: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Plain environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables taken from davit's environment at `services up`, passed through a 0600 file.
    #[serde(default)]
    pub secret_env: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub ready: Option<ReadyConfig>,
}

/// `[volumes.<name>]`: a named volume; `name` uses an existing Docker volume as is.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    #[serde(default)]
    pub name: Option<String>,
}

/// Checks of `[processes]`, `[services]` and `[volumes]` that need nothing but the TOML; run by
/// `Config::parse` with the rest of the validation.
pub(crate) fn check_tables(cfg: &Config, p: &mut Vec<String>) {
    let mut probs = Problems::default();
    for (name, proc_) in &cfg.processes {
        probs.check(validate::name(&format!("processes key {name:?}"), name));
        if let Some(s) = &proc_.stop_signal
            && signal(s).is_none()
        {
            probs.push(format!(
                "processes.{name}.stop_signal = {s:?} is not a signal davit knows: use one of {}",
                SIGNALS.join(", ")
            ));
        }
        if let Some(r) = &proc_.ready {
            ready_shape(&mut probs, &format!("processes.{name}.ready"), r);
        }
        if proc_.replicas == Some(0) {
            probs.push(format!(
                "processes.{name}.replicas = 0: use 1 or more, or remove the process"
            ));
        }
    }
    for (name, s) in &cfg.services {
        probs.check(validate::name(&format!("services key {name:?}"), name));
        probs.check(validate::image_ref(
            &format!("services.{name}.image"),
            &s.image,
        ));
        if cfg.processes.contains_key(name) {
            probs.push(format!(
                "{name:?} is both a process and a service: rename one (processes run the release's image, services their own)"
            ));
        }
        for (i, v) in s.secret_env.iter().enumerate() {
            probs.check(validate::env_name(
                &format!("services.{name}.secret_env[{i}]"),
                v,
            ));
        }
        if let Some(r) = &s.ready {
            ready_shape(&mut probs, &format!("services.{name}.ready"), r);
        }
    }
    for name in cfg.volumes.keys() {
        probs.check(validate::name(&format!("volumes key {name:?}"), name));
    }
    p.extend(probs.0);
}

fn ready_shape(p: &mut Problems, field: &str, r: &ReadyConfig) {
    let n = usize::from(r.healthcheck)
        + usize::from(r.command.is_some())
        + usize::from(r.up_secs.is_some());
    if n != 1 {
        p.push(format!(
            "{field} must say one way to know the process is ready: {{ healthcheck = true }}, {{ command = [...] }} or {{ up_secs = 5 }}"
        ));
    }
    if r.command.as_ref().is_some_and(Vec::is_empty) {
        p.push(format!("{field}.command is empty: give argv, e.g. [\"celery\", \"-A\", \"app\", \"inspect\", \"ping\"]"));
    }
}
