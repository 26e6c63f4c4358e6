//! Several hosts per environment (`hosts = [...]`), each a simulated server of its own (network
//! namespace, dockerd, sshd, `/var/lib/davit`; see `davit_tests::hosts`), driven by the `davit`
//! binary over real SSH as a workflow would.
//!
//! - A deploy to two hosts with a migration hook takes and verifies a backup of a real
//!   PostgreSQL first, runs the hook once (on the first host), holds every host's lock (a second
//!   deployer fails naming the holder), records the release on each host, and ends with both
//!   hosts on the new version; a fleet rollback brings both back together.
//! - T25: a host that goes down mid-deploy (after the first host switched) fails the deploy as a
//!   whole: the first host is rolled back, the error lists each host's state, and once the host
//!   is back the next run frees the lock left there (its holder is gone) and converges.

#[path = "../../crates/davit-backup/tests/common/mod.rs"]
mod pg;

use davit_tests::hosts::SimHosts;
use davit_tests::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KEY_ENV: &str = "DAVIT_TEST_SSH_KEY";
const KH_ENV: &str = "DAVIT_TEST_KNOWN_HOSTS";
const DB_ENV: &str = "DAVIT_TEST_DB_URL";
const REPO: &str = "davit-test-fleet";
const PUBLIC: u16 = 18000;

struct Fleet {
    hosts: SimHosts,
    dir: tempfile::TempDir,
    config: String,
    db_url: String,
}

impl Fleet {
    /// Two simulated hosts with the demo image `versions` loaded, and a davit.toml for them.
    fn start(test: &str, db: &pg::Cluster, versions: &[&str]) -> Option<Fleet> {
        if !require_all(&["docker", "nginx", "curl"]) {
            return None;
        }
        let hosts = SimHosts::start_or_skip(test, 2)?;
        for v in versions {
            demo_image(REPO, v, &[]);
            hosts.load_image(&format!("{REPO}:{v}"));
        }
        // Not under /tmp, nor under the target folder (a checkout may live under /tmp): each
        // simulated host has a /tmp of its own, and the hooks on the first host signal the test
        // through these files. /var/tmp is the machine's own on every simulated host.
        let dir = tempfile::Builder::new()
            .prefix("davit-fleet-flags-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let addrs: Vec<String> = hosts
            .hosts
            .iter()
            .map(|h| format!("\"{}\"", h.addr))
            .collect();
        // Hooks run on the first host only.
        let flags = dir.path().display();
        let text = format!(
            r#"
[app]
name = "fleet"
port = 8000
[image]
name = "{REPO}"
pull = "never"
[health]
interval_ms = 100
consecutive = 2
deadline_secs = 20
[environments.production]
strategy = "blue-green"
hosts = [{addrs}]
ports = {{ public = {PUBLIC}, blue = 18001, green = 18002 }}
[environments.production.ssh]
user = "root"
key_env = "{KEY_ENV}"
known_hosts_env = "{KH_ENV}"
connect_timeout_secs = 3
keepalive_secs = 1
[environments.production.backup]
dir = "/var/lib/davit/backups"
url_env = "{DB_ENV}"
verify = "restore"
keep = 2
pg_bin = "{pg_bin}"
[[environments.production.hooks.pre_deploy]]
run = ["/bin/sh", "-c", "echo \"$DAVIT_VERSION\" >> /var/lib/davit/migrated"]
on = "host"
[[environments.production.hooks.post_deploy]]
run = ["/bin/sh", "-c", "touch {flags}/switched-$DAVIT_VERSION; while [ -e {flags}/hold ]; do sleep 0.1; done"]
on = "host"
"#,
            addrs = addrs.join(", "),
            pg_bin = db.bin.display(),
        );
        let config = dir.path().join("davit.toml");
        std::fs::write(&config, text).unwrap();
        // The first host reaches PostgreSQL through its veth: the outer end's address.
        let gateway = hosts.hosts[0].gateway.clone();
        Some(Fleet {
            db_url: db.url_at(&gateway),
            config: config.display().to_string(),
            hosts,
            dir,
        })
    }

    /// A database, two hosts with v1 and v2 loaded, and v1 deployed to both.
    fn with_v1(test: &str) -> Option<(pg::Cluster, Fleet)> {
        let db = pg::Cluster::start_reachable_from(0, "10.0.0.0/8")?;
        let f = Fleet::start(test, &db, &["v1", "v2"])?;
        ok(&f.davit(&["deploy", "production", "--version", "v1"]), "v1");
        assert_eq!((f.serving(0), f.serving(1)), ("v1".into(), "v1".into()));
        Some((db, f))
    }

    /// Start a deploy of `version` that pauses in the first host's post-deploy hook (after its
    /// switch) until [`Fleet::resume`]; returns once that point is reached.
    fn deploy_paused(&self, version: &str) -> std::process::Child {
        std::fs::write(self.flag("hold"), "").unwrap();
        let mut child = self
            .command(&["deploy", "production", "--version", version])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_for(&format!("switched-{version}"), &mut child);
        child
    }

    fn resume(&self) {
        std::fs::remove_file(self.flag("hold")).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("davit"));
        c.args(args)
            .args(["--config", &self.config])
            .env(KEY_ENV, &self.hosts.client_key)
            .env(KH_ENV, &self.hosts.known_hosts)
            .env(DB_ENV, &self.db_url)
            .env_remove("GITHUB_TOKEN");
        c
    }

