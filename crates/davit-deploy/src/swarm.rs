//! The swarm strategy: a one-service Docker stack that Swarm updates start-first and rolls back
//! on its own when new tasks fail.
//!
//! Why a stack and not `docker service update`: a release carries an env file (plain settings and
//! secrets), and `docker service update` can only change environment through `--env-add K=V`,
//! which would put secrets in argv. `docker stack deploy` reads `env_file:` on the client and
//! sends the values in the service spec, like `docker run --env-file`. Each release keeps its
//! stack file next to its env file, so undoing a failed deploy or rolling back to any recorded
//! release is "apply that release's stack file again".
//!
//! Why davit checks `UpdateStatus` itself: with Docker 20.10, `docker stack deploy
//! --detach=false` and `docker service update --detach=false` both wait for the service to
//! converge and then exit 0 *even when Swarm rolled the update back*. A deploy that Swarm
//! reverted must never be reported as a success, so after the wait the plan reads
//! `.UpdateStatus.State` and fails unless it is `completed` (or absent, for a service that was
//! just created). The check is an ordinary plan step, so `--dry-run` shows it; it is marked as a
//! check of the release ([`davit_core::Plan::push_check`]) so `deploy` reports a release Swarm
//! reverted as rejected (exit 1) rather than an infrastructure error, and its failure message
//! names the rollback ([`ROLLED_BACK`]) for the user.
//!
//! Health: the images davit builds for the demo are `FROM scratch` (no shell, no curl), so the
//! stack file sets no container health check; Swarm judges tasks by their state (a task that
//! exits during `monitor_secs` fails the update) and davit probes the published port through the
//! routing mesh after the update. Users whose image has a health tool should add a
//! `HEALTHCHECK` to the image: Swarm then waits for healthy tasks before moving on.

use crate::docker;
use crate::target::Target;
use crate::{NewRelease, Observed};
use davit_config::{PullPolicy, Swarm};
use davit_core::{Cmd, Failure, FileBody, Plan, Probe, Step};
use davit_exec::Executor;
use std::path::PathBuf;
use std::time::Duration;

/// The words in the status check's failure that say Swarm reverted the release.
pub const ROLLED_BACK: &str = "Swarm did not complete the update (it rolled back or paused)";

/// The service inside the stack: davit's stacks have exactly one, `app`.
pub fn service_name(t: &Target) -> String {
    format!("{}_app", t.prefix())
}

pub fn stack_file_path(t: &Target, release: &str) -> PathBuf {
    crate::release_dir(t, release).join("swarm.yaml")
}

/// What davit saw of Swarm before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmState {
    /// `docker info` `.Swarm.LocalNodeState` (`active`, `inactive`, ...), `ControlAvailable`.
    pub node_state: String,
    pub manager: bool,
    /// The kernel's IPVS (the routing mesh) as seen in `/proc`; None when it could not be read.
    pub ipvs: Option<bool>,
    /// The service, when it exists.
    pub service: Option<ServiceState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// `davit.release` of the current spec.
    pub release: String,
    /// `davit.release` of the spec `docker service rollback` would return to (empty if none).
    pub previous_release: String,
    /// `.UpdateStatus.State` (empty when the service was never updated).
    pub update_state: String,
}

