//! Offline vulnerability matching against an OSV database.
//!
//! osv.dev publishes every ecosystem as a zip of OSV JSON records
//! (`gs://osv-vulnerabilities/<Ecosystem>/all.zip`); a mirrored directory of those records works
//! too. Matching offline means a scan does not depend on a network service at deploy time and
//! gives the same answer twice. The rules follow the OSV schema: a package is affected when its
//! version is listed in `versions` or falls inside a `SEMVER`/`ECOSYSTEM` range, evaluated by
//! sorting the range events with the ecosystem's own ordering ([`crate::version`]); `GIT`
//! ranges are skipped because an image has no commit ids; withdrawn records are ignored.
//!
//! Distribution packages are matched by their *source* package and release (`Debian:12`), as
//! the Debian and Alpine advisories are written against source packages of one release.

use crate::finding::{Finding, ScanOutcome, ScannerInfo, Severity};
use crate::sbom::{Component, Inventory, PkgType};
use crate::version::{self, Scheme};
use serde::Deserialize;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("OSV database {path} does not exist")]
    Missing { path: PathBuf },
    #[error("OSV database {path} holds no advisories")]
    Empty { path: PathBuf },
    #[error("cannot read OSV database {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("OSV record {path} is not valid OSV JSON: {message}")]
    Parse { path: String, message: String },
}

/// The subset of an OSV record the matcher reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Vuln {
    pub id: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub upstream: Vec<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// RFC 3339 time of the record's last change.
    #[serde(default)]
    pub modified: Option<String>,
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeverityEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: Option<Package>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    pub ecosystem: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
    pub limit: Option<String>,
}

/// The version scheme for an OSV ecosystem name (`Debian:12` -> dpkg).
pub fn scheme_for(ecosystem: &str) -> Option<Scheme> {
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    Some(match base {
        "Debian" | "Ubuntu" => Scheme::Dpkg,
        "Alpine" => Scheme::Apk,
        "PyPI" => Scheme::Pep440,
        "npm" | "crates.io" | "Go" => Scheme::Semver,
        "Maven" => Scheme::Maven,
        "RubyGems" => Scheme::RubyGems,
        "Packagist" => Scheme::Packagist,
        "NuGet" => Scheme::NuGet,
        _ => return None,
    })
}

/// Package names as the ecosystem compares them: PyPI per PEP 503, others as written.
pub fn normalize_name(ecosystem_base: &str, name: &str) -> String {
    if ecosystem_base == "PyPI" {
        let mut out = String::with_capacity(name.len());
        let mut sep = false;
        for c in name.chars() {
            if matches!(c, '-' | '_' | '.') {
                sep = true;
            } else {
                if sep && !out.is_empty() {
                    out.push('-');
                }
                sep = false;
                out.push(c.to_ascii_lowercase());
            }
        }
        out
    } else {
        name.to_string()
    }
}

/// (ecosystem base, normalized name) -> (vuln index, affected index, full ecosystem).
type Index = HashMap<(String, String), Vec<(usize, usize, String)>>;

/// An indexed OSV database held in memory.
pub struct OsvDb {
    pub source: PathBuf,
    vulns: Vec<Vuln>,
    index: Index,
}

