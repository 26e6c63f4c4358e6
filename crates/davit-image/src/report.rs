//! The three renderings of one result: JSON (machines), SARIF 2.1.0 (GitHub code scanning) and a
//! markdown step summary (people).
//!
//! All three are built from the same [`Report`] so they cannot disagree. The summary leads with
//! the decision and counts by severity, then lists the worst findings with the version that
//! fixes each, because "what do I upgrade to" is the question a failed gate raises. A scan that
//! did not run says so in the first line of each rendering and shows no counts that could be
//! mistaken for "0 vulnerabilities".

use crate::docker::Pushed;
use crate::finding::{Finding, ScanOutcome, Severity};
use crate::meta::Meta;
use crate::policy::{Decision, Verdict};
use crate::sbom::Inventory;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Image ID (`sha256:` of the config) that was inventoried and scanned.
    pub image_id: String,
    pub meta: Option<Meta>,
    pub sbom: SbomSummary,
    pub scan: ScanOutcome,
    pub decision: Decision,
    pub pushed: Option<Pushed>,
    /// Why nothing was pushed, when a push was requested.
    pub push_skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SbomSummary {
    pub components: usize,
    pub by_type: BTreeMap<String, usize>,
    pub distro: Option<String>,
    pub layers: usize,
}

impl SbomSummary {
    pub fn of(inv: &Inventory) -> SbomSummary {
        let mut by_type = BTreeMap::new();
        for c in &inv.components {
            *by_type.entry(c.kind.purl_type().to_string()).or_default() += 1;
        }
        SbomSummary {
            components: inv.components.len(),
            by_type,
            distro: inv
                .distro
                .as_ref()
                .map(|d| d.pretty_name.clone().unwrap_or_else(|| d.id.clone())),
            layers: inv.layers.len(),
        }
    }
}

