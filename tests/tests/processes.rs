//! T50 for the processes around the web, on real Docker with the Django + Celery example: the
//! services start once (`services up` twice changes nothing), then the process planner moves the
//! worker and beat v1 -> v2, a bad v3 whose worker crashes is reverted (every process back on v2),
//! and a rollback moves them to v1, while tasks are enqueued continuously. Required: every task
//! done (none lost), beat never fired twice for one tick, every process on one version after each
//! step, a media file uploaded before the deploys readable by the worker after each of them.
//!
//! The web process here is a producer container the test owns (the planner's web slot gets the
//! strategy's steps in a real deploy; wiring that into `davit deploy` is not done yet).

use davit_config::{AppSet, Config, Resolve};
use davit_core::Plan;
use davit_deploy::processes::{self, ProcObserved, ProcRelease};
use davit_deploy::services;
use davit_exec::runner::Quiet;
use davit_exec::{Local, run_plan};
use davit_tests::{django_celery_images, free_port, repo_root};
use std::path::PathBuf;
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

fn curl(method: &str, url: &str, data: Option<&str>) -> Option<String> {
    let mut c = Command::new("curl");
    c.args(["-sf", "--max-time", "10", "-X", method, url]);
    if let Some(d) = data {
        c.args(["--data-binary", d]);
    }
    let o = c.output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

fn json(url: &str) -> serde_json::Value {
    serde_json::from_str(&curl("GET", url, None).unwrap_or_else(|| panic!("GET {url} failed")))
        .unwrap()
}

/// Everything the test made (by the unique app label and name prefix), removed on drop.
struct Cleanup {
    app: String,
    volumes: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (_, ids) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=davit.app={}", self.app),
        ]);
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        docker(&["rm", "-f", "-v", &format!("{}-producer", self.app)]);
        for v in &self.volumes {
            docker(&["volume", "rm", v]);
        }
        docker(&["network", "rm", &self.network]);
    }
}

struct World {
    app: String,
    set: AppSet,
    dir: PathBuf,
    image: String,
}

impl World {
    fn env_file(&self, version: &str) -> PathBuf {
        let p = self.dir.join(format!("{version}.env"));
        std::fs::write(
            &p,
            format!(
                "DATABASE_URL=postgresql://app:{PW}@postgres:5432/app\nREDIS_URL=redis://redis:6379/0\nDAVIT_VERSION={version}\nBEAT_INTERVAL=1\n"
            ),
        )
        .unwrap();
        p
    }

    async fn observe(&self) -> ProcObserved {
        processes::observe(&Local::new(), &self.app, "production", &self.set.network)
            .await
            .unwrap()
    }

    /// Move the worker and beat to `id`/`version`; Err when the plan failed (and was undone).
    async fn deploy(&self, set: &AppSet, id: &str, version: &str) -> Result<(), String> {
        let env_file = self.env_file(version);
        let rel = ProcRelease {
            app: &self.app,
            environment: "production",
            id,
            version,
            image: &self.image,
            env_file: &env_file,
        };
        let seen = self.observe().await;
        let mut plan = Plan::new(format!("processes to {version}"));
        processes::plan_release(&mut plan, set, &rel, &seen, |_| {});
        processes::plan_cleanup(&mut plan, &rel, &seen, set);
        run_plan(&Local::new(), &plan, &Quiet)
            .await
            .map_err(|e| e.to_string())?;
        let gaps = processes::singleton_gaps(&Local::new(), set, &rel, &seen).await;
        for (p, g) in gaps {
            eprintln!("{p} was not running for {:.1}s", g.as_secs_f64());
        }
        Ok(())
    }

    async fn versions(&self) -> Vec<(String, String, usize)> {
        processes::versions(&self.observe().await)
    }
}

