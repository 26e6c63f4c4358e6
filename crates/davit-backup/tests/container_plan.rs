//! Container mode, recorded: the exact commands a backup runs against a PostgreSQL container.
//!
//! No postgres image can be pulled where these tests run, so container mode is checked by
//! recording what would run (snapshotted) instead of running it; URL mode runs for real in
//! `postgres.rs`. The snapshot doubles as a review aid: every secret shows as `[REDACTED]`, in
//! the environment or on stdin, never in argv.

use davit_backup::backup::{DUMP_AGE, DUMP_PLAIN};
use davit_backup::{BackupError, BackupSpec, Source, VerifyLevel, backup, require_verified_backup};
use davit_core::Secret;
use davit_core::plan::shell_quote;
use davit_exec::{Output, Recording};

const PASSWORD: &str = "canary-container-password";
const KEY: &str = "AGE-SECRET-KEY-1CANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARYCANARY";

fn spec(encrypted: bool) -> BackupSpec {
    let mut s = BackupSpec::new(
        Source::Container {
            name: "shop-db".into(),
            user: "app".into(),
            database: "shop".into(),
            password: Some(Secret::new(PASSWORD.into())),
        },
        "/var/backups/davit/shop",
    );
    if encrypted {
        s.encryption = Some(Secret::new(KEY.into()));
    }
    s
}

fn out(stdout: &str) -> Output {
    Output {
        status: 0,
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

fn host() -> Recording {
    Recording::new("db-1")
        .with_output("age-keygen", out("age1recipient\n"))
        .with_output("sha256sum", out(&format!("{}  f\n", "ab".repeat(32))))
        .with_output("wc", out("4096 f\n"))
}

/// The log with this run's random parts replaced, and no secret anywhere in it.
fn scrubbed(log: Vec<String>, id: &str) -> String {
    // Manifest sizes vary with the timestamps' sub-second digits.
    let log: Vec<String> = log
        .into_iter()
        .map(
            |l| match (l.starts_with("write "), l.find(" ("), l.find(" bytes")) {
                (true, Some(a), Some(b)) => format!("{} ([N]{}", &l[..a], &l[b..]),
                _ => l,
            },
        )
        .collect();
    let mut text = log.join("\n").replace(id, "[ID]");
    while let Some(i) = text.find("davit_verify_") {
        let end = i + "davit_verify_".len() + 16;
        text.replace_range(i..end, "davit_verify[RANDOM]");
    }
    assert!(
        !text.contains(PASSWORD) && !text.contains("CANARY"),
        "{text}"
    );
    text
}

#[tokio::test]
async fn container_backup_with_restore_verification_and_encryption() {
    let rec = host();
    let m = backup(&rec, &spec(true), "pre-migrate").await.unwrap();
    assert_eq!(m.source, "app@container:shop-db/shop");
    assert_eq!(m.verification.level, VerifyLevel::Restore);
    insta::assert_snapshot!(scrubbed(rec.log(), &m.id));
}

#[tokio::test]
async fn container_backup_read_level_unencrypted() {
    let rec = host();
    let mut s = spec(false);
    s.verify = VerifyLevel::Read;
    let m = backup(&rec, &s, "").await.unwrap();
    insta::assert_snapshot!(scrubbed(rec.log(), &m.id));
}

#[tokio::test]
async fn a_failed_dump_removes_the_partial_and_writes_no_manifest() {
    for (encrypted, script) in [(true, DUMP_AGE), (false, DUMP_PLAIN)] {
        let prefix = format!("PGPASSWORD='[REDACTED]' bash -c {}", shell_quote(script));
        let rec = host().with_output(
            prefix,
            Output {
                status: 1,
                stdout: String::new(),
                stderr: format!(
                    "pg_dump: error: could not write to output file: No space left on device (password {PASSWORD})"
                ),
            },
        );
        let s = spec(encrypted);
        let e = backup(&rec, &s, "x").await.unwrap_err();
        assert!(matches!(e, BackupError::DiskFull { .. }), "{e}");
        let log = rec.log();
        let last: Vec<&str> = log.iter().rev().take(3).map(String::as_str).collect();
        assert!(
            last.iter()
                .any(|l| l.starts_with("remove ") && l.ends_with(".partial")),
            "{log:#?}"
        );
        assert!(!log.iter().any(|l| l.starts_with("write ")), "{log:#?}");
        assert!(!log.iter().any(|l| l.starts_with("rename ")), "{log:#?}");
        let e = require_verified_backup(&rec, &s, None, VerifyLevel::Read)
            .await
            .unwrap_err();
        assert!(matches!(e, BackupError::NoVerifiedBackup { .. }), "{e}");
    }
}

#[tokio::test]
async fn a_tool_error_echoing_the_password_is_scrubbed() {
    let rec = host().with_output(
        "PGPASSWORD='[REDACTED]' docker exec -i -e PGPASSWORD shop-db psql",
        Output {
            status: 2,
            stdout: String::new(),
            stderr: format!("psql: error: FATAL: password {PASSWORD} rejected"),
        },
    );
    let e = backup(&rec, &spec(false), "x").await.unwrap_err();
    let shown = format!("{e} {e:?} {}", e.hint());
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("password [REDACTED] rejected"), "{shown}");
}