fn security_severity(f: &Finding) -> f64 {
    f.score.unwrap_or(match f.severity {
        Severity::Critical => 9.5,
        Severity::High => 8.0,
        Severity::Medium => 5.5,
        Severity::Low => 2.0,
        Severity::Unknown => 0.0,
    })
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// SARIF 2.1.0. `artifact` is the file results point at (the Dockerfile, repository-relative),
/// since code scanning needs a location in the repository.
pub fn sarif(report: &Report, artifact: &str) -> Value {
    let findings = report.scan.findings();
    let ignored: BTreeMap<(String, String, String), String> = report
        .decision
        .ignored
        .iter()
        .map(|(f, r)| {
            (
                (f.id.clone(), f.package.clone(), f.installed_version.clone()),
                format!("{} (until {})", r.reason, r.expires),
            )
        })
        .collect();
    let mut rules: Vec<Value> = Vec::new();
    let mut rule_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut results = Vec::new();
    for f in findings {
        let idx = *rule_index.entry(f.id.clone()).or_insert_with(|| {
            rules.push(json!({
                "id": f.id,
                "name": f.id.replace(['-', '.'], "_"),
                "shortDescription": {"text": f.title},
                "fullDescription": {"text": f.title},
                "helpUri": f.url.clone().unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", f.id)),
                "help": {"text": format!("{}\nSeverity: {}", f.title, f.severity)},
                "properties": {
                    "security-severity": format!("{:.1}", security_severity(f)),
                    "tags": ["security", "vulnerability", f.severity.as_str()],
                },
            }));
            rules.len() - 1
        });
        let fix = f.fixed_version.as_deref().map_or_else(
            || "no fixed version yet".to_string(),
            |v| format!("fixed in {v}"),
        );
        let mut r = json!({
            "ruleId": f.id,
            "ruleIndex": idx,
            "level": sarif_level(f.severity),
            "message": {"text": format!(
                "{} {} ({}) is affected by {} [{}]; {}. Found in {} of image {}.",
                f.package, f.installed_version, f.ecosystem, f.id, f.severity, fix,
                f.path.as_deref().unwrap_or("the image"), report.image_id
            )},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact},
                    "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                },
                "message": {"text": format!("{} {}", f.package, f.installed_version)},
            }],
            "partialFingerprints": {
                "davitFinding/v1": format!("{}:{}:{}", f.id, f.package, f.installed_version),
            },
            "properties": {
                "package": f.package,
                "installedVersion": f.installed_version,
                "fixedVersion": f.fixed_version,
                "purl": f.purl,
                "layer": f.layer,
            },
        });
        if let Some(reason) =
            ignored.get(&(f.id.clone(), f.package.clone(), f.installed_version.clone()))
        {
            r["suppressions"] = json!([{"kind": "external", "justification": reason}]);
        }
        results.push(r);
    }
    let mut run = json!({
        "tool": {"driver": {
            "name": "davit-image",
            "informationUri": "https://github.com/davit-dev/davit",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        }},
        "results": results,
    });
    if let ScanOutcome::DidNotRun { reason, .. } = &report.scan {
        // An empty result list would read as "clean": record the failed run explicitly.
        run["invocations"] = json!([{
            "executionSuccessful": false,
            "toolExecutionNotifications": [{"level": "error", "message": {"text": format!("scan did not run: {reason}")}}],
        }]);
    } else {
        run["invocations"] = json!([{"executionSuccessful": true}]);
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The markdown step summary.
pub fn summary(report: &Report, worst: usize) -> String {
    let mut s = String::new();
    let d = &report.decision;
    let headline = match d.verdict {
        Verdict::Pass => format!("✅ passed: nothing at or above {} blocks", d.fail_on),
        Verdict::Fail => format!(
            "❌ rejected: {} finding(s) at or above {}",
            d.blocking.len(),
            d.fail_on
        ),
        Verdict::NotScanned => {
            "⛔ scan did not run: the image was NOT checked and was not pushed".to_string()
        }
    };
    let _ = writeln!(s, "## davit-image: {headline}\n");
    let _ = writeln!(s, "- Image ID: `{}`", report.image_id);
    if let Some(m) = &report.meta {
        let _ = writeln!(s, "- Version: `{}`", m.version);
        if !m.refs.is_empty() {
            let _ = writeln!(
                s,
                "- Tags: {}",
                m.refs
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    match (&report.pushed, &report.push_skipped) {
        (Some(p), _) => {
            let _ = writeln!(
                s,
                "- Pushed: `{}` (manifest config = scanned image ID, verified)",
                p.digest
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "- Not pushed: {why}");
        }
        _ => {}
    }
    let by_type: Vec<String> = report
        .sbom
        .by_type
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let _ = writeln!(
        s,
        "- SBOM: {} components ({}) over {} layer(s){}",
        report.sbom.components,
        if by_type.is_empty() {
            "none".to_string()
        } else {
            by_type.join(", ")
        },
        report.sbom.layers,
        report
            .sbom
            .distro
            .as_ref()
            .map(|d| format!(", {d}"))
            .unwrap_or_default()
    );
    match &report.scan {
        ScanOutcome::DidNotRun { reason, hint } => {
            let _ = writeln!(
                s,
                "\n**The vulnerability scan did not run:** {reason}\n\nhint: {hint}"
            );
            return s;
        }
        ScanOutcome::Completed {
            scanner, warnings, ..
        } => {
            let _ = writeln!(s, "- Scanner: {} ({})", scanner.name, scanner.database);
            if let Some(age) = &scanner.data {
                let _ = writeln!(
                    s,
                    "- Vulnerability data: published {}, **{}** at scan time ({})",
                    age.updated,
                    age.age_text(),
                    age.source
                );
            }
            let _ = writeln!(
                s,
                "\n| Severity | Found | Ignored | Blocking |\n|---|---:|---:|---:|"
            );
            for sev in Severity::ALL_DESC {
                let found = d.counts.get(&sev).copied().unwrap_or(0);
                let ign = d.ignored.iter().filter(|(f, _)| f.severity == sev).count();
                let blk = d.blocking.iter().filter(|f| f.severity == sev).count();
                let _ = writeln!(s, "| {sev} | {found} | {ign} | {blk} |");
            }
            let total: usize = d.counts.values().sum();
            let _ = writeln!(
                s,
                "\nPolicy: fail on {} and above{}; {total} finding(s), {} below threshold, {} without a fix allowed, {} ignored.",
                d.fail_on,
                if d.unfixed_allowed.is_empty() {
                    ""
                } else {
                    ", unfixed findings allowed"
                },
                d.below_threshold,
                d.unfixed_allowed.len(),
                d.ignored.len()
            );
            if !warnings.is_empty() {
                let _ = writeln!(s, "\nWarnings:");
                for w in warnings.iter().take(10) {
                    let _ = writeln!(s, "- {}", md_escape(w));
                }
            }
        }
    }
    for e in &d.expired {
        let _ = writeln!(
            s,
            "\n⚠️ Ignore entry `{}` expired on {} and no longer applies ({} finding(s) counted again). Reason was: {}",
            e.rule.id,
            e.rule.expires,
            e.would_match,
            md_escape(&e.rule.reason)
        );
    }
    let findings = report.scan.findings();
    if !findings.is_empty() {
        let _ = writeln!(
            s,
            "\n### Worst findings\n\n| ID | Severity | Package | Installed | Fixed in | Status |\n|---|---|---|---|---|---|"
        );
        for f in findings.iter().take(worst) {
            let status = if d.blocking.contains(f) {
                "blocking".to_string()
            } else if let Some((_, r)) = d.ignored.iter().find(|(x, _)| x == f) {
                format!("ignored until {}: {}", r.expires, md_escape(&r.reason))
            } else if d.unfixed_allowed.contains(f) {
                "allowed (no fix)".to_string()
            } else {
                "below threshold".to_string()
            };
            let id = match &f.url {
                Some(u) => format!("[{}]({u})", f.id),
                None => f.id.clone(),
            };
            let _ = writeln!(
                s,
                "| {id} | {} | {} | {} | {} | {status} |",
                f.severity,
                md_escape(&f.package),
                md_escape(&f.installed_version),
                f.fixed_version
                    .as_deref()
                    .map(md_escape)
                    .unwrap_or_else(|| "–".into()),
            );
        }
        if findings.len() > worst {
            let _ = writeln!(
                s,
                "\n…and {} more in the JSON report and SARIF.",
                findings.len() - worst
            );
        }
    }
    s
}
