//! The swarm strategy on a real three-node Docker Swarm: three simulated servers (network
//! namespace, own dockerd, sshd; see `davit_tests::hosts`) that form one swarm over their own
//! addresses, driven by the `davit` binary over SSH to the manager, as a workflow would.
//!
//! No routing mesh (this machine kind has no IPVS): the app runs on the stack's overlay with
//! dnsrr endpoints and a global HAProxy publishes the port on every node in host mode, so each
//! node answers for the whole service; requests from one node's proxy reach tasks on the others
//! over VXLAN between the namespaces.
//!
//! Each test forms a swarm of its own: T52 cuts a node off, which the others must not see, and a
//! swarm shared across tests could not be removed when the test process ends.

use davit_tests::hosts::SimHosts;
use davit_tests::*;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY_ENV: &str = "DAVIT_TEST_SSH_KEY";
const KH_ENV: &str = "DAVIT_TEST_KNOWN_HOSTS";
const PORT: u16 = 18080;
/// The value of the app's one secret (`secret_env`), given to davit in its environment as a
/// workflow would; T33 looks for it where it must not be.
const CANARY: &str = "canary-swarm-8c41d7e2f5";

/// A three-node swarm with the demo images loaded and a davit.toml whose production
/// environment is the swarm strategy on it.
struct Swarm {
    hosts: SimHosts,
    dir: tempfile::TempDir,
    app: String,
    repo: String,
}

impl Swarm {
    fn start(test: &str, app: &str, images: &[(&str, &[(&str, &str)])]) -> Option<Swarm> {
        if !require_all(&["docker", "curl", "debootstrap"]) {
            return None;
        }
        let proxy = swarm_proxy_image();
        let repo = format!("davit-test-{app}");
        for (version, faults) in images {
            demo_image(&repo, version, faults);
        }
        let hosts = SimHosts::start_or_skip(test, 3)?;
        hosts.form_swarm();
        hosts.load_image(&proxy);
        for (version, _) in images {
            hosts.load_image(&format!("{repo}:{version}"));
        }
        let s = Swarm {
            hosts,
            dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
            app: app.into(),
            repo,
        };
        s.configure(1, 3);
        Some(s)
    }

    /// (Re)write davit.toml: `replicas` tasks, Swarm watching each new one `monitor` seconds.
    fn configure(&self, replicas: u32, monitor: u32) {
        let text = format!(
            r#"
[app]
name = "{app}"
port = 8000
secret_env = ["DB_PASSWORD"]
[image]
name = "{repo}"
pull = "never"
[health]
interval_ms = 200
consecutive = 2
deadline_secs = 60
[environments.production]
strategy = "swarm"
host = "{manager}"
[environments.production.ssh]
user = "root"
key_env = "{KEY_ENV}"
known_hosts_env = "{KH_ENV}"
connect_timeout_secs = 5
[environments.production.swarm]
published_port = {PORT}
replicas = {replicas}
parallelism = 1
monitor_secs = {monitor}
update_timeout_secs = 240
proxy_image = "{proxy}"
health_cmd = ["/davit-demo-app", "health"]
"#,
            app = self.app,
            repo = self.repo,
            manager = self.hosts.hosts[0].addr,
            proxy = swarm_proxy_image(),
        );
        std::fs::write(self.config(), text).unwrap();
    }

