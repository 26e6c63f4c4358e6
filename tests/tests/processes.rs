//! T50 through the real CLI, under constant load, with the Django + Celery example (web, Celery
//! worker and Celery beat from one image; PostgreSQL and Redis as services; a media volume shared
//! by web and worker), all read from the example's own docker-compose.prod.yml:
//! `davit services up`, then `davit deploy` v1 and v2, a deploy of a release whose scheduler
//! exits at start (every process stays on v2: all or nothing), a v3 rolled back by `davit rollback`, and
//! a v4 that degrades after going live, rolled back by `davit verify`. Required: 0 failed web
//! requests, every enqueued task done once (a running task finishes across each deploy and
//! rollback: the old worker drains), beat never fired twice for one tick (the singleton never runs
//! twice at once), every process on one version after each step (read from the host's container
//! labels and from `davit status`), and a media file uploaded before the deploys readable by web
//! and worker after each of them.

use davit_tests::{bin, django_celery_images, free_port, repo_root};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const PW: &str = "t50-test-password";

fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker").args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// One HTTP/1.0 request to 127.0.0.1:`port`: (status, body); None when it could not be made.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: t50\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http(port, "GET", path, "").unwrap_or_else(|| panic!("GET {path}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Constant load through the public path (GET /, about 50 requests/s) and tasks enqueued through
/// it (POST /jobs, 2.5/s, each working 0.6 s); every answer that is not a success is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    sent: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
    tasks: Arc<AtomicU32>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, failed, tasks) = Default::default();
        let mut l = Load {
            stop,
            threads: Vec::new(),
            sent,
            failed,
            tasks,
        };
        for (path, method, pause, counter) in [
            ("/", "GET", 20, None),
            ("/jobs?work_ms=600", "POST", 400, Some(l.tasks.clone())),
        ] {
            let (stop, sent, failed) = (l.stop.clone(), l.sent.clone(), l.failed.clone());
            l.threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match http(port, method, path, "") {
                        Some((200..=299, _)) => {
                            if let Some(c) = &counter {
                                c.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        other => {
                            eprintln!("{method} {path} failed: {other:?}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(pause));
                }
            }));
        }
        l
    }

    /// (requests sent, requests failed, tasks enqueued).
    fn finish(mut self) -> (u32, u32, u32) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.tasks.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Everything the test made (by its unique app label, image repository and names), removed on
/// drop whatever the outcome.
struct Cleanup {
    app: String,
    env: &'static str,
    repo: String,
    state: PathBuf,
    /// Containers the test started itself, without davit's labels.
    others: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        davit_tests::cleanup_app(&self.app, &self.state);
        let (_, ids) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=davit.app={}", self.app),
        ]);
        for id in ids
            .split_whitespace()
            .chain(self.others.iter().map(String::as_str))
        {
            docker(&["rm", "-f", "-v", id]);
        }
        for v in ["media", "postgres_data", "redis_data"] {
            docker(&["volume", "rm", &format!("{}-{}_{v}", self.app, self.env)]);
        }
        docker(&["network", "rm", &format!("{}-{}", self.app, self.env)]);
        let (_, tags) = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &self.repo]);
        for t in tags.split_whitespace() {
            docker(&["rmi", t]);
        }
    }
}

struct World {
    dir: PathBuf,
    app: String,
    env: &'static str,
    /// Where users reach the web: the public port (blue-green) or the published one (compose).
    public: u16,
}

impl World {
    /// Run the davit CLI; (success, stdout + stderr).
    fn davit(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new(bin("davit"))
            .args(args)
            .current_dir(&self.dir)
            .env(
                "DATABASE_URL",
                format!("postgresql://app:{PW}@postgres:5432/app"),
            )
            .env("POSTGRES_PASSWORD", PW)
            .env_remove("GITHUB_ACTIONS")
            .env_remove("DAVIT_ENVIRONMENT")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("$ davit {}\n{text}", args.join(" "));
        (o.status.success(), text)
    }

