//! Metric analysis against a real Prometheus scraping the real demo app (RELIABILITY.md T22,
//! T23). Assertions count measurements, never seconds: "within interval × (failure_limit + 1)"
//! is checked as "decided in failure_limit + 1 rounds".

mod common;

use common::{DemoApp, Prom, Traffic, require_prometheus, serial};
use davit_analysis::scrape::{ScrapeTarget, blue_green_targets};
use davit_analysis::{Action, Analysis, AnalysisSpec, Outcome, Release, Status, Verdict};
use std::time::{Duration, Instant};

fn spec(prom_url: &str, body: &str) -> AnalysisSpec {
    let src = format!("{body}\n[prometheus]\nurl = \"{prom_url}\"\n");
    let t: toml::Table = toml::from_str(&src).unwrap();
    AnalysisSpec::from_table(&t).unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint))
}

fn green_release() -> Release {
    Release {
        color: Some("green".into()),
        ..Release::default()
    }
}

async fn analyse(spec: &AnalysisSpec, release: &Release) -> (Verdict, u32) {
    let mut a = Analysis::new(spec, release).unwrap();
    // A generous window: the tests end on a decision, and a run that reaches the window's
    // end instead is reported by the status assertions.
    let v = a
        .run(Instant::now() + Duration::from_secs(120), |m| {
            eprintln!(
                "round {} {} = {:?} → {:?} {}",
                m.round, m.metric, m.value, m.outcome, m.detail
            )
        })
        .await;
    eprintln!("{}", v.markdown());
    (v, a.rounds())
}

/// Both colors scraped, with a `color` label, as in production.
fn blue_green(blue: &DemoApp, green: &DemoApp) -> Vec<ScrapeTarget> {
    let mut t = blue_green_targets("127.0.0.1", blue.port, green.port);
    assert_eq!(
        t[1].labels,
        vec![("color".to_string(), "green".to_string())]
    );
    t[0].address = blue.addr();
    t[1].address = green.addr();
    t
}

