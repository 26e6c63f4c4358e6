//! The nginx instance davit manages for a blue-green environment.
//!
//! davit owns a small nginx configuration per environment: a fixed main file that includes one
//! site file, and the site file holds the upstream (which color is live) and the server block. A
//! switch writes a candidate site file, tests it with `nginx -t` through a candidate main file
//! that includes the candidate, and only then renames it over the live one and reloads. So the
//! live file is only ever replaced by a configuration nginx has accepted, and a rejected candidate
//! leaves it byte-identical (T17). The first line of the site file records which color and
//! release it points at; that line is the single source of truth for "what is live".

use crate::target::{Target, url_host};
use davit_core::{Cmd, Failure};
use davit_exec::Executor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MARKER: &str = "# davit-live";

/// `worker_processes` of the main file: one generation of workers (see [`ProxyDrain`]).
///
/// [`ProxyDrain`]: davit_core::ProxyDrain
pub const WORKER_PROCESSES: u32 = 1;

/// The name of the traffic log's format in the site file.
pub const TRAFFIC_FORMAT: &str = "davit_traffic";

/// One JSON object per response: when (`$msec`, seconds since the epoch with milliseconds),
/// which color and release served it, nginx's status, the app's status and timing (`-` or
/// empty when nginx never got an answer from the app: a refused, reset or timed-out upstream,
/// which nginx answers 502 or 504 itself) and nginx's own time. No URI, query or header: they
/// can carry secrets. `escape=json` keeps every value a valid JSON string.
fn traffic_format(color: &str, release: &str) -> String {
    format!(
        "log_format {TRAFFIC_FORMAT} escape=json '{{\"t\":$msec,\"color\":\"{color}\",\"release\":\"{release}\",\"status\":$status,\"upstream_status\":\"$upstream_status\",\"upstream_addr\":\"$upstream_addr\",\"upstream_time\":\"$upstream_response_time\",\"request_time\":$request_time}}';\n"
    )
}

/// Paths of the managed instance.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    /// The nginx program to run.
    pub nginx: String,
}

impl Files {
    pub fn new(dir: PathBuf, nginx: &str) -> Self {
        Files {
            dir,
            nginx: nginx.to_string(),
        }
    }

    /// The managed instance of a blue-green target.
    pub fn of(t: &Target) -> Self {
        Files::new(t.proxy_dir(), &t.proxy.nginx)
    }
    pub fn main(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }
    pub fn candidate_main(&self) -> PathBuf {
        self.dir.join("nginx.candidate.conf")
    }
    pub fn site(&self) -> PathBuf {
        self.dir.join("site.conf")
    }
    pub fn candidate_site(&self) -> PathBuf {
        self.dir.join("site.conf.candidate")
    }
    pub fn previous_site(&self) -> PathBuf {
        self.dir.join("site.conf.previous")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("nginx.pid")
    }
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }
    /// The traffic log of one color: a JSON line per response nginx sent while that color was
    /// live (see [`TRAFFIC_FORMAT`]), which verify follows (`davit-verify`'s traffic module).
    pub fn traffic_log(&self, color: &str) -> PathBuf {
        self.dir.join(format!("traffic-{color}.log"))
    }

    fn main_text(&self, site: &Path) -> String {
        let d = self.dir.display();
        format!(
            "# Managed by davit: rewritten on every deploy, edit davit.toml instead.\n\
             worker_processes {workers};\n\
             pid {pid};\n\
             error_log {log} warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {d}/tmp/body;\n\
             \x20   proxy_temp_path {d}/tmp/proxy;\n\
             \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
             \x20   scgi_temp_path {d}/tmp/scgi;\n\
             \x20   include {site};\n\
             }}\n",
            workers = WORKER_PROCESSES,
            pid = self.pid().display(),
            log = self.error_log().display(),
            site = site.display(),
        )
    }

    /// The main file, including the live site file.
    pub fn main_conf(&self) -> String {
        self.main_text(&self.site())
    }

    /// The same main file, including the candidate site file: what `nginx -t` checks.
    pub fn candidate_main_conf(&self) -> String {
        self.main_text(&self.candidate_site())
    }

    fn base(&self, program_args: &[&str], main: &Path) -> Cmd {
        Cmd::new(self.nginx.clone())
            .args(program_args.iter().copied())
            .arg("-p")
            .arg(self.dir.display().to_string())
            .arg("-c")
            .arg(main.display().to_string())
            .arg("-e")
            .arg(self.error_log().display().to_string())
    }

    /// Test the candidate configuration.
    pub fn test_candidate(&self) -> Cmd {
        self.base(&["-t", "-q"], &self.candidate_main())
    }

    /// Start the instance (first deploy, or after a host reboot).
    pub fn start(&self) -> Cmd {
        self.base(&[], &self.main())
    }

    /// Graceful reload: new workers take new connections, old ones finish in-flight requests.
    pub fn reload(&self) -> Cmd {
        self.base(&["-s", "reload"], &self.main())
    }

    pub fn stop(&self) -> Cmd {
        self.base(&["-s", "quit"], &self.main())
    }
}