    fn config(&self) -> String {
        self.dir.path().join("davit.toml").display().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("davit"));
        c.args(args)
            .args(["--config", &self.config()])
            .env(KEY_ENV, &self.hosts.client_key)
            .env(KH_ENV, &self.hosts.known_hosts)
            .env("DB_PASSWORD", CANARY)
            .env_remove("GITHUB_TOKEN");
        c
    }

    fn davit(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn deploy(&self, version: &str) -> String {
        ok(
            &self.davit(&["deploy", "production", "--version", version]),
            version,
        )
    }

    /// The version node `i`'s proxy answers with, or what went wrong.
    fn serving(&self, i: usize) -> String {
        let out = self.hosts.exec(
            i,
            &format!("curl -s -m 5 -o /dev/null -D - http://127.0.0.1:{PORT}/"),
        );
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        head.lines()
            .find_map(|l| l.strip_prefix("x-app-version:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| format!("down ({})", String::from_utf8_lossy(&out.stderr)))
    }

    /// Every node's proxy, several requests each (round robin over the tasks): one version.
    fn all_serve(&self, version: &str) {
        for i in 0..self.hosts.hosts.len() {
            for _ in 0..4 {
                assert_eq!(self.serving(i), version, "node {i}");
            }
        }
    }

    /// `node image` of each running task of the app service, as the manager sees them.
    fn tasks(&self) -> Vec<(String, String)> {
        let out = self.hosts.exec(
            0,
            &format!(
                "docker service ps davit-{}-production_app --filter desired-state=running \
                 --format '{{{{.Node}}}} {{{{.Image}}}} {{{{.CurrentState}}}}'",
                self.app
            ),
        );
        let mut v: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" Running "))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let node = w.next()?.to_string();
                let version = w.next()?.rsplit(':').next()?.to_string();
                Some((node, version))
            })
            .collect();
        v.sort();
        v
    }

    fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tasks().into_iter().map(|(_, v)| v).collect();
        v.sort();
        v
    }

    /// `event:version` of the manager's ledger, oldest first.
    fn ledger(&self) -> Vec<String> {
        let out = self.davit(&["releases", "production", "--json"]);
        ok(&out, "releases");
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rows.iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["event"].as_str().unwrap_or("?"),
                    r["version"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// What the load generator saw.
#[derive(Debug, Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first few failures, for the assertion message.
    reasons: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut r = self.reasons.lock().unwrap();
        if r.len() < 10 {
            r.push(why);
        }
    }
}

/// One keep-alive HTTP/1.1 request on `conn` (opened if None); the connection is kept when the
/// server allows it. Any error, short read or non-2xx is a failure: no retries, as a plain
/// client would see it.
async fn one_request(conn: &mut Option<TcpStream>, addr: &str) -> Result<(), String> {
    if conn.is_none() {
        *conn = Some(
            TcpStream::connect((addr, PORT))
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?,
        );
    }
    let stream = conn.as_mut().expect("connected above");
    let result = async {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before a response".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no content-length")?;
        while buf.len() < head_end + length {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err("connection closed in the body".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        Ok(head.contains("connection: close"))
    }
    .await;
    match result {
        Ok(close) => {
            if close {
                *conn = None;
            }
            Ok(())
        }
        Err(e) => {
            *conn = None;
            Err(e)
        }
    }
}

/// Keep-alive clients, one per address in `addrs` (each node's proxy), each sending a request
/// every `every` until `stop` is set, and never past `limit`.
fn start_load(
    addrs: Vec<String>,
    every: Duration,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let started = Instant::now();
    let handles = addrs
        .into_iter()
        .map(|addr| {
            let load = load.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut conn = None;
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if stop.load(Ordering::SeqCst) || started.elapsed() > limit {
                        break;
                    }
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        one_request(&mut conn, &addr),
                    )
                    .await
                    {
                        Ok(Ok(())) => {
                            load.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(e)) => load.fail(e),
                        Err(_) => {
                            conn = None;
                            load.fail("no answer within 5s".into());
                        }
                    }
                }
            })
        })
        .collect();
    (load, handles)
}

/// Run `davit args` while every node's proxy is under constant keep-alive load; returns
/// davit's output and what the clients saw.
fn under_load(s: &Swarm, args: &[&str]) -> (Output, u64, u64, Vec<String>) {
    let addrs: Vec<String> = s.hosts.hosts.iter().map(|h| h.addr.clone()).collect();
    block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let (load, handles) = start_load(
            addrs,
            Duration::from_millis(20),
            Duration::from_secs(300),
            stop.clone(),
        );
        // Every client holds a keep-alive connection to its proxy first.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut cmd = tokio::process::Command::from(s.command(args));
        let out = cmd.output().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.await.unwrap();
        }
        let reasons = load.reasons.lock().unwrap().clone();
        (
            out,
            load.ok.load(Ordering::SeqCst),
            load.failed.load(Ordering::SeqCst),
            reasons,
        )
    })
}

