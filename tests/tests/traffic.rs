//! Verify judges the live release from its own traffic, on a real nginx and the demo app.
//!
//! The managed nginx writes a JSON line per response to the live color's traffic log and verify
//! follows it. Under load, a release whose `/` fails one request in five while its health check
//! answers 200 is rolled back on that evidence alone; a release with errors under the ratio is
//! kept; and with too few requests (a quiet service), the probes decide, as without traffic
//! analysis. How fast it decides is measured by davit-bench, not asserted here.

use davit_deploy::{Options, nginx::Files};
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Closed-loop load on `url` from `workers` tasks until the returned flag is set: enough
/// requests for the windows below even on a busy machine, without a fixed rate to keep.
fn load(url: &str, workers: usize) -> (Arc<AtomicBool>, Arc<AtomicU64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    for _ in 0..workers {
        let (url, stop, sent) = (url.to_string(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = get(&url).await;
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    (stop, sent)
}

#[test]
fn verify_judges_the_release_from_its_own_traffic() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-traffic";
    demo_image(repo, "v1", &[]);
    // `/` fails every fifth request; `/health` (what the probes ask) always answers 200.
    demo_image(repo, "v2-errors", &[("FAULT_ERROR_RATIO", "0.2")]);
    // One request in fifty fails: under the 10 % ratio.
    demo_image(repo, "v3-some-errors", &[("FAULT_ERROR_RATIO", "0.02")]);
    // Everything, health included, fails 3 s after start (after its health gate).
    demo_image(repo, "v4-goes-bad", &[("FAULT_FAIL_AFTER_SECS", "3")]);
    let sb = Sandbox::new("t-traffic");
    // A 2 s window and 20 requests: the closed-loop load gives well over that even when the
    // machine is busy; the probes alone (5 a second) never do.
    let t = sb.target(
        repo,
        "production",
        "[environments.production.verify]\nwatch_secs = 20\ninterval_ms = 200\nfailure_limit = 3\n\
         traffic_window_ms = 2000\ntraffic_error_ratio = 0.1\ntraffic_min_requests = 20\n",
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    let files = Files::of(&t);
    block_on(async {
        let exec = Local::new();
        let tl = davit_exec::Timeline::new(Box::new(std::io::sink()));
        let deploy = |v: &'static str| {
            let (exec, t) = (&exec, &t);
            async move {
                davit_deploy::deploy(exec, t, v, &Options::default(), &Quiet)
                    .await
                    .unwrap_or_else(|e| panic!("deploy {v}: {e}"));
            }
        };
        let verify = |v: &'static str, watch: u64| {
            let (exec, t, tl) = (&exec, &t, &tl);
            async move {
                let mut o = davit_verify::VerifyOptions::from_target(t);
                o.version = Some(v.into());
                o.watch = Duration::from_secs(watch);
                davit_verify::verify(exec, t, &o, tl).await.unwrap()
            }
        };
        deploy("v1").await;

        // 1. 20 % errors under load, probes healthy: rolled back on traffic evidence.
        deploy("v2-errors").await;
        let (stop, sent) = load(&public, 4);
        let verdict = verify("v2-errors", 20).await;
        stop.store(true, Ordering::Relaxed);
        assert!(!verdict.healthy, "{verdict:#?}");
        assert_eq!(verdict.rolled_back_to.as_deref(), Some("v1"));
        let reason = verdict.reason.clone().unwrap();
        assert!(reason.starts_with("traffic: "), "{reason}");
        let traffic = verdict.traffic.clone().expect("traffic judged");
        let decided = traffic.decided.expect("decided from traffic");
        assert!(decided.requests >= 20, "{traffic:?}");
        assert!(decided.ratio() >= 0.1, "{traffic:?}");
        // The probes never failed: the traffic alone decided.
        assert!(
            verdict
                .measurements
                .iter()
                .filter(|m| !m.ok)
                .all(|m| m.check.starts_with("traffic ")),
            "{:#?}",
            verdict.measurements
        );
        assert!(verdict.markdown().contains("**Traffic:**"));
        assert!(sent.load(Ordering::Relaxed) > 0);
        // The ledger's rollback record carries the figures.
        let ledger = std::fs::read_to_string(t.ledger_path()).unwrap();
        assert!(ledger.contains("verify: traffic: "), "{ledger}");
        // The log is the live color's, one JSON object per response, with no request line.
        let log = std::fs::read_to_string(files.traffic_log("green")).unwrap();
        let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(first["color"], "green");
        assert!(first["status"].is_u64() && first["t"].is_f64(), "{first}");
        assert!(!log.contains("GET "), "the log must not carry URIs");
        assert_eq!(version_at(&public).await, "v1");

        // 2. Errors under the ratio, same load: kept.
        deploy("v3-some-errors").await;
        let (stop, _) = load(&public, 4);
        let verdict = verify("v3-some-errors", 4).await;
        stop.store(true, Ordering::Relaxed);
        assert!(verdict.healthy, "{verdict:#?}");
        let traffic = verdict.traffic.clone().expect("traffic judged");
        assert!(
            traffic.decided.is_none() && traffic.failures > 0,
            "{traffic:?}"
        );
        assert!(
            traffic.judged > 0,
            "the load never filled a window: {traffic:?}"
        );

        // 3. A quiet service (the probes only, and a few failed user requests) that goes bad:
        //    traffic has no say, the probes decide.
        deploy("v4-goes-bad").await;
        let t0 = std::time::Instant::now();
        for _ in 0..5 {
            let _ = get(&public).await;
        }
        let verdict = verify("v4-goes-bad", 20).await;
        assert!(!verdict.healthy, "{verdict:#?}");
        let reason = verdict.reason.clone().unwrap();
        assert!(reason.contains("failed probes in a row"), "{reason}");
        let traffic = verdict.traffic.clone().expect("traffic followed");
        assert!(traffic.decided.is_none(), "{traffic:?}");
        assert!(
            traffic.describe().contains("the probes decided"),
            "{traffic:?}"
        );
        assert!(t0.elapsed() > Duration::from_secs(2));
        assert_eq!(verdict.rolled_back_to.as_deref(), Some("v3-some-errors"));
    });
}