/// What the live site file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveSite {
    pub color: String,
    pub release: String,
    pub version: String,
}

/// Render the site file that sends traffic to `port` (the color `color` running `release`).
/// Named volumes of `proxy.files` are served from their folders in `volumes` (see
/// [`volume_dirs`]); one that is not there yet is left out of the file.
pub fn site_conf(
    t: &Target,
    public: u16,
    color: &str,
    release: &str,
    version: &str,
    port: u16,
) -> String {
    site_conf_with(t, public, color, release, version, port, &BTreeMap::new())
}

/// [`site_conf`] with the host folders of the named volumes it serves.
pub fn site_conf_with(
    t: &Target,
    public: u16,
    color: &str,
    release: &str,
    version: &str,
    port: u16,
    volumes: &BTreeMap<String, PathBuf>,
) -> String {
    let upstream = format!("davit_{}_{}", t.app, t.environment).replace('-', "_");
    let p = &t.proxy;
    let trusted = !p.trusted_proxies.is_empty();
    let mut maps = String::new();
    if !p.websockets.is_empty() {
        maps.push_str(
            "map $http_upgrade $davit_connection {\n    default upgrade;\n    '' \"\";\n}\n",
        );
    }
    if trusted {
        // The scheme the client used, as the trusted proxy in front says (TLS ends there).
        maps.push_str(
            "map $http_x_forwarded_proto $davit_forwarded_proto {\n    default $http_x_forwarded_proto;\n    '' $scheme;\n}\n",
        );
    }
    let proto = if trusted {
        "$davit_forwarded_proto"
    } else {
        "$scheme"
    };
    // What every proxied location sends upstream: the original Host (Django's ALLOWED_HOSTS),
    // the client's address and the scheme (SECURE_PROXY_SSL_HEADER).
    let forward = |connection: &str, read_secs: u64| {
        format!(
            "        proxy_pass http://{upstream};\n\
             \x20       proxy_http_version 1.1;\n\
             {connection}\
             \x20       proxy_set_header Host $http_host;\n\
             \x20       proxy_set_header X-Real-IP $remote_addr;\n\
             \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20       proxy_set_header X-Forwarded-Proto {proto};\n\
             \x20       proxy_set_header X-Forwarded-Host $host;\n\
             \x20       proxy_read_timeout {read_secs}s;\n"
        )
    };
    let plain = "        proxy_set_header Connection \"\";\n";
    let mut server = String::new();
    // Every response of this color, as it happens, for verify to judge the release from its
    // own traffic. Per color: after a switch, the old workers still finishing requests for
    // the previous color write to that color's file.
    if t.verify.traffic && safe_in_format(color) && safe_in_format(release) {
        maps.push_str(&traffic_format(color, release));
        server.push_str(&format!(
            "    access_log {} {TRAFFIC_FORMAT};\n",
            Files::of(t).traffic_log(color).display()
        ));
    }
    if let Some(size) = &p.client_max_body_size {
        server.push_str(&format!("    client_max_body_size {size};\n"));
    }
    for a in &p.trusted_proxies {
        server.push_str(&format!("    set_real_ip_from {a};\n"));
    }
    if trusted {
        server.push_str("    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n");
    }
    for f in &p.files {
        let dir = match (&f.dir, &f.volume) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(v)) => volumes.get(v).cloned(),
            (None, None) => None,
        };
        let Some(dir) = dir else { continue };
        let expires = f
            .expires
            .as_deref()
            .map(|e| format!("        expires {e};\n"))
            .unwrap_or_default();
        server.push_str(&format!(
            "    location {path} {{\n        alias {dir}/;\n{expires}    }}\n",
            path = f.path,
            dir = dir.display().to_string().trim_end_matches('/'),
        ));
    }
    for w in &p.websockets {
        server.push_str(&format!(
            "    location {w} {{\n{}    }}\n",
            forward(
                "        proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection $davit_connection;\n",
                3600
            )
        ));
    }
    for l in &p.locations {
        let directives = l
            .directives
            .trim()
            .lines()
            .map(|d| format!("        {}\n", d.trim()))
            .collect::<String>();
        let pass = if l.proxy {
            forward(plain, p.read_timeout_secs)
        } else {
            String::new()
        };
        server.push_str(&format!(
            "    location {} {{\n{directives}{pass}    }}\n",
            l.path
        ));
    }
    let snippet = p
        .snippet
        .as_deref()
        .map(|s| format!("        {}\n", s.trim()))
        .unwrap_or_default();
    format!(
        "{MARKER} color={color} release={release} version={version}\n\
         upstream {upstream} {{\n\
         \x20   server {backend}:{port} max_fails=0;\n\
         \x20   keepalive 32;\n\
         }}\n\
         {maps}\
         server {{\n\
         \x20   listen {listen}:{public};\n\
         \x20   keepalive_timeout {client_keepalive}s;\n\
         {server}\
         \x20   location / {{\n\
         {root}\
         \x20       add_header {color_h} {color} always;\n\
         \x20       add_header {release_h} {release} always;\n\
         \x20       add_header {version_h} {version} always;\n\
         {snippet}\
         \x20   }}\n\
         }}\n",
        backend = url_host(&t.bind),
        listen = listen_addr(&p.listen),
        client_keepalive = p.client_keepalive_secs,
        root = forward(plain, p.read_timeout_secs),
        // nginx names what it serves, so davit can ask instead of trusting this file (T41).
        color_h = crate::truth::COLOR_HEADER,
        release_h = crate::truth::RELEASE_HEADER,
        version_h = crate::truth::VERSION_HEADER,
    )
}

