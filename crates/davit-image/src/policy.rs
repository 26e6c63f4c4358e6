//! The policy decision: which findings block the push.
//!
//! Three knobs, each visible in the summary: a severity threshold (`fail-on`), "ignore
//! findings without a fix" (nothing to upgrade to yet), and an ignore file whose entries need a
//! reason and an expiry date. An expired entry stops ignoring and is reported as expired, so a
//! temporary waiver cannot silently become permanent. A scan that did not run yields
//! [`Verdict::NotScanned`], which the binary maps to exit 3 and never to a push (T35).

use crate::finding::{Finding, ScanOutcome, Severity};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One waiver from the ignore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// Advisory id or alias (`CVE-...`, `GHSA-...`, `DLA-...`).
    pub id: String,
    /// Limit the waiver to one package (name as in the SBOM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    pub reason: String,
    /// Last day the waiver applies (inclusive), `YYYY-MM-DD`.
    pub expires: NaiveDate,
}

impl IgnoreRule {
    fn matches(&self, f: &Finding) -> bool {
        (self.id == f.id || f.aliases.contains(&self.id))
            && self.package.as_ref().is_none_or(|p| *p == f.package)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IgnoreFileError {
    #[error("cannot read ignore file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("ignore file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

/// Parse the ignore file (TOML, `[[ignore]]` tables with id, reason, expires, optional package).
pub fn parse_ignore_file(path: &str, text: &str) -> Result<Vec<IgnoreRule>, IgnoreFileError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        ignore: Vec<IgnoreRule>,
    }
    let f: File = toml::from_str(text).map_err(|e| IgnoreFileError::Invalid {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    for (i, r) in f.ignore.iter().enumerate() {
        if r.id.trim().is_empty() || r.reason.trim().is_empty() {
            return Err(IgnoreFileError::Invalid {
                path: path.to_string(),
                message: format!("entry {} needs a non-empty `id` and `reason`", i + 1),
            });
        }
    }
    Ok(f.ignore)
}

/// What the policy is configured to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Findings at or above this severity block.
    pub fail_on: Severity,
    pub ignore_unfixed: bool,
    pub ignores: Vec<IgnoreRule>,
    /// "Today" for expiry; injected so tests are deterministic.
    pub today: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Scanned; nothing blocks.
    Pass,
    /// Scanned; at least one finding blocks.
    Fail,
    /// The scan did not run: neither pass nor fail, and never a push.
    NotScanned,
}

/// An ignore entry past its expiry date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expired {
    pub rule: IgnoreRule,
    /// How many findings it would have hidden (they are counted normally now).
    pub would_match: usize,
}

/// The decision with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub fail_on: Severity,
    /// Findings that block, worst first.
    pub blocking: Vec<Finding>,
    /// Findings hidden by a current ignore entry, with the entry.
    pub ignored: Vec<(Finding, IgnoreRule)>,
    /// Findings at or over the threshold that were let through because no fix exists.
    pub unfixed_allowed: Vec<Finding>,
    /// Findings below the threshold (reported, not blocking).
    pub below_threshold: usize,
    pub expired: Vec<Expired>,
    /// All findings by severity, before any policy.
    pub counts: BTreeMap<Severity, usize>,
    /// Why there is no verdict, when the scan did not run.
    pub not_scanned_reason: Option<String>,
}

impl Policy {
    pub fn decide(&self, outcome: &ScanOutcome) -> Decision {
        let (findings, reason) = match outcome {
            ScanOutcome::Completed { findings, .. } => (findings.as_slice(), None),
            ScanOutcome::DidNotRun { reason, .. } => (&[][..], Some(reason.clone())),
        };
        let (current, expired): (Vec<&IgnoreRule>, Vec<&IgnoreRule>) =
            self.ignores.iter().partition(|r| r.expires >= self.today);
        let mut d = Decision {
            verdict: Verdict::Pass,
            fail_on: self.fail_on,
            blocking: Vec::new(),
            ignored: Vec::new(),
            unfixed_allowed: Vec::new(),
            below_threshold: 0,
            expired: expired
                .iter()
                .map(|r| Expired {
                    rule: (*r).clone(),
                    would_match: findings.iter().filter(|f| r.matches(f)).count(),
                })
                .collect(),
            counts: BTreeMap::new(),
            not_scanned_reason: reason.clone(),
        };
        for f in findings {
            *d.counts.entry(f.severity).or_default() += 1;
            if let Some(r) = current.iter().find(|r| r.matches(f)) {
                d.ignored.push((f.clone(), (*r).clone()));
            } else if f.severity < self.fail_on {
                d.below_threshold += 1;
            } else if self.ignore_unfixed && !f.fixed() {
                d.unfixed_allowed.push(f.clone());
            } else {
                d.blocking.push(f.clone());
            }
        }
        d.verdict = if reason.is_some() {
            Verdict::NotScanned
        } else if d.blocking.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::ScannerInfo;

    fn f(id: &str, pkg: &str, sev: Severity, fixed: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            aliases: vec![format!("CVE-{id}")],
            package: pkg.into(),
            installed_version: "1".into(),
            fixed_version: fixed.map(str::to_string),
            severity: sev,
            score: None,
            ecosystem: "npm".into(),
            title: id.into(),
            url: None,
            purl: None,
            layer: None,
            path: None,
        }
    }