impl OsvDb {
    /// Load a directory (searched recursively for `*.json`) or a zip of OSV records.
    pub fn load(path: &Path) -> Result<OsvDb, DbError> {
        if !path.exists() {
            return Err(DbError::Missing {
                path: path.to_path_buf(),
            });
        }
        let io = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut vulns = Vec::new();
        if path.is_dir() {
            let mut files = Vec::new();
            collect_json(path, &mut files).map_err(io)?;
            files.sort();
            for f in files {
                let bytes = std::fs::read(&f).map_err(io)?;
                vulns.push(parse_record(&f.display().to_string(), &bytes)?);
            }
        } else {
            let file = std::fs::File::open(path).map_err(io)?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| DbError::Parse {
                path: path.display().to_string(),
                message: format!("not a zip of OSV records: {e}"),
            })?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i).map_err(|e| DbError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                if !entry.is_file() || !entry.name().ends_with(".json") {
                    continue;
                }
                let name = format!("{}:{}", path.display(), entry.name());
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).map_err(io)?;
                vulns.push(parse_record(&name, &bytes)?);
            }
        }
        if vulns.is_empty() {
            return Err(DbError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(OsvDb::from_records(path.to_path_buf(), vulns))
    }

    pub fn from_records(source: PathBuf, vulns: Vec<Vuln>) -> OsvDb {
        let mut index: Index = HashMap::new();
        for (vi, v) in vulns.iter().enumerate() {
            if v.withdrawn.is_some() {
                continue;
            }
            for (ai, a) in v.affected.iter().enumerate() {
                let Some(p) = &a.package else { continue };
                let base = p.ecosystem.split(':').next().unwrap_or("").to_string();
                let key = (base.clone(), normalize_name(&base, &p.name));
                index
                    .entry(key)
                    .or_default()
                    .push((vi, ai, p.ecosystem.clone()));
            }
        }
        OsvDb {
            source,
            vulns,
            index,
        }
    }

    pub fn len(&self) -> usize {
        self.vulns.len()
    }

    /// The records, to merge several archives into one database.
    pub fn into_records(self) -> Vec<Vuln> {
        self.vulns
    }

    /// The newest `modified` time among the records (RFC 3339 text compares as time when all
    /// records use UTC `Z`, as osv.dev's do).
    pub fn newest_modified(&self) -> Option<&str> {
        self.vulns
            .iter()
            .filter_map(|v| v.modified.as_deref())
            .max()
    }

    pub fn is_empty(&self) -> bool {
        self.vulns.is_empty()
    }

    /// Match every component of an inventory; the outcome is always `Completed` (a loaded
    /// database is a scan that ran), with warnings for what could not be judged.
    pub fn scan(&self, inv: &Inventory) -> ScanOutcome {
        let mut findings = Vec::new();
        let mut warnings = Vec::new();
        let eco_release = inv.distro.as_ref().and_then(|d| d.osv_ecosystem());
        if inv.components.iter().any(|c| c.kind.is_os()) && eco_release.is_none() {
            warnings.push(
                "the image's distribution release is unknown (no /etc/os-release): OS packages were matched against every release of their distribution".to_string(),
            );
        }
        for c in &inv.components {
            let m = self.match_component(c, eco_release.as_deref());
            warnings.extend(m.warnings);
            findings.extend(m.findings);
        }
        Finding::sort(&mut findings);
        warnings.sort();
        warnings.dedup();
        ScanOutcome::Completed {
            scanner: ScannerInfo {
                name: "osv".into(),
                database: format!(
                    "OSV records from {} ({} advisories)",
                    self.source.display(),
                    self.len()
                ),
                data: None,
            },
            findings,
            warnings,
        }
    }

    /// Findings for one component. `release` is the image's OSV ecosystem (`Debian:12`) for OS
    /// packages; `None` matches any release of the same distribution.
    pub fn match_component(&self, c: &Component, release: Option<&str>) -> Matches {
        let mut out = Matches::default();
        let base = c.kind.osv_base(release);
        let (name, ver) = match c.kind {
            PkgType::Deb | PkgType::Apk => (
                c.source_name.as_deref().unwrap_or(&c.name),
                c.source_version.as_deref().unwrap_or(&c.version),
            ),
            _ => (c.name.as_str(), c.version.as_str()),
        };
        let key = (base.to_string(), normalize_name(base, name));
        let Some(hits) = self.index.get(&key) else {
            return out;
        };
        for (vi, ai, eco) in hits {
            if c.kind.is_os()
                && let Some(r) = release
                && eco != r
            {
                continue;
            }
            let v = &self.vulns[*vi];
            let a = &v.affected[*ai];
            let Some(scheme) = scheme_for(eco) else {
                continue;
            };
            // Fail closed: a version that cannot be ordered is reported as affected, with a
            // warning, instead of being dropped as "not affected".
            let fixed = match affected(scheme, a, ver) {
                Verdict::Affected { fixed } => fixed,
                Verdict::NotAffected => continue,
                Verdict::Undecidable(why) => {
                    out.warnings.push(format!(
                        "{} {ver} vs {}: {why}; reported as affected",
                        c.name, v.id
                    ));
                    None
                }
            };
            let (severity, score) = severity_of(v, a);
            out.findings.push(Finding {
                id: v.id.clone(),
                aliases: v
                    .aliases
                    .iter()
                    .chain(&v.upstream)
                    .filter(|x| **x != v.id)
                    .cloned()
                    .collect(),
                package: c.name.clone(),
                installed_version: c.version.clone(),
                fixed_version: fixed,
                severity,
                score,
                ecosystem: eco.clone(),
                title: title_of(v),
                url: url_of(v),
                purl: Some(c.purl.clone()),
                layer: c.layer.clone(),
                path: Some(c.path.clone()),
            });
        }
        out
    }
}

