//! The analysis run: measure every interval, count outcomes the way Argo Rollouts does, decide.
//!
//! Counting is kept apart from measuring ([`Tally`] is pure) so the rules that decide between
//! keeping a release and rolling it back are tested without a network or a clock:
//!
//! - each metric counts its own outcomes;
//! - a metric fails at `failure_limit + 1` failed measurements (not necessarily in a row);
//! - more than `consecutive_error_limit` errors in a row, or more than `inconclusive_limit`
//!   inconclusive measurements, make the run inconclusive;
//! - the run is successful once every metric has `count` measurements and at least one of them
//!   passed; without `count`, when the watch window ends under the same condition.
//!
//! A failure anywhere ends the run at once: the point is to get users off a bad release within
//! `interval × (failure_limit + 1)`. What an inconclusive run does is the spec's `inconclusive`
//! policy; it never promotes.

use crate::prometheus::Prometheus;
use crate::provider::{Outcome, Provider, judge};
use crate::spec::{AnalysisSpec, InconclusivePolicy, MetricSpec, ProviderSpec, Release, render};
use crate::web::WebMetric;
use chrono::{DateTime, Utc};
use davit_core::{Exit, Failure, Secret};
use serde::Serialize;
use std::time::Duration;
// tokio's Instant, so tests on a paused clock see time pass; `std::time::Instant` converts.
use tokio::time::Instant;

/// Why an analysis could not be set up; maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Render(#[from] crate::spec::RenderError),
    #[error("[analysis.prometheus] bearer_token_env names {0}, which is not set")]
    MissingToken(String),
    #[error("metric {metric}: {message}")]
    Metric { metric: String, message: String },
}

impl From<SetupError> for Failure {
    fn from(e: SetupError) -> Failure {
        match e {
            SetupError::Render(r) => r.into(),
            SetupError::MissingToken(env) => Failure::bad_input(
                format!("[analysis.prometheus] bearer_token_env names {env}, which is not set"),
                format!("pass the token to the step as env {env} (from a secret)"),
            ),
            e @ SetupError::Metric { .. } => {
                Failure::bad_input(e.to_string(), "fix the metric in davit.toml [analysis]")
            }
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Successful,
    Failed,
    Inconclusive,
}

/// What the caller should do with the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep the new release; the previous color may be retired.
    Keep,
    /// Roll back to the kept color and verify the rollback.
    Rollback,
    /// Leave the new release live and the previous color running; fail the step (exit 1).
    Hold,
    /// Fail the step as an infrastructure error (exit 3) without rolling back.
    Fail,
}

impl Action {
    pub fn exit(self) -> Exit {
        match self {
            Action::Keep => Exit::Ok,
            Action::Rollback | Action::Hold => Exit::Rejected,
            Action::Fail => Exit::Infra,
        }
    }
}

/// One measurement of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub metric: String,
    /// 1-based round: all metrics are measured once per interval.
    pub round: u32,
    /// Seconds since the analysis started.
    pub at_secs: f64,
    pub time: DateTime<Utc>,
    /// The judged value, `None` when there was none (error, no data). NaN and infinities are
    /// kept so the summary shows them; JSON carries them as strings.
    #[serde(serialize_with = "ser_value")]
    pub value: Option<f64>,
    /// The condition the value was judged against, as written.
    pub threshold: String,
    pub outcome: Outcome,
    pub detail: String,
}

fn ser_value<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.is_finite() => s.serialize_f64(*x),
        Some(x) => s.serialize_str(&fmt_value(*x)),
        None => s.serialize_none(),
    }
}

/// Per-metric counters, as in Argo's metric results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub measurements: u32,
    pub successful: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub errors: u32,
    pub consecutive_errors: u32,
}

/// The limits a [`Tally`] applies; a copy of the spec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub count: Option<u32>,
    pub failure_limit: u32,
    pub consecutive_error_limit: u32,
    pub inconclusive_limit: u32,
}

