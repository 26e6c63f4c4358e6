//! A Django-like app behind the managed nginx: static files from a host folder, media from a
//! named volume the web process writes, a websocket echo, ALLOWED_HOSTS enforced (probes send
//! the environment's host name), and a proxy that dies between deploys.

use davit_core::Exit;
use davit_deploy::{Options, nginx::Files};
use davit_exec::{Local, runner::Quiet};
use davit_tests::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const REPO: &str = "davit-test-django";

/// The proxy settings a Django app needs, with the app's ALLOWED_HOSTS and MEDIA_ROOT.
fn django_toml(sb: &Sandbox, volume: &str) -> String {
    let files = sb.dir.path().join("files");
    format!(
        r#"[environments.production.env]
ALLOWED_HOSTS = "shop.test"
MEDIA_ROOT = "/app/media"
[environments.production.proxy]
client_max_body_size = "2m"
websockets = ["/ws/"]
trusted_proxies = ["127.0.0.1"]
[[environments.production.proxy.files]]
path = "/static/"
dir = "{static_dir}"
expires = "1h"
[[environments.production.proxy.files]]
path = "/media/"
volume = "{volume}"
dir = "{media_dir}"
mount = "/app/media"
[[environments.production.proxy.locations]]
path = "= /robots.txt"
directives = "return 200 'User-agent: *';"
proxy = false
"#,
        static_dir = files.join("static").display(),
        media_dir = files.join("media").display(),
    )
}