    fn done(findings: Vec<Finding>) -> ScanOutcome {
        ScanOutcome::Completed {
            scanner: ScannerInfo {
                name: "osv".into(),
                database: "t".into(),
                data: None,
            },
            findings,
            warnings: vec![],
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn threshold_unfixed_and_ignores() {
        let rules = parse_ignore_file(
            "ignore.toml",
            r#"
[[ignore]]
id = "CVE-A"          # matches by alias
reason = "not reachable"
expires = "2030-01-01"

[[ignore]]
id = "B"
package = "other"     # different package: does not apply
reason = "x"
expires = "2030-01-01"

[[ignore]]
id = "C"
reason = "waiting for upstream"
expires = "2024-01-31"
"#,
        )
        .unwrap();
        let p = Policy {
            fail_on: Severity::High,
            ignore_unfixed: true,
            ignores: rules,
            today: day("2024-02-01"),
        };
        let d = p.decide(&done(vec![
            f("A", "a", Severity::Critical, Some("2")),
            f("B", "b", Severity::High, Some("2")),
            f("C", "c", Severity::Critical, Some("2")),
            f("D", "d", Severity::Critical, None),
            f("E", "e", Severity::Medium, Some("2")),
        ]));
        assert_eq!(d.verdict, Verdict::Fail);
        let ids = |v: &[Finding]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.blocking), ["B", "C"]);
        assert_eq!(d.ignored.len(), 1);
        assert_eq!(ids(&d.unfixed_allowed), ["D"]);
        assert_eq!(d.below_threshold, 1);
        assert_eq!(d.expired.len(), 1);
        assert_eq!(d.expired[0].rule.id, "C");
        assert_eq!(d.expired[0].would_match, 1);
        assert_eq!(d.counts[&Severity::Critical], 3);

        // The last day of a waiver still counts.
        let p2 = Policy {
            today: day("2024-01-31"),
            ..p.clone()
        };
        assert!(
            p2.decide(&done(vec![f("C", "c", Severity::Critical, Some("2"))]))
                .blocking
                .is_empty()
        );
    }

    #[test]
    fn t35_scan_that_did_not_run_is_never_a_pass() {
        let p = Policy {
            fail_on: Severity::Critical,
            ignore_unfixed: true,
            ignores: vec![],
            today: day("2024-01-01"),
        };
        let d = p.decide(&ScanOutcome::did_not_run("no database", "set osv-db"));
        assert_eq!(d.verdict, Verdict::NotScanned);
        assert_eq!(d.not_scanned_reason.as_deref(), Some("no database"));
    }

    #[test]
    fn ignore_entries_need_reason_and_expiry() {
        assert!(
            parse_ignore_file("f", "[[ignore]]\nid = \"X\"\nexpires = \"2030-01-01\"\n").is_err()
        );
        assert!(parse_ignore_file("f", "[[ignore]]\nid = \"X\"\nreason = \"r\"\n").is_err());
        assert!(
            parse_ignore_file(
                "f",
                "[[ignore]]\nid = \"X\"\nreason = \" \"\nexpires = \"2030-01-01\"\n"
            )
            .is_err()
        );
        assert!(
            parse_ignore_file(
                "f",
                "[[ignore]]\nid = \"X\"\nreason = \"r\"\nexpires = \"soon\"\n"
            )
            .is_err()
        );
    }
}
