//! Turning the load generator's records and the deployer's decisions into the published figures.
//!
//! Everything here is a pure function of two lists on one clock (microseconds since the epoch):
//! what every request saw, and when each switch was decided. Keeping it pure is what lets the
//! definitions be unit-tested with synthetic records, so a figure in docs/BENCHMARKS.md means
//! exactly what the doc says it means.

use crate::load::Record;
use serde::Serialize;
use std::collections::BTreeMap;

/// A deploy (to a new version) or a rollback (to the previous one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Deploy,
    Rollback,
}

/// One switch of the live version, as the deployer saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Switch {
    pub kind: Kind,
    /// The decision: for a deploy the start of the switch itself (after the health gate), for a
    /// rollback the moment rollback was called.
    pub decided_us: u64,
    /// When the deploy or rollback call returned.
    pub returned_us: u64,
    /// The version that should answer afterwards.
    pub expect: String,
}

/// How long after a switch's first new answer its window stays open: connections drain, old
/// nginx workers exit, and a late failure still belongs to the switch, not to "at rest".
pub const SETTLE_US: u64 = 1_000_000;

/// A switch with what the load saw of it.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchSeen {
    #[serde(flatten)]
    pub switch: Switch,
    /// First request sent after the decision that the expected version answered with 2xx.
    pub first_answer_us: Option<u64>,
    /// The window of requests that count as "during the switch": [decided, first answer + settle].
    pub window: (u64, u64),
    /// Failed requests due inside the window.
    pub failed: u64,
}

impl SwitchSeen {
    /// Decision to the first answer by the expected version, in seconds.
    pub fn switch_secs(&self) -> Option<f64> {
        self.first_answer_us
            .map(|a| a.saturating_sub(self.switch.decided_us) as f64 / 1e6)
    }
}

/// Match each switch with the load records. `records` must be sorted by `due_us`.
pub fn see_switches(records: &[Record], switches: &[Switch]) -> Vec<SwitchSeen> {
    switches
        .iter()
        .map(|s| {
            let first_answer_us = records
                .iter()
                .filter(|r| {
                    r.sent_us >= s.decided_us
                        && r.ok()
                        && r.version.as_deref() == Some(s.expect.as_str())
                })
                .map(Record::done_us)
                .min();
            // Without an answer the window runs to when the call returned, plus the settle time.
            let end = first_answer_us.unwrap_or(s.returned_us.max(s.decided_us)) + SETTLE_US;
            let window = (s.decided_us, end);
            let failed = records
                .iter()
                .filter(|r| !r.ok() && in_window(r.due_us, window))
                .count() as u64;
            SwitchSeen {
                switch: s.clone(),
                first_answer_us,
                window,
                failed,
            }
        })
        .collect()
}

fn in_window(t: u64, (from, to): (u64, u64)) -> bool {
    t >= from && t <= to
}

/// Whether a request was due during any switch window.
pub fn during_switch(r: &Record, seen: &[SwitchSeen]) -> bool {
    seen.iter().any(|s| in_window(r.due_us, s.window))
}

/// The nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The longest run of consecutive failed requests, in schedule order: (how many, from the first
/// one's due time to the last one's).
pub fn longest_failure_run(records: &[Record]) -> (u64, u64) {
    let mut best = (0u64, 0u64);
    let mut run = 0u64;
    let mut run_start = 0u64;
    for r in records {
        if r.ok() {
            run = 0;
            continue;
        }
        if run == 0 {
            run_start = r.due_us;
        }
        run += 1;
        if run > best.0 {
            best = (run, r.due_us - run_start);
        }
    }
    best
}

/// p50 and p99 of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    pub fn of(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        let ms = |v: Option<u64>| v.map(|v| v as f64 / 1000.0);
        Latency {
            count: us.len() as u64,
            p50_ms: ms(percentile(&us, 50.0)),
            p99_ms: ms(percentile(&us, 99.0)),
            max_ms: ms(us.last().copied()),
        }
    }
}

/// The p50 and the maximum of a list of durations in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    pub count: u64,
    pub p50_secs: Option<f64>,
    pub max_secs: Option<f64>,
}

impl Spread {
    pub fn of(secs: &[f64]) -> Spread {
        let mut us: Vec<u64> = secs.iter().map(|s| (s * 1e6).round() as u64).collect();
        us.sort_unstable();
        Spread {
            count: us.len() as u64,
            p50_secs: percentile(&us, 50.0).map(|v| v as f64 / 1e6),
            max_secs: us.last().map(|v| *v as f64 / 1e6),
        }
    }
}