/// Findings and warnings for one component.
#[derive(Debug, Default)]
pub struct Matches {
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            collect_json(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

fn parse_record(name: &str, bytes: &[u8]) -> Result<Vuln, DbError> {
    serde_json::from_slice(bytes).map_err(|e| DbError::Parse {
        path: name.to_string(),
        message: e.to_string(),
    })
}

/// Whether a version is inside an affected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Affected { fixed: Option<String> },
    NotAffected,
    Undecidable(String),
}

/// Evaluate one `affected` entry for `version` (OSV schema, "Evaluation").
pub fn affected(scheme: Scheme, a: &Affected, version: &str) -> Verdict {
    let mut undecidable = None;
    let mut hit = a.versions.iter().any(|v| v == version);
    let mut fixed_hint: Option<String> = None;
    let cmp = |x: &str, y: &str| version::compare(scheme, x, y);
    for r in &a.ranges {
        if r.kind != "ECOSYSTEM" && r.kind != "SEMVER" {
            continue;
        }
        match eval_range(&cmp, &r.events, version) {
            Ok(Some(fixed)) => {
                hit = true;
                if fixed_hint.is_none() {
                    fixed_hint = fixed;
                }
            }
            Ok(None) => {}
            Err(e) => undecidable = Some(e),
        }
    }
    if hit {
        if fixed_hint.is_none() {
            // Listed only by `versions`: name the lowest fix of any range above us.
            fixed_hint = lowest_fix_above(&cmp, a, version);
        }
        Verdict::Affected { fixed: fixed_hint }
    } else if let Some(e) = undecidable {
        Verdict::Undecidable(e)
    } else {
        Verdict::NotAffected
    }
}

fn lowest_fix_above(
    cmp: &dyn Fn(&str, &str) -> Option<Ordering>,
    a: &Affected,
    version: &str,
) -> Option<String> {
    let mut best: Option<&str> = None;
    for e in a.ranges.iter().flat_map(|r| &r.events) {
        if let Some(f) = &e.fixed
            && cmp(f, version) == Some(Ordering::Greater)
            && best.is_none_or(|b| cmp(f, b) == Some(Ordering::Less))
        {
            best = Some(f);
        }
    }
    best.map(str::to_string)
}

/// `Ok(Some(fixed))` when affected (with the fix closing the interval, if any), `Ok(None)`
/// when not, `Err` when a version cannot be ordered.
type RangeResult = Result<Option<Option<String>>, String>;

fn eval_range(
    cmp: &dyn Fn(&str, &str) -> Option<Ordering>,
    events: &[Event],
    version: &str,
) -> RangeResult {
    // Flatten to (version, kind) with "0" meaning "before everything".
    #[derive(Clone, Copy, PartialEq)]
    enum K {
        Introduced,
        Fixed,
        LastAffected,
        Limit,
    }
    let mut evs: Vec<(&str, K)> = Vec::new();
    for e in events {
        for (v, k) in [
            (&e.introduced, K::Introduced),
            (&e.fixed, K::Fixed),
            (&e.last_affected, K::LastAffected),
            (&e.limit, K::Limit),
        ] {
            if let Some(v) = v {
                evs.push((v.as_str(), k));
            }
        }
    }
    let is_zero = |v: &str| v == "0";
    for (v, _) in &evs {
        if !is_zero(v) && cmp(v, v).is_none() {
            return Err(format!("advisory version {v:?} cannot be ordered"));
        }
    }
    if !evs.iter().any(|(_, k)| *k == K::Introduced) {
        return Ok(None);
    }
    if cmp(version, version).is_none() {
        return Err(format!("installed version {version:?} cannot be ordered"));
    }
    let mut err = None;
    evs.sort_by(|(a, _), (b, _)| match (is_zero(a), is_zero(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => cmp(a, b).unwrap_or_else(|| {
            err = Some(format!("cannot order {a:?} and {b:?}"));
            Ordering::Equal
        }),
    });
    if let Some(e) = err {
        return Err(e);
    }
    let ge = |v: &str, e: &str| is_zero(e) || cmp(v, e).is_some_and(|o| o != Ordering::Less);
    let mut vulnerable = false;
    let mut limited = false;
    for (ev, k) in &evs {
        match k {
            K::Introduced if ge(version, ev) => vulnerable = true,
            K::Fixed if ge(version, ev) => vulnerable = false,
            K::LastAffected if cmp(version, ev) == Some(Ordering::Greater) => vulnerable = false,
            K::Limit if ge(version, ev) => limited = true,
            _ => {}
        }
    }
    if !vulnerable || limited {
        return Ok(None);
    }
    let fixed = evs
        .iter()
        .find(|(ev, k)| *k == K::Fixed && cmp(ev, version) == Some(Ordering::Greater))
        .map(|(ev, _)| ev.to_string());
    Ok(Some(fixed))
}

/// Severity from, in order: GHSA's `database_specific.severity`, a CVSS vector's base score.
pub fn severity_of(v: &Vuln, a: &Affected) -> (Severity, Option<f64>) {
    let score = v
        .severity
        .iter()
        .chain(&a.severity)
        .filter_map(|s| cvss_score(&s.score))
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    let named = v
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(|s| s.as_str())
        .and_then(Severity::parse);
    let sev = named
        .or(score.map(Severity::from_score))
        .unwrap_or(Severity::Unknown);
    (sev, score)
}

fn cvss_score(vector: &str) -> Option<f64> {
    if let Ok(n) = vector.parse::<f64>() {
        return Some(n);
    }
    vector.parse::<cvss::Cvss>().ok().map(|c| c.score())
}

fn title_of(v: &Vuln) -> String {
    v.summary
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            v.details.as_ref().map(|d| {
                let first = d.lines().next().unwrap_or("").trim();
                let mut s: String = first.chars().take(160).collect();
                if first.chars().count() > 160 {
                    s.push('…');
                }
                s
            })
        })
        .unwrap_or_else(|| v.id.clone())
}