/// Read the node and service state. Read-only.
pub async fn observe(exec: &dyn Executor, t: &Target) -> SwarmState {
    let mut s = SwarmState::default();
    let info = Cmd::new("docker")
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}|{{.Swarm.ControlAvailable}}",
        ])
        .timeout(Duration::from_secs(20));
    if let Ok(o) = exec.run(&info).await
        && o.success()
    {
        let text = o.stdout.trim().to_string();
        let (state, manager) = text.split_once('|').unwrap_or((&text, "false"));
        s.node_state = state.to_string();
        s.manager = manager == "true";
    }
    // Docker loads ip_vs when Swarm sets up the routing mesh; without it (some VM and container
    // kernels) published ports silently refuse connections, which is worth saying up front.
    let loaded = exec
        .read_file(std::path::Path::new("/proc/net/ip_vs"))
        .await;
    s.ipvs = match loaded {
        Ok(Some(_)) => Some(true),
        Ok(None) => Some(false),
        Err(_) => None,
    };
    let inspect = Cmd::new("docker")
        .args([
            "service",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"davit.release\"}}|{{with .PreviousSpec}}{{index .Labels \"davit.release\"}}{{end}}|{{with .UpdateStatus}}{{.State}}{{end}}",
        ])
        .arg(service_name(t))
        .timeout(Duration::from_secs(20));
    if let Ok(o) = exec.run(&inspect).await
        && o.success()
    {
        let text = o.stdout.trim().to_string();
        let mut parts = text.splitn(3, '|');
        s.service = Some(ServiceState {
            release: parts.next().unwrap_or_default().to_string(),
            previous_release: parts.next().unwrap_or_default().to_string(),
            update_state: parts.next().unwrap_or_default().to_string(),
        });
    }
    s
}

/// Refuse before changing anything when this engine cannot run the strategy.
pub fn ready(obs: &Observed, dry_run: bool, warnings: &mut Vec<String>) -> Result<(), Failure> {
    let Some(s) = obs.seen.swarm() else {
        return Ok(());
    };
    let problem = if s.node_state != "active" {
        Some((
            format!(
                "this Docker engine is not in a swarm (state: {})",
                if s.node_state.is_empty() {
                    "unknown"
                } else {
                    &s.node_state
                }
            ),
            "run `docker swarm init --advertise-addr <this host's address>` once on the host (a one-node swarm is fine)",
        ))
    } else if !s.manager {
        Some((
            "this Docker engine is a swarm worker; services can only be changed on a manager"
                .into(),
            "point davit at a manager node (environments.<name>.host)",
        ))
    } else if s.ipvs == Some(false) {
        Some((
            "the kernel has no IPVS (/proc/net/ip_vs is missing), so Swarm's routing mesh cannot serve published ports".into(),
            "use a kernel with CONFIG_IP_VS (modprobe ip_vs), or deploy this environment with strategy = \"blue-green\"",
        ))
    } else {
        None
    };
    match problem {
        Some((what, hint)) if dry_run => {
            warnings.push(format!("{what} (hint: {hint})"));
            Ok(())
        }
        Some((what, hint)) => Err(Failure::infra(format!(
            "swarm deploy refused before changing anything: {what}"
        ))
        .with_hint(hint)),
        None => Ok(()),
    }
}

/// The stack file of a release. Values are JSON strings, which YAML reads verbatim.
pub fn stack_yaml(t: &Target, s: &Swarm, rel: &NewRelease) -> String {
    let q = |v: &str| serde_json::to_string(v).expect("strings serialize");
    let labels: Vec<String> = docker::labels(t, &rel.id, &rel.version, None)
        .iter()
        .map(|l| q(l))
        .collect();
    let labels = labels.join(", ");
    let mut y = format!(
        "# Written by davit for release {id}; undo and rollback apply it again.\n\
         version: \"3.8\"\n\
         services:\n\
         \x20 app:\n\
         \x20   image: {image}\n\
         \x20   env_file: [\"app.env\"]\n\
         \x20   ports:\n\
         \x20     - {{ target: {target}, published: {published}, protocol: tcp, mode: ingress }}\n\
         \x20   # The app drains in-flight requests on SIGTERM; Swarm has already taken the task\n\
         \x20   # out of the routing mesh by then.\n\
         \x20   stop_grace_period: 10s\n\
         \x20   labels: [{labels}]\n\
         \x20   deploy:\n\
         \x20     replicas: {replicas}\n\
         \x20     labels: [{labels}]\n\
         \x20     update_config:\n\
         \x20       parallelism: {parallelism}\n\
         \x20       order: start-first\n\
         \x20       failure_action: rollback\n\
         \x20       monitor: {monitor}s\n\
         \x20       max_failure_ratio: 0\n\
         \x20     rollback_config:\n\
         \x20       parallelism: {parallelism}\n\
         \x20       order: start-first\n\
         \x20       failure_action: pause\n\
         \x20       monitor: {monitor}s\n",
        id = rel.id,
        image = q(&rel.image),
        target = t.app_port,
        published = s.published_port,
        replicas = s.replicas,
        parallelism = s.parallelism,
        monitor = s.monitor_secs,
    );
    if let Some(cmd) = &t.command {
        let items: Vec<String> = cmd.iter().map(|c| q(c)).collect();
        y.push_str(&format!("    command: [{}]\n", items.join(", ")));
    }
    y
}

