//! `davit-bench stack`: the whole Django + Celery example (examples/django-celery: web, Celery
//! worker, Celery beat, PostgreSQL, Redis, a media volume) moved v1 -> v2 -> v1 under load, by
//! davit and by what those teams run today, `docker-compose -f docker-compose.prod.yml up -d`
//! with another `APP_VERSION`.
//!
//! Two kinds of loss are counted, because a stack can lose work without failing a request: the
//! web requests that failed (the load generator's records, as in the other scenarios), and the
//! tasks enqueued through the web that no worker ever finished (`/jobs/stats` read back from
//! PostgreSQL once the queue has drained). The times are wall times of the commands a person
//! runs (`davit deploy`, `davit rollback`, `docker-compose up -d` plus the wait until the new
//! version answers), so they include davit's migration hook and every process's readiness.

use crate::load::{Record, now_us};
use crate::sandbox::{Settings, free_port};
use crate::scenarios::{Ctx, LoadProcess};
use anyhow::Context;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const REPO: &str = "davit-examples/django-celery";
const V1: &str = "bench-v1";
const V2: &str = "bench-v2";
/// Not a secret: a throwaway database that lives for one benchmark run.
const PW: &str = "davit-bench-stack";

/// What the command line chose.
#[derive(Debug, Clone)]
pub struct StackArgs {
    pub cycles: u32,
    pub rate: f64,
    pub connections: u16,
    /// One task enqueued through the web every this many milliseconds.
    pub task_every: Duration,
    pub davit: bool,
    pub compose: bool,
}

/// One side's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StackOutcome {
    pub name: String,
    /// Cycles completed.
    pub cycles: u32,
    /// Why the cycles stopped early (the failed command's last line), if they did.
    pub stopped: Option<String>,
    /// Wall time of each deploy v1 -> v2 until v2 answered.
    pub deploy_secs: Vec<f64>,
    /// Wall time of each rollback v2 -> v1 until v1 answered.
    pub rollback_secs: Vec<f64>,
    /// From each deploy's start to the first load request v2 answered: when the web moved, which
    /// can be long before the command returns (it also waits for the other processes).
    pub deploy_web_secs: Vec<f64>,
    /// The same for each rollback and v1.
    pub rollback_web_secs: Vec<f64>,
    pub requests: usize,
    pub failed_requests: usize,
    /// Failed requests in each cycle (deploy then rollback).
    pub failed_per_cycle: Vec<usize>,
    /// Failed requests by what went wrong (`HTTP 502`, `connection refused`, ...).
    pub failed_by: std::collections::BTreeMap<String, usize>,
    /// Tasks the web accepted (201) while the cycles ran.
    pub tasks_enqueued: u64,
    /// POST /jobs that failed (counted in no other figure).
    pub enqueue_failed: u64,
    /// Jobs in the database that no worker finished, 150 s after the last cycle.
    pub tasks_lost: u64,
    /// Jobs that ran more than once (a task re-delivered after its worker was stopped mid-task).
    pub tasks_ran_twice: u64,
    /// From the end of the last cycle until every job was done (or [`DRAIN`] passed).
    pub drain_secs: f64,
}

pub async fn run(a: StackArgs) -> anyhow::Result<Vec<StackOutcome>> {
    let root = davit::demo::repo_root().context(
        "run davit-bench stack from the davit repository (it needs examples/django-celery)",
    )?;
    images(&root)?;
    let mut out = Vec::new();
    if a.davit {
        out.push(side(&a, &mut DavitStack::new(&root)?).await?);
    }
    if a.compose {
        out.push(side(&a, &mut ComposeStack::new(&root)?).await?);
    }
    Ok(out)
}

/// The example's images (build.sh), tagged as the two versions the cycles alternate between.
fn images(root: &Path) -> anyhow::Result<()> {
    eprintln!("davit-bench stack: building the example's images (examples/django-celery/build.sh)");
    let o = Command::new(root.join("examples/django-celery/build.sh"))
        .arg(V1)
        .output()
        .context("running examples/django-celery/build.sh")?;
    anyhow::ensure!(
        o.status.success(),
        "examples/django-celery/build.sh failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    sh(
        "docker",
        &["tag", &format!("{REPO}:{V1}"), &format!("{REPO}:{V2}")],
    )?;
    Ok(())
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    sh_env(program, args, &[], None)
}

