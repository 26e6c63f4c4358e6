//! The `Ssh` executor against a real sshd on 127.0.0.1: every primitive, host-key trust (T11,
//! T12), stalls and timeouts (T26), secrets out of argv (T09), connection reuse, and a plan run
//! end to end. Each test starts its own sshd (see `support::sshd`).
//!
//! One test binary in modules by concern: this file has the primitives, the plan and the error
//! messages; `master` the one ssh master connection, `host_keys` T11/T12, `timeouts` T26 and
//! `secrets` T09.

#[path = "../support/mod.rs"]
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

// After the helpers above, so the modules see `sshd_or_skip!`.
mod host_keys;
mod master;
mod secrets;
mod timeouts;

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
