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
//!
//! Here: the run itself ([`Analysis`]: bind the metrics, measure each round, stop at a
//! decision). `tally` holds the counting rules, `summary` turns a [`Verdict`] into the step
//! summary and JSON.

mod summary;
mod tally;

pub use summary::fmt_value;
pub use tally::{Counts, Limits, Tally};

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
#[cfg(test)]
mod tests;
