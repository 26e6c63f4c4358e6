//! `davit-demo-app`: a tiny HTTP service for davit's demo, integration tests and
//! benchmarks, configured only through environment variables.
//!
//! Endpoints (GET and HEAD; other methods get 405, unknown paths 404; every response
//! carries `X-App-Version`):
//!
//! - `/` answers `hello from <APP_NAME> <APP_VERSION>`, subject to the fault modes.
//! - `/health` answers `{"status":"ok","version":"<APP_VERSION>"}` (200) or
//!   `{"status":"failing","version":"...","reason":"<FAULT_...>"}` (500).
//! - `/metrics` is Prometheus text: `http_requests_total{path,code}`,
//!   `http_request_duration_seconds{path}` (histogram) and `demo_app_info{version}`.
//!   It is never affected by faults, so monitoring can watch them happen.
//!
//! Settings (an empty value counts as unset):
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `PORT` | `8000` | TCP port, 0 to 65535; 0 picks a free port (shown in the start line). |
//! | `BIND` | `0.0.0.0` | IP address to listen on (`::` for IPv6); host names are rejected. |
//! | `APP_VERSION` | `dev` | Reported by every endpoint and the `X-App-Version` header. |
//! | `APP_NAME` | `demo` | Shown in the body of `/`. |
//! | `FAULT_NEVER_HEALTHY` | off | `1`/`true`/`yes`/`on`: `/health` always answers 500; `/` is unaffected. |
//! | `FAULT_FAIL_AFTER_SECS` | off | After N seconds, `/health` and `/` answer 500. |
//! | `FAULT_ERROR_RATIO` | `0` | Fraction 0..=1 of `/` requests answering 503, spread evenly by a counter (0.2: every 5th request). `/health` stays 200. |
//! | `FAULT_LATENCY_MS` | `0` | Milliseconds added to every `/` response. |
//! | `FAULT_CRASH_AFTER_SECS` | off | After N seconds the process exits with code 1, without draining. |
//! | `FAULT_SLOW_START_SECS` | `0` | Wait N seconds before opening the port. |
//!
//! Seconds may be fractional (`0.5`). All fault timers count from process start, so they
//! include the slow start. Any other `FAULT_*` variable is rejected as a likely typo.
//!
//! Exit codes: 0 after SIGTERM/SIGINT (stop accepting, finish in-flight requests for up
//! to 2 s; a second signal skips the wait); 1 when `FAULT_CRASH_AFTER_SECS` fires; 2 when
//! a variable is invalid (the message names it); 3 when the port cannot be opened.
//!
//! `davit-demo-app health` asks the app running in the same container (`127.0.0.1:PORT`) for
//! `/health` and exits 0 on a 200, 1 otherwise: a container health check for images built
//! `FROM scratch`, which have no shell, curl or wget (Swarm's `healthcheck`, `HEALTHCHECK`).
//!
//! `davit-demo-app worker` and `davit-demo-app scheduler` run the app's other processes from the
//! same image (no port): a worker that finishes its current task on SIGTERM/SIGINT before it
//! exits 0 (a warm shutdown), and a scheduler that ticks once a second. `davit demo` deploys
//! them beside the web process.
//!
//! Logging: one line on stderr at start (name, version, address, active faults), plus
//! one on a signal or crash; nothing per request.

use std::process::ExitCode;

use davit_demo_app::{Config, Outcome};

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    let health = command.as_deref() == Some("health");
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("davit-demo-app: error: {e}");
            return ExitCode::from(2);
        }
    };
    if health {
        return match davit_demo_app::health_check(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("davit-demo-app health: {e}");
                ExitCode::from(1)
            }
        };
    }
    let background = match command.as_deref() {
        Some("worker") => Some(davit_demo_app::background::worker(&config)),
        Some("scheduler") => Some(davit_demo_app::background::scheduler(&config)),
        _ => None,
    };
    if let Some(outcome) = background {
        return match outcome {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("davit-demo-app: error: cannot install signal handlers: {e}");
                ExitCode::from(3)
            }
        };
    }
    match davit_demo_app::run(config) {
        Ok(Outcome::Stopped) => ExitCode::SUCCESS,
        Ok(Outcome::Crashed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("davit-demo-app: error: {e}");
            ExitCode::from(3)
        }
    }
}
