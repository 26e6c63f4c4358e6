//! What every metric source returns, and how a reading becomes a measurement outcome.
//!
//! Providers only fetch and parse; they never judge. Keeping the three kinds of "no answer"
//! apart is the point: a *value* is judged by the conditions, *inconclusive* (no data, NaN,
//! stale) means the source answered but said nothing usable, and an *error* means the source
//! could not be asked (connection refused, HTTP 500, timeout). Argo counts the last two
//! differently (inconclusive limit vs. consecutive error limit), and so does davit; neither is
//! ever counted as a success.

use crate::spec::MetricSpec;
use serde::Serialize;

/// One series of a reading: its labels (for the summary) and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// `{code="500",color="green"}` style, empty for a scalar or an aggregated series.
    pub labels: String,
    pub value: f64,
}

/// What a provider saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// One or more finite values.
    Values(Vec<Sample>),
    /// The source answered, but not with a usable number: empty vector, NaN, ±Inf, stale.
    Inconclusive(String),
    /// The source could not be asked: unreachable, timeout, HTTP error, `status: error`.
    Error(String),
}

/// A source of readings. Implemented by [`crate::prometheus::Prometheus`] and
/// [`crate::web::WebMetric`]; tests implement it to drive the runner without a network.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    async fn read(&self) -> Reading;
    /// The rendered query or URL (credentials removed), as the summary shows it.
    fn describe(&self) -> String;
}

/// The outcome of one measurement, as in Argo Rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Successful => "✅ pass",
            Outcome::Failed => "❌ fail",
            Outcome::Inconclusive => "⚠️ inconclusive",
            Outcome::Error => "⚠️ error",
        }
    }
}

/// Judge one value with Argo's rules: with only a success condition, not meeting it fails;
/// with only a failure condition, not meeting it passes; with both, meeting neither is
/// inconclusive. A value that is not finite is inconclusive whatever the conditions say.
pub fn judge_value(metric: &MetricSpec, value: f64) -> Outcome {
    if !value.is_finite() {
        return Outcome::Inconclusive;
    }
    let ok = metric
        .success_condition
        .as_ref()
        .map(|c| c.expr.eval(value));
    let bad = metric
        .failure_condition
        .as_ref()
        .map(|c| c.expr.eval(value));
    match (ok, bad) {
        (_, Some(true)) => Outcome::Failed,
        (Some(true), _) => Outcome::Successful,
        (Some(false), None) => Outcome::Failed,
        (None, Some(false)) => Outcome::Successful,
        (Some(false), Some(false)) => Outcome::Inconclusive,
        // The spec rejects metrics without conditions; never pass on nothing.
        (None, None) => Outcome::Inconclusive,
    }
}

/// Judge a reading: the outcome, the value to show, and a detail line.
///
/// With several series every one is judged and the worst wins (failed over inconclusive over
/// successful), and the value shown is that series'. This is conservative whichever way the
/// condition points, unlike "take the max", which is right for `result < x` but hides the
/// one starving series of `result > x`.
pub fn judge(metric: &MetricSpec, reading: &Reading) -> (Outcome, Option<f64>, String) {
    match reading {
        Reading::Error(e) => (Outcome::Error, None, e.clone()),
        Reading::Inconclusive(why) => (Outcome::Inconclusive, None, why.clone()),
        Reading::Values(samples) if samples.is_empty() => {
            (Outcome::Inconclusive, None, "no data".into())
        }
        Reading::Values(samples) => {
            let rank = |o: Outcome| match o {
                Outcome::Failed => 3,
                Outcome::Error => 2,
                Outcome::Inconclusive => 1,
                Outcome::Successful => 0,
            };
            let (worst, sample) = samples
                .iter()
                .map(|s| (judge_value(metric, s.value), s))
                .max_by_key(|(o, _)| rank(*o))
                .expect("non-empty");
            let mut detail = String::new();
            if samples.len() > 1 {
                detail = format!(
                    "{} series; worst {}",
                    samples.len(),
                    if sample.labels.is_empty() {
                        "(no labels)"
                    } else {
                        &sample.labels
                    }
                );
            }
            if worst == Outcome::Inconclusive {
                let why = if sample.value.is_finite() {
                    "the value meets neither condition".to_string()
                } else {
                    // Typically 0/0: a ratio over a window in which nothing happened.
                    format!(
                        "{} is not a measurement (no traffic in the window?)",
                        crate::run::fmt_value(sample.value)
                    )
                };
                detail = if detail.is_empty() {
                    why
                } else {
                    format!("{detail}: {why}")
                };
            }
            (worst, Some(sample.value), detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Expr;
    use crate::spec::{Condition, ProviderSpec};

    fn metric(success: Option<&str>, failure: Option<&str>) -> MetricSpec {
        let c = |t: Option<&str>| {
            t.map(|t| Condition {
                text: t.into(),
                expr: Expr::parse(t).unwrap(),
            })
        };
        MetricSpec {
            name: "m".into(),
            provider: ProviderSpec::Prometheus { query: "q".into() },
            success_condition: c(success),
            failure_condition: c(failure),
            template: None,
        }
    }

    #[test]
    fn argo_condition_rules() {
        let s = metric(Some("result < 1"), None);
        assert_eq!(judge_value(&s, 0.5), Outcome::Successful);
        assert_eq!(judge_value(&s, 2.0), Outcome::Failed);
        let f = metric(None, Some("result > 5"));
        assert_eq!(judge_value(&f, 2.0), Outcome::Successful);
        assert_eq!(judge_value(&f, 6.0), Outcome::Failed);
        let both = metric(Some("result < 1"), Some("result > 5"));
        assert_eq!(judge_value(&both, 0.5), Outcome::Successful);
        assert_eq!(judge_value(&both, 3.0), Outcome::Inconclusive);
        assert_eq!(judge_value(&both, 6.0), Outcome::Failed);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(judge_value(&s, v), Outcome::Inconclusive, "{v}");
            assert_eq!(judge_value(&f, v), Outcome::Inconclusive, "{v}");
        }
    }

    #[test]
    fn several_series_the_worst_decides() {
        let m = metric(Some("result >= 10"), None);
        let r = Reading::Values(vec![
            Sample {
                labels: "{color=\"blue\"}".into(),
                value: 50.0,
            },
            Sample {
                labels: "{color=\"green\"}".into(),
                value: 2.0,
            },
        ]);
        let (o, v, d) = judge(&m, &r);
        assert_eq!((o, v), (Outcome::Failed, Some(2.0)));
        assert!(d.contains("green"), "{d}");
        assert_eq!(judge(&m, &Reading::Values(vec![])).0, Outcome::Inconclusive);
        assert_eq!(judge(&m, &Reading::Error("down".into())).0, Outcome::Error);
    }
}
