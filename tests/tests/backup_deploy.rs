//! No verified backup, no migration: a production deploy with `[environments.X.backup]` takes a
//! `pg_dump` of a real PostgreSQL, verifies it by a scratch restore, and only then runs the
//! pre-deploy (migration) hook; when the dump cannot be taken, the deploy stops before anything
//! changes (T37 at the deploy level).

#[path = "../../crates/davit-backup/tests/common/mod.rs"]
mod pg;

use davit_tests::*;
use std::process::Command;

fn davit(args: &[&str], db_url: &str) -> std::process::Output {
    Command::new(bin("davit"))
        .args(args)
        .env("DAVIT_TEST_DB_URL", db_url)
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn t37_deploy_takes_a_verified_backup_before_migrating_and_stops_without_one() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let Some(db) = pg::Cluster::start(0) else {
        return;
    };
    let repo = "davit-test-backup";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-backup");
    let backups = sb.dir.path().join("backups");
    let marker = sb.dir.path().join("migrated");
    let extra = format!(
        r#"
[environments.production.backup]
dir = "{backups}"
url_env = "DAVIT_TEST_DB_URL"
verify = "restore"
keep = 2
pg_bin = "{bin}"

[[environments.production.hooks.pre_deploy]]
run = ["/bin/sh", "-c", "echo \"$DAVIT_VERSION\" >> {marker}"]
on = "host"
"#,
        backups = backups.display(),
        bin = db.bin.display(),
        marker = marker.display(),
    );
    let _t = sb.target(repo, "production", &extra);
    let cfg = sb.dir.path().join("davit.toml");
    let cfg = cfg.to_str().unwrap();
    let public = format!("http://127.0.0.1:{}/", sb.public);

    let out = davit(
        &["deploy", "production", "--version", "v1", "--config", cfg],
        &db.url(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("database backup") && stderr.contains("verified"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "v1\n");
    let list = davit(
        &["backup", "list", "production", "--config", cfg],
        &db.url(),
    );
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        listing.contains("restore"),
        "the backup is verified by a restore: {listing}"
    );

    // The database refuses the login: no backup, so no migration and no switch.
    let bad_url = db.url_with("not-the-password");
    let out = davit(
        &["deploy", "production", "--version", "v2", "--config", cfg],
        &bad_url,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deployed without a backup: {stderr}");
    assert!(
        stderr.contains("no verified backup, no migration"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-password"),
        "the password leaked: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "v1\n",
        "the migration ran"
    );
    assert_eq!(container_state(&sb.container("production", "green")), None);
    block_on(async { assert_eq!(version_at(&public).await, "v1") });
}
