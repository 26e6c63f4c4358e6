//! A deploy target: configuration resolved for one environment and one release.
//!
//! Strategies take a `Target` rather than the raw config so that every default, overlay and
//! secret lookup happens once, here, and plans stay pure functions of resolved values.

use davit_config::{Config, ConfigError, Environment, HealthCheck, Hook};
use davit_core::{Failure, Secret, validate};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a strategy needs to plan a release in one environment.
#[derive(Debug, Clone)]
pub struct Target {
    pub app: String,
    pub environment: String,
    /// The strategy with the settings only it uses ([`crate::strategy::pick`] turns it into
    /// the strategy's implementation).
    pub strategy: StrategySettings,
    /// The host this target acts on (the first of `hosts` until [`Target::for_host`]).
    pub host: String,
    /// Every host of the environment: `[host]`, or the `hosts` list (see [`crate::fleet`]).
    pub hosts: Vec<String>,
    pub state_dir: PathBuf,
    pub image_repo: String,
    pub pull: davit_config::PullPolicy,
    pub app_port: u16,
    pub bind: String,
    pub proxy: davit_config::Proxy,
    pub health: HealthCheck,
    pub verify: davit_config::Verify,
    pub pre_deploy: Vec<Hook>,
    pub post_deploy: Vec<Hook>,
    pub env: BTreeMap<String, String>,
    pub secret_env: BTreeMap<String, Secret<String>>,
    pub command: Option<Vec<String>>,
    pub url: Option<String>,
    /// Who performs this deploy (GitHub actor or local user), resolved once.
    pub actor: String,
    /// SSH access when `host` is remote.
    pub ssh: Option<davit_config::SshSettings>,
    /// `app.secret_env` names with no value in this run. Only operations that write a release's
    /// env file (deploy, re-creating a release on rollback) need them; verify and a switch back
    /// to a running color do not, so the check is theirs ([`Target::require_secrets`]).
    pub missing_secrets: Vec<String>,
    /// Backup settings (`[environments.X.backup]`); parsed, its secrets read at use.
    pub backup: Option<davit_backup::BackupSettings>,
    /// The release's processes, services, network and volumes when the config describes more
    /// than the one web container (`[processes]`, `[services]`, `[volumes]` or `compose_file`):
    /// every deploy and rollback then moves every process, and the web joins the network.
    pub processes: Option<davit_config::AppSet>,
}

/// One variant per strategy, holding the settings only that strategy uses: a planner receives
/// its settings by type, so none of them unwraps an `Option` that config validation promised
/// to fill. Built from the config by `strategy::settings`.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategySettings {
    Compose {
        /// The host port the app is published on.
        port: u16,
    },
    BlueGreen(BluGreenPorts),
    Swarm(davit_config::Swarm),
    Kubernetes(davit_config::Kubernetes),
}

