//! The deploy lock on a real host: T29 (two deployers), T30 (stale locks), T27 (SIGTERM), T28
//! (SIGKILL: the next run reconciles).

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

/// T28: `davit deploy` killed with SIGKILL (no chance to clean up) before the switch and after it.
/// Traffic stays on a healthy version, and the next run reconciles from what is on the host: it
/// frees the dead process's lock by itself (its pid is gone from this machine), replaces the
/// leftover color, and converges, with no `davit lock release` and no ssh by hand.
#[test]
fn t28_sigkill_mid_deploy_then_the_next_run_reconciles() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t28";
    for v in ["v1", "v2", "v3"] {
        demo_image(repo, v, &[]);
    }
    let sb = Sandbox::new("t-t28");
    let flags = sb.dir.path().join("flags");
    std::fs::create_dir(&flags).unwrap();
    let hold = |phase: &str| {
        format!(
            "[[environments.production.hooks.{phase}]]\nrun = [\"/bin/sh\", \"-c\", \"touch {f}/{phase}-$DAVIT_VERSION; while [ -e {f}/hold-{phase} ]; do sleep 0.1; done\"]\non = \"host\"\n",
            f = flags.display()
        )
    };
    let t = sb.target(
        repo,
        "production",
        &(hold("pre_deploy") + &hold("post_deploy")),
    );
    let config = sb.dir.path().join("davit.toml");
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let deploy = |version: &str| {
        let mut c = std::process::Command::new(bin("davit"));
        c.args(["deploy", "production", "--version", version, "--config"])
            .arg(&config)
            .env("DAVIT_LOCK_WAIT_SECS", "5")
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS");
        c
    };
    let out = deploy("v1").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // (phase, version killed, what must serve right after the kill)
    for (phase, version, serving) in [("pre_deploy", "v2", "v1"), ("post_deploy", "v3", "v3")] {
        let hold_file = flags.join(format!("hold-{phase}"));
        std::fs::write(&hold_file, "").unwrap();
        let mut child = deploy(version)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let reached = flags.join(format!("{phase}-{version}"));
        for _ in 0..600 {
            if reached.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(reached.exists(), "{phase} of {version} never reached");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::fs::remove_file(&hold_file).unwrap();
        block_on(async {
            assert_eq!(
                version_at(&public).await,
                serving,
                "after a kill in {phase}"
            );
            let left = lock::status(&Local::new(), &t).await.unwrap();
            assert!(left.is_some(), "a killed run cannot release its lock");
        });

        // The next run: no manual step.
        let again = deploy(version).output().unwrap();
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "{phase}: {stderr}");
        assert!(stderr.contains("no longer running"), "{phase}: {stderr}");
        block_on(async {
            assert_eq!(version_at(&public).await, version);
            assert!(lock::status(&Local::new(), &t).await.unwrap().is_none());
        });
    }
    // Exactly the two colors exist: nothing the killed runs started was left over.
    let names = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    let mine: Vec<String> = String::from_utf8_lossy(&names.stdout)
        .lines()
        .filter(|n| n.starts_with("davit-t-t28-"))
        .map(String::from)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
}
