//! actions/setup under act refuses what does not match its checksum and never runs it (issue 18).
//!
//! A one-job workflow (setup, then a davit binary) runs under act with the actions/cache stand-in
//! (tests/fixtures/actions-cache-stand-in) against act's cache server in the test's folder, and
//! the release archive (this build's binaries, packed as the release workflow packs them) served
//! over HTTP with its checksum in the action copy's checksums.sha256. The bad inputs are made by hand where they would come from in
//! life: a cache entry changed inside act's cache store, a download server handing out another
//! archive. Every bad davit binary here is a script that leaves a marker file when it runs, so
//! "never run" is checked, not assumed. (The example pipeline twice, restoring in every job, is
//! act_pipeline.rs.)

use davit_tests::act::*;
use davit_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const WORKFLOW: &str = r#"name: setup
on: push
jobs:
  use:
    runs-on: ubuntu-latest
    steps:
      - uses: davit-dev/davit/actions/setup@v1
      - run: davit-verify --help > /dev/null && echo "davit-verify answered"
"#;

struct Setup {
    dir: tempfile::TempDir,
    repo: PathBuf,
    actions: ActionRepo,
    cache: PathBuf,
    marker: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        // The actions only, no sources, so a refused download cannot fall back to a
        // (minutes-long) build here.
        let actions = ActionRepo::new(dir.path());

        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
        std::fs::write(repo.join(".github/workflows/setup.yml"), WORKFLOW).unwrap();
        sh(&repo, "git", &["init", "-q", "-b", "main"]);
        commit(&repo, "setup");
        Setup {
            cache: dir.path().join("actcache"),
            marker: dir.path().join("BAD-BINARY-RAN"),
            dir,
            repo,
            actions,
        }
    }

    fn run(&self) -> (bool, String) {
        let out = Command::new("act")
            .args(["push", "-P", "ubuntu-latest=-self-hosted", "--pull=false"])
            .args(["-W", ".github/workflows/setup.yml"])
            .args(self.actions.act_args(&self.cache))
            .current_dir(&self.repo)
            .output()
            .expect("act");
        let log = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), log)
    }

    /// A davit binary that is a script leaving the marker when run.
    fn bad_binary(&self, path: &Path) {
        std::fs::write(
            path,
            format!("#!/bin/sh\ntouch '{}'\n", self.marker.display()),
        )
        .unwrap();
        sh(
            path.parent().unwrap(),
            "chmod",
            &["+x", path.to_str().unwrap()],
        );
    }

    /// A release archive whose binaries are all bad.
    fn bad_archive(&self, into: &Path) {
        let stage = self.dir.path().join("bad-stage");
        std::fs::create_dir_all(&stage).unwrap();
        for b in BINS {
            self.bad_binary(&stage.join(b));
        }
        let (into, stage) = (into.display().to_string(), stage.display().to_string());
        let mut args = vec!["-czf", &into, "-C", &stage];
        args.extend(BINS);
        sh(self.dir.path(), "tar", &args);
    }

    /// Change every entry act's cache server holds (its `.davit-setup` folder, as the cache
    /// restore will unpack it), the way a corrupted store or a tampering job would.
    fn edit_entries(&self, edit: impl Fn(&Path)) {
        let blobs = cache_blobs(&self.cache);
        assert!(!blobs.is_empty(), "no cache entry to change");
        for blob in blobs {
            let unpacked = tempfile::tempdir_in(self.dir.path()).unwrap();
            let (blob, dir) = (
                blob.display().to_string(),
                unpacked.path().display().to_string(),
            );
            sh(
                unpacked.path(),
                "tar",
                &["--zstd", "-xf", &blob, "-C", &dir],
            );
            edit(&unpacked.path().join(".davit-setup"));
            sh(
                unpacked.path(),
                "tar",
                &[
                    "--posix",
                    "--zstd",
                    "-cf",
                    &blob,
                    "-C",
                    &dir,
                    ".davit-setup",
                ],
            );
        }
    }

    /// Turn an entry into a built one (what a cargo build saves): bin/ and SHA256SUMS of the
    /// real binaries.
    fn as_built_entry(&self, entry: &Path) {
        std::fs::remove_file(entry.join(ARCHIVE)).unwrap();
        let bin = entry.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let (archive, dir) = (
            self.actions.archive.display().to_string(),
            bin.display().to_string(),
        );
        sh(entry, "tar", &["-xzf", &archive, "-C", &dir]);
        let sums = BINS
            .iter()
            .map(|b| format!("{}  {b}\n", sha256(&bin.join(b))))
            .collect::<String>();
        std::fs::write(entry.join("SHA256SUMS"), sums).unwrap();
    }
}

