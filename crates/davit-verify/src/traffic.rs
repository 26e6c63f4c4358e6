//! Judging the live release from its own traffic: every response the managed nginx sent.
//!
//! Probes see one request per interval; the proxy sees every user request. The managed nginx
//! writes one JSON line per response to a log per color (`davit_deploy::nginx::TRAFFIC_FORMAT`),
//! [`crate::tail`] follows it, and this module keeps a sliding window of the last
//! `traffic_window_ms` of responses of the release under verification. The release is bad as
//! soon as the window holds at least `traffic_min_requests` requests and the share that failed
//! (5xx: the app's own, or nginx's 502/504 when the app did not answer) reaches
//! `traffic_error_ratio`. A window with fewer requests says nothing: the service is quiet and
//! the probes decide, exactly as without traffic analysis; quiet never means healthy.
//!
//! The window runs on nginx's clock (`$msec` of each line), not on the clock of the machine
//! verify runs on, so a remote host's clock skew or a slow poll cannot stretch or shrink it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// The thresholds, from `[environments.X.verify]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub window: Duration,
    pub error_ratio: f64,
    pub min_requests: u32,
}

impl Limits {
    pub fn from_config(v: &davit_config::Verify) -> Self {
        Limits {
            window: Duration::from_millis(v.traffic_window_ms),
            error_ratio: v.traffic_error_ratio.0,
            min_requests: v.traffic_min_requests.max(1),
        }
    }

    /// `10 % of at least 50 requests in 1.0 s`, for reasons and the timeline.
    pub fn describe(&self) -> String {
        format!(
            "{} of at least {} requests in {:.1} s",
            percent(self.error_ratio),
            self.min_requests,
            self.window.as_secs_f64()
        )
    }
}

/// One line of the traffic log. Unknown fields are ignored, so the format can grow.
#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    /// nginx's `$msec`: seconds since the epoch, millisecond resolution.
    pub t: f64,
    pub color: String,
    pub release: String,
    pub status: u16,
    #[serde(default)]
    pub upstream_status: String,
    #[serde(default)]
    pub upstream_addr: String,
}

impl Response {
    /// Parse one log line; None for anything that is not one of ours (a torn or foreign line).
    pub fn parse(line: &str) -> Option<Response> {
        serde_json::from_str(line.trim()).ok()
    }

    /// Whether the release had a part in this answer: it went to the app, or nginx failed to
    /// reach it. Files nginx serves itself (`proxy.files`) and its own `return`s are not the
    /// release's traffic.
    pub fn is_release_traffic(&self) -> bool {
        !self.upstream_addr.is_empty() && self.upstream_addr != "-" || self.status >= 500
    }

    /// A failed request: any 5xx, whether the app answered it or nginx did because the app
    /// refused, reset or did not answer in time (502, 504).
    pub fn failed(&self) -> bool {
        self.status >= 500
    }

    fn millis(&self) -> u64 {
        (self.t * 1000.0).round().max(0.0) as u64
    }
}

/// The window's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub requests: u32,
    pub failures: u32,
    /// nginx's time (ms since the epoch) of the newest response in the window.
    pub at_ms: u64,
}

impl Figures {
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            f64::from(self.failures) / f64::from(self.requests)
        }
    }
}

/// What the window says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judgement {
    /// Fewer requests than the minimum: no say; the probes decide.
    Quiet(Figures),
    Healthy(Figures),
    Bad(Figures),
}

/// The sliding window of one color's responses.
#[derive(Debug)]
pub struct Window {
    limits: Limits,
    /// (nginx time in ms, failed), oldest first.
    entries: VecDeque<(u64, bool)>,
    failures: u32,
}

impl Window {
    pub fn new(limits: Limits) -> Self {
        Window {
            limits,
            entries: VecDeque::new(),
            failures: 0,
        }
    }

    /// Add a response (in log order) and judge the window that ends with it.
    pub fn push(&mut self, at_ms: u64, failed: bool) -> Judgement {
        // Lines of one file are in order to the millisecond, bar workers racing by a tick:
        // never let the window end move backwards.
        let at_ms = at_ms.max(self.entries.back().map_or(0, |e| e.0));
        self.entries.push_back((at_ms, failed));
        if failed {
            self.failures += 1;
        }
        let window_ms = self.limits.window.as_millis() as u64;
        while let Some(&(t, f)) = self.entries.front() {
            if t + window_ms > at_ms {
                break;
            }
            self.entries.pop_front();
            if f {
                self.failures -= 1;
            }
        }
        self.judge(at_ms)
    }

    fn judge(&self, at_ms: u64) -> Judgement {
        let figures = Figures {
            requests: self.entries.len() as u32,
            failures: self.failures,
            at_ms,
        };
        if figures.requests < self.limits.min_requests {
            Judgement::Quiet(figures)
        } else if figures.ratio() >= self.limits.error_ratio {
            Judgement::Bad(figures)
        } else {
            Judgement::Healthy(figures)
        }
    }
}

