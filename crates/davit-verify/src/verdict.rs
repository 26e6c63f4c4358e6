//! What verification concluded and how it is shown: the verdict, its exit code, and the step
//! summary (failures always listed, successes sampled, untrusted text escaped).

use crate::Exit;
use serde::Serialize;

/// One measurement for the summary and the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub at_secs: f32,
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// What verification concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub environment: String,
    pub version: String,
    pub healthy: bool,
    pub reason: Option<String>,
    /// Seconds from the start of verification to the decision to roll back.
    pub detected_after_secs: Option<f32>,
    /// Seconds from the decision to the previous release answering through the proxy.
    pub restored_after_secs: Option<f32>,
    pub rolled_back_to: Option<String>,
    pub measurements: Vec<Measurement>,
    /// The metric analysis, when one ran.
    pub analysis: Option<davit_analysis::Verdict>,
    /// Set when the analysis could not decide and its policy is `fail` (exit 3).
    #[serde(skip)]
    pub infra_failure: bool,
    /// The analysis was inconclusive and its policy is `hold`: not promoted, not rolled back.
    #[serde(skip)]
    pub held: bool,
    /// What the live color's own traffic showed during the watch window, when it was judged.
    pub traffic: Option<crate::traffic::Summary>,
}

impl Verdict {
    pub fn exit(&self) -> Exit {
        if self.healthy {
            Exit::Ok
        } else if self.infra_failure {
            Exit::Infra
        } else {
            Exit::Rejected
        }
    }

    /// Step summary and outputs (`healthy`, `rolled-back-to`, `verdict-json`), the same from the
    /// action's binary and from `davit verify`. Write failures only lose the summary.
    pub fn publish(&self, gha: &davit_gha::Gha) {
        let _ = gha.summary(&self.markdown());
        let _ = gha.set_output("healthy", &self.healthy.to_string());
        let _ = gha.set_output(
            "rolled-back-to",
            self.rolled_back_to.as_deref().unwrap_or(""),
        );
        let _ = gha.set_output(
            "verdict-json",
            &serde_json::to_string(self).unwrap_or_default(),
        );
    }

    /// The step summary: the decision and every measurement against its expectation.
    pub fn markdown(&self) -> String {
        // Versions, reasons and probe details are untrusted text: escaped for markdown (T47).
        use davit_core::text::markdown as md;
        let mut s = format!(
            "## davit verify: {} {}\n\n",
            md(&self.environment),
            if self.healthy {
                format!("✅ {} is healthy", md(&self.version))
            } else {
                format!("❌ {} failed verification", md(&self.version))
            }
        );
        if let Some(r) = &self.reason {
            s.push_str(&format!("**Reason:** {}\n\n", md(r)));
        }
        if let Some(v) = self.rolled_back_to.as_deref().map(md) {
            s.push_str(&format!(
                "**Rolled back to {v}** (detected after {:.1}s, restored {:.2}s after the decision)\n\n",
                self.detected_after_secs.unwrap_or_default(),
                self.restored_after_secs.unwrap_or_default()
            ));
        }
        s.push_str("| t (s) | check | result | detail |\n|---:|---|---|---|\n");
        // Long watch windows produce many rows; keep failures and a sample of successes.
        let rows: Vec<&Measurement> = self
            .measurements
            .iter()
            .enumerate()
            .filter(|(i, m)| !m.ok || i % 5 == 0 || *i + 1 == self.measurements.len())
            .map(|(_, m)| m)
            .collect();
        for m in rows {
            s.push_str(&format!(
                "| {:.1} | {} | {} | {} |\n",
                m.at_secs,
                md(&m.check),
                if m.ok { "ok" } else { "FAIL" },
                md(&m.detail)
            ));
        }
        if let Some(t) = &self.traffic {
            s.push_str(&format!("\n**Traffic:** {}\n", md(&t.describe())));
        }
        if let Some(a) = &self.analysis {
            s.push('\n');
            s.push_str(&a.markdown());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(healthy: bool, n: usize, failing: &[usize]) -> Verdict {
        Verdict {
            environment: "production".into(),
            version: "v2".into(),
            healthy,
            reason: (!healthy).then(|| "3 failed probes | in a row".into()),
            detected_after_secs: None,
            restored_after_secs: None,
            rolled_back_to: None,
            measurements: (0..n)
                .map(|i| Measurement {
                    at_secs: i as f32,
                    check: format!("probe {i}"),
                    ok: !failing.contains(&i),
                    detail: if failing.contains(&i) {
                        "status 503".into()
                    } else {
                        "ok".into()
                    },
                })
                .collect(),
            analysis: None,
            infra_failure: false,
            held: false,
            traffic: None,
        }
    }

    #[test]
    fn exit_says_healthy_rejected_or_infrastructure() {
        assert_eq!(verdict(true, 0, &[]).exit(), Exit::Ok);
        let mut v = verdict(false, 0, &[]);
        assert_eq!(v.exit(), Exit::Rejected);
        v.infra_failure = true;
        assert_eq!(v.exit(), Exit::Infra);
    }

    #[test]
    fn the_summary_keeps_every_failure_and_samples_successes() {
        let md = verdict(false, 12, &[3, 7]).markdown();
        assert!(md.contains("failed verification"), "{md}");
        for i in [0, 3, 5, 7, 10, 11] {
            assert!(
                md.contains(&format!("| probe {i} |")),
                "row {i} missing:\n{md}"
            );
        }
        for i in [1, 2, 4, 6, 8, 9] {
            assert!(
                !md.contains(&format!("| probe {i} |")),
                "row {i} kept:\n{md}"
            );
        }
        assert_eq!(md.matches("| FAIL |").count(), 2, "{md}");
        // A `|` in untrusted text cannot break the table.
        assert!(!md.contains("probes | in"), "{md}");
    }
}