/// `docker stack deploy` of a release's stack file, waiting for Swarm to converge.
///
/// Images are resolved against a registry only when the pull policy allows it: with
/// `pull = "never"` the image exists only in the local engine (a one-node swarm), and a registry
/// lookup would fail or, worse, pin a different digest.
fn stack_deploy(t: &Target, s: &Swarm, release: &str) -> Cmd {
    let resolve = match t.pull {
        PullPolicy::Never => "never",
        PullPolicy::Missing | PullPolicy::Always => "changed",
    };
    Cmd::new("docker")
        .args(["stack", "deploy", "--detach=false", "--quiet"])
        .args(["--resolve-image", resolve, "--compose-file"])
        .arg(stack_file_path(t, release).display().to_string())
        .arg(t.prefix())
        .timeout(update_timeout(s))
}

fn update_timeout(s: &Swarm) -> Duration {
    Duration::from_secs(s.update_timeout_secs)
}

/// Fails unless Swarm's last update of the service ended in `want` (none is fine for a service
/// that was just created). A missing template is how a Go template fails a command; its name is
/// the message users see.
fn status_check(t: &Target, want: &str) -> Cmd {
    let format = format!(
        "{{{{with .UpdateStatus}}}}{{{{.State}}}}: {{{{.Message}}}}{{{{if ne .State \"{want}\"}}}}{{{{template \"{ROLLED_BACK}; see docker service ps {svc}\"}}}}{{{{end}}}}{{{{end}}}}",
        svc = service_name(t)
    );
    Cmd::new("docker")
        .args(["service", "inspect", "--format"])
        .arg(format)
        .arg(service_name(t))
        .timeout(Duration::from_secs(30))
}

/// The health probe through the published port (the routing mesh): only the new version may
/// answer, `consecutive` times in a row, so tasks of the old version still draining fail it.
pub fn probe(t: &Target, s: &Swarm, version: &str) -> Probe {
    let base = format!("http://127.0.0.1:{}", s.published_port);
    let p = crate::health::probe(t, &base, version);
    Probe {
        consecutive: p.consecutive.max(s.replicas),
        ..p
    }
}

/// Deploy a release: write its stack file, let Swarm roll it out start-first, check Swarm kept
/// it, probe it. A failure re-applies the previous release's stack file (or removes a stack that
/// was just created).
pub fn plan_deploy(t: &Target, s: &Swarm, rel: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "swarm deploy of {} ({}) to {} ({} replica(s), start-first)",
        rel.version, rel.image, t.environment, s.replicas
    ));
    if obs.needs_pull {
        plan.push(
            format!("pull {}", rel.image),
            Step::Exec(docker::pull(&rel.image)),
        );
    }
    crate::push_env_and_pre_hooks(&mut plan, t, rel, obs);
    plan.push(
        "write the release's stack file",
        Step::WriteFile {
            path: stack_file_path(t, &rel.id),
            body: FileBody::Plain(stack_yaml(t, s, rel)),
            mode: 0o644,
        },
    );
    let exists = obs.seen.swarm().is_some_and(|s| s.service.is_some());
    let previous = crate::ledger::live(&obs.ledger)
        .filter(|r| r.strategy == "swarm")
        .map(|r| r.id.clone());
    let undo = match (&previous, exists) {
        (Some(prev), true) => vec![Step::Exec(stack_deploy(t, s, prev))],
        (_, false) => vec![Step::ExecIgnoringFailure(
            Cmd::new("docker")
                .args(["stack", "rm"])
                .arg(t.prefix())
                .timeout(Duration::from_secs(60)),
        )],
        // A service davit has no record of: leave it to Swarm's own rollback.
        (None, true) => Vec::new(),
    };
    plan.push_with_undo(
        if exists {
            "docker stack deploy: Swarm updates the service start-first and waits for it to settle"
        } else {
            "docker stack deploy: create the service and wait for its tasks to run"
        },
        Step::Exec(stack_deploy(t, s, &rel.id)),
        undo,
    );
    plan.push_check(
        format!(
            "check Swarm completed the update (a rollback by Swarm fails the deploy; monitor {}s)",
            s.monitor_secs
        ),
        Step::Exec(status_check(t, "completed")),
    );
    plan.push(
        format!(
            "health gate: {} must answer through the published port",
            rel.version
        ),
        Step::WaitHttp(probe(t, s, &rel.version)),
    );
    crate::push_post_hooks(&mut plan, t, rel);
    plan
}

