//! Manifests, listing, retention and the migration gate.
//!
//! A manifest (`<id>.manifest.json`, written atomically after verification) is what makes a
//! file a backup: checksum, size, verification level and time, and the row counts a restore
//! must reproduce. Listing classifies everything else it finds instead of hiding it: `.partial`
//! leftovers (a crashed or cancelled run), dumps without a manifest (never verified, never
//! deleted silently) and manifests whose dump is gone. Retention only ever deletes verified
//! backups and always keeps the newest one, however old, because the last good backup is
//! worth more than any age policy (T40).

use crate::backup::{Ctx, dump_path};
use crate::{BackupError, BackupSpec, VerifyLevel};
use chrono::{DateTime, Utc};
use davit_core::Cmd;
use davit_exec::Executor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a verified backup is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version (1).
    pub version: u32,
    pub id: String,
    pub label: String,
    /// Dump file name, relative to the backup directory.
    pub file: String,
    pub created_at: DateTime<Utc>,
    /// `user@host:port/db` or `user@container:name/db`; never a password.
    pub source: String,
    pub size: u64,
    /// sha256 of the file as stored (the ciphertext when encrypted).
    pub sha256: String,
    pub encryption: Option<EncryptionInfo>,
    pub verification: Verification,
    /// Exact rows per table (`schema.table`) that a restore must reproduce.
    pub tables: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    pub tool: String,
    /// The age public key the dump was encrypted to; a restore key must match it.
    pub recipient: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub level: VerifyLevel,
    pub verified_at: DateTime<Utc>,
    pub note: Option<String>,
}

/// Everything in a backup directory, classified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// Verified backups, newest first.
    pub backups: Vec<Manifest>,
    /// `*.partial` files: an interrupted run. Never a backup.
    pub partial: Vec<String>,
    /// Dump files without a manifest: never verified, reported, not deleted.
    pub unverified: Vec<String>,
    /// Manifests that cannot be used, with the reason.
    pub broken: Vec<(String, String)>,
}

pub(crate) fn manifest_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.manifest.json"))
}

/// Lists regular files; a missing directory is an empty one. Names are ours (no newlines).
const LIST: &str = r#"cd -- "$1" 2>/dev/null || exit 0; for f in *; do if [ -f "$f" ]; then printf '%s\n' "$f"; fi; done; exit 0"#;

/// Classify the contents of a backup directory on the host.
pub async fn list(exec: &dyn Executor, dir: &Path) -> Result<Listing, BackupError> {
    let out = exec
        .run(
            &Cmd::new("bash")
                .args(["-c", LIST, "davit-backup"])
                .arg(dir.display().to_string()),
        )
        .await?;
    if !out.success() {
        return Err(BackupError::Tool {
            host: exec.host().to_string(),
            what: "listing backups",
            status: out.status,
            stderr: out.stderr,
        });
    }
    let files: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    let mut listing = Listing::default();
    let mut described: Vec<String> = Vec::new();
    for f in &files {
        if f.ends_with(".partial") {
            listing.partial.push(f.to_string());
        } else if let Some(id) = f.strip_suffix(".manifest.json") {
            let path = dir.join(f);
            match read_manifest(exec, &path).await {
                Ok(m) if m.id != id => listing
                    .broken
                    .push((f.to_string(), format!("its id is {}", m.id))),
                Ok(m) if !files.contains(&m.file.as_str()) => {
                    described.push(m.file.clone());
                    listing
                        .broken
                        .push((f.to_string(), format!("{} is missing", m.file)));
                }
                Ok(m) => {
                    described.push(m.file.clone());
                    listing.backups.push(m);
                }
                Err(e) => listing.broken.push((f.to_string(), e.to_string())),
            }
        }
    }
    listing.unverified = files
        .iter()
        .filter(|f| {
            (f.ends_with(".dump") || f.ends_with(".dump.age")) && !described.iter().any(|d| d == *f)
        })
        .map(|f| f.to_string())
        .collect();
    listing
        .backups
        .sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    Ok(listing)
}

pub(crate) async fn read_manifest(
    exec: &dyn Executor,
    path: &Path,
) -> Result<Manifest, BackupError> {
    let bad = |reason: String| BackupError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let bytes = exec
        .read_file(path)
        .await?
        .ok_or_else(|| bad("does not exist".into()))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    // The file name is joined onto the backup dir; it must not walk out of it.
    if m.file.contains('/') || m.file.starts_with('.') {
        return Err(bad(format!("file name {:?} is not allowed", m.file)));
    }
    Ok(m)
}

