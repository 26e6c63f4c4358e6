//! What a scan found, in one shape for every scanner.
//!
//! The OSV matcher and the Trivy normalizer both produce [`Finding`]s inside a [`ScanOutcome`],
//! so the policy, the SARIF file and the summary never need to know which scanner ran. The
//! outcome has an explicit [`ScanOutcome::DidNotRun`] case: a scan without a database or with a
//! crashed scanner is a different fact from "no findings", and keeping it a separate variant
//! makes it impossible to render one as the other (T35).

use serde::Serialize;
use std::fmt;

/// Severity, ordered so that `>=` means "at least as bad". `Unknown` sits below `Low`: an
/// advisory without a rating (most Debian DSAs) is reported but does not trip a `low` threshold
/// unless the policy asks for `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL_DESC: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// Parse the names used by GHSA, Trivy and CVSS ratings (`MODERATE` is GHSA's `MEDIUM`).
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Severity::Critical,
            "HIGH" | "IMPORTANT" => Severity::High,
            "MEDIUM" | "MODERATE" => Severity::Medium,
            "LOW" | "NEGLIGIBLE" => Severity::Low,
            "UNKNOWN" | "NONE" | "UNASSIGNED" => Severity::Unknown,
            _ => return None,
        })
    }

    /// From a CVSS base score, per the CVSS v3/v4 qualitative scale.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One vulnerable package occurrence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Advisory id (`DLA-3008-1`, `GHSA-...`, `CVE-...`).
    pub id: String,
    /// Other ids of the same advisory (CVE, GHSA); ignore rules match any of them.
    pub aliases: Vec<String>,
    /// The installed package name as the SBOM lists it.
    pub package: String,
    pub installed_version: String,
    /// The first version that fixes it, when the advisory names one.
    pub fixed_version: Option<String>,
    pub severity: Severity,
    /// CVSS base score when the advisory carries a vector or score.
    pub score: Option<f64>,
    /// Ecosystem as OSV spells it (`Debian:12`, `PyPI`, `npm`, `crates.io`, `Alpine:v3.20`).
    pub ecosystem: String,
    pub title: String,
    pub url: Option<String>,
    pub purl: Option<String>,
    /// Layer diff id the package came from.
    pub layer: Option<String>,
    /// File inside the image that declares the package (`/var/lib/dpkg/status`, ...).
    pub path: Option<String>,
}

impl Finding {
    pub fn fixed(&self) -> bool {
        self.fixed_version.as_deref().is_some_and(|f| !f.is_empty())
    }
    /// Worst first, then by id, so reports are stable.
    pub fn sort(findings: &mut [Finding]) {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)))
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.installed_version.cmp(&b.installed_version))
        });
    }
}

/// Which scanner and database produced the findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScannerInfo {
    /// `osv` or `trivy`.
    pub name: String,
    /// Database description: path and record count, or the Trivy version.
    pub database: String,
    /// When the vulnerability data was published and how old it was at scan time (known for
    /// OSV archives davit downloaded itself).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<DataAge>,
}

/// How fresh the vulnerability data is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataAge {
    /// Publication time of the oldest archive used (RFC 3339).
    pub updated: String,
    /// Age of that data at scan time, in hours.
    pub age_hours: f64,
    /// Where it came from (base URL and ecosystems).
    pub source: String,
}

impl DataAge {
    /// "3.2 hours old" / "2.0 days old".
    pub fn age_text(&self) -> String {
        if self.age_hours < 48.0 {
            format!("{:.1} hours old", self.age_hours)
        } else {
            format!("{:.1} days old", self.age_hours / 24.0)
        }
    }
}

/// The result of trying to scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ScanOutcome {
    Completed {
        scanner: ScannerInfo,
        findings: Vec<Finding>,
        /// Things the scanner could not judge (unparseable versions, unknown distro release).
        warnings: Vec<String>,
    },
    /// The scan did not happen; never to be read as "clean".
    DidNotRun { reason: String, hint: String },
}

impl ScanOutcome {
    pub fn did_not_run(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        ScanOutcome::DidNotRun {
            reason: reason.into(),
            hint: hint.into(),
        }
    }
    pub fn findings(&self) -> &[Finding] {
        match self {
            ScanOutcome::Completed { findings, .. } => findings,
            ScanOutcome::DidNotRun { .. } => &[],
        }
    }
}
