//! The two operating-system calls std does not offer: installing signal handlers and
//! waiting on a socket with a timeout.
//!
//! A container's PID 1 gets no default signal actions from the kernel, so without a
//! handler `docker stop` would wait its full timeout and then SIGKILL the app. `poll`
//! lets the accept loop wake up regularly to notice a signal or a fault deadline
//! without adding latency to new connections, as a non-blocking accept plus sleep would.

// The workspace denies unsafe code; this module is the one exception, because
// `sigaction` and `poll` are only reachable through libc. Each block is a single FFI
// call on values fully initialised on the stack.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

static SIGNALS_RECEIVED: AtomicU32 = AtomicU32::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only atomics here: nothing else is async-signal-safe.
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    SIGNALS_RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Routes SIGTERM and SIGINT to a counter that [`signals_received`] reads.
pub fn install_signal_handlers() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `action` is zeroed (a valid "no flags, empty mask" sigaction), then
        // given a handler that only touches atomics; sigemptyset and sigaction get
        // pointers to live stack values.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SA_RESTART spares worker threads most EINTRs; socket reads with a timeout
            // still get them and retry (see server.rs).
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How many SIGTERM/SIGINT signals have arrived since the handlers were installed.
pub fn signals_received() -> u32 {
    SIGNALS_RECEIVED.load(Ordering::SeqCst)
}

/// The name of the most recent signal, for the log.
pub fn last_signal_name() -> &'static str {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Waits until `fd` is readable (for a listener: a connection is pending) or
/// `timeout` passes. Returns whether it is readable; EINTR counts as "not yet".
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one pollfd, valid for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}