fn said(log: &str, what: &str) -> usize {
    setup_reports(log)
        .iter()
        .filter(|(_, w, _)| w.contains(what))
        .count()
}

fn ready() -> bool {
    require_all(&["act", "node", "zstd", "strip", "git"])
}

#[test]
fn setup_refuses_a_corrupted_cache_entry_and_downloads_again() {
    if !ready() {
        return;
    }
    let s = Setup::new();

    // First run: nothing cached, the archive is downloaded, verified and saved to the cache.
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert_eq!(said(&log, "downloaded and verified"), 1, "{log}");
    assert!(log.contains("Cache saved"), "{log}");
    assert!(log.contains("davit-verify answered"), "{log}");
    assert_eq!(cache_blobs(&s.cache).len(), 1, "one cache entry expected");

    // Second run restores it: no download. The step summary says so too.
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert_eq!(said(&log, "restored from the Actions cache"), 1, "{log}");
    assert!(
        log.contains("Summary - **davit setup** (v1): restored from the Actions cache in "),
        "{log}"
    );
    assert_eq!(s.actions.release.downloads(), 1, "{log}");

    // The stored entry now holds another archive (what a corrupted or tampered entry looks like
    // once the cache restore has unpacked it): restored, refused against checksums.sha256, never
    // run, and the archive is downloaded and verified again.
    s.edit_entries(|entry| {
        assert!(entry.join(ARCHIVE).exists(), "the entry holds no {ARCHIVE}");
        s.bad_archive(&entry.join(ARCHIVE));
    });
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert!(log.contains("Cache restored"), "{log}");
    assert!(log.contains("refusing the cache entry"), "{log}");
    assert_eq!(said(&log, "downloaded and verified"), 1, "{log}");
    assert!(!s.marker.exists(), "a binary from the refused entry ran");
    assert_eq!(s.actions.release.downloads(), 2, "{log}");

    // A built entry (bin/ and SHA256SUMS, what a cargo build saves) is restored after its
    // sums are checked...
    s.edit_entries(|entry| s.as_built_entry(entry));
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert_eq!(said(&log, "restored from the Actions cache"), 1, "{log}");
    assert!(log.contains("davit-verify answered"), "{log}");
    assert_eq!(s.actions.release.downloads(), 2, "{log}");
    // ...and refused, never run, when a binary no longer matches them.
    s.edit_entries(|entry| s.bad_binary(&entry.join("bin/davit-verify")));
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert!(log.contains("refusing the cache entry"), "{log}");
    assert!(log.contains("does not match its SHA256SUMS line"), "{log}");
    assert_eq!(said(&log, "downloaded and verified"), 1, "{log}");
    assert!(!s.marker.exists(), "a binary from the refused entry ran");
    assert_eq!(s.actions.release.downloads(), 3, "{log}");

    // A cache blob that is not even a readable archive: the restore reports it failed (no hit),
    // setup trusts nothing of it and downloads again. (act's cache server took the entry the
    // last run saved again under the same key; GitHub's keeps the first one: cut them all.)
    for blob in cache_blobs(&s.cache) {
        let len = std::fs::metadata(&blob).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.set_len(len / 2).unwrap();
    }
    let (ok, log) = s.run();
    assert!(ok, "{log}");
    assert_eq!(said(&log, "restored from the Actions cache"), 0, "{log}");
    assert_eq!(said(&log, "downloaded and verified"), 1, "{log}");
    assert!(!s.marker.exists(), "a binary from the broken entry ran");
    assert_eq!(s.actions.release.downloads(), 4, "{log}");
}

#[test]
fn setup_refuses_a_release_archive_whose_checksum_does_not_match() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    // The download server now hands out another archive than the one checksums.sha256 names.
    s.bad_archive(&s.actions.archive);
    let (ok, log) = s.run();
    assert!(
        !ok,
        "setup accepted an archive with the wrong checksum:\n{log}"
    );
    assert!(log.contains("refusing to run it"), "{log}");
    // source: auto falls back to building at the ref; this action copy has no sources, so the
    // job stops there with the reason, and nothing bad ran or was saved for the next job.
    assert!(log.contains("building from source"), "{log}");
    assert!(log.contains("no sources to build"), "{log}");
    assert!(!s.marker.exists(), "a binary from the refused archive ran");
    assert_eq!(s.actions.release.downloads(), 1, "{log}");
    assert!(!log.contains("Cache saved"), "{log}");
    assert!(
        cache_blobs(&s.cache).is_empty(),
        "a refused archive was cached"
    );
}
