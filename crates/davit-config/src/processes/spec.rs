//! What resolution produces and the planners read: one [`AppSet`] per environment, its
//! processes and services with every default filled in and every value checked.
//!
//! Separate from the tables in davit.toml because the two differ on purpose: a table says only
//! what the team wrote (every field optional, compose values not yet merged), a spec says
//! everything a planner needs and nothing it must still decide.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a new non-web container is known to be ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// The web process: davit's HTTP health gate.
    Http,
    Healthcheck {
        timeout_secs: u64,
    },
    Command {
        run: Vec<String>,
        timeout_secs: u64,
    },
    UpFor {
        secs: u64,
    },
}

/// A Docker health check davit sets on the container (from the compose file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCmd {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`, as Docker takes it.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

/// A mount of a named volume or a host folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountSource {
    /// The Docker volume's name (already made per environment).
    Volume(String),
    Bind(PathBuf),
}

impl Mount {
    /// `--mount` value for `docker run`.
    pub fn docker_arg(&self) -> String {
        let (kind, src) = match &self.source {
            MountSource::Volume(v) => ("volume", v.clone()),
            MountSource::Bind(p) => ("bind", p.display().to_string()),
        };
        let ro = if self.read_only { ",readonly" } else { "" };
        format!("type={kind},source={src},target={}{ro}", self.target)
    }
}

/// One process of a release, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessSpec {
    pub name: String,
    pub web: bool,
    pub command: Option<Vec<String>>,
    pub replicas: u32,
    pub singleton: bool,
    pub readiness: Readiness,
    pub healthcheck: Option<HealthCmd>,
    pub stop_signal: String,
    pub stop_grace_secs: u64,
    pub mounts: Vec<Mount>,
}

/// An environment value of a service: plain, or a template with `${VAR}` expanded from davit's
/// environment when the service starts (it may carry a secret, so it is never expanded into
/// argv, records or snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvValue {
    Plain(String),
    Template(String),
}

/// One service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, EnvValue>,
    pub secret_env: Vec<String>,
    pub mounts: Vec<Mount>,
    pub readiness: Readiness,
    pub healthcheck: Option<HealthCmd>,
    pub stop_signal: String,
    pub stop_grace_secs: u64,
}

/// Everything that runs in one environment: the release's processes (web first), the services,
/// the shared network and the named volumes (created when missing, never deleted by davit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSet {
    pub network: String,
    pub processes: Vec<ProcessSpec>,
    pub services: Vec<ServiceSpec>,
    pub volumes: Vec<String>,
}

impl AppSet {
    pub fn web(&self) -> Option<&ProcessSpec> {
        self.processes.iter().find(|p| p.web)
    }
    /// The processes other than web: what the process planner moves.
    pub fn others(&self) -> impl Iterator<Item = &ProcessSpec> {
        self.processes.iter().filter(|p| !p.web)
    }
}
