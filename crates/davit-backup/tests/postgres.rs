//! Backups against a real PostgreSQL: T36-T40 and the secret tests T08-T10, T12.
//!
//! Every test starts its own throwaway cluster (see `common`). Without PostgreSQL they skip
//! with a printed reason, unless CI=true, where they fail.

mod common;

use common::{
    ArgvSampler, Cluster, fake_pg_bin, files_containing, ls, new_temp_files_containing, random_hex,
};
use davit_backup::{
    BackupError, BackupSpec, Source, VerifyLevel, backup, drill, list, prune,
    require_verified_backup, restore, verify_file,
};
use davit_core::Secret;
use davit_exec::Local;
use std::path::Path;

fn spec(c: &Cluster, url: String, dir: &Path) -> BackupSpec {
    let mut s = BackupSpec::new(Source::Url(Secret::new(url)), dir);
    s.pg_bin = Some(c.bin.clone());
    s
}

fn schema(c: &Cluster) -> String {
    c.sql(
        "shop",
        "SELECT string_agg(table_schema || '.' || table_name || '.' || column_name, ',' ORDER BY 1) \
         FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
}

/// The deploy flow in miniature: backup, gate, and only then the migration.
async fn backup_then_migrate(
    c: &Cluster,
    spec: &BackupSpec,
) -> Result<davit_backup::Manifest, BackupError> {
    let exec = Local::new();
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let made = backup(&exec, spec, "pre-migrate").await;
    // The gate is what the lead calls; it must refuse whatever `backup` returned.
    let gated = require_verified_backup(&exec, spec, Some(started), spec.verify).await;
    match (&made, &gated) {
        (Ok(m), Ok(g)) => assert_eq!(m, g),
        (Err(_), Err(BackupError::NoVerifiedBackup { .. })) => {}
        other => panic!("backup and gate disagree: {other:?}"),
    }
    let m = gated?;
    c.sql("shop", "ALTER TABLE customers ADD COLUMN email text");
    Ok(m)
}

fn secret_free(e: &BackupError, secrets: &[&str]) {
    let shown = format!("{e}\n{e:?}\nhint: {}", e.hint());
    for s in secrets {
        assert!(!shown.contains(s), "secret in error: {shown}");
    }
}

#[tokio::test]
async fn backup_verifies_by_scratch_restore_and_restores_exactly() {
    let Some(c) = Cluster::start(2000) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = spec(&c, c.url(), &dir.path().join("backups"));
    let source = c.counts("shop");
    let exec = Local::new();

    let m = backup(&exec, &s, "v1.2.3 pre-migrate").await.unwrap();
    assert_eq!(m.verification.level, VerifyLevel::Restore);
    assert_eq!(
        m.tables, source,
        "manifest counts are the source's exact counts"
    );
    assert_eq!(m.tables["audit.\"Log Entries\""], 17);
    assert_eq!(m.tables["public.empty_table"], 0);
    assert_eq!(m.source, format!("app@127.0.0.1:{}/shop", c.port));
    assert_eq!(
        ls(&s.dir),
        [format!("{}.dump", m.id), format!("{}.manifest.json", m.id)]
    );
    // Scratch databases are gone again.
    assert_eq!(c.databases(), ["postgres", "shop"]);

    let listing = list(&exec, &s.dir).await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&m));
    assert!(listing.partial.is_empty() && listing.unverified.is_empty());

    // The restore drill and a restore into a new database reproduce the counts exactly.
    let d = drill(&exec, &s, &m.id).await.unwrap();
    assert_eq!(d.tables, source);
    let r = restore(&exec, &s, &m.id, "shop_copy", false).await.unwrap();
    assert!(r.created);
    assert_eq!(c.counts("shop_copy"), source);

    // Restoring over a database with tables needs --force, and then replaces its contents.
    let e = restore(&exec, &s, &m.id, "shop", false).await.unwrap_err();
    assert!(matches!(e, BackupError::TargetNotEmpty { .. }), "{e}");
    c.sql(
        "shop",
        "DELETE FROM orders WHERE id > 10; INSERT INTO customers (name) VALUES ('new')",
    );
    let r = restore(&exec, &s, &m.id, "shop", true).await.unwrap();
    assert!(!r.created);
    assert_eq!(c.counts("shop"), source);

    // A dump changed on disk is refused by the gate and by restore, before touching anything.
    let path = s.dir.join(&m.file);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = require_verified_backup(&exec, &s, None, VerifyLevel::Read)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e}");
    let e = restore(&exec, &s, &m.id, "shop_other", false)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::ChecksumMismatch { .. }), "{e}");
    assert!(!c.databases().contains(&"shop_other".to_string()));
}