// The selector excludes Prometheus' own scrapes of /metrics, which would dilute the error rate.
const SELECTOR: &str = r#"selector = 'color="{{color}}",path="/"'"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_error_rate_release_fails_within_failure_limit_plus_one_rounds() {
    let Some(bin) = require_prometheus() else {
        return;
    };
    let _serial = serial().await;
    let blue = DemoApp::start("1.0.0", &[]);
    let green = DemoApp::start("1.1.0", &[("FAULT_ERROR_RATIO", "0.2")]);
    let prom = Prom::start(&bin, &blue_green(&blue, &green));
    let _traffic = Traffic::start(&[blue.url(), green.url()], 3, Duration::from_millis(100));
    prom.wait_scraped(4);

    let failure_limit = 1;
    let s = spec(
        &prom.url,
        &format!(
            "templates = [\"error-rate\", \"request-rate\"]\ninterval = \"2s\"\nwindow = \"10s\"\nfailure_limit = {failure_limit}\ninitial_delay = \"2s\"\n{SELECTOR}"
        ),
    );
    let (v, rounds) = analyse(&s, &green_release()).await;
    assert_eq!(v.status, Status::Failed, "{}", v.reason);
    assert_eq!(v.action, Action::Rollback);
    assert_eq!(
        rounds,
        failure_limit + 1,
        "every round sees 20% errors, so failure_limit + 1 rounds decide"
    );
    let errors: Vec<_> = v
        .measurements
        .iter()
        .filter(|m| m.metric == "error-rate")
        .collect();
    for m in &errors {
        assert_eq!(m.outcome, Outcome::Failed, "{m:?}");
        let x = m.value.unwrap();
        assert!(
            (0.1..=0.3).contains(&x),
            "error rate {x} should be near 0.2"
        );
    }
    assert!(
        v.reason.starts_with("error-rate failed 2 of 2"),
        "{}",
        v.reason
    );

    // The selector picks the color: the kept (blue) release, scraped by the same Prometheus
    // and under the same traffic, passes the same analysis.
    let s = spec(
        &prom.url,
        &format!(
            "templates = [\"error-rate\", \"request-rate\"]\ninterval = \"2s\"\nwindow = \"10s\"\ncount = 2\n{SELECTOR}"
        ),
    );
    let blue_release = Release {
        color: Some("blue".into()),
        ..Release::default()
    };
    let (v, rounds) = analyse(&s, &blue_release).await;
    assert_eq!(v.status, Status::Successful, "{}", v.reason);
    assert_eq!(rounds, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_slow_release_fails_on_p95_latency() {
    let Some(bin) = require_prometheus() else {
        return;
    };
    let _serial = serial().await;
    let blue = DemoApp::start("1.0.0", &[]);
    let green = DemoApp::start("1.1.0", &[("FAULT_LATENCY_MS", "800")]);
    let prom = Prom::start(&bin, &blue_green(&blue, &green));
    let _traffic = Traffic::start(&[green.url()], 4, Duration::from_millis(50));
    prom.wait_scraped(4);

    let s = spec(
        &prom.url,
        &format!(
            "templates = [\"error-rate\", \"p95-latency\"]\np95_latency_max_secs = 0.5\ninterval = \"2s\"\nwindow = \"10s\"\nfailure_limit = 1\ninitial_delay = \"2s\"\n{SELECTOR}"
        ),
    );
    let (v, rounds) = analyse(&s, &green_release()).await;
    assert_eq!(v.status, Status::Failed, "{}", v.reason);
    assert_eq!(rounds, 2);
    assert!(v.reason.starts_with("p95-latency failed"), "{}", v.reason);
    for m in v.measurements.iter().filter(|m| m.metric == "p95-latency") {
        // 800 ms responses fall in the (0.5, 1] bucket: p95 interpolates to about 0.98 s.
        let x = m.value.unwrap();
        assert!((0.5..=1.0).contains(&x), "p95 {x}");
    }
    for m in v.measurements.iter().filter(|m| m.metric == "error-rate") {
        assert_eq!(
            m.outcome,
            Outcome::Successful,
            "latency only, no errors: {m:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_release_is_successful_after_count_measurements() {
    let Some(bin) = require_prometheus() else {
        return;
    };
    let _serial = serial().await;
    let blue = DemoApp::start("1.0.0", &[]);
    let green = DemoApp::start("1.1.0", &[]);
    let prom = Prom::start(&bin, &blue_green(&blue, &green));
    let _traffic = Traffic::start(&[green.url()], 3, Duration::from_millis(100));
    prom.wait_scraped(4);

    let s = spec(
        &prom.url,
        &format!(
            "templates = [\"error-rate\", \"p95-latency\", \"request-rate\"]\nrequest_rate_min = 2.0\ninterval = \"2s\"\nwindow = \"10s\"\ncount = 3\ninitial_delay = \"2s\"\n{SELECTOR}"
        ),
    );
    let (v, rounds) = analyse(&s, &green_release()).await;
    assert_eq!(v.status, Status::Successful, "{}", v.reason);
    assert_eq!(v.action, Action::Keep);
    assert_eq!(rounds, 3);
    assert_eq!(v.measurements.len(), 9);
    assert!(
        v.measurements
            .iter()
            .all(|m| m.outcome == Outcome::Successful),
        "{:#?}",
        v.measurements
    );
    let md = v.markdown();
    assert!(md.contains("✅ analysis passed"), "{md}");
    assert!(md.contains("pass if result >= 2"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t23_empty_result_and_nan_are_inconclusive_never_successful() {
    let Some(bin) = require_prometheus() else {
        return;
    };
    let _serial = serial().await;
    // Scraped, but nobody calls `/`: the 5xx ratio over `/` is 0/0.
    let green = DemoApp::start("1.1.0", &[]);
    let prom = Prom::start(
        &bin,
        &[ScrapeTarget {
            address: green.addr(),
            labels: vec![("color".into(), "green".into())],
        }],
    );
    prom.wait_scraped(3);

    let cases = [
        (
            "a metric that does not exist",
            "[[metrics]]\nname = \"missing\"\nquery = 'sum(rate(no_such_metric_total{color=\"{{color}}\"}[10s]))'\nsuccess_condition = \"result < 1\"",
            "no data",
        ),
        (
            "a selector that matches no color",
            "templates = [\"error-rate\"]\nwindow = \"10s\"\nselector = 'color=\"purple\"'",
            "no data",
        ),
        (
            "scalar NaN",
            "[[metrics]]\nname = \"nan\"\nquery = \"0/0\"\nsuccess_condition = \"result < 1\"",
            "NaN is not a measurement",
        ),
        (
            "error rate over no traffic (0/0)",
            &format!("templates = [\"error-rate\"]\nwindow = \"10s\"\n{SELECTOR}"),
            "NaN is not a measurement",
        ),
        (
            "+Inf",
            "[[metrics]]\nname = \"inf\"\nquery = \"1/0\"\nfailure_condition = \"result > 1\"",
            "+Inf is not a measurement",
        ),
    ];
    for (what, body, detail) in cases {
        for (policy, action) in [("rollback", Action::Rollback), ("hold", Action::Hold)] {
            let s = spec(
                &prom.url,
                &format!("interval = \"1s\"\ninconclusive = \"{policy}\"\n{body}"),
            );
            let (v, rounds) = analyse(&s, &green_release()).await;
            assert_eq!(v.status, Status::Inconclusive, "{what}: {}", v.reason);
            assert_eq!(v.action, action, "{what}");
            assert_eq!(
                rounds, 1,
                "{what}: inconclusive_limit 0 decides on the first"
            );
            let m = &v.measurements[0];
            assert_eq!(m.outcome, Outcome::Inconclusive, "{what}: {m:?}");
            assert!(m.detail.contains(detail), "{what}: {m:?}");
            if detail.contains("is not a measurement") {
                let x = m.value.expect("the non-finite value is shown");
                assert!(!x.is_finite(), "{what}: {x}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t23_prometheus_stops_mid_analysis() {
    let Some(bin) = require_prometheus() else {
        return;
    };
    let _serial = serial().await;
    let green = DemoApp::start("1.1.0", &[]);
    let mut prom = Some(Prom::start(
        &bin,
        &[ScrapeTarget {
            address: green.addr(),
            labels: vec![("color".into(), "green".into())],
        }],
    ));
    let _traffic = Traffic::start(&[green.url()], 2, Duration::from_millis(100));
    let url = prom.as_ref().unwrap().url.clone();
    prom.as_ref().unwrap().wait_scraped(4);
    let s = spec(
        &url,
        &format!(
            "templates = [\"error-rate\"]\nwindow = \"10s\"\ninterval = \"1s\"\nconsecutive_error_limit = 2\n{SELECTOR}"
        ),
    );
    let mut a = Analysis::new(&s, &green_release()).unwrap();
    a.tick().await;
    assert_eq!(a.status(), Status::Running, "{}", a.verdict().reason);
    assert_eq!(a.verdict().measurements[0].outcome, Outcome::Successful);
    // Prometheus goes away: errors, then inconclusive after the limit, never successful even
    // though the window ends and the one earlier measurement passed.
    drop(prom.take());
    for round in 2..=4 {
        let ms = a.tick().await;
        assert_eq!(ms[0].outcome, Outcome::Error, "round {round}: {ms:?}");
        assert!(ms[0].detail.contains("unreachable"), "{}", ms[0].detail);
    }
    assert_eq!(a.status(), Status::Inconclusive);
    let v = a.finish();
    assert_eq!(v.status, Status::Inconclusive, "{}", v.reason);
    assert_eq!(v.action, Action::Rollback);
    assert!(v.reason.contains("3 errors in a row"), "{}", v.reason);
}
