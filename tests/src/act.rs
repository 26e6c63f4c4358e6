//! What the act suites need to run davit's actions the way a hosted runner does: a stand-in for
//! actions/cache at the commit the actions pin (tests/fixtures/actions-cache-stand-in: act cannot
//! fetch the real one, these machines reach no github.com), talking to act's own cache server in a
//! folder of the test's, and a release archive of this build's binaries served over HTTP with its
//! checksum written into the action copy's checksums.sha256, as a release commit would have it.
//!
//! Packing this build's binaries as the release archive is what keeps the suites fast: the setup
//! step really downloads, verifies, caches and restores them, but nobody builds davit again.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The actions/cache commit every davit action pins (v5.0.5).
pub const ACTIONS_CACHE_SHA: &str = "27d5ce7f107fe9357f9df03efb73ab90386fccae";
/// The binaries a release archive holds (as .github/workflows/release.yml packs them).
pub const BINS: [&str; 5] = [
    "davit",
    "davit-gate",
    "davit-image",
    "davit-approve",
    "davit-verify",
];
pub const ARCHIVE: &str = "davit-x86_64-unknown-linux-gnu.tar.gz";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run `program args` in `dir`; its stdout, or a panic with its stderr.
pub fn sh(dir: &Path, program: &str, args: &[&str]) -> String {
    run(Command::new(program).args(args).current_dir(dir))
}

/// Commit everything in `repo` (a test's app repository for act).
pub fn commit(repo: &Path, message: &str) {
    sh(repo, "git", &["add", "-A"]);
    sh(
        repo,
        "git",
        &[
            "-c",
            "user.email=dev@example.com",
            "-c",
            "user.name=dev",
            "commit",
            "-qm",
            message,
        ],
    );
}

/// Copy a folder tree (an action repository for act to resolve, an example app).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the actions/cache stand-in in `dir`, for act to resolve the pinned actions/cache to
/// (its restore and save speak act's cache server's API; see its cache.js).
pub fn actions_cache(dir: &Path) -> PathBuf {
    copy_dir(
        &crate::repo_root().join("tests/fixtures/actions-cache-stand-in"),
        dir,
    );
    dir.to_path_buf()
}

/// Pack `bins` (stripped, like the release profile) as the release archive into `dir`.
pub fn pack_release(bins: &[PathBuf], dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    for b in bins {
        run(Command::new("strip")
            .arg("-o")
            .arg(stage.join(b.file_name().unwrap()))
            .arg(b));
    }
    let archive = dir.join(ARCHIVE);
    run(Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .args(bins.iter().map(|b| b.file_name().unwrap())));
    std::fs::remove_dir_all(&stage).unwrap();
    archive
}

pub fn sha256(file: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(file));
    out.split_whitespace().next().unwrap().to_string()
}

/// Write the committed checksum of the release archive into an action copy.
pub fn commit_checksum(actions: &Path, sha256: &str) {
    std::fs::write(
        actions.join("setup/checksums.sha256"),
        format!("{sha256}  {ARCHIVE}\n"),
    )
    .unwrap();
}

/// A release download server: answers every GET with the archive file as it is now on disk (a
/// test may swap it), and counts the downloads.
pub struct ReleaseServer {
    pub url: String,
    downloads: Arc<AtomicUsize>,
}

impl ReleaseServer {
    pub fn start(archive: PathBuf) -> ReleaseServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let downloads = Arc::new(AtomicUsize::new(0));
        let count = downloads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let body = std::fs::read(&archive).unwrap_or_default();
                count.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            }
        });
        ReleaseServer { url, downloads }
    }

    pub fn downloads(&self) -> usize {
        self.downloads.load(Ordering::SeqCst)
    }
}

/// What act resolves `davit-dev/davit@v1` and `actions/cache@<sha>` to, under `parent`: a copy
/// of this checkout's actions (no sources: act copies it into every job), released with this
/// build's binaries (archive served by `release`, checksum in its checksums.sha256), and the
/// actions/cache stand-in under the pinned commit.
pub struct ActionRepo {
    pub dir: PathBuf,
    pub actions_cache: PathBuf,
    pub release: ReleaseServer,
    pub archive: PathBuf,
}

impl ActionRepo {
    pub fn new(parent: &Path) -> ActionRepo {
        let dir = parent.join("davit");
        copy_dir(&crate::repo_root().join("actions"), &dir.join("actions"));
        let bins: Vec<PathBuf> = BINS.iter().map(|b| crate::bin(b)).collect();
        let archive = pack_release(&bins, &parent.join("release"));
        commit_checksum(&dir.join("actions"), &sha256(&archive));
        ActionRepo {
            release: ReleaseServer::start(archive.clone()),
            actions_cache: actions_cache(&parent.join("actions-cache")),
            dir,
            archive,
        }
    }

    /// act's arguments for these actions: the actions/cache stand-in against act's cache server
    /// keeping its entries in `cache_dir`, and the release downloads from `release`.
    pub fn act_args(&self, cache_dir: &Path) -> Vec<String> {
        vec![
            "--local-repository".into(),
            format!("davit-dev/davit@v1={}", self.dir.display()),
            "--local-repository".into(),
            format!(
                "actions/cache@{ACTIONS_CACHE_SHA}={}",
                self.actions_cache.display()
            ),
            "--cache-server-addr".into(),
            "127.0.0.1".into(),
            "--cache-server-path".into(),
            cache_dir.display().to_string(),
            "--env".into(),
            format!("DAVIT_SETUP_RELEASE_URL={}", self.release.url),
        ]
    }
}

/// What each setup step said it did: (job, what, seconds), from `davit setup: <what> in <s> s`.
pub fn setup_reports(log: &str) -> Vec<(String, String, f64)> {
    log.lines()
        .filter_map(|line| {
            let job = line
                .strip_prefix('[')?
                .split(']')
                .next()?
                .trim()
                .to_string();
            let rest = line.split("davit setup: ").nth(1)?;
            let (what, after) = rest.rsplit_once(" in ")?;
            let secs = after.split(" s").next()?.parse().ok()?;
            Some((job, what.to_string(), secs))
        })
        .collect()
}

/// The files act's cache server keeps its entries in (one per saved key).
pub fn cache_blobs(cache_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![cache_dir.join("cache")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    found
}