#[tokio::test]
async fn t37_failed_dump_blocks_the_migration_and_leaves_the_db_unchanged() {
    let Some(c) = Cluster::start(0) else { return };
    let dir = tempfile::tempdir().unwrap();
    let before = (c.counts("shop"), schema(&c));

    // pg_dump cannot log in.
    let wrong = format!("wrong-{}", random_hex());
    let s = spec(&c, c.url_with(&wrong), &dir.path().join("a"));
    let e = backup_then_migrate(&c, &s).await.unwrap_err();
    assert!(matches!(e, BackupError::NoVerifiedBackup { .. }), "{e}");
    secret_free(&e, &[&wrong, &c.password]);

    // pg_dump writes part of a dump, then fails: the partial file goes, nothing is a backup.
    let bin = fake_pg_bin(
        &c.bin,
        r#""$REAL" "$@" | head -c 5000; echo "pg_dump: error: query failed: server closed the connection" >&2; exit 1"#,
    );
    let mut s = spec(&c, c.url(), &dir.path().join("b"));
    s.pg_bin = Some(bin.path().to_path_buf());
    let exec = Local::new();
    let e = backup(&exec, &s, "x").await.unwrap_err();
    assert!(
        matches!(
            e,
            BackupError::Tool {
                what: "pg_dump",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("server closed the connection"),
        "{e}"
    );
    assert!(ls(&s.dir).is_empty(), "{:?}", ls(&s.dir));
    let e = backup_then_migrate(&c, &s).await.unwrap_err();
    assert!(matches!(e, BackupError::NoVerifiedBackup { .. }), "{e}");

    // Missing tools are named together before anything runs.
    s.pg_bin = Some(dir.path().join("nowhere"));
    let e = backup(&exec, &s, "x").await.unwrap_err();
    assert!(e.to_string().contains("nowhere/pg_dump"), "{e}");
    assert!(e.hint().contains("postgresql-client"), "{}", e.hint());

    assert_eq!((c.counts("shop"), schema(&c)), before, "DB unchanged");
    assert_eq!(c.databases(), ["postgres", "shop"]);

    // And the same flow with a working backup does migrate.
    let s = spec(&c, c.url(), &dir.path().join("c"));
    backup_then_migrate(&c, &s).await.unwrap();
    assert!(schema(&c).contains("public.customers.email"));
}

#[tokio::test]
async fn t38_corrupt_dumps_are_caught_where_pg_restore_list_is_not() {
    let Some(c) = Cluster::start(20000) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();
    let before = schema(&c);

    let truncate = r#"t=$(mktemp); trap 'rm -f "$t"' EXIT
"$REAL" "$@" > "$t" || exit 1
head -c $(( $(wc -c < "$t") / 2 )) "$t""#;
    let flip = r#"t=$(mktemp); trap 'rm -f "$t"' EXIT
"$REAL" "$@" > "$t" || exit 1
printf '\377\000\377\000\377\000\377\000\377\000\377\000\377\000\377\000' | dd of="$t" bs=1 seek=$(( $(wc -c < "$t") / 2 )) conv=notrunc 2>/dev/null
cat "$t""#;
    for (name, script) in [("truncated", truncate), ("flipped", flip)] {
        for level in [VerifyLevel::Restore, VerifyLevel::Read] {
            let bin = fake_pg_bin(&c.bin, script);
            let mut s = spec(&c, c.url(), &dir.path().join(format!("{name}-{level}")));
            s.pg_bin = Some(bin.path().to_path_buf());
            s.verify = level;
            let e = backup_then_migrate(&c, &s).await.unwrap_err();
            assert!(matches!(e, BackupError::NoVerifiedBackup { .. }), "{e}");
            let e = backup(&exec, &s, name).await.unwrap_err();
            assert!(
                matches!(e, BackupError::Verify { .. }),
                "{name} dump at {level}: {e}"
            );
            eprintln!("{name} dump at {level} level: {e}");
            assert!(ls(&s.dir).is_empty(), "{name}: {:?}", ls(&s.dir));
        }
    }
    assert_eq!(schema(&c), before, "no migration ran");
    assert_eq!(
        c.databases(),
        ["postgres", "shop"],
        "scratch databases dropped"
    );

    // The point of it: the table of contents of a damaged dump still lists fine.
    let plain = dir.path().join("plain.dump");
    let status = std::process::Command::new(c.bin.join("pg_dump"))
        .args([
            "-Fc",
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "app",
            "-d",
            "shop",
            "-f",
        ])
        .arg(&plain)
        .env("PGPASSWORD", &c.password)
        .status()
        .unwrap();
    assert!(status.success());
    let mut bytes = std::fs::read(&plain).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let flipped = dir.path().join("flipped.dump");
    std::fs::write(&flipped, &bytes).unwrap();
    let listed = std::process::Command::new(c.bin.join("pg_restore"))
        .arg("--list")
        .arg(&flipped)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "pg_restore --list accepts the flipped dump"
    );
    let s = spec(&c, c.url(), &dir.path().join("unused"));
    let e = verify_file(&exec, &s, &flipped, VerifyLevel::Restore)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::Verify { .. }), "{e}");
    let e = verify_file(&exec, &s, &flipped, VerifyLevel::Read)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::Verify { .. }), "{e}");
    let ok = verify_file(&exec, &s, &plain, VerifyLevel::Restore)
        .await
        .unwrap();
    assert_eq!(ok, c.counts("shop"));
}

