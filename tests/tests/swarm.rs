//! The swarm strategy on a real one-node swarm (the local engine after `docker swarm init`).
//!
//! Each test has its own app name, published port and image repository, so they run in
//! parallel. The swarm itself is left active at the end (see `require_swarm`); each test's stack
//! is removed when the test ends, whether it passed or not.

use davit_core::Exit;
use davit_deploy::Options;
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn swarm_env(port: u16, replicas: u32) -> String {
    format!(
        r#"
[environments.swarm]
strategy = "swarm"
[environments.swarm.swarm]
published_port = {port}
replicas = {replicas}
parallelism = 1
monitor_secs = 3
update_timeout_secs = 180
"#
    )
}

#[test]
#[ignore = "needs a kernel with IPVS for the Swarm routing mesh; this machine kind has none (docs/swarm.md). Run with --ignored where /proc/net/ip_vs exists."]
fn swarm_one_replica_deploy_update_and_native_rollback() {
    if !require_swarm() {
        return;
    }
    let repo = "davit-test-swarm1";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-swarm1");
    let stack = SwarmStack::new(&sb.app, "swarm");
    let port = free_port();
    let t = sb.target(repo, "swarm", &swarm_env(port, 1));
    let url = format!("http://127.0.0.1:{port}/");
    block_on(async {
        let exec = Local::new();
        let r1 = davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert_eq!(r1.record.unwrap().strategy, "swarm");
        assert_eq!(version_at(&url).await, "v1");
        assert_eq!(stack.running_versions(), vec!["v1"]);

        davit_deploy::deploy(&exec, &t, "v2", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert_eq!(version_at(&url).await, "v2");
        assert_eq!(stack.inspect("{{.UpdateStatus.State}}"), "completed");

        // The previous spec is v1's, so this is Swarm's own `docker service rollback`.
        let rb = davit_deploy::rollback(&exec, &t, None, "test", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert!(
            rb.plan.render().contains("docker service rollback"),
            "{}",
            rb.plan.render()
        );
        assert_eq!(rb.record.unwrap().version, "v1");
        assert_eq!(version_at(&url).await, "v1");
        assert_eq!(
            stack.inspect("{{.UpdateStatus.State}}"),
            "rollback_completed"
        );
    });
    assert_eq!(
        ledger_events(&t),
        vec![
            "deployed:v1",
            "deployed:v2",
            "rolled_back:v2",
            "restored:v1"
        ]
    );
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
async fn one_request(conn: &mut Option<TcpStream>, port: u16) -> Result<(), String> {
    if conn.is_none() {
        *conn = Some(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("connect: {e}"))?,
        );
    }
    let stream = conn.as_mut().expect("connected above");
    let result = async {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
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

/// `clients` keep-alive connections, each sending one request every `every` until `stop` is
/// set, at most `max_each` requests and never past `limit`. Only to 127.0.0.1.
fn start_load(
    port: u16,
    clients: usize,
    every: Duration,
    max_each: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let started = Instant::now();
    let handles = (0..clients)
        .map(|_| {
            let load = load.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut conn = None;
                let mut tick = tokio::time::interval(every);
                for _ in 0..max_each {
                    tick.tick().await;
                    if stop.load(Ordering::SeqCst) || started.elapsed() > limit {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(5), one_request(&mut conn, port))
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

#[test]
#[ignore = "needs a kernel with IPVS for the Swarm routing mesh; this machine kind has none (docs/swarm.md). Run with --ignored where /proc/net/ip_vs exists."]
fn swarm_three_replicas_update_under_load_without_failed_requests() {
    if !require_swarm() {
        return;
    }
    let repo = "davit-test-swarm3";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-swarm3");
    let stack = SwarmStack::new(&sb.app, "swarm");
    let port = free_port();
    let t = sb.target(repo, "swarm", &swarm_env(port, 3));
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert_eq!(stack.running_versions(), vec!["v1", "v1", "v1"]);

        let stop = Arc::new(AtomicBool::new(false));
        let (load, handles) = start_load(
            port,
            4,
            Duration::from_millis(20),
            15_000,
            Duration::from_secs(240),
            stop.clone(),
        );
        // Let every client hold a keep-alive connection to an old task first.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let deployed = davit_deploy::deploy(&exec, &t, "v2", &Options::default(), &Quiet).await;
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.await.unwrap();
        }
        deployed.unwrap();
        assert_eq!(stack.running_versions(), vec!["v2", "v2", "v2"]);

        let ok = load.ok.load(Ordering::SeqCst);
        let failed = load.failed.load(Ordering::SeqCst);
        eprintln!("load during the update: {ok} ok, {failed} failed");
        // The update replaces three tasks one by one with a 3 s monitor each: the load ran
        // through all of it, or this test proves nothing.
        assert!(ok > 200, "only {ok} requests succeeded");
        assert_eq!(
            failed,
            0,
            "failed requests during the update: {:?}",
            load.reasons.lock().unwrap()
        );
    });
}

/// T33: a release whose tasks exit at once. Swarm rolls the update back by itself; davit must
/// report a failure (exit 1, naming the rollback), record it, and the old version keeps serving.
#[test]
#[ignore = "needs a kernel with IPVS for the Swarm routing mesh; this machine kind has none (docs/swarm.md). Run with --ignored where /proc/net/ip_vs exists."]
fn t33_swarm_rolls_back_a_bad_release_and_davit_reports_failure() {
    if !require_swarm() {
        return;
    }
    let repo = "davit-test-swarm-t33";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "bad", &[("FAULT_CRASH_AFTER_SECS", "0")]);
    let sb = Sandbox::new("t-swarm-t33");
    let stack = SwarmStack::new(&sb.app, "swarm");
    let port = free_port();
    let t = sb.target(repo, "swarm", &swarm_env(port, 2));
    let url = format!("http://127.0.0.1:{port}/");
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        let e = davit_deploy::deploy(&exec, &t, "bad", &Options::default(), &Quiet)
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Rejected, "{e}");
        assert!(e.to_string().contains("rolled back"), "{e}");
        // davit's undo then re-applied v1's stack file (a no-op for Swarm, which had already
        // returned to that spec), so the spec and every task are v1's.
        assert_eq!(
            stack.inspect("{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
            format!("{repo}:v1")
        );
        assert_eq!(stack.running_versions(), vec!["v1", "v1"]);
        assert_eq!(version_at(&url).await, "v1");
    });
    assert_eq!(ledger_events(&t), vec!["deployed:v1", "failed:bad"]);
}
