//! Plan snapshots: the exact command lines of every strategy and config variant.
//!
//! These are the first line of defence against a change that alters what runs on users' hosts:
//! a reviewer sees the diff of the planned commands, not just of the code that builds them.

use super::*;
use crate::test_support::{rel, target_from};
use davit_config::Config;
use davit_core::{Exit, FileBody, Step};
use davit_exec::Recording;
use std::path::Path;

const BASE: &str = r#"
state_dir = ".davit/state"
[app]
name = "shop"
secret_env = ["DATABASE_URL"]
env = { MODE = "prod" }

[image]
name = "registry.example.com/acme/shop"

[environments.staging]
strategy = "compose"
port = 8090

[environments.production]
strategy = "blue-green"
ports = { public = 8080, blue = 8081, green = 8082 }
"#;

fn target(extra: &str, env: &str) -> Target {
    target_from(&format!("{BASE}{extra}"), env)
}

fn live(color: &str, version: &str) -> Observed {
    Observed {
        live: Some(nginx::LiveSite {
            color: color.into(),
            release: format!("r-{version}"),
            version: version.into(),
        }),
        seen: Seen::Proxy {
            nginx_running: true,
        },
        image_id: Some("sha256:aaa".into()),
        ..Default::default()
    }
}

/// The deploy plan, made through the strategy the target picks.
fn plan(t: &Target, r: &NewRelease, obs: &Observed) -> Plan {
    strategy::pick(&t.strategy).plan_deploy(t, r, obs)
}

fn ports(t: &Target) -> target::BluGreenPorts {
    match &t.strategy {
        target::StrategySettings::BlueGreen(p) => *p,
        other => panic!("not blue-green: {other:?}"),
    }
}

fn compose_port(t: &Target) -> u16 {
    match &t.strategy {
        target::StrategySettings::Compose { port } => *port,
        other => panic!("not compose: {other:?}"),
    }
}

/// A ledger whose live release is `r-{version}`.
pub(crate) fn ledger_live(version: &str, strategy: &str) -> Vec<ledger::Record> {
    vec![ledger::Record {
        id: format!("r-{version}"),
        event: ledger::Event::Deployed,
        version: version.into(),
        image: format!("registry.example.com/acme/shop:{version}"),
        digest: None,
        strategy: strategy.into(),
        color: None,
        environment: "staging".into(),
        host: "local".into(),
        at: "2026-01-01T00:00:00Z".into(),
        actor: "ci".into(),
        reason: None,
        approval: None,
        processes: Vec::new(),
    }]
}

/// The plan as the dry run shows it, with the planned time of the switch journal's records
/// (see [`crate::journal`]) fixed, so a snapshot does not change with the clock.
fn render(plan: &Plan) -> String {
    let mut text = plan.render();
    let key = "\"at\":\"";
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let start = from + i + key.len();
        let end = start + text[start..].find('"').unwrap();
        text.replace_range(start..end, "<planned>");
        from = start;
    }
    assert!(
        !text.contains("canary-s3cret"),
        "a secret leaked into the plan:\n{text}"
    );
    text
}

#[tokio::test]
async fn blue_green_first_deploy_pulls_starts_nginx() {
    // The whole plan of the host, as the dry run shows it: the pull is the host's preparation,
    // then the strategy's steps; the ledger record (timestamped) is checked apart.
    let t = target("", "production");
    let exec = Recording::new("local");
    let obs = observe(&exec, &t, Some(&rel("v1").image)).await.unwrap();
    assert!(obs.needs_pull);
    let opts = Options {
        dry_run: true,
        ..Default::default()
    };
    let d = host::plan_deploy(
        &exec,
        &t,
        "v1",
        "r-v1",
        obs,
        &opts,
        &davit_exec::runner::Quiet,
    )
    .await
    .unwrap();
    let (records, steps): (Vec<_>, Vec<_>) =
        d.plan.steps.iter().cloned().partition(|s| s.best_effort);
    assert_eq!(
        records.len(),
        3,
        "the switch's done record, the state folder and the ledger record"
    );
    insta::assert_snapshot!(render(&Plan {
        title: d.plan.title.clone(),
        steps,
    }));
}

#[test]
fn blue_green_second_deploy_goes_to_the_idle_color_and_reloads() {
    let t = target("", "production");
    insta::assert_snapshot!(render(&plan(&t, &rel("v2"), &live("blue", "v1"))));
}

#[test]
fn blue_green_with_hooks_snippet_and_custom_health() {
    let t = target(
        r#"
[environments.production.proxy]
snippet = "client_max_body_size 20m;"
listen = "0.0.0.0"
[environments.production.health]
path = "/healthz"
version_field = ""
body_contains = "ok"
consecutive = 5
[[environments.production.hooks.pre_deploy]]
run = ["python", "manage.py", "migrate", "--noinput"]
[[environments.production.hooks.post_deploy]]
run = ["/usr/local/bin/notify", "deployed"]
on = "host"
"#,
        "production",
    );
    let plan = plan(&t, &rel("v3"), &live("green", "v2"));
    let site = plan
        .steps
        .iter()
        .find_map(|s| match &s.step {
            Step::WriteFile { path, body, .. } if path.ends_with("site.conf.candidate") => {
                Some(body.expose().to_string())
            }
            _ => None,
        })
        .unwrap();
    insta::assert_snapshot!("hooks_plan", render(&plan));
    insta::assert_snapshot!("hooks_site_conf", site);
}

