//! A release as a set of processes, and the services, network and volumes around it.
//!
//! Teams run more than one web container: a Celery worker and beat beside gunicorn, PostgreSQL and
//! Redis, a media volume the web and the worker share. This module is that description: what a
//! team writes in davit.toml (`[processes.*]`, `[services.*]`, `[volumes.*]`) or already has in
//! its own `compose_file`, resolved into one [`AppSet`] per environment that the planners read.
//! Resolution is where every rule is checked (one web process, a scheduler marked singleton,
//! volumes declared, stop signals real), so a plan never starts from a half-understood stack.

use crate::compose_file::{self, ComposeFile, ComposeService, VolumeEntry};
use crate::{Config, ConfigError};
use davit_core::validate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

fn default_ready_timeout() -> u64 {
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

/// How a new non-web container is known to be ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthCmd {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`, as Docker takes it.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

/// A mount of a named volume or a host folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvValue {
    Plain(String),
    Template(String),
}

/// One service, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

const SIGNALS: [&str; 9] = [
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGSTOP",
];
const DEFAULT_GRACE: u64 = 30;
const DEFAULT_UP_SECS: u64 = 5;

/// `SIGTERM` from `SIGTERM`, `TERM` or `15`.
fn signal(v: &str) -> Option<String> {
    let up = v.trim().to_ascii_uppercase();
    let named = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if SIGNALS.contains(&named.as_str()) {
        return Some(named);
    }
    match v.trim() {
        "15" => Some("SIGTERM".into()),
        "2" => Some("SIGINT".into()),
        "3" => Some("SIGQUIT".into()),
        "1" => Some("SIGHUP".into()),
        "9" => Some("SIGKILL".into()),
        _ => None,
    }
}

/// Words that name a scheduler: running two of them fires every job twice.
fn looks_like_scheduler(name: &str, command: Option<&[String]>) -> bool {
    let words = ["beat", "scheduler", "clock", "cron"];
    let hit = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| words.contains(&w.to_ascii_lowercase().as_str()))
    };
    hit(name) || command.is_some_and(|c| c.iter().any(|a| hit(a)))
}

/// Docker's name for a volume in an environment: `<app>-<env>_<volume>`, so staging and
/// production on one host never share data by accident.
pub fn volume_name(app: &str, env: &str, volume: &str) -> String {
    format!("{app}-{env}_{volume}")
}