#[tokio::test]
async fn t39_encryption_fails_closed_and_round_trips() {
    let Some(c) = Cluster::start(1000) else {
        return;
    };
    let Some(key) = common::age_identity() else {
        return;
    };
    let Some(other) = common::age_identity() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();
    let source = c.counts("shop");

    // Configured but empty or broken key: refused before anything is dumped (T12).
    for (bad, expect_missing) in [
        ("", true),
        ("  \n", true),
        ("not-a-key", false),
        ("AGE-SECRET-KEY-1BROKEN", false),
    ] {
        let mut s = spec(&c, c.url(), &dir.path().join("refused"));
        s.encryption = Some(Secret::new(bad.to_string()));
        let e = backup(&exec, &s, "x").await.unwrap_err();
        if expect_missing {
            assert!(matches!(e, BackupError::KeyMissing), "{e}");
        } else {
            assert!(matches!(e, BackupError::KeyInvalid), "{e}");
        }
        secret_free(&e, &[&c.password, "AGE-SECRET-KEY-1BROKEN"]);
        assert!(!s.dir.exists(), "nothing written for a refused key");
    }

    let mut s = spec(&c, c.url(), &dir.path().join("enc"));
    s.encryption = Some(Secret::new(key.clone()));
    let m = backup(&exec, &s, "encrypted").await.unwrap();
    assert_eq!(m.tables, source);
    assert!(m.file.ends_with(".dump.age"), "{}", m.file);
    let enc = m.encryption.as_ref().unwrap();
    assert!(enc.recipient.starts_with("age1"));
    // No plaintext dump anywhere, and the key is not stored.
    for f in ls(&s.dir) {
        let bytes = std::fs::read(s.dir.join(&f)).unwrap();
        assert!(!bytes.starts_with(b"PGDMP"), "{f} is a plaintext dump");
        assert!(
            !bytes.windows(16).any(|w| w == b"AGE-SECRET-KEY-1"),
            "{f} holds the key"
        );
    }
    let stored = std::fs::read(s.dir.join(&m.file)).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    assert_eq!(c.databases(), ["postgres", "shop"]);

    // Wrong key or no key: a clear error and nothing restored.
    let mut wrong = s.clone();
    wrong.encryption = Some(Secret::new(other));
    let e = restore(&exec, &wrong, &m.id, "shop_restored", false)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::WrongKey { .. }), "{e}");
    let mut none = s.clone();
    none.encryption = None;
    let e = restore(&exec, &none, &m.id, "shop_restored", false)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::KeyMissing), "{e}");
    assert_eq!(c.databases(), ["postgres", "shop"]);

    // Round trip: decrypt and restore with the right key reproduces the counts.
    let r = restore(&exec, &s, &m.id, "shop_restored", false)
        .await
        .unwrap();
    assert_eq!(r.tables, source);
    assert_eq!(c.counts("shop_restored"), source);
    drill(&exec, &s, &m.id).await.unwrap();
    require_verified_backup(&exec, &s, None, VerifyLevel::Restore)
        .await
        .unwrap();

    // Read-level verification decrypts through a pipe as well.
    let mut r = s.clone();
    r.verify = VerifyLevel::Read;
    r.dir = dir.path().join("enc-read");
    backup(&exec, &r, "enc-read").await.unwrap();
}

