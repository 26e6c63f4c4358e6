//! Deploys to a remote host over SSH: a real sshd on loopback stands in for the server, so
//! every docker, nginx, file and probe operation of a blue-green deploy goes through the `Ssh`
//! executor, driven by the `davit` binary as a workflow would run it (key and known_hosts from
//! environment variables).

#[path = "../../crates/davit-exec/tests/support/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use davit_tests::*;
use std::process::Command;

const KEY_ENV: &str = "DAVIT_TEST_SSH_KEY";
const KH_ENV: &str = "DAVIT_TEST_KNOWN_HOSTS";

fn config(sb: &Sandbox, repo: &str, port: u16, trust: &str) -> std::path::PathBuf {
    let text = sb.config_text(repo, "").replace(
        "[environments.production]\nstrategy = \"blue-green\"",
        &format!(
            "[environments.production]\nstrategy = \"blue-green\"\nhost = \"127.0.0.1\"\nstate_dir = \"{}\"",
            sb.dir.path().join("state").display()
        ),
    ) + &format!(
        "[environments.production.ssh]\nuser = \"root\"\nport = {port}\nkey_env = \"{KEY_ENV}\"\n{trust}\nconnect_timeout_secs = 5\n"
    );
    let path = sb.dir.path().join("remote.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn davit(args: &[&str], key: &str, known_hosts: &str) -> std::process::Output {
    Command::new(bin("davit"))
        .args(args)
        .env(KEY_ENV, key)
        .env(KH_ENV, known_hosts)
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn blue_green_deploy_and_rollback_over_ssh() {
    if !require_all(&["docker", "nginx", "curl"]) {
        return;
    }
    let Some(server) = sshd::start_or_skip("blue_green_deploy_and_rollback_over_ssh") else {
        return;
    };
    let repo = "davit-test-ssh";
    demo_image(repo, "v1", &[]);
    demo_image(repo, "v2", &[]);
    let sb = Sandbox::new("t-ssh");
    let cfg = config(
        &sb,
        repo,
        server.port,
        &format!("known_hosts_env = \"{KH_ENV}\""),
    );
    let cfg = cfg.to_str().unwrap();
    let kh = server.known_hosts_line();
    let public = format!("http://127.0.0.1:{}/", sb.public);

    for v in ["v1", "v2"] {
        let out = davit(
            &["deploy", "production", "--version", v, "--config", cfg],
            &server.client_key,
            &kh,
        );
        assert!(
            out.status.success(),
            "{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    block_on(async { assert_eq!(version_at(&public).await, "v2") });
    let out = davit(
        &["rollback", "production", "--config", cfg],
        &server.client_key,
        &kh,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    block_on(async { assert_eq!(version_at(&public).await, "v1") });
    let out = davit(
        &["releases", "production", "--config", cfg],
        &server.client_key,
        &kh,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("rolled_back") && table.contains("restored"),
        "{table}"
    );
    // Everything went through one verified connection per command, never a fallback.
    assert!(server.accepted_logins() >= 4, "{}", server.log());
}

/// T11 and T12 through the CLI: a host key that does not match, or no host key at all, is
/// refused before anything happens on the host.
#[test]
fn t11_t12_unverified_host_is_refused_before_any_change() {
    let Some(server) = sshd::start_or_skip("t11_t12_unverified_host_is_refused_before_any_change")
    else {
        return;
    };
    let repo = "davit-test-ssh";
    let sb = Sandbox::new("t-ssh11");
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let cases = [
        (
            format!("fingerprint = \"{wrong}\""),
            String::new(),
            "fingerprint",
        ),
        (
            format!("known_hosts_env = \"{KH_ENV}\""),
            format!(
                "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdKc3VnZXN0ZWRrZXlub3RyZWFsbHlhdmFsaWRrZXkx\n",
                server.port
            ),
            "host key",
        ),
        (
            format!("known_hosts_env = \"{KH_ENV}\""),
            String::new(),
            "known_hosts",
        ),
    ];
    for (trust, kh, want) in cases {
        let cfg = config(&sb, repo, server.port, &trust);
        let out = davit(
            &[
                "deploy",
                "production",
                "--version",
                "v1",
                "--config",
                cfg.to_str().unwrap(),
            ],
            &server.client_key,
            &kh,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{trust}: accepted");
        assert!(stderr.to_lowercase().contains(want), "{trust}: {stderr}");
        assert!(
            !sb.dir.path().join("state").exists(),
            "{trust}: something changed on the host"
        );
    }
}
