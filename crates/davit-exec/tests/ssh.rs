//! The `Ssh` executor against a real sshd on 127.0.0.1: every primitive, host-key trust (T11,
//! T12), stalls and timeouts (T26), secrets out of argv (T09), connection reuse, and a plan run
//! end to end. Each test starts its own sshd (see `support::sshd`).

mod support;

use davit_core::{Cmd, FileBody, Plan, Probe, ProbeExpect, Secret, Step};
use davit_exec::runner::Quiet;
use davit_exec::{ExecError, Executor, Ssh, run_plan};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::sshd::{self, Sshd, start_or_skip};

macro_rules! sshd_or_skip {
    ($name:expr) => {
        match start_or_skip($name) {
            Some(s) => s,
            None => return,
        }
    };
}

async fn connect(s: &Sshd) -> Ssh {
    match Ssh::connect(s.config()).await {
        Ok(ssh) => ssh,
        Err(e) => panic!("connect: {e}\nsshd log:\n{}", s.log()),
    }
}

/// A bound for tests whose subject is a timeout: they must end, whatever they return.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within 60 s"))
}

#[tokio::test]
async fn run_reports_status_env_stdin_cwd_and_missing_programs() {
    let s = sshd_or_skip!("run_reports_status_env_stdin_cwd_and_missing_programs");
    let ssh = connect(&s).await;
    let work = tempfile::tempdir().unwrap();
    let out = ssh
        .run(
            &Cmd::new("sh")
                .args([
                    "-c",
                    "read -r x; echo \"$x|$GREETING|$TOKEN|$(pwd)\"; echo err >&2; exit 3",
                ])
                .env("GREETING", "hello world")
                .secret_env("TOKEN", Secret::new("t0k'en\"$(x)".into()))
                .stdin(FileBody::Plain("from stdin\n".into()))
                .cwd(work.path()),
        )
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    // The secret arrived byte for byte: the redactor masks only the exact registered value, so
    // a mangled value would show here instead of the mark (T46: captured output is redacted).
    assert_eq!(
        out.stdout,
        format!(
            "from stdin|hello world|{}|{}\n",
            davit_core::redact::REDACTED,
            work.path().display()
        )
    );
    assert_eq!(out.stderr, "err\n");

    // A command's own exit 255 is its status, not an ssh failure.
    let out = ssh
        .run(&Cmd::new("sh").args(["-c", "exit 255"]))
        .await
        .unwrap();
    assert_eq!(out.status, 255);

    // Hostile arguments arrive as data, byte for byte (T01).
    let hostile = ["\"; id #", "$(id)", "`id`", "a\nb", "it's", "", "-n", "*"];
    let out = ssh
        .run(&Cmd::new("printf").arg("[%s]").args(hostile))
        .await
        .unwrap();
    assert_eq!(out.stdout, "[\"; id #][$(id)][`id`][a\nb][it's][][-n][*]");
    let e = ssh.run(&Cmd::new("echo").arg("a\0b")).await.unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    let e = ssh
        .run(&Cmd::new("true").env("BAD NAME", "x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("environment variable"), "{e}");

    // Binary-safe stdin: every byte value that a String can hold, and no trailing newline.
    let all: String = (1u8..=127).map(char::from).collect::<String>() + "ünï";
    let out = ssh
        .run(
            &Cmd::new("od")
                .args(["-An", "-c"])
                .stdin(FileBody::Plain(all.clone())),
        )
        .await
        .unwrap();
    let local = std::process::Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | od -An -c", "sh", &all])
        .output()
        .unwrap();
    assert_eq!(out.stdout, String::from_utf8(local.stdout).unwrap());

    let e = ssh.run(&Cmd::new("davit-no-such-tool")).await.unwrap_err();
    assert!(matches!(e, ExecError::Missing { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "root@127.0.0.1:{}: `davit-no-such-tool` is not installed or not on PATH",
            s.port
        )
    );
    assert!(ssh.has_program("sh").await);
    assert!(!ssh.has_program("davit-no-such-tool").await);
    let e = ssh
        .run(&Cmd::new("true").cwd("/no/such/dir"))
        .await
        .unwrap();
    assert_ne!(e.status, 0);
}

#[tokio::test]
async fn file_operations_round_trip_binary_safe() {
    let s = sshd_or_skip!("file_operations_round_trip_binary_safe");
    let ssh = connect(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ssh.write_file(&p("bin"), &bytes, 0o600).await.unwrap();
    assert_eq!(std::fs::read(p("bin")).unwrap(), bytes);
    let mode = std::fs::metadata(p("bin")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(ssh.read_file(&p("bin")).await.unwrap(), Some(bytes.clone()));
    // Overwrite keeps atomicity and takes the new mode; no temp files are left behind.
    ssh.write_file(&p("bin"), b"", 0o640).await.unwrap();
    assert_eq!(ssh.read_file(&p("bin")).await.unwrap(), Some(Vec::new()));
    assert_eq!(
        std::fs::metadata(p("bin")).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(ssh.read_file(&p("missing")).await.unwrap(), None);
    let e = ssh
        .write_file(&p("no/such/dir/f"), b"x", 0o600)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no/such/dir/f"), "{e}");

    // Names with spaces and quotes are data too.
    let odd = p("it's a \"file\" $(id)");
    ssh.write_file(&odd, b"odd\n", 0o644).await.unwrap();
    assert_eq!(std::fs::read(&odd).unwrap(), b"odd\n");

    ssh.rename(&odd, &p("renamed")).await.unwrap();
    assert!(!odd.exists());
    assert_eq!(std::fs::read(p("renamed")).unwrap(), b"odd\n");
    assert!(ssh.rename(&p("missing"), &p("x")).await.is_err());

    std::fs::set_permissions(p("renamed"), std::fs::Permissions::from_mode(0o604)).unwrap();
    ssh.copy(&p("renamed"), &p("copy")).await.unwrap();
    assert_eq!(std::fs::read(p("copy")).unwrap(), b"odd\n");
    assert_eq!(
        std::fs::metadata(p("copy")).unwrap().permissions().mode() & 0o777,
        0o604
    );

    assert!(
        ssh.create_exclusive(&p("lock"), b"holder 1\n")
            .await
            .unwrap()
    );
    assert!(
        !ssh.create_exclusive(&p("lock"), b"holder 2\n")
            .await
            .unwrap()
    );
    assert_eq!(std::fs::read(p("lock")).unwrap(), b"holder 1\n");
    assert!(ssh.create_exclusive(&p("no/dir/lock"), b"x").await.is_err());

    ssh.append_line(&p("ledger"), "one").await.unwrap();
    ssh.append_line(&p("ledger"), "two\n").await.unwrap();
    assert_eq!(std::fs::read(p("ledger")).unwrap(), b"one\ntwo\n");
    // T44: a fragment a crash left is cut before the next whole line; no temp files remain.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(p("ledger"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"torn").unwrap();
    drop(f);
    ssh.append_line(&p("ledger"), "three").await.unwrap();
    assert_eq!(std::fs::read(p("ledger")).unwrap(), b"one\ntwo\nthree\n");
    let temps = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("davit-tmp")
        })
        .count();
    assert_eq!(temps, 0);

    ssh.remove_file(&p("ledger")).await.unwrap();
    ssh.remove_file(&p("ledger")).await.unwrap();
    assert!(!p("ledger").exists());

    ssh.mkdir(&p("a/b/c"), 0o750).await.unwrap();
    assert!(p("a/b/c").is_dir());
    assert_eq!(
        std::fs::metadata(p("a/b/c")).unwrap().permissions().mode() & 0o777,
        0o750
    );
}

#[tokio::test]
async fn http_get_runs_curl_on_the_host() {
    let s = sshd_or_skip!("http_get_runs_curl_on_the_host");
    let ssh = connect(&s).await;
    let srv = support::http::serve(503, ("X-App-Version", "v2"), b"{\"version\":\"v2\"}\n\0bin");
    let url = format!("http://127.0.0.1:{}/health", srv.port);
    let r = ssh.http_get(&url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-app-version"), Some("v2"));
    assert_eq!(r.body, "{\"version\":\"v2\"}\n\0bin");

    let closed = format!("http://127.0.0.1:{}/", sshd::free_port());
    let e = ssh
        .http_get(&closed, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, ExecError::Http { .. }), "{e}");
    assert!(
        e.to_string().contains("Failed to connect") || e.to_string().contains("refused"),
        "{e}"
    );
    let e = ssh
        .http_get("file:///etc/passwd", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only http"), "{e}");
}

#[tokio::test]
async fn a_plan_runs_on_the_remote_host() {
    let s = sshd_or_skip!("a_plan_runs_on_the_remote_host");
    let ssh = connect(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = support::http::serve(200, ("X-App-Version", "v7"), b"ok");
    let cfg_new = dir.path().join("app.conf.new");
    let cfg = dir.path().join("app.conf");
    let mut plan = Plan::new("remote smoke");
    plan.push(
        "write the candidate config",
        Step::WriteFile {
            path: cfg_new.clone(),
            body: FileBody::Secret(Secret::new("password=s3cr3t\n".into())),
            mode: 0o600,
        },
    )
    .push(
        "check it",
        Step::Exec(Cmd::new("grep").args(["-q", "password=", cfg_new.to_str().unwrap()])),
    )
    .push(
        "switch",
        Step::Rename {
            from: cfg_new.clone(),
            to: cfg.clone(),
        },
    )
    .push(
        "ledger",
        Step::AppendLine {
            path: dir.path().join("releases.log"),
            line: "v7".into(),
        },
    )
    .push(
        "health",
        Step::WaitHttp(Probe {
            url: format!("http://127.0.0.1:{}/health", srv.port),
            expect: ProbeExpect {
                status: 200,
                header: Some(("x-app-version".into(), "v7".into())),
                ..Default::default()
            },
            per_try_timeout: Duration::from_secs(2),
            interval: Duration::from_millis(50),
            consecutive: 3,
            deadline: Duration::from_secs(20),
            host: None,
        }),
    );
    run_plan(&ssh, &plan, &Quiet).await.unwrap();
    assert_eq!(std::fs::read(&cfg).unwrap(), b"password=s3cr3t\n");
    assert!(!cfg_new.exists());

    // A failing step undoes what was done, over ssh too.
    let marker = dir.path().join("marker");
    let mut plan = Plan::new("fails");
    plan.push_with_undo(
        "create marker",
        Step::WriteFile {
            path: marker.clone(),
            body: FileBody::Plain("x".into()),
            mode: 0o644,
        },
        vec![Step::RemoveFile {
            path: marker.clone(),
        }],
    )
    .push("fail", Step::Exec(Cmd::new("false")));
    let e = run_plan(&ssh, &plan, &Quiet).await.unwrap_err();
    assert_eq!(e.index, 2, "{e}");
    assert!(!marker.exists());
}

/// `ssh -O <op>` on the executor's control socket, behind its back.
fn mux_control(ssh: &Ssh, op: &str) -> std::process::Output {
    std::process::Command::new("ssh")
        .arg("-S")
        .arg(ssh.control_path())
        .args(["-O", op, "127.0.0.1"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn one_master_connection_serves_every_operation() {
    let s = sshd_or_skip!("one_master_connection_serves_every_operation");
    let ssh = connect(&s).await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        ssh.run(&Cmd::new("true")).await.unwrap();
        ssh.write_file(&dir.path().join(format!("f{i}")), b"x", 0o644)
            .await
            .unwrap();
    }
    assert_eq!(s.accepted_logins(), 1, "{}", s.log());
    let check = mux_control(&ssh, "check");
    assert!(check.status.success(), "{check:?}");
    let control = ssh.control_path();
    drop(ssh);
    assert!(!control.exists());
    assert!(!control.parent().unwrap().exists());
}

#[tokio::test]
async fn a_lost_master_is_reopened_for_the_next_operation() {
    let s = sshd_or_skip!("a_lost_master_is_reopened_for_the_next_operation");
    let ssh = connect(&s).await;
    ssh.run(&Cmd::new("true")).await.unwrap();
    // Close the master behind the executor's back: the next operation reconnects.
    let st = mux_control(&ssh, "exit");
    assert!(st.status.success(), "{st:?}");
    let out = ssh.run(&Cmd::new("echo").arg("again")).await;
    let out = out.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", s.log()));
    assert_eq!(out.stdout, "again\n");
    assert_eq!(s.accepted_logins(), 2, "{}", s.log());
}

/// A master killed outright leaves its socket file behind, so the executor believes it is up;
/// the request never reaches the host (the client's fallback is refused at once), and is sent
/// again over a new master instead of failing the deploy step.
#[tokio::test]
async fn a_killed_master_with_a_stale_socket_is_replaced_and_the_request_sent_once() {
    let s =
        sshd_or_skip!("a_killed_master_with_a_stale_socket_is_replaced_and_the_request_sent_once");
    let ssh = connect(&s).await;
    ssh.run(&Cmd::new("true")).await.unwrap();
    let check = mux_control(&ssh, "check");
    // `Master running (pid=1234)`
    let text = String::from_utf8_lossy(&check.stderr).into_owned();
    let pid: u32 = text
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no master pid in {text:?}"));
    sshd::kill("-KILL", pid);
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ssh.control_path().exists(), "the stale socket is the point");
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    // Appends one line per time the command actually ran on the host.
    let out = ssh
        .run(
            &Cmd::new("sh")
                .arg("-c")
                .arg(format!("echo ran >> {} && echo ok", counter.display())),
        )
        .await;
    let out = out.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", s.log()));
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "ran\n");
    assert_eq!(s.accepted_logins(), 2, "{}", s.log());
}

// ---- T11: host keys ----

fn other_host_key() -> String {
    let d = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.path().join("k"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let pubkey = std::fs::read_to_string(d.path().join("k.pub")).unwrap();
    let mut w = pubkey.split_whitespace();
    format!("{} {}", w.next().unwrap(), w.next().unwrap())
}

#[tokio::test]
async fn t11_unknown_host_key_is_refused() {
    let s = sshd_or_skip!("t11_unknown_host_key_is_refused");
    let mut cfg = s.config();
    cfg.known_hosts = Some(Secret::new(format!(
        "# a different host's key\n[127.0.0.1]:{} {}\n",
        s.port,
        other_host_key()
    )));
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    // An ed25519 key for a *different* server under this name is "changed"; a name with no
    // key at all is "unknown". Both are refused, naming the host and the fix.
    assert!(e.contains(&format!("127.0.0.1:{}", s.port)), "{e}");
    assert!(
        e.contains("refusing to connect") && e.contains("hint:"),
        "{e}"
    );
    assert_eq!(s.accepted_logins(), 0);

    let mut cfg = s.config();
    cfg.known_hosts = Some(Secret::new(format!(
        "other.example {}\n",
        s.host_public_key()
    )));
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("unknown host") && e.contains("ssh-keyscan"),
        "{e}"
    );
    assert_eq!(s.accepted_logins(), 0);
}

#[tokio::test]
async fn t11_changed_host_key_is_refused() {
    let mut s = sshd_or_skip!("t11_changed_host_key_is_refused");
    let cfg = s.config();
    drop(Ssh::connect(cfg.clone()).await.unwrap());
    s.restart_with_new_host_key();
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("CHANGED") && e.contains("refusing to connect"),
        "{e}"
    );
    assert!(e.contains(&format!("127.0.0.1:{}", s.port)), "{e}");
    assert_eq!(s.accepted_logins(), 1, "{}", s.log());
}

#[tokio::test]
async fn t11_pinned_fingerprint_must_match() {
    let mut s = sshd_or_skip!("t11_pinned_fingerprint_must_match");
    let mut cfg = s.config();
    cfg.known_hosts = None;
    cfg.fingerprint = Some(s.fingerprint());
    let ssh = Ssh::connect(cfg.clone()).await.unwrap();
    assert_eq!(
        ssh.run(&Cmd::new("echo").arg("pinned"))
            .await
            .unwrap()
            .stdout,
        "pinned\n"
    );
    drop(ssh);

    // A wrong pin: refused before any login is attempted.
    let before = s.accepted_logins();
    let mut wrong = cfg.clone();
    wrong.fingerprint = Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into());
    let e = Ssh::connect(wrong).await.unwrap_err().to_string();
    assert!(
        e.contains("matches the pinned fingerprint") && e.contains("hint:"),
        "{e}"
    );
    assert!(
        e.contains(&s.fingerprint()),
        "names what the host offered: {e}"
    );
    assert_eq!(s.accepted_logins(), before);

    // The pin stays with the old key after the host is re-keyed.
    s.restart_with_new_host_key();
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    assert!(e.contains("matches the pinned fingerprint"), "{e}");

    let mut md5 = s.config();
    md5.known_hosts = None;
    md5.fingerprint = Some("MD5:12:34".into());
    assert!(
        Ssh::connect(md5)
            .await
            .unwrap_err()
            .to_string()
            .contains("SHA256")
    );
}

#[tokio::test]
async fn t11_hashed_known_hosts_works() {
    let s = sshd_or_skip!("t11_hashed_known_hosts_works");
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("known_hosts");
    std::fs::write(&f, s.known_hosts_line()).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let hashed = std::fs::read_to_string(&f).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    let mut cfg = s.config();
    cfg.known_hosts = Some(Secret::new(hashed));
    let ssh = Ssh::connect(cfg).await.unwrap();
    assert_eq!(ssh.run(&Cmd::new("true")).await.unwrap().status, 0);
}

// ---- T12 ----

#[tokio::test]
async fn t12_empty_known_hosts_and_no_pin_fail_closed_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut cfg = davit_exec::SshConfig::new("127.0.0.1", "root", Secret::new("key".into()));
    cfg.port = listener.local_addr().unwrap().port();
    for empty in [None, Some(""), Some("\n  \n# only a comment\n")] {
        cfg.known_hosts = empty.map(|e| Secret::new(e.to_string()));
        let e = Ssh::connect(cfg.clone()).await.unwrap_err().to_string();
        assert!(
            e.contains("no host key to verify") && e.contains("hint:"),
            "{e}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "nothing may connect when there is nothing to verify against"
    );
}

// ---- T26: stalls and timeouts ----

#[tokio::test]
async fn t26_a_silent_listener_times_out_at_connect() {
    // Accepts TCP (the kernel completes the handshake) and never sends a banner.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = davit_exec::SshConfig::new("127.0.0.1", "root", Secret::new("key\n".into()));
    cfg.port = port;
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.known_hosts = Some(Secret::new(format!(
        "[127.0.0.1]:{port} {}\n",
        other_host_key()
    )));
    let started = std::time::Instant::now();
    let e = bounded("connect", Ssh::connect(cfg.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("within"), "{e}");
    eprintln!(
        "silent listener (known_hosts) failed after {:?}: {e}",
        started.elapsed()
    );

    // With a pin, ssh-keyscan is the first contact; it is bounded the same way.
    cfg.known_hosts = None;
    cfg.fingerprint = Some("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into());
    let e = bounded("connect with pin", Ssh::connect(cfg))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    drop(listener);
}

#[tokio::test]
async fn t26_a_hanging_command_is_killed_at_its_timeout() {
    let s = sshd_or_skip!("t26_a_hanging_command_is_killed_at_its_timeout");
    let ssh = connect(&s).await;
    let e = bounded(
        "sleep",
        ssh.run(
            &Cmd::new("sleep")
                .arg("59.123")
                .timeout(Duration::from_secs(1)),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
    assert!(
        e.to_string().contains("sleep 59.123") && e.to_string().contains("killed"),
        "{e}"
    );
    // The executor is still usable, and the remote sleep does not outlive its timeout.
    assert_eq!(ssh.run(&Cmd::new("true")).await.unwrap().status, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alive = s.session_pids().into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(7).any(|w| w == b"59.123\0"))
        });
        if !alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "remote sleep still running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn t26_a_black_holed_connection_is_detected_by_keepalives() {
    let s = sshd_or_skip!("t26_a_black_holed_connection_is_detected_by_keepalives");
    let mut cfg = s.config();
    cfg.keepalive_interval = Duration::from_secs(1);
    cfg.command_timeout = Duration::from_secs(300);
    cfg.connect_timeout = Duration::from_secs(2);
    let ssh = Ssh::connect(cfg).await.unwrap();
    ssh.run(&Cmd::new("true")).await.unwrap();
    // Freeze the server side of the connection: TCP still ACKs, ssh never answers. The
    // listener too, so the reconnect davit tries next meets the same black hole.
    let mut frozen = s.session_pids();
    assert!(!frozen.is_empty());
    frozen.push(s.listener_pid());
    for pid in &frozen {
        sshd::kill("-STOP", *pid);
    }
    let started = std::time::Instant::now();
    let e = bounded(
        "command on a black hole",
        ssh.run(&Cmd::new("echo").arg("x")),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    for pid in &frozen {
        sshd::kill("-KILL", *pid);
    }
    eprintln!("black hole detected after {took:?}: {e}");
    assert!(
        !matches!(e, ExecError::Timeout { .. }),
        "keepalives, not the 300 s timeout: {e}"
    );
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{}", s.port)),
        "{e}"
    );
    assert!(
        e.to_string().contains("stalled") || e.to_string().contains("lost"),
        "{e}"
    );
}

// ---- T09: secrets never in argv ----

/// Scan every process's argv until stopped; return the hits.
fn scan_cmdlines(
    needles: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut rounds = 0;
        let mut hits = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            rounds += 1;
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                for n in &needles {
                    if cmdline.windows(n.len()).any(|w| w == n.as_slice()) {
                        hits.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
                    }
                }
            }
        }
        (rounds, hits)
    })
}

#[tokio::test]
async fn t09_secrets_never_appear_in_any_argv() {
    let s = sshd_or_skip!("t09_secrets_never_appear_in_any_argv");
    let canary_env = format!("canary-env-{:016x}", rand::random::<u64>());
    let canary_stdin = format!("canary-stdin-{:016x}", rand::random::<u64>());
    let canary_file = format!("canary-file-{:016x}", rand::random::<u64>());
    // A slice from the middle of the private key's base64: never in argv either.
    let key_line = s.client_key.lines().nth(2).unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = scan_cmdlines(
        vec![
            canary_env.clone().into_bytes(),
            canary_stdin.clone().into_bytes(),
            canary_file.clone().into_bytes(),
            key_line.clone().into_bytes(),
        ],
        stop.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ssh = connect(&s).await;
    for _ in 0..5 {
        let out = ssh
            .run(
                &Cmd::new("sh")
                    .args(["-c", "sleep 0.2; read -r x; [ \"$x\" = \"$EXPECT\" ] && printf '%s' \"$CANARY\" | wc -c"])
                    .secret_env("CANARY", Secret::new(canary_env.clone()))
                    .secret_env("EXPECT", Secret::new(canary_stdin.clone()))
                    .stdin(FileBody::Secret(Secret::new(format!("{canary_stdin}\n")))),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), canary_env.len().to_string(), "{out:?}");
        let f = dir.path().join("secret.env");
        ssh.write_file(&f, canary_file.as_bytes(), 0o600)
            .await
            .unwrap();
        assert!(
            ssh.create_exclusive(
                &dir.path().join(format!("l{}", rand::random::<u32>())),
                canary_file.as_bytes()
            )
            .await
            .unwrap()
        );
        ssh.append_line(&dir.path().join("ledger"), &canary_file)
            .await
            .unwrap();
        assert_eq!(
            ssh.read_file(&f).await.unwrap().unwrap(),
            canary_file.as_bytes()
        );
    }
    drop(ssh);
    // And through a reconnect with a pin (keyscan, keygen), which also writes the key again.
    let mut cfg = s.config();
    cfg.known_hosts = None;
    cfg.fingerprint = Some(s.fingerprint());
    let ssh = Ssh::connect(cfg).await.unwrap();
    ssh.run(&Cmd::new("true").secret_env("X", Secret::new(canary_env.clone())))
        .await
        .unwrap();
    drop(ssh);
    stop.store(true, Ordering::SeqCst);
    let (rounds, hits) = scanner.join().unwrap();
    assert!(
        rounds > 10,
        "the scanner must actually have sampled ({rounds} rounds)"
    );
    assert!(hits.is_empty(), "secret bytes in argv: {hits:#?}");
    eprintln!("T09: {rounds} scans of /proc/*/cmdline, 0 hits");
}

#[tokio::test]
async fn ssh_errors_from_a_working_host_name_it() {
    // Auth failure: a key the server does not know.
    let s = sshd_or_skip!("ssh_errors_from_a_working_host_name_it");
    let d = tempfile::tempdir().unwrap();
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.path().join("k"))
        .output()
        .unwrap();
    let mut cfg = s.config();
    cfg.private_key = Secret::new(std::fs::read_to_string(d.path().join("k")).unwrap());
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("refused the private key") && e.contains("authorized_keys"),
        "{e}"
    );
    assert!(
        e.starts_with(&format!("root@127.0.0.1:{}: ssh connection: ", s.port)),
        "{e}"
    );

    let mut cfg = s.config();
    cfg.port = sshd::free_port();
    cfg.known_hosts = Some(Secret::new(format!(
        "[127.0.0.1]:{} {}\n",
        cfg.port,
        s.host_public_key()
    )));
    let e = Ssh::connect(cfg).await.unwrap_err().to_string();
    assert!(e.contains("refused the connection"), "{e}");

    // A key pasted without its final newline (and with CRLF) still works.
    let mut cfg = s.config();
    cfg.private_key = Secret::new(s.client_key.trim_end().replace('\n', "\r\n"));
    Ssh::connect(cfg).await.unwrap();
}
