//! Trivy as an alternative scanner, normalized into the same findings.
//!
//! Teams that already run Trivy (with its own database and mirror) can keep it: `davit-image`
//! runs `trivy image --input <saved image>` on the very archive it inventoried and maps Trivy's
//! JSON report onto [`Finding`]s. A Trivy that exits non-zero or prints something that is not a
//! report is a scan that did not run, never an empty one.

use crate::finding::{Finding, ScanOutcome, ScannerInfo, Severity};
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(default)]
    results: Vec<TResult>,
    #[serde(default)]
    trivy: Option<TrivyMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyMeta {
    #[serde(default)]
    version: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TResult {
    #[serde(default)]
    target: String,
    #[serde(default, rename = "Type")]
    kind: String,
    #[serde(default)]
    vulnerabilities: Option<Vec<TVuln>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TVuln {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    #[serde(default)]
    pkg_identifier: Option<PkgIdentifier>,
    installed_version: String,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: Option<String>,
    #[serde(default)]
    layer: Option<Layer>,
    #[serde(default, rename = "CVSS")]
    cvss: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PkgIdentifier {
    #[serde(default, rename = "PURL")]
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Layer {
    #[serde(default, rename = "DiffID")]
    diff_id: Option<String>,
}

/// Trivy's result `Type` (its `LangType`/`OSType` constants) -> the OSV ecosystem name used in
/// findings, so Trivy and OSV findings read the same. Types Trivy adds later pass through as
/// written rather than being dropped.
pub fn ecosystem(kind: &str) -> String {
    match kind {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "alpine" => "Alpine",
        "wolfi" => "Wolfi",
        "chainguard" => "Chainguard",
        "redhat" => "Red Hat",
        "rocky" => "Rocky Linux",
        "alma" => "AlmaLinux",
        "photon" => "Photon OS",
        "opensuse-leap" | "opensuse.leap" => "openSUSE",
        "sles" | "suse linux enterprise server" => "SUSE",
        // Every Python lockfile and installed-package analyzer is PyPI; conda is not.
        "pip" | "pipenv" | "poetry" | "uv" | "pylock" | "python-pkg" => "PyPI",
        "npm" | "yarn" | "pnpm" | "bun" | "node-pkg" | "javascript" => "npm",
        "cargo" | "rustbinary" | "rust-binary" => "crates.io",
        "gomod" | "gobinary" => "Go",
        "jar" | "pom" | "gradle" | "sbt" => "Maven",
        "bundler" | "gemspec" => "RubyGems",
        "composer" | "composer-vendor" => "Packagist",
        "nuget" | "dotnet-core" | "packages-props" => "NuGet",
        "hex" => "Hex",
        "pub" => "Pub",
        "swift" => "SwiftURL",
        "cocoapods" => "CocoaPods",
        "conan" => "ConanCenter",
        other => other,
    }
    .to_string()
}

/// Normalize a Trivy JSON report (schema version 2).
pub fn normalize(json: &str) -> Result<ScanOutcome, String> {
    let r: Report =
        serde_json::from_str(json).map_err(|e| format!("not a Trivy JSON report: {e}"))?;
    let mut findings = Vec::new();
    for res in &r.results {
        for v in res.vulnerabilities.iter().flatten() {
            let score = v.cvss.as_ref().and_then(|m| {
                m.values()
                    .filter_map(|c| c.get("V3Score").and_then(|s| s.as_f64()))
                    .reduce(f64::max)
            });
            findings.push(Finding {
                id: v.id.clone(),
                aliases: Vec::new(),
                package: v.pkg_name.clone(),
                installed_version: v.installed_version.clone(),
                fixed_version: v.fixed_version.clone().filter(|f| !f.is_empty()),
                severity: v
                    .severity
                    .as_deref()
                    .and_then(Severity::parse)
                    .unwrap_or(Severity::Unknown),
                score,
                ecosystem: ecosystem(&res.kind),
                title: v
                    .title
                    .clone()
                    .or_else(|| {
                        v.description
                            .as_ref()
                            .map(|d| d.chars().take(160).collect())
                    })
                    .unwrap_or_else(|| v.id.clone()),
                url: v.primary_url.clone(),
                purl: v.pkg_identifier.as_ref().and_then(|p| p.purl.clone()),
                layer: v.layer.as_ref().and_then(|l| l.diff_id.clone()),
                path: Some(res.target.clone()),
            });
        }
    }
    Finding::sort(&mut findings);
    Ok(ScanOutcome::Completed {
        scanner: ScannerInfo {
            name: "trivy".into(),
            database: format!(
                "Trivy {}",
                r.trivy
                    .map(|t| t.version)
                    .unwrap_or_else(|| "unknown version".into())
            ),
            data: None,
        },
        findings,
        warnings: Vec::new(),
    })
}

/// Run `trivy image --input <archive>` and normalize its report.
pub fn scan(trivy: &Path, archive: &Path) -> ScanOutcome {
    let out = Command::new(trivy)
        .args([
            "image",
            "--quiet",
            "--format",
            "json",
            "--scanners",
            "vuln",
            "--input",
        ])
        .arg(archive)
        .output();
    let hint = "check that trivy has a vulnerability database (trivy image --download-db-only, or a DB mirror) or use the OSV scanner with `osv-db`";
    match out {
        Err(e) => ScanOutcome::did_not_run(format!("could not start trivy: {e}"), hint),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last: Vec<&str> = err.lines().rev().take(5).collect();
            ScanOutcome::did_not_run(
                format!(
                    "trivy failed ({}): {}",
                    o.status,
                    last.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
                hint,
            )
        }
        Ok(o) => normalize(&String::from_utf8_lossy(&o.stdout))
            .unwrap_or_else(|e| ScanOutcome::did_not_run(format!("trivy output: {e}"), hint)),
    }
}

#[cfg(test)]
mod tests {
    use super::ecosystem;

    #[test]
    fn python_lockfile_types_map_to_pypi() {
        for t in ["pip", "pipenv", "poetry", "uv", "pylock", "python-pkg"] {
            assert_eq!(ecosystem(t), "PyPI", "{t}");
        }
        // Conda packages are conda's, not PyPI's.
        assert_eq!(ecosystem("conda-pkg"), "conda-pkg");
    }

    #[test]
    fn other_language_types_map_to_their_osv_ecosystem() {
        for (t, e) in [
            ("bun", "npm"),
            ("yarn", "npm"),
            ("rustbinary", "crates.io"),
            ("gomod", "Go"),
            ("gobinary", "Go"),
            ("jar", "Maven"),
            ("gradle", "Maven"),
            ("bundler", "RubyGems"),
            ("composer-vendor", "Packagist"),
            ("dotnet-core", "NuGet"),
            ("nuget", "NuGet"),
        ] {
            assert_eq!(ecosystem(t), e, "{t}");
        }
    }

    #[test]
    fn uv_result_is_normalized_as_pypi() {
        let json = r#"{"SchemaVersion":2,"Trivy":{"Version":"0.58.1"},"Results":[{"Target":"uv.lock","Class":"lang-pkgs","Type":"uv","Vulnerabilities":[{"VulnerabilityID":"CVE-2024-35195","PkgName":"requests","InstalledVersion":"2.31.0","FixedVersion":"2.32.0","Severity":"MEDIUM","Title":"requests: subsequent requests to the same host ignore cert verification"}]}]}"#;
        match super::normalize(json).unwrap() {
            crate::finding::ScanOutcome::Completed { findings, .. } => {
                assert_eq!(findings.len(), 1);
                assert_eq!(findings[0].ecosystem, "PyPI");
                assert_eq!(findings[0].path.as_deref(), Some("uv.lock"));
            }
            other => panic!("{other:?}"),
        }
    }
}
