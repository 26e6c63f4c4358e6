//! Services: the database, cache and broker beside the app (`davit services up|status|logs`).
//!
//! A service is not part of a release. It is started once, on the environment's network under
//! its own name (so `postgres` and `redis` resolve from every process), with its own volumes, and
//! then left alone: no app deploy or rollback recreates it, and `services up` on a running
//! service does nothing. davit never removes a service's volumes, nor its container once it ran
//! (a first start that never gets ready is undone, its volumes kept).
//!
//! Values in a service's environment that refer to variables (`${POSTGRES_PASSWORD}` in the team's
//! compose file) or are listed in `secret_env` are expanded from davit's environment into a 0600
//! env file, so they never reach argv, the plan's rendering or a log.

use crate::processes::{ready_step, stop_cmd};
use davit_config::compose_file::interpolate;
use davit_config::{AppSet, EnvValue, ServiceSpec};
use davit_core::{Cmd, FileBody, Plan, Secret, Step};
use davit_exec::Executor;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The label that marks a container as a service (value: the service name).
pub const SERVICE_LABEL: &str = "davit.service";

/// `<app>-<environment>-<service>`: one per environment, never per release.
pub fn container_name(app: &str, environment: &str, service: &str) -> String {
    format!("{app}-{environment}-{service}")
}

/// A service container davit finds on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub service: String,
    pub container: String,
    pub image: String,
    pub running: bool,
    /// Docker's status text (`Up 3 minutes (healthy)`, `Exited (1) 2 seconds ago`).
    pub status: String,
}

pub fn ps_cmd(app: &str, environment: &str) -> Cmd {
    crate::docker::ps_labelled(
        app,
        environment,
        SERVICE_LABEL,
        &[
            ".Names",
            &format!(".Label \"{SERVICE_LABEL}\""),
            ".Image",
            ".State",
            ".Status",
        ],
    )
}

pub fn parse_ps(out: &str) -> Vec<ServiceState> {
    let mut v: Vec<ServiceState> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('\t').collect();
            match f.as_slice() {
                [name, service, image, state, status] if !service.is_empty() => {
                    Some(ServiceState {
                        service: service.to_string(),
                        container: name.to_string(),
                        image: image.to_string(),
                        running: matches!(*state, "running" | "restarting"),
                        status: status.to_string(),
                    })
                }
                _ => None,
            }
        })
        .collect();
    v.sort_by(|a, b| a.service.cmp(&b.service));
    v
}

pub async fn observe(
    exec: &dyn Executor,
    app: &str,
    environment: &str,
) -> Result<Vec<ServiceState>, String> {
    let o = exec
        .run_ok(&ps_cmd(app, environment))
        .await
        .map_err(|e| e.to_string())?;
    Ok(parse_ps(&o.stdout))
}

/// Where a service's env file lives in the environment's state folder.
pub fn env_file_path(state_dir: &Path, service: &str) -> PathBuf {
    state_dir.join("services").join(format!("{service}.env"))
}

/// The env file's contents: secret when anything in it came from a variable or `secret_env`.
pub fn env_file_body(
    s: &ServiceSpec,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<FileBody, String> {
    let mut text = String::new();
    let mut secret = false;
    for (k, v) in &s.env {
        let value = match v {
            EnvValue::Plain(p) => p.clone(),
            EnvValue::Template(t) => {
                secret = true;
                interpolate(t, lookup).map_err(|e| {
                    format!(
                        "service {}: {k}: {e}\nhint: export the variable in the environment davit runs in (a repository secret in CI)",
                        s.name
                    )
                })?
            }
        };
        if value.contains('\n') {
            return Err(format!(
                "service {}: {k} has a line break, which an env file cannot carry",
                s.name
            ));
        }
        text.push_str(&format!("{k}={value}\n"));
    }
    for k in &s.secret_env {
        secret = true;
        let v = lookup(k).ok_or_else(|| {
            format!(
                "service {}: secret_env {k} is not set\nhint: export {k} in the environment davit runs in (a repository secret in CI)",
                s.name
            )
        })?;
        text.push_str(&format!("{k}={v}\n"));
    }
    Ok(if secret {
        FileBody::Secret(Secret::new(text))
    } else {
        FileBody::Plain(text)
    })
}

/// `docker run -d` for a service: its name is its network alias.
pub fn run_cmd(
    app: &str,
    environment: &str,
    network: &str,
    env_file: &Path,
    s: &ServiceSpec,
) -> Cmd {
    let name = container_name(app, environment, &s.name);
    let mut c = Cmd::new("docker").args(["run", "-d", "--name", &name]);
    for l in [
        format!("davit.app={app}"),
        format!("davit.environment={environment}"),
        format!("{SERVICE_LABEL}={}", s.name),
    ] {
        c = c.arg("--label").arg(l);
    }
    c = c
        .arg("--env-file")
        .arg(env_file.display().to_string())
        .args(["--network", network, "--network-alias", &s.name])
        .args(["--restart", "unless-stopped"])
        .args(["--stop-signal", &s.stop_signal])
        .arg("--stop-timeout")
        .arg(s.stop_grace_secs.to_string());
    for m in &s.mounts {
        c = c.arg("--mount").arg(m.docker_arg());
    }
    if let Some(h) = &s.healthcheck {
        c = crate::processes::health_args(c, h);
    }
    c = c.arg(&s.image);
    if let Some(cmd) = &s.command {
        c = c.args(cmd.iter().cloned());
    }
    c.timeout(Duration::from_secs(300))
}

/// Where services run: the app, the environment and its state folder on the host.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub app: &'a str,
    pub environment: &'a str,
    pub state_dir: &'a Path,
}

