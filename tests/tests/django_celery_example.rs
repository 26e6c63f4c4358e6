//! The Django + Celery example (examples/django-celery) builds and its own tests pass in its image,
//! against its PostgreSQL and Redis images on a Docker network where the service names resolve;
//! then the whole stack runs (web, worker, beat) and a task, a beat tick and a media file shared
//! by web and worker are seen end to end.
//!
//! The base image is built once (debootstrap, cached by a label) and reused by every later run.

use davit_tests::{django_celery_images, free_port};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "docker {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Containers, a network and a volume with this test's unique prefix, removed on drop (with their
/// anonymous volumes), whatever the outcome.
struct Stack {
    prefix: String,
    containers: Vec<String>,
}

impl Stack {
    fn new() -> Stack {
        let prefix = format!("davit-djc-{}-{}", std::process::id(), free_port());
        docker_ok(&["network", "create", &prefix]);
        docker_ok(&["volume", "create", &format!("{prefix}-media")]);
        Stack {
            prefix,
            containers: Vec::new(),
        }
    }

    fn run(&mut self, name: &str, alias: &str, extra: &[&str], image: &str, cmd: &[&str]) {
        let full = format!("{}-{name}", self.prefix);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &full,
            "--network",
            &self.prefix,
            "--network-alias",
            alias,
        ];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(cmd);
        docker_ok(&args);
        self.containers.push(full);
    }

    fn wait_healthy(&self, name: &str) {
        let full = format!("{}-{name}", self.prefix);
        let start = Instant::now();
        loop {
            let s = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &full]);
            if s == "healthy" {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{full} not healthy ({s}):\n{}",
                self.logs(name)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn logs(&self, name: &str) -> String {
        let o = docker(&["logs", "--tail", "40", &format!("{}-{name}", self.prefix)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        let _ = docker(&["volume", "rm", &format!("{}-media", self.prefix)]);
        let _ = docker(&["network", "rm", &self.prefix]);
    }
}

fn http(method: &str, url: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        method.into(),
        "--max-time".into(),
        "10".into(),
    ];
    let tmp;
    if let Some(b) = body {
        tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b).unwrap();
        args.push("--data-binary".into());
        args.push(format!("@{}", tmp.path().display()));
    }
    args.push(url.into());
    let o = Command::new("curl").args(&args).output().unwrap();
    let out = o.stdout;
    let split = out.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&out[split..])
        .trim()
        .parse()
        .unwrap_or(0);
    (code, out[..split].to_vec())
}

fn json(method: &str, url: &str) -> serde_json::Value {
    let (code, body) = http(method, url, None);
    assert!((200..300).contains(&code), "{method} {url}: {code}");
    serde_json::from_slice(&body).unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_django_celery_example_passes_its_tests_and_runs_web_worker_and_beat() {
    let Some([app, pg, redis]) = django_celery_images("test") else {
        return;
    };
    let (app, pg, redis) = (app.as_str(), pg.as_str(), redis.as_str());

    let mut s = Stack::new();
    let pw = "example-test-password";
    let pg_env = format!("POSTGRES_PASSWORD={pw}");
    s.run(
        "postgres",
        "postgres",
        &[
            "-e",
            "POSTGRES_USER=app",
            "-e",
            "POSTGRES_DB=app",
            "-e",
            &pg_env,
        ],
        pg,
        &[],
    );
    s.run("redis", "redis", &[], redis, &[]);
    s.wait_healthy("postgres");
    s.wait_healthy("redis");

    // The app's own tests in its image, on the network: `postgres` and `redis` resolve, the
    // migrations match the models.
    let db = format!("DATABASE_URL=postgresql://app:{pw}@postgres:5432/app");
    let net = s.prefix.clone();
    let env: Vec<&str> = vec![
        "-e",
        &db,
        "-e",
        "REDIS_URL=redis://redis:6379/0",
        "-e",
        "BEAT_INTERVAL=1",
        "-e",
        "DAVIT_VERSION=t1",
    ];
    let mut args = vec!["run", "--rm", "--network", &net];
    args.extend_from_slice(&env);
    args.extend_from_slice(&[
        app,
        "sh",
        "-c",
        "python3 manage.py makemigrations --check --dry-run && python3 manage.py test -v 2",
    ]);
    let t = docker(&args);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&t.stdout),
        String::from_utf8_lossy(&t.stderr)
    );
    assert!(t.status.success(), "the example's tests failed:\n{out}");
    assert!(
        out.contains("Ran 11 tests") && out.contains("\nOK"),
        "{out}"
    );
    assert!(
        !out.contains("skipped"),
        "a service test was skipped:\n{out}"
    );

    // The stack: migrate, then web, worker and beat from the one image, media shared.
    let mut args = vec!["run", "--rm", "--network", &net];
    args.extend_from_slice(&env);
    args.extend_from_slice(&[app, "python3", "manage.py", "migrate", "--noinput"]);
    docker_ok(&args);
    let media = format!("type=volume,source={}-media,target=/app/media", s.prefix);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8000");
    let mut web = env.clone();
    web.extend_from_slice(&["--mount", &media, "-p", &publish]);
    s.run("web", "web", &web, app, &[]);
    let mut worker = env.clone();
    worker.extend_from_slice(&["--mount", &media]);
    s.run(
        "worker",
        "worker",
        &worker,
        app,
        &[
            "celery",
            "-A",
            "app",
            "worker",
            "-l",
            "info",
            "--concurrency",
            "2",
        ],
    );
    s.run(
        "beat",
        "beat",
        &env,
        app,
        &[
            "celery",
            "-A",
            "app",
            "beat",
            "-l",
            "info",
            "-s",
            "/tmp/celerybeat-schedule",
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the web's health", || {
        http("GET", &format!("{base}/health"), None).0 == 200
    });
    assert_eq!(json("GET", &format!("{base}/health"))["version"], "t1");

    for _ in 0..5 {
        json("POST", &format!("{base}/jobs?work_ms=100"));
    }
    let (code, _) = http("PUT", &format!("{base}/media/report.txt"), Some(b"numbers"));
    assert_eq!(code, 201);
    json("POST", &format!("{base}/media/report.txt/check"));
    wait_for("the worker to finish 5 jobs", || {
        json("GET", &format!("{base}/jobs/stats"))["done"] == 5
    });
    let stats = json("GET", &format!("{base}/jobs/stats"));
    assert_eq!(stats["ran_twice"], 0, "{stats}");
    assert_eq!(stats["done_by"]["t1"], 5, "{stats}");
    wait_for("the worker to read the upload", || {
        json("GET", &format!("{base}/media-checks"))["checks"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    });
    let checks = json("GET", &format!("{base}/media-checks"));
    assert_eq!(checks["checks"][0]["size"], 7, "{checks}");
    assert_eq!(
        http("GET", &format!("{base}/media/report.txt"), None),
        (200, b"numbers".to_vec())
    );
    wait_for("three beat ticks", || {
        json("GET", &format!("{base}/ticks"))["ticks"]
            .as_array()
            .is_some_and(|t| t.len() >= 3)
    });
    // One beat: consecutive ticks are about an interval (1 s) apart, never two for one tick.
    let ticks = json("GET", &format!("{base}/ticks"));
    let sent: Vec<f64> = ticks["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sent_at"].as_f64().unwrap())
        .collect();
    for w in sent.windows(2) {
        assert!(
            w[1] - w[0] > 0.5,
            "two ticks {:.3} s apart: {ticks}",
            w[1] - w[0]
        );
    }
    drop(s);
}
