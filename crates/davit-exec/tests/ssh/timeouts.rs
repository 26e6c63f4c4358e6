//! T26: a silent listener, a hanging command and a black-holed connection each end at their
//! timeout instead of stalling the deploy.

use super::host_keys::other_host_key;
use super::*;

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
