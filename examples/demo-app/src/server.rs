//! Accept loop, one thread per connection, and graceful shutdown.
//!
//! Threads rather than async: a handful of routes, no dependencies, and a few hundred
//! concurrent keep-alive connections (what nginx or wrk open) are cheap as threads.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::app::App;
use crate::config::Config;
use crate::http::{self, Framing, Method, RequestError, Response};
use crate::metrics::PathLabel;
use crate::sys;

/// How often the accept loop wakes to check for signals and fault deadlines; bounds
/// how late a stop or a crash can be.
const TICK: Duration = Duration::from_millis(50);
/// How long in-flight requests may take to finish after a stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle keep-alive connections are closed after this long, so vanished clients do not
/// pin threads forever. Longer than nginx's 60 s upstream keepalive_timeout default.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const THREAD_STACK: usize = 256 * 1024;
const ACCEPT_BATCH: usize = 256;

/// How [`Server::serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by a signal or a [`StopHandle`], after draining; exit code 0.
    Stopped,
    /// `FAULT_CRASH_AFTER_SECS` elapsed; exit code 1, no draining.
    Crashed,
}

/// Asks a running [`Server`] to stop, as SIGTERM would.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Stops accepting, lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]) and
    /// makes [`Server::serve`] return [`Outcome::Stopped`].
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Shared {
    app: App,
    in_flight: AtomicUsize,
    draining: AtomicBool,
}

/// The HTTP server over an already bound listener.
///
/// Binding is left to the caller so tests can use port 0 and learn the real port
/// before serving, and so [`crate::run`] can delay binding for `FAULT_SLOW_START_SECS`.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// Also stop on SIGTERM/SIGINT; off in tests so a stray signal cannot end them.
    watch_signals: bool,
}

impl Server {
    /// A server whose fault timers start now.
    pub fn new(listener: TcpListener, config: Config) -> Server {
        Server::with_start(listener, config, Instant::now())
    }

    /// A server whose fault timers count from `start` (the process start in [`crate::run`]).
    pub fn with_start(listener: TcpListener, config: Config, start: Instant) -> Server {
        Server {
            listener,
            shared: Arc::new(Shared {
                app: App::new(config, start),
                in_flight: AtomicUsize::new(0),
                draining: AtomicBool::new(false),
            }),
            stop: Arc::new(AtomicBool::new(false)),
            watch_signals: false,
        }
    }

    pub(crate) fn watch_signals(mut self) -> Server {
        self.watch_signals = true;
        self
    }

    /// The address actually bound, e.g. to learn the port after binding port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`Server::serve`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.stop))
    }

    /// Serves until stopped or crashed by a fault.
    pub fn serve(self) -> io::Result<Outcome> {
        let Server {
            listener,
            shared,
            stop,
            watch_signals,
        } = self;
        listener.set_nonblocking(true)?;
        let crash_at = shared.app.faults.crash_deadline();
        // Any signal since the handlers were installed counts, including one that
        // arrived during the slow start or between binding and serving.
        let signalled = || watch_signals && sys::signals_received() > 0;

        loop {
            if crash_at.is_some_and(|t| Instant::now() >= t) {
                eprintln!("davit-demo-app: FAULT_CRASH_AFTER_SECS elapsed; exiting with code 1");
                return Ok(Outcome::Crashed);
            }
            if signalled() {
                eprintln!(
                    "davit-demo-app: received {}; draining for up to {}s",
                    sys::last_signal_name(),
                    DRAIN_TIMEOUT.as_secs()
                );
                break;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if sys::wait_readable(&listener, TICK)? {
                accept_pending(&listener, &shared);
            }
        }

        // Closing the listener first makes new connections fail fast (and a load
        // balancer retry elsewhere) instead of queueing behind the drain.
        drop(listener);
        shared.draining.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let signals_at_drain = sys::signals_received();
        while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            // A second Ctrl-C means "now".
            if watch_signals && sys::signals_received() > signals_at_drain {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(Outcome::Stopped)
    }
}

/// Accepts what is queued, but at most a batch, so a connection flood cannot keep the
/// loop from noticing a stop or a crash deadline.
fn accept_pending(listener: &TcpListener, shared: &Arc<Shared>) {
    for _ in 0..ACCEPT_BATCH {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("conn".to_owned())
                    .stack_size(THREAD_STACK)
                    .spawn(move || serve_connection(stream, &shared));
                // Out of threads: the stream was moved into the failed closure and is
                // dropped, closing the connection; the client can retry.
                if spawned.is_err() {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ECONNABORTED, EMFILE and the like: back off so a persistent error does
            // not spin, and let poll report the backlog again.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                return;
            }
        }
    }
}

/// Counts a request as in flight while alive, so the drain can wait for it.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    // Accepted sockets do not inherit O_NONBLOCK on Linux, but other systems differ.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader = BufReader::with_capacity(8 * 1024, stream);
    let app = &shared.app;

    loop {
        if !wait_for_request(&mut reader) {
            return;
        }
        // Counted from the first byte, so a request that is still arriving when a stop
        // comes in is waited for too.
        let _in_flight = InFlight::enter(&shared.in_flight);
        let started = Instant::now();
        let (response, label, framing) = match http::read_request(&mut reader) {
            Ok(req)
                if req.path.starts_with("/ws/")
                    && req.websocket_key.is_some()
                    && app.host_allowed(&req) =>
            {
                let key = req.websocket_key.unwrap_or_default();
                crate::ws::serve(reader, &key, &app.config.version);
                return;
            }
            Ok(req) => {
                let response = app.handle(&req);
                let framing = Framing {
                    head_only: req.method == Method::Head,
                    keep_alive: req.keep_alive,
                    http10: req.minor_version == 0,
                    app_version: &app.config.version,
                };
                (response, PathLabel::of(&req.path), framing)
            }
            Err(RequestError::Reject(status, why)) => {
                let framing = Framing {
                    head_only: false,
                    keep_alive: false,
                    http10: false,
                    app_version: &app.config.version,
                };
                (
                    Response::text(status, format!("{why}\n")),
                    PathLabel::Other,
                    framing,
                )
            }
            Err(RequestError::Closed | RequestError::Io(_)) => return,
        };
        let keep_alive = framing.keep_alive && !shared.draining.load(Ordering::SeqCst);
        let framing = Framing {
            keep_alive,
            ..framing
        };
        let wire = http::encode(&response, framing, SystemTime::now());
        // Counted before the write: a client that got this response and then scrapes
        // /metrics must find it there (monitoring, and the analysis, read it that way).
        app.metrics
            .observe(label, response.status, started.elapsed());
        let written = reader.get_ref().write_all(&wire);
        if written.is_err() {
            return;
        }
        if !keep_alive {
            // Send FIN after the response rather than leaving the close to drop; the
            // client sees a clean end of stream.
            let _ = reader.get_ref().shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Blocks until the next request starts arriving; false when the connection is done
/// (closed by the client, idle timeout, or an error).
fn wait_for_request(reader: &mut BufReader<TcpStream>) -> bool {
    loop {
        match reader.fill_buf() {
            Ok(buf) => return !buf.is_empty(),
            // SA_RESTART does not apply to sockets with a receive timeout, so a signal
            // delivered to this thread surfaces here.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