fn all_on(v: &[(String, String, usize)], version: &str) {
    assert_eq!(
        v,
        &[
            ("celery-beat".to_string(), version.to_string(), 1),
            ("celery-worker".to_string(), version.to_string(), 1)
        ],
        "not every process on {version}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_worker_and_beat_move_together_and_lose_no_task() {
    let Some([image, _, _]) = django_celery_images("test") else {
        return;
    };

    // The example's own config and compose file, under an app name only this test uses.
    let app = format!("t50p{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/django-celery");
    std::fs::copy(
        example.join("docker-compose.prod.yml"),
        dir.path().join("docker-compose.prod.yml"),
    )
    .unwrap();
    let toml = std::fs::read_to_string(example.join("davit.toml"))
        .unwrap()
        .replace("name = \"tasks\"", &format!("name = \"{app}\""));
    std::fs::write(dir.path().join("davit.toml"), toml).unwrap();
    let cfg = Config::load(&dir.path().join("davit.toml")).unwrap();
    let lookup = |k: &str| (k == "POSTGRES_PASSWORD").then(|| PW.to_string());
    let set = cfg
        .app_set(&Resolve {
            env_name: "production",
            lookup: &lookup,
        })
        .unwrap();
    let _cleanup = Cleanup {
        app: app.clone(),
        volumes: set.volumes.clone(),
        network: set.network.clone(),
    };
    let w = World {
        app: app.clone(),
        set: set.clone(),
        dir: dir.path().to_path_buf(),
        image: image.clone(),
    };
    let local = Local::new();
    let place = services::Place {
        app: &app,
        environment: "production",
        state_dir: dir.path(),
    };

    // Services: up, then up again changes nothing.
    let mut plan = Plan::new("services up");
    services::plan_up(&mut plan, &set, place, &[], false, &lookup).unwrap();
    run_plan(&local, &plan, &Quiet).await.unwrap();
    let seen = services::observe(&local, &app, "production").await.unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.running), "{seen:?}");
    let mut again = Plan::new("services up");
    services::plan_up(&mut again, &set, place, &seen, true, &lookup).unwrap();
    assert!(
        !again.render().contains("docker run") && !again.render().contains("docker start"),
        "a running service would be touched:\n{}",
        again.render()
    );

    // Migrations, then the producer (a web container the test owns) on the network.
    let env0 = w.env_file("v0");
    let env0 = env0.display().to_string();
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "--network",
        &set.network,
        "--env-file",
        &env0,
        &image,
        "python3",
        "manage.py",
        "migrate",
        "--noinput",
    ]);
    assert!(ok, "{out}");
    let port = free_port();
    let media = format!("type=volume,source={},target=/app/media", set.volumes[0]);
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &format!("{app}-producer"),
        "--network",
        &set.network,
        "--env-file",
        &env0,
        "--mount",
        &media,
        "-p",
        &format!("127.0.0.1:{port}:8000"),
        &image,
    ]);
    assert!(ok, "{out}");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while curl("GET", &format!("{base}/health"), None).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "producer never healthy"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    w.deploy(&set, "r1", "v1").await.unwrap();
    all_on(&w.versions().await, "v1");
    assert!(
        curl(
            "PUT",
            &format!("{base}/media/before.txt"),
            Some("uploaded before")
        )
        .is_some()
    );

    // Tasks enqueued continuously (each works 0.6 s, so some run while the old worker drains).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU32::new(0));
    let producer = {
        let (stop, sent, base) = (stop.clone(), sent.clone(), base.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(600) {
                if curl("POST", &format!("{base}/jobs?work_ms=600"), None).is_some() {
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                // 2.5 tasks/s of 0.6 s each: below what one worker (concurrency 2) does, so the
                // queue stays short and the checks below are not stuck behind a backlog.
                std::thread::sleep(Duration::from_millis(400));
            }
        })
    };

    let check_media = |who: &str| {
        let before = json(&format!("{base}/media-checks"))["checks"]
            .as_array()
            .unwrap()
            .len();
        curl("POST", &format!("{base}/media/before.txt/check"), None).unwrap();
        let start = Instant::now();
        loop {
            let checks = json(&format!("{base}/media-checks"));
            let list = checks["checks"].as_array().unwrap();
            if list.len() > before {
                let last = &list[list.len() - 1];
                assert_eq!(last["size"], 15, "{checks}");
                assert_eq!(last["checked_by"], who, "{checks}");
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the {who} worker never read the upload"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    std::thread::sleep(Duration::from_secs(3));
    w.deploy(&set, "r2", "v2").await.unwrap();
    all_on(&w.versions().await, "v2");
    check_media("v2");

    // A bad v3: its worker crashes at start. The deploy fails and every process is back on v2.
    let mut bad = set.clone();
    for p in bad
        .processes
        .iter_mut()
        .filter(|p| p.name == "celery-worker")
    {
        p.command = Some(
            ["celery", "-A", "no_such_app", "worker"]
                .map(String::from)
                .to_vec(),
        );
    }
    let e = w.deploy(&bad, "r3", "v3").await.unwrap_err();
    assert!(e.contains("stopped or restarted"), "{e}");
    all_on(&w.versions().await, "v2");
    let seen = w.observe().await;
    assert!(
        !seen.containers.iter().any(|c| c.release == "r3"),
        "a v3 container is left: {seen:?}"
    );

    // Rollback: the same move to the recorded v1.
    std::thread::sleep(Duration::from_secs(3));
    w.deploy(&set, "r1", "v1").await.unwrap();
    all_on(&w.versions().await, "v1");
    check_media("v1");

    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent > 10, "only {sent} tasks were enqueued");
    let start = Instant::now();
    loop {
        let stats = json(&format!("{base}/jobs/stats"));
        if stats["done"] == stats["total"] {
            assert_eq!(stats["total"], sent, "{stats}");
            eprintln!("tasks: {stats}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "tasks lost: {stats} (sent {sent})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Beat never fired twice for one tick (interval 1 s), across every move.
    let ticks = json(&format!("{base}/ticks"));
    let list = ticks["ticks"].as_array().unwrap();
    assert!(list.len() > 10, "{ticks}");
    let sent_at: Vec<f64> = list
        .iter()
        .map(|t| t["sent_at"].as_f64().unwrap())
        .collect();
    for pair in sent_at.windows(2) {
        assert!(
            pair[1] - pair[0] > 0.5,
            "two ticks {:.3}s apart: two schedulers ran at once",
            pair[1] - pair[0]
        );
    }
}
