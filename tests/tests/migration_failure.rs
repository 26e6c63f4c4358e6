//! T51: a migration fails half-way. The Django example's v2 brings two migrations: the first
//! (a new column) applies, the second (a unique constraint the existing rows break) fails on a
//! real PostgreSQL. The web keeps serving v1, the backup taken before the migrations is intact
//! and restores the schema as it was before either ran, and the deploy names the migration that
//! failed and the one that stayed applied.
//!
//! The database is a throwaway cluster on this host that the app's containers reach through the
//! Docker bridge's gateway address (its own port, a fresh password).

#[path = "../../crates/davit-backup/tests/common/mod.rs"]
mod pg;

use davit_tests::*;
use std::process::{Command, Output};

const REPO: &str = "davit-test-t51";

/// Migration 0002 adds a column (it applies); 0003 makes `created_by` unique, which the two jobs
/// v1 created with the same creator break, so PostgreSQL refuses to build the index.
const M0002: &str = r#"from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]
    operations = [
        migrations.AddField(model_name="job", name="priority", field=models.IntegerField(default=0)),
    ]
"#;
const M0003: &str = r#"from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("jobs", "0002_job_priority")]
    operations = [
        migrations.AlterField(model_name="job", name="created_by", field=models.CharField(max_length=64, unique=True)),
    ]
"#;

fn docker_ok(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// v1 is the example as it is; v2 adds the two migrations.
fn images() -> Option<()> {
    let [app, _, _] = django_celery_images("t51")?;
    docker_ok(&["tag", &app, &format!("{REPO}:v1")]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("0002_job_priority.py"), M0002).unwrap();
    std::fs::write(ctx.path().join("0003_unique_creator.py"), M0003).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {app}\nCOPY 0002_job_priority.py 0003_unique_creator.py /app/jobs/migrations/\n"
        ),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "--quiet",
        "-t",
        &format!("{REPO}:v2"),
        ctx.path().to_str().unwrap(),
    ]);
    Some(())
}

/// The default bridge's subnet and gateway: the containers reach this host's cluster there.
/// Docker gives the bridge the subnet's first address when its config names no gateway.
fn bridge() -> (String, String) {
    let v = docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
    ]);
    let mut parts = v.split_whitespace();
    let subnet = parts.next().expect("the bridge has a subnet").to_string();
    let gateway = parts.next().map(String::from).unwrap_or_else(|| {
        let net: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
        std::net::Ipv4Addr::from(u32::from(net) + 1).to_string()
    });
    (subnet, gateway)
}

/// davit with the app's database URL (through the bridge, as the containers reach it) and the
/// backup's (loopback, as the host's pg_dump reaches it).
fn davit(args: &[&str], db: &pg::Cluster, app_url: &str) -> Output {
    Command::new(bin("davit"))
        .args(args)
        .env("DATABASE_URL", app_url)
        .env("BACKUP_DATABASE_URL", db.url())
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap()
}

fn migrations(db: &pg::Cluster, database: &str) -> Vec<String> {
    db.sql(
        database,
        "SELECT app || '.' || name FROM django_migrations WHERE app = 'jobs' ORDER BY id",
    )
    .lines()
    .map(String::from)
    .collect()
}

fn has_priority_column(db: &pg::Cluster, database: &str) -> bool {
    db.sql(
        database,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'jobs_job' AND column_name = 'priority'",
    ) == "1"
}

#[test]
fn t51_a_migration_failing_half_way_keeps_the_previous_release_and_a_restorable_backup() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let (subnet, gateway) = bridge();
    let Some(db) = pg::Cluster::start_reachable_from(0, &subnet) else {
        return;
    };
    if images().is_none() {
        return;
    }
    let url = db.url_at(&gateway);
    let sb = Sandbox::new("t-t51");
    let cfg = sb.dir.path().join("davit.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
state_dir = "{state}"
[app]
name = "{app}"
port = 8000
secret_env = ["DATABASE_URL"]
[image]
name = "{REPO}"
pull = "never"
[health]
path = "/health"
interval_ms = 200
consecutive = 2
deadline_secs = 60
[environments.production]
strategy = "blue-green"
ports = {{ public = {public}, blue = {blue}, green = {green} }}
[environments.production.backup]
dir = "{backups}"
url_env = "BACKUP_DATABASE_URL"
verify = "restore"
keep = 3
pg_bin = "{pg_bin}"
[[environments.production.hooks.pre_deploy]]
run = ["python3", "manage.py", "migrate", "--noinput"]
"#,
            state = sb.dir.path().join("state").display(),
            app = sb.app,
            public = sb.public,
            blue = sb.blue,
            green = sb.green,
            backups = sb.dir.path().join("backups").display(),
            pg_bin = db.bin.display(),
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let public = format!("http://127.0.0.1:{}/", sb.public);

    let out = davit(
        &["deploy", "production", "--version", "v1", "--config", cfg],
        &db,
        &url,
    );
    assert!(
        out.status.success(),
        "v1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(migrations(&db, "shop"), ["jobs.0001_initial"]);
    // Two jobs by one creator: the data 0003's unique constraint cannot hold for.
    db.sql(
        "shop",
        "INSERT INTO jobs_job (created_at, created_by, work_ms, done_by, runs) VALUES (now(), 'v1', 0, '', 0), (now(), 'v1', 5, '', 0)",
    );

    let out = davit(
        &["deploy", "production", "--version", "v2", "--config", cfg],
        &db,
        &url,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "v2 deployed: {stderr}");
    eprintln!("the failed deploy of v2 said:\n{stderr}");
    // The deploy names the failed migration and the one that stayed applied, and the backup.
    assert!(
        stderr.contains(
            "migration jobs.0003_unique_creator failed (Django); applied before it by this deploy, and still applied: jobs.0002_job_priority"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("could not create unique index"), "{stderr}");
    assert!(
        !stderr.contains(&db.password),
        "the password leaked: {stderr}"
    );
    let backup_id = stderr
        .split("the verified backup ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no backup named: {stderr}"))
        .to_string();

    // Half-way for real: 0002 is applied, 0003 is not.
    assert_eq!(
        migrations(&db, "shop"),
        ["jobs.0001_initial", "jobs.0002_job_priority"]
    );
    assert!(has_priority_column(&db, "shop"));
    // The web keeps serving v1, through the proxy, with its database; v2 never started.
    block_on(async {
        for _ in 0..10 {
            assert_eq!(version_at(&public).await, "v1");
            assert_eq!(
                get(&format!("{public}health")).await.map(|r| r.0),
                Some(200)
            );
        }
    });
    assert_eq!(
        container_state(&sb.container("production", "blue")),
        Some(true)
    );
    assert_eq!(container_state(&sb.container("production", "green")), None);

    // The backup taken before the migrations is listed, verified, and restores the schema and
    // rows as they were before 0002.
    let list = davit(
        &["backup", "list", "production", "--config", cfg],
        &db,
        &url,
    );
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        listing
            .lines()
            .any(|l| l.contains(&backup_id) && l.contains("restore")),
        "{backup_id} is not listed as verified: {listing}"
    );
    let restore = davit(
        &[
            "backup",
            "restore",
            "production",
            &backup_id,
            "--database",
            "t51_before",
            "--config",
            cfg,
        ],
        &db,
        &url,
    );
    assert!(
        restore.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_eq!(migrations(&db, "t51_before"), ["jobs.0001_initial"]);
    assert!(!has_priority_column(&db, "t51_before"));
    assert_eq!(db.sql("t51_before", "SELECT count(*) FROM jobs_job"), "2");
}
