//! The compose strategy: one service from a generated compose file, `up -d`, health-gated.
//!
//! This is what most small teams run today. It recreates the container, so users see a short gap;
//! davit adds what it lacks: a health gate, the previous release's compose file kept for rollback
//! (and re-applied automatically if the new release never gets healthy), and the ledger.
//!
//! With processes (workers, a scheduler), every one of them is a service of the same generated
//! file, on the app network with its volumes, so `up -d` moves them all: Compose stops each old
//! container (its stop signal and grace period: a Celery worker's warm shutdown) before starting
//! its replacement, so a singleton never runs twice. davit never passes `--remove-orphans`: a
//! container someone else put in the project is not davit's to delete. A process the release no
//! longer has is found by davit's own label and stopped, then removed (its volumes stay).

use crate::docker::{self, ComposeFlavor};
use crate::target::{Target, url_host};
use crate::{NewRelease, Observed};
use davit_config::MountSource;
use davit_core::{FileBody, Plan, Probe, Step};
use davit_exec::{Event, Observer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn compose_file_path(t: &Target, release: &str) -> PathBuf {
    crate::release_dir(t, release).join("compose.yaml")
}

/// The compose file for a release. Values are JSON strings, which YAML reads verbatim, with `$`
/// doubled: Compose would otherwise expand `$HOSTNAME` in a health check from davit's own
/// environment, while the values here are already what the container must get.
pub fn compose_yaml(t: &Target, port: u16, rel: &NewRelease) -> String {
    let q = |s: &str| serde_json::to_string(&s.replace('$', "$$")).expect("strings serialize");
    let list = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|c| q(c)).collect();
        format!("[{}]", items.join(", "))
    };
    let mut y = format!(
        "# Written by davit for release {id}; kept so a rollback can re-apply it.\n\
         services:\n\
         \x20 app:\n\
         \x20   image: {image}\n\
         \x20   env_file: [\"app.env\"]\n\
         \x20   ports: [{ports}]\n\
         \x20   restart: unless-stopped\n\
         \x20   labels:\n",
        id = rel.id,
        image = q(&rel.image),
        ports = q(&format!("{}:{port}:{}", t.bind, t.app_port)),
    );
    for l in docker::labels(t, &rel.id, &rel.version, None) {
        y.push_str(&format!("      - {}\n", q(&l)));
    }
    if let Some(cmd) = &t.command {
        y.push_str(&format!("    command: {}\n", list(cmd)));
    }
    let Some(set) = &t.processes else {
        return y;
    };
    let process = |y: &mut String, p: &davit_config::ProcessSpec| {
        y.push_str(&format!(
            "    stop_signal: {}\n    stop_grace_period: {}s\n",
            q(&p.stop_signal),
            p.stop_grace_secs
        ));
        if !p.mounts.is_empty() {
            y.push_str("    volumes:\n");
            for m in &p.mounts {
                let (kind, source) = match &m.source {
                    MountSource::Volume(v) => ("volume", v.clone()),
                    MountSource::Bind(b) => ("bind", b.display().to_string()),
                };
                y.push_str(&format!(
                    "      - {{ type: {kind}, source: {}, target: {}, read_only: {} }}\n",
                    q(&source),
                    q(&m.target),
                    m.read_only
                ));
            }
        }
    };
    if let Some(web) = set.web() {
        process(&mut y, web);
    }
    for p in set.others() {
        y.push_str(&format!(
            "  {}:\n    image: {}\n    env_file: [\"app.env\"]\n    restart: unless-stopped\n    scale: {}\n    labels:\n",
            q(&p.name),
            q(&rel.image),
            p.replicas
        ));
        let mut labels = docker::labels(t, &rel.id, &rel.version, None);
        labels.retain(|l| !l.starts_with(crate::processes::PROCESS_LABEL));
        labels.push(format!("{}={}", crate::processes::PROCESS_LABEL, p.name));
        for l in labels {
            y.push_str(&format!("      - {}\n", q(&l)));
        }
        if let Some(cmd) = &p.command {
            y.push_str(&format!("    command: {}\n", list(cmd)));
        }
        if let Some(h) = &p.healthcheck {
            y.push_str(&format!(
                "    healthcheck:\n      test: {}\n      interval: {}ms\n      timeout: {}ms\n      retries: {}\n      start_period: {}ms\n",
                list(&h.test),
                h.interval_ms,
                h.timeout_ms,
                h.retries,
                h.start_period_ms
            ));
        }
        process(&mut y, p);
    }
    // The app network and the volumes are davit's, created before `up` and never deleted:
    // external, so `docker compose down` leaves them too.
    y.push_str(&format!(
        "networks:\n  default:\n    name: {}\n    external: true\n",
        q(&set.network)
    ));
    let volumes = crate::processes::process_volumes(set);
    if !volumes.is_empty() {
        y.push_str("volumes:\n");
        for v in volumes {
            y.push_str(&format!("  {}:\n    external: true\n", q(&v)));
        }
    }
    y
}

/// The name Compose gives the `replica`th container of `service` in `project`.
pub fn container_name(flavor: ComposeFlavor, project: &str, service: &str, replica: u32) -> String {
    match flavor {
        ComposeFlavor::Plugin => format!("{project}-{service}-{replica}"),
        ComposeFlavor::Standalone => format!("{project}_{service}_{replica}"),
    }
}

