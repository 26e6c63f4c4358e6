//! The Prometheus scrape config davit expects, rendered from the blue and green ports.
//!
//! On a plain Docker host there is no service discovery: the two colors of a blue-green deploy
//! live on two fixed host ports, and Prometheus must tell their series apart to judge only the
//! new release. The simplest arrangement that works is one static job listing both ports, each
//! with a `color` label; the default selector `color="{{color}}"` then picks the new release's
//! series, and the kept color's series stay visible for comparison. Because the ports are fixed,
//! the config never changes between deploys and Prometheus never needs a reload.
//!
//! ```yaml
//! global:
//!   scrape_interval: 15s
//! scrape_configs:
//!   - job_name: "app"
//!     metrics_path: "/metrics"
//!     static_configs:
//!       - targets: ["127.0.0.1:18081"]
//!         labels: {color: "blue"}
//!       - targets: ["127.0.0.1:18082"]
//!         labels: {color: "green"}
//! ```

use std::time::Duration;

/// One scrape target with its extra labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// `host:port` as Prometheus reaches it.
    pub address: String,
    pub labels: Vec<(String, String)>,
}

/// The two colors of a blue-green app on `host`.
pub fn blue_green_targets(host: &str, blue_port: u16, green_port: u16) -> Vec<ScrapeTarget> {
    [("blue", blue_port), ("green", green_port)]
        .into_iter()
        .map(|(color, port)| ScrapeTarget {
            address: format!("{host}:{port}"),
            labels: vec![("color".into(), color.into())],
        })
        .collect()
}

/// A complete `prometheus.yml` with one job scraping `targets` every `scrape_interval`.
///
/// Values are written as JSON strings, which YAML reads as double-quoted scalars, so no label
/// value or path can break the document.
pub fn render_prometheus_yml(
    job: &str,
    scrape_interval: Duration,
    metrics_path: &str,
    targets: &[ScrapeTarget],
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let interval = format!("{}ms", scrape_interval.as_millis().max(1));
    let mut y = format!(
        "# Rendered by davit-analysis: one static job, one target per color.\nglobal:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n  - job_name: {}\n    metrics_path: {}\n    scrape_timeout: {}\n    static_configs:\n",
        q(job),
        q(metrics_path),
        // Prometheus refuses a scrape timeout longer than the interval.
        format_args!("{}ms", scrape_interval.as_millis().clamp(1, 10_000)),
    );
    for t in targets {
        y.push_str(&format!("      - targets: [{}]\n", q(&t.address)));
        if !t.labels.is_empty() {
            let labels: Vec<String> = t
                .labels
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect();
            y.push_str(&format!("        labels: {{{}}}\n", labels.join(", ")));
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_colors() {
        let y = render_prometheus_yml(
            "app",
            Duration::from_secs(1),
            "/metrics",
            &blue_green_targets("127.0.0.1", 18081, 18082),
        );
        assert_eq!(
            y,
            r#"# Rendered by davit-analysis: one static job, one target per color.
global:
  scrape_interval: 1000ms
  evaluation_interval: 1000ms
scrape_configs:
  - job_name: "app"
    metrics_path: "/metrics"
    scrape_timeout: 1000ms
    static_configs:
      - targets: ["127.0.0.1:18081"]
        labels: {"color": "blue"}
      - targets: ["127.0.0.1:18082"]
        labels: {"color": "green"}
"#
        );
    }

    #[test]
    fn values_cannot_break_the_yaml() {
        let y = render_prometheus_yml(
            "a\"\nb",
            Duration::from_secs(15),
            "/m",
            &[ScrapeTarget {
                address: "h:1".into(),
                labels: vec![("k".into(), "v\"}\n- x".into())],
            }],
        );
        assert!(y.contains(r#"job_name: "a\"\nb""#), "{y}");
        assert!(y.contains(r#"labels: {"k": "v\"}\n- x"}"#), "{y}");
        assert!(y.contains("scrape_timeout: 10000ms"));
    }
}