fn url_of(v: &Vuln) -> Option<String> {
    v.references
        .iter()
        .find(|r| r.kind == "ADVISORY")
        .or(v.references.first())
        .map(|r| r.url.clone())
        .or_else(|| {
            if v.id.starts_with("GHSA-")
                || v.id.starts_with("PYSEC-")
                || v.id.starts_with("RUSTSEC-")
            {
                Some(format!("https://osv.dev/vulnerability/{}", v.id))
            } else {
                None
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(eco: &str, introduced: &str, fixed: &str) -> Affected {
        Affected {
            package: Some(Package {
                name: "p".into(),
                ecosystem: eco.into(),
            }),
            ranges: vec![Range {
                kind: "ECOSYSTEM".into(),
                events: vec![
                    Event {
                        introduced: Some(introduced.into()),
                        ..Event::default()
                    },
                    Event {
                        fixed: Some(fixed.into()),
                        ..Event::default()
                    },
                ],
            }],
            versions: Vec::new(),
            severity: Vec::new(),
        }
    }

    #[test]
    fn newly_ordered_ecosystems_are_matched_not_skipped() {
        for (eco, intro, fixed, inside, outside) in [
            ("Maven", "2.0.0", "2.13.4.1", "2.13.4", "2.13.4.1"),
            ("Go", "0", "1.17.0", "1.16.9", "1.17.0"),
            ("RubyGems", "6.1.0", "6.1.7.1", "6.1.7", "6.1.7.10"),
            ("Packagist", "5.0.0", "5.4.31", "v5.4.30", "5.4.31"),
            ("NuGet", "13.0.0", "13.0.1", "13.0.0.1", "13.0.1"),
        ] {
            let scheme = scheme_for(eco).unwrap_or_else(|| panic!("{eco} has no ordering"));
            let a = entry(eco, intro, fixed);
            assert_eq!(
                affected(scheme, &a, inside),
                Verdict::Affected {
                    fixed: Some(fixed.into())
                },
                "{eco} {inside}"
            );
            assert_eq!(
                affected(scheme, &a, outside),
                Verdict::NotAffected,
                "{eco} {outside}"
            );
        }
    }

    #[test]
    fn unparseable_installed_version_stays_fail_closed() {
        let a = entry("Maven", "1.0", "2.0");
        assert!(matches!(
            affected(Scheme::Maven, &a, "1 .5"),
            Verdict::Undecidable(_)
        ));
        let a = entry("Packagist", "1.0", "2.0");
        assert!(matches!(
            affected(Scheme::Packagist, &a, "dev-main"),
            Verdict::Undecidable(_)
        ));
    }
}
