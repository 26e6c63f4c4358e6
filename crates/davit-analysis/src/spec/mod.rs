//! The `[analysis]` table of davit.toml: what to measure after cut-over and how to judge it.
//!
//! The vocabulary is Argo Rollouts' (interval, count, failure limit, consecutive error limit,
//! success and failure conditions) because that is what people who already run canary analysis
//! know. davit adds built-in golden-signal templates, so a typical app needs three lines instead
//! of three hand-written PromQL queries, and an explicit `inconclusive` policy, because the
//! question that matters most on a plain Docker host is what to do when the metrics are not
//! there. Everything is validated when the spec is loaded, before anything is deployed, and each
//! error names the field and the fix.
//!
//! Queries and URLs may contain placeholders filled per release by [`Release`]: `{{color}}`,
//! `{{instance}}`, `{{version}}`, `{{base_url}}`, and in template-style queries `{{selector}}`
//! and `{{window}}`. Double braces never occur in PromQL, so they cannot clash with label
//! matchers.
//!
//! Here are the spec's types and rendering; `resolve` turns the raw table into a checked spec
//! one part at a time, and `check` holds the checks the parts share.

use crate::expr::Expr;
use davit_core::Failure;
use serde::Deserialize;
use std::time::Duration;

mod check;
mod resolve;

pub use check::parse_duration;
use resolve::resolve;

/// Where an error came from and how to fix it; turns into exit code 2.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("davit.toml [analysis] {field}: {message}")]
pub struct SpecError {
    /// Dotted path inside `[analysis]`, e.g. `metrics[1].success_condition`.
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl SpecError {
    fn new(field: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Failure {
        Failure::bad_input(e.to_string(), e.hint)
    }
}

/// What an inconclusive analysis (no data, NaN, Prometheus unreachable) does.
///
/// None of them promotes: "no data" is never read as "healthy" (RELIABILITY.md T23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InconclusivePolicy {
    /// Roll back to the kept color, exactly as after a failed analysis. The safe default.
    #[default]
    Rollback,
    /// Leave the new release serving and the previous color running, and fail the step (exit
    /// 1) so a person decides: `davit rollback`, or re-run verify once metrics are back.
    Hold,
    /// Fail the step as an infrastructure error (exit 3) without rolling back; the previous
    /// color keeps running.
    Fail,
}

/// The built-in golden-signal templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// Share of 5xx responses; success when `result <= error_rate_max`.
    ErrorRate,
    /// 95th percentile latency in seconds; success when `result <= p95_latency_max_secs`.
    P95Latency,
    /// Requests per second reach the release at all (or at least `request_rate_min`).
    RequestRate,
}

impl Template {
    pub const ALL: [Template; 3] = [
        Template::ErrorRate,
        Template::P95Latency,
        Template::RequestRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Template::ErrorRate => "error-rate",
            Template::P95Latency => "p95-latency",
            Template::RequestRate => "request-rate",
        }
    }
}

/// How a metric is read.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSpec {
    /// An instant query against `[analysis.prometheus] url`, evaluated every interval.
    Prometheus { query: String },
    /// HTTP GET, then a number at a dotted JSON path (`data.error_rate`, `items.0.value`).
    Web { url: String, json_path: String },
}

/// A parsed condition with its source text, which is what the summary shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    pub expr: Expr,
}

/// One metric to measure every interval.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub name: String,
    pub provider: ProviderSpec,
    pub success_condition: Option<Condition>,
    pub failure_condition: Option<Condition>,
    /// Set for metrics that came from `templates`.
    pub template: Option<Template>,
}

impl MetricSpec {
    /// The threshold as shown next to each value in the summary.
    pub fn threshold(&self) -> String {
        match (&self.success_condition, &self.failure_condition) {
            (Some(s), None) => format!("pass if {}", s.text),
            (None, Some(f)) => format!("fail if {}", f.text),
            (Some(s), Some(f)) => format!("pass if {}; fail if {}", s.text, f.text),
            (None, None) => String::new(),
        }
    }
}

/// `[analysis.prometheus]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSettings {
    /// Base URL reachable from where davit runs, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// Per-query timeout.
    pub timeout: Duration,
    /// A sample whose timestamp is older than this is stale, hence inconclusive.
    pub max_staleness: Duration,
    /// Name of an environment variable holding a bearer token, if Prometheus needs one.
    pub bearer_token_env: Option<String>,
}

