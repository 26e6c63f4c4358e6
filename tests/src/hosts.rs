//! Several Linux servers simulated on this one machine, for end-to-end tests of multi-host
//! deploys over SSH.
//!
//! A multi-host deploy can only be tested against hosts that really are separate: a port one
//! host binds must still be free on the next, a file one writes under `/var/lib/davit` must not
//! appear on another, and a host that stops answering must look dead to ssh, not refuse the
//! connection. So each [`SimHost`] is its own network namespace (address, loopback, ports),
//! reached from the test over a veth pair; its own mount and UTS namespaces (its own
//! `/var/lib/davit`, `/tmp`, `/etc/docker` and hostname); its own dockerd; and its own sshd on
//! `<addr>:22`, whose sessions get that dockerd in `DOCKER_HOST`. Whatever a session starts
//! (nginx, containers) inherits all of it. The rest of the filesystem is shared, so the machine's
//! docker, nginx and curl are there as on a real server.
//!
//! Hosts take numbered slots (`10.231.<k>.0/24`, netns `dvsim<k>`, files under
//! `/var/tmp/dvsim/<k>`) claimed with an flock that a child of the test process holds, so the
//! slot is released when the test process dies, however it dies. Dropping the hosts removes their
//! containers, kills every process in their namespaces and deletes the namespaces, links and
//! files; a slot found unlocked with leftovers (a killed run) is cleaned the same way first.
//!
//! It needs root, iproute2, util-linux, iptables, dockerd and sshd. Without them
//! [`SimHosts::start_or_skip`] skips with a reason, except under `CI=true`, where it fails.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Machine-wide rather than per checkout, because slots (addresses, interface names) are
/// machine-wide and any later run must find what a killed one left; not `/tmp`, which the
/// key-leak tests scan.
const ROOT: &str = "/var/tmp/dvsim";
const SLOTS: std::ops::RangeInclusive<u8> = 1..=254;

/// One simulated server.
pub struct SimHost {
    /// Its netns, hostname and interface prefix: `dvsim<k>`.
    pub name: String,
    /// Where its sshd listens (port 22), e.g. `10.231.7.2`.
    pub addr: String,
    /// The machine as this host reaches it (`10.231.<k>.1`, the root namespace's end of the
    /// link and the host's default route): services bound there or to 0.0.0.0 answer. Traffic
    /// between hosts is not arranged for.
    pub gateway: String,
    /// Its dockerd, as its ssh sessions see it in `DOCKER_HOST` (`unix://...`).
    pub docker_host: String,
    /// The folder it sees as `/var/lib/davit`.
    pub state_root: PathBuf,
    /// The folder it sees as `/tmp`.
    pub tmp: PathBuf,
    /// The root namespace's end of its veth pair.
    pub veth: String,
    slot: Slot,
    /// `sleep` inside the namespaces, which keeps them alive and is what `nsenter -t` enters.
    holder: Option<Child>,
    daemons: Vec<(&'static str, Child)>,
}

/// Simulated servers that all trust one client key. Dropping it removes them.
pub struct SimHosts {
    pub hosts: Vec<SimHost>,
    /// The client's private key (OpenSSH format), authorized for root on every host.
    pub client_key: String,
    /// A known_hosts line per host: `<addr> ssh-ed25519 AAAA...`.
    pub known_hosts: String,
}

impl SimHosts {
    /// Start `n` hosts, or None after printing why this machine cannot (a panic when CI=true).
    pub fn start_or_skip(test: &str, n: usize) -> Option<SimHosts> {
        if let Some(why) = unavailable() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {why}; CI=true, so this is a failure, not a skip");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
        Some(SimHosts::start(n))
    }

    fn start(n: usize) -> SimHosts {
        for dir in [ROOT, "/run/sshd", "/var/lib/davit", "/etc/docker"] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {dir}: {e}"));
        }
        sweep();
        let keys = tempfile::tempdir_in(ROOT).unwrap();
        let client = keys.path().join("client");
        keygen(&client);
        let client_key = std::fs::read_to_string(&client).unwrap();
        let client_pub = std::fs::read_to_string(client.with_extension("pub")).unwrap();
        drop(keys);
        let mut sim = SimHosts {
            hosts: Vec::new(),
            client_key,
            known_hosts: String::new(),
        };
        // Pushed as soon as each exists, so a panic from here on removes what was made.
        for _ in 0..n {
            sim.hosts.push(SimHost::start(claim(), &client_pub));
        }
        for h in &mut sim.hosts {
            h.wait_ready();
            sim.known_hosts += &format!("{} {}\n", h.addr, h.host_key());
        }
        sim
    }