/// Everything the table shows for one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub failed: u64,
    pub failed_during_switches: u64,
    pub longest_failure_run: u64,
    pub longest_failure_run_ms: f64,
    /// Failed requests by cause: `HTTP 502`, `connect: refused`, `reused read: closed`, ...
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Latency of successful requests that were not due during a switch.
    pub at_rest: Latency,
    /// Latency of successful requests due during a switch window.
    pub during_switches: Latency,
    pub deploys: u64,
    pub rollbacks: u64,
    /// Deploys: decision (switch start) to the new version answering through the public URL.
    pub switch_time: Spread,
    /// Rollbacks: decision to the previous version answering through the public URL.
    pub restore_time: Spread,
    /// Switches whose expected version never answered.
    pub never_answered: u64,
    /// The achieved request rate over the whole run.
    pub achieved_rps: f64,
    /// Requests that found their keep-alive connection closed by the server while idle and
    /// opened a new one before sending (not failures; what every pooled client does).
    pub reopened_connections: u64,
}

/// Summarize one scenario's records (sorted by due time) against its switches.
pub fn summarize(records: &[Record], switches: &[Switch]) -> (Summary, Vec<SwitchSeen>) {
    let seen = see_switches(records, switches);
    let mut s = Summary {
        requests: records.len() as u64,
        ..Summary::default()
    };
    let mut rest = Vec::new();
    let mut during = Vec::new();
    for r in records {
        s.reopened_connections += u64::from(r.reopened);
        let in_switch = during_switch(r, &seen);
        if r.ok() {
            if in_switch {
                during.push(r.latency_us);
            } else {
                rest.push(r.latency_us);
            }
            continue;
        }
        s.failed += 1;
        if in_switch {
            s.failed_during_switches += 1;
        }
        let cause = match &r.error {
            Some(e) => e.clone(),
            None => format!("HTTP {}", r.status),
        };
        *s.failures_by_cause.entry(cause).or_default() += 1;
    }
    let (run, run_us) = longest_failure_run(records);
    s.longest_failure_run = run;
    s.longest_failure_run_ms = run_us as f64 / 1000.0;
    s.at_rest = Latency::of(rest);
    s.during_switches = Latency::of(during);
    let times = |k: Kind| -> Vec<f64> {
        seen.iter()
            .filter(|x| x.switch.kind == k)
            .filter_map(SwitchSeen::switch_secs)
            .collect()
    };
    s.deploys = switches.iter().filter(|x| x.kind == Kind::Deploy).count() as u64;
    s.rollbacks = switches.iter().filter(|x| x.kind == Kind::Rollback).count() as u64;
    s.switch_time = Spread::of(&times(Kind::Deploy));
    s.restore_time = Spread::of(&times(Kind::Rollback));
    s.never_answered = seen.iter().filter(|x| x.first_answer_us.is_none()).count() as u64;
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        let span = last.due_us.saturating_sub(first.due_us) as f64 / 1e6;
        if span > 0.0 {
            s.achieved_rps = records.len() as f64 / span;
        }
    }
    (s, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request due at `t_ms` that took `lat_ms`, answered by `v` with `status` (0: error).
    fn rec(t_ms: u64, lat_ms: u64, status: u16, v: &str) -> Record {
        Record {
            due_us: t_ms * 1000,
            sent_us: t_ms * 1000,
            latency_us: lat_ms * 1000,
            status,
            version: (!v.is_empty()).then(|| v.to_string()),
            error: (status == 0).then(|| "connect: refused".to_string()),
            conn: 0,
            reopened: false,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // p99 of 10 values is the largest: nearest rank never interpolates below a real sample.
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10));
    }

    #[test]
    fn longest_failure_run_counts_consecutive_failures_in_schedule_order() {
        let r = vec![
            rec(0, 1, 200, "v1"),
            rec(5, 1, 0, ""),
            rec(10, 1, 502, "v1"),
            rec(15, 1, 200, "v1"),
            rec(20, 1, 0, ""),
            rec(25, 1, 0, ""),
            rec(30, 1, 503, "v2"),
            rec(35, 1, 200, "v2"),
        ];
        assert_eq!(longest_failure_run(&r), (3, 10_000));
        assert_eq!(longest_failure_run(&r[..1]), (0, 0));
        assert_eq!(longest_failure_run(&[rec(0, 1, 0, "")]), (1, 0));
    }

    #[test]
    fn switch_time_is_decision_to_first_answer_of_the_new_version() {
        // v1 answers until 1000 ms; the switch is decided at 900 ms; v2 first answers a request
        // sent at 1005 ms that completes at 1007 ms.
        let mut r: Vec<Record> = (0..200).map(|i| rec(i * 5, 2, 200, "v1")).collect();
        r.extend((201..400).map(|i| rec(i * 5, 2, 200, "v2")));
        let s = Switch {
            kind: Kind::Deploy,
            decided_us: 900_000,
            returned_us: 1_200_000,
            expect: "v2".into(),
        };
        let seen = see_switches(&r, &[s]);
        assert_eq!(seen[0].first_answer_us, Some(1_007_000));
        assert!((seen[0].switch_secs().unwrap() - 0.107).abs() < 1e-9);
        assert_eq!(seen[0].window, (900_000, 2_007_000));
    }

    #[test]
    fn answers_before_the_decision_do_not_count() {
        // v2 answered earlier (a previous cycle), then v1, then the switch back to v2.
        let r = vec![
            rec(0, 1, 200, "v2"),
            rec(10, 1, 200, "v1"),
            rec(20, 1, 200, "v1"),
            rec(30, 1, 200, "v2"),
        ];
        let s = Switch {
            kind: Kind::Deploy,
            decided_us: 15_000,
            returned_us: 40_000,
            expect: "v2".into(),
        };
        assert_eq!(see_switches(&r, &[s])[0].first_answer_us, Some(31_000));
    }

    #[test]
    fn window_classification_and_summary() {
        // 10 s of traffic every 10 ms; one deploy decided at 3 s whose new version answers from
        // 3.5 s, with three refused connections at 3.2-3.22 s; one failure at rest at 8 s.
        let mut r = Vec::new();
        for i in 0..1000u64 {
            let t = i * 10;
            let v = if t < 3500 { "v1" } else { "v2" };
            let (status, lat) = match t {
                3200..=3220 => (0, 1),
                8000 => (502, 1),
                3000..=4500 => (200, 20),
                _ => (200, 2),
            };
            r.push(rec(t, lat, status, v));
        }
        let switches = [Switch {
            kind: Kind::Deploy,
            decided_us: 3_000_000,
            returned_us: 3_600_000,
            expect: "v2".into(),
        }];
        let (s, seen) = summarize(&r, &switches);
        assert_eq!(s.requests, 1000);
        assert_eq!(s.failed, 4);
        assert_eq!(s.failed_during_switches, 3);
        assert_eq!(seen[0].failed, 3);
        assert_eq!(s.longest_failure_run, 3);
        assert_eq!(s.failures_by_cause["connect: refused"], 3);
        assert_eq!(s.failures_by_cause["HTTP 502"], 1);
        // v2 first answers the request due at 3.5 s, after 20 ms; the window is 3.0 s to
        // 3.52 s + settle: 153 requests, 150 of them good.
        assert_eq!(seen[0].window, (3_000_000, 4_520_000));
        assert_eq!(s.during_switches.count, 150);
        assert_eq!(s.during_switches.p50_ms, Some(20.0));
        assert_eq!(s.at_rest.count, 1000 - 4 - 150);
        assert_eq!(s.at_rest.p50_ms, Some(2.0));
        assert_eq!(s.deploys, 1);
        assert_eq!(s.rollbacks, 0);
        assert!((s.switch_time.p50_secs.unwrap() - 0.52).abs() < 1e-9);
        assert_eq!(s.never_answered, 0);
    }

    #[test]
    fn a_switch_that_never_answers_keeps_its_window_to_the_return() {
        let r = vec![rec(0, 1, 200, "v1"), rec(50, 1, 0, "")];
        let s = Switch {
            kind: Kind::Rollback,
            decided_us: 10_000,
            returned_us: 60_000,
            expect: "v0".into(),
        };
        let (sum, seen) = summarize(&r, &[s]);
        assert_eq!(seen[0].first_answer_us, None);
        assert_eq!(seen[0].window, (10_000, 60_000 + SETTLE_US));
        assert_eq!(sum.never_answered, 1);
        assert_eq!(sum.restore_time.count, 0);
    }

    #[test]
    fn spread_of_seconds() {
        let s = Spread::of(&[0.3, 0.1, 0.2]);
        assert_eq!(s.count, 3);
        assert_eq!(s.p50_secs, Some(0.2));
        assert_eq!(s.max_secs, Some(0.3));
        assert_eq!(Spread::of(&[]).p50_secs, None);
    }
}
