//! Process plans: snapshots of the exact commands, and the undo that reverts every process.

use super::*;
use davit_config::{Config, Resolve};
use davit_exec::runner::Quiet;
use davit_exec::{Output, Recording, run_plan};
use std::path::Path;

fn example_set() -> AppSet {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/django-celery");
    let cfg = Config::load(&Path::new(dir).join("davit.toml")).unwrap();
    cfg.app_set(&Resolve {
        env_name: "production",
        lookup: &|_| None,
    })
    .unwrap()
}

fn rel<'a>(id: &'a str, version: &'a str, image: &'a str) -> ProcRelease<'a> {
    ProcRelease {
        app: "tasks",
        environment: "production",
        id,
        version,
        image,
        env_file: Path::new("/var/lib/davit/tasks-production/releases/r/app.env"),
    }
}

fn running(process: &str, release: &str, version: &str) -> ProcContainer {
    ProcContainer {
        name: format!("tasks-production-{process}-{release}-1"),
        process: process.into(),
        release: release.into(),
        version: version.into(),
        running: true,
        color: String::new(),
    }
}

fn v1_running() -> ProcObserved {
    ProcObserved {
        containers: vec![
            running("celery-beat", "r1", "v1"),
            running("celery-worker", "r1", "v1"),
        ],
        network_exists: true,
    }
}

fn web_marker(plan: &mut Plan) {
    plan.push(
        "web: the strategy's steps (blue-green)",
        Step::Exec(Cmd::new("web-switch")),
    );
}

fn plan_for(set: &AppSet, r: &ProcRelease, seen: &ProcObserved) -> Plan {
    let mut plan = Plan::new(format!("move every process to {}", r.version));
    plan_network_and_volumes(&mut plan, set, &process_volumes(set), seen.network_exists);
    plan_release(&mut plan, set, r, seen, web_marker);
    plan.push("record the release", Step::Exec(Cmd::new("ledger")));
    plan_cleanup(&mut plan, r, seen, set);
    plan
}

#[test]
fn first_deploy_creates_network_and_volumes_and_starts_every_process() {
    let set = example_set();
    let r = rel("r1", "v1", "davit-examples/django-celery:v1");
    let plan = plan_for(&set, &r, &ProcObserved::default());
    insta::assert_snapshot!("processes_first_deploy", plan.render());
}

#[test]
fn second_deploy_starts_new_swaps_the_singleton_then_drains_old() {
    let set = example_set();
    let r = rel("r2", "v2", "davit-examples/django-celery:v2");
    let plan = plan_for(&set, &r, &v1_running());
    let text = plan.render();
    insta::assert_snapshot!("processes_second_deploy", text);
    // Order: new worker ready, old beat stopped, new beat, web, old worker drained, cleanup.
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} not in:\n{text}"))
    };
    assert!(at("start celery-worker 1/1 of v2") < at("stop celery-beat of v1"));
    assert!(at("stop celery-beat of v1") < at("start celery-beat 1/1 of v2"));
    assert!(at("start celery-beat 1/1 of v2") < at("web-switch"));
    assert!(at("web-switch") < at("drain celery-worker of v1"));
    assert!(at("drain celery-worker of v1") < at("ledger"));
    assert!(at("ledger") < at("remove celery-worker of v1"));
    // Celery's warm shutdown: SIGTERM and the compose file's 60 s grace.
    assert!(text.contains("docker stop --time 60 tasks-production-celery-worker-r1-1"));
    assert!(text.contains("--stop-signal SIGTERM --stop-timeout 60"));
    // Volumes are never removed, containers never with theirs.
    assert!(!text.contains("volume rm") && !text.contains("rm -v") && !text.contains("prune"));
}

#[test]
fn a_rollback_is_the_same_move_to_the_recorded_release() {
    let set = example_set();
    let seen = ProcObserved {
        containers: vec![
            running("celery-beat", "r3", "v3"),
            running("celery-worker", "r3", "v3"),
        ],
        network_exists: true,
    };
    let r = rel("r2", "v2", "davit-examples/django-celery:v2");
    let plan = plan_for(&set, &r, &seen);
    insta::assert_snapshot!("processes_rollback", plan.render());
}

#[test]
fn a_rerun_after_an_interruption_keeps_what_already_runs() {
    let set = example_set();
    let mut seen = v1_running();
    // The new worker is up; the new beat was left stopped by a run that was killed.
    seen.containers.push(running("celery-worker", "r2", "v2"));
    let mut beat = running("celery-beat", "r2", "v2");
    beat.running = false;
    seen.containers.push(beat);
    let r = rel("r2", "v2", "davit-examples/django-celery:v2");
    let text = plan_for(&set, &r, &seen).render();
    assert!(!text.contains("start celery-worker"), "{text}");
    assert!(
        text.contains("remove tasks-production-celery-beat-r2-1, a stopped leftover"),
        "{text}"
    );
    assert!(text.contains("start celery-beat 1/1 of v2"), "{text}");
}