    /// Every running process container by its labels: (process, version) sorted, web included.
    fn running(&self) -> Vec<(String, String)> {
        let (ok, out) = docker(&[
            "ps",
            "--filter",
            &format!("label=davit.app={}", self.app),
            "--filter",
            &format!("label=davit.environment={}", self.env),
            "--filter",
            "label=davit.process",
            "--format",
            "{{.Label \"davit.process\"}} {{.Label \"davit.version\"}} {{.Label \"davit.color\"}}",
        ]);
        assert!(ok, "{out}");
        let mut v: Vec<(String, String)> = out
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string())
            })
            .collect();
        v.sort();
        v
    }

    /// Every process on `version`: the worker and beat (exactly one beat), the web through the
    /// public path, and `davit status` saying so.
    fn all_on(&self, version: &str) {
        let others: Vec<(String, String)> = self
            .running()
            .into_iter()
            .filter(|(p, _)| p != "backend")
            .collect();
        assert_eq!(
            others,
            [
                ("celery-beat".to_string(), version.to_string()),
                ("celery-worker".to_string(), version.to_string())
            ],
            "not every process on {version}"
        );
        let h = json(self.public, "/health");
        assert_eq!(h["version"], version, "{h}");
        let (ok, status) = self.davit(&["status", self.env]);
        assert!(ok, "{status}");
        for p in ["backend", "celery-worker", "celery-beat"] {
            let line = status
                .lines()
                .find(|l| l.split_whitespace().next() == Some(p))
                .unwrap_or_else(|| panic!("no {p} in davit status:\n{status}"));
            assert!(line.contains(version), "{line}");
        }
    }

    /// The worker of `version` reads the file uploaded before the deploys, and the web serves it.
    fn media_readable(&self, version: &str) {
        let (status, body) = http(self.public, "GET", "/media/before.txt", "").unwrap();
        assert_eq!((status, body.as_str()), (200, "uploaded before"));
        let before = json(self.public, "/media-checks")["checks"]
            .as_array()
            .unwrap()
            .len();
        let (status, _) = http(self.public, "POST", "/media/before.txt/check", "").unwrap();
        assert_eq!(status, 202);
        let start = Instant::now();
        loop {
            let checks = json(self.public, "/media-checks");
            let list = checks["checks"].as_array().unwrap();
            if list.len() > before {
                let last = &list[list.len() - 1];
                assert_eq!(last["size"], 15, "{checks}");
                assert_eq!(last["checked_by"], version, "{checks}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the {version} worker never read the upload"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `<repo>:<tag>` built from the example's image with `lines` of Python appended to `file`.
fn derived_image(base: &str, repo: &str, tag: &str, file: &str, lines: &[&str], dir: &Path) {
    let ctx = dir.join(format!("image-{tag}"));
    std::fs::create_dir_all(&ctx).unwrap();
    let quoted: Vec<String> = lines.iter().map(|l| format!("'{l}'")).collect();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nUSER root\nRUN printf '%s\\n' {} >> /app/{file}\nUSER app\n",
            quoted.join(" ")
        ),
    )
    .unwrap();
    let (ok, out) = docker(&[
        "build",
        "--quiet",
        "-t",
        &format!("{repo}:{tag}"),
        &ctx.display().to_string(),
    ]);
    assert!(ok, "{out}");
}

/// davit.toml and the example's own compose file (its app image renamed to `repo`) in `dir`,
/// with `environments` (TOML tables) for this test.
fn write_config(dir: &Path, app: &str, repo: &str, environments: &str) {
    let example = repo_root().join("examples/django-celery");
    let compose = std::fs::read_to_string(example.join("docker-compose.prod.yml"))
        .unwrap()
        .replace("davit-examples/django-celery", repo);
    std::fs::write(dir.join("docker-compose.prod.yml"), compose).unwrap();
    std::fs::write(
        dir.join("davit.toml"),
        format!(
            r#"
compose_file = "docker-compose.prod.yml"
state_dir = "{state}"
[app]
name = "{app}"
port = 8000
env = {{ REDIS_URL = "redis://redis:6379/0", BEAT_INTERVAL = "1" }}
secret_env = ["DATABASE_URL"]
[image]
name = "{repo}"
pull = "never"
[health]
path = "/health"
interval_ms = 250
consecutive = 3
deadline_secs = 90
[processes.celery-worker]
ready = {{ healthcheck = true, timeout_secs = 90 }}
[processes.celery-beat]
singleton = true
{environments}
"#,
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
}

#[test]
fn t50_every_process_moves_as_one_release_through_the_cli() {
    let Some([image, _, _]) = django_celery_images("test") else {
        return;
    };
    let n = free_port();
    let app = format!("t50c{n}");
    let repo = format!("davit-t50-{n}/app");
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup {
        app: app.clone(),
        env: "production",
        repo: repo.clone(),
        state: dir.path().join("state"),
        others: Vec::new(),
    };
    for v in ["v1", "v2", "v3"] {
        let (ok, out) = docker(&["tag", &image, &format!("{repo}:{v}")]);
        assert!(ok, "{out}");
    }
    // v4's health view answers 503 once it has run 30 s: it goes live, then degrades.
    derived_image(
        &image,
        &repo,
        "v4",
        "jobs/views.py",
        &[
            "import time as _t",
            "_started = _t.time()",
            "_healthy = health",
            "def health(request):",
            "    if _t.time() - _started >= 30:",
            "        return HttpResponse(\"degraded\", status=503)",
            "    return _healthy(request)",
        ],
        dir.path(),
    );
    // broken's beat exits at start; its web and worker are fine.
    derived_image(
        &image,
        &repo,
        "broken",
        "app/celery.py",
        &[
            "import sys as _sys",
            "if \"beat\" in _sys.argv:",
            "    raise SystemExit(\"this release cannot schedule\")",
        ],
        dir.path(),
    );

    let (public, blue, green) = (free_port(), free_port(), free_port());
    write_config(
        dir.path(),
        &app,
        &repo,
        &format!(
            "[environments.production]\nstrategy = \"blue-green\"\nports = {{ public = {public}, blue = {blue}, green = {green} }}\nverify = {{ watch_secs = 60, interval_ms = 500, failure_limit = 3 }}\n[[environments.production.hooks.pre_deploy]]\nrun = [\"python3\", \"manage.py\", \"migrate\", \"--noinput\"]\n"
        ),
    );
    let w = World {
        dir: dir.path().to_path_buf(),
        app: app.clone(),
        env: "production",
        public,
    };

    let (ok, out) = w.davit(&["services", "up", "production"]);
    assert!(ok, "{out}");
    // The migration hook runs on the app network: `postgres` resolves.
    let (ok, out) = w.davit(&["deploy", "production", "--version", "v1"]);
    assert!(ok, "{out}");
    w.all_on("v1");
    let (status, _) = http(public, "PUT", "/media/before.txt", "uploaded before").unwrap();
    assert_eq!(status, 201);

    let load = Load::start(public);
    std::thread::sleep(Duration::from_secs(2));

    let (ok, out) = w.davit(&["deploy", "production", "--version", "v2"]);
    assert!(ok, "{out}");
    // The gap, from Docker's timestamps (none would mean the new beat started first).
    assert!(out.contains("celery-beat was not running for"), "{out}");
    w.all_on("v2");
    w.media_readable("v2");

    // A release whose beat exits at start: its worker had started and the old beat had stopped
    // (never two at once); the failure reverts every process to v2, the web never moved.
    let (ok, out) = w.davit(&["deploy", "production", "--version", "broken"]);
    assert!(!ok, "{out}");
    w.all_on("v2");

    // A release rolled back by a person.
    let (ok, out) = w.davit(&["deploy", "production", "--version", "v3"]);
    assert!(ok, "{out}");
    assert!(out.contains("celery-beat was not running for"), "{out}");
    w.all_on("v3");
    let (ok, out) = w.davit(&["rollback", "production", "--reason", "t50"]);
    assert!(ok, "{out}");
    assert!(out.contains("celery-beat was not running for"), "{out}");
    assert!(
        !out.contains("migrate"),
        "a rollback ran the migration: {out}"
    );
    w.all_on("v2");
    w.media_readable("v2");

    // A release that degrades once live: verify rolls every process back.
    let (ok, out) = w.davit(&["deploy", "production", "--version", "v4"]);
    assert!(ok, "{out}");
    w.all_on("v4");
    let (ok, out) = w.davit(&["verify", "production", "--version", "v4"]);
    assert!(!ok, "{out}");
    w.all_on("v2");
    w.media_readable("v2");

    let (sent, failed, tasks) = load.finish();
    assert_eq!(failed, 0, "{failed} of {sent} web requests failed");
    assert!(tasks > 20, "only {tasks} tasks were enqueued");

    // Every task enqueued is done, once: the old workers drained (warm shutdown).
    let start = Instant::now();
    loop {
        let stats = json(public, "/jobs/stats");
        if stats["done"] == stats["total"] {
            assert_eq!(stats["total"], tasks, "{stats}");
            assert_eq!(stats["ran_twice"], 0, "{stats}");
            eprintln!("tasks: {stats}; web requests: {sent}, failed: {failed}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "tasks lost: {stats} (enqueued {tasks})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The singleton never ran twice at once. Docker's own timestamps said so at each move (the
    // gap notes above); the app's side: ordered by when beat sent them, the ticks come from one
    // beat after the other in the order they were started (two at once would interleave), and
    // no beat sent more ticks than its interval (1 s) allows over its span (two at once would
    // send twice as many). Single spacings are not compared: on a loaded machine a send can be
    // late and the next one on time.
    let ticks = json(public, "/ticks");
    let list = ticks["ticks"].as_array().unwrap();
    assert!(list.len() > 20, "{ticks}");
    // (beat, first sent, last sent, ticks)
    let mut runs: Vec<(String, f64, f64, u32)> = Vec::new();
    for t in list {
        let (beat, at) = (
            t["beat_version"].as_str().unwrap().to_string(),
            t["sent_at"].as_f64().unwrap(),
        );
        match runs.last_mut() {
            Some((b, _, last, n)) if *b == beat => {
                *last = at;
                *n += 1;
            }
            _ => runs.push((beat, at, at, 1)),
        }
    }
    for (beat, first, last, n) in &runs {
        assert!(
            f64::from(*n) <= (last - first) + 3.0,
            "{beat} sent {n} ticks in {:.1}s: more than one scheduler at once",
            last - first
        );
    }
    let order: Vec<&str> = runs.iter().map(|(b, ..)| b.as_str()).collect();
    let started = ["v1", "v2", "broken", "v2", "v3", "v2", "v4", "v2"];
    let mut rest = started.iter();
    assert!(
        order.iter().all(|b| rest.any(|s| s == b)),
        "beats fired in the order {order:?}, not one after the other as started ({started:?})"
    );
    assert!(order.len() >= 6, "{order:?}");

    // The ledger records every process of each release; `davit releases` shows them.
    let (ok, out) = w.davit(&["releases", "production"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("celery-worker") && out.contains("celery-beat"),
        "{out}"
    );
    // The volumes were never deleted.
    for v in ["media", "postgres_data", "redis_data"] {
        let (ok, out) = docker(&["volume", "inspect", &format!("{app}-production_{v}")]);
        assert!(ok, "{out}");
    }
}

/// The compose strategy moves the whole set too: every process is a service of davit's compose
/// file on the app network, a rollback re-applies the old file (no migration), and a container
/// someone else put in davit's compose project is left alone (no `--remove-orphans`).
#[test]
fn compose_moves_every_process_and_deletes_nobody_elses_container() {
    let Some([image, _, _]) = django_celery_images("test") else {
        return;
    };
    let n = free_port();
    let app = format!("t50k{n}");
    let repo = format!("davit-t50k-{n}/app");
    let dir = tempfile::tempdir().unwrap();
    let sidecar = format!("{app}-team-sidecar");
    let _cleanup = Cleanup {
        app: app.clone(),
        env: "staging",
        repo: repo.clone(),
        state: dir.path().join("state"),
        others: vec![sidecar.clone()],
    };
    for v in ["v1", "v2"] {
        let (ok, out) = docker(&["tag", &image, &format!("{repo}:{v}")]);
        assert!(ok, "{out}");
    }
    let port = free_port();
    write_config(
        dir.path(),
        &app,
        &repo,
        &format!(
            "[environments.staging]\nstrategy = \"compose\"\nport = {port}\n[[environments.staging.hooks.pre_deploy]]\nrun = [\"python3\", \"manage.py\", \"migrate\", \"--noinput\"]\n"
        ),
    );
    let w = World {
        dir: dir.path().to_path_buf(),
        app: app.clone(),
        env: "staging",
        public: port,
    };
    let (ok, out) = w.davit(&["services", "up", "staging"]);
    assert!(ok, "{out}");
    let (ok, out) = w.davit(&["deploy", "staging", "--version", "v1"]);
    assert!(ok, "{out}");
    w.all_on("v1");
    let (status, _) = http(port, "PUT", "/media/before.txt", "uploaded before").unwrap();
    assert_eq!(status, 201);

    // The team's own container in davit's compose project (what `--remove-orphans` deleted).
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &sidecar,
        "--label",
        &format!("com.docker.compose.project=davit-{app}-staging"),
        "--label",
        "com.docker.compose.service=sidecar",
        "--label",
        "com.docker.compose.oneoff=False",
        "--label",
        "com.docker.compose.container-number=1",
        &image,
        "python3",
        "-c",
        "import time; time.sleep(100000)",
    ]);
    assert!(ok, "{out}");

    let (ok, out) = w.davit(&["deploy", "staging", "--version", "v2"]);
    assert!(ok, "{out}");
    w.all_on("v2");
    w.media_readable("v2");
    let (ok, out) = w.davit(&["rollback", "staging", "--reason", "t50 compose"]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("migrate"),
        "a rollback ran the migration: {out}"
    );
    w.all_on("v1");
    w.media_readable("v1");
    assert_eq!(
        davit_tests::container_state(&sidecar),
        Some(true),
        "the team's container was removed or stopped"
    );
    let (ok, out) = w.davit(&["releases", "staging"]);
    assert!(ok && out.contains("celery-worker"), "{out}");
}
