//! A Docker Swarm of several nodes on this one machine, for `davit demo --strategy swarm`.
//!
//! The swarm strategy is about several servers, and a one-node swarm would hide what it does
//! (a proxy on every node reaching tasks on the others, replicas spread over nodes). So each
//! node is made the way the tests' simulated hosts are (`tests/src/hosts.rs`, which the product
//! cannot depend on): its own network namespace (address, ports, iptables), reached over a veth
//! pair, with its own mount namespace (its own `/etc/docker`, where an engine keeps its
//! identity) and its own dockerd. Swarm's traffic between nodes (2377, 7946, VXLAN on 4789)
//! crosses the links through this machine like between servers; no routing mesh (no IPVS is
//! needed). It needs root, iproute2, util-linux, iptables and dockerd.
//!
//! Everything it makes has the `dvdemo` prefix (namespaces, links, the `DOCKER-USER` rules) or
//! lives under [`ROOT`], so [`sweep`] can remove what a killed run left, and dropping the
//! [`Lab`] removes what it made. A lock file held by a child process keeps two demos apart.

use davit_core::Failure;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the nodes' engines keep their data; not `/tmp` (a tmpfs on some machines, too small
/// for three engines' images).
pub const ROOT: &str = "/var/tmp/davit-demo-swarm";

/// The programs the lab runs.
pub const TOOLS: [&str; 7] = [
    "ip", "nsenter", "unshare", "flock", "iptables", "dockerd", "docker",
];

/// One node: a network namespace with its own dockerd.
pub struct Node {
    /// Its netns and hostname, `dvdemo<k>`.
    pub name: String,
    /// Its address, `10.232.<k>.2`, which the swarm and its proxy use.
    pub addr: String,
    /// Its dockerd, `unix://<ROOT>/<k>/docker.sock`.
    pub docker_host: String,
    k: u8,
    holder: Option<Child>,
    dockerd: Option<Child>,
}

/// Nodes formed into one swarm; node 0 is the manager. Dropping it removes everything.
pub struct Lab {
    pub nodes: Vec<Node>,
    lock: Child,
}

impl Lab {
    /// Start `n` nodes (their engines answering), or say why not. Leftovers of a killed run
    /// are removed first.
    pub fn start(n: u8) -> Result<Lab, Failure> {
        std::fs::create_dir_all(ROOT).map_err(|e| Failure::infra(format!("create {ROOT}: {e}")))?;
        let lock = lock()?;
        sweep_unlocked();
        let mut lab = Lab {
            nodes: Vec::new(),
            lock,
        };
        // Pushed as soon as each exists, so a failure from here on removes what was made.
        for k in 1..=n {
            lab.nodes.push(Node::new(k));
            lab.nodes.last_mut().expect("just pushed").start()?;
        }
        for node in &mut lab.nodes {
            node.wait_ready()?;
        }
        Ok(lab)
    }