/// Which verified backups a policy deletes. The newest is never among them, whatever its age.
pub fn retention(
    backups: &[Manifest],
    keep: usize,
    max_age: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> Vec<&Manifest> {
    let mut sorted: Vec<&Manifest> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, m)| {
            *i > 0 && (*i >= keep.max(1) || max_age.is_some_and(|age| now - m.created_at > age))
        })
        .map(|(_, m)| m)
        .collect()
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Leftover `*.partial` files removed.
    pub partial_removed: Vec<String>,
    /// Reported, never deleted: dump files nobody verified, unusable manifests.
    pub unverified: Vec<String>,
    pub broken: Vec<(String, String)>,
}

/// Apply retention to `spec.dir`. Runs under the deploy lock: a `.partial` file is taken to be
/// a leftover of an interrupted run, not one in progress.
pub async fn prune(exec: &dyn Executor, spec: &BackupSpec) -> Result<PruneReport, BackupError> {
    spec.validate()?;
    let listing = list(exec, &spec.dir).await?;
    let doomed = retention(&listing.backups, spec.keep, spec.max_age, Utc::now());
    let mut report = PruneReport {
        unverified: listing.unverified.clone(),
        broken: listing.broken.clone(),
        ..Default::default()
    };
    for m in &listing.backups {
        if doomed.iter().any(|d| d.id == m.id) {
            // Manifest first: an interruption leaves an unverified dump, never a manifest
            // promising a file that is gone.
            exec.remove_file(&manifest_path(&spec.dir, &m.id)).await?;
            exec.remove_file(&dump_path(&spec.dir, m)).await?;
            report.deleted.push(m.id.clone());
        } else {
            report.kept.push(m.id.clone());
        }
    }
    for p in &listing.partial {
        exec.remove_file(&spec.dir.join(p)).await?;
        report.partial_removed.push(p.clone());
    }
    Ok(report)
}

/// The migration gate: the newest verified backup taken at or after `not_before`, verified at
/// `min_level` or better, whose file still has the recorded checksum. The deploy flow calls it
/// right before migrations and runs them only on `Ok`.
pub async fn require_verified_backup(
    exec: &dyn Executor,
    spec: &BackupSpec,
    not_before: Option<DateTime<Utc>>,
    min_level: VerifyLevel,
) -> Result<Manifest, BackupError> {
    let ctx = Ctx::new(exec, spec)?;
    let dir = spec.dir.display().to_string();
    let no = |why: String| BackupError::NoVerifiedBackup {
        dir: dir.clone(),
        why: Some(why),
    };
    let listing = list(exec, &spec.dir).await?;
    let m = listing
        .backups
        .into_iter()
        .find(|m| not_before.is_none_or(|t| m.created_at >= t))
        .ok_or_else(|| match not_before {
            Some(t) => no(format!("none taken since {}", t.to_rfc3339())),
            None => no("none at all".into()),
        })?;
    if m.verification.level < min_level {
        return Err(no(format!(
            "{} was verified at level {}, {min_level} is required",
            m.id, m.verification.level
        )));
    }
    let (sha, size) = ctx.checksum(&dump_path(&spec.dir, &m)).await?;
    if sha != m.sha256 || size != m.size {
        return Err(BackupError::ChecksumMismatch {
            id: m.id.clone(),
            file: m.file.clone(),
            expected: m.sha256.clone(),
            actual: sha,
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, hours_ago: i64, now: DateTime<Utc>) -> Manifest {
        Manifest {
            version: 1,
            id: id.into(),
            label: String::new(),
            file: format!("{id}.dump"),
            created_at: now - chrono::Duration::hours(hours_ago),
            source: "s".into(),
            size: 1,
            sha256: "0".repeat(64),
            encryption: None,
            verification: Verification {
                level: VerifyLevel::Restore,
                verified_at: now,
                note: None,
            },
            tables: BTreeMap::new(),
        }
    }

    fn ids(v: Vec<&Manifest>) -> Vec<&str> {
        v.into_iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_n() {
        let now = Utc::now();
        let all = [
            m("a", 30, now),
            m("c", 10, now),
            m("b", 20, now),
            m("d", 5, now),
        ];
        assert_eq!(ids(retention(&all, 2, None, now)), ["b", "a"]);
        assert!(retention(&all, 10, None, now).is_empty());
        // keep = 0 is refused by validation; here it still keeps the newest.
        assert_eq!(ids(retention(&all, 0, None, now)), ["c", "b", "a"]);
    }

    #[test]
    fn never_deletes_the_last_verified_backup_even_when_too_old() {
        let now = Utc::now();
        let old = [m("only", 24 * 400, now)];
        assert!(retention(&old, 1, Some(chrono::Duration::days(30)), now).is_empty());
        let all = [m("x", 24 * 90, now), m("y", 24 * 60, now), m("z", 1, now)];
        assert_eq!(
            ids(retention(&all, 5, Some(chrono::Duration::days(30)), now)),
            ["y", "x"]
        );
        let all = [m("x", 24 * 90, now), m("y", 24 * 60, now)];
        assert_eq!(
            ids(retention(&all, 5, Some(chrono::Duration::days(30)), now)),
            ["x"]
        );
    }
}
