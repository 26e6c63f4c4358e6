//! Injected misbehaviour, so deploy gates, rollbacks and alerts can be exercised
//! against a real process without writing a broken app.
//!
//! Every timer counts from the moment the process started (the `start` passed to
//! [`FaultClock::new`]), so `FAULT_FAIL_AFTER_SECS` and `FAULT_CRASH_AFTER_SECS` include
//! any `FAULT_SLOW_START_SECS`. One clock is easier to reason about in a test than
//! several, and it lets a crash happen before the port is ever opened (a boot loop).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which faults are switched on; parsed by [`crate::config`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// `/health` always answers 500.
    pub never_healthy: bool,
    /// After this long, `/health` and `/` answer 500.
    pub fail_after: Option<Duration>,
    /// This fraction of `/` requests answer 503.
    pub error_ratio: ErrorRatio,
    /// Added before every `/` response.
    pub latency: Duration,
    /// After this long, the process exits with code 1 without draining.
    pub crash_after: Option<Duration>,
    /// The listener is opened only after this long.
    pub slow_start: Duration,
}

impl Faults {
    /// Whether any fault is switched on.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// A short `name=value` list for the start-up log line.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.never_healthy {
            parts.push("never_healthy".to_owned());
        }
        if let Some(d) = self.fail_after {
            parts.push(format!("fail_after={}s", d.as_secs_f64()));
        }
        if self.error_ratio != ErrorRatio::NEVER {
            parts.push(format!("error_ratio={}", self.error_ratio));
        }
        if !self.latency.is_zero() {
            parts.push(format!("latency={}ms", self.latency.as_millis()));
        }
        if let Some(d) = self.crash_after {
            parts.push(format!("crash_after={}s", d.as_secs_f64()));
        }
        if !self.slow_start.is_zero() {
            parts.push(format!("slow_start={}s", self.slow_start.as_secs_f64()));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// A failure fraction kept in parts per million.
///
/// Integers rather than `f64` make the schedule exact: with 0.2, exactly every fifth
/// request fails, with no drift from rounding `n * 0.2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorRatio {
    ppm: u32,
}

const MILLION: u32 = 1_000_000;

impl ErrorRatio {
    /// No request fails.
    pub const NEVER: ErrorRatio = ErrorRatio { ppm: 0 };
    /// Every request fails.
    pub const ALWAYS: ErrorRatio = ErrorRatio { ppm: MILLION };

    /// `None` unless `ratio` is within 0..=1. Precision is one in a million.
    pub fn new(ratio: f64) -> Option<ErrorRatio> {
        if !(0.0..=1.0).contains(&ratio) {
            return None;
        }
        Some(ErrorRatio {
            ppm: (ratio * f64::from(MILLION)).round() as u32,
        })
    }

    /// Whether the request with 0-based sequence number `n` fails.
    ///
    /// Request `n` fails when `floor((n + 1) * r)` steps past `floor(n * r)`, the same
    /// idea as Bresenham's line algorithm: failures are spread as evenly as possible
    /// and the first `N` requests contain exactly `floor(N * r)` failures. With 0.2,
    /// requests 5, 10, 15, ... (1-based) fail, so a short smoke test sees successes
    /// first and a load test sees the exact ratio.
    pub fn fails(self, n: u64) -> bool {
        let ppm = u128::from(self.ppm);
        let million = u128::from(MILLION);
        let n = u128::from(n);
        (n + 1) * ppm / million > n * ppm / million
    }
}

impl std::fmt::Display for ErrorRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", f64::from(self.ppm) / f64::from(MILLION))
    }
}

/// Why `/health` or `/` is failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhealthy {
    /// `FAULT_NEVER_HEALTHY`.
    NeverHealthy,
    /// `FAULT_FAIL_AFTER_SECS` has elapsed.
    FailAfter,
}

impl Unhealthy {
    /// Machine-readable reason for the `/health` JSON.
    pub fn reason(self) -> &'static str {
        match self {
            Unhealthy::NeverHealthy => "FAULT_NEVER_HEALTHY",
            Unhealthy::FailAfter => "FAULT_FAIL_AFTER_SECS",
        }
    }
}

/// What `/` should do for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOutcome {
    /// Serve normally.
    Ok,
    /// 500: the app has turned unhealthy.
    Unhealthy,
    /// 503: chosen by the error ratio.
    InjectedError,
}

/// The faults plus the state they need at run time.
#[derive(Debug)]
pub struct FaultClock {
    faults: Faults,
    start: Instant,
    root_requests: AtomicU64,
}

impl FaultClock {
    /// Timers count from `start`.
    pub fn new(faults: Faults, start: Instant) -> FaultClock {
        FaultClock {
            faults,
            start,
            root_requests: AtomicU64::new(0),
        }
    }

    /// The configured faults.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// When the process should crash, if ever.
    pub fn crash_deadline(&self) -> Option<Instant> {
        self.faults.crash_after.map(|d| self.start + d)
    }

    /// When the listener may open.
    pub fn listen_at(&self) -> Instant {
        self.start + self.faults.slow_start
    }