/// The host folders of the named volumes `proxy.files` serves, by volume name. With `create`,
/// a missing volume is created first (the app's containers mount it and write into it), because
/// nginx needs its folder in the site file before the first container starts: over the entry's
/// `dir` when it has one (a bind volume: a folder nginx's workers can read), else a plain one.
pub async fn volume_dirs(
    exec: &dyn Executor,
    t: &Target,
    create: bool,
) -> Result<BTreeMap<String, PathBuf>, Failure> {
    let mut dirs = BTreeMap::new();
    for f in &t.proxy.files {
        let Some(v) = &f.volume else { continue };
        let inspect = Cmd::new("docker")
            .args([
                "volume",
                "inspect",
                "--format",
                "{{.Mountpoint}}|{{index .Options \"device\"}}",
                v,
            ])
            .timeout(Duration::from_secs(30));
        let mut out = exec.run(&inspect).await.ok().filter(|o| o.success());
        if out.is_none() && create {
            let mut make = Cmd::new("docker").args(["volume", "create"]);
            if let Some(dir) = &f.dir {
                exec.mkdir(dir, 0o755).await.map_err(|e| {
                    Failure::infra(format!(
                        "cannot create {} for the volume {v}: {e}",
                        dir.display()
                    ))
                })?;
                make = make
                    .args(["--driver", "local", "--opt", "type=none", "--opt", "o=bind"])
                    .arg("--opt")
                    .arg(format!("device={}", dir.display()));
            }
            exec.run_ok(&make.arg(v).timeout(Duration::from_secs(30)))
                .await
                .map_err(|e| {
                    Failure::infra(format!("cannot create the volume {v}: {e}"))
                        .with_hint("check that Docker runs on the host and the volume name is free")
                })?;
            out = exec.run(&inspect).await.ok().filter(|o| o.success());
        }
        if let Some(o) = out {
            let (mountpoint, device) = o
                .stdout
                .trim()
                .split_once('|')
                .unwrap_or((o.stdout.trim(), ""));
            // A bind volume's files live in its device folder; serve that, not Docker's.
            let dir = if device.starts_with('/') {
                device
            } else {
                mountpoint
            };
            if dir.starts_with('/') {
                dirs.insert(v.clone(), PathBuf::from(dir));
            }
        }
    }
    Ok(dirs)
}

/// `--volume <volume or folder>:<mount>` for every `proxy.files` entry with a `mount`: the
/// app's containers write what nginx serves (Django's MEDIA_ROOT).
pub fn volume_mounts(t: &Target) -> Vec<(String, String)> {
    t.proxy
        .files
        .iter()
        .filter_map(|f| {
            let source = f
                .volume
                .clone()
                .or_else(|| f.dir.as_ref().map(|d| d.display().to_string()))?;
            Some((source, f.mount.clone()?))
        })
        .collect()
}

/// Whether a name can stand inside the quoted log format (davit's colors and release ids can).
fn safe_in_format(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+'))
}

fn listen_addr(a: &str) -> String {
    if a.contains(':') {
        format!("[{a}]")
    } else {
        a.to_string()
    }
}

/// Read the marker line of a site file.
pub fn parse_live(text: &str) -> Option<LiveSite> {
    let line = text.lines().next()?.strip_prefix(MARKER)?;
    let mut color = None;
    let mut release = None;
    let mut version = None;
    for kv in line.split_whitespace() {
        match kv.split_once('=') {
            Some(("color", v)) => color = Some(v.to_string()),
            Some(("release", v)) => release = Some(v.to_string()),
            Some(("version", v)) => version = Some(v.to_string()),
            _ => {}
        }
    }
    Some(LiveSite {
        color: color?,
        release: release?,
        version: version?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips() {
        let text = "# davit-live color=green release=r1 version=v2\nupstream x {}\n";
        assert_eq!(
            parse_live(text),
            Some(LiveSite {
                color: "green".into(),
                release: "r1".into(),
                version: "v2".into()
            })
        );
        assert_eq!(parse_live("upstream x {}"), None);
    }
}