fn sh_env(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    cwd: Option<&Path>,
) -> anyhow::Result<String> {
    let mut c = Command::new(program);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let o = c
        .output()
        .with_context(|| format!("running {program} {args:?}"))?;
    anyhow::ensure!(
        o.status.success(),
        "{program} {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).to_string())
}

/// One way of running the stack.
trait Stack {
    fn name(&self) -> String;
    /// Where the web answers (the proxy for davit, the published port for compose).
    fn port(&self) -> u16;
    /// Services up, migrations, v1 of every process.
    fn start(&mut self) -> anyhow::Result<()>;
    fn deploy(&mut self, version: &str) -> anyhow::Result<()>;
    fn rollback(&mut self, version: &str) -> anyhow::Result<()>;
}

async fn side(a: &StackArgs, s: &mut dyn Stack) -> anyhow::Result<StackOutcome> {
    eprintln!("davit-bench stack: {}: starting v1", s.name());
    s.start()?;
    wait_version(s.port(), V1)?;
    let ctx = load_ctx(a);
    let load = LoadProcess::start(&ctx, &format!("http://127.0.0.1:{}/health", s.port())).await?;
    let tasks = Enqueuer::start(s.port(), a.task_every);
    let mut deploy_secs = Vec::new();
    let mut rollback_secs = Vec::new();
    let mut cycle_starts = Vec::new();
    let mut steps: Vec<(u64, &str)> = Vec::new();
    let run = (|| {
        for i in 0..a.cycles {
            cycle_starts.push(now_us());
            steps.push((now_us(), V2));
            let t = Instant::now();
            s.deploy(V2)?;
            wait_version(s.port(), V2)?;
            deploy_secs.push(t.elapsed().as_secs_f64());
            std::thread::sleep(ctx.rest);
            steps.push((now_us(), V1));
            let t = Instant::now();
            s.rollback(V1)?;
            wait_version(s.port(), V1)?;
            rollback_secs.push(t.elapsed().as_secs_f64());
            std::thread::sleep(ctx.rest);
            eprintln!("davit-bench stack: {}: {}/{}", s.name(), i + 1, a.cycles);
        }
        anyhow::Ok(())
    })();
    let (enqueued, enqueue_failed) = tasks.stop();
    let records = load.finish(&ctx, &format!("stack-{}", s.name())).await?;
    // A step that failed ends this side's cycles but not its figures: what was lost up to then,
    // and the queue drained, are still measured (a refused deploy is a result too).
    let stopped = run.err().map(|e| {
        let text = e.to_string();
        eprintln!("davit-bench stack: {}: stopped: {text}", s.name());
        // The command's own verdict (`error: ...`), else the first line.
        text.lines()
            .rev()
            .find(|l| l.starts_with("error: "))
            .or_else(|| text.lines().next())
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
    });
    eprintln!(
        "davit-bench stack: {}: waiting for the queue to drain",
        s.name()
    );
    let (lost, twice, drain_secs) = drain(s.port())?;
    let web = web_moved(&records, &steps);
    let pick = |v: &str| -> Vec<f64> {
        steps
            .iter()
            .zip(&web)
            .filter(|((_, to), _)| *to == v)
            .filter_map(|(_, w)| *w)
            .collect()
    };
    Ok(StackOutcome {
        name: s.name(),
        cycles: deploy_secs.len().min(rollback_secs.len()) as u32,
        stopped,
        deploy_secs,
        rollback_secs,
        deploy_web_secs: pick(V2),
        rollback_web_secs: pick(V1),
        requests: records.len(),
        failed_requests: records.iter().filter(|r| !r.ok()).count(),
        failed_per_cycle: per_cycle(&records, &cycle_starts),
        failed_by: failure_kinds(&records),
        tasks_enqueued: enqueued,
        enqueue_failed,
        tasks_lost: lost,
        tasks_ran_twice: twice,
        drain_secs,
    })
}

fn load_ctx(a: &StackArgs) -> Ctx {
    Ctx {
        cycles: a.cycles,
        baseline_cycles: a.cycles,
        detections: 0,
        bad_after_secs: 0.0,
        rate: a.rate,
        connections: a.connections,
        rest: Duration::from_secs(2),
        idle_check: true,
        records: None,
        settings: Settings {
            health_interval_ms: 250,
            health_consecutive: 3,
            verify_interval_ms: 500,
            failure_limit: 3,
            proxy_snippet: None,
        },
        verbose: false,
        // The stack scenario runs no verify: neither the noisy watch nor traffic limits apply.
        noisy_watch_secs: 0,
        traffic_limits: String::new(),
    }
}

/// Failed requests due in each cycle (a cycle runs until the next one starts).
fn per_cycle(records: &[Record], starts: &[u64]) -> Vec<usize> {
    let mut out = vec![0; starts.len()];
    for r in records.iter().filter(|r| !r.ok()) {
        if let Some(i) = starts.iter().rposition(|&s| s <= r.due_us) {
            out[i] += 1;
        }
    }
    out
}

/// For each step (start, version it moves to): seconds until the load first got a 2xx from
/// that version.
fn web_moved(records: &[Record], steps: &[(u64, &str)]) -> Vec<Option<f64>> {
    steps
        .iter()
        .map(|&(start, to)| {
            records
                .iter()
                .filter(|r| r.due_us >= start && r.ok() && r.version.as_deref() == Some(to))
                .map(|r| r.done_us())
                .min()
                .map(|t| (t - start) as f64 / 1e6)
        })
        .collect()
}

/// How the failed requests failed: the HTTP status, or the connection error.
fn failure_kinds(records: &[Record]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in records.iter().filter(|r| !r.ok()) {
        let kind = match (&r.error, r.status) {
            (_, s) if s != 0 => format!("HTTP {s}"),
            (Some(e), _) => e.clone(),
            (None, _) => "no answer".into(),
        };
        *m.entry(kind).or_insert(0) += 1;
    }
    m
}

/// One HTTP/1.0 request to loopback: (status, body, X-App-Version).
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String, String)> {
    let addr = format!("127.0.0.1:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let version = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-app-version"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    Some((status, body.to_string(), version))
}

/// Until `version` answers `/health` with 200 (3 min at most: a cold start migrates).
fn wait_version(port: u16, version: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some((200, _, v)) = http(port, "GET", "/health")
            && v == version
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{version} did not answer /health on port {port} within 3 min"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Enqueues a short task through the web at a fixed interval, on its own thread.
struct Enqueuer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Enqueuer {
    fn start(port: u16, every: Duration) -> Enqueuer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match http(port, "POST", "/jobs?work_ms=100") {
                    Some((201, _, _)) => o.fetch_add(1, Ordering::SeqCst),
                    _ => f.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(every);
            }
        });
        Enqueuer {
            stop,
            ok,
            failed,
            thread,
        }
    }

    /// (accepted, failed).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// Long enough for Redis to hand an unacknowledged task to another worker (the example's
