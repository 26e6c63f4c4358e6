//! A release as a set of processes, and the services, network and volumes around it.
//!
//! Teams run more than one web container: a Celery worker and beat beside gunicorn, PostgreSQL and
//! Redis, a media volume the web and the worker share. This module is that description: what a
//! team writes in davit.toml (`[processes.*]`, `[services.*]`, `[volumes.*]`) or already has in
//! its own `compose_file`, resolved into one [`AppSet`] per environment that the planners read.
//! Resolution is where every rule is checked (one web process, a scheduler marked singleton,
//! volumes declared, stop signals real), so a plan never starts from a half-understood stack.
//!
//! Split by job: [`tables`] is what is written and checked when the file is read, [`spec`] what
//! the planners get, [`resolve`] the shape of the stack, [`process`] and [`service`] one of each,
//! [`mounts`] and [`healthcheck`] the compose values both of those translate, [`rules`] what
//! checking and resolving share. Everything public is re-exported here (and from the crate root).

mod healthcheck;
mod mounts;
mod process;
mod resolve;
mod rules;
mod service;
mod spec;
mod tables;

pub use mounts::volume_name;
pub use spec::*;
pub(crate) use tables::check_tables;
pub use tables::{ProcessConfig, ReadyConfig, ServiceConfig, VolumeConfig};

use crate::compose_file::ComposeFile;
use crate::{Config, ConfigError};
use rules::Problems;

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
        let set = resolve::resolve(self, env.network.as_deref(), compose.as_ref(), r, &mut p);
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

#[cfg(test)]
mod tests;