    fn davit(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The version host `i` serves through its own nginx, or what went wrong.
    fn serving(&self, i: usize) -> String {
        let out = self.hosts.exec(
            i,
            &format!("curl -s -m 3 -o /dev/null -D - http://127.0.0.1:{PUBLIC}/"),
        );
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        head.lines()
            .find_map(|l| l.strip_prefix("x-app-version:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| format!("down ({})", String::from_utf8_lossy(&out.stderr)))
    }

    fn on_host(&self, i: usize, cmd: &str) -> String {
        String::from_utf8_lossy(&self.hosts.exec(i, cmd).stdout).into_owned()
    }

    fn flag(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn wait_for(&self, name: &str, child: &mut std::process::Child) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.flag(name).exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the deploy ended ({status}) before {name}");
            }
            assert!(Instant::now() < deadline, "no {name} within 90 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

#[test]
fn two_hosts_deploy_with_backup_hook_lock_and_records_then_roll_back_together() {
    let Some((_db, f)) = Fleet::with_v1(
        "two_hosts_deploy_with_backup_hook_lock_and_records_then_roll_back_together",
    ) else {
        return;
    };
    assert_eq!((f.serving(0), f.serving(1)), ("v1".into(), "v1".into()));

    // v2, paused after the first host's switch: every lock is held meanwhile.
    let first = f.deploy_paused("v2");
    let status = f.davit(&["lock", "status", "production"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for h in &f.hosts.hosts {
        assert!(
            status.contains(&format!("production on {} is locked by", h.addr)),
            "{status}"
        );
    }
    let second = f
        .command(&["deploy", "production", "--version", "v1"])
        .env("DAVIT_LOCK_WAIT_SECS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second deployer must not run");
    assert!(
        err.contains(&f.hosts.hosts[0].addr) && err.contains("deploy of v2"),
        "the loser names the holder: {err}"
    );
    f.resume();
    let out = first.wait_with_output().unwrap();
    ok(&out, "v2");
    assert_eq!((f.serving(0), f.serving(1)), ("v2".into(), "v2".into()));

    // The backup was taken and verified on the first host before each migration, which ran
    // there once per deploy and never on the second host.
    assert_eq!(f.on_host(0, "cat /var/lib/davit/migrated"), "v1\nv2\n");
    assert_eq!(
        f.on_host(1, "cat /var/lib/davit/migrated 2>/dev/null || echo none"),
        "none\n"
    );
    let backups = f.on_host(0, "ls /var/lib/davit/backups");
    assert!(backups.lines().count() >= 2, "{backups}");
    let list = f.davit(&["backup", "list", "production"]);
    ok(&list, "backup list");
    let list = String::from_utf8_lossy(&list.stdout);
    let rows: Vec<&str> = list.lines().filter(|l| l.contains("before ")).collect();
    assert_eq!(rows.len(), 2, "one per deploy: {list}");
    assert!(
        rows.iter().all(|r| r.contains("restore")),
        "each verified by a scratch restore: {list}"
    );

    // Each host recorded the release in its own ledger, under one release id.
    let releases = f.davit(&["releases", "production", "--json"]);
    ok(&releases, "releases");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&releases.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let v2: Vec<&serde_json::Value> = lines.iter().filter(|r| r["version"] == "v2").collect();
    assert_eq!(v2.len(), 2, "{lines:?}");
    assert_eq!(v2[0]["id"], v2[1]["id"]);
    assert_ne!(v2[0]["host"], v2[1]["host"]);

    // A rollback converges both hosts on one version.
    ok(&f.davit(&["rollback", "production"]), "rollback");
    assert_eq!((f.serving(0), f.serving(1)), ("v1".into(), "v1".into()));
    let status = f.davit(&["lock", "status", "production"]);
    assert_eq!(
        String::from_utf8_lossy(&status.stdout)
            .matches("is not locked")
            .count(),
        2
    );

    // verify checks every host; a release that goes bad after its start-up gate is rolled back
    // on every host together.
    ok(
        &f.davit(&["verify", "production", "--watch-secs", "2"]),
        "verify v1",
    );
    // Long enough for both hosts to pass their deploy-time checks on a loaded machine.
    demo_image(REPO, "v3", &[("FAULT_FAIL_AFTER_SECS", "12")]);
    f.hosts.load_image(&format!("{REPO}:v3"));
    ok(&f.davit(&["deploy", "production", "--version", "v3"]), "v3");
    let out = f.davit(&["verify", "production", "--watch-secs", "30"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a bad release exits 1: {text}");
    assert!(text.contains("rolled back to v1"), "{text}");
    assert_eq!(
        (f.serving(0), f.serving(1)),
        ("v1".into(), "v1".into()),
        "{text}"
    );
}

#[test]
fn t25_a_host_down_mid_deploy_fails_the_deploy_as_a_whole() {
    let Some((_db, f)) = Fleet::with_v1("t25_a_host_down_mid_deploy_fails_the_deploy_as_a_whole")
    else {
        return;
    };

    // A release the second host cannot take (its image is only on the first host, and
    // pull = "never" there) stops before any host, or the database, changes.
    let tag = f
        .hosts
        .exec(0, &format!("docker tag {REPO}:v1 {REPO}:only-here"));
    assert!(tag.status.success(), "{tag:?}");
    let out = f.davit(&["deploy", "production", "--version", "only-here"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is not on") && err.contains("no host was changed"),
        "{err}"
    );
    assert_eq!((f.serving(0), f.serving(1)), ("v1".into(), "v1".into()));
    assert_eq!(
        f.on_host(0, "cat /var/lib/davit/migrated"),
        "v1\n",
        "no migration ran"
    );

    // The first host switches to v2; then the second host drops off the network.
    let deploy = f.deploy_paused("v2");
    f.hosts.cut(1);
    f.resume();
    let out = deploy.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("the deploy with host 1 down said:\n{err}");
    assert!(
        !out.status.success(),
        "never success with a host down: {err}"
    );
    let (a, b) = (&f.hosts.hosts[0].addr, &f.hosts.hosts[1].addr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unchecked host is an infra state: {err}"
    );
    assert!(
        err.contains("the hosts that answer are back on what they served before"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{a}: rolled back, serving v1")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}: FAILED"))
            && err.contains("not answering now, so not checked (serving v1 before)"),
        "{err}"
    );
    assert!(err.contains("davit lock release production"), "{err}");
    assert_eq!(f.serving(0), "v1", "the first host was taken back: {err}");

    // The host comes back still serving v1. The lock the failed run could not release there is
    // freed by the next run from this machine (that run's process is gone), with a warning.
    f.hosts.restore(1);
    assert_eq!(f.serving(1), "v1");
    let again = ok(
        &f.davit(&["deploy", "production", "--version", "v2"]),
        "v2 again",
    );
    assert!(again.contains("no longer running"), "{again}");
    assert_eq!((f.serving(0), f.serving(1)), ("v2".into(), "v2".into()));
}
