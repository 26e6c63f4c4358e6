//! The proxy in front of a swarm service: HAProxy on the stack's overlay network, one task per
//! node (a global service) publishing the app's port in host mode.
//!
//! Why a proxy at all: Swarm's routing mesh (ingress publishing and VIP endpoints) needs the
//! kernel's IPVS, which many VM and container kernels lack, and it is a known source of reset
//! connections while tasks come and go. With `endpoint_mode: dnsrr` Swarm instead lists the
//! service's tasks in its DNS (`tasks.<service>` at 127.0.0.11 inside the network), and only
//! tasks that are running and healthy: Swarm adds a task's record once its container health
//! check passes and removes it before the task is sent SIGTERM.
//!
//! Why HAProxy: `server-template` with a `resolvers` section follows that DNS list as it
//! changes (every 500 ms here) without a reload, active health checks take a task out as soon
//! as it stops answering, and `retry-on conn-failure empty-response` with `option redispatch`
//! resends a request that hit a task in the moment between its DNS record going away and the
//! proxy noticing, to another task, so clients see no error. Open-source nginx before 1.27.3
//! resolves an upstream's name once at start (or per request through a variable, without
//! health checks or retries across the resolved addresses), which does not give both.

use crate::target::Target;

/// The port HAProxy listens on inside its container; the published port maps to it.
pub const LISTEN_PORT: u16 = 8080;

/// Where the config is mounted in the proxy's container (outside the image's own paths, so the
/// official `haproxy` image and a Debian-based one both work with the same command).
pub const CONFIG_PATH: &str = "/etc/davit/haproxy.cfg";

/// Server slots: enough for every task during a start-first update (replicas + parallelism)
/// with room for tasks Swarm is still replacing, rounded up to a power of two and at least 32,
/// so that scaling the service rarely changes the config (which would restart the proxy).
fn slots(s: &davit_config::Swarm) -> u32 {
    ((s.replicas + s.parallelism) * 2)
        .next_power_of_two()
        .max(32)
}

/// HAProxy's config for the service `service` of a target.
pub fn config(t: &Target, s: &davit_config::Swarm, service: &str) -> String {
    format!(
        "# Written by davit: HAProxy in front of {service}, following its tasks through Swarm's DNS.\n\
global\n\
\x20   maxconn 4096\n\
\n\
defaults\n\
\x20   mode http\n\
\x20   option http-keep-alive\n\
\x20   timeout connect 2s\n\
\x20   timeout client 60s\n\
\x20   timeout server 60s\n\
\x20   timeout http-request 10s\n\
\x20   timeout http-keep-alive 60s\n\
\x20   timeout check 2s\n\
\x20   # A request that meets a task as it goes away (refused, or closed before any answer) is\n\
\x20   # sent again, to another task. Not after a timeout: the task may have acted on it.\n\
\x20   retries 3\n\
\x20   option redispatch 1\n\
\x20   retry-on conn-failure empty-response\n\
\n\
resolvers swarm\n\
\x20   nameserver docker 127.0.0.11:53\n\
\x20   accepted_payload_size 8192\n\
\x20   resolve_retries 3\n\
\x20   timeout resolve 500ms\n\
\x20   timeout retry 500ms\n\
\x20   hold valid 1s\n\
\x20   hold other 1s\n\
\x20   hold refused 1s\n\
\x20   hold nx 1s\n\
\x20   hold timeout 1s\n\
\x20   hold obsolete 0s\n\
\n\
frontend app\n\
\x20   bind :{listen}\n\
\x20   default_backend tasks\n\
\n\
backend tasks\n\
\x20   balance roundrobin\n\
\x20   option httpchk GET {health}\n\
\x20   http-check expect status 200\n\
\x20   default-server init-addr none resolvers swarm resolve-prefer ipv4 check inter 500ms fall 1 rise 1\n\
\x20   server-template task 1-{slots} tasks.{service}:{port}\n",
        listen = LISTEN_PORT,
        health = t.health.path,
        slots = slots(s),
        port = t.app_port,
    )
}

/// A short stable digest of the config, for its Swarm config name: Swarm configs cannot change,
/// so a changed config gets a new name (FNV-1a, stable across builds, unlike std's hasher).
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}
