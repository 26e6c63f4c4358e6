//! Truth from the host, part one (issue 14): whole ledger lines and complete lock files on a
//! full disk (T44, T45), secret values redacted from everything davit re-emits (T46), untrusted
//! text escaped where it is shown (T47), and bounded configuration reads (T48).

use davit_deploy::ledger::{self, Event, Record};
use davit_deploy::lock::{self, LockOptions};
use davit_deploy::{Options, observe};
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small tmpfs mounted over `dir`, unmounted when dropped: a disk that can be filled.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// None (a skip, or a panic under CI=true) when this process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mounting a tmpfs (root) is required by this test; CI=true does not allow skipping"
            );
            eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir.to_path_buf()))
    }

    /// Take every free byte with a filler file; returns it (remove it to free the space).
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn record(id: &str, event: Event, version: &str) -> Record {
    Record {
        id: id.into(),
        event,
        version: version.into(),
        image: format!("app:{version}"),
        digest: None,
        strategy: "blue-green".into(),
        color: Some("blue".into()),
        environment: "production".into(),
        host: "local".into(),
        at: ledger::now(),
        actor: "t44".into(),
        reason: Some("x".repeat(300)),
        approval: None,
        processes: Vec::new(),
    }
}

/// T44: the disk fills while the ledger is appended. The failed append leaves the ledger as it
/// was (whole lines only, nothing glued on later); a torn tail a crash left behind is reported
/// and cut before the next record; after space returns a real deploy and a rollback record
/// every line, "rolled back" with its "restored".
#[test]
fn t44_ledger_disk_full() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t44";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t44");
    let Some(disk) = SmallDisk::mount(&sb.dir.path().join("state"), "512k") else {
        return;
    };
    let t = sb.target(repo, "production", "");
    let public = format!("http://127.0.0.1:{}/", sb.public);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        // Pad the ledger with empty lines (skipped by readers) to 40 bytes short of a page
        // boundary: a 400-byte record then fits only in part, the write that tears a line.
        let path = t.ledger_path();
        let len = std::fs::metadata(&path).unwrap().len();
        let pad = (4096 - (len % 4096) + 4096 - 40) % 4096;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&vec![b'\n'; pad as usize]).unwrap();
        drop(f);
        let before = std::fs::read(&path).unwrap();
        let filler = disk.fill();

        let err = ledger::append(&exec, &path, &[record("r2", Event::Deployed, "v2")])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after, before, "a failed append left bytes behind");

        // A crash mid-write (SIGKILL, power loss) leaves a fragment; the next append cuts it.
        std::fs::remove_file(&filler).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"id":"torn","event":"depl"#).unwrap();
        drop(f);
        let obs = observe(&exec, &t, None).await.unwrap();
        let warnings = obs.ledger_warnings();
        assert!(
            warnings.iter().any(|w| w.contains("ends in a torn line")),
            "{warnings:?}"
        );
        let report = davit_deploy::deploy(&exec, &t, "v2", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert!(
            report.warnings.iter().any(|w| w.contains("torn line")),
            "{:?}",
            report.warnings
        );
        assert_eq!(version_at(&public).await, "v2");
        davit_deploy::rollback(&exec, &t, None, "t44", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&public).await, "v1");
    });
    let text = std::fs::read_to_string(t.ledger_path()).unwrap();
    assert!(text.ends_with('\n'));
    let (_, bad) = ledger::parse(&text);
    assert!(bad.is_empty(), "unreadable lines {bad:?}");
    assert_eq!(
        ledger_events(&t),
        vec![
            "deployed:v1",
            "deployed:v2",
            "rolled_back:v2",
            "restored:v1"
        ]
    );
    drop(disk);
}

