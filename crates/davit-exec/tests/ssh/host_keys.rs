//! T11, T12: an unknown or changed host key is refused, a pinned fingerprint must match,
//! hashed known_hosts work, and no known host and no pin fail closed before connecting.

use super::*;

pub(super) fn other_host_key() -> String {
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
