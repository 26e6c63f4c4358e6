//! A throwaway PostgreSQL cluster per test, and the probes the secret tests need.
//!
//! Each test gets its own cluster (initdb into a temp dir, a random port, a private socket
//! directory) so tests run in parallel, can mount a tiny tmpfs or break things without
//! affecting each other, and a Drop guard stops and removes it even when an assertion fails.
//! The `app` role logs in over TCP with a scram password that is a fresh random canary, so a
//! leak found by a scan can only come from this run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A component a test needs. Under CI (`CI=true`) a missing one fails the test, so CI cannot go
/// green by skipping; elsewhere the test prints why it skipped and passes.
pub fn require<T>(component: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{component} is required under CI=true but unavailable: {why}");
            }
            eprintln!(
                "SKIPPED: {component} unavailable: {why} (set CI=true to make this a failure)"
            );
            None
        }
    }
}

/// The newest PostgreSQL server binaries directory (Debian layout), or from PATH.
pub fn pg_bin_dir() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (apt-get install postgresql)"))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_dump").is_file())
        .collect();
    dirs.sort();
    dirs.pop().ok_or_else(|| {
        "no initdb under /usr/lib/postgresql/*/bin (apt-get install postgresql)".into()
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn check(out: std::io::Result<std::process::Output>, what: &str) -> Result<String, String> {
    let out = out.map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub struct Cluster {
    pub bin: PathBuf,
    pub port: u16,
    /// The `app` role's password: a canary nobody else can produce.
    pub password: String,
    as_postgres: bool,
    data: PathBuf,
    socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Start a cluster with the `shop` database (owned by `app`) and `extra_rows` more rows
    /// of bulk data, or skip (None) when PostgreSQL is unavailable outside CI.
    pub fn start(extra_rows: u64) -> Option<Cluster> {
        Cluster::start_for(extra_rows, None)
    }

    /// A cluster that also accepts password logins from `network` (a CIDR such as
    /// `10.231.0.0/16`), for hosts in other network namespaces; it listens on every address.
    #[allow(dead_code)]
    pub fn start_reachable_from(extra_rows: u64, network: &str) -> Option<Cluster> {
        Cluster::start_for(extra_rows, Some(network))
    }

    fn start_for(extra_rows: u64, network: Option<&str>) -> Option<Cluster> {
        let bin = require("PostgreSQL server binaries", pg_bin_dir())?;
        let c = require(
            "a throwaway PostgreSQL cluster",
            Cluster::init(bin, network),
        )?;
        c.seed(extra_rows);
        Some(c)
    }

    fn init(bin: PathBuf, network: Option<&str>) -> Result<Cluster, String> {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("davit-backup-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let socket = dir.path().join("sock");
        std::fs::create_dir(&socket).map_err(|e| e.to_string())?;
        if as_postgres {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .output(),
                "chown to postgres",
            )?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let c = Cluster {
            bin,
            port,
            password: format!("cAnArY-{}-p@ss/w:rd", random_hex()),
            as_postgres,
            data,
            socket,
            dir,
        };
        let data = c.data.display().to_string();
        check(
            c.as_pg("initdb")
                .args(["-D", &data, "-U", "postgres", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .output(),
            "initdb",
        )?;
        if let Some(net) = network {
            let hba = c.data.join("pg_hba.conf");
            let mut text = std::fs::read_to_string(&hba).map_err(|e| e.to_string())?;
            text.push_str(&format!("host all all {net} scram-sha-256\n"));
            std::fs::write(&hba, text).map_err(|e| e.to_string())?;
        }
        let listen = if network.is_some() {
            "'*'"
        } else {
            "127.0.0.1"
        };
        let opts = format!(
            "-p {} -k {} -c listen_addresses={listen} -c fsync=off",
            c.port,
            c.socket.display()
        );
        let log = c.dir.path().join("pg.log").display().to_string();
        check(
            c.as_pg("pg_ctl")
                .args(["-D", &data, "-l", &log, "-w", "-o", &opts, "start"])
                .output(),
            "pg_ctl start",
        )?;
        // The password is set through psql's stdin so it is not in any argv either.
        let sql = format!(
            "CREATE ROLE app LOGIN CREATEDB PASSWORD '{}';\nCREATE DATABASE shop OWNER app;\n",
            c.password
        );
        c.psql_stdin("postgres", "postgres", &sql)?;
        Ok(c)
    }

    fn as_pg(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    fn psql_stdin(&self, user: &str, db: &str, sql: &str) -> Result<String, String> {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", &self.socket.display().to_string()])
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .map_err(|e| e.to_string())?;
        check(child.wait_with_output(), "psql")
    }

    /// Run SQL as the superuser over the socket; returns unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.psql_stdin("postgres", db, sql)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    }

    fn seed(&self, extra_rows: u64) {
        let sql = format!(
            "SET ROLE app;
             CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 250) g;
             CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers (id), note text);
             INSERT INTO orders (customer_id, note) SELECT 1 + g % 250, md5(g::text) FROM generate_series(1, 5000) g;
             CREATE SCHEMA audit;
             CREATE TABLE audit.\"Log Entries\" (id int, payload bytea);
             INSERT INTO audit.\"Log Entries\" SELECT g, decode(md5(g::text), 'hex') FROM generate_series(1, 17) g;
             CREATE TABLE empty_table (id int);
             CREATE TABLE bulk (id bigint, a text, b text);
             INSERT INTO bulk SELECT g, md5(g::text) || md5((g * 7)::text), md5((g * 13)::text) FROM generate_series(1, {extra_rows}) g;"
        );
        self.sql("shop", &sql);
    }

    /// Exact row counts per table of a database, as `schema.table`.
    pub fn counts(&self, db: &str) -> BTreeMap<String, u64> {
        let out = self.sql(
            db,
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1",
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|t| {
                let n = self.sql(db, &format!("SELECT count(*) FROM {t}"));
                (t.to_string(), n.parse().unwrap())
            })
            .collect()
    }

    /// Names of the databases on the server (to see scratch databases are dropped).
    pub fn databases(&self) -> Vec<String> {
        self.sql(
            "postgres",
            "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
        )
        .lines()
        .map(String::from)
        .collect()
    }

    /// `postgres://app:<password>@127.0.0.1:<port>/shop`, percent-encoded.
    pub fn url_with(&self, password: &str) -> String {
        let enc: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("postgres://app:{enc}@127.0.0.1:{}/shop", self.port)
    }

    /// [`Self::url`] with another host address (how a host in another namespace reaches it).
    #[allow(dead_code)]
    pub fn url_at(&self, addr: &str) -> String {
        self.url().replace(
            &format!("@127.0.0.1:{}", self.port),
            &format!("@{addr}:{}", self.port),
        )
    }

    pub fn url(&self) -> String {
        self.url_with(&self.password)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .as_pg("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Samples every process's argv until stopped, looking for any of `needles`.
pub struct ArgvSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<SamplerReport>>,
    /// Set once a process whose argv contains `watch` was seen.
    pub seen: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub struct SamplerReport {
    pub rounds: u64,
    pub hits: Vec<String>,
    pub watched_processes: u64,
}

impl ArgvSampler {
    pub fn start(needles: Vec<String>, watch: Vec<String>) -> ArgvSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicBool::new(false));
        let (s, w) = (stop.clone(), seen.clone());
        let handle = std::thread::spawn(move || {
            let mut r = SamplerReport::default();
            while !s.load(Ordering::Relaxed) {
                r.rounds += 1;
                let Ok(procs) = std::fs::read_dir("/proc") else {
                    break;
                };
                for p in procs.flatten() {
                    let Ok(bytes) = std::fs::read(p.path().join("cmdline")) else {
                        continue;
                    };
                    let argv = String::from_utf8_lossy(&bytes).replace('\0', " ");
                    if watch.iter().all(|x| argv.contains(x.as_str())) {
                        r.watched_processes += 1;
                        w.store(true, Ordering::Relaxed);
                    }
                    if needles.iter().any(|n| argv.contains(n.as_str())) {
                        r.hits.push(argv);
                    }
                }
                // Two cores: leave room for the processes being sampled.
                std::thread::yield_now();
            }
            r
        });
        ArgvSampler {
            stop,
            handle: Some(handle),
            seen,
        }
    }

    pub fn finish(mut self) -> SamplerReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// Files under `root` (not following symlinks, skipping `skip`) whose bytes contain a needle.
pub fn files_containing(root: &Path, needles: &[String], skip: &[&Path]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if skip.iter().any(|s| p.starts_with(s)) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                stack.push((p, depth + 1));
            } else if ft.is_file()
                && e.metadata().is_ok_and(|m| m.len() < 64 << 20)
                && let Ok(bytes) = std::fs::read(&p)
                && needles
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Top-level entries of the temp folder created or changed since `since`: what a run may have
/// left there. Never the whole folder: a checkout under /tmp (its 10 GB `target/` included) is
/// older than the test and is not looked at, whatever else shares the folder.
pub fn temp_entries_since(since: std::time::SystemTime) -> Vec<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= since)
        })
        .map(|e| e.path())
        .filter(|p| !checkout.starts_with(p))
        .collect()
}

/// [`files_containing`] over what the temp folder gained since `since`.
pub fn new_temp_files_containing(
    since: std::time::SystemTime,
    needles: &[String],
    skip: &[&Path],
) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for p in temp_entries_since(since) {
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        if p.is_dir() {
            hits.extend(files_containing(&p, needles, skip));
        } else if std::fs::read(&p).is_ok_and(|bytes| {
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        }) {
            hits.push(p);
        }
    }
    hits
}

/// Files in a directory, sorted.
pub fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A directory of PostgreSQL client tools where `pg_dump` is replaced by `script` (which can
/// call the real one as `$REAL`), to inject failures and corruption into the dump stream.
pub fn fake_pg_bin(real: &Path, script: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    for t in ["psql", "pg_restore"] {
        std::os::unix::fs::symlink(real.join(t), d.path().join(t)).unwrap();
    }
    let p = d.path().join("pg_dump");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nREAL={}\n{script}\n",
            real.join("pg_dump").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A fresh age identity (`AGE-SECRET-KEY-1...`), or skip when age is not installed.
pub fn age_identity() -> Option<String> {
    require(
        "age (apt-get install age)",
        check(Command::new("age-keygen").output(), "age-keygen").map(|out| {
            out.lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                .unwrap_or_default()
                .to_string()
        }),
    )
}