#[test]
fn blue_green_rollback_switches_back_and_stops_the_bad_color() {
    let t = target("", "production");
    let obs = live("green", "v3");
    insta::assert_snapshot!(render(&bluegreen::plan_switch_back(
        &t,
        ports(&t),
        "blue",
        &rel("v2"),
        false,
        Some("green"),
        &obs
    )));
}

#[test]
fn compose_first_and_later_deploys() {
    let t = target("", "staging");
    let first_obs = Observed {
        seen: Seen::Compose(Some(docker::ComposeFlavor::Standalone)),
        ..Default::default()
    };
    let first = plan(&t, &rel("v1"), &first_obs);
    insta::assert_snapshot!("compose_first", render(&first));
    let later_obs = Observed {
        seen: Seen::Compose(Some(docker::ComposeFlavor::Plugin)),
        ledger: ledger_live("v1", "compose"),
        ..Default::default()
    };
    let later = plan(&t, &rel("v2"), &later_obs);
    insta::assert_snapshot!("compose_later", render(&later));
    insta::assert_snapshot!(
        "compose_file",
        compose::compose_yaml(&t, compose_port(&t), &rel("v2"))
    );
}

#[test]
fn env_file_holds_the_secret_but_the_plan_does_not() {
    let t = target("", "production");
    let text = docker::env_file(&t, "r-v1", "v1");
    assert!(text.contains("DATABASE_URL=postgres://u:canary-s3cret@db/shop\n"));
    assert!(text.contains("DAVIT_VERSION=v1\n"));
    let plan = plan(&t, &rel("v1"), &Observed::default());
    let env_step = plan
        .steps
        .iter()
        .find(|s| matches!(&s.step, Step::WriteFile { path, .. } if path.ends_with("app.env")))
        .unwrap();
    assert!(matches!(
        &env_step.step,
        Step::WriteFile {
            body: FileBody::Secret(_),
            mode: 0o600,
            ..
        }
    ));
}

#[tokio::test]
async fn dry_run_observes_and_plans_without_changing_anything() {
    let t = target("", "production");
    let site = nginx::site_conf(&t, ports(&t).public, "blue", "r-v1", "v1", 8081);
    let exec = Recording::new("local")
        .with_file(t.proxy_dir().join("site.conf"), site)
        .with_output(
            "docker image inspect",
            davit_exec::Output {
                status: 0,
                stdout: "sha256:abc\n".into(),
                ..Default::default()
            },
        );
    let report = deploy(
        &exec,
        &t,
        "v2",
        &Options {
            dry_run: true,
            ..Default::default()
        },
        &davit_exec::runner::Quiet,
    )
    .await
    .unwrap();
    assert!(report.record.is_none());
    assert!(
        report.plan.title.contains("as green"),
        "{}",
        report.plan.title
    );
    // Only read-only commands ran: inspecting the image.
    for line in exec.log() {
        assert!(
            line.starts_with("run docker image inspect"),
            "dry-run did more than observe: {line}"
        );
    }
}

#[tokio::test]
async fn hostile_version_is_rejected_before_anything_runs() {
    let t = target("", "production");
    let exec = Recording::new("local");
    for v in ["--privileged", "v1; id", "$(id)", "a\nb"] {
        let e = deploy(
            &exec,
            &t,
            v,
            &Options::default(),
            &davit_exec::runner::Quiet,
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit, Exit::BadInput, "{v:?}");
    }
    assert!(exec.log().is_empty());
}

#[tokio::test]
async fn missing_programs_are_named_together_before_running() {
    let t = target("", "production");
    let exec = Recording::new("local")
        .without_program("nginx")
        .with_output(
            "docker image inspect",
            davit_exec::Output {
                status: 0,
                stdout: "sha256:abc\n".into(),
                ..Default::default()
            },
        );
    let e = deploy(
        &exec,
        &t,
        "v1",
        &Options::default(),
        &davit_exec::runner::Quiet,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit, Exit::Infra);
    assert!(e.to_string().contains("missing on local: nginx"), "{e}");
    assert!(e.to_string().contains("apt-get install nginx-light"), "{e}");
    assert!(exec.log().iter().all(|l| !l.contains("docker run")));
}

#[tokio::test]
async fn a_missing_secret_stops_a_deploy_before_anything_runs() {
    let cfg = Config::parse(BASE, Path::new("davit.toml"), Path::new("/srv/shop")).unwrap();
    let t = Target::resolve(&cfg, "production", &|_| None).unwrap();
    assert_eq!(t.missing_secrets, vec!["DATABASE_URL"]);
    let exec = Recording::new("local");
    let e = deploy(
        &exec,
        &t,
        "v1",
        &Options::default(),
        &davit_exec::runner::Quiet,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit, Exit::BadInput);
    assert!(e.message.contains("DATABASE_URL"), "{e}");
    assert!(exec.log().is_empty(), "{:?}", exec.log());
}