impl StrategySettings {
    /// The name in davit.toml and in the ledger (`blue-green`, ...).
    pub fn as_str(&self) -> &'static str {
        crate::strategy::pick(self).name()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BluGreenPorts {
    pub public: u16,
    pub blue: u16,
    pub green: u16,
}

impl Target {
    /// Resolve an environment. `secrets` looks up `app.secret_env` names (the process
    /// environment in production, a map in tests); a missing secret is a bad-input error.
    pub fn resolve(
        cfg: &Config,
        env_name: &str,
        secrets: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, Failure> {
        let env: &Environment = cfg.environment(env_name).map_err(config_failure)?;
        let mut merged = cfg.app.env.clone();
        merged.extend(env.env.clone());
        let mut secret_env = BTreeMap::new();
        let mut missing = Vec::new();
        for name in &cfg.app.secret_env {
            match secrets(name) {
                Some(v) if !v.is_empty() => {
                    validate::single_line(name, &v).map_err(|_| {
                        Failure::bad_input(
                            format!("secret {name} contains a newline or NUL"),
                            "store the secret on one line (base64-encode multi-line values)",
                        )
                    })?;
                    secret_env.insert(name.clone(), Secret::new(v));
                }
                _ => missing.push(name.clone()),
            }
        }
        let backup = match &env.backup {
            None => None,
            Some(table) => Some(
                davit_backup::BackupSettings::deserialize(toml::Value::Table(table.clone()))
                    .map_err(|e| {
                        Failure::bad_input(
                            format!("[environments.{env_name}.backup]: {e}"),
                            "see the backup settings in README.md (dir, verify, keep, url_env or container/user/database)",
                        )
                    })?,
            ),
        };
        let processes = if cfg.has_processes() {
            let set = cfg
                .app_set(&davit_config::Resolve {
                    env_name,
                    lookup: secrets,
                })
                .map_err(config_failure)?;
            Some(set)
        } else {
            None
        };
        // `[app] command` wins; otherwise the web process's own (the compose file's command).
        let command = cfg.app.command.clone().or_else(|| {
            processes
                .as_ref()
                .and_then(|s| s.web())
                .and_then(|w| w.command.clone())
        });
        // Ports were validated with the config; the conversions cannot fail.
        let port = |p: u32| u16::try_from(p).unwrap_or(0);
        Ok(Target {
            app: cfg.app.name.clone(),
            environment: env_name.to_string(),
            strategy: crate::strategy::settings(env_name, env)?,
            host: env.host.clone(),
            hosts: if env.hosts.is_empty() {
                vec![env.host.clone()]
            } else {
                env.hosts.clone()
            },
            state_dir: cfg.state_dir_for(env_name, env),
            image_repo: cfg.image.name.clone(),
            pull: cfg.image.pull,
            app_port: port(cfg.app.port),
            bind: env.bind.clone(),
            proxy: env.proxy.clone(),
            health: cfg.health_for(env),
            verify: env.verify.clone(),
            pre_deploy: env.hooks.pre_deploy.clone(),
            post_deploy: env.hooks.post_deploy.clone(),
            env: merged,
            secret_env,
            command,
            url: env.url.clone(),
            actor: crate::ledger::actor(),
            ssh: env.ssh.clone(),
            missing_secrets: missing,
            backup,
            processes,
        })
    }

    /// The same environment acting on one of its hosts.
    pub fn for_host(&self, host: &str) -> Target {
        Target {
            host: host.to_string(),
            ..self.clone()
        }
    }

    /// Fail (bad input) when a secret the release's env file needs is not set.
    pub fn require_secrets(&self) -> Result<(), Failure> {
        if self.missing_secrets.is_empty() {
            return Ok(());
        }
        Err(Failure::bad_input(
            format!(
                "secret environment variable(s) not set: {}",
                self.missing_secrets.join(", ")
            ),
            "export them before running davit, or map them from repository secrets in the workflow's env:",
        ))
    }

    /// The image reference of a version: `<repo>:<version>`.
    pub fn image_for(&self, version: &str) -> String {
        format!("{}:{version}", self.image_repo)
    }

    /// Docker Compose project / container name prefix.
    pub fn prefix(&self) -> String {
        format!("davit-{}-{}", self.app, self.environment)
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.state_dir.join("releases.jsonl")
    }

    pub fn proxy_dir(&self) -> PathBuf {
        self.state_dir.join("nginx")
    }

    /// Where users reach the environment (recorded in GitHub deployments).
    pub fn public_url(&self) -> String {
        if let Some(u) = &self.url {
            return u.clone();
        }
        crate::strategy::pick(&self.strategy)
            .public_url(self)
            .unwrap_or_default()
    }

    /// The Host header health probes send: `health.host`, else the host name of the
    /// environment's `url` (the name users reach and Django's ALLOWED_HOSTS lists), else none
    /// (the probed address, as before).
    pub fn probe_host(&self) -> Option<String> {
        if let Some(h) = &self.health.host {
            return Some(h.clone());
        }
        let url = self.url.as_deref()?;
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (!host.is_empty()).then(|| host.to_string())
    }

    pub fn health_timing(&self) -> (Duration, Duration, Duration) {
        (
            Duration::from_millis(self.health.interval_ms),
            Duration::from_millis(self.health.timeout_ms),
            Duration::from_secs(self.health.deadline_secs),
        )
    }
}

/// `0.0.0.0` is a bind address, not somewhere to send a request; probe loopback instead.
pub fn url_host(bind: &str) -> String {
    match bind {
        "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "[::1]".to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    }
}

fn config_failure(e: ConfigError) -> Failure {
    Failure::new(davit_core::Exit::BadInput, e.to_string())
}

/// The executor for a target's host: this machine, or the remote host over SSH with its key and
/// host key taken from the environment variables the configuration names.
pub async fn connect(t: &Target) -> Result<Box<dyn davit_exec::Executor>, Failure> {
    if t.host == "local" {
        return Ok(Box::new(davit_exec::Local::new()));
    }
    let ssh = t.ssh.as_ref().ok_or_else(|| {
        Failure::bad_input(
            format!("{} is remote but has no [ssh] settings", t.host),
            format!("add [environments.{}.ssh]", t.environment),
        )
    })?;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let key = var(&ssh.key_env).ok_or_else(|| {
        Failure::bad_input(
            format!(
                "the SSH private key variable {} is empty or not set",
                ssh.key_env
            ),
            format!(
                "map the deploy key secret to {} in the workflow's env:",
                ssh.key_env
            ),
        )
    })?;
    let mut cfg = davit_exec::SshConfig::new(&t.host, &ssh.user, Secret::new(key));
    cfg.port = u16::try_from(ssh.port).unwrap_or(22);
    cfg.connect_timeout = Duration::from_secs(ssh.connect_timeout_secs);
    cfg.command_timeout = Duration::from_secs(ssh.command_timeout_secs);
    cfg.keepalive_interval = Duration::from_secs(ssh.keepalive_secs.max(1));
    if let Some(kh) = &ssh.known_hosts_env {
        // Empty known_hosts fails closed inside the executor (T12).
        cfg.known_hosts = Some(Secret::new(var(kh).unwrap_or_default()));
    }
    cfg.fingerprint = ssh.fingerprint.clone();
    let exec = davit_exec::Ssh::connect(cfg).await.map_err(|e| {
        Failure::infra(e.to_string()).with_hint(
            "check the host, the deploy key and the pinned host key (known_hosts_env or fingerprint)",
        )
    })?;
    Ok(Box::new(exec))
}