/// 1 replica (served by every node's proxy), then 3, updated start-first under constant load
/// through all three proxies with no failed request; then a rollback to a recorded release (further back than Swarm's previous
/// spec, so davit re-applies that release's stack file), also under load.
#[test]
fn swarm_one_then_three_replicas_over_three_nodes_update_and_rollback_under_load_without_failed_requests()
 {
    let Some(s) = Swarm::start(
        "swarm_one_then_three_replicas_over_three_nodes_update_and_rollback_under_load_without_failed_requests",
        "swarm-load",
        &[("v1", &[]), ("v2", &[]), ("v3", &[])],
    ) else {
        return;
    };
    // One task, on some node; every node's proxy reaches it (over the overlay for two of them).
    s.deploy("v1");
    assert_eq!(s.versions(), vec!["v1"]);
    s.all_serve("v1");

    // Three tasks, one per node, v2 rolled out start-first while clients keep asking.
    s.configure(3, 2);
    let (out, okc, failed, reasons) = under_load(&s, &["deploy", "production", "--version", "v2"]);
    ok(&out, "v2 under load");
    eprintln!("load during the v2 update: {okc} ok, {failed} failed");
    // Start-first places each new task while the old ones still run, so Swarm's spread (fewest
    // tasks of the service per node) may put two on one node; a fresh service spreads evenly
    // (T52's test checks that).
    assert_eq!(s.versions(), vec!["v2", "v2", "v2"], "{:?}", s.tasks());
    assert!(okc > 300, "the load ran through the update: only {okc} ok");
    assert_eq!(failed, 0, "failed requests during the update: {reasons:?}");
    s.all_serve("v2");

    s.deploy("v3");
    s.all_serve("v3");
    // Back to v1: not Swarm's previous spec (v2), so its stack file is applied again.
    let (out, okc, failed, reasons) = under_load(&s, &["rollback", "production", "--to", "v1"]);
    ok(&out, "rollback to v1");
    eprintln!("load during the rollback to v1: {okc} ok, {failed} failed");
    assert_eq!(
        failed, 0,
        "failed requests during the rollback: {reasons:?}"
    );
    // v1's recorded stack file, as it was: one replica.
    assert_eq!(s.versions(), vec!["v1"]);
    s.all_serve("v1");
    assert_eq!(
        s.ledger(),
        vec![
            "deployed:v1",
            "deployed:v2",
            "deployed:v3",
            "rolled_back:v3",
            "restored:v1"
        ]
    );
}

/// T33: a release whose tasks exit at once. Swarm rolls the update back by itself; davit must
/// report a failure (exit 1, naming the rollback), record it, and v1 keeps serving on every
/// node. Also: `--dry-run` shows the plan and changes nothing; the app's secret reaches its
/// containers through the env file the docker client reads, and never argv, a label of the
/// service or its containers, davit's output, the ledger or the stack file.
#[test]
fn t33_swarm_rolls_back_a_bad_release_and_davit_reports_failure() {
    let Some(s) = Swarm::start(
        "t33_swarm_rolls_back_a_bad_release_and_davit_reports_failure",
        "swarm-t33",
        &[("v1", &[]), ("bad", &[("FAULT_CRASH_AFTER_SECS", "0")])],
    ) else {
        return;
    };
    s.configure(2, 2);
    // The first deploy while every process's argv is watched for the secret.
    let argv = ArgvWatch::start();
    let out = s.davit(&["deploy", "production", "--version", "v1"]);
    let leaks = argv.stop();
    let said = ok(&out, "v1") + &String::from_utf8_lossy(&out.stdout);
    assert!(leaks.is_empty(), "the secret was in argv: {leaks:?}");
    assert!(
        !said.contains(CANARY),
        "the secret was in davit's output: {said}"
    );
    assert_eq!(s.versions(), vec!["v1", "v1"]);
    s.secret_reaches_the_app_only();
    // Created fresh, the replicas go one per node.
    let tasks = s.tasks();
    assert_ne!(
        tasks[0].0, tasks[1].0,
        "replicas spread over the nodes: {tasks:?}"
    );

    let dry = s.davit(&["deploy", "production", "--version", "bad", "--dry-run"]);
    let plan =
        String::from_utf8_lossy(&dry.stdout).into_owned() + &String::from_utf8_lossy(&dry.stderr);
    assert!(dry.status.success(), "{plan}");
    assert!(plan.contains("docker stack deploy"), "{plan}");
    assert_eq!(s.versions(), vec!["v1", "v1"], "--dry-run changed nothing");

    let out = s.davit(&["deploy", "production", "--version", "bad"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(s.versions(), vec!["v1", "v1"]);
    s.all_serve("v1");
    assert_eq!(s.ledger(), vec!["deployed:v1", "failed:bad"]);
    s.secret_reaches_the_app_only();
}

/// Samples every process's command line (the sim hosts' processes too: they share the PID
/// namespace) on a thread until stopped, collecting any that holds [`CANARY`].
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<String>, u64)>,
}

