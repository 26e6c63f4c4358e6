//! Which migration a failed migration hook was applying, read from the tool's own progress lines.
//!
//! A pre-deploy hook is an opaque command to davit, but the migration tools the teams use print
//! one line per migration as they go: the last one started and never finished is the one that
//! failed, and those finished before it are applied (Django and Rails run each migration in its
//! own transaction on PostgreSQL, so they stay applied after the failure). Saying so in the
//! deploy's failure turns "exited with 1" plus a traceback into what the team needs to decide:
//! the previous release keeps serving on a schema that already has those migrations, and the
//! backup taken before them is there to restore. Unknown output gives no report, never a guess.

use serde::Serialize;

/// A migration run that stopped at one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationFailure {
    /// The tool whose progress lines were recognised (`Django`, `Rails`, `Alembic`, `Prisma`).
    pub tool: &'static str,
    /// The migration that was being applied when the hook failed.
    pub failed: String,
    /// Migrations this run finished before the failure, in order. Empty when the tool does not
    /// commit them one by one (Alembic runs them in one transaction by default).
    pub applied: Vec<String>,
}

impl MigrationFailure {
    /// One line for the deploy's failure and the ledger.
    pub fn summary(&self) -> String {
        let mut s = format!("migration {} failed ({})", self.failed, self.tool);
        if !self.applied.is_empty() {
            s.push_str(&format!(
                "; applied before it by this deploy, and still applied: {}",
                self.applied.join(", ")
            ));
        }
        s
    }
}

/// The failed migration, from a hook's standard output and error, or None when neither shows
/// the progress lines of a tool davit knows.
pub fn failed_migration(stdout: &str, stderr: &str) -> Option<MigrationFailure> {
    let text = format!("{stdout}\n{stderr}");
    django(&text)
        .or_else(|| rails(&text))
        .or_else(|| alembic(&text))
        .or_else(|| prisma(&text))
}

/// `  Applying jobs.0002_job_priority... OK` per migration; the failing one has no ` OK`.
fn django(text: &str) -> Option<MigrationFailure> {
    let mut applied = Vec::new();
    let mut failed = None;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("Applying ") else {
            continue;
        };
        let Some((name, after)) = rest.split_once("...") else {
            continue;
        };
        if name.is_empty() || name.contains(' ') {
            continue;
        }
        if after.trim_start().starts_with("OK") {
            applied.push(name.to_string());
            failed = None;
        } else {
            failed = Some(name.to_string());
        }
    }
    Some(MigrationFailure {
        tool: "Django",
        failed: failed?,
        applied,
    })
}

/// `== 20240101000000 CreateUsers: migrating ===` and `...: migrated (0.0013s) ===`.
fn rails(text: &str) -> Option<MigrationFailure> {
    let mut applied = Vec::new();
    let mut started: Option<String> = None;
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("== ") else {
            continue;
        };
        let rest = rest.trim_end_matches('=').trim_end();
        if let Some(name) = rest.strip_suffix(": migrating") {
            started = Some(name.trim().to_string());
        } else if let Some((name, _)) = rest.split_once(": migrated") {
            let name = name.trim().to_string();
            if started.as_deref() == Some(name.as_str()) {
                started = None;
            }
            applied.push(name);
        }
    }
    Some(MigrationFailure {
        tool: "Rails",
        failed: started?,
        applied,
    })
}

/// `INFO  [alembic.runtime.migration] Running upgrade 1a2b -> 3c4d, add column`: logged before
/// each migration runs, so the last one is where it stopped.
fn alembic(text: &str) -> Option<MigrationFailure> {
    if !text.contains("alembic") {
        return None;
    }
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.split_once("Running upgrade ").map(|(_, r)| r))?;
    let step = last.split_once(',').map_or(last, |(s, _)| s).trim();
    let target = step.rsplit_once("->").map_or(step, |(_, t)| t).trim();
    let comment = last.split_once(',').map(|(_, c)| c.trim());
    Some(MigrationFailure {
        tool: "Alembic",
        failed: match comment {
            Some(c) if !c.is_empty() => format!("{target} ({c})"),
            _ => target.to_string(),
        },
        applied: Vec::new(),
    })
}

