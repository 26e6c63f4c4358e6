//! Taking a backup: dump to `*.partial`, verify, checksum, rename, write the manifest.
//!
//! The order is what makes "no partial dump counted as a backup" (T36) and "a corrupted dump
//! blocks the migration" (T38) hold: a dump lives under a `.partial` name until verification
//! passed, any failure removes it, and a backup exists for the rest of davit only once its
//! manifest is written, which is the last step. With encryption the dump is piped from pg_dump
//! straight into `age`, so plaintext never touches the disk (T39); verification decrypts into a
//! pipe. The key is checked (and its public recipient derived) before pg_dump starts, so a
//! missing or broken key fails closed without writing anything (T12).

use crate::error::scrub;
use crate::manifest::{EncryptionInfo, Manifest, Verification, manifest_path};
use crate::source::Conn;
use crate::{BackupError, BackupSpec, VerifyLevel};
use chrono::Utc;
use davit_core::{Cmd, FileBody, Secret};
use davit_exec::{Executor, Output};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Write a dump's stdout to a file created 0600. `exec` so a cancelled run kills the dump itself.
pub const DUMP_PLAIN: &str = r#"set -o pipefail; umask 077; out=$1; shift; exec "$@" > "$out""#;
/// Pipe a dump into age; the plaintext exists only in the pipe.
pub const DUMP_AGE: &str =
    r#"set -o pipefail; umask 077; out=$1; rcpt=$2; shift 2; "$@" | age -r "$rcpt" -o "$out""#;
/// Feed a dump file to a reader (pg_restore) on stdin.
pub const FEED_PLAIN: &str = r#"set -o pipefail; f=$1; shift; exec "$@" < "$f""#;
/// Decrypt into a pipe; the identity arrives on this script's stdin, which age reads as `-i -`.
pub const FEED_AGE: &str = r#"set -o pipefail; f=$1; shift; age -d -i - "$f" | "$@""#;

/// Exact row counts of every ordinary table (partitions included, parents not, so nothing is
/// counted twice), via `query_to_xml` because counting needs dynamic SQL in one statement.
pub const COUNT_SQL: &str = "SELECT format('%I.%I', n.nspname, c.relname), \
(xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)' \
ORDER BY 1";

