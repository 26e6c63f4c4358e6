//! A [`Verdict`] as people and machines read it: the markdown step summary (decision, one line
//! per metric, the measurements against their thresholds, long runs thinned), the JSON verdict
//! and the exit code, and the number format they share.

use super::{Action, Status, Verdict};
use crate::provider::Outcome;
use crate::spec::InconclusivePolicy;
use davit_core::Exit;

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
pub(super) const MAX_ROWS: usize = 120;

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
