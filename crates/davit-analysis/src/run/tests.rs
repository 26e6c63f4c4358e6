//! The counting rules on their own, then whole runs against scripted providers on a paused clock.

use super::summary::MAX_ROWS;
use super::*;
use crate::provider::{Reading, Sample};
use std::collections::VecDeque;
use std::sync::Mutex;

fn limits(count: Option<u32>, failure_limit: u32, cel: u32, il: u32) -> Limits {
    Limits {
        count,
        failure_limit,
        consecutive_error_limit: cel,
        inconclusive_limit: il,
    }
}

fn feed(t: &mut Tally, outcomes: &[Outcome]) -> Vec<Status> {
    outcomes
        .iter()
        .map(|o| {
            t.record(0, *o);
            t.status()
        })
        .collect()
}

use Outcome::{Error as E, Failed as F, Inconclusive as I, Successful as S};
use Status::{Failed as SF, Inconclusive as SI, Running as R, Successful as SS};

#[test]
fn failure_limit_counts_failures_not_streaks() {
    let mut t = Tally::new(limits(None, 1, 4, 0), vec!["m".into()]);
    // failure_limit 1: the second failure fails the run, even with a pass in between.
    assert_eq!(feed(&mut t, &[S, F, S, F]), vec![R, R, R, SF]);
    assert!(
        t.reason().unwrap().contains("failed 2 of 4"),
        "{:?}",
        t.reason()
    );
    let mut t = Tally::new(limits(None, 0, 4, 0), vec!["m".into()]);
    assert_eq!(
        feed(&mut t, &[F]),
        vec![SF],
        "failure_limit 0 fails at once"
    );
}

#[test]
fn consecutive_errors_make_the_run_inconclusive_never_successful() {
    let mut t = Tally::new(limits(None, 0, 2, 0), vec!["m".into()]);
    // Errors reset on any other outcome; the third in a row exceeds the limit of 2.
    assert_eq!(feed(&mut t, &[E, E, S, E, E, E]), vec![R, R, R, R, R, SI]);
    assert!(t.reason().unwrap().contains("3 errors in a row"));
    // count 3 reached with only errors: inconclusive, not successful.
    let mut t = Tally::new(limits(Some(3), 0, 4, 0), vec!["m".into()]);
    assert_eq!(feed(&mut t, &[E, E, E]), vec![R, R, SI]);
    assert!(t.reason().unwrap().contains("never produced a passing"));
}

#[test]
fn inconclusive_limit() {
    let mut t = Tally::new(limits(None, 0, 4, 0), vec!["m".into()]);
    assert_eq!(feed(&mut t, &[S, I]), vec![R, SI]);
    let mut t = Tally::new(limits(None, 0, 4, 2), vec!["m".into()]);
    assert_eq!(feed(&mut t, &[I, S, I, S, I]), vec![R, R, R, R, SI]);
}

#[test]
fn count_reached_is_successful_and_decided_runs_stay_decided() {
    let mut t = Tally::new(limits(Some(3), 0, 4, 0), vec!["m".into()]);
    assert_eq!(feed(&mut t, &[S, S, S, F]), vec![R, R, SS, SS]);
    assert_eq!(
        t.counts()[0].measurements,
        3,
        "records after the decision are ignored"
    );
}

#[test]
fn every_metric_must_reach_count_and_failure_beats_inconclusive() {
    let mut t = Tally::new(limits(Some(2), 0, 4, 0), vec!["a".into(), "b".into()]);
    t.record(0, S);
    t.record(1, S);
    assert_eq!(t.status(), R);
    t.record(0, S);
    t.record(1, I);
    assert_eq!(t.status(), SI);
    let mut t = Tally::new(limits(None, 0, 4, 0), vec!["a".into(), "b".into()]);
    t.record(0, I);
    t.record(1, F);
    assert_eq!(t.status(), SF);
    assert!(t.reason().unwrap().starts_with("b failed"));
}

#[test]
fn window_end_without_count() {
    let mut t = Tally::new(limits(None, 1, 4, 0), vec!["m".into()]);
    feed(&mut t, &[S, F, S]);
    assert_eq!(t.finish("window over"), SS);
    let mut t = Tally::new(limits(None, 1, 4, 0), vec!["m".into()]);
    assert_eq!(t.finish("window over"), SI, "no measurement at all");
}

/// A provider that replays readings, then repeats the last one.
struct Script(Mutex<VecDeque<Reading>>);

#[async_trait::async_trait]
impl Provider for Script {
    async fn read(&self) -> Reading {
        let mut q = self.0.lock().unwrap();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        }
    }
    fn describe(&self) -> String {
        "scripted | query".into()
    }
}

fn v(x: f64) -> Reading {
    Reading::Values(vec![Sample {
        labels: String::new(),
        value: x,
    }])
}

fn spec(extra: &str) -> AnalysisSpec {
    let t: toml::Table = toml::from_str(&format!(
        "templates = [\"error-rate\"]\ninterval = \"1s\"\n{extra}\n[prometheus]\nurl = \"http://127.0.0.1:9\"\n"
    ))
    .unwrap();
    AnalysisSpec::from_table(&t).unwrap()
}

fn analysis(spec: &AnalysisSpec, readings: Vec<Reading>) -> Analysis {
    let m = spec.metrics[0].clone();
    Analysis::with_providers(
        spec,
        &Release::default(),
        vec![(m, Box::new(Script(Mutex::new(readings.into()))))],
    )
}