/// Everything one operation needs: the host, the connection and the secrets to scrub.
pub(crate) struct Ctx<'a> {
    pub exec: &'a dyn Executor,
    pub conn: Conn,
    pub key: Option<Secret<String>>,
    secrets: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(exec: &'a dyn Executor, spec: &BackupSpec) -> Result<Self, BackupError> {
        spec.validate()?;
        let conn = Conn::resolve(&spec.source, spec.pg_bin.as_ref())?;
        let mut secrets: Vec<String> = conn.secrets().iter().map(|s| s.to_string()).collect();
        if let Some(k) = &spec.encryption {
            secrets.push(k.expose().trim().to_string());
        }
        Ok(Ctx {
            exec,
            conn,
            key: spec.encryption.clone(),
            secrets,
        })
    }

    pub fn host(&self) -> String {
        self.exec.host().to_string()
    }

    /// Run a command; a non-zero exit becomes [`BackupError::Tool`] with scrubbed stderr.
    pub async fn run(&self, what: &'static str, cmd: &Cmd) -> Result<Output, BackupError> {
        let out = self.exec.run(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            Err(BackupError::Tool {
                host: self.host(),
                what,
                status: out.status,
                stderr: scrub(&out.stderr, &secrets),
            })
        }
    }

    /// A fixed bash script with positional arguments and the connection environment.
    pub fn script(&self, script: &str, args: Vec<String>) -> Cmd {
        let mut c = Cmd::new("bash")
            .args(["-c", script, "davit-backup"])
            .args(args);
        c.env = self.conn.env();
        c
    }

    /// `psql` against `db` with one statement; output unaligned, tab-separated.
    pub fn psql(&self, db: &str, sql: &str) -> Cmd {
        let mut argv = self.conn.tool("psql", Some(db));
        argv.extend(
            [
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-F",
                "\t",
                "-c",
                sql,
            ]
            .map(String::from),
        );
        let mut c = Cmd::new(argv.remove(0)).args(argv);
        c.env = self.conn.env();
        c
    }

    /// Feed a dump file (decrypting it if `encrypted`) into `reader` (argv).
    pub fn feed(&self, file: &Path, encrypted: bool, reader: Vec<String>) -> Cmd {
        let mut args = vec![file.display().to_string()];
        args.extend(reader);
        if encrypted {
            let mut c = self.script(FEED_AGE, args);
            if let Some(k) = &self.key {
                c.stdin = Some(FileBody::Secret(k.clone()));
            }
            c
        } else {
            self.script(FEED_PLAIN, args)
        }
    }

    pub async fn row_counts(&self, db: &str) -> Result<BTreeMap<String, u64>, BackupError> {
        let out = self.run("counting rows", &self.psql(db, COUNT_SQL)).await?;
        parse_counts(&out.stdout).map_err(|line| BackupError::Tool {
            host: self.host(),
            what: "counting rows",
            status: 0,
            stderr: format!("unexpected psql output line {line:?}"),
        })
    }

    /// Check every program up front and name all missing ones at once.
    pub async fn require_programs(&self, encrypted: bool) -> Result<(), BackupError> {
        let mut needed = vec!["bash".to_string(), "sha256sum".into(), "wc".into()];
        needed.extend(self.conn.programs());
        if encrypted {
            needed.extend(["age".to_string(), "age-keygen".into()]);
        }
        let missing = davit_exec::missing_programs(self.exec, &needed).await;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BackupError::MissingTools {
                host: self.host(),
                tools: missing,
            })
        }
    }

    /// The age recipient (public key) of the configured identity; fails closed.
    pub async fn recipient(&self) -> Result<Option<String>, BackupError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        if key.expose().trim().is_empty() {
            return Err(BackupError::KeyMissing);
        }
        if !key.expose().contains("AGE-SECRET-KEY-1") {
            return Err(BackupError::KeyInvalid);
        }
        let out = self
            .exec
            .run(
                &Cmd::new("age-keygen")
                    .arg("-y")
                    .stdin(FileBody::Secret(key.clone())),
            )
            .await?;
        // age-keygen's complaint may quote the key; it is not shown, only the verdict.
        let r = out.stdout.trim();
        if !out.success() || !r.starts_with("age1") || r.contains(char::is_whitespace) {
            return Err(BackupError::KeyInvalid);
        }
        Ok(Some(r.to_string()))
    }

    /// sha256 and size of a file on the host.
    pub async fn checksum(&self, path: &Path) -> Result<(String, u64), BackupError> {
        let p = path.display().to_string();
        let sum = self
            .run("sha256sum", &Cmd::new("sha256sum").arg(&p))
            .await?;
        let size = self.run("wc", &Cmd::new("wc").args(["-c", &p])).await?;
        let sha = sum
            .stdout
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let size = size
            .stdout
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        match size {
            Some(size) if sha.len() == 64 => Ok((sha, size)),
            _ => Err(BackupError::Tool {
                host: self.host(),
                what: "checksum",
                status: 0,
                stderr: format!("could not read sha256/size of {p}"),
            }),
        }
    }

    /// Restore a dump into a fresh scratch database on the source server, count its rows,
    /// and drop it again whatever happened.
    pub async fn scratch_restore(
        &self,
        file: &Path,
        encrypted: bool,
    ) -> Result<BTreeMap<String, u64>, BackupError> {
        let scratch = format!("davit_verify_{:016x}", rand::random::<u64>());
        let src = self.conn.database.clone();
        self.run(
            "creating the scratch database",
            &self.psql(
                &src,
                &format!("CREATE DATABASE \"{scratch}\" TEMPLATE template0"),
            ),
        )
        .await?;
        let result = async {
            let mut reader = self.conn.tool("pg_restore", Some(&scratch));
            reader.extend(restore_flags(false));
            self.run(
                "pg_restore into the scratch database",
                &self.feed(file, encrypted, reader),
            )
            .await?;
            self.row_counts(&scratch).await
        }
        .await;
        let drop = self
            .run(
                "dropping the scratch database",
                &self.psql(&src, &format!("DROP DATABASE IF EXISTS \"{scratch}\"")),
            )
            .await;
        if let Err(e) = drop {
            tracing::warn!("scratch database {scratch} was not dropped: {e}");
        }
        result
    }
}

/// Options for every restore: stop at the first error and leave nothing half-restored.
pub(crate) fn restore_flags(clean: bool) -> Vec<String> {
    let mut v: Vec<String> = [
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        "--no-acl",
    ]
    .map(String::from)
    .to_vec();
    if clean {
        v.extend(["--clean".to_string(), "--if-exists".into()]);
    }
    v
}

