//! The counting rules, pure: a [`Tally`] takes each metric's outcomes and says where the run
//! stands, with no network or clock, so the rules that decide between keeping a release and
//! rolling it back are tested on their own (see the rules in the parent module's docs).

use super::Status;
use crate::provider::Outcome;
use crate::spec::AnalysisSpec;
use serde::Serialize;

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