/// Everything the traffic analysis saw of one color during verification: for the verdict,
/// its JSON output and the step summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub color: String,
    pub release: String,
    /// The thresholds, e.g. `10 % of at least 50 requests in 1.0 s`.
    pub limits: String,
    /// Responses of the release seen, and how many failed.
    pub requests: u64,
    pub failures: u64,
    /// Judgements made while enough requests were in the window (the rest were quiet).
    pub judged: u64,
    pub quiet: u64,
    /// The worst full window.
    pub worst: Option<Figures>,
    /// The window that decided the release is bad.
    pub decided: Option<Figures>,
    /// Seconds from the first failed response in the deciding window to the decision's line,
    /// on nginx's clock.
    pub first_failure_to_decision_secs: Option<f64>,
    /// Why traffic had no say (no log, log unreadable), when it had none.
    pub note: Option<String>,
}

/// The traffic judge of one color and release: feed it log lines, ask it whether it decided.
#[derive(Debug)]
pub struct Judge {
    window: Window,
    limits: Limits,
    summary: Summary,
    /// nginx time of the failures still in the window, to say when the run of failures began.
    failure_times: VecDeque<u64>,
}

impl Judge {
    pub fn new(color: &str, release: &str, limits: Limits) -> Self {
        Judge {
            window: Window::new(limits),
            limits,
            summary: Summary {
                color: color.to_string(),
                release: release.to_string(),
                limits: limits.describe(),
                requests: 0,
                failures: 0,
                judged: 0,
                quiet: 0,
                worst: None,
                decided: None,
                first_failure_to_decision_secs: None,
                note: None,
            },
            failure_times: VecDeque::new(),
        }
    }

    /// Feed one log line. Returns the deciding figures the first time the window is bad;
    /// lines of other releases or colors (the file spans deploys) are skipped.
    pub fn line(&mut self, line: &str) -> Option<Figures> {
        if self.summary.decided.is_some() {
            return None;
        }
        let r = Response::parse(line)?;
        if r.release != self.summary.release
            || r.color != self.summary.color
            || !r.is_release_traffic()
        {
            return None;
        }
        let (at, failed) = (r.millis(), r.failed());
        self.summary.requests += 1;
        if failed {
            self.summary.failures += 1;
            self.failure_times.push_back(at);
        }
        let window_ms = self.limits.window.as_millis() as u64;
        while self
            .failure_times
            .front()
            .is_some_and(|&t| t + window_ms <= at)
        {
            self.failure_times.pop_front();
        }
        match self.window.push(at, failed) {
            Judgement::Quiet(_) => {
                self.summary.quiet += 1;
                None
            }
            Judgement::Healthy(f) => {
                self.summary.judged += 1;
                self.note_worst(f);
                None
            }
            Judgement::Bad(f) => {
                self.summary.judged += 1;
                self.note_worst(f);
                self.summary.decided = Some(f);
                self.summary.first_failure_to_decision_secs = self
                    .failure_times
                    .front()
                    .map(|&t| (f.at_ms.saturating_sub(t)) as f64 / 1000.0);
                Some(f)
            }
        }
    }

    fn note_worst(&mut self, f: Figures) {
        if self.summary.worst.is_none_or(|w| f.ratio() > w.ratio()) {
            self.summary.worst = Some(f);
        }
    }

    pub fn note(&mut self, why: String) {
        self.summary.note.get_or_insert(why);
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// The rollback reason for deciding figures.
    pub fn reason(&self, f: &Figures) -> String {
        format!(
            "traffic: {} of {} requests to {} failed ({}) within {:.1} s (limit {})",
            f.failures,
            f.requests,
            self.summary.color,
            percent(f.ratio()),
            self.limits.window.as_secs_f64(),
            self.limits.describe()
        )
    }
}

impl Summary {
    /// One line for the timeline and the summary table.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} requests to {} ({}), {} failed; ",
            self.requests, self.color, self.release, self.failures
        );
        match (&self.decided, &self.worst) {
            (Some(d), _) => s.push_str(&format!(
                "bad: {} of {} in the window ({})",
                d.failures,
                d.requests,
                percent(d.ratio())
            )),
            (None, Some(w)) => s.push_str(&format!(
                "worst window {} of {} ({}), under the limit",
                w.failures,
                w.requests,
                percent(w.ratio())
            )),
            (None, None) => s.push_str("never enough requests in a window: the probes decided"),
        }
        s.push_str(&format!(" (limit {})", self.limits));
        if let Some(n) = &self.note {
            s.push_str(&format!("; {n}"));
        }
        s
    }
}

