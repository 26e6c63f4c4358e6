//! Restoring a backup, and the restore drill.
//!
//! A restore is checked before it touches any database: the file must still have the
//! manifest's checksum and, when encrypted, the configured key must be the one the backup was
//! made for (compared by public recipient, so a wrong key is named as such instead of showing
//! up as a pg_restore parse error). A non-empty target is refused unless `force`, and then the
//! whole restore runs in one transaction (`--single-transaction --exit-on-error`), so a failure
//! leaves the target as it was. Afterwards the row counts must equal the manifest's exactly.

use crate::backup::{Ctx, count_diffs, dump_path, restore_flags};
use crate::manifest::{Manifest, manifest_path, read_manifest};
use crate::{BackupError, BackupSpec};
use davit_exec::Executor;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a restore or drill did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub target: String,
    /// The database did not exist and was created.
    pub created: bool,
    /// Rows per table after the restore (equal to the manifest's).
    pub tables: BTreeMap<String, u64>,
}

fn check_name(what: &str, name: &str) -> Result<(), BackupError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(BackupError::Config {
            message: format!("{what} {name:?} is not a plain name"),
            hint: format!("use letters, digits, '_', '-' or '.' for the {what} (at most 63)"),
        })
    }
}

/// Load a backup's manifest and check its file and key before anything is restored.
async fn prepare<'a>(
    exec: &'a dyn Executor,
    spec: &BackupSpec,
    id: &str,
) -> Result<(Ctx<'a>, Manifest), BackupError> {
    check_name("backup id", id)?;
    let ctx = Ctx::new(exec, spec)?;
    let path = manifest_path(&spec.dir, id);
    if exec.read_file(&path).await?.is_none() {
        return Err(BackupError::NotFound {
            id: id.to_string(),
            dir: spec.dir.display().to_string(),
        });
    }
    let m = read_manifest(exec, &path).await?;
    ctx.require_programs(m.encryption.is_some()).await?;
    if let Some(enc) = &m.encryption {
        let Some(actual) = ctx.recipient().await? else {
            return Err(BackupError::KeyMissing);
        };
        if actual != enc.recipient {
            return Err(BackupError::WrongKey {
                id: m.id.clone(),
                expected: enc.recipient.clone(),
                actual,
            });
        }
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
    Ok((ctx, m))
}

/// Restore backup `id` into database `target` on the source's server (or container).
///
/// `target` is created if missing. An existing target with tables is refused unless `force`,
/// which replaces the objects in the dump (`--clean --if-exists`) in a single transaction.
pub async fn restore(
    exec: &dyn Executor,
    spec: &BackupSpec,
    id: &str,
    target: &str,
    force: bool,
) -> Result<RestoreReport, BackupError> {
    check_name("target database", target)?;
    let (ctx, m) = prepare(exec, spec, id).await?;
    let src = ctx.conn.database.clone();
    let exists = ctx
        .run(
            "looking up the target database",
            &ctx.psql(
                &src,
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{target}'"),
            ),
        )
        .await?
        .stdout
        .trim()
        == "1";
    let mut clean = false;
    if exists {
        let tables: u64 = ctx
            .run(
                "inspecting the target database",
                &ctx.psql(
                    target,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r','p','v','m','S','f') \
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname !~ '^pg_(toast|temp_)'",
                ),
            )
            .await?
            .stdout
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if tables > 0 && !force {
            return Err(BackupError::TargetNotEmpty {
                target: target.to_string(),
                tables,
            });
        }
        clean = tables > 0;
    } else {
        ctx.run(
            "creating the target database",
            &ctx.psql(
                &src,
                &format!("CREATE DATABASE \"{target}\" TEMPLATE template0"),
            ),
        )
        .await?;
    }
    let mut reader = ctx.conn.tool("pg_restore", Some(target));
    reader.extend(restore_flags(clean));
    let restored = ctx
        .run(
            "pg_restore",
            &ctx.feed(&dump_path(&spec.dir, &m), m.encryption.is_some(), reader),
        )
        .await;
    if let Err(e) = restored {
        if !exists {
            // Nothing restored means nothing left over: the database we created goes too.
            let _ = ctx
                .run(
                    "dropping the target database",
                    &ctx.psql(&src, &format!("DROP DATABASE IF EXISTS \"{target}\"")),
                )
                .await;
        }
        return Err(e);
    }
    let mut tables = ctx.row_counts(target).await?;
    if clean {
        // Tables the dump does not know about were left alone on purpose; ignore them.
        tables.retain(|t, _| m.tables.contains_key(t));
    }
    let diffs = count_diffs(&m.tables, &tables);
    if !diffs.is_empty() {
        return Err(BackupError::RowCountMismatch { diffs });
    }
    Ok(RestoreReport {
        id: m.id,
        target: target.to_string(),
        created: !exists,
        tables,
    })
}

/// The restore drill: restore backup `id` into a scratch database, require the manifest's row
/// counts exactly, drop the scratch database. Proves a backup is restorable without touching
/// any real database.
pub async fn drill(
    exec: &dyn Executor,
    spec: &BackupSpec,
    id: &str,
) -> Result<RestoreReport, BackupError> {
    let (ctx, m) = prepare(exec, spec, id).await?;
    let tables = ctx
        .scratch_restore(&dump_path(&spec.dir, &m), m.encryption.is_some())
        .await?;
    let diffs = count_diffs(&m.tables, &tables);
    if !diffs.is_empty() {
        return Err(BackupError::RowCountMismatch { diffs });
    }
    Ok(RestoreReport {
        id: m.id,
        target: "(scratch, dropped)".into(),
        created: true,
        tables,
    })
}
