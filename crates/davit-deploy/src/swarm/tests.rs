//! The swarm planner's unit and snapshot tests: plans for first and later deploys, rollbacks to
//! the previous spec and further back, the stack file, and the readiness checks; in a file of
//! their own so swarm.rs holds only the planner.

use super::*;
use crate::ledger::{Event, Record};
use crate::test_support::{rel, target_from};

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
    target_from(
        &format!("state_dir = \".davit/state\"\n{text}"),
        "production",
    )
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
                processes: Vec::new(),
            })
            .into_iter()
            .collect(),
        seen: crate::observe::Seen::Swarm(SwarmState {
            node_state: "active".into(),
            manager: true,
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

#[test]
fn the_node_report_names_the_node_check_failure() {
    // NODE_REPORT spells NODES_DIFFER out (concat! takes only literals): keep them equal.
    assert!(NODE_REPORT.contains(NODES_DIFFER));
    assert!(node_check(&target(""), "shop:v1").args[1].contains(NODES_DIFFER));
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

#[tokio::test]
async fn the_gate_probes_every_ready_node_and_names_the_one_that_lags() {
    let t = target("");
    let answer = |v: &str| davit_exec::HttpResponse {
        status: 200,
        body: format!("{{\"version\":\"{v}\"}}"),
        ..Default::default()
    };
    let exec = || {
        davit_exec::Recording::new("manager")
            .with_output(
                "sh -c",
                davit_exec::Output {
                    stdout: "web-1 127.0.0.1\nweb-2 10.0.0.12\n".into(),
                    ..Default::default()
                },
            )
            .with_http("http://127.0.0.1:8080/health", vec![answer("v2")])
    };
    let p = Probe {
        interval: Duration::from_millis(1),
        deadline: Duration::from_millis(50),
        ..probe(&t, &sw(&t), "v2")
    };
    // web-2's proxy still reaches a task of v1: the gate fails and names the node.
    let lagging = exec().with_http("http://10.0.0.12:8080/health", vec![answer("v1")]);
    let e = probe_nodes(&lagging, &p).await.unwrap_err();
    assert!(e.to_string().contains("node web-2's proxy"), "{e}");
    // Both serve v2: passes, having asked each node's own address.
    let both = exec().with_http("http://10.0.0.12:8080/health", vec![answer("v2")]);
    probe_nodes(&both, &p).await.unwrap();
    let log = both.log();
    assert!(
        log.iter().any(|l| l == "GET http://10.0.0.12:8080/health"),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l == "GET http://127.0.0.1:8080/health"),
        "{log:?}"
    );
}

#[test]
fn ready_refuses_without_a_swarm_or_on_a_worker_and_only_warns_in_dry_run() {
    let mut obs = observed(None, None);
    let mut warnings = Vec::new();
    assert!(ready(&obs, false, &mut warnings).is_ok());
    swarm_of(&mut obs).manager = false;
    let e = ready(&obs, false, &mut warnings).unwrap_err();
    assert!(e.to_string().contains("worker"), "{e}");
    swarm_of(&mut obs).node_state = "inactive".into();
    let e = ready(&obs, false, &mut warnings).unwrap_err();
    assert!(e.to_string().contains("not in a swarm"), "{e}");
    assert!(ready(&obs, true, &mut warnings).is_ok());
    assert_eq!(warnings.len(), 1);
}
