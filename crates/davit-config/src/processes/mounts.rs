//! Volumes and mounts: the Docker name of each declared volume in an environment, and a mount
//! written in davit.toml or the compose file read into a [`Mount`].
//!
//! A module of its own because a mount is where a stack reaches outside its containers (a
//! host folder, data that outlives releases): every mount of every process and service goes
//! through [`Mounts`], so an undeclared volume, a relative target or a comma that would split
//! `--mount` is caught in one place.

use super::rules::Problems;
use super::spec::{Mount, MountSource};
use crate::Config;
use crate::compose_file::{ComposeFile, VolumeEntry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Docker's name for a volume in an environment: `<app>-<env>_<volume>`, so staging and
/// production on one host never share data by accident.
pub fn volume_name(app: &str, env: &str, volume: &str) -> String {
    format!("{app}-{env}_{volume}")
}

/// What a mount is read against: the declared volumes (each with its Docker name) and the
/// folders relative bind sources start from.
pub(super) struct Mounts<'a> {
    volumes: BTreeMap<String, String>,
    compose_dir: PathBuf,
    base_dir: &'a Path,
}

impl<'a> Mounts<'a> {
    /// Named volumes: davit.toml's and the compose file's, each with its Docker name (davit.toml
    /// wins when both declare one).
    pub(super) fn new(cfg: &'a Config, cf: &ComposeFile, env: &str) -> Mounts<'a> {
        let app = &cfg.app.name;
        let compose_dir = cfg
            .compose_file
            .as_ref()
            .and_then(|f| cfg.base_dir.join(f).parent().map(Path::to_path_buf))
            .unwrap_or_else(|| cfg.base_dir.clone());
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
        Mounts {
            volumes,
            compose_dir,
            base_dir: &cfg.base_dir,
        }
    }

    /// A `source:/target[:ro]` mount; a problem naming `field` when it is not one.
    pub(super) fn mount(&self, p: &mut Problems, field: &str, spec: &str) -> Option<Mount> {
        parse_mount(spec, &self.volumes, &self.compose_dir, self.base_dir)
            .map_err(|e| p.push(format!("{field}: {e}")))
            .ok()
    }

    /// A compose `volumes:` entry, short or long form; tmpfs and other kinds are refused.
    pub(super) fn compose_mount(
        &self,
        p: &mut Problems,
        field: &str,
        v: &VolumeEntry,
    ) -> Option<Mount> {
        match v {
            VolumeEntry::Short(s) => self.mount(p, field, s),
            VolumeEntry::Long(l) => match l.source.as_deref() {
                Some(src) if l.kind.as_deref() != Some("tmpfs") => {
                    let ro = if l.read_only { ":ro" } else { "" };
                    self.mount(p, field, &format!("{src}:{}{ro}", l.target))
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
    }
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