/// `prisma migrate deploy`: a failure names it as `Migration name: 20240101_add_column`.
fn prisma(text: &str) -> Option<MigrationFailure> {
    if !text.contains("P3018") && !text.contains("A migration failed to apply") {
        return None;
    }
    let name = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Migration name:"))?
        .trim();
    (!name.is_empty()).then(|| MigrationFailure {
        tool: "Prisma",
        failed: name.to_string(),
        applied: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_names_the_migration_without_ok_and_the_ones_before_it() {
        let out = "Operations to perform:\n  Apply all migrations: contenttypes, jobs\nRunning migrations:\n  Applying jobs.0002_job_priority... OK\n  Applying jobs.0003_unique_creator...";
        let err = "Traceback (most recent call last):\n  ...\ndjango.db.utils.IntegrityError: could not create unique index \"jobs_job_created_by_key\"";
        let f = failed_migration(out, err).unwrap();
        assert_eq!(f.tool, "Django");
        assert_eq!(f.failed, "jobs.0003_unique_creator");
        assert_eq!(f.applied, vec!["jobs.0002_job_priority"]);
        assert_eq!(
            f.summary(),
            "migration jobs.0003_unique_creator failed (Django); applied before it by this deploy, and still applied: jobs.0002_job_priority"
        );
    }

    #[test]
    fn django_with_timings_and_a_first_migration_failing() {
        let out = "Running migrations:\n  Applying jobs.0001_initial... OK (0.012s)\n  Applying jobs.0002_x...";
        let f = failed_migration(out, "").unwrap();
        assert_eq!((f.failed.as_str(), f.applied.len()), ("jobs.0002_x", 1));
        let f = failed_migration("Running migrations:\n  Applying a.0001_initial...", "").unwrap();
        assert!(f.applied.is_empty());
        assert_eq!(f.summary(), "migration a.0001_initial failed (Django)");
    }

    #[test]
    fn a_run_that_finished_every_migration_or_printed_none_names_nothing() {
        // The hook failed after its migrations (a later command, a check): no migration failed.
        assert_eq!(
            failed_migration("  Applying jobs.0002_x... OK\n", "boom"),
            None
        );
        assert_eq!(failed_migration("No migrations to apply.\n", "error"), None);
        assert_eq!(failed_migration("", "psql: connection refused"), None);
    }

    #[test]
    fn rails_names_the_migration_still_migrating() {
        let out = "== 20240101000000 CreateUsers: migrating ======\n-- create_table(:users)\n   -> 0.0012s\n== 20240101000000 CreateUsers: migrated (0.0013s) ======\n\n== 20240202000000 AddIndex: migrating =====\n-- add_index(:users, :email, {:unique=>true})\n";
        let f = failed_migration(out, "rails aborted!").unwrap();
        assert_eq!(f.tool, "Rails");
        assert_eq!(f.failed, "20240202000000 AddIndex");
        assert_eq!(f.applied, vec!["20240101000000 CreateUsers"]);
    }

    #[test]
    fn alembic_names_the_last_upgrade_it_started() {
        let err = "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\nINFO  [alembic.runtime.migration] Running upgrade  -> 1a2b, create table\nINFO  [alembic.runtime.migration] Running upgrade 1a2b -> 3c4d, add unique email\nsqlalchemy.exc.IntegrityError: ...";
        let f = failed_migration("", err).unwrap();
        assert_eq!(f.tool, "Alembic");
        assert_eq!(f.failed, "3c4d (add unique email)");
        assert!(f.applied.is_empty());
    }

    #[test]
    fn prisma_names_the_migration_in_its_error() {
        let out = "Applying migration `20240101_init`\nError: P3018\n\nA migration failed to apply. New migrations cannot be applied before the error is recovered from.\n\nMigration name: 20240101_init\n";
        let f = failed_migration(out, "").unwrap();
        assert_eq!((f.tool, f.failed.as_str()), ("Prisma", "20240101_init"));
    }
}