#[tokio::test(start_paused = true)]
async fn run_fails_within_failure_limit_plus_one_rounds() {
    let s = spec("failure_limit = 1");
    let mut a = analysis(&s, vec![v(0.01), v(0.2)]);
    let mut seen = 0;
    let verdict = a
        .run(Instant::now() + Duration::from_secs(600), |_| seen += 1)
        .await;
    assert_eq!(verdict.status, Status::Failed);
    assert_eq!(verdict.action, Action::Rollback);
    assert_eq!(verdict.exit(), Exit::Rejected);
    assert_eq!(a.rounds(), 3, "one pass, then failure_limit + 1 failures");
    assert_eq!(seen, 3);
}

#[tokio::test(start_paused = true)]
async fn run_successful_after_count() {
    let s = spec("count = 4");
    let mut a = analysis(&s, vec![v(0.0)]);
    let verdict = a
        .run(Instant::now() + Duration::from_secs(600), |_| {})
        .await;
    assert_eq!(
        (verdict.status, verdict.action),
        (Status::Successful, Action::Keep)
    );
    assert_eq!(a.rounds(), 4);
    assert_eq!(verdict.exit(), Exit::Ok);
}

#[tokio::test(start_paused = true)]
async fn run_until_the_window_ends_and_initial_delay() {
    let s = spec("initial_delay = \"3s\"");
    let mut a = analysis(&s, vec![v(0.0)]);
    let verdict = a
        .run(Instant::now() + Duration::from_millis(7500), |_| {})
        .await;
    assert_eq!(verdict.status, Status::Successful);
    // Rounds at 3, 4, 5, 6, 7 s.
    assert_eq!(a.rounds(), 5);
    let mut a = analysis(&s, vec![v(0.0)]);
    let verdict = a.run(Instant::now() + Duration::from_secs(2), |_| {}).await;
    assert_eq!(
        verdict.status,
        Status::Inconclusive,
        "window shorter than initial_delay"
    );
    assert_eq!(verdict.action, Action::Rollback);
}

#[tokio::test(start_paused = true)]
async fn inconclusive_policies() {
    for (policy, action, exit) in [
        ("rollback", Action::Rollback, Exit::Rejected),
        ("hold", Action::Hold, Exit::Rejected),
        ("fail", Action::Fail, Exit::Infra),
    ] {
        let s = spec(&format!(
            "inconclusive = \"{policy}\"\nconsecutive_error_limit = 1"
        ));
        let mut a = analysis(&s, vec![Reading::Error("connection refused".into())]);
        let verdict = a
            .run(Instant::now() + Duration::from_secs(600), |_| {})
            .await;
        assert_eq!(verdict.status, Status::Inconclusive, "{policy}");
        assert_eq!(verdict.action, action, "{policy}");
        assert_eq!(verdict.exit(), exit, "{policy}");
        assert_eq!(
            a.rounds(),
            2,
            "{policy}: limit 1 → the second error decides"
        );
    }
    // NaN and no-data are inconclusive too.
    for r in [
        v(f64::NAN),
        Reading::Values(vec![]),
        Reading::Inconclusive("stale".into()),
    ] {
        let s = spec("");
        let mut a = analysis(&s, vec![r.clone()]);
        let verdict = a
            .run(Instant::now() + Duration::from_secs(600), |_| {})
            .await;
        assert_eq!(verdict.status, Status::Inconclusive, "{r:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn summary_and_json() {
    let s = spec("failure_limit = 1");
    let mut a = analysis(&s, vec![v(0.001), v(f64::NAN), v(0.2)]);
    let _ = a.tick().await;
    let verdict = a
        .run(Instant::now() + Duration::from_secs(600), |_| {})
        .await;
    // inconclusive_limit 0: the NaN decides before the 0.2 is seen.
    assert_eq!(verdict.status, Status::Inconclusive);
    let md = verdict.markdown();
    assert!(
        md.contains("### Metric analysis: ⚠️ analysis inconclusive → rollback"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | 0.0 | error-rate | 0.001 | pass if result <= 0.05 | ✅ pass |"),
        "{md}"
    );
    assert!(
        md.contains("| error-rate | NaN | pass if result <= 0.05 | ⚠️ inconclusive |"),
        "{md}"
    );
    assert!(md.contains("`scripted \\| query`"), "pipes escaped: {md}");
    let json = verdict.to_json();
    assert_eq!(json["status"], "inconclusive");
    assert_eq!(json["action"], "rollback");
    assert_eq!(json["measurements"][1]["value"], "NaN");
    assert_eq!(json["measurements"][0]["value"], 0.001);
    assert_eq!(json["metrics"][0]["counts"]["inconclusive"], 1);
}

#[test]
fn long_runs_are_thinned_but_keep_every_failure() {
    let s = spec("");
    let mut a = analysis(&s, vec![v(0.0)]);
    for i in 0..500u32 {
        a.measurements.push(Measurement {
            metric: "error-rate".into(),
            round: i + 1,
            at_secs: f64::from(i),
            time: Utc::now(),
            value: Some(if i == 250 { 0.9 } else { 0.0 }),
            threshold: "pass if result <= 0.05".into(),
            outcome: if i == 250 { F } else { S },
            detail: String::new(),
        });
    }
    let md = a.verdict().markdown();
    let rows = md
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("error-rate |"))
        .count();
    assert!(rows <= MAX_ROWS + 2, "{rows}");
    assert!(
        md.contains("| 251 | 250.0 | error-rate | 0.9 |"),
        "the failure is kept"
    );
    assert!(md.contains("| 500 | 499.0 |"), "the last round is kept");
    assert!(md.contains("passing measurements are not shown"));
}

#[test]
fn value_formatting() {
    assert_eq!(fmt_value(0.05), "0.05");
    assert_eq!(fmt_value(0.19999), "0.2");
    assert_eq!(fmt_value(2.5), "2.5");
    assert_eq!(fmt_value(0.0001234), "1.23e-4");
    assert_eq!(fmt_value(12345.6), "12346");
    assert_eq!(fmt_value(f64::INFINITY), "+Inf");
}