impl ArgvWatch {
    fn start() -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut leaks, mut seen) = (Vec::new(), 0u64);
            while !flag.load(Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    seen += 1;
                    let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                    if line.contains(CANARY) && !leaks.contains(&line) {
                        leaks.push(line);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (leaks, seen)
        });
        ArgvWatch { stop, thread }
    }

    /// The command lines that held the secret.
    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let (leaks, seen) = self.thread.join().unwrap();
        // The watch looked: the deploy runs hundreds of processes.
        assert!(seen > 1000, "argv watch read only {seen} command lines");
        leaks
    }
}

impl Swarm {
    /// The secret reached the app's containers (their environment, from the env file the
    /// client read), and is in no label of the service or its containers, in nothing davit
    /// keeps on the manager but the 0600 env files, and not in the ledger.
    fn secret_reaches_the_app_only(&self) {
        let svc = format!("davit-{}-production_app", self.app);
        let labels = self.hosts.exec(
            0,
            &format!(
                "docker service inspect --format '{{{{json .Spec.Labels}}}} {{{{json .Spec.TaskTemplate.ContainerSpec.Labels}}}}' {svc}"
            ),
        );
        assert!(labels.status.success(), "{labels:?}");
        let labels = String::from_utf8_lossy(&labels.stdout).into_owned();
        assert!(labels.contains("davit.release"), "{labels}");
        assert!(
            !labels.contains(CANARY),
            "the secret is in a label: {labels}"
        );
        let mut checked = 0;
        for i in 0..self.hosts.hosts.len() {
            let out = self.hosts.exec(
                i,
                &format!(
                    "for c in $(docker ps -q --filter label=com.docker.swarm.service.name={svc}); do \
                     docker inspect --format '{{{{json .Config.Labels}}}}|{{{{json .Config.Env}}}}' $c; done"
                ),
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let (labels, env) = line.split_once('|').unwrap();
                assert!(
                    !labels.contains(CANARY),
                    "the secret is in a container label: {labels}"
                );
                assert!(
                    env.contains(&format!("DB_PASSWORD={CANARY}")),
                    "the app did not get its secret: {env}"
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "no container of {svc} found");
        let mut files = vec![self.hosts.hosts[0].state_root.clone()];
        let mut env_files = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            if path.file_name().is_some_and(|n| n == "app.env") {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
                assert!(text.contains(CANARY), "{}", path.display());
                env_files += 1;
            } else {
                assert!(
                    !text.contains(CANARY),
                    "the secret is in {}",
                    path.display()
                );
            }
        }
        assert!(
            env_files > 0,
            "no env file under {:?}",
            self.hosts.hosts[0].state_root
        );
    }
}

/// T52: a worker is cut off in the middle of an update. Swarm finishes on what it can reach,
/// but davit sees a node it cannot vouch for: the deploy fails (exit 3) listing each node's
/// state and versions, never a plain success with mixed versions, and the reachable nodes are
/// returned to v1 (davit's undo). Once the node is back, the next deploy converges everywhere.
#[test]
fn t52_swarm_node_cut_off_mid_update_is_reported_per_node_and_undone() {
    let Some(s) = Swarm::start(
        "t52_swarm_node_cut_off_mid_update_is_reported_per_node_and_undone",
        "swarm-t52",
        &[("v1", &[]), ("v2", &[])],
    ) else {
        return;
    };
    s.configure(3, 3);
    s.deploy("v1");
    // Created fresh, the three replicas are spread one per node.
    let tasks = s.tasks();
    let mut nodes: Vec<&String> = tasks.iter().map(|(n, _)| n).collect();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "replicas spread over the nodes: {tasks:?}");
    let cut = 2;
    let cut_name = s.hosts.hosts[cut].name.clone();

