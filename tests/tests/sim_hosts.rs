//! The simulated hosts of `davit_tests::hosts` are separate servers as ssh sees them: each has
//! its own engine, its own `/var/lib/davit`, its own ports, and can be cut off while the others
//! answer. Multi-host deploy tests rely on all of that, so it is checked here through a real
//! ssh client with strict host-key checking, and so is the teardown.

use davit_tests::hosts::SimHosts;
use davit_tests::require_all;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGE: &str = "davit-test-simhosts-busybox:1";

/// A fresh ssh connection to `addr` running `cmd`, trusting only the harness's known_hosts.
fn ssh(dir: &Path, addr: &str, cmd: &str) -> Output {
    Command::new("ssh")
        .arg("-i")
        .arg(dir.join("key"))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(["-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"])
        .arg(format!("root@{addr}"))
        .arg(cmd)
        .output()
        .expect("run ssh")
}

/// stdout of a command that must succeed.
fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A tiny web server image built `FROM scratch` on the machine's engine.
fn build_image(dir: &Path) {
    let ctx = dir.join("image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(which::which("busybox").unwrap(), ctx.join("busybox")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         CMD [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/\"]\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&ctx)
        .output()
        .expect("run docker");
    ok("docker build", out);
}

#[test]
fn simulated_hosts_are_separate_servers() {
    if !require_all(&["docker", "ssh", "curl", "busybox"]) {
        return;
    }
    let started = Instant::now();
    let Some(sim) = SimHosts::start_or_skip("simulated_hosts_are_separate_servers", 2) else {
        return;
    };
    eprintln!("2 hosts up in {:?}", started.elapsed());
    let names: Vec<String> = sim.hosts.iter().map(|h| h.name.clone()).collect();
    let veths: Vec<String> = sim.hosts.iter().map(|h| h.veth.clone()).collect();
    let socks: Vec<String> = sim.hosts.iter().map(|h| h.docker_host.clone()).collect();

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    std::fs::write(d.join("key"), &sim.client_key).unwrap();
    std::fs::set_permissions(d.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(d.join("known_hosts"), &sim.known_hosts).unwrap();
    let on = |i: usize, cmd: &str| ok(cmd, ssh(d, &sim.hosts[i].addr, cmd));

    // Each session talks to its own host's engine, and the engines are distinct.
    let ids: Vec<String> = (0..2)
        .map(|i| on(i, "docker info --format '{{.ID}}'"))
        .collect();
    let machine = ok(
        "docker info",
        Command::new("docker")
            .args(["info", "--format", "{{.ID}}"])
            .output()
            .unwrap(),
    );
    assert!(!ids[0].is_empty() && ids[0] != ids[1], "engine IDs {ids:?}");
    assert!(
        !ids.contains(&machine),
        "a host shares the machine's engine"
    );
    for (i, h) in sim.hosts.iter().enumerate() {
        assert_eq!(on(i, "echo $DOCKER_HOST"), h.docker_host);
        assert_eq!(on(i, "hostname"), h.name);
    }

    // Each host reaches the machine at its gateway, as it would a registry or a database.
    let service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = service.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in service.incoming().flatten() {
            let _ = conn.read(&mut [0; 4096]);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nmachine\n");
        }
    });
    for (i, h) in sim.hosts.iter().enumerate() {
        let url = format!("http://{}:{port}/", h.gateway);
        assert_eq!(on(i, &format!("curl -fsS -m 5 {url}")), "machine");
    }

    // Same path, separate files.
    on(0, "echo from-0 > /var/lib/davit/x");
    assert_eq!(on(0, "cat /var/lib/davit/x"), "from-0");
    assert_eq!(
        on(1, "test -e /var/lib/davit/x && echo yes || echo no"),
        "no"
    );
    assert!(!Path::new("/var/lib/davit/x").exists());
    assert!(sim.hosts[0].state_root.join("x").exists());
    assert!(!sim.hosts[1].state_root.join("x").exists());

    // Same published port on both hosts, each reaching its own container.
    build_image(d);
    sim.load_image(IMAGE);
    for (i, h) in sim.hosts.iter().enumerate() {
        on(
            i,
            &format!(
                "docker run -d --name web -p 127.0.0.1:18080:80 {IMAGE} /bin/busybox sh -c \
                 'mkdir /www && echo {name} > /www/index.html && exec /bin/busybox httpd -f -p 80 -h /www'",
                name = h.name
            ),
        );
    }
    let get = "for i in $(seq 100); do curl -fsS http://127.0.0.1:18080/ && exit 0; sleep 0.1; done; exit 1";
    for (i, h) in sim.hosts.iter().enumerate() {
        assert_eq!(on(i, get), h.name);
        assert_eq!(
            ok("exec", sim.exec(i, "docker ps --format '{{.Names}}'")),
            "web"
        );
    }

    // A cut host times out (not refused) while the other answers; restored, it answers again.
    sim.cut(1);
    let t = Instant::now();
    let out = ssh(d, &sim.hosts[1].addr, "true");
    let took = t.elapsed();
    assert!(!out.status.success(), "ssh to a cut host succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out"), "not a timeout: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(on(0, "hostname"), sim.hosts[0].name);
    sim.restore(1);
    assert_eq!(on(1, get), sim.hosts[1].name);

    // What a session leaves running (as davit leaves nginx) belongs to the host and goes with it.
    let orphan = format!("sleep {}", 1_000_000 + std::process::id());
    on(0, &format!("setsid {orphan} </dev/null >/dev/null 2>&1 &"));
    let running = || {
        let out = Command::new("pgrep").args(["-fx", &orphan]).output();
        !out.unwrap().stdout.is_empty()
    };
    let t = Instant::now();
    while !running() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "`{orphan}` did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let t = Instant::now();
    drop(sim);
    eprintln!("2 hosts removed in {:?}", t.elapsed());
    let netns = ok(
        "ip netns",
        Command::new("ip").args(["netns", "list"]).output().unwrap(),
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!running(), "`{orphan}` outlived its host");
    for ((name, veth), sock) in names.iter().zip(&veths).zip(&socks) {
        assert!(
            !netns.split_whitespace().any(|n| n == name),
            "{name} left: {netns}"
        );
        assert!(
            !Path::new("/sys/class/net").join(veth).exists(),
            "{veth} left"
        );
        let netns_file = format!("/run/netns/{name}");
        assert!(
            !mounts
                .lines()
                .any(|l| l.split_whitespace().nth(4) == Some(&netns_file)),
            "{netns_file} still mounted"
        );
        let sock = sock.trim_start_matches("unix://");
        assert!(!Path::new(sock).exists(), "{sock} left");
        let files = format!("{}/", Path::new(sock).parent().unwrap().display());
        let procs = Command::new("pgrep").args(["-f", &files]).output().unwrap();
        assert!(
            procs.stdout.is_empty(),
            "processes of {name} left: {}",
            String::from_utf8_lossy(&procs.stdout)
        );
    }
}