/// `visibility_timeout` is 120 s): a task not done by then is lost, not late.
const DRAIN: Duration = Duration::from_secs(150);

/// Wait ([`DRAIN`] at most) until every job in the database is done: (never done, ran twice,
/// seconds it took).
fn drain(port: u16) -> anyhow::Result<(u64, u64, f64)> {
    let start = Instant::now();
    loop {
        let (code, body, _) = http(port, "GET", "/jobs/stats").context("GET /jobs/stats failed")?;
        anyhow::ensure!(code == 200, "GET /jobs/stats answered {code}");
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let total = v["total"].as_u64().unwrap_or(0);
        let done = v["done"].as_u64().unwrap_or(0);
        let twice = v["ran_twice"].as_u64().unwrap_or(0);
        if done >= total || start.elapsed() > DRAIN {
            return Ok((
                total - done.min(total),
                twice,
                start.elapsed().as_secs_f64(),
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The stack under davit: the example's davit.toml and compose file in a scratch folder, with
/// this run's app name, ports and state folder; driven through the `davit` binary.
struct DavitStack {
    app: String,
    dir: tempfile::TempDir,
    davit: PathBuf,
    public: u16,
}

impl DavitStack {
    fn new(root: &Path) -> anyhow::Result<DavitStack> {
        let davit = std::env::current_exe()?.with_file_name("davit");
        anyhow::ensure!(
            davit.is_file(),
            "{} is missing: build it with the benchmark (cargo build --release -p davit -p davit-bench)",
            davit.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("davit-bench-stack-")
            .tempdir()?;
        let app = format!("benchstack{}", std::process::id());
        let example = root.join("examples/django-celery");
        std::fs::copy(
            example.join("docker-compose.prod.yml"),
            dir.path().join("docker-compose.prod.yml"),
        )?;
        let public = free_port()?;
        let toml = std::fs::read_to_string(example.join("davit.toml"))?
            .replace("name = \"tasks\"", &format!("name = \"{app}\""))
            .replace(
                "ports = { public = 28180, blue = 28181, green = 28182 }",
                &format!(
                    "ports = {{ public = {public}, blue = {}, green = {} }}",
                    free_port()?,
                    free_port()?
                ),
            );
        anyhow::ensure!(
            toml.contains(&app) && toml.contains(&format!("public = {public}")),
            "examples/django-celery/davit.toml changed shape: the benchmark cannot set its app name and ports"
        );
        let toml = format!(
            "state_dir = \"{}\"\n{toml}",
            dir.path().join("state").display()
        );
        std::fs::write(dir.path().join("davit.toml"), toml)?;
        Ok(DavitStack {
            app,
            dir,
            davit,
            public,
        })
    }

    fn davit(&self, args: &[&str]) -> anyhow::Result<()> {
        let config = self.dir.path().join("davit.toml");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.to_str().unwrap_or_default()]);
        sh_env(
            self.davit.to_str().unwrap_or("davit"),
            &all,
            &[
                ("POSTGRES_PASSWORD", PW.into()),
                (
                    "DATABASE_URL",
                    format!("postgresql://app:{PW}@postgres:5432/app"),
                ),
            ],
            Some(self.dir.path()),
        )
        .map(drop)
    }
}

impl Stack for DavitStack {
    fn name(&self) -> String {
        "davit".into()
    }
    fn port(&self) -> u16 {
        self.public
    }
    fn start(&mut self) -> anyhow::Result<()> {
        self.davit(&["services", "up", "production"])?;
        self.davit(&["deploy", "production", "--version", V1])
    }
    fn deploy(&mut self, version: &str) -> anyhow::Result<()> {
        self.davit(&["deploy", "production", "--version", version])
    }
    fn rollback(&mut self, version: &str) -> anyhow::Result<()> {
        self.davit(&[
            "rollback",
            "production",
            "--to",
            version,
            "--reason",
            "davit-bench",
        ])
    }
}

impl Drop for DavitStack {
    fn drop(&mut self) {
        // Everything of this run's app: its containers (by label), its proxy, then the network
        // and volumes named after it (davit itself never deletes volumes).
        let filter = format!("label=davit.app={}", self.app);
        if let Ok(ids) = sh("docker", &["ps", "-aq", "--filter", &filter]) {
            for id in ids.split_whitespace() {
                let _ = sh("docker", &["rm", "-f", "-v", id]);
            }
        }
        let pid = self
            .dir
            .path()
            .join(format!("state/{}-production/nginx/nginx.pid", self.app));
        if let Ok(p) = std::fs::read_to_string(pid) {
            let _ = Command::new("kill").args(["-QUIT", p.trim()]).output();
        }
        let prefix = format!("{}-production", self.app);
        if let Ok(vols) = sh(
            "docker",
            &["volume", "ls", "-q", "--filter", &format!("name={prefix}_")],
        ) {
            for v in vols.split_whitespace().filter(|v| v.starts_with(&prefix)) {
                let _ = sh("docker", &["volume", "rm", v]);
            }
        }
        let _ = sh("docker", &["network", "rm", &prefix]);
    }
}

/// The stack as teams run it today: `docker-compose -f docker-compose.prod.yml up -d` in the
/// example's folder, a version change being `APP_VERSION=... up -d` (which recreates web,
/// worker and beat), migrations by `run --rm backend`.
struct ComposeStack {
    project: String,
    file: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl ComposeStack {
    fn new(root: &Path) -> anyhow::Result<ComposeStack> {
        let dir = root.join("examples/django-celery");
        Ok(ComposeStack {
            project: format!("benchstackcompose{}", std::process::id()),
            file: dir.join("docker-compose.prod.yml"),
            dir,
            port: free_port()?,
        })
    }

    fn compose(&self, version: &str, args: &[&str]) -> anyhow::Result<String> {
        let file = self.file.to_str().unwrap_or_default();
        let mut all = vec!["-p", &self.project, "-f", file];
        all.extend_from_slice(args);
        sh_env(
            "docker-compose",
            &all,
            &[
                ("POSTGRES_PASSWORD", PW.into()),
                ("APP_VERSION", version.into()),
                ("APP_PORT", self.port.to_string()),
            ],
            Some(&self.dir),
        )
    }
}

impl Stack for ComposeStack {
    fn name(&self) -> String {
        "docker-compose up -d".into()
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn start(&mut self) -> anyhow::Result<()> {
        self.compose(V1, &["up", "-d", "postgres", "redis"])?;
        // PostgreSQL takes a moment to accept connections the first time.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.compose(
                V1,
                &[
                    "run",
                    "--rm",
                    "-T",
                    "backend",
                    "python3",
                    "manage.py",
                    "migrate",
                    "--noinput",
                ],
            ) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
        self.compose(V1, &["up", "-d"]).map(drop)
    }
    fn deploy(&mut self, version: &str) -> anyhow::Result<()> {
        self.compose(version, &["up", "-d"]).map(drop)
    }
    fn rollback(&mut self, version: &str) -> anyhow::Result<()> {
        self.compose(version, &["up", "-d"]).map(drop)
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        // This project's containers, network and volumes: all created by this run.
        let _ = self.compose(V1, &["down", "-v", "--remove-orphans"]);
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "-".into())
}

/// The markdown table docs/BENCHMARKS.md publishes.
pub fn markdown(outcomes: &[StackOutcome], a: &StackArgs) -> String {
    let mut s = format!(
        "{} cycles (deploy v1 -> v2, roll back to v1) per row; load {} req/s of `GET /health` over {} connections; one task enqueued every {} ms.\n\n",
        a.cycles,
        a.rate,
        a.connections,
        a.task_every.as_millis()
    );
    s.push_str("| how | deploy: web moved / command done (median) | rollback: web moved / command done (median) | deploy max | rollback max | failed requests (total / worst cycle) | tasks enqueued | enqueues failed | tasks lost | ran twice | queue drained after |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        s.push_str(&format!(
            "| {} | {} / {} | {} / {} | {} | {} | {} of {} / {} | {} | {} | {} | {} | {} |\n",
            o.name,
            secs(median(&o.deploy_web_secs)),
            secs(median(&o.deploy_secs)),
            secs(median(&o.rollback_web_secs)),
            secs(median(&o.rollback_secs)),
            secs(max(&o.deploy_secs)),
            secs(max(&o.rollback_secs)),
            o.failed_requests,
            o.requests,
            o.failed_per_cycle.iter().max().unwrap_or(&0),
            o.tasks_enqueued,
            o.enqueue_failed,
            o.tasks_lost,
            o.tasks_ran_twice,
            secs(Some(o.drain_secs)),
        ));
    }
    for o in outcomes {
        if let Some(why) = &o.stopped {
            s.push_str(&format!(
                "\n{} stopped after {} of {} cycles: {why}",
                o.name, o.cycles, a.cycles
            ));
        }
    }
    for o in outcomes.iter().filter(|o| !o.failed_by.is_empty()) {
        let kinds: Vec<String> = o
            .failed_by
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        s.push_str(&format!(
            "\n{} failed requests: {}.",
            o.name,
            kinds.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(due_us: u64, status: u16) -> Record {
        Record {
            due_us,
            sent_us: due_us,
            latency_us: 1,
            status,
            version: None,
            error: None,
            conn: 0,
            reopened: false,
        }
    }

    #[test]
    fn failures_count_in_the_cycle_they_were_due_in() {
        let r = [
            rec(5, 0),
            rec(10, 502),
            rec(11, 200),
            rec(25, 0),
            rec(30, 503),
        ];
        assert_eq!(per_cycle(&r, &[10, 20]), vec![1, 2]);
    }

    #[test]
    fn the_web_moved_at_the_first_answer_from_the_new_version() {
        let mut a = rec(10, 200);
        a.version = Some("v1".into());
        let mut b = rec(20, 200);
        b.version = Some("v2".into());
        let mut c = rec(30, 200);
        c.version = Some("v2".into());
        let out = web_moved(&[a, b, c], &[(15, "v2"), (25, "v1")]);
        assert_eq!(out, vec![Some(6.0 / 1e6), None]);
    }

    #[test]
    fn median_and_max_of_the_times() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(max(&[3.0, 1.0, 2.0]), Some(3.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
    }
}
