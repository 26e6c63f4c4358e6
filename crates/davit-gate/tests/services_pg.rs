//! Service wait against a real PostgreSQL: a throwaway cluster on a random port, started without
//! waiting (`pg_ctl start` without -w) so the gate itself has to wait for it, and a service that
//! never comes up, which must be named in the error (exit 3).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Cluster {
    data: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
    port: u16,
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    if let Ok(p) = which::which(name) {
        return Some(p);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Run a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg(as_postgres: bool, prog: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(prog);
        c
    } else {
        Command::new(prog)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", prog.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?}: {}\n{}",
            prog.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_cluster() -> Result<Cluster, String> {
    let initdb = pg_bin("initdb").ok_or("initdb not found (apt-get install postgresql)")?;
    let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl not found (apt-get install postgresql)")?;
    let as_postgres = is_root();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    if as_postgres {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .map_err(|e| e.to_string())?;
        if !out.success() {
            return Err("chown to postgres failed (is there a postgres user?)".into());
        }
    }
    let d = data.to_string_lossy().into_owned();
    pg(
        as_postgres,
        &initdb,
        &["-D", &d, "-A", "trust", "-U", "postgres", "--no-sync"],
    )?;
    let port = free_port();
    let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1");
    let log = format!("{d}/server.log");
    // No -w: the gate has to do the waiting.
    pg(
        as_postgres,
        &pg_ctl,
        &["-D", &d, "-o", &opts, "-l", &log, "start"],
    )?;
    Ok(Cluster {
        data,
        pg_ctl,
        as_postgres,
        _dir: dir,
        port,
    })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let d = self.data.to_string_lossy().into_owned();
        let _ = pg(
            self.as_postgres,
            &self.pg_ctl,
            &["-D", &d, "-m", "immediate", "stop"],
        );
    }
}

#[test]
fn tests_start_once_postgres_is_ready() {
    let Some(cluster) = common::require("PostgreSQL (initdb, pg_ctl)", start_cluster()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The test check proves the database answers queries when it starts, using psql if present.
    let check = match which::which("psql") {
        Ok(_) => format!(
            "test: psql -h 127.0.0.1 -p {} -U postgres -Atc 'select 40+2'",
            cluster.port
        ),
        Err(_) => "test: echo no psql".to_string(),
    };
    let o = common::gate()
        .arg("--dir")
        .arg(tmp.path())
        .args([
            "--preset",
            "none",
            "--check",
            &check,
            "--check",
            "lint: true",
        ])
        .arg("--service")
        .arg(format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            cluster.port
        ))
        .args(["--service-timeout", "60s"])
        .arg("--out-dir")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "postgres://127.0.0.1:{} is ready after",
            cluster.port
        )),
        "{stderr}"
    );
    if which::which("psql").is_ok() {
        assert!(stderr.contains("\n42\n"), "{stderr}");
    }
}

#[test]
fn a_service_that_never_comes_up_is_named_and_exits_3() {
    let Some(cluster) = common::require("PostgreSQL (initdb, pg_ctl)", start_cluster()) else {
        return;
    };
    let dead = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("summary.md");
    let o = common::gate()
        .arg("--dir")
        .arg(tmp.path())
        .args([
            "--preset",
            "none",
            "--check",
            "test: echo should-not-run",
            "--check",
            "lint: true",
        ])
        .env(
            "DAVIT_GATE_SERVICES",
            format!(
                "postgres://postgres@127.0.0.1:{}/postgres\nredis://127.0.0.1:{dead}",
                cluster.port
            ),
        )
        .args(["--service-timeout", "3s"])
        .arg("--out-dir")
        .arg(tmp.path().join("out"))
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let summary = std::fs::read_to_string(&summary).unwrap();
    let named =
        format!("service never came up within 3s: redis://127.0.0.1:{dead} (last error: connect:");
    assert!(summary.contains(&named), "{summary}");
    // PostgreSQL was up, so it is not blamed; the test check never ran; lint did.
    assert!(
        !summary.contains(&format!("postgres://127.0.0.1:{} (last", cluster.port)),
        "{summary}"
    );
    assert!(summary.contains("| `test` | ⏭️ not run:"), "{summary}");
    assert!(summary.contains("| `lint` | ✅ passed"), "{summary}");
    // Its command never ran, so its output line never appeared.
    assert!(!stderr.contains("\nshould-not-run\n"), "{stderr}");
}