    /// `Some(reason)` when `/health` should answer 500.
    pub fn health(&self, now: Instant) -> Option<Unhealthy> {
        if self.faults.never_healthy {
            Some(Unhealthy::NeverHealthy)
        } else if self.failed_after(now) {
            Some(Unhealthy::FailAfter)
        } else {
            None
        }
    }

    fn failed_after(&self, now: Instant) -> bool {
        self.faults
            .fail_after
            .is_some_and(|d| now.saturating_duration_since(self.start) >= d)
    }

    /// Decides the fate of one `/` request.
    ///
    /// `FAULT_NEVER_HEALTHY` leaves `/` alone on purpose: it models an app whose health
    /// check is broken while it serves fine, which a health gate must still reject.
    /// Requests already failing because of `FAULT_FAIL_AFTER_SECS` do not advance the
    /// error-ratio counter, so the ratio holds over the requests it applies to.
    pub fn root(&self, now: Instant) -> RootOutcome {
        if self.failed_after(now) {
            return RootOutcome::Unhealthy;
        }
        if self.faults.error_ratio == ErrorRatio::NEVER {
            return RootOutcome::Ok;
        }
        let n = self.root_requests.fetch_add(1, Ordering::Relaxed);
        if self.faults.error_ratio.fails(n) {
            RootOutcome::InjectedError
        } else {
            RootOutcome::Ok
        }
    }

    /// Extra delay for `/`.
    pub fn latency(&self) -> Duration {
        self.faults.latency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(ratio: f64, requests: u64) -> u64 {
        let r = ErrorRatio::new(ratio).unwrap();
        (0..requests).filter(|&n| r.fails(n)).count() as u64
    }

    #[test]
    fn error_ratio_is_within_one_percent_over_1000_requests() {
        for ratio in [
            0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.25, 0.333, 0.5, 0.75, 0.9, 0.999, 1.0,
        ] {
            let got = failures(ratio, 1000) as f64 / 1000.0;
            assert!(
                (got - ratio).abs() <= 0.01,
                "ratio {ratio}: got {got} over 1000 requests"
            );
        }
    }

    #[test]
    fn error_ratio_is_exact_and_evenly_spread() {
        let r = ErrorRatio::new(0.2).unwrap();
        let failed: Vec<u64> = (0..20).filter(|&n| r.fails(n)).map(|n| n + 1).collect();
        assert_eq!(failed, [5, 10, 15, 20]);
        assert_eq!(failures(0.2, 1000), 200);
        assert_eq!(failures(0.333, 1000), 333);
        // Any window of 100 consecutive requests holds 20 failures, not just the total.
        for start in 0..900 {
            let window = (start..start + 100).filter(|&n| r.fails(n)).count();
            assert_eq!(window, 20, "window starting at {start}");
        }
    }

    #[test]
    fn error_ratio_extremes_and_range() {
        assert!((0..1000).all(|n| !ErrorRatio::NEVER.fails(n)));
        assert!((0..1000).all(|n| ErrorRatio::ALWAYS.fails(n)));
        assert!(ErrorRatio::new(-0.01).is_none());
        assert!(ErrorRatio::new(1.01).is_none());
        assert!(ErrorRatio::new(f64::NAN).is_none());
        assert!(!ErrorRatio::new(0.5).unwrap().fails(u64::MAX - 1));
        assert_eq!(ErrorRatio::new(0.2).unwrap().to_string(), "0.2");
    }

    #[test]
    fn clock_counts_from_start() {
        let start = Instant::now();
        let faults = Faults {
            fail_after: Some(Duration::from_secs(10)),
            crash_after: Some(Duration::from_secs(20)),
            slow_start: Duration::from_secs(3),
            ..Faults::default()
        };
        let clock = FaultClock::new(faults, start);
        assert_eq!(clock.health(start), None);
        assert_eq!(clock.root(start + Duration::from_secs(9)), RootOutcome::Ok);
        assert_eq!(
            clock.health(start + Duration::from_secs(10)),
            Some(Unhealthy::FailAfter)
        );
        assert_eq!(
            clock.root(start + Duration::from_secs(10)),
            RootOutcome::Unhealthy
        );
        assert_eq!(
            clock.crash_deadline(),
            Some(start + Duration::from_secs(20))
        );
        assert_eq!(clock.listen_at(), start + Duration::from_secs(3));
    }

    #[test]
    fn never_healthy_fails_health_but_not_root() {
        let start = Instant::now();
        let clock = FaultClock::new(
            Faults {
                never_healthy: true,
                ..Faults::default()
            },
            start,
        );
        assert_eq!(clock.health(start), Some(Unhealthy::NeverHealthy));
        assert_eq!(clock.root(start), RootOutcome::Ok);
    }

    #[test]
    fn summary_lists_active_faults() {
        assert_eq!(Faults::default().summary(), "none");
        let f = Faults {
            error_ratio: ErrorRatio::new(0.2).unwrap(),
            latency: Duration::from_millis(100),
            fail_after: Some(Duration::from_millis(1500)),
            ..Faults::default()
        };
        assert_eq!(f.summary(), "fail_after=1.5s error_ratio=0.2 latency=100ms");
    }
}
