//! The demo app's processes besides web: a `worker` and a `scheduler`, run from the same image
//! with another command (`davit-demo-app worker`), so `davit demo` can show a whole release
//! (web, workers, a scheduler) moving together, and back on a rollback, without a broker or a
//! database to start.
//!
//! The worker works through tasks (a fixed sleep each, standing in for real work) and, on
//! SIGTERM or SIGINT, finishes the task it is on before exiting: the warm shutdown a Celery
//! worker does, and what davit's stop grace period is for. The scheduler logs one tick a
//! second and stops at once. Each logs its version, so `docker logs` shows which release ran.

use crate::{Config, sys};
use std::io;
use std::thread;
use std::time::{Duration, Instant};

/// How long one of the worker's tasks takes.
pub const TASK: Duration = Duration::from_millis(250);
/// The scheduler's interval.
pub const TICK: Duration = Duration::from_secs(1);

/// Run the worker until a signal; returns how many tasks it finished. A task that has started
/// is always finished before it returns.
pub fn worker(config: &Config) -> io::Result<u64> {
    sys::install_signal_handlers()?;
    eprintln!(
        "davit-demo-app: worker {} {} started (one task every {} ms)",
        config.name,
        config.version,
        TASK.as_millis()
    );
    let mut done = 0u64;
    while sys::signals_received() == 0 {
        // A task: not interrupted by the signal, which is only looked at between tasks.
        let until = Instant::now() + TASK;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            thread::sleep(left);
        }
        done += 1;
    }
    eprintln!(
        "davit-demo-app: worker {} got {}: warm shutdown after {done} tasks, none cut short",
        config.version,
        sys::last_signal_name()
    );
    Ok(done)
}

/// Run the scheduler until a signal; returns how many ticks it sent.
pub fn scheduler(config: &Config) -> io::Result<u64> {
    sys::install_signal_handlers()?;
    eprintln!(
        "davit-demo-app: scheduler {} {} started (one tick every {} s)",
        config.name,
        config.version,
        TICK.as_secs()
    );
    let mut ticks = 0u64;
    let mut next = Instant::now();
    while sys::signals_received() == 0 {
        let now = Instant::now();
        if now >= next {
            ticks += 1;
            eprintln!("davit-demo-app: scheduler {} tick {ticks}", config.version);
            next += TICK;
        }
        thread::sleep(
            next.saturating_duration_since(now)
                .min(Duration::from_millis(50)),
        );
    }
    eprintln!(
        "davit-demo-app: scheduler {} got {}: stopped after {ticks} ticks",
        config.version,
        sys::last_signal_name()
    );
    Ok(ticks)
}