impl Limits {
    pub fn of(spec: &AnalysisSpec) -> Self {
        Limits {
            count: spec.count,
            failure_limit: spec.failure_limit,
            consecutive_error_limit: spec.consecutive_error_limit,
            inconclusive_limit: spec.inconclusive_limit,
        }
    }
}

/// Pure outcome counting for all metrics of a run.
#[derive(Debug, Clone)]
pub struct Tally {
    limits: Limits,
    names: Vec<String>,
    counts: Vec<Counts>,
    decided: Option<(Status, String)>,
}

impl Tally {
    pub fn new(limits: Limits, names: Vec<String>) -> Self {
        let counts = vec![Counts::default(); names.len()];
        Tally {
            limits,
            names,
            counts,
            decided: None,
        }
    }

    pub fn counts(&self) -> &[Counts] {
        &self.counts
    }

    /// Record one outcome of metric `i`. Once the run is decided, further records are ignored.
    pub fn record(&mut self, i: usize, outcome: Outcome) {
        if self.decided.is_some() {
            return;
        }
        let c = &mut self.counts[i];
        c.measurements += 1;
        match outcome {
            Outcome::Successful => c.successful += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Inconclusive => c.inconclusive += 1,
            Outcome::Error => c.errors += 1,
        }
        if outcome == Outcome::Error {
            c.consecutive_errors += 1;
        } else {
            c.consecutive_errors = 0;
        }
    }

    /// Decide after a round. Failures are checked first, across all metrics, so a round in
    /// which one metric fails and another has no data reports the failure: it is the evidence.
    pub fn status(&mut self) -> Status {
        if let Some((s, _)) = &self.decided {
            return *s;
        }
        let l = self.limits;
        let mut decide = |s: Status, why: String| {
            self.decided = Some((s, why));
            s
        };
        for (name, c) in self.names.iter().zip(&self.counts) {
            if c.failed > l.failure_limit {
                return decide(
                    Status::Failed,
                    format!(
                        "{name} failed {} of {} measurements (failure_limit {})",
                        c.failed, c.measurements, l.failure_limit
                    ),
                );
            }
        }
        for (name, c) in self.names.iter().zip(&self.counts) {
            if c.consecutive_errors > l.consecutive_error_limit {
                return decide(
                    Status::Inconclusive,
                    format!(
                        "{name}: {} errors in a row (consecutive_error_limit {}); the metric source is not answering",
                        c.consecutive_errors, l.consecutive_error_limit
                    ),
                );
            }
            if c.inconclusive > l.inconclusive_limit {
                return decide(
                    Status::Inconclusive,
                    format!(
                        "{name}: {} inconclusive measurements (inconclusive_limit {}); no usable data",
                        c.inconclusive, l.inconclusive_limit
                    ),
                );
            }
        }
        if let Some(count) = l.count
            && self.counts.iter().all(|c| c.measurements >= count)
        {
            return self.conclude(&format!("{count} measurements"));
        }
        Status::Running
    }

    /// The watch window ended (or `count` was reached): successful only if every metric passed
    /// at least once; a metric that never produced a passing value proves nothing.
    pub fn finish(&mut self, why: &str) -> Status {
        match self.status() {
            Status::Running => self.conclude(why),
            s => s,
        }
    }

    fn conclude(&mut self, why: &str) -> Status {
        let silent: Vec<&str> = self
            .names
            .iter()
            .zip(&self.counts)
            .filter(|(_, c)| c.successful == 0)
            .map(|(n, _)| n.as_str())
            .collect();
        let (s, reason) = if silent.is_empty() {
            (
                Status::Successful,
                format!("every metric passed its conditions ({why})"),
            )
        } else {
            (
                Status::Inconclusive,
                format!(
                    "{} never produced a passing measurement ({why})",
                    silent.join(", ")
                ),
            )
        };
        self.decided = Some((s, reason));
        s
    }

    pub fn reason(&self) -> Option<&str> {
        self.decided.as_ref().map(|(_, r)| r.as_str())
    }
}