#[tokio::test]
async fn t40_retention_never_deletes_the_last_verified_backup() {
    let Some(c) = Cluster::start(0) else { return };
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();
    let mut s = spec(&c, c.url(), &dir.path().join("b"));
    s.keep = 2;
    let mut ids = Vec::new();
    for i in 0..3 {
        c.sql(
            "shop",
            &format!("INSERT INTO customers (name) VALUES ('round {i}')"),
        );
        ids.push(backup(&exec, &s, &format!("r{i}")).await.unwrap().id);
    }
    // Leftovers of a crash and a dump nobody verified.
    std::fs::write(
        s.dir.join("20000101T000000Z-crash-000000.dump.partial"),
        b"PGDMP",
    )
    .unwrap();
    std::fs::write(s.dir.join("20000101T000000Z-manual-000000.dump"), b"PGDMP").unwrap();

    let report = prune(&exec, &s).await.unwrap();
    assert_eq!(report.deleted, [ids[0].clone()]);
    assert_eq!(report.kept, [ids[2].clone(), ids[1].clone()]);
    assert_eq!(
        report.partial_removed,
        ["20000101T000000Z-crash-000000.dump.partial"]
    );
    assert_eq!(report.unverified, ["20000101T000000Z-manual-000000.dump"]);

    // A failing backup afterwards changes nothing, and even a zero max age keeps the newest.
    let bad = spec(&c, c.url_with("wrong"), &s.dir);
    backup(&exec, &bad, "fails").await.unwrap_err();
    s.keep = 1;
    s.max_age = Some(chrono::Duration::zero());
    let report = prune(&exec, &s).await.unwrap();
    assert_eq!(report.deleted, [ids[1].clone()]);
    assert_eq!(report.kept, [ids[2].clone()]);
    let listing = list(&exec, &s.dir).await.unwrap();
    assert_eq!(listing.backups.len(), 1);
    assert_eq!(listing.unverified, ["20000101T000000Z-manual-000000.dump"]);
    assert!(s.dir.join("20000101T000000Z-manual-000000.dump").exists());

    // The restore drill of the survivor reproduces the source's row counts exactly.
    let newest = &listing.backups[0];
    assert_eq!(newest.id, ids[2]);
    let d = drill(&exec, &s, &newest.id).await.unwrap();
    assert_eq!(d.tables, c.counts("shop"));
    assert_eq!(d.tables["public.customers"], 253);
}