    /// Copy an image from the machine's engine into every host's engine (`docker save | load`).
    pub fn load_image(&self, image: &str) {
        let file = tempfile::Builder::new()
            .prefix("image-")
            .tempfile_in(ROOT)
            .unwrap();
        let out = Command::new("docker")
            .args(["save", "-o"])
            .arg(file.path())
            .arg(image)
            .output()
            .expect("run docker");
        assert!(out.status.success(), "docker save {image}: {out:?}");
        for h in &self.hosts {
            let out = Command::new("docker")
                .args(["-H", &h.docker_host, "load", "-i"])
                .arg(file.path())
                .output()
                .expect("run docker");
            assert!(out.status.success(), "docker load on {}: {out:?}", h.name);
        }
    }

    /// Make host `i` stop answering, as a dead server or a partition would: every packet on its
    /// link is dropped, so new connections time out and open ones stall. Its processes run on.
    pub fn cut(&self, i: usize) {
        let h = &self.hosts[i];
        h.in_netns(&format!(
            "set -e; iptables -w -I INPUT -i {v} -j DROP; iptables -w -I OUTPUT -o {v} -j DROP",
            v = h.inner_veth()
        ));
    }

    /// Undo `cut`: stalled connections resume, new ones are accepted.
    pub fn restore(&self, i: usize) {
        let h = &self.hosts[i];
        h.in_netns(&format!(
            "while iptables -w -D INPUT -i {v} -j DROP 2>/dev/null; do :; done; \
             while iptables -w -D OUTPUT -o {v} -j DROP 2>/dev/null; do :; done",
            v = h.inner_veth()
        ));
    }

    /// Make the hosts one Docker Swarm: host 0 initialises it (the manager) and the others join
    /// as workers over their own addresses, so Swarm's traffic (2377, 7946, VXLAN on UDP 4789)
    /// crosses the links like between real servers. The machine forwards between the hosts'
    /// subnets (a `DOCKER-USER` ACCEPT per host, removed with the host). A 1 s dispatcher
    /// heartbeat makes a cut-off node `Down` within seconds. Returns once every node is Ready.
    pub fn form_swarm(&self) {
        for h in &self.hosts {
            allow_forwarding(h.slot.k);
        }
        let manager = &self.hosts[0];
        let docker = |h: &SimHost, args: &[&str]| -> String {
            let out = Command::new("docker")
                .args(["-H", &h.docker_host])
                .args(args)
                .output()
                .expect("run docker");
            assert!(out.status.success(), "{}: docker {args:?}: {out:?}", h.name);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        docker(
            manager,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &manager.addr,
                "--dispatcher-heartbeat",
                "1s",
            ],
        );
        let token = docker(manager, &["swarm", "join-token", "-q", "worker"]);
        for h in &self.hosts[1..] {
            docker(
                h,
                &[
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    "--advertise-addr",
                    &h.addr,
                    &format!("{}:2377", manager.addr),
                ],
            );
        }
        self.wait_swarm_ready(Duration::from_secs(60));
    }