    let child = s
        .command(&["deploy", "production", "--version", "v2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Cut the node once the update is under way (a first v2 task runs).
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s.versions().iter().any(|v| v == "v2") {
        assert!(Instant::now() < deadline, "the update never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    s.hosts.cut(cut);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "not a success: {err}");
    assert!(
        err.contains("not every swarm node runs the release"),
        "{err}"
    );
    assert!(
        err.contains(&format!("node {cut_name}: Down")),
        "the cut node is named with its state: {err}"
    );
    for h in &s.hosts.hosts[..cut] {
        assert!(err.contains(&format!("node {}: Ready", h.name)), "{err}");
    }
    // The reachable nodes are back on v1 and serve it.
    for (node, v) in s.tasks() {
        assert_ne!(node, cut_name, "Swarm moved the cut node's tasks");
        assert_eq!(v, "v1");
    }
    for i in 0..cut {
        assert_eq!(s.serving(i), "v1", "node {i}");
    }
    assert_eq!(s.ledger(), vec!["deployed:v1", "failed:v2"]);

    // Back online: Swarm reconciles the node, and the next deploy converges on every node.
    s.hosts.restore(cut);
    s.hosts.wait_swarm_ready(Duration::from_secs(60));
    s.deploy("v2");
    assert_eq!(s.versions(), vec!["v2", "v2", "v2"]);
    s.all_serve("v2");
}

/// `davit demo --strategy swarm`, as the README has users type it (after building the proxy
/// image, which scripts/demo.sh does): the story on a three-node swarm the demo makes itself,
/// ending with v2 on every node after the bad v3 was taken back; then nothing of it is left.
#[test]
fn swarm_demo_ends_serving_v2_on_every_node_after_taking_v3_back() {
    if !require_all(&["docker", "curl", "debootstrap"]) {
        return;
    }
    if let Some(why) = davit_tests::hosts::unavailable() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "the swarm demo cannot run: {why}; CI=true, so this is a failure, not a skip"
        );
        eprintln!("SKIPPED swarm demo: {why}");
        return;
    }
    swarm_proxy_image();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = Command::new(bin("davit"))
        .args(["demo", "--strategy", "swarm", "--dir"])
        .arg(dir.path())
        .arg("--app-bin")
        .arg(demo_binary())
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for k in 1..=3 {
        assert!(
            stdout.contains(&format!("node dvdemo{k} serves v2 at")),
            "{stdout}"
        );
    }
    assert!(
        stderr.contains("Swarm rolled v3 back by itself"),
        "{stderr}"
    );
    // The ledger `davit releases` printed: v3 failed, v2 live.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("failed") && l.contains("v3")),
        "{stdout}"
    );
    // The demo removed its nodes: namespaces, links, forwarding rules, files.
    for k in 1..=3 {
        assert!(!std::path::Path::new(&format!("/run/netns/dvdemo{k}")).exists());
        assert!(!std::path::Path::new(&format!("/sys/class/net/dvdemo{k}o")).exists());
    }
    assert!(!std::path::Path::new("/var/tmp/davit-demo-swarm").exists());
    let rules = Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains("dvdemo"),
        "{rules:?}"
    );
}