#[tokio::test]
async fn t09_t10_no_secret_in_argv_or_left_on_disk() {
    let Some(c) = Cluster::start(100_000) else {
        return;
    };
    // A second before now: file times may be coarser than the clock.
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();
    let wrong = format!("wr0ng-{}-p@ss", random_hex());
    let enc = |p: &str| {
        c.url_with(p)
            .split(['@', ':'])
            .nth(2)
            .unwrap_or_default()
            .to_string()
    };
    let needles = vec![
        c.password.clone(),
        enc(&c.password),
        wrong.clone(),
        enc(&wrong),
    ];
    assert!(needles.iter().all(|n| n.len() > 10), "{needles:?}");
    let port = c.port.to_string();
    let home_pgpass = std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"));
    let pgpass_before = home_pgpass.as_ref().is_some_and(|p| p.exists());
    let scan = |what: &str| {
        let skip = [c.dir.path()];
        let mut hits = files_containing(dir.path(), &needles, &skip);
        // Only what appeared in the temp folder during this test, never the whole folder.
        hits.extend(new_temp_files_containing(started, &needles, &skip));
        assert!(hits.is_empty(), "after {what}: secret on disk in {hits:?}");
        let pgpass: Vec<_> = files_containing(dir.path(), &[], &[])
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("pgpass"))
            .collect();
        assert!(pgpass.is_empty(), "{pgpass:?}");
        assert_eq!(
            home_pgpass.as_ref().is_some_and(|p| p.exists()),
            pgpass_before
        );
    };

    // Success, sampled while pg_dump, pg_restore and psql run.
    let sampler = ArgvSampler::start(needles.clone(), vec!["pg_dump".into(), port.clone()]);
    let s = spec(&c, c.url(), &dir.path().join("ok"));
    let m = backup(&exec, &s, "sampled").await.unwrap();
    let r = sampler.finish();
    assert!(r.hits.is_empty(), "secret in argv: {:?}", r.hits);
    assert!(
        r.watched_processes > 0,
        "pg_dump was never sampled ({} rounds)",
        r.rounds
    );
    eprintln!(
        "sampled {} rounds, saw pg_dump {} times",
        r.rounds, r.watched_processes
    );
    assert!(m.tables["public.bulk"] == 100_000);
    scan("success");

    // Failure: wrong password, and its error carries neither password (T08).
    let sampler = ArgvSampler::start(needles.clone(), vec![]);
    let bad = spec(&c, c.url_with(&wrong), &dir.path().join("fail"));
    let e = backup(&exec, &bad, "wrong").await.unwrap_err();
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
    assert!(e.hint().contains("password"), "{}", e.hint());
    secret_free(&e, &[&wrong, &enc(&wrong), &c.password]);
    let r = sampler.finish();
    assert!(r.hits.is_empty(), "secret in argv: {:?}", r.hits);
    scan("failure");

    // Cancel: drop the backup future while pg_dump runs.
    let sampler = ArgvSampler::start(needles.clone(), vec!["pg_dump".into(), port.clone()]);
    let seen = sampler.seen.clone();
    let s = spec(&c, c.url(), &dir.path().join("cancel"));
    let cancelled = tokio::select! {
        r = backup(&exec, &s, "cancelled") => Some(r),
        _ = async {
            while !seen.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        } => None,
    };
    let r = sampler.finish();
    assert!(r.hits.is_empty(), "secret in argv: {:?}", r.hits);
    match cancelled {
        Some(r) => eprintln!(
            "backup finished before it could be cancelled: {:?}",
            r.map(|m| m.id)
        ),
        None => eprintln!(
            "cancelled while pg_dump ran; left in the dir: {:?}",
            ls(&s.dir)
        ),
    }
    scan("cancel");
    // A cancelled run may leave a .partial (no async cleanup on drop); it is never a backup
    // and the next prune removes it.
    let listing = list(&exec, &s.dir).await.unwrap();
    assert!(listing.backups.is_empty() || cancelled_finished(&listing));
    let report = prune(&exec, &s).await.unwrap();
    assert!(
        ls(&s.dir).iter().all(|f| !f.ends_with(".partial")),
        "{report:?}"
    );
}

fn cancelled_finished(l: &davit_backup::Listing) -> bool {
    l.backups.len() == 1 && l.partial.is_empty()
}