/// Swarm and Kubernetes through the trait, as the orchestrator plans them.
#[test]
fn swarm_and_kubernetes_plans_through_the_strategy() {
    let swarm = target(
        "[environments.swarm]\nstrategy = \"swarm\"\n[environments.swarm.swarm]\npublished_port = 8085\n",
        "swarm",
    );
    let obs = Observed {
        seen: Seen::Swarm(swarm::SwarmState {
            node_state: "active".into(),
            manager: true,
            service: None,
        }),
        ..Default::default()
    };
    insta::assert_snapshot!("swarm_first", render(&plan(&swarm, &rel("v1"), &obs)));
    let k8s = target(
        "[environments.k8s]\nstrategy = \"kubernetes\"\nurl = \"https://shop.example.com\"\n[environments.k8s.kubernetes]\nnamespace = \"shop\"\ndeployment = \"web\"\ncontainer = \"app\"\n",
        "k8s",
    );
    let obs = Observed {
        ledger: ledger_live("v1", "kubernetes"),
        ..Default::default()
    };
    insta::assert_snapshot!("kubernetes_later", render(&plan(&k8s, &rel("v2"), &obs)));
}

const PROCESSES: &str = r#"
[processes.web]
volumes = ["media:/app/media"]
[processes.worker]
command = ["celery", "-A", "shop", "worker"]
replicas = 2
stop_grace_secs = 60
volumes = ["media:/app/media"]
[processes.beat]
command = ["celery", "-A", "shop", "beat"]
singleton = true
[volumes.media]
[[environments.production.hooks.pre_deploy]]
run = ["python", "manage.py", "migrate", "--noinput"]
[[environments.production.hooks.post_deploy]]
run = ["/usr/local/bin/notify", "deployed"]
on = "host"
"#;

/// v2 live in green with its worker (2 replicas) and beat running.
fn with_processes_live() -> Observed {
    let mut obs = live("green", "v2");
    let c = |process: &str, replica: u32| processes::ProcContainer {
        name: format!("shop-production-{process}-r-v2-{replica}"),
        process: process.into(),
        release: "r-v2".into(),
        version: "v2".into(),
        running: true,
        color: String::new(),
    };
    obs.procs = Some(processes::ProcObserved {
        containers: vec![c("beat", 1), c("worker", 1), c("worker", 2)],
        network_exists: true,
    });
    obs
}

/// A blue-green deploy with processes: the volume before the migration (which runs on the app
/// network), the new workers and the singleton around the web's gate and switch, the old workers
/// drained after it, then the post-deploy hook; the web on the network with its volume.
#[test]
fn blue_green_with_processes_moves_every_process_around_the_switch() {
    let t = target(PROCESSES, "production");
    let plan = plan(&t, &rel("v3"), &with_processes_live());
    let text = render(&plan);
    insta::assert_snapshot!("processes_blue_green_deploy", text);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} not in:\n{text}"))
    };
    assert!(at("volume shop-production_media exists") < at("pre-deploy hook 1"));
    assert!(at("--network shop-production registry.example.com/acme/shop:v3 python") > 0);
    assert!(at("pre-deploy hook 1") < at("start worker 1/2 of v3"));
    assert!(at("start worker 2/2 of v3") < at("stop beat of v2"));
    assert!(at("stop beat of v2") < at("start beat 1/1 of v3"));
    assert!(at("start beat 1/1 of v3") < at("start blue with v3"));
    assert!(at("switch: rename") < at("drain worker of v2"));
    assert!(at("drain worker of v2") < at("post-deploy hook 1"));
    assert!(at("--mount type=volume,source=shop-production_media,target=/app/media") > 0);
    assert!(text.contains("--label davit.process=web"));
}

/// A rollback moves every process back around the switch and runs no hook.
#[test]
fn blue_green_rollback_with_processes_runs_no_hook() {
    let t = target(PROCESSES, "production");
    let mut obs = with_processes_live();
    obs.live = Some(nginx::LiveSite {
        color: "green".into(),
        release: "r-v2".into(),
        version: "v2".into(),
    });
    let back = bluegreen::plan_switch_back(
        &t,
        ports(&t),
        "blue",
        &rel("v1"),
        false,
        Some("green"),
        &obs,
    );
    let text = render(&back);
    assert!(!text.contains("hook"), "{text}");
    assert!(text.contains("start worker 1/2 of v1") && text.contains("drain worker of v2"));
    assert!(
        text.find("drain worker of v2").unwrap()
            < text.find("stop the rolled-back green container").unwrap(),
        "{text}"
    );
    let redeploy = bluegreen::plan_redeploy(&t, ports(&t), &rel("v1"), Some("green"), &obs);
    let text = render(&redeploy);
    assert!(
        !text.contains("hook"),
        "a re-created release ran a hook:\n{text}"
    );
}
