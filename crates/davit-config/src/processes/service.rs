//! The services of an environment resolved: the compose file's services that are not the app,
//! and `[services.*]`, each with its image, environment, mounts and readiness.
//!
//! Apart from processes because a service is not part of the release: it runs its own image,
//! is started once and kept across deploys, and its environment may hold `${VAR}` templates
//! (secrets) that are expanded only when it starts, never here.

use super::Resolve;
use super::healthcheck::health_cmd;
use super::mounts::Mounts;
use super::rules::{DEFAULT_GRACE, DEFAULT_UP_SECS, Problems, readiness, signal};
use super::spec::{EnvValue, Readiness, ServiceSpec};
use super::tables::{ServiceConfig, default_ready_timeout};
use crate::Config;
use crate::compose_file::{self, ComposeFile, ComposeService};
use davit_core::validate;
use std::collections::BTreeMap;

/// Every service, sorted by name: the compose file's services other than the release's
/// processes (`process_names`) and other than those `[services]` redefines, then `[services]`.
pub(super) fn services(
    cfg: &Config,
    cf: &ComposeFile,
    process_names: &[String],
    mounts: &Mounts,
    r: &Resolve,
    p: &mut Problems,
) -> Vec<ServiceSpec> {
    let mut services = Vec::new();
    for (name, s) in &cf.services {
        if process_names.contains(name) || cfg.services.contains_key(name) {
            continue;
        }
        services.extend(compose_service(name, s, mounts, r, p));
    }
    for (name, s) in &cfg.services {
        services.push(toml_service(name, s, mounts, p));
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    services
}

/// A service from the compose file; `None` (and a problem) when it has no image to run.
fn compose_service(
    name: &str,
    s: &ComposeService,
    mounts: &Mounts,
    r: &Resolve,
    p: &mut Problems,
) -> Option<ServiceSpec> {
    let Some(image) = s.image.as_deref() else {
        p.push(format!(
            "compose service {name} has no image and is not built from the app\nhint: give it an image, or add [processes.{name}] if it runs the release's image"
        ));
        return None;
    };
    let image = compose_file::interpolate(image, r.lookup).unwrap_or_else(|e| {
        p.push(format!("compose service {name}: image: {e}"));
        image.to_string()
    });
    p.check(validate::image_ref(
        &format!("compose service {name} image"),
        &image,
    ));
    let env = compose_env(name, s, p);
    let command = match s.command.as_ref().map(|c| c.argv()) {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            p.push(format!("compose service {name}: command: {e}"));
            None
        }
        None => None,
    };
    let healthcheck = s.healthcheck.as_ref().and_then(|h| health_cmd(p, name, h));
    let mut service_mounts = Vec::new();
    for v in &s.volumes {
        service_mounts.extend(mounts.compose_mount(
            p,
            &format!("compose service {name} volumes"),
            v,
        ));
    }
    Some(ServiceSpec {
        name: name.to_string(),
        image,
        command,
        env,
        secret_env: Vec::new(),
        mounts: service_mounts,
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
    })
}

/// A compose service's `environment:`: a value with `${VAR}` stays a template (it may carry a
/// secret, expanded only when the service starts); `$$` in a plain value is a literal `$`.
fn compose_env(name: &str, s: &ComposeService, p: &mut Problems) -> BTreeMap<String, EnvValue> {
    let mut env = BTreeMap::new();
    for (k, v) in s
        .environment
        .as_ref()
        .map(|e| e.pairs())
        .unwrap_or_default()
    {
        p.check(validate::env_name(
            &format!("compose service {name} environment"),
            &k,
        ));
        let v = if compose_file::has_variables(&v) {
            EnvValue::Template(v)
        } else {
            EnvValue::Plain(v.replace("$$", "$"))
        };
        env.insert(k, v);
    }
    env
}

/// A service from `[services.<name>]`: its table was checked when the file was read; its mounts
/// are read here because they need the declared volumes.
fn toml_service(name: &str, s: &ServiceConfig, mounts: &Mounts, p: &mut Problems) -> ServiceSpec {
    let mut service_mounts = Vec::new();
    for (i, v) in s.volumes.iter().enumerate() {
        service_mounts.extend(mounts.mount(p, &format!("services.{name}.volumes[{i}]"), v));
    }
    ServiceSpec {
        name: name.to_string(),
        image: s.image.clone(),
        command: s.command.clone(),
        env: s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), EnvValue::Plain(v.clone())))
            .collect(),
        secret_env: s.secret_env.clone(),
        mounts: service_mounts,
        readiness: readiness(s.ready.as_ref(), false),
        healthcheck: None,
        stop_signal: "SIGTERM".into(),
        stop_grace_secs: DEFAULT_GRACE,
    }
}