fn parse_counts(out: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut m = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let (t, n) = line.rsplit_once('\t').ok_or_else(|| line.to_string())?;
        let n = n.trim().parse::<u64>().map_err(|_| line.to_string())?;
        m.insert(t.to_string(), n);
    }
    Ok(m)
}

/// Tables whose counts differ, as `table: a vs b` lines.
pub(crate) fn count_diffs(
    expected: &BTreeMap<String, u64>,
    actual: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (t, n) in expected {
        match actual.get(t) {
            Some(m) if m == n => {}
            Some(m) => diffs.push(format!("{t}: {n} rows expected, {m} found")),
            None => diffs.push(format!("{t}: missing ({n} rows expected)")),
        }
    }
    for t in actual.keys().filter(|t| !expected.contains_key(*t)) {
        diffs.push(format!("{t}: not expected"));
    }
    diffs
}

/// Names for one backup: final file and its partial.
pub(crate) fn dump_file_name(id: &str, encrypted: bool) -> String {
    if encrypted {
        format!("{id}.dump.age")
    } else {
        format!("{id}.dump")
    }
}

fn new_id(label: &str, now: chrono::DateTime<Utc>) -> String {
    let mut clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    clean = clean.trim_matches('-').to_string();
    if clean.is_empty() {
        clean = "backup".into();
    }
    format!(
        "{}-{clean}-{:06x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Take a backup of `spec.source` into `spec.dir`, verify it at `spec.verify` and return its
/// manifest. An `Err` means there is no new backup and nothing partial was left behind; the
/// deploy must not run migrations.
pub async fn backup(
    exec: &dyn Executor,
    spec: &BackupSpec,
    label: &str,
) -> Result<Manifest, BackupError> {
    let ctx = Ctx::new(exec, spec)?;
    let encrypted = spec.encryption.is_some();
    ctx.require_programs(encrypted).await?;
    let recipient = ctx.recipient().await?;
    exec.mkdir(&spec.dir, 0o700).await?;

    let started = Utc::now();
    let id = new_id(label, started);
    let file = dump_file_name(&id, encrypted);
    let final_path = spec.dir.join(&file);
    let partial = spec.dir.join(format!("{file}.partial"));

    // Counted before the dump: the reference the scratch restore is compared with.
    let before = ctx.row_counts(&ctx.conn.database).await?;
    tracing::info!(source = %ctx.conn.describe(), tables = before.len(), "dumping to {}", partial.display());

    let result = async {
        dump(&ctx, &partial, recipient.as_deref(), &spec.dir).await?;
        let (tables, note) = verify(&ctx, &partial, encrypted, spec.verify, &before).await?;
        let (sha256, size) = ctx.checksum(&partial).await?;
        exec.rename(&partial, &final_path).await?;
        let manifest = Manifest {
            version: 1,
            id: id.clone(),
            label: label.to_string(),
            file: file.clone(),
            created_at: started,
            source: ctx.conn.describe(),
            size,
            sha256,
            encryption: recipient.clone().map(|r| EncryptionInfo {
                tool: "age".into(),
                recipient: r,
            }),
            verification: Verification {
                level: spec.verify,
                verified_at: Utc::now(),
                note,
            },
            tables,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        exec.write_file(&manifest_path(&spec.dir, &id), &json, 0o600)
            .await?;
        Ok(manifest)
    }
    .await;

    if result.is_err() {
        // Whatever failed, nothing of this attempt may look like a backup afterwards.
        for p in [&partial, &final_path, &manifest_path(&spec.dir, &id)] {
            if let Err(e) = exec.remove_file(p).await {
                tracing::warn!("could not remove {}: {e}", p.display());
            }
        }
    }
    result
}

async fn dump(
    ctx: &Ctx<'_>,
    partial: &Path,
    recipient: Option<&str>,
    dir: &Path,
) -> Result<(), BackupError> {
    let mut args = vec![partial.display().to_string()];
    let script = match recipient {
        Some(r) => {
            args.push(r.to_string());
            DUMP_AGE
        }
        None => DUMP_PLAIN,
    };
    let db = ctx.conn.database.clone();
    args.extend(ctx.conn.tool("pg_dump", Some(&db)));
    // A lock held by a migration or a long transaction must fail the backup, not hang it.
    args.extend(["-Fc".to_string(), "--lock-wait-timeout=120s".into()]);
    match ctx.run("pg_dump", &ctx.script(script, args)).await {
        Err(BackupError::Tool { stderr, .. })
            if stderr.contains("No space left on device") || stderr.contains("ENOSPC") =>
        {
            Err(BackupError::DiskFull {
                host: ctx.host(),
                dir: dir.display().to_string(),
            })
        }
        r => r.map(|_| ()),
    }
}

/// Verify a dump at `level`; returns the row counts to record and a note.
async fn verify(
    ctx: &Ctx<'_>,
    file: &Path,
    encrypted: bool,
    level: VerifyLevel,
    before: &BTreeMap<String, u64>,
) -> Result<(BTreeMap<String, u64>, Option<String>), BackupError> {
    let failed = |e| verify_error(ctx, level, e);
    match level {
        VerifyLevel::Read => {
            let mut reader = ctx.conn.tool("pg_restore", None);
            reader.extend(["-f".to_string(), "/dev/null".into()]);
            ctx.run(
                "pg_restore -f /dev/null",
                &ctx.feed(file, encrypted, reader),
            )
            .await
            .map_err(failed)?;
            Ok((
                before.clone(),
                Some("row counts taken from the source just before the dump".into()),
            ))
        }
        VerifyLevel::Restore => {
            let restored = ctx.scratch_restore(file, encrypted).await.map_err(failed)?;
            let diffs = count_diffs(before, &restored);
            if diffs.is_empty() {
                return Ok((restored, None));
            }
            // The app may have written while we dumped; only a source that stood still proves
            // the dump lost rows.
            let after = ctx.row_counts(&ctx.conn.database).await?;
            if &after == before {
                Err(BackupError::RowCountMismatch { diffs })
            } else {
                Ok((
                    restored,
                    Some(
                        "the source changed during the dump; counts are those of the restored copy"
                            .into(),
                    ),
                ))
            }
        }
    }
}

/// A failed reader means a bad dump; a failed scratch `CREATE DATABASE` does not (it keeps its
/// own error, whose hint names the CREATEDB privilege).
fn verify_error(ctx: &Ctx<'_>, level: VerifyLevel, e: BackupError) -> BackupError {
    match e {
        BackupError::Tool { stderr, what, .. } if what != "creating the scratch database" => {
            BackupError::Verify {
                host: ctx.host(),
                level,
                reason: format!("{what}: {}", stderr.trim()),
            }
        }
        e => e,
    }
}

/// Verify an existing dump file at `level` without a source comparison (the lead's
/// `davit backup verify`, and the proof in T38 that a corrupt file is caught). Returns the
/// restored row counts at `Restore` level, nothing at `Read` level.
pub async fn verify_file(
    exec: &dyn Executor,
    spec: &BackupSpec,
    file: &Path,
    level: VerifyLevel,
) -> Result<BTreeMap<String, u64>, BackupError> {
    let ctx = Ctx::new(exec, spec)?;
    let encrypted = file.extension().is_some_and(|e| e == "age");
    ctx.require_programs(encrypted).await?;
    if encrypted {
        ctx.recipient().await?;
    }
    match level {
        VerifyLevel::Read => verify(&ctx, file, encrypted, level, &BTreeMap::new())
            .await
            .map(|_| BTreeMap::new()),
        VerifyLevel::Restore => ctx
            .scratch_restore(file, encrypted)
            .await
            .map_err(|e| verify_error(&ctx, level, e)),
    }
}

/// Absolute path of a backup's dump.
pub(crate) fn dump_path(dir: &Path, m: &Manifest) -> PathBuf {
    dir.join(&m.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_and_diff() {
        let a = parse_counts("public.a\t3\npublic.b\t0\n").unwrap();
        let mut b = a.clone();
        b.insert("public.a".into(), 2);
        b.insert("public.c".into(), 1);
        assert_eq!(
            count_diffs(&a, &b),
            vec![
                "public.a: 3 rows expected, 2 found",
                "public.c: not expected"
            ]
        );
        assert!(parse_counts("garbage").is_err());
    }

    #[test]
    fn ids_are_safe_file_names() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = new_id("pre-migrate v1.2/../../x", now);
        assert!(
            id.starts_with("20250102T030405Z-pre-migrate-v1-2-------x-"),
            "{id}"
        );
        assert!(!id.contains('/'));
        assert!(new_id("", now).contains("-backup-"));
    }
}