    /// Node 0 initialises the swarm over its own address and the others join as workers, so
    /// every node's traffic crosses the links. Returns once every node is Ready.
    pub fn form_swarm(&self) -> Result<(), Failure> {
        let manager = &self.nodes[0];
        manager.docker(&["swarm", "init", "--advertise-addr", &manager.addr])?;
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"])?;
        for node in &self.nodes[1..] {
            node.docker(&[
                "swarm",
                "join",
                "--token",
                token.trim(),
                "--advertise-addr",
                &node.addr,
                &format!("{}:2377", manager.addr),
            ])?;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = manager.docker(&["node", "ls", "--format", "{{.Status}}"])?;
            if text.lines().filter(|l| *l == "Ready").count() == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failure::infra(format!(
                    "the swarm's nodes are not all Ready after 90s: {text}"
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Copy images from this machine's engine into every node's (`docker save | load`): the
    /// nodes cannot pull them from a registry.
    pub fn load_images(&self, images: &[String]) -> Result<(), Failure> {
        let file = Path::new(ROOT).join("images.tar");
        let out = Command::new("docker")
            .args(["save", "-o"])
            .arg(&file)
            .args(images)
            .output()
            .map_err(|e| Failure::infra(format!("run docker save: {e}")))?;
        check("docker save", &out)?;
        let loaded = self.nodes.iter().try_for_each(|n| {
            n.docker(&["load", "-i", &file.display().to_string()])
                .map(drop)
        });
        let _ = std::fs::remove_file(&file);
        loaded
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // In parallel: each node's removal mostly waits (docker rm, processes dying).
        std::thread::scope(|s| {
            for node in &mut self.nodes {
                s.spawn(|| node.stop());
            }
        });
        let _ = std::fs::remove_file(Path::new(ROOT).join("images.tar"));
        // Nothing of the demo is left: the lock file goes before the lock is released.
        let _ = std::fs::remove_file(Path::new(ROOT).join("lock"));
        let _ = std::fs::remove_dir(ROOT);
        drop(self.lock.stdin.take());
        let _ = self.lock.wait();
    }
}

impl Node {
    fn new(k: u8) -> Node {
        Node {
            name: format!("dvdemo{k}"),
            addr: format!("10.232.{k}.2"),
            docker_host: format!("unix://{}", dir(k).join("docker.sock").display()),
            k,
            holder: None,
            dockerd: None,
        }
    }

    /// The link, the namespaces, forwarding between the nodes, and dockerd.
    fn start(&mut self) -> Result<(), Failure> {
        let (k, name, d) = (self.k, &self.name, dir(self.k));
        for sub in ["etc-docker", "docker", "exec"] {
            std::fs::create_dir_all(d.join(sub))
                .map_err(|e| Failure::infra(format!("create {}: {e}", d.display())))?;
        }
        sh(&format!(
            "set -e
             ip link add {name}o type veth peer name {name}i
             ip netns add {name}
             ip link set {name}i netns {name}
             ip addr add 10.232.{k}.1/24 dev {name}o
             ip link set {name}o up
             ip -n {name} addr add {addr}/24 dev {name}i
             ip -n {name} link set {name}i up
             ip -n {name} link set lo up
             ip -n {name} route add default via 10.232.{k}.1
             iptables -w -I {rule}",
            addr = self.addr,
            rule = forwarding_rule(k),
        ))?;
        // A mount namespace of its own inside the netns, kept alive by `sleep`; nsenter and
        // unshare exec without forking, so the child is the holder itself.
        let mut holder = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{name}"))
            .args(["unshare", "--mount", "--uts", "--propagation", "private"])
            .args([
                "sh",
                "-c",
                "set -e; mount --bind \"$1/etc-docker\" /etc/docker; \
                 echo \"$2\" > /proc/sys/kernel/hostname; echo ready; exec sleep infinity",
                "sh",
            ])
            .arg(&d)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Failure::infra(format!("run nsenter: {e}")))?;
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().expect("piped")).read_line(&mut line);
        let pid = holder.id().to_string();
        self.holder = Some(holder);
        if line.trim() != "ready" {
            return Err(Failure::infra(format!(
                "{name}: could not make its namespaces (are you root?)"
            )));
        }
        std::fs::write(d.join("daemon.json"), "{}")
            .map_err(|e| Failure::infra(format!("write daemon.json: {e}")))?;
        let log = std::fs::File::create(d.join("dockerd.log"))
            .map_err(|e| Failure::infra(format!("dockerd log: {e}")))?;
        let dockerd = Command::new("nsenter")
            .args(["-t", &pid, "-m", "-n", "-u", "dockerd", "--config-file"])
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("docker"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args(["-H", &self.docker_host])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| Failure::infra(e.to_string()))?)
            .stderr(log)
            .spawn()
            .map_err(|e| Failure::infra(format!("start dockerd: {e}")))?;
        self.dockerd = Some(dockerd);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), Failure> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(Ok(Some(status))) = self.dockerd.as_mut().map(Child::try_wait) {
                return Err(Failure::infra(format!(
                    "{}: dockerd exited ({status}); see {}",
                    self.name,
                    dir(self.k).join("dockerd.log").display()
                )));
            }
            if self.docker(&["info", "--format", "{{.ID}}"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failure::infra(format!(
                    "{}: dockerd not up after 90s; see {}",
                    self.name,
                    dir(self.k).join("dockerd.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker` against this node's engine; its stdout.
    pub fn docker(&self, args: &[&str]) -> Result<String, Failure> {
        let out = Command::new("docker")
            .args(["-H", &self.docker_host])
            .args(args)
            .output()
            .map_err(|e| Failure::infra(format!("run docker: {e}")))?;
        check(&format!("{}: docker {}", self.name, args.join(" ")), &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn stop(&mut self) {
        clean(self.k);
        for c in self.holder.iter_mut().chain(self.dockerd.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Remove what a demo run left, when no demo runs (`davit demo --down`).
pub fn sweep() -> Result<(), Failure> {
    if !Path::new(ROOT).exists() {
        return Ok(());
    }
    let mut lock = lock()?;
    sweep_unlocked();
    let _ = std::fs::remove_file(Path::new(ROOT).join("images.tar"));
    let _ = std::fs::remove_file(Path::new(ROOT).join("lock"));
    let _ = std::fs::remove_dir(ROOT);
    drop(lock.stdin.take());
    let _ = lock.wait();
    Ok(())
}

fn sweep_unlocked() {
    for k in 1..=9 {
        let name = format!("dvdemo{k}");
        if dir(k).exists()
            || Path::new("/run/netns").join(&name).exists()
            || Path::new("/sys/class/net")
                .join(format!("{name}o"))
                .exists()
        {
            clean(k);
        }
    }
}

/// Hold `<ROOT>/lock` in a child process for as long as it runs (the pipe to it closes when
/// this process ends, however it ends).
fn lock() -> Result<Child, Failure> {
    let mut child = Command::new("flock")
        .args(["--nonblock", "--conflict-exit-code", "75", "--close"])
        .arg(Path::new(ROOT).join("lock"))
        .args(["sh", "-c", "echo locked && exec cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::infra(format!("run flock: {e}")))?;
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
    if line.trim() == "locked" {
        Ok(child)
    } else {
        let _ = child.wait();
        Err(
            Failure::infra("another swarm demo is running on this machine")
                .with_hint("wait for it to end, or run `davit demo --down` once it has"),
        )
    }
}

fn dir(k: u8) -> PathBuf {
    Path::new(ROOT).join(k.to_string())
}

/// Lets the machine forward between the nodes' subnets: Docker sets the FORWARD policy to
/// DROP and accepts only its own bridges; `DOCKER-USER` is where it lets others add rules.
fn forwarding_rule(k: u8) -> String {
    format!(
        "DOCKER-USER -s 10.232.{k}.0/24 -d 10.232.0.0/16 -m comment --comment dvdemo{k} -j ACCEPT"
    )
}

/// Remove node `k`: its engine's containers (through dockerd, so their mounts and cgroups
/// go too), every process in its namespace, the namespace, the link, the rule and the files.
fn clean(k: u8) {
    let name = format!("dvdemo{k}");
    let sock = dir(k).join("docker.sock");
    if sock.exists() {
        let _ = sh(&format!(
            "ids=$(timeout 20 docker -H unix://{s} ps -aq) && [ -n \"$ids\" ] && timeout 60 docker -H unix://{s} rm -f $ids",
            s = sock.display()
        ));
    }
    let _ = sh(&format!(
        "for i in 1 2 3 4 5; do iptables -w -D {} 2>/dev/null || break; done",
        forwarding_rule(k)
    ));
    if let Ok(m) = std::fs::metadata(Path::new("/run/netns").join(&name)) {
        kill_namespace(m.ino());
    }
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
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
    let _ = std::fs::remove_dir_all(dir(k));
}

/// SIGKILL every process in the network namespace with inode `netns`, and their descendants
/// (containers have namespaces of their own under a shim that is in this one), until none is
/// left or 10 s have passed.
pub fn kill_namespace(netns: u64) {
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
        if doomed.is_empty() || Instant::now() > deadline {
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

fn sh(script: &str) -> Result<(), Failure> {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .map_err(|e| Failure::infra(format!("run sh: {e}")))?;
    check(script, &out)
}

fn check(what: &str, out: &Output) -> Result<(), Failure> {
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure::infra(format!(
            "{what}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )))
    }
}
