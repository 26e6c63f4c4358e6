//! The example pipeline under act, on this host (issue 7's "shown by").
//!
//! A copy of examples/shop becomes a git repository; act runs its workflow with
//! `-P ubuntu-latest=-self-hosted`, resolving `davit-dev/davit/actions/*@v1` to this checkout's
//! actions, with GITHUB_API_URL pointing at the fake GitHub API (where the test plays the
//! approver). The first run must end with production on the new version; a second run with a
//! release that breaks after start must end red, rolled back.
//!
//! Every job installs davit the way it would on a hosted runner (issue 18): the setup step of each
//! action restores the binaries from act's cache server (through the actions/cache stand-in in
//! tests/fixtures, as act cannot fetch the pinned actions/cache), or downloads the release archive
//! (this test run's binaries, packed and served over HTTP, its checksum in the action copy's
//! checksums.sha256) and saves it. Only the first job of the first run downloads;
//! every setup step of the second run restores from the cache.

use davit_fake_github::FakeGithub;
use davit_tests::act::{self, ActionRepo, commit, copy_dir, sh};
use davit_tests::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Pipeline {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    actions: ActionRepo,
    osv: PathBuf,
    app: String,
    public: u16,
}

impl Pipeline {
    fn new() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        // The action repository act resolves `davit-dev/davit@v1` to: only what the actions
        // need, released with the binaries this test run built.
        let actions = ActionRepo::new(dir.path());
        // An offline OSV database (one advisory for a package the image does not have), so the
        // scan really runs and passes.
        let osv = dir.path().join("osv");
        std::fs::create_dir_all(&osv).unwrap();
        std::fs::write(
            osv.join("DAVIT-TEST-1.json"),
            r#"{"id":"DAVIT-TEST-1","modified":"2026-01-01T00:00:00Z","summary":"test advisory",
               "affected":[{"package":{"ecosystem":"PyPI","name":"davit-no-such-package"},
               "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"}]}]}]}"#,
        )
        .unwrap();

        let repo = dir.path().join("shop");
        copy_dir(&root.join("examples/shop"), &repo);
        let app = format!("shop-e2e-{}", std::process::id());
        let (public, blue, green, staging) = (free_port(), free_port(), free_port(), free_port());
        let toml = std::fs::read_to_string(repo.join("davit.toml")).unwrap();
        let toml = format!(
            "state_dir = \"{}\"\n{}",
            dir.path().join("state").display(),
            toml.replacen("name = \"shop\"", &format!("name = \"{app}\""), 1)
                .replace("port = 28090", &format!("port = {staging}"))
                .replace(
                    "public = 28080, blue = 28081, green = 28082",
                    &format!("public = {public}, blue = {blue}, green = {green}")
                )
        );
        std::fs::write(repo.join("davit.toml"), toml).unwrap();
        sh(&repo, "git", &["init", "-q", "-b", "main"]);
        sh(
            &repo,
            "git",
            &[
                "remote",
                "add",
                "origin",
                "https://github.com/davit-dev/app.git",
            ],
        );
        commit(&repo, "shop");
        Pipeline {
            _dir: dir,
            repo,
            actions,
            osv,
            app,
            public,
        }
    }

    /// Run the pipeline under act; the test approves the production issue as `alice`.
    fn run(&self, fake: &FakeGithub) -> (bool, String) {
        let mut child = Command::new("act")
            .args(["push", "-P", "ubuntu-latest=-self-hosted", "--pull=false"])
            .args(["-W", ".github/workflows/pipeline.yml"])
            .args(["--env", &format!("GITHUB_API_URL={}", fake.url())])
            .args(self.actions.act_args(&self._dir.path().join("actcache")))
            .args(["--env", "DAVIT_LOCK_WAIT_SECS=60"])
            .args(["--secret", "GITHUB_TOKEN=ghs_e2eFakeToken"])
            .args([
                "--secret",
                "STAGING_DATABASE_URL=postgres://app:canary-stg@db/shop",
            ])
            .args([
                "--secret",
                "PRODUCTION_DATABASE_URL=postgres://app:canary-prod@db/shop",
            ])
            .args(["--var", "DAVIT_APPROVERS=alice"])
            .args(["--var", "DAVIT_APPROVAL_POLL=200ms"])
            .args(["--var", "DAVIT_SCANNER=osv"])
            .args(["--var", &format!("DAVIT_OSV_DB={}", self.osv.display())])
            .current_dir(&self.repo)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("act");
        // Read act's output while it runs: a full pipe would block act (and the test with it).
        let readers = [
            drain(child.stdout.take().unwrap()),
            drain(child.stderr.take().unwrap()),
        ];
        // Play the approver: comment on each new approval issue.
        let started = Instant::now();
        let approved_before = fake.issues().len();
        let mut approved = approved_before;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            for issue in fake.issues().iter().skip(approved) {
                fake.add_comment(issue.number, "alice", "approve");
                approved += 1;
            }
            if started.elapsed() > Duration::from_secs(900) {
                let _ = child.kill();
                let _ = child.wait();
                let log: [String; 2] = readers.map(|r| r.join().unwrap());
                panic!("act did not finish within 15 minutes:\n{}", log.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let log: [String; 2] = readers.map(|r| r.join().unwrap());
        (status.success(), log.join("\n"))
    }

    fn version(&self) -> String {
        format!(
            "sha-{}",
            sh(&self.repo, "git", &["rev-parse", "--short=7", "HEAD"])
        )
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        cleanup_app(&self.app, &self._dir.path().join("state"));
    }
}

/// Read a child's pipe to its end on a thread of its own.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

#[test]
fn act_runs_the_example_pipeline_green_then_red_with_rollback() {
    if !require_all(&["docker", "nginx", "act", "debootstrap", "python3"]) {
        return;
    }
    let base = Command::new(repo_root().join("scripts/build-example-base.sh"))
        .status()
        .unwrap();
    assert!(base.success(), "building the example base image failed");
    let p = Pipeline::new();
    let fake = FakeGithub::start();
    let public = format!("http://127.0.0.1:{}/", p.public);

    // Green: gate, image, staging, approval, production, verify.
    let good = p.version();
    let (ok, log) = p.run(&fake);
    assert!(ok, "the pipeline failed:\n{log}");
    block_on(async { assert_eq!(version_at(&public).await, good, "{log}") });
    // The first job downloads and caches the binaries; the other four restore them.
    let setups = act::setup_reports(&log);
    let what: Vec<&str> = setups.iter().map(|(_, w, _)| w.as_str()).collect();
    assert_eq!(setups.len(), 5, "one setup report per job: {setups:?}");
    assert_eq!(
        what[0], "downloaded and verified the release archive",
        "{setups:?}"
    );
    assert!(
        what[1..]
            .iter()
            .all(|w| *w == "restored from the Actions cache"),
        "{setups:?}"
    );
    assert_eq!(p.actions.release.downloads(), 1);
    let deployments = fake.deployments();
    assert!(
        deployments.iter().any(|d| d.environment == "staging")
            && deployments.iter().any(|d| d.environment == "production"),
        "missing deployment records: {deployments:?}"
    );
    // Secrets never reach the log or the API.
    assert!(
        !log.contains("canary-prod") && !log.contains("canary-stg"),
        "secret in the log"
    );
    for r in fake.requests() {
        assert!(!r.body.contains("canary-"), "secret sent to {}", r.path);
    }

    // Red: a release whose storefront breaks 4 s after start passes the gate, the image and the
    // health gate, and is rolled back by verify; the workflow fails visibly.
    let app = std::fs::read_to_string(p.repo.join("app.py")).unwrap();
    std::fs::write(
        p.repo.join("app.py"),
        app.replacen("FAIL_AFTER = None", "FAIL_AFTER = 4", 1),
    )
    .unwrap();
    commit(&p.repo, "a release that breaks");
    let bad = p.version();
    let (ok, log) = p.run(&fake);
    assert!(!ok, "the pipeline with a bad release passed:\n{log}");
    assert!(log.contains("rolling back"), "{log}");
    // The second run builds and downloads nothing: every setup step restores from the cache.
    let setups = act::setup_reports(&log);
    assert_eq!(setups.len(), 5, "one setup report per job: {setups:?}");
    assert!(
        setups
            .iter()
            .all(|(_, w, _)| w == "restored from the Actions cache"),
        "{setups:?}"
    );
    assert_eq!(
        p.actions.release.downloads(),
        1,
        "the second run downloaded"
    );
    eprintln!("setup steps of the second run: {setups:?}");
    block_on(async { assert_eq!(version_at(&public).await, good, "{log}") });
    let ledger = std::fs::read_to_string(
        p._dir
            .path()
            .join(format!("state/{}-production/releases.jsonl", p.app)),
    )
    .unwrap();
    assert!(
        ledger.contains(&format!("\"event\":\"rolled_back\",\"version\":\"{bad}\"")),
        "{ledger}"
    );
}
