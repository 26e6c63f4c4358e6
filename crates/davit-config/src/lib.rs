//! `davit.toml`: what a team writes once, read into types with defaults and checked up front.
//!
//! Every value that reaches argv, a container name, a file path or a URL is validated here, before
//! any plan exists, so a typo or a hostile value (`--privileged` as an image, `-oProxyCommand` as a
//! host) is a bad-input error (exit 2) that names the field and the fix, never a half-done deploy.
//! Unknown keys are errors too: a misspelt `strtegy` silently falling back to a default is how
//! production gets the wrong deploy. Tables owned by other tools (`[gate]`, `[analysis]`,
//! `[approval]`, `[scan]`) are kept as raw TOML for the crates that own them.

pub mod compose_file;
pub mod limits;
mod model;
mod processes;
mod validation;

pub use model::*;
pub use processes::*;

use std::path::{Path, PathBuf};

/// Every problem found in a configuration, each with its fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read {path}: {source}\nhint: run davit from the repository root or pass --config <path to davit.toml>"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}\nhint: see the davit.toml reference in README.md")]
    Parse { path: PathBuf, message: String },
    #[error(
        "cannot use {path} as a configuration: {message}\nhint: pass --config <path to davit.toml>, a regular text file of at most 1 MiB"
    )]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}\nhint: fix each value above (the davit.toml reference is in README.md)", .problems.len(), .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("environment {name:?} is not defined in {path}; defined: {}\nhint: add [environments.{name}] or pick one of those", .known.join(", "))]
    UnknownEnvironment {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
}

impl Config {
    /// Read, parse and validate a `davit.toml`. Relative paths in it resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = limits::read_config(path)?;
        // Absolute from here on: every path davit derives from it is handed to other programs
        // (nginx -p/-c, compose --file, --env-file) that resolve relative paths against their
        // own idea of the working folder, not davit's.
        let absolute = std::path::absolute(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parent = absolute.parent().unwrap_or(Path::new("/"));
        // `../x/davit.toml` reads better without the `..` (the folder exists: the file was read).
        let base = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        Config::parse(&text, path, &base)
    }

    /// Parse and validate text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            // toml quotes the offending line: bounded, or a 10 MB line is echoed whole (T48).
            message: limits::excerpt(&e.to_string()),
        })?;
        cfg.origin = origin.to_path_buf();
        cfg.base_dir = base_dir.to_path_buf();
        let mut problems = validation::check(&cfg);
        problems.extend(limits::check(&cfg));
        let problems: Vec<String> = problems.iter().map(|p| limits::excerpt(p)).collect();
        // `hosts` replaces `host`: the first one is the environment's host, so everything that
        // asks "is this remote?" keeps working.
        for env in cfg.environments.values_mut() {
            if let Some(first) = env.hosts.first() {
                env.host = first.clone();
            }
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                problems,
            })
        }
    }

    /// The named environment, or an error listing the defined ones.
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        self.environments
            .get(name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                path: self.origin.clone(),
                name: name.to_string(),
                known: self.environments.keys().cloned().collect(),
            })
    }

    /// The health check for an environment: its own table if it has one, else the top-level one.
    pub fn health_for(&self, env: &Environment) -> HealthCheck {
        env.health.clone().unwrap_or_else(|| self.health.clone())
    }

    /// Where an environment keeps its state (ledger, proxy config, compose files).
    pub fn state_dir_for(&self, env_name: &str, env: &Environment) -> PathBuf {
        // On a remote host a path relative to this checkout means nothing: use the host's own
        // state folder unless the environment names one.
        let root = if env.host != "local" {
            env.state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/davit"))
        } else {
            env.state_dir
                .clone()
                .or_else(|| self.state_dir.clone())
                .unwrap_or_else(|| default_state_root(&|k| std::env::var_os(k)))
        };
        let root = if root.is_absolute() {
            root
        } else {
            self.base_dir.join(root)
        };
        root.join(format!("{}-{env_name}", self.app.name))
    }
}

/// Where a local environment's state lives unless `state_dir` says otherwise:
/// `$XDG_STATE_HOME/davit`, else `$HOME/.local/state/davit`, else `/var/lib/davit`.
///
/// Never inside the repository: a Dockerfile's `COPY . .` would put every release's env file
/// (secrets) into the next image, and `actions/checkout` cleans untracked files, which would
/// delete the ledger between runs on a self-hosted runner.
pub fn default_state_root(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(x) = set("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        return x.join("davit");
    }
    if let Some(h) = set("HOME").filter(|p| p.is_absolute()) {
        return h.join(".local/state/davit");
    }
    PathBuf::from("/var/lib/davit")
}

#[cfg(test)]
mod tests;