/// `services up`: the network, the services' volumes, then each service that does not run yet.
/// A running service gets no step at all: it is never recreated.
pub fn plan_up(
    plan: &mut Plan,
    set: &AppSet,
    place: Place<'_>,
    seen: &[ServiceState],
    network_exists: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let Place {
        app,
        environment,
        state_dir,
    } = place;
    let mut volumes: Vec<String> = set
        .services
        .iter()
        .flat_map(|s| &s.mounts)
        .filter_map(|m| match &m.source {
            davit_config::MountSource::Volume(v) => Some(v.clone()),
            davit_config::MountSource::Bind(_) => None,
        })
        .collect();
    volumes.sort();
    volumes.dedup();
    crate::processes::plan_network_and_volumes(plan, set, &volumes, network_exists);
    let dir = state_dir.join("services");
    let mut made_dir = false;
    for s in &set.services {
        let name = container_name(app, environment, &s.name);
        match seen.iter().find(|c| c.service == s.name) {
            Some(c) if c.running => continue,
            Some(c) => {
                plan.push(
                    format!("start {} again (stopped: {})", s.name, c.status),
                    Step::Exec(
                        Cmd::new("docker")
                            .args(["start", &c.container])
                            .timeout(Duration::from_secs(60)),
                    ),
                );
            }
            None => {
                if !made_dir {
                    plan.push(
                        "folder for the services' env files",
                        Step::MkDir {
                            path: dir.clone(),
                            mode: 0o700,
                        },
                    );
                    made_dir = true;
                }
                let env_file = env_file_path(state_dir, &s.name);
                plan.push(
                    format!("env file of {} (mode 0600)", s.name),
                    Step::WriteFile {
                        path: env_file.clone(),
                        body: env_file_body(s, lookup)?,
                        mode: 0o600,
                    },
                );
                plan.push_with_undo(
                    format!(
                        "start {} ({}) on network {} as `{}`",
                        s.name, s.image, set.network, s.name
                    ),
                    Step::Exec(run_cmd(app, environment, &set.network, &env_file, s)),
                    // Its volumes stay: `rm` without `-v`.
                    vec![
                        Step::ExecIgnoringFailure(stop_cmd(&name, s.stop_grace_secs)),
                        Step::ExecIgnoringFailure(
                            Cmd::new("docker")
                                .args(["rm", "-f", &name])
                                .timeout(Duration::from_secs(60)),
                        ),
                    ],
                );
            }
        }
        if let Some(r) = ready_step(&name, &s.readiness) {
            plan.push(format!("{} is ready", s.name), r);
        }
    }
    Ok(())
}

/// One line per service: what runs, and what the config asks for when it differs.
pub fn status_lines(
    set: &AppSet,
    app: &str,
    environment: &str,
    seen: &[ServiceState],
) -> Vec<String> {
    let mut out = Vec::new();
    for s in &set.services {
        match seen.iter().find(|c| c.service == s.name) {
            None => out.push(format!(
                "{}\tnot started\t{}\t(run `davit services up {environment}`)",
                s.name, s.image
            )),
            Some(c) => {
                let mut line = format!("{}\t{}\t{}", s.name, c.status, c.image);
                if c.image != s.image {
                    line.push_str(&format!(
                        "\t(the config says {}; davit never recreates a running service: stop and remove {} yourself to change it, its volumes stay)",
                        s.image,
                        container_name(app, environment, &s.name)
                    ));
                }
                out.push(line);
            }
        }
    }
    for c in seen
        .iter()
        .filter(|c| !set.services.iter().any(|s| s.name == c.service))
    {
        out.push(format!(
            "{}\t{}\t{}\t(not in the config any more; davit leaves it alone)",
            c.service, c.status, c.image
        ));
    }
    out
}

