//! Deploy, switch, verify and rollback on the real Docker engine and a real nginx.
//!
//! Each test has its own sandbox (app name, ports, state folder) and image repository, so they
//! run in parallel and one test pruning an image cannot disturb another.

use davit_core::Exit;
use davit_deploy::{Options, nginx::Files};
use davit_exec::{Executor, Local, runner::Quiet};
use davit_tests::*;

#[path = "../../crates/davit-image/tests/common/registry.rs"]
mod registry;
use std::time::Duration;

fn opts() -> Options {
    Options::default()
}

#[test]
fn blue_green_deploy_switch_rollback_and_roll_forward() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-bg";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-bg");
    let t = sb.target(repo, "production", "");
    let public = format!("http://127.0.0.1:{}/", sb.public);
    block_on(async {
        let exec = Local::new();
        let r1 = davit_deploy::deploy(&exec, &t, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(r1.record.as_ref().unwrap().color.as_deref(), Some("blue"));
        assert!(r1.record.unwrap().digest.unwrap().starts_with("sha256:"));
        assert_eq!(version_at(&public).await, "v1");

        davit_deploy::deploy(&exec, &t, "v2", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&public).await, "v2");
        // The old color keeps running for an instant rollback.
        assert_eq!(
            container_state(&sb.container("production", "blue")),
            Some(true)
        );

        let rb = davit_deploy::rollback(&exec, &t, None, "test", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(rb.record.unwrap().version, "v1");
        assert_eq!(version_at(&public).await, "v1");
        // The rolled-back color is stopped but kept (its logs stay readable).
        assert_eq!(
            container_state(&sb.container("production", "green")),
            Some(false)
        );

        // Roll forward to a chosen version: the stopped container is started again.
        davit_deploy::rollback(&exec, &t, Some("v2"), "forward", &opts(), &Quiet)
            .await
            .unwrap_err(); // v2 was rolled back away from: it is bad, so it is not a target
        davit_deploy::deploy(&exec, &t, "v2", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&public).await, "v2");
    });
    assert_eq!(
        ledger_events(&t),
        vec![
            "deployed:v1",
            "deployed:v2",
            "rolled_back:v2",
            "restored:v1",
            "deployed:v2"
        ]
    );
}

#[test]
fn compose_deploy_health_gate_and_rollback() {
    if !require_all(&["docker"]) {
        return;
    }
    let repo = "davit-test-compose";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-compose");
    let t = sb.target(repo, "staging", "");
    let url = format!("http://127.0.0.1:{}/", sb.staging);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&url).await, "v1");
        davit_deploy::deploy(&exec, &t, "v2", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&url).await, "v2");
        let env_file = davit_deploy::env_path(
            &t,
            &davit_deploy::ledger::live(
                &davit_deploy::observe(&exec, &t, None).await.unwrap().ledger,
            )
            .unwrap()
            .id,
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        davit_deploy::rollback(&exec, &t, None, "test", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&url).await, "v1");
    });
    assert_eq!(
        ledger_events(&t),
        vec![
            "deployed:v1",
            "deployed:v2",
            "rolled_back:v2",
            "restored:v1"
        ]
    );
}

/// T14: a release whose health never passes (500, exits at once, slow start past the deadline)
/// is never switched to; its container is removed; the old version keeps serving.
#[test]
fn t14_health_never_passes() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t14";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "never", &[("FAULT_NEVER_HEALTHY", "1")]);
    demo_image(repo, "exits", &[("FAULT_CRASH_AFTER_SECS", "0")]);
    demo_image(repo, "slow", &[("FAULT_SLOW_START_SECS", "30")]);
    let sb = Sandbox::new("t-t14");
    let t = sb.target(
        repo,
        "production",
        "[environments.production.health]\ninterval_ms = 100\nconsecutive = 2\ndeadline_secs = 3\n",
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let site = Files::of(&t).site();
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        let live_before = std::fs::read(&site).unwrap();
        for bad in ["never", "exits", "slow"] {
            let e = davit_deploy::deploy(&exec, &t, bad, &opts(), &Quiet)
                .await
                .unwrap_err();
            assert_eq!(e.exit, Exit::Rejected, "{bad}: {e}");
            assert!(
                e.message.contains("traffic stays on the previous release"),
                "{e}"
            );
            assert_eq!(
                container_state(&sb.container("production", "green")),
                None,
                "{bad}: the failed color must be removed"
            );
            assert_eq!(std::fs::read(&site).unwrap(), live_before, "{bad}");
            assert_eq!(version_at(&public).await, "v1", "{bad}");
        }
    });
    assert_eq!(
        ledger_events(&t),
        vec!["deployed:v1", "failed:never", "failed:exits", "failed:slow"]
    );
}

