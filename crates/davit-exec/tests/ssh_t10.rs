//! T10: after success, failure and cancellation, no key material is left on disk.
//!
//! Its own test binary with one test, so no other test of this crate creates `davit-ssh-*`
//! dirs in `/tmp` while it compares before and after (cargo runs test binaries one at a time).

mod support;

use davit_core::{Cmd, Secret};
use davit_exec::{Executor, Ssh};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::sshd::start_or_skip;

fn davit_dirs() -> BTreeSet<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("davit-ssh-"))
        .map(|e| e.path())
        .collect()
}

/// Files under `root` containing `needle` (regular files up to 1 MiB; no symlinks followed).
/// Build trees and repositories are skipped: a key file davit writes is small and lives in its
/// own temp dir, and a CI checkout under /tmp holds gigabytes of build output that would make
/// this scan take longer than the whole suite.
fn files_containing(root: &Path, needle: &[u8], hits: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            if name == "target" || name.starts_with("target-") || name == ".git" || name == ".cargo"
            {
                continue;
            }
            files_containing(&e.path(), needle, hits);
        } else if ft.is_file()
            && e.metadata().is_ok_and(|m| m.len() <= 1 << 20)
            && std::fs::read(e.path()).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            hits.push(e.path());
        }
    }
}

#[tokio::test]
async fn t10_no_key_file_survives_success_failure_or_cancel() {
    let Some(s) = start_or_skip("t10_no_key_file_survives_success_failure_or_cancel") else {
        return;
    };
    let before = davit_dirs();
    let key_line = s.client_key.lines().nth(2).unwrap().as_bytes().to_vec();
    let no_key_on_disk = |when: &str| {
        let mut hits = Vec::new();
        files_containing(&std::env::temp_dir(), &key_line, &mut hits);
        assert!(
            hits.is_empty(),
            "{when}: private key bytes on disk in {hits:?}"
        );
    };
    let leftovers = |when: &str| {
        let new: Vec<_> = davit_dirs().difference(&before).cloned().collect();
        assert!(new.is_empty(), "{when}: temp dirs left behind: {new:?}");
        no_key_on_disk(when);
    };

    // Success: while connected, the dir exists and is private, but the key is already gone.
    let ssh = Ssh::connect(s.config()).await.unwrap();
    let dir = ssh.control_path().parent().unwrap().to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(
        !dir.join("id_davit").exists(),
        "key removed after the handshake"
    );
    ssh.run(&Cmd::new("true")).await.unwrap();
    no_key_on_disk("while connected");
    // A command failure and a command timeout do not change that.
    assert_ne!(ssh.run(&Cmd::new("false")).await.unwrap().status, 0);
    assert!(
        ssh.run(
            &Cmd::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(500))
        )
        .await
        .is_err()
    );
    drop(ssh);
    assert!(!dir.exists());
    leftovers("after success and drop");

    // Failure at the host key.
    let mut cfg = s.config();
    cfg.known_hosts = Some(Secret::new(format!(
        "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        s.port
    )));
    let e = Ssh::connect(cfg).await.unwrap_err();
    assert!(
        !e.to_string()
            .contains(std::str::from_utf8(&key_line).unwrap()),
        "no key bytes in the error"
    );
    leftovers("after a host-key failure");

    // Failure at authentication (the server does not know this key).
    let mut cfg = s.config();
    cfg.private_key = Secret::new(s.client_key.replace("davit-test", "davit-other"));
    let _ = Ssh::connect(cfg).await;
    leftovers("after an auth failure");

    // Cancelled mid-handshake: the connect future is dropped while ssh waits on a silent peer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = s.config();
    cfg.port = silent.local_addr().unwrap().port();
    cfg.known_hosts = Some(Secret::new(format!(
        "[127.0.0.1]:{} {}\n",
        cfg.port,
        s.host_public_key()
    )));
    cfg.connect_timeout = Duration::from_secs(10);
    let cancelled = tokio::time::timeout(Duration::from_millis(500), Ssh::connect(cfg)).await;
    assert!(cancelled.is_err(), "the connect was still in progress");
    leftovers("after a cancelled connect");
    drop(silent);
}