/// `docker logs` of a service's container.
pub fn logs_cmd(app: &str, environment: &str, service: &str, tail: u32) -> Cmd {
    Cmd::new("docker")
        .args(["logs", "--tail"])
        .arg(tail.to_string())
        .arg(container_name(app, environment, service))
        .timeout(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use davit_config::{Config, Resolve};

    fn example_set() -> AppSet {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/django-celery");
        let cfg = Config::load(&Path::new(dir).join("davit.toml")).unwrap();
        cfg.app_set(&Resolve {
            env_name: "production",
            lookup: &|_| None,
        })
        .unwrap()
    }

    fn place(state_dir: &Path) -> Place<'_> {
        Place {
            app: "tasks",
            environment: "production",
            state_dir,
        }
    }

    fn pw(k: &str) -> Option<String> {
        (k == "POSTGRES_PASSWORD").then(|| "canary-pg-s3cret".to_string())
    }

    #[test]
    fn first_up_starts_every_service_with_secrets_only_in_a_0600_file() {
        let set = example_set();
        let mut plan = Plan::new("services up");
        plan_up(
            &mut plan,
            &set,
            place(Path::new("/var/lib/davit/tasks-production")),
            &[],
            false,
            &pw,
        )
        .unwrap();
        let text = plan.render();
        assert!(!text.contains("canary-pg-s3cret"), "{text}");
        assert!(
            !text.contains("volume rm") && !text.contains("rm -v"),
            "{text}"
        );
        insta::assert_snapshot!("services_first_up", text);
        let body = plan
            .steps
            .iter()
            .find_map(|s| match &s.step {
                Step::WriteFile { path, body, mode } if path.ends_with("postgres.env") => {
                    Some((body.clone(), *mode))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(body.1, 0o600);
        assert!(matches!(body.0, FileBody::Secret(_)));
        assert!(
            body.0
                .expose()
                .contains("POSTGRES_PASSWORD=canary-pg-s3cret\n")
        );
    }

    #[test]
    fn running_services_are_never_recreated() {
        let set = example_set();
        let seen = parse_ps(
            "tasks-production-postgres\tpostgres\tdavit-examples/postgres:15\trunning\tUp 2 hours (healthy)\n\
             tasks-production-redis\tredis\tdavit-examples/redis:7\texited\tExited (0) 3 minutes ago\n",
        );
        let mut plan = Plan::new("services up");
        plan_up(&mut plan, &set, place(Path::new("/s")), &seen, true, &pw).unwrap();
        let text = plan.render();
        assert!(!text.contains("postgres ("), "{text}");
        assert!(!text.contains("docker run"), "{text}");
        assert!(
            text.contains("start redis again (stopped: Exited (0) 3 minutes ago)"),
            "{text}"
        );
        assert!(
            text.contains("$ docker start tasks-production-redis"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_secret_names_the_variable() {
        let set = example_set();
        let mut plan = Plan::new("services up");
        let e = plan_up(&mut plan, &set, place(Path::new("/s")), &[], true, &|_| {
            None
        })
        .unwrap_err();
        assert!(
            e.contains("POSTGRES_PASSWORD is not set: set POSTGRES_PASSWORD"),
            "{e}"
        );
        assert!(e.contains("hint: export the variable"), "{e}");
    }

    #[test]
    fn status_shows_drift_and_strays_without_touching_them() {
        let set = example_set();
        let seen = parse_ps(
            "tasks-production-postgres\tpostgres\tpostgres:14\trunning\tUp 2 hours\n\
             tasks-production-rabbit\trabbit\trabbitmq:3\trunning\tUp 1 hour\n",
        );
        let lines = status_lines(&set, "tasks", "production", &seen);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("the config says davit-examples/postgres:15; davit never recreates"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("redis\tnot started"), "{lines:?}");
        assert!(lines[2].contains("not in the config any more"), "{lines:?}");
        assert_eq!(
            logs_cmd("tasks", "production", "redis", 50).render(),
            "docker logs --tail 50 tasks-production-redis"
        );
    }
}