/// T45: the disk fills while the lock is taken: the attempt fails naming the cause and leaves
/// no lock file (empty or partial); once space returns the next run takes the lock.
#[test]
fn t45_lock_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("state"), "64k") else {
        return;
    };
    let sb = Sandbox::new("t-t45");
    let mut t = sb.target("davit-test-t45", "production", "");
    t.state_dir = dir.path().join("state/env");
    std::fs::create_dir_all(&t.state_dir).unwrap();
    let opts = LockOptions {
        wait: Duration::from_secs(1),
        ttl: Duration::from_secs(60),
    };
    block_on(async {
        let exec = Local::new();
        let filler = disk.fill();
        let err = lock::acquire(&exec, &t, "deploy", "v1", &opts)
            .await
            .unwrap_err();
        assert!(err.message.contains("No space left"), "{err}");
        assert!(
            !lock::lock_path(&t).exists(),
            "a lock file was left on a full disk"
        );
        let left: Vec<_> = std::fs::read_dir(&t.state_dir).unwrap().collect();
        assert!(left.is_empty(), "temp files left: {left:?}");

        std::fs::remove_file(&filler).unwrap();
        let l = lock::acquire(&exec, &t, "deploy", "v1", &opts)
            .await
            .unwrap();
        let held = lock::status(&exec, &t).await.unwrap().unwrap();
        assert_eq!(
            held.token, l.holder.token,
            "the lock file is the whole holder"
        );
        // O_EXCL semantics kept: a second taker waits and fails, naming the holder.
        let e = lock::acquire(&exec, &t, "deploy", "v2", &opts)
            .await
            .unwrap_err();
        assert!(e.message.contains("locked by another deploy"), "{e}");
        l.release(&exec, &t).await.unwrap();
        assert!(lock::status(&exec, &t).await.unwrap().is_none());
    });
    drop(disk);
}

/// Text of every place davit writes for a run: stdout, stderr.
fn run(c: &mut Command) -> (bool, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// T46: a pre-deploy hook that prints the database password (an app echoing a bad setting)
/// fails the deploy; the value appears nowhere davit writes: terminal, ledger, step summary,
/// outputs, GitHub payloads. The canary is counted, and the redaction mark is where it was.
#[test]
fn t46_secret_values_are_redacted_everywhere() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    const CANARY: &str = "canary-pw-5d1f0c9e77";
    let repo = "davit-test-t46";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t46");
    let hook = "[[environments.production.hooks.pre_deploy]]\non = \"host\"\nrun = [\"/bin/sh\", \"-c\", \"if [ \\\"$DAVIT_VERSION\\\" = v2 ]; then echo \\\"bad setting DB_PASSWORD=$DB_PASSWORD\\\" >&2; exit 3; fi\"]\n";
    let text = sb.config_text(repo, hook).replace(
        "port = 8000\n",
        "port = 8000\nsecret_env = [\"DB_PASSWORD\"]\n",
    );
    let config = sb.dir.path().join("davit.toml");
    std::fs::write(&config, text).unwrap();
    let cfg = davit_config::Config::load(&config).unwrap();
    let t = davit_deploy::Target::resolve(&cfg, "production", &|_| Some("x".into())).unwrap();
    let fake = davit_fake_github::FakeGithub::start();
    let summary = sb.dir.path().join("summary.md");
    let outputs = sb.dir.path().join("outputs");
    let deploy = |version: &str| {
        let mut c = Command::new(bin("davit"));
        c.args(["deploy", "production", "--version", version, "--config"])
            .arg(&config)
            .env("DB_PASSWORD", CANARY)
            .env("GITHUB_API_URL", fake.url())
            .env("GITHUB_TOKEN", "ghs_t46token0123456789")
            .env("GITHUB_REPOSITORY", fake.repo())
            .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_RUN_ID", "46")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_OUTPUT", &outputs)
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS");
        c
    };
    let (ok, first) = run(&mut deploy("v1"));
    assert!(ok, "{first}");
    let (ok, second) = run(&mut deploy("v2"));
    assert!(!ok, "the hook must fail the deploy: {second}");
    assert!(
        second.contains("bad setting DB_PASSWORD=[REDACTED]"),
        "{second}"
    );
    let ledger_text = std::fs::read_to_string(t.ledger_path()).unwrap();
    assert!(ledger_text.contains("[REDACTED]"), "{ledger_text}");
    let payloads: String = fake
        .requests()
        .iter()
        .map(|r| r.body.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !fake.deployments().is_empty(),
        "no GitHub records were made"
    );
    let everything = [
        first,
        second,
        ledger_text,
        std::fs::read_to_string(&summary).unwrap_or_default(),
        std::fs::read_to_string(&outputs).unwrap_or_default(),
        payloads,
    ];
    let hits: usize = everything.iter().map(|s| s.matches(CANARY).count()).sum();
    eprintln!("T46 secret canary hits: {hits}");
    assert_eq!(hits, 0, "the secret leaked: {everything:#?}");
}