#[test]
fn a_process_the_new_release_dropped_is_drained_and_removed() {
    let set = example_set();
    let mut seen = v1_running();
    seen.containers.push(running("flower", "r1", "v1"));
    let r = rel("r2", "v2", "davit-examples/django-celery:v2");
    let text = plan_for(&set, &r, &seen).render();
    assert!(text.contains("drain flower of v1 (tasks-production-flower-r1-1): stop signal, then up to 30s for it to stop (the new release has no such process)"), "{text}");
    assert!(text.contains("remove flower of v1"), "{text}");
}

/// A failure at the web switch reverts every process: the new ones stop and go, the old
/// singleton starts again (after the new one stopped: never two), the old worker keeps running.
#[tokio::test]
async fn a_failed_web_switch_reverts_every_process() {
    let set = example_set();
    let r = rel("r2", "v2", "davit-examples/django-celery:v2");
    let plan = plan_for(&set, &r, &v1_running());
    let ok = |s: &str| Output {
        status: 0,
        stdout: s.into(),
        stderr: String::new(),
    };
    let exec = Recording::new("host")
        .with_output("docker inspect", ok("true|t0|0|healthy\n"))
        .with_output(
            "web-switch",
            Output {
                status: 1,
                stdout: String::new(),
                stderr: "health gate failed".into(),
            },
        );
    // Beat's readiness is "stays up 5 s": real time, kept short by the test's patience.
    let err = run_plan(&exec, &plan, &Quiet).await.unwrap_err();
    assert!(err.summary.contains("web"), "{err:?}");
    assert!(err.undo_errors.is_empty(), "{err:?}");
    let log: Vec<String> = exec
        .log()
        .into_iter()
        .filter(|l| {
            l.starts_with("run docker stop")
                || l.starts_with("run docker start")
                || l.starts_with("run docker rm")
                || l.starts_with("run docker run")
        })
        .map(|l| l.split(" --label").next().unwrap().to_string())
        .collect();
    assert_eq!(
        log,
        [
            "run docker run -d --name tasks-production-celery-worker-r2-1",
            "run docker stop --time 10 tasks-production-celery-beat-r1-1",
            "run docker run -d --name tasks-production-celery-beat-r2-1",
            // undo, in reverse: new beat stops and goes, then the old one starts again
            "run docker stop --time 10 tasks-production-celery-beat-r2-1",
            "run docker rm -f tasks-production-celery-beat-r2-1",
            "run docker start tasks-production-celery-beat-r1-1",
            "run docker stop --time 60 tasks-production-celery-worker-r2-1",
            "run docker rm -f tasks-production-celery-worker-r2-1",
        ]
    );
}

#[test]
fn ps_output_is_read_by_labels() {
    // The last column (the color) is empty for every process but web; Docker prints it as a
    // trailing tab.
    let out = "tasks-production-celery-worker-r1-1\tcelery-worker\tr1\tv1\trunning\t\n\
               tasks-production-celery-beat-r1-1\tcelery-beat\tr1\tv1\texited\t\n\
               davit-tasks-production-blue\tbackend\tr1\tv1\trunning\tblue\n\
               garbage line\n";
    let mut seen = parse_ps(out);
    assert_eq!(seen.len(), 3);
    let web = seen.remove(0);
    assert_eq!(
        (web.process.as_str(), web.color.as_str()),
        ("backend", "blue")
    );
    assert!(!seen[0].running && seen[0].process == "celery-beat");
    assert!(seen[1].running && seen[1].color.is_empty());
    let v = versions(&ProcObserved {
        containers: seen,
        network_exists: true,
    });
    assert_eq!(v, [("celery-worker".to_string(), "v1".to_string(), 1)]);
    assert_eq!(
        ps_cmd("tasks", "production").render(),
        "docker ps -a --no-trunc --filter label=davit.app=tasks --filter label=davit.environment=production --filter label=davit.process --format '{{.Names}}\t{{.Label \"davit.process\"}}\t{{.Label \"davit.release\"}}\t{{.Label \"davit.version\"}}\t{{.State}}\t{{.Label \"davit.color\"}}'"
    );
}

#[test]
fn the_singleton_gap_comes_from_dockers_timestamps() {
    assert_eq!(
        gap("2026-12-06T07:00:00.250Z", "2026-12-06T07:00:01.000Z"),
        Some(Duration::from_millis(750))
    );
    // A new one that started before the old one finished would be two at once: not a gap.
    assert_eq!(gap("2026-12-06T07:00:01Z", "2026-12-06T07:00:00Z"), None);
    assert_eq!(gap("0001-01-01T00:00:00Z", "garbage"), None);
}