/// `[analysis.smoke]`: a command run against the new release with `BASE_URL` set.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeSpec {
    /// argv; run directly, never through a shell.
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// `[analysis.notify]`: when to notify. The webhook URLs are secrets and come from the
/// environment (see [`crate::notify::Notifier::from_env`]), never from davit.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySpec {
    pub on_success: bool,
    pub on_rollback: bool,
}

/// The validated `[analysis]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSpec {
    pub interval: Duration,
    /// Wait before the first measurement (Argo's `initialDelay`): rate windows need traffic
    /// to the new color before they mean anything.
    pub initial_delay: Duration,
    /// Measurements per metric; `None` measures until the watch window ends.
    pub count: Option<u32>,
    /// The analysis fails at `failure_limit + 1` failed measurements of one metric.
    pub failure_limit: u32,
    /// More than this many errors in a row (Prometheus down, HTTP 500) make the analysis
    /// inconclusive.
    pub consecutive_error_limit: u32,
    /// More than this many inconclusive measurements (no data, NaN) make it inconclusive.
    pub inconclusive_limit: u32,
    pub inconclusive: InconclusivePolicy,
    pub prometheus: Option<PrometheusSettings>,
    /// Label matchers (without braces) that pick the new release's series, with placeholders.
    pub selector: String,
    /// Range for `rate()` in template queries, e.g. `1m`.
    pub window: String,
    pub metrics: Vec<MetricSpec>,
    pub smoke: Option<SmokeSpec>,
    pub notify: NotifySpec,
}

/// The release being analysed: fills the placeholders in queries, selectors and URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Release {
    /// `blue` or `green` for blue-green; matches the `color` label of the scrape config.
    pub color: Option<String>,
    /// `host:port` of the new release as Prometheus scrapes it.
    pub instance: Option<String>,
    pub version: Option<String>,
    /// Base URL of the new release, for web metrics and the smoke test.
    pub base_url: Option<String>,
}

/// Values from action inputs that override davit.toml. They are merged into the table before
/// validation, so an input gets exactly the same checks and messages as the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub prometheus_url: Option<String>,
    pub templates: Option<Vec<String>>,
    pub interval: Option<String>,
    pub count: Option<u32>,
    pub failure_limit: Option<u32>,
    pub inconclusive: Option<String>,
    pub error_rate_max: Option<f64>,
    pub p95_latency_max_secs: Option<f64>,
    pub request_rate_min: Option<f64>,
    pub selector: Option<String>,
    pub smoke_command: Option<Vec<String>>,
}

pub const DEFAULT_ERROR_RATE_MAX: f64 = 0.05;
pub const DEFAULT_P95_LATENCY_MAX_SECS: f64 = 2.0;
pub const DEFAULT_SELECTOR: &str = r#"color="{{color}}""#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    interval: Option<toml::Value>,
    interval_secs: Option<toml::Value>,
    initial_delay: Option<toml::Value>,
    count: Option<u32>,
    #[serde(default)]
    failure_limit: u32,
    #[serde(default = "default_consecutive_error_limit")]
    consecutive_error_limit: u32,
    #[serde(default)]
    inconclusive_limit: u32,
    inconclusive: Option<String>,
    prometheus: Option<RawPrometheus>,
    selector: Option<String>,
    window: Option<String>,
    #[serde(default)]
    templates: Vec<String>,
    error_rate_max: Option<f64>,
    p95_latency_max_secs: Option<f64>,
    request_rate_min: Option<f64>,
    requests_metric: Option<String>,
    latency_histogram: Option<String>,
    status_label: Option<String>,
    #[serde(default)]
    metrics: Vec<RawMetric>,
    smoke: Option<RawSmoke>,
    notify: Option<RawNotify>,
}

/// Argo's default.
fn default_consecutive_error_limit() -> u32 {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    url: String,
    timeout: Option<toml::Value>,
    max_staleness: Option<toml::Value>,
    bearer_token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: String,
    provider: Option<String>,
    query: Option<String>,
    url: Option<String>,
    json_path: Option<String>,
    success_condition: Option<String>,
    failure_condition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmoke {
    command: Vec<String>,
    timeout: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default = "yes")]
    on_success: bool,
    #[serde(default = "yes")]
    on_rollback: bool,
}

fn yes() -> bool {
    true
}

const PLACEHOLDERS: [&str; 6] = [
    "color", "instance", "version", "base_url", "selector", "window",
];