/// A metric bound to its provider for one release.
struct Bound {
    spec: MetricSpec,
    provider: Box<dyn Provider>,
}

/// Summary of one metric for the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub name: String,
    /// The rendered query or URL.
    pub source: String,
    pub threshold: String,
    pub counts: Counts,
}

/// The result of an analysis, for the decision, the step summary and notifications.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub action: Action,
    pub reason: String,
    pub inconclusive_policy: InconclusivePolicy,
    pub release: Release,
    pub interval_secs: f64,
    pub failure_limit: u32,
    /// Seconds from the start of the analysis to the decision.
    pub decided_after_secs: f64,
    pub metrics: Vec<MetricSummary>,
    pub measurements: Vec<Measurement>,
}

/// Measures a release every interval and decides. See the module docs for the rules.
///
/// Drive it either with [`Analysis::run`] (sleeps, honours `initial_delay`, stops at a
/// deadline) or, inside a loop of your own, with [`Analysis::tick`] followed by
/// [`Analysis::status`], and [`Analysis::finish`] when the window ends.
pub struct Analysis {
    spec: AnalysisSpec,
    release: Release,
    metrics: Vec<Bound>,
    tally: Tally,
    measurements: Vec<Measurement>,
    started: Instant,
    decided_at: Option<f64>,
    rounds: u32,
}