    /// Wait until the manager sees every host as a Ready node (after `form_swarm`, or after
    /// `restore` of a cut-off node).
    pub fn wait_swarm_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = Command::new("docker")
                .args(["-H", &self.hosts[0].docker_host])
                .args(["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
                .output()
                .expect("run docker");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ready = text.lines().filter(|l| l.ends_with(" Ready")).count();
            if ready == self.hosts.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "swarm nodes not all Ready after {limit:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Run `sh -c cmd` on host `i` as its ssh sessions would (its namespaces, its
    /// `DOCKER_HOST`), without going through ssh: for assertions such as `curl` or `docker ps`.
    pub fn exec(&self, i: usize, cmd: &str) -> Output {
        let h = &self.hosts[i];
        Command::new("nsenter")
            .args(h.enter())
            .args(["sh", "-c", cmd])
            .env("DOCKER_HOST", &h.docker_host)
            .current_dir("/")
            .output()
            .expect("run nsenter")
    }
}

impl Drop for SimHosts {
    fn drop(&mut self) {
        // In parallel: each host's teardown mostly waits (docker rm, processes dying).
        std::thread::scope(|s| {
            for h in self.hosts.drain(..) {
                s.spawn(move || drop(h));
            }
        });
    }
}

impl SimHost {
    /// Make the link, namespaces and daemons of a claimed slot; `wait_ready` waits for them.
    fn start(slot: Slot, client_pub: &str) -> SimHost {
        let k = slot.k;
        let name = format!("dvsim{k}");
        let dir = slot.dir();
        let mut h = SimHost {
            addr: format!("10.231.{k}.2"),
            gateway: format!("10.231.{k}.1"),
            docker_host: format!("unix://{}", dir.join("docker.sock").display()),
            state_root: dir.join("davit"),
            tmp: dir.join("tmp"),
            veth: format!("{name}o"),
            name,
            slot,
            holder: None,
            daemons: Vec::new(),
        };
        // From here a panic drops `h`, which removes whatever was made.
        for d in ["davit", "tmp", "etc-docker", "docker", "exec"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::set_permissions(&h.tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (name, veth, inner) = (&h.name, &h.veth, h.inner_veth());
        run_sh(&format!(
            "set -e
             ip link add {veth} type veth peer name {inner}
             ip netns add {name}
             ip link set {inner} netns {name}
             ip addr add {gateway}/24 dev {veth}
             ip link set {veth} up
             ip -n {name} addr add {addr}/24 dev {inner}
             ip -n {name} link set {inner} up
             ip -n {name} link set lo up
             ip -n {name} route add default via {gateway}",
            addr = h.addr,
            gateway = h.gateway,
        ));
        h.spawn_holder();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        h.spawn(
            "dockerd",
            Command::new("dockerd")
                .arg("--config-file")
                .arg(dir.join("daemon.json"))
                .arg("--data-root")
                .arg(dir.join("docker"))
                .arg("--exec-root")
                .arg(dir.join("exec"))
                .arg("--pidfile")
                .arg(dir.join("docker.pid"))
                .args(["-H", &h.docker_host]),
        );
        keygen(&dir.join("host_ed25519"));
        std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
        let config = format!(
            "Port 22\nListenAddress {addr}\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nLogLevel INFO\nMaxSessions 50\nMaxStartups 100\n\
             SetEnv DOCKER_HOST={docker}\n",
            addr = h.addr,
            dir = dir.display(),
            docker = h.docker_host,
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        h.spawn(
            "sshd",
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(dir.join("sshd_config")),
        );
        h
    }

    /// Enter a new mount and UTS namespace inside the netns, give it this host's folders and
    /// name, and keep it alive with `sleep`.
    fn spawn_holder(&mut self) {
        let script = r#"set -e
            mount --bind "$1/davit" /var/lib/davit
            mount --bind "$1/tmp" /tmp
            mount --bind "$1/etc-docker" /etc/docker
            echo "$2" > /proc/sys/kernel/hostname
            echo ready
            exec sleep infinity"#;
        let dir = self.slot.dir();
        // nsenter and unshare exec without forking, so the child is the holder itself.
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args(["sh", "-c", script, "sh"])
            .arg(&dir)
            .arg(&self.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&dir.join("holder.log")))
            .spawn()
            .expect("run nsenter");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        self.holder = Some(child);
        assert_eq!(
            line.trim(),
            "ready",
            "{}: namespaces: {}",
            self.name,
            read(&dir.join("holder.log"))
        );
    }

    /// `nsenter` arguments that enter this host's namespaces.
    fn enter(&self) -> Vec<String> {
        let pid = self.holder.as_ref().expect("host runs").id();
        vec![
            "-t".into(),
            pid.to_string(),
            "-m".into(),
            "-n".into(),
            "-u".into(),
        ]
    }

    fn spawn(&mut self, what: &'static str, cmd: &mut Command) {
        let log = self.slot.dir().join(format!("{what}.log"));
        let mut c = Command::new("nsenter");
        c.args(self.enter())
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log));
        let child = c.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        self.daemons.push((what, child));
    }

    /// Wait until dockerd answers and sshd accepts connections from the root namespace.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let sshd: std::net::SocketAddr = format!("{}:22", self.addr).parse().unwrap();
        let (mut docker, mut ssh) = (false, false);
        while !(docker && ssh) {
            for (what, c) in &mut self.daemons {
                if let Ok(Some(status)) = c.try_wait() {
                    let log = read(&self.slot.dir().join(format!("{what}.log")));
                    panic!("{}: {what} exited ({status}): {log}", self.name);
                }
            }
            docker = docker
                || Command::new("docker")
                    .args(["-H", &self.docker_host, "info", "--format", "{{.ID}}"])
                    .output()
                    .is_ok_and(|o| o.status.success());
            ssh =
                ssh || std::net::TcpStream::connect_timeout(&sshd, Duration::from_secs(1)).is_ok();
            assert!(
                Instant::now() < deadline,
                "{}: not up after 60s (dockerd {docker}, sshd {ssh}): {}{}",
                self.name,
                read(&self.slot.dir().join("dockerd.log")),
                read(&self.slot.dir().join("sshd.log")),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ssh-ed25519 AAAA...` of this host's key.
    pub fn host_key(&self) -> String {
        let text = read(&self.slot.dir().join("host_ed25519.pub"));
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What its sshd logged (one `Accepted publickey` line per login).
    pub fn sshd_log(&self) -> String {
        read(&self.slot.dir().join("sshd.log"))
    }

    fn inner_veth(&self) -> String {
        format!("{}i", self.name)
    }

    /// Run a script in this host's network namespace only (iptables sees its rules there).
    fn in_netns(&self, script: &str) {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.name))
            .args(["sh", "-c", script])
            .output()
            .expect("run nsenter");
        assert!(out.status.success(), "{}: {script}: {out:?}", self.name);
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        clean_slot(self.slot.k);
        for c in self
            .holder
            .iter_mut()
            .chain(self.daemons.iter_mut().map(|(_, c)| c))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The slot's lock goes with `self.slot`, after this.
    }
}

/// Slot `k`, locked by this process: a `flock` child holds the lock while it reads our pipe,
/// and the pipe closes when we exit or die, so a killed run cannot keep a slot.
struct Slot {
    k: u8,
    lock: Child,
}

impl Slot {
    fn try_lock(k: u8) -> Option<Slot> {
        let mut lock = Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "75", "--close"])
            .arg(format!("{ROOT}/{k}.lock"))
            .args(["sh", "-c", "echo locked && exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run flock");
        let mut line = String::new();
        let _ = BufReader::new(lock.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() == "locked" {
            Some(Slot { k, lock })
        } else {
            let _ = lock.wait();
            None
        }
    }

    fn dir(&self) -> PathBuf {
        slot_dir(self.k)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.lock.stdin.take());
        let _ = self.lock.wait();
    }
}

fn slot_dir(k: u8) -> PathBuf {
    Path::new(ROOT).join(k.to_string())
}

/// The first free slot, cleaned of anything a killed run left in it.
fn claim() -> Slot {
    for k in SLOTS {
        if let Some(slot) = Slot::try_lock(k) {
            clean_slot(k);
            return slot;
        }
    }
    panic!("all {} simulated-host slots are in use", SLOTS.len());
}

/// Clean every unlocked slot that has leftovers, so a killed run's daemons do not outlive it
/// until its slot happens to be reused.
fn sweep() {
    for k in SLOTS {
        let name = format!("dvsim{k}");
        let leftovers = slot_dir(k).exists()
            || Path::new("/run/netns").join(&name).exists()
            || Path::new("/sys/class/net")
                .join(format!("{name}o"))
                .exists();
        if leftovers && let Some(_slot) = Slot::try_lock(k) {
            clean_slot(k);
        }
    }
}

/// Remove everything of slot `k`: containers, processes, netns, link and files. Only the
/// holder of the slot's lock calls this.
fn clean_slot(k: u8) {
    let name = format!("dvsim{k}");
    let dir = slot_dir(k);
    let sock = dir.join("docker.sock");
    if sock.exists() {
        // Through dockerd first, so runc removes the containers' cgroups and mounts.
        let host = format!("unix://{}", sock.display());
        let ids = Command::new("timeout")
            .args(["20", "docker", "-H", &host, "ps", "-aq"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !ids.trim().is_empty() {
            let _ = Command::new("timeout")
                .args(["60", "docker", "-H", &host, "rm", "-f"])
                .args(ids.split_whitespace())
                .output();
        }
    }
    forbid_forwarding(k);
    let netns = Path::new("/run/netns").join(&name);
    if let Ok(m) = std::fs::metadata(&netns) {
        kill_namespace(m.ino());
    }
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    // The veth goes with the netns, asynchronously; remove it by hand if it lingers.
    let link = Path::new("/sys/class/net").join(format!("{name}o"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while link.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if link.exists() {
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{name}o")])
            .output();
    }
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("warning: removing {}: {e}", dir.display());
    }
}

/// The machine's FORWARD policy is DROP (Docker sets it) and Docker accepts only its own
/// bridges' traffic; `DOCKER-USER` is where Docker lets others add rules. One rule per slot,
/// tagged with the slot's name, so each host removes exactly its own.
fn forwarding_rule(k: u8) -> Vec<String> {
    let subnet = format!("10.231.{k}.0/24");
    [
        "DOCKER-USER",
        "-s",
        &subnet,
        "-d",
        "10.231.0.0/16",
        "-m",
        "comment",
        "--comment",
        &format!("dvsim{k}"),
        "-j",
        "ACCEPT",
    ]
    .map(String::from)
    .to_vec()
}

fn allow_forwarding(k: u8) {
    let out = Command::new("iptables")
        .args(["-w", "-I"])
        .args(forwarding_rule(k))
        .output()
        .expect("run iptables");
    assert!(out.status.success(), "iptables -I DOCKER-USER: {out:?}");
}

fn forbid_forwarding(k: u8) {
    // Twice at most in practice (a killed run's rule, then ours); bounded anyway.
    for _ in 0..10 {
        let gone = Command::new("iptables")
            .args(["-w", "-D"])
            .args(forwarding_rule(k))
            .stderr(Stdio::null())
            .status()
            .map_or(true, |s| !s.success());
        if gone {
            break;
        }
    }
}

/// SIGKILL every process in the network namespace with inode `netns`, and their descendants
/// (containers have namespaces of their own under a shim that is in this one), until none is
/// left or 10 s have passed.
fn kill_namespace(netns: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = processes();
        let mut doomed: Vec<u32> = procs
            .iter()
            .filter(|p| p.netns == Some(netns))
            .map(|p| p.pid)
            .collect();
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            for p in &procs {
                if p.ppid == parent && !doomed.contains(&p.pid) {
                    doomed.push(p.pid);
                }
            }
            i += 1;
        }
        doomed.retain(|&p| p > 1 && p != std::process::id());
        if doomed.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("warning: processes {doomed:?} of a simulated host did not die");
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(doomed.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Proc {
    pid: u32,
    ppid: u32,
    netns: Option<u64>,
}

/// Live processes (zombies are dead enough) with their parent and network namespace.
fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces, so parse after the last ')'.
        let mut fields = stat
            .rsplit_once(')')
            .map_or("", |(_, a)| a)
            .split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let Some(ppid) = fields.next().and_then(|p| p.parse().ok()) else {
            continue;
        };
        if state == "Z" || state == "X" {
            continue;
        }
        let netns = std::fs::read_link(entry.path().join("ns/net"))
            .ok()
            .and_then(|l| {
                let l = l.to_string_lossy().into_owned();
                l.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
            });
        out.push(Proc { pid, ppid, netns });
    }
    out
}

/// Why simulated hosts (or the swarm demo's nodes, made the same way) cannot run here, if
/// they cannot.
pub fn unavailable() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        _ => return Some("simulated hosts need root (namespaces, mounts, sshd)".into()),
    }
    for tool in [
        "ip",
        "nsenter",
        "unshare",
        "flock",
        "mount",
        "iptables",
        "dockerd",
        "docker",
        "/usr/sbin/sshd",
        "ssh-keygen",
    ] {
        if which::which(tool).is_err() {
            return Some(format!(
                "`{tool}` is missing (iproute2, util-linux, iptables, docker.io, openssh-server)"
            ));
        }
    }
    None
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "davit-sim", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

fn run_sh(script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{script}: {out:?}");
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
