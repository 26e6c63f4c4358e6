//! Resolution: the config, an environment and the compose file into one [`AppSet`].
//!
//! This module decides the shape of the stack (which compose services are the release's
//! processes, which one is web, the network, the volumes in use) and hands each process and
//! service to its own resolver. Problems are collected, not returned at the first, so one run
//! of `davit` names every fix.

use super::Resolve;
use super::mounts::Mounts;
use super::process::process;
use super::rules::Problems;
use super::service::services;
use super::spec::{AppSet, MountSource, ProcessSpec, ServiceSpec};
use crate::Config;
use crate::compose_file::{self, ComposeFile, ComposeService};
use davit_core::validate;

pub(super) fn resolve(
    cfg: &Config,
    network: Option<&str>,
    compose: Option<&ComposeFile>,
    r: &Resolve,
    p: &mut Problems,
) -> AppSet {
    let empty = ComposeFile::default();
    let cf = compose.unwrap_or(&empty);
    let mounts = Mounts::new(cfg, cf, r.env_name);

    let names = process_names(cfg, cf, r);
    let web_name = web_process(cfg, cf, &names, p);
    let mut processes: Vec<ProcessSpec> = Vec::new();
    for name in &names {
        let web = web_name.as_deref() == Some(name.as_str());
        processes.push(process(
            cfg,
            name,
            cf.services.get(name),
            web,
            &mounts,
            r,
            p,
        ));
    }
    processes.sort_by_key(|p| !p.web);

    let services = services(cfg, cf, &names, &mounts, r, p);

    let network = network
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{}", cfg.app.name, r.env_name));
    p.check(validate::name("network", &network));
    let volumes = volumes_in_use(&processes, &services);
    AppSet {
        network,
        processes,
        services,
        volumes,
    }
}

/// The release's processes: the compose file's app services, then `[processes]` not among
/// them, in that order.
fn process_names(cfg: &Config, cf: &ComposeFile, r: &Resolve) -> Vec<String> {
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
    names
}

/// Whether a compose service runs the release's image (a process) rather than its own (a
/// service).
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

/// The one process behind the proxy: the one that says `web = true`, else the one named `web`,
/// else the only one publishing ports. Anything less clear is a problem, not a guess: the
/// wrong process behind the proxy fails every health check.
fn web_process(
    cfg: &Config,
    cf: &ComposeFile,
    names: &[String],
    p: &mut Problems,
) -> Option<String> {
    let with_ports: Vec<&String> = names
        .iter()
        .filter(|n| cf.services.get(*n).is_some_and(|s| !s.ports.is_empty()))
        .collect();
    let explicit_web: Vec<&String> = names
        .iter()
        .filter(|n| cfg.processes.get(*n).and_then(|c| c.web) == Some(true))
        .collect();
    if !explicit_web.is_empty() {
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
    }
}

/// The named volumes some process or service mounts, each once: davit creates these (never
/// deletes them), so a declared volume nothing mounts is not created.
fn volumes_in_use(processes: &[ProcessSpec], services: &[ServiceSpec]) -> Vec<String> {
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
    used
}