/// Unmounts the tmpfs even when the test fails.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn t36_disk_full_during_the_dump_leaves_no_partial_backup() {
    let Some(c) = Cluster::start(20000) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&small)
        .output()
        .is_ok_and(|o| o.status.success());
    let _guard = mounted.then(|| Mount(small.clone()));
    let mut s = spec(&c, c.url(), &small.join("backups"));
    let _limited;
    if !mounted {
        // Not root: a file size limit on pg_dump stands in for the full disk.
        eprintln!("tmpfs mount not permitted; limiting pg_dump's file size instead");
        _limited = fake_pg_bin(&c.bin, r#"ulimit -f 64; exec "$REAL" "$@""#);
        s.pg_bin = Some(_limited.path().to_path_buf());
    }
    let e = backup(&exec, &s, "too-big").await.unwrap_err();
    if mounted {
        assert!(matches!(e, BackupError::DiskFull { .. }), "{e}");
        assert!(e.hint().contains("free space"), "{}", e.hint());
    } else {
        assert!(
            matches!(
                e,
                BackupError::Tool {
                    what: "pg_dump",
                    ..
                }
            ),
            "{e}"
        );
    }
    assert!(ls(&s.dir).is_empty(), "{:?}", ls(&s.dir));
    let listing = list(&exec, &s.dir).await.unwrap();
    assert_eq!(listing, davit_backup::Listing::default());
    let e = require_verified_backup(&exec, &s, None, VerifyLevel::Read)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::NoVerifiedBackup { .. }), "{e}");
}

#[tokio::test]
async fn row_counts_catch_an_incomplete_dump_and_tolerate_a_busy_source() {
    let Some(c) = Cluster::start(0) else { return };
    let dir = tempfile::tempdir().unwrap();
    let exec = Local::new();

    // A dump that silently lacks one table's rows restores fine; only the counts notice.
    let bin = fake_pg_bin(
        &c.bin,
        r#"exec "$REAL" --exclude-table-data=public.orders "$@""#,
    );
    let mut s = spec(&c, c.url(), &dir.path().join("incomplete"));
    s.pg_bin = Some(bin.path().to_path_buf());
    let e = backup(&exec, &s, "x").await.unwrap_err();
    match &e {
        BackupError::RowCountMismatch { diffs } => {
            assert_eq!(diffs, &["public.orders: 5000 rows expected, 0 found"]);
        }
        e => panic!("{e}"),
    }
    assert!(ls(&s.dir).is_empty());

    // The app writes while we dump: accepted, with the restored copy's counts and a note.
    let psql = c.bin.join("psql");
    let busy = format!(
        r#"{} -X -q -h 127.0.0.1 -p {} -U app -d shop -c "INSERT INTO customers (name) VALUES ('during')" || exit 1
exec "$REAL" "$@""#,
        psql.display(),
        c.port
    );
    let bin = fake_pg_bin(&c.bin, &busy);
    let mut s = spec(&c, c.url(), &dir.path().join("busy"));
    s.pg_bin = Some(bin.path().to_path_buf());
    let m = backup(&exec, &s, "busy").await.unwrap();
    assert_eq!(m.tables["public.customers"], 251);
    assert!(
        m.verification
            .note
            .as_deref()
            .unwrap()
            .contains("changed during the dump")
    );

    // Files are private to the backup user.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.dir), 0o700);
    for f in ls(&s.dir) {
        assert_eq!(mode(&s.dir.join(&f)), 0o600, "{f}");
    }

    // Without CREATEDB the restore level cannot work: the error says so, read level still does.
    c.sql("postgres", "ALTER ROLE app NOCREATEDB");
    let mut s = spec(&c, c.url(), &dir.path().join("nocreatedb"));
    let e = backup(&exec, &s, "x").await.unwrap_err();
    assert!(e.hint().contains("CREATEDB"), "{e}\nhint: {}", e.hint());
    s.verify = VerifyLevel::Read;
    let m = backup(&exec, &s, "read").await.unwrap();
    assert_eq!(m.verification.level, VerifyLevel::Read);
    // A gate asking for restore-level verification does not accept it.
    let e = require_verified_backup(&exec, &s, None, VerifyLevel::Restore)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("verified at level read"), "{e}");
}
