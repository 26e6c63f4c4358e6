//! Request counters and a latency histogram in the Prometheus text format.
//!
//! Written by hand because the format is small and the app must stay dependency-free
//! for its static build. The path label is folded into a fixed set (`/`, `/health`,
//! `/metrics`, `other`) so a scanner probing random URLs cannot grow the series count.
//! `/metrics` has its own label so that scrapes do not hide among the 404s in `other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus client defaults).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `path` label of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathLabel {
    /// `/`
    Root,
    /// `/health`
    Health,
    /// `/metrics`
    Metrics,
    /// Anything else, including unparseable requests.
    Other,
}

impl PathLabel {
    /// All labels, in rendering order.
    pub const ALL: [PathLabel; 4] = [
        PathLabel::Root,
        PathLabel::Health,
        PathLabel::Metrics,
        PathLabel::Other,
    ];

    /// The label for a request path (without query string).
    pub fn of(path: &str) -> PathLabel {
        match path {
            "/" => PathLabel::Root,
            "/health" => PathLabel::Health,
            "/metrics" => PathLabel::Metrics,
            _ => PathLabel::Other,
        }
    }

    /// The label value as rendered.
    pub fn as_str(self) -> &'static str {
        match self {
            PathLabel::Root => "/",
            PathLabel::Health => "/health",
            PathLabel::Metrics => "/metrics",
            PathLabel::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per-bucket (not cumulative) counts; the last slot is for observations above
    /// every bound, which only `+Inf` includes.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let slot = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += secs;
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(PathLabel, u16), u64>,
    latency: [Histogram; 4],
}

/// Thread-safe registry for everything `/metrics` shows.
///
/// One mutex rather than atomics: it is held for a few nanoseconds per request, far
/// below the cost of the request itself, and it keeps each histogram's buckets, sum
/// and count consistent with each other in every scrape.
#[derive(Debug)]
pub struct Metrics {
    version: String,
    inner: Mutex<Inner>,
}

impl Metrics {
    /// An empty registry for an app reporting `version`.
    ///
    /// The status codes the fault modes can produce start at zero, so an error-rate
    /// query such as `rate(http_requests_total{code="503"}[1m])` returns 0 rather than
    /// no data before the first failure; gates treat "no data" as unknown.
    pub fn new(version: &str) -> Metrics {
        let mut inner = Inner::default();
        for key in [
            (PathLabel::Root, 200),
            (PathLabel::Root, 500),
            (PathLabel::Root, 503),
            (PathLabel::Health, 200),
            (PathLabel::Health, 500),
        ] {
            inner.requests.insert(key, 0);
        }
        Metrics {
            version: version.to_owned(),
            inner: Mutex::new(inner),
        }
    }

    /// Records one response.
    pub fn observe(&self, path: PathLabel, code: u16, elapsed: Duration) {
        let mut inner = self.lock();
        *inner.requests.entry((path, code)).or_insert(0) += 1;
        inner.latency[path.index()].observe(elapsed.as_secs_f64());
    }

    /// The number of responses recorded for `path` and `code`.
    pub fn requests(&self, path: PathLabel, code: u16) -> u64 {
        self.lock()
            .requests
            .get(&(path, code))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters half-written in a
        // way that matters, so keep serving metrics rather than failing every request.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let (requests, latency) = {
            let inner = self.lock();
            (inner.requests.clone(), inner.latency.clone())
        };
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP http_requests_total HTTP responses sent, by path and status code.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((path, code), n) in &requests {
            let _ = writeln!(
                out,
                "http_requests_total{{path=\"{}\",code=\"{code}\"}} {n}",
                path.as_str()
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time from reading a request to writing its response, by path.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for path in PathLabel::ALL {
            let h = &latency[path.index()];
            let p = path.as_str();
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{path=\"{p}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count: u64 = h.counts.iter().sum();
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{path=\"{p}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{path=\"{p}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{path=\"{p}\"}} {count}"
            );
        }
        out.push_str("# HELP demo_app_info Version of the running demo app; always 1.\n");
        out.push_str("# TYPE demo_app_info gauge\n");
        let _ = writeln!(
            out,
            "demo_app_info{{version=\"{}\"}} 1",
            escape_label(&self.version)
        );
        out
    }
}

/// Escapes a label value as the text format requires.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn renders_counters_histogram_and_info() {
        let m = Metrics::new("1.2.3");
        m.observe(PathLabel::Root, 200, ms(3));
        m.observe(PathLabel::Root, 200, ms(30));
        m.observe(PathLabel::Root, 503, ms(20_000));
        m.observe(PathLabel::Other, 404, ms(1));
        let text = m.render();

        for line in [
            "# TYPE http_requests_total counter",
            "http_requests_total{path=\"/\",code=\"200\"} 2",
            "http_requests_total{path=\"/\",code=\"503\"} 1",
            "http_requests_total{path=\"/\",code=\"500\"} 0",
            "http_requests_total{path=\"/health\",code=\"200\"} 0",
            "http_requests_total{path=\"other\",code=\"404\"} 1",
            "# TYPE http_request_duration_seconds histogram",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"0.005\"} 1",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"0.025\"} 1",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"0.05\"} 2",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"1\"} 2",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"10\"} 2",
            "http_request_duration_seconds_bucket{path=\"/\",le=\"+Inf\"} 3",
            "http_request_duration_seconds_sum{path=\"/\"} 20.033",
            "http_request_duration_seconds_count{path=\"/\"} 3",
            "http_request_duration_seconds_bucket{path=\"/health\",le=\"+Inf\"} 0",
            "http_request_duration_seconds_sum{path=\"/health\"} 0",
            "http_request_duration_seconds_count{path=\"other\"} 1",
            "# TYPE demo_app_info gauge",
            "demo_app_info{version=\"1.2.3\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn every_line_is_a_comment_or_a_sample() {
        let m = Metrics::new("dev");
        m.observe(PathLabel::Metrics, 200, ms(1));
        for line in m.render().lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name in {line:?}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "unterminated labels in {line:?}");
            }
        }
    }

    #[test]
    fn buckets_are_cumulative_and_le_values_are_prometheus_style() {
        let m = Metrics::new("dev");
        for n in [1, 7, 12, 60, 300, 700, 1500, 3000, 6000, 11_000] {
            m.observe(PathLabel::Health, 200, ms(n));
        }
        let text = m.render();
        let bucket_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_request_duration_seconds_bucket{path=\"/health\""))
            .collect();
        let les: Vec<&str> = bucket_lines
            .iter()
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            les,
            [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf"
            ]
        );
        let values: Vec<u64> = bucket_lines
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(values, [1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new("a\"b\\c");
        assert!(
            m.render()
                .contains("demo_app_info{version=\"a\\\"b\\\\c\"} 1")
        );
    }

    #[test]
    fn path_labels_are_bounded() {
        assert_eq!(PathLabel::of("/"), PathLabel::Root);
        assert_eq!(PathLabel::of("/health"), PathLabel::Health);
        assert_eq!(PathLabel::of("/metrics"), PathLabel::Metrics);
        assert_eq!(PathLabel::of("/wp-admin"), PathLabel::Other);
        assert_eq!(PathLabel::of("/health/"), PathLabel::Other);
    }
}
