//! The serde model of `davit.toml` with its defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub app: App,
    pub image: Image,
    #[serde(default)]
    pub health: HealthCheck,
    /// Root folder for per-environment state; default outside the repository (see
    /// [`crate::default_state_root`]) so no build context ever holds it.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Owned by davit-gate.
    #[serde(default)]
    pub gate: Option<toml::Table>,
    /// Owned by davit-image.
    #[serde(default)]
    pub scan: Option<toml::Table>,
    /// Owned by davit-verify (metric analysis).
    #[serde(default)]
    pub analysis: Option<toml::Table>,
    /// Owned by davit-approve.
    #[serde(default)]
    pub approval: Option<toml::Table>,
    /// The team's own Compose file: its services, networks and volumes, and the commands of the
    /// app processes (see `processes.rs`).
    #[serde(default)]
    pub compose_file: Option<PathBuf>,
    /// The release's processes besides (and including) web.
    #[serde(default)]
    pub processes: BTreeMap<String, crate::ProcessConfig>,
    /// Databases, caches and brokers davit starts once and keeps across releases.
    #[serde(default)]
    pub services: BTreeMap<String, crate::ServiceConfig>,
    /// Named volumes shared by processes and services; never deleted by davit.
    #[serde(default)]
    pub volumes: BTreeMap<String, crate::VolumeConfig>,
    #[serde(skip)]
    pub origin: PathBuf,
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Short name used in container, project and file names.
    pub name: String,
    /// The port the app listens on inside its container.
    #[serde(default = "default_app_port")]
    pub port: u32,
    /// Plain environment for the container (not secret).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of variables taken from davit's own environment at deploy time and handed to the
    /// container through a 0600 env file, never argv, never the ledger.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Override the image's command.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

fn default_app_port() -> u32 {
    8000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Repository without tag, e.g. `ghcr.io/acme/shop`; the release version is the tag.
    pub name: String,
    #[serde(default)]
    pub pull: PullPolicy,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not on the host.
    #[default]
    Missing,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_status")]
    pub expect_status: u32,
    #[serde(default)]
    pub body_contains: Option<String>,
    /// JSON field in the health answer that carries the running version; used to prove through
    /// the proxy that the new release is what answers. Empty to disable (weaker check).
    #[serde(default = "default_version_field")]
    pub version_field: String,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    #[serde(default = "default_deadline_secs")]
    pub deadline_secs: u64,
    /// The Host header health probes send (Django's ALLOWED_HOSTS must list it). Default: the
    /// host name of the environment's `url`, else the address probed.
    #[serde(default)]
    pub host: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: default_health_path(),
            expect_status: default_status(),
            body_contains: None,
            version_field: default_version_field(),
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            consecutive: default_consecutive(),
            deadline_secs: default_deadline_secs(),
            host: None,
        }
    }
}

fn default_health_path() -> String {
    "/health".into()
}
fn default_status() -> u32 {
    200
}
fn default_version_field() -> String {
    "version".into()
}
fn default_interval_ms() -> u64 {
    500
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_consecutive() -> u32 {
    3
}
fn default_deadline_secs() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `docker compose up -d` of a generated compose file; brief downtime while recreating.
    Compose,
    /// Two containers (blue, green) behind nginx; switch after a health gate; old one kept.
    BlueGreen,
    /// A Docker Swarm service updated start-first, rolled back by Swarm on failure.
    Swarm,
    /// A Kubernetes Deployment: set the image, wait for the rollout, undo on failure.
    Kubernetes,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Compose => "compose",
            Strategy::BlueGreen => "blue-green",
            Strategy::Swarm => "swarm",
            Strategy::Kubernetes => "kubernetes",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// `local` for this machine; a host name for remote hosts (SSH).
    #[serde(default = "default_host")]
    pub host: String,
    /// Several remote hosts that serve the environment together (behind a load balancer).
    /// A deploy converges on all of them or on none; `host` is then the first of them.
    #[serde(default)]
    pub hosts: Vec<String>,
    pub strategy: Strategy,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Address published container ports bind to on the host.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Compose: the host port the app is published on.
    #[serde(default)]
    pub port: Option<u32>,
    /// Blue-green: ports for the proxy and each color.
    #[serde(default)]
    pub ports: Option<Ports>,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub health: Option<HealthCheck>,
    #[serde(default)]
    pub verify: Verify,
    #[serde(default)]
    pub hooks: Hooks,
    /// Extra plain environment for this environment (merged over `app.env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Public URL recorded in GitHub deployments; default the proxy or published address.
    #[serde(default)]
    pub url: Option<String>,
    /// Verified database backup before any migration (owned by davit-backup).
    #[serde(default)]
    pub backup: Option<toml::Table>,
    /// How to reach a remote `host` over SSH (required when host is not `local`).
    #[serde(default)]
    pub ssh: Option<SshSettings>,
    /// Swarm strategy settings.
    #[serde(default)]
    pub swarm: Option<Swarm>,
    /// Kubernetes strategy settings.
    #[serde(default)]
    pub kubernetes: Option<Kubernetes>,
    /// The Docker network the processes and services share (default `<app>-<environment>`).
    #[serde(default)]
    pub network: Option<String>,
}