/// T17: a candidate nginx rejects is never made live: no reload, the live file is byte-identical,
/// the old version keeps serving, and nginx still starts from the live file afterwards.
#[test]
fn t17_nginx_invalid_config() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t17";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t17");
    let good = sb.target(repo, "production", "");
    let bad = sb.target(
        repo,
        "production",
        "[environments.production.proxy]\nsnippet = \"bogus_directive on;\"\n",
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&good);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &good, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        let live_before = std::fs::read(files.site()).unwrap();
        let pid_before = std::fs::read_to_string(files.pid()).unwrap();
        let e = davit_deploy::deploy(&exec, &bad, "v2", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Infra, "{e}");
        assert!(e.message.contains("bogus_directive"), "{e}");
        assert_eq!(std::fs::read(files.site()).unwrap(), live_before);
        assert!(!files.candidate_site().exists(), "candidate left behind");
        assert_eq!(std::fs::read_to_string(files.pid()).unwrap(), pid_before);
        assert_eq!(container_state(&sb.container("production", "green")), None);
        assert_eq!(version_at(&public).await, "v1");
        // A restart from the live configuration still works.
        exec.run_ok(&files.stop()).await.unwrap();
        for _ in 0..50 {
            if !files.pid().exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        exec.run_ok(&files.start()).await.unwrap();
        assert_eq!(version_at(&public).await, "v1");
    });
}

/// Write an nginx stand-in that runs the real nginx except for `-s reload`, which it makes
/// a no-op that claims success (T19) or a failure (T18).
fn nginx_wrapper(dir: &std::path::Path, reload: &str) -> String {
    let real = which::which("nginx").unwrap();
    let path = dir.join(format!(
        "nginx-{}",
        if reload == "0" { "noop" } else { "fail" }
    ));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = reload ] && exit {reload}; done\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// T19: the switch "succeeds" (reload exits 0) but traffic still reaches the old color: the
/// check through the public path catches it, the switch is reverted and the deploy fails.
#[test]
fn t19_switch_verified_through_public_path() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t19";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t19");
    let good = sb.target(repo, "production", "");
    let noop = nginx_wrapper(sb.dir.path(), "0");
    let lying = sb.target(
        repo,
        "production",
        &format!("[environments.production.proxy]\nnginx = \"{noop}\"\n"),
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&good);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &good, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        let live_before = std::fs::read(files.site()).unwrap();
        let e = davit_deploy::deploy(&exec, &lying, "v2", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Rejected, "{e}");
        assert!(e.message.contains("verify through the public path"), "{e}");
        assert!(e.message.contains(".version is Some(\"v1\")"), "{e}");
        assert_eq!(
            std::fs::read(files.site()).unwrap(),
            live_before,
            "switch not reverted"
        );
        assert_eq!(container_state(&sb.container("production", "green")), None);
        assert_eq!(version_at(&public).await, "v1");
    });
    assert_eq!(ledger_events(&good), vec!["deployed:v1", "failed:v2"]);
}

/// T18: nginx reload fails at runtime: the previous site file is restored and traffic is served
/// by the old color throughout.
#[test]
fn t18_nginx_reload_fails() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t18";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t18");
    let good = sb.target(repo, "production", "");
    let failing = nginx_wrapper(sb.dir.path(), "1");
    let broken = sb.target(
        repo,
        "production",
        &format!("[environments.production.proxy]\nnginx = \"{failing}\"\n"),
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&good);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &good, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        let live_before = std::fs::read(files.site()).unwrap();
        let e = davit_deploy::deploy(&exec, &broken, "v2", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert!(e.message.contains("reload nginx"), "{e}");
        assert_eq!(std::fs::read(files.site()).unwrap(), live_before);
        assert_eq!(version_at(&public).await, "v1");
        // And the next deploy with a working nginx goes through.
        davit_deploy::deploy(&exec, &good, "v2", &opts(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&public).await, "v2");
    });
}