fn percent(r: f64) -> String {
    let p = r * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{:.0} %", p)
    } else {
        format!("{p:.1} %")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(window_ms: u64, ratio: f64, min: u32) -> Limits {
        Limits {
            window: Duration::from_millis(window_ms),
            error_ratio: ratio,
            min_requests: min,
        }
    }

    fn line(t_ms: u64, status: u16, release: &str) -> String {
        format!(
            r#"{{"t":{}.{:03},"color":"green","release":"{release}","status":{status},"upstream_status":"{status}","upstream_addr":"127.0.0.1:8082","upstream_time":"0.001","request_time":0.001}}"#,
            t_ms / 1000,
            t_ms % 1000
        )
    }

    #[test]
    fn too_few_requests_is_quiet_never_healthy() {
        let mut w = Window::new(limits(1000, 0.1, 5));
        for i in 0..4 {
            assert!(matches!(w.push(i * 10, true), Judgement::Quiet(_)));
        }
        // The fifth request makes a window, and every one of them failed.
        assert!(
            matches!(w.push(40, true), Judgement::Bad(f) if f.requests == 5 && f.failures == 5)
        );
    }

    #[test]
    fn the_ratio_decides_at_the_threshold_not_before() {
        let mut w = Window::new(limits(1000, 0.1, 10));
        for i in 0..18 {
            assert!(matches!(
                w.push(i, false),
                Judgement::Quiet(_) | Judgement::Healthy(_)
            ));
        }
        // 1 of 19 (5 %): healthy; 2 of 20 (10 %): bad, the ratio is inclusive.
        assert!(matches!(w.push(18, true), Judgement::Healthy(f) if f.failures == 1));
        assert!(
            matches!(w.push(19, true), Judgement::Bad(f) if f.failures == 2 && f.requests == 20)
        );
    }

    #[test]
    fn old_responses_leave_the_window() {
        let mut w = Window::new(limits(1000, 0.5, 4));
        for i in 0..4 {
            w.push(i, true);
        }
        // 1 s later the four failures are gone: one success alone is quiet again.
        assert!(
            matches!(w.push(1003, false), Judgement::Quiet(f) if f.requests == 1 && f.failures == 0)
        );
        // Exactly at the window's edge an entry is out: (t + window) <= now.
        let mut w = Window::new(limits(100, 0.5, 1));
        w.push(0, true);
        assert!(matches!(w.push(100, false), Judgement::Healthy(f) if f.requests == 1));
        assert!(matches!(w.push(150, true), Judgement::Bad(f) if f.requests == 2));
    }

    #[test]
    fn a_clock_that_steps_back_does_not_shrink_the_window() {
        let mut w = Window::new(limits(1000, 0.5, 3));
        w.push(5000, true);
        w.push(4990, true);
        assert!(
            matches!(w.push(4995, false), Judgement::Bad(f) if f.requests == 3 && f.at_ms == 5000)
        );
    }

    #[test]
    fn background_errors_under_the_ratio_keep_the_release() {
        // 1 % errors at 200 requests/s for 30 s: never 10 % in a 1 s window.
        let mut j = Judge::new("green", "r2", limits(1000, 0.1, 50));
        for i in 0..6000u64 {
            let status = if i % 100 == 7 { 500 } else { 200 };
            assert_eq!(j.line(&line(1_000_000 + i * 5, status, "r2")), None, "{i}");
        }
        let s = j.summary();
        assert_eq!((s.requests, s.failures), (6000, 60));
        assert!(s.decided.is_none());
        assert!(s.worst.unwrap().ratio() <= 0.02, "{:?}", s.worst);
        assert!(s.describe().contains("under the limit"), "{}", s.describe());
    }

    #[test]
    fn a_release_that_goes_bad_is_caught_after_ratio_times_window() {
        let mut j = Judge::new("green", "r2", limits(1000, 0.1, 50));
        let mut decided = None;
        for i in 0..2000u64 {
            let t = 1_000_000 + i * 5;
            let status = if i >= 1000 { 502 } else { 200 };
            if let Some(f) = j.line(&line(t, status, "r2")) {
                decided = Some((i, f));
                break;
            }
        }
        let (i, f) = decided.expect("decided");
        // 10 % of a full 1 s window (200 requests) is 20 failures.
        assert_eq!(i, 1019);
        assert_eq!((f.failures, f.requests), (20, 200));
        let s = j.summary();
        assert_eq!(s.first_failure_to_decision_secs, Some(0.095));
        assert!(
            j.reason(&f)
                .contains("20 of 200 requests to green failed (10 %)")
        );
        // Nothing more is judged after the decision.
        assert_eq!(j.line(&line(2_000_000, 500, "r2")), None);
    }

    #[test]
    fn other_releases_foreign_lines_and_files_are_not_counted() {
        let mut j = Judge::new("green", "r2", limits(1000, 0.1, 1));
        assert_eq!(j.line(&line(1000, 500, "r1")), None);
        assert_eq!(j.line("not json"), None);
        assert_eq!(j.line(r#"{"t":1.0,"color":"green""#), None);
        // A file nginx served itself: no upstream.
        assert_eq!(
            j.line(r#"{"t":1.002,"color":"green","release":"r2","status":404,"upstream_status":"","upstream_addr":""}"#),
            None
        );
        assert_eq!(j.summary().requests, 0);
        // nginx's own 502 when the app refused: counted, failed.
        assert!(
            j.line(r#"{"t":1.003,"color":"green","release":"r2","status":502,"upstream_status":"502","upstream_addr":"127.0.0.1:8082"}"#)
                .is_some()
        );
    }
}