/// nginx's workers run unprivileged: the sandbox's folders must be traversable, as /srv is.
fn open_up(sb: &Sandbox) {
    let files = sb.dir.path().join("files");
    std::fs::create_dir_all(files.join("static/css")).unwrap();
    std::fs::write(files.join("static/css/app.css"), "body { color: teal }\n").unwrap();
    for d in [
        sb.dir.path().to_path_buf(),
        files.clone(),
        files.join("static"),
        files.join("static/css"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The test's media volume, removed after the containers that use it (a volume in use cannot
/// be removed, and a leftover would point at a folder that is gone).
struct Volume(String, String);
impl Drop for Volume {
    fn drop(&mut self) {
        cleanup_app(&self.1, Path::new("/nonexistent"));
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.0])
            .output();
    }
}

/// GET through the public port with a Host header: (status, body).
fn get_as(port: u16, path: &str, host: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A websocket round trip through the public port: the 101, the accept key, one echoed frame.
fn websocket_echo(port: u16, message: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        s,
        "GET /ws/echo HTTP/1.1\r\nHost: shop.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the app's accept key came through: {head}"
    );
    let mask = [7u8, 1, 9, 3];
    let mut frame = vec![0x81, 0x80 | u8::try_from(message.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(message.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).unwrap();
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).unwrap();
    assert_eq!(hdr[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(hdr[1] & 0x7F)];
    s.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

#[test]
fn django_like_app_static_media_and_websocket_through_the_managed_nginx() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    demo_image(REPO, "v1", &[]);
    let sb = Sandbox::new("t-django");
    open_up(&sb);
    let volume = Volume(format!("davit-test-{}-media", sb.app), sb.app.clone());
    // A volume left by a killed run would point at its (gone) folder.
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", &volume.0])
        .output();
    let extra = format!(
        "url = \"http://shop.test\"\n{}",
        django_toml(&sb, &volume.0)
    );
    let t = sb.target(REPO, "production", &extra);
    assert_eq!(t.probe_host().as_deref(), Some("shop.test"));
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let p = sb.public;
    // Django refuses other hosts: the probes passed because they sent shop.test.
    assert_eq!(get_as(p, "/health", "127.0.0.1").0, 400);
    assert_eq!(get_as(p, "/health", "shop.test").0, 200);
    assert_eq!(
        get_as(p, "/static/css/app.css", "shop.test"),
        (200, "body { color: teal }\n".to_string())
    );
    // Written by the web process into the volume at start, served by nginx from its folder.
    assert_eq!(
        get_as(p, "/media/v1.txt", "shop.test"),
        (200, "media from v1\n".to_string())
    );
    assert_eq!(get_as(p, "/robots.txt", "shop.test").1, "User-agent: *");
    assert_eq!(websocket_echo(p, "hello over ws"), "hello over ws");
}

#[test]
fn probe_without_the_apps_host_gets_400_and_the_hint_names_allowed_hosts() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    demo_image(REPO, "v1", &[]);
    let sb = Sandbox::new("t-hosthdr");
    // ALLOWED_HOSTS set, but no url and no health.host: the probe sends 127.0.0.1:<port>.
    let t = sb.target(
        REPO,
        "production",
        "[environments.production.env]\nALLOWED_HOSTS = \"shop.test\"\n[environments.production.health]\ninterval_ms = 100\nconsecutive = 1\ndeadline_secs = 3\n",
    );
    let e = block_on(davit_deploy::deploy(
        &Local::new(),
        &t,
        "v1",
        &Options::default(),
        &Quiet,
    ))
    .unwrap_err();
    let text = format!("{e}");
    assert_eq!(e.exit, Exit::Rejected, "{text}");
    assert!(text.contains("status 400"), "{text}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("ALLOWED_HOSTS"),
        "{text}"
    );
    // health.host fixes it.
    let t = sb.target(
        REPO,
        "production",
        "[environments.production.env]\nALLOWED_HOSTS = \"shop.test\"\n[environments.production.health]\nhost = \"shop.test\"\ninterval_ms = 100\nconsecutive = 1\ndeadline_secs = 10\n",
    );
    block_on(davit_deploy::deploy(
        &Local::new(),
        &t,
        "v1",
        &Options::default(),
        &Quiet,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

fn stop_nginx(t: &davit_deploy::Target) {
    let pid = std::fs::read_to_string(Files::of(t).pid()).unwrap();
    // SIGTERM: nginx's fast shutdown, workers included (a crash or a reboot, for users).
    assert!(
        Command::new("kill")
            .args(["-TERM", pid.trim()])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..50 {
        if !Command::new("kill")
            .args(["-0", pid.trim()])
            .status()
            .unwrap()
            .success()
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nginx did not stop");
}

#[test]
fn nginx_killed_between_deploys_is_started_again_and_verify_does_not_roll_back() {
    if !require_all(&["docker", "nginx"]) {
        return;
    }
    demo_image(REPO, "v1", &[]);
    demo_image(REPO, "v2", &[]);
    let sb = Sandbox::new("t-nginxdown");
    let t = sb.target(
        REPO,
        "production",
        "[environments.production.verify]\nwatch_secs = 2\ninterval_ms = 200\n",
    );
    let public = format!("http://127.0.0.1:{}/", sb.public);
    block_on(async {
        let exec = Local::new();
        davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        davit_deploy::deploy(&exec, &t, "v2", &Options::default(), &Quiet)
            .await
            .unwrap();
        stop_nginx(&t);
        assert_eq!(version_at(&public).await, "down");
        // verify: the proxy is down, not the release: started again, no rollback.
        let tl = davit_exec::Timeline::new(Box::new(std::io::sink()));
        let o = davit_verify::VerifyOptions::from_target(&t);
        let verdict = davit_verify::verify(&exec, &t, &o, &tl).await.unwrap();
        assert!(verdict.healthy, "{:?}", verdict.reason);
        assert_eq!(verdict.rolled_back_to, None);
        assert_eq!(version_at(&public).await, "v2");

        // The next deploy after another outage starts it again too, and goes live.
        stop_nginx(&t);
        let r = davit_deploy::deploy(&exec, &t, "v1", &Options::default(), &Quiet)
            .await
            .unwrap();
        assert!(
            r.warnings.iter().any(|w| w.contains("the proxy was down")),
            "{:?}",
            r.warnings
        );
        assert_eq!(version_at(&public).await, "v1");
    });
    assert_eq!(
        ledger_events(&t),
        vec!["deployed:v1", "deployed:v2", "deployed:v1"],
        "no rollback was recorded"
    );
}