/// T47: an actor and a reason with newlines, ANSI escapes, markdown and HTML: `davit releases`
/// shows one escaped row per record, the step summary one table row per release, no tag, no
/// escape byte.
#[test]
fn t47_untrusted_text_is_escaped_where_shown() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    let repo = "davit-test-t47";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-t47");
    let _t = sb.target(repo, "production", "");
    let config = sb.dir.path().join("davit.toml");
    let summary = sb.dir.path().join("summary.md");
    let evil = "eve\n* 2099-01-01T00:00:00Z  deployed  v9  blue  admin  forged\x1b[2J\x1b[31m| x | y | z | w | v |\n<img src=x onerror=alert(1)>[click](http://evil.example)";
    let davit = |args: &[&str]| {
        let mut c = Command::new(bin("davit"));
        c.args(args)
            .arg("--config")
            .arg(&config)
            .env("DAVIT_ACTOR", evil)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS");
        c
    };
    for v in ["v1", "v2"] {
        let (ok, out) = run(&mut davit(&["deploy", "production", "--version", v]));
        assert!(ok, "{out}");
    }
    let (ok, out) = run(&mut davit(&["rollback", "production", "--reason", evil]));
    assert!(ok, "{out}");
    assert!(!out.contains('\x1b'), "escape bytes reached the terminal");
    let table = davit(&["releases", "production"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(!table.contains('\x1b'), "{table}");
    // A header and four records (two deploys, rolled back, restored): no forged row.
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(table.contains("eve\\n* 2099"), "{table}");
    let md = std::fs::read_to_string(&summary).unwrap();
    let rows = md.lines().filter(|l| l.starts_with('|')).count();
    // Three summaries (v1, v2, the rollback), each a header, a rule and one row.
    assert_eq!(rows, 9, "{md}");
    assert!(
        !md.contains("<img") && !md.contains("](") && !md.contains('\x1b'),
        "{md}"
    );
}

/// T48: `--config` at a FIFO, a device, a directory, a 10 MB one-line file, and a read timeout
/// nginx would reject: each ends quickly with exit 2, a bounded message and a hint.
#[test]
fn t48_config_reads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("app = \"{}\"", "x".repeat(10 * 1024 * 1024))).unwrap();
    let long_line = dir.path().join("long.toml");
    std::fs::write(&long_line, format!("x = [{}", "1,".repeat(400_000))).unwrap();
    let sb = Sandbox::new("t-t48");
    let timeout = dir.path().join("timeout.toml");
    std::fs::write(
        &timeout,
        sb.config_text("davit-test-t48", "")
            + "[environments.production.proxy]\nread_timeout_secs = 99999999999999\n",
    )
    .unwrap();
    let cases: [(&str, PathBuf, &str); 6] = [
        ("fifo", fifo, "FIFO"),
        ("device", PathBuf::from("/dev/urandom"), "a device"),
        ("directory", dir.path().to_path_buf(), "a directory"),
        ("10 MB file", big, "at most"),
        ("long line", long_line, "more characters"),
        ("read timeout", timeout, "read_timeout_secs"),
    ];
    for (what, path, expect) in cases {
        let started = Instant::now();
        let mut child = Command::new(bin("davit"))
            .args(["releases", "production", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{what}: davit did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.len() < 4096,
            "{what}: {} bytes of error",
            stderr.len()
        );
        assert!(stderr.contains(expect), "{what}: {stderr}");
        assert!(stderr.contains("hint:"), "{what}: {stderr}");
    }
}
