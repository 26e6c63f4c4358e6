//! The deploy lock on a real host: T29 (two deployers), T30 (stale locks), T27 (SIGTERM).

use davit_deploy::lock::{self, LockOptions};
use davit_deploy::{Options, nginx::Files};
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;
use std::time::Duration;

fn with_wait(secs: u64) -> Options {
    Options {
        lock: LockOptions {
            wait: Duration::from_secs(secs),
            ttl: Duration::from_secs(60),
        },
        ..Default::default()
    }
}

/// T29: two deploys at once. Without waiting, the loser fails naming the holder and changes
/// nothing; with waiting, both run one after the other and exactly one version is live.
#[test]
fn t29_two_deployers_at_once() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t29";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    demo_image(repo, "v3", &[]);
    let sb = Sandbox::new("t-t29");
    let t = sb.target(repo, "production", "");
    let public = format!("http://127.0.0.1:{}/", sb.public);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &with_wait(0), &Quiet)
            .await
            .unwrap();

        let no_wait = with_wait(0);
        let (a, b) = tokio::join!(
            davit_deploy::deploy(&exec, &t, "v2", &no_wait, &Quiet),
            async {
                // Start second, while the first holds the lock (its health gate takes a while).
                tokio::time::sleep(Duration::from_millis(300)).await;
                davit_deploy::deploy(&exec, &t, "v3", &no_wait, &Quiet).await
            }
        );
        a.unwrap();
        let e = b.unwrap_err();
        assert!(e.message.contains("is locked by another deploy"), "{e}");
        assert!(e.message.contains("(deploy of v2)"), "{e}");
        assert!(
            e.hint.as_deref().unwrap().contains("davit lock release"),
            "{e}"
        );
        assert_eq!(version_at(&public).await, "v2");

        let wait = with_wait(60);
        let (a, b) = tokio::join!(
            davit_deploy::deploy(&exec, &t, "v3", &wait, &Quiet),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                davit_deploy::deploy(&exec, &t, "v1", &wait, &Quiet).await
            }
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(version_at(&public).await, "v1");
        assert!(
            lock::status(&exec, &t).await.unwrap().is_none(),
            "lock left behind"
        );
    });
    assert_eq!(
        ledger_events(&t),
        vec!["deployed:v1", "deployed:v2", "deployed:v3", "deployed:v1"]
    );
}

fn plant_lock(t: &davit_deploy::Target, ci: bool, age_secs: i64) {
    std::fs::create_dir_all(&t.state_dir).unwrap();
    let since = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("-{age_secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    let holder = serde_json::json!({
        "token": "dead", "actor": "ghost", "run_url": "", "machine": "gone", "pid": 999999,
        "version": "v0", "operation": "deploy",
        "since": String::from_utf8_lossy(&since.stdout).trim(), "ci": ci, "ttl_secs": 600
    });
    std::fs::write(lock::lock_path(t), holder.to_string()).unwrap();
}

/// T30: a dead CI lock past its TTL is freed (and said so); a manual lock never is, and the
/// message gives its age and the fix.
#[test]
fn t30_stale_lock() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t30";
    demo_image(repo, "v1", &[]);
    let sb = Sandbox::new("t-t30");
    let t = sb.target(repo, "production", "");
    block_on(async {
        let exec = Local::new();
        plant_lock(&t, false, 7200);
        let e = davit_deploy::deploy(&exec, &t, "v1", &with_wait(1), &Quiet)
            .await
            .unwrap_err();
        assert!(e.message.contains("locked by another deploy: ghost"), "{e}");
        assert!(e.message.contains("s ago"), "age missing: {e}");
        assert!(
            e.hint
                .as_deref()
                .unwrap()
                .contains("davit lock release production")
        );
        assert!(
            !Files::of(&t).site().exists(),
            "the locked-out deploy changed something"
        );

        plant_lock(&t, true, 60); // CI lock, but younger than its TTL: still respected
        assert!(
            davit_deploy::deploy(&exec, &t, "v1", &with_wait(1), &Quiet)
                .await
                .is_err()
        );

        plant_lock(&t, true, 7200); // dead CI lock past its TTL
        let report = davit_deploy::deploy(&exec, &t, "v1", &with_wait(1), &Quiet)
            .await
            .unwrap();
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("freed a stale CI lock: ghost")),
            "{:?}",
            report.warnings
        );
        assert!(lock::status(&exec, &t).await.unwrap().is_none());
    });
}

/// T27: SIGTERM while the new color waits for its health gate: the deploy reverts (new color
/// removed, traffic on the old version) and the lock is released.
#[test]
fn t27_sigterm_mid_deploy_reverts_and_releases_the_lock() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t27";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "slow", &[("FAULT_SLOW_START_SECS", "20")]);
    let sb = Sandbox::new("t-t27");
    let t = sb.target(repo, "production", "");
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let config = sb.dir.path().join("davit.toml");
    block_on(async {
        davit_deploy::deploy(&Local::new(), &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
    });
    let child = std::process::Command::new(bin("davit"))
        .args(["deploy", "production", "--version", "slow", "--config"])
        .arg(&config)
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the new color is started, then send SIGTERM.
    let green = sb.container("production", "green");
    for _ in 0..100 {
        if container_state(&green) == Some(true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(container_state(&green), Some(true), "green never started");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("signal received"), "{stderr}");
    assert_eq!(
        container_state(&green),
        None,
        "new color left running: {stderr}"
    );
    block_on(async {
        assert!(
            lock::status(&Local::new(), &t).await.unwrap().is_none(),
            "lock left behind"
        );
        assert_eq!(version_at(&public).await, "v1");
    });
}
