//! Demo HTTP service with /health, /metrics and fault modes, for the demo, tests and benchmarks.
//!
//! davit needs a real service to deploy: one that can be made to fail a health gate,
//! turn unhealthy after a canary passed, throw errors at a chosen rate, slow down,
//! crash or boot slowly, each on demand through environment variables (see
//! [`config`] and the crate README). It is std-only apart from two libc calls so it
//! links fully statically and ships in a `FROM scratch` image.
//!
//! [`run`] is the whole program; `main.rs` only parses the environment and maps the
//! outcome to an exit code. Tests drive a [`Server`] on an ephemeral port instead.

pub mod app;
pub mod background;
pub mod config;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod server;
mod sys;
pub mod ws;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

pub use config::{Config, ConfigError};
pub use server::{Outcome, Server, StopHandle};

/// Why the app could not run.
#[derive(Debug)]
pub enum RunError {
    /// SIGTERM/SIGINT handlers could not be installed.
    Signals(io::Error),
    /// The listener could not be opened.
    Bind {
        /// The address from `BIND` and `PORT`.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The listener failed while serving.
    Serve(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            RunError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")?;
                match source.kind() {
                    io::ErrorKind::AddrInUse => write!(
                        f,
                        "\nhint: another process uses port {}; stop it or set PORT to a free port",
                        addr.port()
                    ),
                    io::ErrorKind::AddrNotAvailable => f.write_str(
                        "\nhint: BIND must be an address of this host, or 0.0.0.0 / :: for all",
                    ),
                    io::ErrorKind::PermissionDenied => f.write_str(
                        "\nhint: ports below 1024 need privileges; set PORT to 1024 or above",
                    ),
                    _ => Ok(()),
                }
            }
            RunError::Serve(e) => write!(f, "listener failed: {e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Signals(e) | RunError::Serve(e) | RunError::Bind { source: e, .. } => Some(e),
        }
    }
}

/// Runs the app as a process: installs SIGTERM/SIGINT handlers, waits out
/// `FAULT_SLOW_START_SECS`, binds `BIND:PORT`, logs one start line to stderr and
/// serves until a signal ([`Outcome::Stopped`]) or `FAULT_CRASH_AFTER_SECS`
/// ([`Outcome::Crashed`]).
pub fn run(config: Config) -> Result<Outcome, RunError> {
    let start = Instant::now();
    sys::install_signal_handlers().map_err(RunError::Signals)?;

    let listen_at = start + config.faults.slow_start;
    let crash_at = config.faults.crash_after.map(|d| start + d);
    loop {
        let now = Instant::now();
        if crash_at.is_some_and(|t| now >= t) {
            eprintln!(
                "davit-demo-app: FAULT_CRASH_AFTER_SECS elapsed before listening; exiting with code 1"
            );
            return Ok(Outcome::Crashed);
        }
        if sys::signals_received() > 0 {
            return Ok(Outcome::Stopped);
        }
        if now >= listen_at {
            break;
        }
        thread::sleep((listen_at - now).min(Duration::from_millis(50)));
    }

    if let Some(root) = &config.media_root {
        // What a web process's uploads are: files it writes, which the proxy serves.
        let file = root.join(format!("{}.txt", config.version));
        if let Err(e) = std::fs::write(&file, format!("media from {}\n", config.version)) {
            eprintln!("davit-demo-app: cannot write {}: {e}", file.display());
        }
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr).map_err(|source| RunError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!(
        "davit-demo-app: {} {} listening on {local} (faults: {})",
        config.name,
        config.version,
        config.faults.summary()
    );
    Server::with_start(listener, config, start)
        .watch_signals()
        .serve()
        .map_err(RunError::Serve)
}

/// `GET /health` from the app on this machine's `PORT` (loopback, whatever `BIND` is): Ok on a
/// 200 within 2 s. What `davit-demo-app health` runs as a container health check.
pub fn health_check(config: &Config) -> Result<(), String> {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
    let timeout = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).map_err(|e| format!("read: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("/health answered {code}")),
        None => Err(format!("no HTTP status in {line:?}")),
    }
}