impl AnalysisSpec {
    /// Parse and validate the raw `[analysis]` table (`davit_config::Config::analysis`).
    pub fn from_table(table: &toml::Table) -> Result<AnalysisSpec, SpecError> {
        let raw: Raw = serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let field = if path == "." { String::new() } else { path };
                let hint = if inner.contains("unknown field") {
                    "check the spelling; the fields are listed in the message and in crates/davit-analysis/README.md"
                } else {
                    "fix the value's type (strings in quotes, numbers without)"
                };
                SpecError::new(field, inner, hint)
            })?;
        resolve(raw)
    }

    /// Like [`AnalysisSpec::from_table`], with action inputs merged over the table first.
    /// `table` is `None` when davit.toml has no `[analysis]`.
    pub fn from_sources(
        table: Option<&toml::Table>,
        overrides: &Overrides,
    ) -> Result<AnalysisSpec, SpecError> {
        let mut t = table.cloned().unwrap_or_default();
        let o = overrides;
        let mut set = |k: &str, v: Option<toml::Value>| {
            if let Some(v) = v {
                t.insert(k.to_string(), v);
            }
        };
        set("interval", o.interval.clone().map(toml::Value::String));
        set("count", o.count.map(|c| toml::Value::Integer(c.into())));
        set(
            "failure_limit",
            o.failure_limit.map(|c| toml::Value::Integer(c.into())),
        );
        set(
            "inconclusive",
            o.inconclusive.clone().map(toml::Value::String),
        );
        set("error_rate_max", o.error_rate_max.map(toml::Value::Float));
        set(
            "p95_latency_max_secs",
            o.p95_latency_max_secs.map(toml::Value::Float),
        );
        set(
            "request_rate_min",
            o.request_rate_min.map(toml::Value::Float),
        );
        set("selector", o.selector.clone().map(toml::Value::String));
        set(
            "templates",
            o.templates
                .clone()
                .map(|v| toml::Value::Array(v.into_iter().map(toml::Value::String).collect())),
        );
        if let Some(url) = &o.prometheus_url {
            let p = t
                .entry("prometheus")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(p) = p {
                p.insert("url".into(), toml::Value::String(url.clone()));
            }
        }
        if let Some(cmd) = &o.smoke_command {
            let s = t
                .entry("smoke")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(s) = s {
                s.insert(
                    "command".into(),
                    toml::Value::Array(cmd.iter().cloned().map(toml::Value::String).collect()),
                );
            }
        }
        AnalysisSpec::from_table(&t)
    }

    /// The shortest watch window in which `count` measurements fit, if `count` is set. The
    /// watch window should be at least this long, or the analysis ends before it is complete.
    pub fn min_window(&self) -> Option<Duration> {
        self.count.map(|c| {
            self.initial_delay + self.interval * c.saturating_sub(1) + Duration::from_secs(1)
        })
    }
}

/// Fill the placeholders of a query, selector or URL for one release.
///
/// `{{selector}}` and `{{window}}` are filled first (the selector itself holds release
/// placeholders). A release placeholder without a value is an error, not an empty string: an
/// empty `color=""` matcher would silently select nothing, or everything.
pub fn render(text: &str, spec: &AnalysisSpec, release: &Release) -> Result<String, RenderError> {
    let mut s = text.replace("{{window}}", &spec.window);
    // `x{,a="b"}` is not valid PromQL, so an empty selector needs the comma dropped.
    if spec.selector.trim().is_empty() {
        s = s.replace(",{{selector}}", "").replace("{{selector}}", "");
    } else {
        s = s.replace("{{selector}}", &spec.selector);
    }
    for (name, value) in [
        ("color", &release.color),
        ("instance", &release.instance),
        ("version", &release.version),
        ("base_url", &release.base_url),
    ] {
        let ph = format!("{{{{{name}}}}}");
        if s.contains(&ph) {
            let v = value.as_deref().ok_or_else(|| RenderError {
                placeholder: name.to_string(),
                text: text.to_string(),
            })?;
            // Label values sit inside double quotes in PromQL; escape so a value cannot close
            // the string and inject matchers.
            let v = if name == "base_url" {
                v.to_string()
            } else {
                v.replace('\\', "\\\\").replace('"', "\\\"")
            };
            s = s.replace(&ph, &v);
        }
    }
    Ok(s)
}

/// A placeholder the release did not provide a value for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{{{{{placeholder}}}}}` in `{text}` has no value for this release")]
pub struct RenderError {
    pub placeholder: String,
    pub text: String,
}

impl From<RenderError> for Failure {
    fn from(e: RenderError) -> Failure {
        Failure::bad_input(
            e.to_string(),
            format!(
                "davit fills {{{{{}}}}} from the deploy; use a placeholder the strategy provides, or write the value",
                e.placeholder
            ),
        )
    }
}

/// A URL with any `user:password@` removed, for messages.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            return format!("{scheme}://[REDACTED]@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests;