/// What resolution needs besides the config: the environment name and variable lookup (for
/// `${VAR}` in the compose file; tests pass their own).
pub struct Resolve<'a> {
    pub env_name: &'a str,
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Config {
    /// Whether this config describes more than the one web container davit always ran.
    pub fn has_processes(&self) -> bool {
        self.compose_file.is_some() || !self.processes.is_empty() || !self.services.is_empty()
    }

    /// The compose file named by `compose_file`, read and parsed.
    pub fn read_compose_file(&self) -> Result<Option<ComposeFile>, ConfigError> {
        let Some(rel) = &self.compose_file else {
            return Ok(None);
        };
        let path = self.base_dir.join(rel);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        ComposeFile::parse(&text)
            .map(Some)
            .map_err(|message| ConfigError::Parse {
                path,
                message: format!(
                    "{message}\nhint: compose_file must be a Compose file (services:, volumes:, networks:)"
                ),
            })
    }

    /// The environment's processes, services, network and volumes, every rule checked. Problems
    /// are collected, each with its fix, like the rest of the config's validation.
    pub fn app_set(&self, r: &Resolve) -> Result<AppSet, ConfigError> {
        let env = self.environment(r.env_name)?;
        let compose = self.read_compose_file()?;
        let mut p = Problems::default();
        let set = resolve(self, env.network.as_deref(), compose.as_ref(), r, &mut p);
        if p.0.is_empty() {
            Ok(set)
        } else {
            Err(ConfigError::Invalid {
                path: self.origin.clone(),
                problems: p.0,
            })
        }
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }
    fn check(&mut self, r: Result<(), validate::Invalid>) {
        if let Err(e) = r {
            self.0.push(e.to_string());
        }
    }
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

fn readiness(r: Option<&ReadyConfig>, compose_health: bool) -> Readiness {
    match r {
        Some(r) if r.healthcheck => Readiness::Healthcheck {
            timeout_secs: r.timeout_secs,
        },
        Some(ReadyConfig {
            command: Some(c),
            timeout_secs,
            ..
        }) => Readiness::Command {
            run: c.clone(),
            timeout_secs: *timeout_secs,
        },
        Some(ReadyConfig {
            up_secs: Some(s), ..
        }) => Readiness::UpFor { secs: *s },
        _ if compose_health => Readiness::Healthcheck {
            timeout_secs: default_ready_timeout(),
        },
        _ => Readiness::UpFor {
            secs: DEFAULT_UP_SECS,
        },
    }
}

fn is_app_service(cfg: &Config, name: &str, s: &ComposeService, r: &Resolve) -> bool {
    if cfg.processes.contains_key(name) {
        return true;
    }
    if cfg.services.contains_key(name) {
        return false;
    }
    // The image decides when there is one (a service may be built too, as the example's
    // PostgreSQL is); otherwise a service built from the repository is the app.
    match s.image.as_deref() {
        Some(i) => {
            let i = compose_file::interpolate(i, r.lookup).unwrap_or_else(|_| i.to_string());
            let i = i.as_str();
            let repo = i
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map_or(i, |(r, _)| r);
            repo == cfg.image.name
        }
        None => s.build.is_some(),
    }
}

fn resolve(
    cfg: &Config,
    network: Option<&str>,
    compose: Option<&ComposeFile>,
    r: &Resolve,
    p: &mut Problems,
) -> AppSet {
    let app = &cfg.app.name;
    let env = r.env_name;
    let empty = ComposeFile::default();
    let cf = compose.unwrap_or(&empty);
    let compose_dir = cfg
        .compose_file
        .as_ref()
        .and_then(|f| cfg.base_dir.join(f).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| cfg.base_dir.clone());

    // Named volumes: davit.toml's and the compose file's, each with its Docker name.
    let mut volumes: BTreeMap<String, String> = BTreeMap::new();
    for (name, v) in &cfg.volumes {
        let docker = v
            .name
            .clone()
            .unwrap_or_else(|| volume_name(app, env, name));
        volumes.insert(name.clone(), docker);
    }
    for (name, v) in &cf.volumes {
        let explicit = v.as_ref().and_then(|v| v.name.clone());
        let external = v.as_ref().is_some_and(|v| v.external.is_some());
        let docker = match (explicit, external) {
            (Some(n), _) => n,
            (None, true) => name.clone(),
            (None, false) => volume_name(app, env, name),
        };
        volumes.entry(name.clone()).or_insert(docker);
    }
    let mount = |p: &mut Problems, field: &str, spec: &str| -> Option<Mount> {
        parse_mount(spec, &volumes, &compose_dir, &cfg.base_dir)
            .map_err(|e| p.push(format!("{field}: {e}")))
            .ok()
    };
    let compose_mount = |p: &mut Problems, field: &str, v: &VolumeEntry| -> Option<Mount> {
        match v {
            VolumeEntry::Short(s) => mount(p, field, s),
            VolumeEntry::Long(l) => match l.source.as_deref() {
                Some(src) if l.kind.as_deref() != Some("tmpfs") => {
                    let ro = if l.read_only { ":ro" } else { "" };
                    mount(p, field, &format!("{src}:{}{ro}", l.target))
                }
                _ => {
                    p.push(format!(
                        "{field}: only named volumes and bind mounts are supported (target {})",
                        l.target
                    ));
                    None
                }
            },
        }
    };

    // Processes: app services from the compose file, refined or added by [processes].
    let mut names: Vec<String> = cf
        .services
        .iter()
        .filter(|(n, s)| is_app_service(cfg, n, s, r))
        .map(|(n, _)| n.clone())
        .collect();
    for n in cfg.processes.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let with_ports: Vec<&String> = names
        .iter()
        .filter(|n| cf.services.get(*n).is_some_and(|s| !s.ports.is_empty()))
        .collect();
    let explicit_web: Vec<&String> = names
        .iter()
        .filter(|n| cfg.processes.get(*n).and_then(|c| c.web) == Some(true))
        .collect();
    let web_name: Option<String> = if !explicit_web.is_empty() {
        if explicit_web.len() > 1 {
            p.push(format!(
                "processes {} all say web = true: exactly one process serves HTTP behind the proxy",
                explicit_web
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(explicit_web[0].clone())
    } else if names.iter().any(|n| n == "web") {
        Some("web".into())
    } else if with_ports.len() == 1 {
        Some(with_ports[0].clone())
    } else if names.is_empty() {
        None
    } else {
        p.push(format!(
            "cannot tell which of the processes {} is the web process{}\nhint: add [processes.<name>] web = true for the one behind the proxy",
            names.join(", "),
            if with_ports.len() > 1 { " (several publish ports)" } else { " (none is named web or publishes ports)" }
        ));
        None
    };

    let mut processes = Vec::new();
    for name in &names {
        let c = cfg.processes.get(name).cloned().unwrap_or_default();
        let s = cf.services.get(name);
        let field = format!("processes.{name}");
        if let Err(e) = validate::name(&format!("process name {name:?}"), name) {
            p.push(e.to_string());
        }
        let web = web_name.as_deref() == Some(name.as_str());
        let command = match (&c.command, s.and_then(|s| s.command.as_ref())) {
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
        };
        if !web && command.is_none() && s.is_none() {
            p.push(format!(
                "{field} has no command: add command = [...] (a process other than web needs its own)"
            ));
        }
        let healthcheck = s
            .and_then(|s| s.healthcheck.as_ref())
            .and_then(|h| health_cmd(p, name, h));
        let singleton = match c.singleton {
            Some(v) => v,
            None if !web && looks_like_scheduler(name, command.as_deref()) => {
                p.push(format!(
                    "{field} looks like a scheduler ({}) and does not say whether it may run twice at once\nhint: add [processes.{name}] singleton = true (stopped before its replacement starts, so it never fires twice) or singleton = false",
                    command.as_ref().map(|c| c.join(" ")).unwrap_or_else(|| name.clone())
                ));
                false
            }
            None => false,
        };
        let replicas = c
            .replicas
            .or_else(|| s.and_then(|s| s.deploy.as_ref()).and_then(|d| d.replicas))
            .unwrap_or(1);
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
        let stop_signal = match c
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
        };
        let stop_grace_secs = match (
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
        };
        let mut mounts = Vec::new();
        match &c.volumes {
            Some(vs) => {
                for (i, v) in vs.iter().enumerate() {
                    mounts.extend(mount(p, &format!("{field}.volumes[{i}]"), v));
                }
            }
            None => {
                for v in s.map(|s| s.volumes.as_slice()).unwrap_or_default() {
                    mounts.extend(compose_mount(
                        p,
                        &format!("compose service {name} volumes"),
                        v,
                    ));
                }
            }
        }
        let readiness = if web {
            Readiness::Http
        } else {
            readiness(c.ready.as_ref(), healthcheck.is_some())
        };
        // `ready = { healthcheck = true }` without a compose health check relies on the image's
        // own HEALTHCHECK; a container with none fails readiness loudly in the planner.
        processes.push(ProcessSpec {
            name: name.clone(),
            web,
            command,
            replicas: if singleton { 1 } else { replicas },
            singleton,
            readiness,
            healthcheck,
            stop_signal,
            stop_grace_secs,
            mounts,
        });
    }
    processes.sort_by_key(|p| !p.web);

    // Services: the compose file's other services, and [services].
    let mut services = Vec::new();
    for (name, s) in &cf.services {
        if names.contains(name) || cfg.services.contains_key(name) {
            continue;
        }
        let Some(image) = s.image.as_deref() else {
            p.push(format!(
                "compose service {name} has no image and is not built from the app\nhint: give it an image, or add [processes.{name}] if it runs the release's image"
            ));
            continue;
        };
        let image = compose_file::interpolate(image, r.lookup).unwrap_or_else(|e| {
            p.push(format!("compose service {name}: image: {e}"));
            image.to_string()
        });
        p.check(validate::image_ref(
            &format!("compose service {name} image"),
            &image,
        ));
        let mut env = BTreeMap::new();
        for (k, v) in s
            .environment
            .as_ref()
            .map(|e| e.pairs())
            .unwrap_or_default()
        {
            if let Err(e) = validate::env_name(&format!("compose service {name} environment"), &k) {
                p.push(e.to_string());
            }
            let v = if compose_file::has_variables(&v) {
                EnvValue::Template(v)
            } else {
                EnvValue::Plain(v.replace("$$", "$"))
            };
            env.insert(k, v);
        }
        let command = match s.command.as_ref().map(|c| c.argv()) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                p.push(format!("compose service {name}: command: {e}"));
                None
            }
            None => None,
        };
        let healthcheck = s.healthcheck.as_ref().and_then(|h| health_cmd(p, name, h));
        let mut mounts = Vec::new();
        for v in &s.volumes {
            mounts.extend(compose_mount(
                p,
                &format!("compose service {name} volumes"),
                v,
            ));
        }
        services.push(ServiceSpec {
            name: name.clone(),
            image,
            command,
            env,
            secret_env: Vec::new(),
            mounts,
            readiness: if healthcheck.is_some() {
                Readiness::Healthcheck {
                    timeout_secs: default_ready_timeout(),
                }
            } else {
                Readiness::UpFor {
                    secs: DEFAULT_UP_SECS,
                }
            },
            healthcheck,
            stop_signal: s
                .stop_signal
                .as_deref()
                .and_then(signal)
                .unwrap_or_else(|| "SIGTERM".into()),
            stop_grace_secs: s
                .stop_grace_period
                .as_deref()
                .and_then(|g| compose_file::duration(g).ok())
                .map_or(DEFAULT_GRACE, |d| d.as_secs()),
        });
    }
    for (name, s) in &cfg.services {
        let mut mounts = Vec::new();
        for (i, v) in s.volumes.iter().enumerate() {
            mounts.extend(mount(p, &format!("services.{name}.volumes[{i}]"), v));
        }
        services.push(ServiceSpec {
            name: name.clone(),
            image: s.image.clone(),
            command: s.command.clone(),
            env: s
                .env
                .iter()
                .map(|(k, v)| (k.clone(), EnvValue::Plain(v.clone())))
                .collect(),
            secret_env: s.secret_env.clone(),
            mounts,
            readiness: readiness(s.ready.as_ref(), false),
            healthcheck: None,
            stop_signal: "SIGTERM".into(),
            stop_grace_secs: DEFAULT_GRACE,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));

    let network = network
        .map(str::to_string)
        .unwrap_or_else(|| format!("{app}-{env}"));
    p.check(validate::name("network", &network));
    let mut used: Vec<String> = processes
        .iter()
        .flat_map(|p| &p.mounts)
        .chain(services.iter().flat_map(|s| &s.mounts))
        .filter_map(|m| match &m.source {
            MountSource::Volume(v) => Some(v.clone()),
            MountSource::Bind(_) => None,
        })
        .collect();
    used.sort();
    used.dedup();
    AppSet {
        network,
        processes,
        services,
        volumes: used,
    }
}

fn health_cmd(
    p: &mut Problems,
    name: &str,
    h: &compose_file::ComposeHealthcheck,
) -> Option<HealthCmd> {
    if h.disable {
        return None;
    }
    let test = match h.test.as_ref()? {
        compose_file::StringOrList::String(s) => {
            vec!["CMD-SHELL".to_string(), s.replace("$$", "$")]
        }
        compose_file::StringOrList::List(l) => {
            let l: Vec<String> = l.iter().map(|s| s.replace("$$", "$")).collect();
            match l.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") => l,
                Some("NONE") => return None,
                _ => {
                    p.push(format!(
                        "compose service {name}: healthcheck test must start with CMD or CMD-SHELL"
                    ));
                    return None;
                }
            }
        }
    };
    let ms = |p: &mut Problems, v: Option<&str>, default: u64| -> u64 {
        match v.map(compose_file::duration) {
            None => default,
            Some(Ok(d)) => d.as_millis() as u64,
            Some(Err(e)) => {
                p.push(format!("compose service {name}: healthcheck: {e}"));
                default
            }
        }
    };
    Some(HealthCmd {
        test,
        interval_ms: ms(p, h.interval.as_deref(), 30_000),
        timeout_ms: ms(p, h.timeout.as_deref(), 30_000),
        retries: h.retries.unwrap_or(3),
        start_period_ms: ms(p, h.start_period.as_deref(), 0),
    })
}

/// `name:/target[:ro]` (a declared named volume) or `./rel:/target`, `/abs:/target` (bind).
fn parse_mount(
    spec: &str,
    volumes: &BTreeMap<String, String>,
    compose_dir: &Path,
    base_dir: &Path,
) -> Result<Mount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, None),
        [s, t, m] => (*s, *t, Some(*m)),
        _ => {
            return Err(format!(
                "{spec:?} is not source:/target[:ro] (e.g. media:/app/media)"
            ));
        }
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => return Err(format!("{spec:?}: mode {m:?} is not ro or rw")),
    };
    if !target.starts_with('/') {
        return Err(format!(
            "{spec:?}: the target {target:?} must be an absolute path in the container"
        ));
    }
    if target.contains(',') || src.contains(',') {
        return Err(format!("{spec:?}: commas are not allowed in mounts"));
    }
    let source = if src.starts_with('/') {
        MountSource::Bind(PathBuf::from(src))
    } else if src.starts_with('.') {
        let base = if compose_dir.as_os_str().is_empty() {
            base_dir
        } else {
            compose_dir
        };
        MountSource::Bind(base.join(src))
    } else {
        let docker = volumes.get(src).ok_or_else(|| {
            format!(
                "volume {src:?} is not declared\nhint: add [volumes.{src}] to davit.toml (or `{src}:` under volumes: in the compose file)"
            )
        })?;
        MountSource::Volume(docker.clone())
    };
    Ok(Mount {
        source,
        target: target.to_string(),
        read_only,
    })
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