/// SSH access to a remote host. Secrets are named, not written here: the key and known_hosts
/// come from environment variables the workflow maps from repository secrets.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    pub user: String,
    #[serde(default = "default_ssh_port")]
    pub port: u32,
    /// Environment variable holding the private key (OpenSSH format).
    #[serde(default = "default_key_env")]
    pub key_env: String,
    /// Environment variable holding known_hosts lines for the host (hashed lines work).
    #[serde(default)]
    pub known_hosts_env: Option<String>,
    /// Or a pinned host key fingerprint, `SHA256:...`.
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// Seconds between keepalives; three unanswered ones mean the host is gone.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
}

fn default_keepalive() -> u64 {
    10
}

fn default_ssh_port() -> u32 {
    22
}
fn default_key_env() -> String {
    "DAVIT_SSH_KEY".into()
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_command_timeout() -> u64 {
    900
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// Tasks to run.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Tasks updated at once.
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// How long Swarm watches each updated task before counting the update good.
    #[serde(default = "default_monitor_secs")]
    pub monitor_secs: u64,
    /// Host port the proxy publishes on every node (`mode: host`, no routing mesh); davit's
    /// health checks go through the manager's.
    pub published_port: u32,
    /// The proxy's image (HAProxy 2.x): `haproxy:2.6` from Docker Hub, or one built without a
    /// registry (scripts/build-swarm-proxy.sh). It must be on every node.
    #[serde(default = "default_proxy_image")]
    pub proxy_image: String,
    /// The app's container health check, run inside the task (`["CMD", ...]` is added):
    /// Swarm gives a task traffic, and moves on in an update, only once it passes. Empty: the
    /// image's own `HEALTHCHECK`, if any.
    #[serde(default)]
    pub health_cmd: Vec<String>,
    /// Upper bound for the whole update before davit gives up waiting.
    #[serde(default = "default_update_timeout")]
    pub update_timeout_secs: u64,
}

fn default_replicas() -> u32 {
    1
}
fn default_parallelism() -> u32 {
    1
}
fn default_monitor_secs() -> u64 {
    10
}
fn default_update_timeout() -> u64 {
    300
}
fn default_proxy_image() -> String {
    "haproxy:2.6".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub namespace: String,
    pub deployment: String,
    /// Container in the pod template whose image is set.
    pub container: String,
    /// kubectl context (default: the current one).
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default = "default_update_timeout")]
    pub rollout_timeout_secs: u64,
}

fn default_host() -> String {
    "local".into()
}
fn default_bind() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Where nginx listens for users.
    pub public: u32,
    pub blue: u32,
    pub green: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// The nginx program (a path when it is not on PATH, e.g. /usr/sbin/nginx or openresty).
    #[serde(default = "default_nginx")]
    pub nginx: String,
    /// Address nginx listens on.
    #[serde(default = "default_bind")]
    pub listen: String,
    /// Extra nginx directives placed in the `location /` block (e.g. `client_max_body_size 20m;`).
    /// Tested with `nginx -t` before it ever goes live.
    #[serde(default)]
    pub snippet: Option<String>,
    /// How long nginx waits for the upstream to answer before 504.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// Keep-alive for client connections to nginx, in seconds. 0 (the default) closes each
    /// client connection after its response: on a switch, nginx's reload closes idle keep-alive
    /// connections, and a request a client sends at that instant is lost (measured in
    /// docs/BENCHMARKS.md). With 0 a switch drops nothing, at the cost of a TCP handshake per
    /// request; behind a TLS terminator or a load balancer that pools connections it costs little.
    #[serde(default)]
    pub client_keepalive_secs: u64,
    /// Largest request body nginx accepts (`client_max_body_size`), e.g. "20m"; nginx's own
    /// default (1m) when unset.
    #[serde(default)]
    pub client_max_body_size: Option<String>,
    /// Paths whose requests may upgrade to a websocket (`/ws/`): `Upgrade`/`Connection` are
    /// passed on and the read timeout is an hour.
    #[serde(default)]
    pub websockets: Vec<String>,
    /// Addresses (or CIDR ranges) of the proxies or load balancers in front of this nginx: their
    /// `X-Forwarded-For` and `X-Forwarded-Proto` are trusted, so the app sees the real client
    /// address and scheme. Empty: the connecting address is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Locations served from files by nginx itself (Django's `/static/` and `/media/`).
    #[serde(default)]
    pub files: Vec<FileLocation>,
    /// More locations, each with its own directives, proxied to the live color by default.
    #[serde(default)]
    pub locations: Vec<ExtraLocation>,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            nginx: default_nginx(),
            listen: default_bind(),
            snippet: None,
            read_timeout_secs: default_read_timeout(),
            client_keepalive_secs: 0,
            client_max_body_size: None,
            websockets: Vec::new(),
            trusted_proxies: Vec::new(),
            files: Vec::new(),
            locations: Vec::new(),
        }
    }
}