impl Analysis {
    /// Bind every metric of `spec` to its provider for `release` (placeholders filled, bearer
    /// token read from its environment variable). Nothing is queried yet.
    pub fn new(spec: &AnalysisSpec, release: &Release) -> Result<Analysis, SetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| SetupError::Metric {
                metric: "(http client)".into(),
                message: e.to_string(),
            })?;
        let bearer = match spec
            .prometheus
            .as_ref()
            .and_then(|p| p.bearer_token_env.as_ref())
        {
            Some(env) => Some(Secret::new(
                std::env::var(env)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SetupError::MissingToken(env.clone()))?,
            )),
            None => None,
        };
        let mut bound = Vec::new();
        for m in &spec.metrics {
            let provider: Box<dyn Provider> = match &m.provider {
                ProviderSpec::Prometheus { query } => {
                    let settings = spec.prometheus.as_ref().expect("validated by the spec");
                    Box::new(Prometheus::new(
                        client.clone(),
                        settings,
                        render(query, spec, release)?,
                        bearer.as_ref().map(|b| Secret::new(b.expose().clone())),
                    ))
                }
                ProviderSpec::Web { url, json_path } => Box::new(
                    WebMetric::new(
                        client.clone(),
                        render(url, spec, release)?,
                        json_path,
                        spec.prometheus
                            .as_ref()
                            .map_or(Duration::from_secs(5), |p| p.timeout),
                    )
                    .map_err(|message| SetupError::Metric {
                        metric: m.name.clone(),
                        message,
                    })?,
                ),
            };
            bound.push((m.clone(), provider));
        }
        Ok(Analysis::with_providers(spec, release, bound))
    }

    /// Use the given providers instead of the ones the spec describes (tests, or a caller with
    /// its own transport). `metrics` pairs each metric with its provider, in order.
    pub fn with_providers(
        spec: &AnalysisSpec,
        release: &Release,
        metrics: Vec<(MetricSpec, Box<dyn Provider>)>,
    ) -> Analysis {
        let names = metrics.iter().map(|(m, _)| m.name.clone()).collect();
        Analysis {
            spec: spec.clone(),
            release: release.clone(),
            metrics: metrics
                .into_iter()
                .map(|(spec, provider)| Bound { spec, provider })
                .collect(),
            tally: Tally::new(Limits::of(spec), names),
            measurements: Vec::new(),
            started: Instant::now(),
            decided_at: None,
            rounds: 0,
        }
    }

    pub fn spec(&self) -> &AnalysisSpec {
        &self.spec
    }

    /// The rendered queries and URLs, e.g. for a log line before the watch window starts.
    pub fn sources(&self) -> Vec<(String, String)> {
        self.metrics
            .iter()
            .map(|b| (b.spec.name.clone(), b.provider.describe()))
            .collect()
    }

    /// Take one round: measure every metric once, record and return the measurements.
    /// Does nothing once the run is decided.
    pub async fn tick(&mut self) -> Vec<Measurement> {
        if self.tally.status() != Status::Running {
            return Vec::new();
        }
        self.rounds += 1;
        let mut round = Vec::new();
        // Sequential on purpose: each read is bounded by its timeout, and a handful of queries
        // per interval does not need concurrency that would make the order of rows random.
        for (i, b) in self.metrics.iter().enumerate() {
            let reading = b.provider.read().await;
            let (outcome, value, detail) = judge(&b.spec, &reading);
            tracing::debug!(metric = %b.spec.name, ?outcome, ?value, %detail, "analysis measurement");
            self.tally.record(i, outcome);
            round.push(Measurement {
                metric: b.spec.name.clone(),
                round: self.rounds,
                at_secs: self.started.elapsed().as_secs_f64(),
                time: Utc::now(),
                value,
                threshold: b.spec.threshold(),
                outcome,
                detail,
            });
        }
        self.measurements.extend(round.iter().cloned());
        if self.tally.status() != Status::Running {
            self.decided_at = Some(self.started.elapsed().as_secs_f64());
        }
        round
    }

    /// Where the run stands after the rounds so far.
    pub fn status(&mut self) -> Status {
        self.tally.status()
    }

    /// Rounds taken so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// End the run (the watch window is over) and return the verdict. If the run is still
    /// undecided it concludes now: successful only if every metric passed at least once.
    pub fn finish(&mut self) -> Verdict {
        if self.tally.status() == Status::Running {
            let why = match self.spec.count {
                Some(c) => format!(
                    "the watch window ended after {} of {c} measurements",
                    self.rounds
                ),
                None => format!("the watch window ended after {} measurements", self.rounds),
            };
            self.tally.finish(&why);
            self.decided_at = Some(self.started.elapsed().as_secs_f64());
        }
        self.verdict()
    }

    /// The verdict so far (status `Running` while undecided).
    pub fn verdict(&self) -> Verdict {
        let mut tally = self.tally.clone();
        let status = tally.status();
        let action = match status {
            Status::Successful => Action::Keep,
            Status::Failed => Action::Rollback,
            Status::Inconclusive | Status::Running => match self.spec.inconclusive {
                InconclusivePolicy::Rollback => Action::Rollback,
                InconclusivePolicy::Hold => Action::Hold,
                InconclusivePolicy::Fail => Action::Fail,
            },
        };
        Verdict {
            status,
            action,
            reason: tally.reason().unwrap_or("still measuring").to_string(),
            inconclusive_policy: self.spec.inconclusive,
            release: self.release.clone(),
            interval_secs: self.spec.interval.as_secs_f64(),
            failure_limit: self.spec.failure_limit,
            decided_after_secs: self
                .decided_at
                .unwrap_or_else(|| self.started.elapsed().as_secs_f64()),
            metrics: self
                .metrics
                .iter()
                .zip(tally.counts())
                .map(|(b, c)| MetricSummary {
                    name: b.spec.name.clone(),
                    source: b.provider.describe(),
                    threshold: b.spec.threshold(),
                    counts: c.clone(),
                })
                .collect(),
            measurements: self.measurements.clone(),
        }
    }

    /// Run until decided or until `deadline` (the end of the watch window): wait
    /// `initial_delay`, then one round every `interval`. `on_measurement` sees each
    /// measurement as it is taken (for the timeline).
    pub async fn run(
        &mut self,
        deadline: impl Into<Instant>,
        mut on_measurement: impl FnMut(&Measurement),
    ) -> Verdict {
        let deadline = deadline.into();
        let delay_end = self.started + self.spec.initial_delay;
        if delay_end >= deadline {
            tokio::time::sleep_until(deadline).await;
            return self.finish();
        }
        tokio::time::sleep_until(delay_end).await;
        loop {
            let round_start = Instant::now();
            if round_start >= deadline {
                return self.finish();
            }
            for m in self.tick().await {
                on_measurement(&m);
            }
            if self.status() != Status::Running {
                return self.verdict();
            }
            let next = round_start + self.spec.interval;
            if next >= deadline {
                tokio::time::sleep_until(deadline).await;
                return self.finish();
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Numbers in the summary: short, but small error rates must not round to 0.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 0.001 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// Rows kept in the markdown table: every non-passing measurement is kept, passing ones are
/// thinned out beyond this, so a long watch window stays readable (and under GitHub's limit).
const MAX_ROWS: usize = 120;

impl Verdict {
    /// The exit code for this verdict (see [`Action::exit`]).
    pub fn exit(&self) -> Exit {
        self.action.exit()
    }

    /// The verdict as JSON (for the generic webhook and `--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("verdict serializes")
    }

    /// The step summary: the decision, one line per metric, then every measurement against
    /// its threshold.
    pub fn markdown(&self) -> String {
        let head = match (self.status, self.action) {
            (Status::Successful, _) => "✅ analysis passed".to_string(),
            (Status::Failed, _) => "❌ analysis failed".to_string(),
            (_, Action::Rollback) => "⚠️ analysis inconclusive → rollback".to_string(),
            (_, Action::Hold) => {
                "⚠️ analysis inconclusive → hold (new release left live, previous color kept)"
                    .to_string()
            }
            (_, Action::Fail) => "⚠️ analysis inconclusive → step failed".to_string(),
            (_, Action::Keep) => "analysis".to_string(),
        };
        let mut s = format!(
            "### Metric analysis: {head}\n\n**Reason:** {}\n\n",
            esc(&self.reason)
        );
        s.push_str(&format!(
            "Decided after {:.1}s; interval {}s, failure limit {}, inconclusive → {}.\n\n",
            self.decided_after_secs,
            fmt_value(self.interval_secs),
            self.failure_limit,
            match self.inconclusive_policy {
                InconclusivePolicy::Rollback => "rollback",
                InconclusivePolicy::Hold => "hold",
                InconclusivePolicy::Fail => "fail",
            }
        ));
        s.push_str("| metric | threshold | pass | fail | inconclusive | error | query |\n|---|---|---:|---:|---:|---:|---|\n");
        for m in &self.metrics {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | `{}` |\n",
                esc(&m.name),
                esc(&m.threshold),
                m.counts.successful,
                m.counts.failed,
                m.counts.inconclusive,
                m.counts.errors,
                esc(&m.source).replace('`', "'")
            ));
        }
        s.push_str("\n| round | t (s) | metric | value | threshold | outcome | detail |\n|---:|---:|---|---:|---|---|---|\n");
        let passing = self
            .measurements
            .iter()
            .filter(|m| m.outcome == Outcome::Successful)
            .count();
        let others = self.measurements.len() - passing;
        let keep_every = passing
            .div_ceil(MAX_ROWS.saturating_sub(others).max(1))
            .max(1);
        let mut shown_passing = 0usize;
        let mut omitted = 0usize;
        let last_round = self.measurements.last().map_or(0, |m| m.round);
        for m in &self.measurements {
            if m.outcome == Outcome::Successful && m.round != last_round {
                shown_passing += 1;
                if !(shown_passing - 1).is_multiple_of(keep_every) {
                    omitted += 1;
                    continue;
                }
            }
            s.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} | {} | {} |\n",
                m.round,
                m.at_secs,
                esc(&m.metric),
                m.value.map_or("–".to_string(), fmt_value),
                esc(&m.threshold),
                m.outcome.label(),
                esc(&m.detail)
            ));
        }
        if omitted > 0 {
            s.push_str(&format!(
                "\n{omitted} passing measurements are not shown; the JSON verdict has all of them.\n"
            ));
        }
        s
    }
}

/// Table cells: a `|` would split the cell, a newline would end the table.
fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
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
}