/// A production sandbox with `v1` then `v2` (built with `v2_faults`) deployed blue-green.
fn v1_then_v2(
    repo: &str,
    app: &str,
    v2_faults: &[(&str, &str)],
) -> (Sandbox, davit_deploy::Target) {
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", v2_faults);
    let sb = Sandbox::new(app);
    let t = sb.target(repo, "production", "");
    block_on(async {
        for v in ["v1", "v2"] {
            davit_deploy::deploy(&Local::new(), &t, v, &opts(), &Quiet)
                .await
                .unwrap();
        }
    });
    (sb, t)
}

/// T31: when the rollback target's container and image are gone, rollback refuses before
/// touching anything: the live release keeps serving and the ledger gains nothing.
#[test]
fn t31_rollback_target_missing_is_refused_first() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t31";
    let (sb, t) = v1_then_v2(repo, "t-t31", &[]);
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&t);
    block_on(async {
        let exec = Local::new();
        // Prune the previous release: container and image.
        std::process::Command::new("docker")
            .args(["rm", "-f", &sb.container("production", "blue")])
            .output()
            .unwrap();
        let rmi = std::process::Command::new("docker")
            .args(["rmi", &format!("{repo}:v1")])
            .output()
            .unwrap();
        assert!(
            rmi.status.success(),
            "{}",
            String::from_utf8_lossy(&rmi.stderr)
        );
        let ledger_before = std::fs::read(t.ledger_path()).unwrap();
        let live_before = std::fs::read(files.site()).unwrap();
        let e = davit_deploy::rollback(&exec, &t, None, "test", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert!(
            e.message.contains("refused before changing anything"),
            "{e}"
        );
        assert!(
            e.hint
                .as_deref()
                .unwrap()
                .contains(&format!("docker pull {repo}:v1")),
            "{e}"
        );
        assert_eq!(std::fs::read(t.ledger_path()).unwrap(), ledger_before);
        assert_eq!(std::fs::read(files.site()).unwrap(), live_before);
        assert_eq!(
            container_state(&sb.container("production", "green")),
            Some(true)
        );
        assert_eq!(version_at(&public).await, "v2");
    });
}

/// Verify: a release that passes its health gate and then fails is caught in the watch window
/// and rolled back; the rollback is verified through the public path.
#[test]
fn verify_rolls_back_a_release_that_goes_bad() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-verify";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2-bad", &[("FAULT_FAIL_AFTER_SECS", "3")]);
    let sb = Sandbox::new("t-verify");
    let t = sb.target(
        repo,
        "production",
        "[environments.production.verify]\nwatch_secs = 15\ninterval_ms = 200\nfailure_limit = 3\n",
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &opts(), &Quiet)
            .await
            .unwrap();
        davit_deploy::deploy(&exec, &t, "v2-bad", &opts(), &Quiet)
            .await
            .unwrap();
        let tl = davit_exec::Timeline::new(Box::new(std::io::sink()));
        let mut o = davit_verify::VerifyOptions::from_target(&t);
        o.version = Some("v2-bad".into());
        let verdict = davit_verify::verify(&exec, &t, &o, &tl).await.unwrap();
        assert!(!verdict.healthy);
        assert_eq!(verdict.exit(), Exit::Rejected);
        assert_eq!(verdict.rolled_back_to.as_deref(), Some("v1"));
        assert_eq!(verdict.measurements.iter().filter(|m| !m.ok).count(), 3);
        assert_eq!(version_at(&public).await, "v1");
        // A good release passes verification and stays.
        let mut o = davit_verify::VerifyOptions::from_target(&t);
        o.watch = Duration::from_secs(2);
        let verdict = davit_verify::verify(&exec, &t, &o, &tl).await.unwrap();
        assert!(verdict.healthy, "{:?}", verdict.reason);
    });
    assert_eq!(
        ledger_events(&t),
        vec![
            "deployed:v1",
            "deployed:v2-bad",
            "rolled_back:v2-bad",
            "restored:v1"
        ]
    );
}

