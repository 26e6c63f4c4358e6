//! Runs the real binary for what only a process can show: exit codes, the start line,
//! signal handling and the slow start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_davit-demo-app");

fn spawn(env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Reads the start line and returns it with the port it names.
fn start_line(child: &mut Child) -> (String, u16, BufReader<std::process::ChildStderr>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port = line
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in start line {line:?}"));
    (line, port, stderr)
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn send_signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn invalid_value_exits_2_naming_the_variable() {
    for (var, value) in [
        ("FAULT_ERROR_RATIO", "2"),
        ("PORT", "eighty"),
        ("FAULT_LATENCY_MS", "fast"),
        ("FAULT_TYPO", "1"),
    ] {
        let out = Command::new(BIN)
            .env_clear()
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn sigterm_exits_0_promptly() {
    let mut child = spawn(&[("APP_VERSION", "9.9.9"), ("FAULT_ERROR_RATIO", "0.5")]);
    let (line, port, _stderr) = start_line(&mut child);
    assert!(line.contains("9.9.9"), "{line}");
    assert!(line.contains("error_ratio=0.5"), "{line}");
    assert!(get(port, "/health").starts_with("HTTP/1.1 200 "));

    let t = Instant::now();
    send_signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn sigint_while_an_idle_keep_alive_connection_is_open() {
    let mut child = spawn(&[]);
    let (_, port, _stderr) = start_line(&mut child);
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0; 512];
    assert!(idle.read(&mut buf).unwrap() > 0);

    let t = Instant::now();
    send_signal(&child, "INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn crash_after_exits_1() {
    let mut child = spawn(&[("FAULT_CRASH_AFTER_SECS", "0.5")]);
    let (_, _, mut stderr) = start_line(&mut child);
    let status = wait_with_timeout(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(1));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("FAULT_CRASH_AFTER_SECS"), "{rest}");
}

#[test]
fn slow_start_delays_listening_and_signals_still_work() {
    let t = Instant::now();
    let mut child = spawn(&[("FAULT_SLOW_START_SECS", "0.7")]);
    let (line, port, _stderr) = start_line(&mut child);
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    assert!(line.contains("slow_start=0.7s"), "{line}");
    assert!(get(port, "/").contains("hello from demo dev"));
    send_signal(&child, "TERM");
    assert_eq!(
        wait_with_timeout(&mut child, Duration::from_secs(3)).code(),
        Some(0)
    );

    // A signal during the slow start ends the process before it ever listens.
    let mut child = spawn(&[("FAULT_SLOW_START_SECS", "30")]);
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    send_signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(1));
}

/// `davit-demo-app health` with the same `PORT` as the app: 0 while /health is 200, 1 when it
/// is 500 or nothing listens (what a container health check needs).
#[test]
fn health_subcommand_exits_by_the_apps_health() {
    let check = |port: u16| {
        Command::new(BIN)
            .arg("health")
            .env_clear()
            .env("PORT", port.to_string())
            .output()
            .unwrap()
    };
    let mut ok = spawn(&[]);
    let (_, port, _e1) = start_line(&mut ok);
    assert_eq!(check(port).status.code(), Some(0));
    let mut sick = spawn(&[("FAULT_NEVER_HEALTHY", "1")]);
    let (_, sick_port, _e2) = start_line(&mut sick);
    let out = check(sick_port);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("500"),
        "{out:?}"
    );
    for c in [&mut ok, &mut sick] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    assert_eq!(check(port).status.code(), Some(1));
}

fn spawn_process(command: &str) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(BIN)
        .arg(command)
        .env_clear()
        .env("APP_VERSION", "v7")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

fn rest_of(mut stderr: BufReader<std::process::ChildStderr>) -> String {
    let mut s = String::new();
    stderr.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn the_worker_finishes_its_task_on_sigterm_and_exits_zero() {
    let (mut child, mut stderr) = spawn_process("worker");
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("worker demo v7 started"), "{line}");
    let started = Instant::now();
    // A signal in the middle of a task: the task is finished, not cut short, so the worker
    // lived at least as long as the tasks it says it finished.
    thread::sleep(Duration::from_millis(600));
    send_signal(&child, "TERM");
    let status = wait_with_timeout(&mut child, Duration::from_secs(5));
    let lived = started.elapsed();
    assert_eq!(status.code(), Some(0));
    let log = rest_of(stderr);
    let done: u32 = log
        .split("worker v7 got SIGTERM: warm shutdown after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(done >= 2, "{log}");
    assert!(
        lived >= davit_demo_app::background::TASK * done,
        "{lived:?} {log}"
    );
}

#[test]
fn the_scheduler_ticks_every_second_and_stops_on_sigint() {
    let (mut child, mut stderr) = spawn_process("scheduler");
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("scheduler demo v7 started"), "{line}");
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "davit-demo-app: scheduler v7 tick 1");
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "davit-demo-app: scheduler v7 tick 2");
    send_signal(&child, "INT");
    assert_eq!(
        wait_with_timeout(&mut child, Duration::from_secs(5)).code(),
        Some(0)
    );
    assert!(rest_of(stderr).contains("scheduler v7 got SIGINT: stopped after"));
}
