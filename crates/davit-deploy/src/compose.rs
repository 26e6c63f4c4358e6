//! The compose strategy: one service from a generated compose file, `up -d`, health-gated.
//!
//! This is what most small teams run today. It recreates the container, so users see a short gap;
//! davit adds what it lacks: a health gate, the previous release's compose file kept for rollback
//! (and re-applied automatically if the new release never gets healthy), and the ledger.

use crate::docker::{self, ComposeFlavor};
use crate::target::{Target, url_host};
use crate::{NewRelease, Observed};
use davit_core::{FileBody, Plan, Probe, Step};
use davit_exec::{Event, Observer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn compose_file_path(t: &Target, release: &str) -> PathBuf {
    crate::release_dir(t, release).join("compose.yaml")
}

/// The compose file for a release. Values are JSON strings, which YAML reads verbatim.
pub fn compose_yaml(t: &Target, port: u16, rel: &NewRelease) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
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
        let items: Vec<String> = cmd.iter().map(|c| q(c)).collect();
        y.push_str(&format!("    command: [{}]\n", items.join(", ")));
    }
    y
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
                .args(["up", "-d", "--remove-orphans"])
                .timeout(Duration::from_secs(300)),
        )],
        None => vec![Step::ExecIgnoringFailure(
            flavor
                .cmd(&project, &file)
                .args(["down", "--remove-orphans"])
                .timeout(Duration::from_secs(300)),
        )],
    };
    plan.push_with_undo(
        format!("{UP} (recreates the app container)"),
        Step::Exec(
            flavor
                .cmd(&project, &file)
                .args(["up", "-d", "--remove-orphans"])
                .timeout(Duration::from_secs(300)),
        ),
        undo,
    );
    plan.push(
        format!("health gate: {} must answer healthy", rel.version),
        Step::WaitHttp(probe(t, port, &rel.version)),
    );
    crate::push_post_hooks(&mut plan, t, rel);
    plan
}

/// Re-apply a previous release's compose file.
pub fn plan_rollback(t: &Target, port: u16, to: &NewRelease, flavor: ComposeFlavor) -> Plan {
    let mut plan = Plan::new(format!(
        "compose rollback of {} to {}",
        t.environment, to.version
    ));
    let file = compose_file_path(t, &to.id);
    plan.push(
        format!("docker compose up -d with {}'s compose file", to.version),
        Step::Exec(
            flavor
                .cmd(&t.prefix(), &file)
                .args(["up", "-d", "--remove-orphans"])
                .timeout(Duration::from_secs(300)),
        ),
    );
    plan.push(
        format!("health gate: {} must answer healthy", to.version),
        Step::WaitHttp(probe(t, port, &to.version)),
    );
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