/// T32: the release is bad and so is the one to roll back to. Verify detects the bad release,
/// tries the rollback once, finds the target unhealthy and stops: no switch to a dead color, the
/// current release keeps serving, the live config is untouched (no flapping), the ledger records
/// the failed rollback, and the error says both things and what to do.
#[test]
fn t32_rollback_target_also_unhealthy_stops_without_flapping() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let (sb, t) = v1_then_v2("davit-test-t32", "t-t32", &[("FAULT_FAIL_AFTER_SECS", "2")]);
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&t);
    block_on(async {
        let exec = Local::new();
        // The kept color stops answering (frozen, as a hung process would be).
        let blue = sb.container("production", "blue");
        let pause = std::process::Command::new("docker")
            .args(["pause", &blue])
            .output()
            .unwrap();
        assert!(pause.status.success(), "{pause:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let live_before = std::fs::read(files.site()).unwrap();
        let mut vopts = davit_verify::VerifyOptions::from_target(&t);
        vopts.watch = Duration::from_secs(10);
        vopts.interval = Duration::from_millis(200);
        vopts.failure_limit = 2;
        vopts.rollback = true;
        let e = davit_verify::verify(&exec, &t, &vopts, &davit_exec::Timeline::default())
            .await
            .unwrap_err();
        let _ = std::process::Command::new("docker")
            .args(["unpause", &blue])
            .output();
        assert!(
            e.message.contains("v2 failed verification") && e.message.contains("rollback"),
            "{e}"
        );
        assert!(e.hint.is_some(), "{e}");
        assert_eq!(
            std::fs::read(files.site()).unwrap(),
            live_before,
            "the live config must not move to a dead color"
        );
        let (_, version, _) = get(&public).await.expect("nginx still answers");
        assert_eq!(version, "v2", "the current release keeps serving");
        assert_eq!(
            container_state(&sb.container("production", "green")),
            Some(true)
        );
        let events = ledger_events(&t);
        assert_eq!(
            events.iter().filter(|e| e.starts_with("failed")).count(),
            1,
            "one attempt, no retry loop: {events:?}"
        );
    });
}

/// T24: the registry fails. An unknown tag stops the deploy at once with the fix; a registry that
/// is down is tried a bounded number of times, then the deploy stops. Either way nothing new
/// was started and the live release keeps serving.
#[test]
fn t24_registry_failures_stop_the_deploy_before_anything_starts() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let Some(registry) = registry::Registry::start() else {
        return;
    };
    let repo = format!("{}/davit-test-t24", registry.addr);
    demo_image(&repo, "v1", &[]);
    let sb = Sandbox::new("t-t24");
    let config = sb.dir.path().join("davit.toml");
    std::fs::write(
        &config,
        sb.config_text(&repo, "")
            .replace("pull = \"never\"", "pull = \"missing\""),
    )
    .unwrap();
    let cfg = davit_config::Config::load(&config).unwrap();
    let t = davit_deploy::Target::resolve(&cfg, "production", &|_| None).unwrap();
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let green = sb.container("production", "green");
    block_on(async {
        let exec = Local::new();
        // v1 is on the host already: no pull.
        davit_deploy::deploy(&exec, &t, "v1", &opts(), &Quiet)
            .await
            .unwrap();

        // The registry answers, but has no such tag: no retry, the hint names the tag.
        let e = davit_deploy::deploy(&exec, &t, "v2", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert!(
            e.message.contains("cannot pull") && e.message.contains("manifest unknown"),
            "{e}"
        );
        assert!(
            !e.message.contains("tries"),
            "an unknown tag is not retried: {e}"
        );
        assert!(e.hint.as_deref().unwrap_or("").contains("tag"), "{e}");
        assert_eq!(container_state(&green), None, "nothing started: {e}");
        assert_eq!(version_at(&public).await, "v1");

        // The registry is down: bounded retries, then stop.
        drop(registry);
        let e = davit_deploy::deploy(&exec, &t, "v2", &opts(), &Quiet)
            .await
            .unwrap_err();
        assert!(e.message.contains("after 3 tries"), "{e}");
        assert!(
            e.hint.as_deref().unwrap_or("").contains("unreachable"),
            "{e}"
        );
        assert_eq!(container_state(&green), None, "nothing started: {e}");
        assert_eq!(version_at(&public).await, "v1");
    });
}