/// Roll back to a recorded release. When it is exactly the spec Swarm kept as the previous one,
/// use Swarm's own `docker service rollback`; otherwise apply that release's stack file again,
/// which Swarm rolls out start-first like any update.
pub fn plan_rollback(t: &Target, s: &Swarm, to: &NewRelease, obs: &Observed) -> Plan {
    let mut plan = Plan::new(format!(
        "swarm rollback of {} to {}",
        t.environment, to.version
    ));
    let native = obs
        .seen
        .swarm()
        .and_then(|s| s.service.as_ref())
        .is_some_and(|s| s.previous_release == to.id);
    if native {
        plan.push(
            format!(
                "docker service rollback: Swarm returns to its previous spec ({})",
                to.version
            ),
            Step::Exec(
                Cmd::new("docker")
                    .args(["service", "rollback", "--detach=false", "--quiet"])
                    .arg(service_name(t))
                    .timeout(update_timeout(s)),
            ),
        );
        plan.push(
            "check Swarm completed the rollback",
            Step::Exec(status_check(t, "rollback_completed")),
        );
    } else {
        plan.push(
            format!("docker stack deploy with {}'s stack file", to.version),
            Step::Exec(stack_deploy(t, s, &to.id)),
        );
        plan.push(
            "check Swarm completed the update",
            Step::Exec(status_check(t, "completed")),
        );
    }
    plan.push(
        format!(
            "health gate: {} must answer through the published port",
            to.version
        ),
        Step::WaitHttp(probe(t, s, &to.version)),
    );
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Event, Record};
    use davit_config::Config;
    use std::path::Path;

    fn target(swarm: &str) -> Target {
        let text = format!(
            r#"
[app]
name = "shop"
secret_env = ["DATABASE_URL"]

[image]
name = "registry.example.com/acme/shop"

[environments.production]
strategy = "swarm"
[environments.production.swarm]
published_port = 8080
{swarm}
"#
        );
        let cfg = Config::parse(&text, Path::new("davit.toml"), Path::new("/srv/shop")).unwrap();
        Target::resolve(&cfg, "production", &|_| {
            Some("postgres://canary-s3cret".into())
        })
        .unwrap()
    }

    fn rel(version: &str) -> NewRelease {
        NewRelease {
            id: format!("r-{version}"),
            version: version.into(),
            image: format!("registry.example.com/acme/shop:{version}"),
        }
    }

    fn observed(live: Option<&str>, service: Option<ServiceState>) -> Observed {
        Observed {
            ledger: live
                .map(|v| Record {
                    id: format!("r-{v}"),
                    event: Event::Deployed,
                    version: v.into(),
                    image: format!("registry.example.com/acme/shop:{v}"),
                    digest: None,
                    strategy: "swarm".into(),
                    color: None,
                    environment: "production".into(),
                    host: "local".into(),
                    at: "2026-01-01T00:00:00Z".into(),
                    actor: "ci".into(),
                    reason: None,
                    approval: None,
                })
                .into_iter()
                .collect(),
            seen: crate::observe::Seen::Swarm(SwarmState {
                node_state: "active".into(),
                manager: true,
                ipvs: Some(true),
                service,
            }),
            ..Default::default()
        }
    }

    fn service(release: &str, previous: &str) -> Option<ServiceState> {
        Some(ServiceState {
            release: release.into(),
            previous_release: previous.into(),
            update_state: "completed".into(),
        })
    }

    fn render(plan: &Plan) -> String {
        let text = plan.render();
        assert!(!text.contains("canary-s3cret"), "a secret leaked:\n{text}");
        text
    }

    fn sw(t: &Target) -> Swarm {
        match &t.strategy {
            crate::target::StrategySettings::Swarm(s) => s.clone(),
            other => panic!("not a swarm target: {other:?}"),
        }
    }

    fn swarm_of(obs: &mut Observed) -> &mut SwarmState {
        match &mut obs.seen {
            crate::observe::Seen::Swarm(s) => s,
            other => panic!("no swarm observation: {other:?}"),
        }
    }

    #[test]
    fn first_deploy_creates_the_stack_and_removes_it_on_failure() {
        let t = target("");
        insta::assert_snapshot!(render(&plan_deploy(
            &t,
            &sw(&t),
            &rel("v1"),
            &observed(None, None)
        )));
    }

    #[test]
    fn later_deploy_updates_and_reapplies_the_previous_stack_on_failure() {
        let t = target("replicas = 3\nparallelism = 1\nmonitor_secs = 5");
        let plan = plan_deploy(
            &t,
            &sw(&t),
            &rel("v2"),
            &observed(Some("v1"), service("r-v1", "")),
        );
        insta::assert_snapshot!("later_deploy", render(&plan));
        insta::assert_snapshot!("stack_file", stack_yaml(&t, &sw(&t), &rel("v2")));
    }

    #[test]
    fn rollback_to_the_previous_spec_uses_docker_service_rollback() {
        let t = target("");
        let obs = observed(Some("v2"), service("r-v2", "r-v1"));
        insta::assert_snapshot!(render(&plan_rollback(&t, &sw(&t), &rel("v1"), &obs)));
    }

    #[test]
    fn rollback_further_back_applies_that_release_stack_file() {
        let t = target("");
        let obs = observed(Some("v3"), service("r-v3", "r-v2"));
        insta::assert_snapshot!(render(&plan_rollback(&t, &sw(&t), &rel("v1"), &obs)));
    }

    #[tokio::test]
    async fn the_status_check_failure_is_recognised_as_a_rollback() {
        let t = target("");
        let c = status_check(&t, "completed");
        assert!(c.args[3].contains(ROLLED_BACK));
        // Swarm reverted the update: the status check fails, and the failure is a verdict on
        // the release (exit 1), known from the step, not from its message.
        let plan = plan_deploy(
            &t,
            &sw(&t),
            &rel("v2"),
            &observed(Some("v1"), service("r-v1", "")),
        );
        let exec = davit_exec::Recording::new("local").with_output(
            "docker service inspect",
            davit_exec::Output {
                status: 1,
                stderr: format!("template: no template \"{ROLLED_BACK}\""),
                ..Default::default()
            },
        );
        let e = davit_exec::run_plan(&exec, &plan, &davit_exec::runner::Quiet)
            .await
            .unwrap_err();
        assert!(e.verdict, "{e}");
        assert!(plan.steps[e.index - 1].check);
        assert!(e.to_string().contains(ROLLED_BACK), "{e}");
    }

    #[test]
    fn ready_refuses_without_a_swarm_or_ipvs_and_only_warns_in_dry_run() {
        let mut obs = observed(None, None);
        let mut warnings = Vec::new();
        assert!(ready(&obs, false, &mut warnings).is_ok());
        swarm_of(&mut obs).ipvs = Some(false);
        let e = ready(&obs, false, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("IPVS"), "{e}");
        swarm_of(&mut obs).node_state = "inactive".into();
        let e = ready(&obs, false, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("not in a swarm"), "{e}");
        assert!(ready(&obs, true, &mut warnings).is_ok());
        assert_eq!(warnings.len(), 1);
    }
}