/// After `up`: each process's new containers ready (its health check, command or staying up);
/// then the processes the release no longer has stopped (their stop signal and grace) and
/// removed, found by davit's label, never by the project (so nobody else's container goes).
fn push_processes_ready(plan: &mut Plan, t: &Target, obs: &Observed, flavor: ComposeFlavor) {
    let Some(set) = &t.processes else { return };
    for p in set.others() {
        for i in 1..=p.replicas {
            let name = container_name(flavor, &t.prefix(), &p.name, i);
            if let Some(step) = crate::processes::ready_step(&name, &p.readiness) {
                plan.push(format!("{name} is ready"), step);
            }
        }
    }
    let gone = obs
        .procs
        .iter()
        .flat_map(|p| &p.containers)
        .filter(|c| !set.processes.iter().any(|p| p.name == c.process));
    for c in gone {
        plan.push(
            format!(
                "stop {} ({}): the release has no such process",
                c.process, c.name
            ),
            Step::ExecIgnoringFailure(crate::processes::stop_cmd(&c.name, 30)),
        );
        plan.push(
            format!("remove {}, stopped", c.name),
            Step::ExecIgnoringFailure(docker::remove(&c.name)),
        );
    }
}

/// The health gate on the published port.
pub fn probe(t: &Target, port: u16, version: &str) -> Probe {
    crate::health::probe(t, &format!("http://{}:{port}", url_host(&t.bind)), version)
}

/// `previous`: the live release's id, whose compose file is re-applied if this one fails.
pub fn plan_deploy(
    t: &Target,
    port: u16,
    rel: &NewRelease,
    obs: &Observed,
    flavor: ComposeFlavor,
    previous: Option<&str>,
) -> Plan {
    let mut plan = Plan::new(format!(
        "compose deploy of {} ({}) to {}",
        rel.version, rel.image, t.environment
    ));
    crate::processes::push_network(&mut plan, t, obs);
    crate::push_env_and_pre_hooks(&mut plan, t, rel, obs);
    let file = compose_file_path(t, &rel.id);
    plan.push(
        "write the release's compose file",
        Step::WriteFile {
            path: file.clone(),
            body: FileBody::Plain(compose_yaml(t, port, rel)),
            mode: 0o644,
        },
    );
    let project = t.prefix();
    let undo = match previous {
        Some(prev) => vec![Step::Exec(
            flavor
                .cmd(&project, &compose_file_path(t, prev))
                .args(["up", "-d"])
                .timeout(Duration::from_secs(300)),
        )],
        None => vec![Step::ExecIgnoringFailure(
            flavor
                .cmd(&project, &file)
                .arg("down")
                .timeout(Duration::from_secs(300)),
        )],
    };
    plan.push_with_undo(
        format!("{UP} (recreates the app container)"),
        Step::Exec(
            flavor
                .cmd(&project, &file)
                .args(["up", "-d"])
                .timeout(Duration::from_secs(300)),
        ),
        undo,
    );
    plan.push(
        format!("health gate: {} must answer healthy", rel.version),
        Step::WaitHttp(probe(t, port, &rel.version)),
    );
    push_processes_ready(&mut plan, t, obs, flavor);
    crate::push_post_hooks(&mut plan, t, rel);
    plan
}

/// Re-apply a previous release's compose file: every process it has goes back to it; no hook
/// runs (migrations ran when the release was deployed, never again on the old image).
pub fn plan_rollback(
    t: &Target,
    port: u16,
    to: &NewRelease,
    obs: &Observed,
    flavor: ComposeFlavor,
) -> Plan {
    let mut plan = Plan::new(format!(
        "compose rollback of {} to {}",
        t.environment, to.version
    ));
    let file = compose_file_path(t, &to.id);
    crate::processes::push_network(&mut plan, t, obs);
    plan.push(
        format!("docker compose up -d with {}'s compose file", to.version),
        Step::Exec(
            flavor
                .cmd(&t.prefix(), &file)
                .args(["up", "-d"])
                .timeout(Duration::from_secs(300)),
        ),
    );
    plan.push(
        format!("health gate: {} must answer healthy", to.version),
        Step::WaitHttp(probe(t, port, &to.version)),
    );
    push_processes_ready(&mut plan, t, obs, flavor);
    plan
}

const UP: &str = "docker compose up -d";

/// Passes a deploy's events on and notes when the compose strategy's `up -d` replaced the
/// running container: from then until the plan's undo re-applied the previous release, users
/// were served by the new one, so a failure message must not say "traffic stays on the
/// previous release" (it did not).
pub struct ServedClock<'a> {
    inner: &'a dyn Observer,
    up_done: std::sync::Mutex<Option<Instant>>,
}

impl<'a> ServedClock<'a> {
    pub fn new(inner: &'a dyn Observer) -> Self {
        ServedClock {
            inner,
            up_done: std::sync::Mutex::new(None),
        }
    }

    /// What happened to traffic, for a deploy that failed just now.
    pub fn aftermath(&self, previous: bool) -> String {
        let up = *self.up_done.lock().expect("clock lock");
        match up {
            None => "traffic stays on the previous release".to_string(),
            Some(at) => format!(
                "the failing release served for {:.1}s before {}",
                at.elapsed().as_secs_f32(),
                if previous {
                    "the previous release's compose file was applied again"
                } else {
                    "it was taken down (there was no previous release)"
                }
            ),
        }
    }
}

impl Observer for ServedClock<'_> {
    fn event(&self, e: &Event<'_>) {
        if let Event::StepDone { summary, .. } = e
            && summary.starts_with(UP)
        {
            *self.up_done.lock().expect("clock lock") = Some(Instant::now());
        }
        self.inner.event(e);
    }
}