/// A URL prefix nginx serves from files: a folder on the host, or a named Docker volume the
/// app's containers write (mounted into every container of the release at `mount`). With both,
/// a missing volume is created over the folder (a bind volume), so nginx serves a folder its
/// workers can read; a volume alone is served from Docker's own folder for it, which nginx's
/// unprivileged workers can read only when Docker's data root lets them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileLocation {
    /// URL prefix, starting and ending with `/`, e.g. "/static/".
    pub path: String,
    /// Absolute folder on the host (e.g. where `collectstatic` wrote).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Or a named Docker volume (e.g. "shop_media"); nginx serves its folder on the host.
    #[serde(default)]
    pub volume: Option<String>,
    /// Where the app's containers see the volume (or, without one, the folder), e.g.
    /// "/app/media" (Django's MEDIA_ROOT). Required with `volume`.
    #[serde(default)]
    pub mount: Option<String>,
    /// `expires` for the answers (e.g. "30d"); none when unset.
    #[serde(default)]
    pub expires: Option<String>,
}

/// An extra `location` block. `directives` go inside it (no braces: one level, checked by
/// `nginx -t` before it goes live).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExtraLocation {
    /// A prefix ("/admin/") or an nginx modifier and pattern ("= /robots.txt", "~ \\.php$").
    pub path: String,
    #[serde(default)]
    pub directives: String,
    /// Pass the request to the live color (with the usual forwarded headers) after the
    /// directives; false for locations that answer themselves (`return 403;`).
    #[serde(default = "default_true")]
    pub proxy: bool,
}

fn default_nginx() -> String {
    "nginx".into()
}

fn default_read_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// How long verify watches the new release after the switch.
    #[serde(default = "default_watch_secs")]
    pub watch_secs: u64,
    #[serde(default = "default_verify_interval_ms")]
    pub interval_ms: u64,
    /// Failed probes in a row that make verify roll back.
    #[serde(default = "default_failures")]
    pub failure_limit: u32,
    /// Roll back automatically when verification fails.
    #[serde(default = "default_true")]
    pub rollback: bool,
    /// Judge the live color from its own traffic too (blue-green: the managed nginx's access
    /// log of every response): roll back when, over the last `traffic_window_ms`, at least
    /// `traffic_min_requests` requests were answered and the share of them that failed (5xx,
    /// or no answer from the app) reached `traffic_error_ratio`. Fewer requests than that is
    /// a quiet service: the probes decide, as without this.
    #[serde(default = "default_true")]
    pub traffic: bool,
    #[serde(default = "default_traffic_window_ms")]
    pub traffic_window_ms: u64,
    #[serde(default = "default_traffic_error_ratio")]
    pub traffic_error_ratio: Ratio,
    #[serde(default = "default_traffic_min_requests")]
    pub traffic_min_requests: u32,
}

/// A fraction between 0 and 1 (checked by validation), comparable so the configuration stays
/// `Eq`: NaN never passes validation.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Ratio(pub f64);

impl Eq for Ratio {}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            watch_secs: default_watch_secs(),
            interval_ms: default_verify_interval_ms(),
            failure_limit: default_failures(),
            rollback: true,
            traffic: true,
            traffic_window_ms: default_traffic_window_ms(),
            traffic_error_ratio: default_traffic_error_ratio(),
            traffic_min_requests: default_traffic_min_requests(),
        }
    }
}

fn default_watch_secs() -> u64 {
    30
}
fn default_verify_interval_ms() -> u64 {
    1000
}
fn default_failures() -> u32 {
    3
}
// One second of traffic, 10 % failed, at least 50 requests: a release that fails every request
// is caught after about 0.1 s of its traffic at 200 requests/s, and a healthy one with 1 %
// background errors would need 5 failures among 50 requests (about 2 in 10^4 per window) to be
// taken for bad. Measured in docs/BENCHMARKS.md.
fn default_traffic_window_ms() -> u64 {
    1000
}
fn default_traffic_error_ratio() -> Ratio {
    Ratio(0.1)
}
fn default_traffic_min_requests() -> u32 {
    50
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run before anything changes (migrations); a failure stops the deploy before the switch.
    #[serde(default)]
    pub pre_deploy: Vec<Hook>,
    /// Run after the new release serves.
    #[serde(default)]
    pub post_deploy: Vec<Hook>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// argv; no shell unless you write `["sh", "-c", "..."]` yourself.
    pub run: Vec<String>,
    /// `image`: a one-off container of the new image with the app's env (migrations);
    /// `host`: a process on the deploy host.
    #[serde(default)]
    pub on: HookPlace,
    #[serde(default = "default_hook_timeout")]
    pub timeout_secs: u64,
    /// `on = "image"`: the command is handed to the image's ENTRYPOINT (a wait-for-database
    /// entrypoint runs first), as `docker run image <run...>` does. `true` replaces the
    /// ENTRYPOINT with `run[0]`.
    #[serde(default)]
    pub replace_entrypoint: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HookPlace {
    #[default]
    Image,
    Host,
}

fn default_hook_timeout() -> u64 {
    600
}
