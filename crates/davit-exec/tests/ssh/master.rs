//! One master connection serves every operation, and a lost or killed master is replaced
//! without sending a request twice.

use super::*;

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
