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

use crate::expr::{Expr, ExprError};
use davit_core::Failure;
use serde::Deserialize;
use std::time::Duration;

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

fn resolve(raw: Raw) -> Result<AnalysisSpec, SpecError> {
    let interval = match (&raw.interval, &raw.interval_secs) {
        (Some(_), Some(_)) => {
            return Err(SpecError::new(
                "interval_secs",
                "both interval and interval_secs are set",
                "keep one of them, e.g. interval = \"10s\"",
            ));
        }
        (Some(v), None) => duration("interval", v)?,
        (None, Some(v)) => duration("interval_secs", v)?,
        (None, None) => Duration::from_secs(10),
    };
    if interval < Duration::from_millis(100) {
        return Err(SpecError::new(
            "interval",
            format!("{interval:?} is too short"),
            "use at least 100ms; with Prometheus, the scrape interval or more (e.g. \"10s\")",
        ));
    }
    let initial_delay = match &raw.initial_delay {
        Some(v) => duration("initial_delay", v)?,
        None => Duration::ZERO,
    };
    if raw.count == Some(0) {
        return Err(SpecError::new(
            "count",
            "0 measurements would judge nothing",
            "set count to 1 or more, or remove it to measure until the watch window ends",
        ));
    }
    let inconclusive = match raw.inconclusive.as_deref() {
        None => InconclusivePolicy::default(),
        Some("rollback") => InconclusivePolicy::Rollback,
        Some("hold") => InconclusivePolicy::Hold,
        Some("fail") => InconclusivePolicy::Fail,
        Some(other) => {
            return Err(SpecError::new(
                "inconclusive",
                format!("unknown policy `{other}`"),
                "use \"rollback\" (default), \"hold\" or \"fail\"",
            ));
        }
    };
    let prometheus = raw
        .prometheus
        .map(|p| -> Result<_, SpecError> {
            check_url("prometheus.url", &p.url)?;
            if let Some(env) = &p.bearer_token_env
                && (env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(SpecError::new(
                    "prometheus.bearer_token_env",
                    format!("`{env}` is not an environment variable name"),
                    "name the variable that holds the token, e.g. PROMETHEUS_TOKEN; never the token itself",
                ));
            }
            Ok(PrometheusSettings {
                url: p.url.trim_end_matches('/').to_string(),
                timeout: opt_duration("prometheus.timeout", &p.timeout, Duration::from_secs(5))?,
                max_staleness: opt_duration(
                    "prometheus.max_staleness",
                    &p.max_staleness,
                    Duration::from_secs(300),
                )?,
                bearer_token_env: p.bearer_token_env,
            })
        })
        .transpose()?;

    let selector = raw.selector.unwrap_or_else(|| DEFAULT_SELECTOR.to_string());
    check_selector(&selector)?;
    check_placeholders("selector", &selector, &["color", "instance", "version"])?;
    let window = raw.window.unwrap_or_else(|| "1m".to_string());
    check_promql_duration("window", &window)?;

    let error_rate_max = raw.error_rate_max.unwrap_or(DEFAULT_ERROR_RATE_MAX);
    if !(error_rate_max.is_finite() && (0.0..=1.0).contains(&error_rate_max)) {
        return Err(SpecError::new(
            "error_rate_max",
            format!("{error_rate_max} is not a share between 0 and 1"),
            "write a ratio, e.g. 0.05 for 5%",
        ));
    }
    let p95_max = raw
        .p95_latency_max_secs
        .unwrap_or(DEFAULT_P95_LATENCY_MAX_SECS);
    if !(p95_max.is_finite() && p95_max > 0.0) {
        return Err(SpecError::new(
            "p95_latency_max_secs",
            format!("{p95_max} is not a positive number of seconds"),
            "write seconds, e.g. 2.0 or 0.5",
        ));
    }
    if let Some(min) = raw.request_rate_min
        && !(min.is_finite() && min >= 0.0)
    {
        return Err(SpecError::new(
            "request_rate_min",
            format!("{min} is not a rate"),
            "write requests per second, e.g. 1.0",
        ));
    }
    let names = TemplateNames {
        requests: raw
            .requests_metric
            .unwrap_or_else(|| "http_requests_total".into()),
        histogram: raw
            .latency_histogram
            .unwrap_or_else(|| "http_request_duration_seconds".into()),
        status: raw.status_label.unwrap_or_else(|| "code".into()),
    };
    for (field, v) in [
        ("requests_metric", &names.requests),
        ("latency_histogram", &names.histogram),
        ("status_label", &names.status),
    ] {
        if v.is_empty()
            || v.starts_with(|c: char| c.is_ascii_digit())
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(SpecError::new(
                field,
                format!("`{v}` is not a Prometheus metric or label name"),
                "use letters, digits, `_` and `:` only, e.g. http_requests_total",
            ));
        }
    }

    let mut metrics = Vec::new();
    let mut seen_templates = Vec::new();
    for (i, t) in raw.templates.iter().enumerate() {
        let field = format!("templates[{i}]");
        let template = Template::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .ok_or_else(|| {
                SpecError::new(
                    &field,
                    format!("unknown template `{t}`"),
                    "use \"error-rate\", \"p95-latency\" or \"request-rate\"",
                )
            })?;
        if seen_templates.contains(&template) {
            return Err(SpecError::new(
                field,
                format!("template `{t}` is listed twice"),
                "list each template once",
            ));
        }
        seen_templates.push(template);
        let (query, success) = match template {
            Template::ErrorRate => (
                error_rate_query(&names),
                format!("result <= {error_rate_max}"),
            ),
            Template::P95Latency => (p95_query(&names), format!("result <= {p95_max}")),
            Template::RequestRate => (
                request_rate_query(&names),
                match raw.request_rate_min {
                    Some(min) => format!("result >= {min}"),
                    // Without a minimum, the sanity check is that the release gets traffic at
                    // all: an error rate of 0 over no requests proves nothing.
                    None => "result > 0".to_string(),
                },
            ),
        };
        metrics.push(MetricSpec {
            name: template.name().to_string(),
            provider: ProviderSpec::Prometheus { query },
            success_condition: Some(Condition {
                expr: Expr::parse(&success).expect("template conditions parse"),
                text: success,
            }),
            failure_condition: None,
            template: Some(template),
        });
    }

    for (i, m) in raw.metrics.into_iter().enumerate() {
        let f = |name: &str| format!("metrics[{i}].{name}");
        if m.name.trim().is_empty() {
            return Err(SpecError::new(
                f("name"),
                "empty name",
                "name the metric; it labels the summary rows",
            ));
        }
        let kind = match (m.provider.as_deref(), &m.query, &m.url) {
            (Some("prometheus"), _, _) | (None, Some(_), None) => "prometheus",
            (Some("web"), _, _) | (None, None, Some(_)) => "web",
            (Some(other), _, _) => {
                return Err(SpecError::new(
                    f("provider"),
                    format!("unknown provider `{other}`"),
                    "use \"prometheus\" (with query) or \"web\" (with url and json_path)",
                ));
            }
            (None, _, _) => {
                return Err(SpecError::new(
                    f("provider"),
                    "cannot tell how to read this metric",
                    "set provider = \"prometheus\" with query = \"...\", or provider = \"web\" with url and json_path",
                ));
            }
        };
        let provider = if kind == "prometheus" {
            if m.url.is_some() || m.json_path.is_some() {
                return Err(SpecError::new(
                    f("url"),
                    "url and json_path belong to the web provider",
                    "remove them, or set provider = \"web\"",
                ));
            }
            let Some(query) = m.query.filter(|q| !q.trim().is_empty()) else {
                return Err(SpecError::new(
                    f("query"),
                    "the prometheus provider needs a query",
                    "set query = \"...\" (an instant-vector or scalar PromQL expression)",
                ));
            };
            check_placeholders(&f("query"), &query, &PLACEHOLDERS)?;
            ProviderSpec::Prometheus { query }
        } else {
            if m.query.is_some() {
                return Err(SpecError::new(
                    f("query"),
                    "query belongs to the prometheus provider",
                    "remove it, or set provider = \"prometheus\"",
                ));
            }
            let url = m.url.ok_or_else(|| {
                SpecError::new(
                    f("url"),
                    "the web provider needs a url",
                    "set url = \"https://.../metrics.json\"",
                )
            })?;
            check_placeholders(
                &f("url"),
                &url,
                &["color", "instance", "version", "base_url"],
            )?;
            if !url.starts_with("{{") {
                check_url(&f("url"), &url)?;
            }
            let json_path = m.json_path.ok_or_else(|| {
                SpecError::new(
                    f("json_path"),
                    "the web provider needs json_path",
                    "name the number in the response, e.g. json_path = \"data.error_rate\"",
                )
            })?;
            crate::web::parse_path(&json_path).map_err(|e| {
                SpecError::new(
                    f("json_path"),
                    e,
                    "write a dotted path such as data.items.0.value",
                )
            })?;
            ProviderSpec::Web { url, json_path }
        };
        let cond = |name: &str, text: Option<String>| -> Result<Option<Condition>, SpecError> {
            text.map(|t| {
                Expr::parse(&t)
                    .map(|expr| Condition { text: t.clone(), expr })
                    .map_err(|e: ExprError| {
                        SpecError::new(
                            f(name),
                            e.to_string(),
                            "write a comparison over `result`, e.g. \"result < 0.05\" or \"result >= 0 && result <= 2\"",
                        )
                    })
            })
            .transpose()
        };
        let success_condition = cond("success_condition", m.success_condition)?;
        let failure_condition = cond("failure_condition", m.failure_condition)?;
        if success_condition.is_none() && failure_condition.is_none() {
            // Argo treats a metric without conditions as always successful. For a gate that
            // decides about production traffic that is a trap, so it is an error here.
            return Err(SpecError::new(
                f("success_condition"),
                "the metric has neither success_condition nor failure_condition",
                "add one, e.g. success_condition = \"result < 0.05\"",
            ));
        }
        metrics.push(MetricSpec {
            name: m.name,
            provider,
            success_condition,
            failure_condition,
            template: None,
        });
    }
    for (i, m) in metrics.iter().enumerate() {
        if metrics[..i].iter().any(|o| o.name == m.name) {
            return Err(SpecError::new(
                "metrics",
                format!("two metrics are named `{}`", m.name),
                "give each metric (and template) a distinct name",
            ));
        }
    }
    if metrics.is_empty() {
        return Err(SpecError::new(
            "templates",
            "[analysis] is present but defines no metrics",
            "add templates = [\"error-rate\", \"p95-latency\"] or [[analysis.metrics]] entries",
        ));
    }
    let uses_prometheus = metrics
        .iter()
        .any(|m| matches!(m.provider, ProviderSpec::Prometheus { .. }));
    if uses_prometheus && prometheus.is_none() {
        return Err(SpecError::new(
            "prometheus.url",
            "metrics use Prometheus but no Prometheus URL is set",
            "add [analysis.prometheus] url = \"http://127.0.0.1:9090\" (reachable from the runner)",
        ));
    }

    let smoke = raw
        .smoke
        .map(|s| -> Result<_, SpecError> {
            if s.command.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(SpecError::new(
                    "smoke.command",
                    "empty command",
                    "give argv as a list, e.g. command = [\"./scripts/smoke.sh\"]; BASE_URL is set for it",
                ));
            }
            Ok(SmokeSpec {
                command: s.command,
                timeout: opt_duration("smoke.timeout", &s.timeout, Duration::from_secs(120))?,
            })
        })
        .transpose()?;
    let notify = raw.notify.map_or(
        NotifySpec {
            on_success: true,
            on_rollback: true,
        },
        |n| NotifySpec {
            on_success: n.on_success,
            on_rollback: n.on_rollback,
        },
    );

    Ok(AnalysisSpec {
        interval,
        initial_delay,
        count: raw.count,
        failure_limit: raw.failure_limit,
        consecutive_error_limit: raw.consecutive_error_limit,
        inconclusive_limit: raw.inconclusive_limit,
        inconclusive,
        prometheus,
        selector,
        window,
        metrics,
        smoke,
        notify,
    })
}

struct TemplateNames {
    requests: String,
    histogram: String,
    status: String,
}

// The templates keep `{{selector}}` and `{{window}}` placeholders until the release is known, so
// the summary can show the query with the real selector.
fn error_rate_query(n: &TemplateNames) -> String {
    format!(
        "sum(rate({r}{{{s}=~\"5..\",{{{{selector}}}}}}[{{{{window}}}}])) / sum(rate({r}{{{{{{selector}}}}}}[{{{{window}}}}]))",
        r = n.requests,
        s = n.status
    )
}

fn p95_query(n: &TemplateNames) -> String {
    format!(
        "histogram_quantile(0.95, sum by (le) (rate({h}_bucket{{{{{{selector}}}}}}[{{{{window}}}}])))",
        h = n.histogram
    )
}

fn request_rate_query(n: &TemplateNames) -> String {
    format!(
        "sum(rate({r}{{{{{{selector}}}}}}[{{{{window}}}}]))",
        r = n.requests
    )
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

fn check_placeholders(field: &str, text: &str, allowed: &[&str]) -> Result<(), SpecError> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(SpecError::new(
                field,
                "`{{` without a closing `}}`",
                "placeholders look like {{color}}",
            ));
        };
        let name = after[..end].trim();
        if !allowed.contains(&name) {
            return Err(SpecError::new(
                field,
                format!("unknown placeholder `{{{{{name}}}}}`"),
                format!(
                    "use one of {}",
                    allowed
                        .iter()
                        .map(|a| format!("{{{{{a}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// The selector is spliced inside `{...}` of every template query, so it must not carry its
/// own braces; quotes must balance so it cannot swallow the rest of the query.
fn check_selector(sel: &str) -> Result<(), SpecError> {
    let stripped = sel.replace("{{", "").replace("}}", "");
    let bad = |m: &str| {
        Err(SpecError::new(
            "selector",
            format!("`{sel}` {m}"),
            "write label matchers without braces, e.g. selector = 'color=\"{{color}}\",job=\"app\"'",
        ))
    };
    if stripped.contains(['{', '}']) {
        return bad("contains braces");
    }
    let (mut quotes, mut escaped) = (0, false);
    for c in stripped.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quotes += 1,
            _ => {}
        }
    }
    if quotes % 2 == 1 {
        return bad("has an unbalanced quote");
    }
    if stripped.contains(['[', ']', '(', ')', '\n']) {
        return bad("is not a list of label matchers");
    }
    Ok(())
}

fn check_promql_duration(field: &str, v: &str) -> Result<(), SpecError> {
    let ok = !v.is_empty()
        && v.chars().all(|c| c.is_ascii_alphanumeric())
        && v.starts_with(|c: char| c.is_ascii_digit())
        && parse_duration(v).is_some();
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("`{v}` is not a Prometheus duration"),
            "write e.g. \"1m\" or \"30s\"; at least four scrape intervals",
        ))
    }
}

fn check_url(field: &str, url: &str) -> Result<(), SpecError> {
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(char::is_whitespace)
    {
        return Err(SpecError::new(
            field,
            format!("`{}` is not an http(s) URL", redact_url(url)),
            "write the full URL, e.g. http://127.0.0.1:9090",
        ));
    }
    Ok(())
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

fn opt_duration(
    field: &str,
    v: &Option<toml::Value>,
    default: Duration,
) -> Result<Duration, SpecError> {
    v.as_ref().map_or(Ok(default), |v| duration(field, v))
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1h"`, or a number of seconds.
fn duration(field: &str, v: &toml::Value) -> Result<Duration, SpecError> {
    let err = || {
        SpecError::new(
            field,
            format!("`{v}` is not a duration"),
            "write e.g. \"10s\", \"500ms\", \"2m\", or a number of seconds",
        )
    };
    let d = match v {
        toml::Value::Integer(i) if *i >= 0 => Duration::from_secs(*i as u64),
        toml::Value::Float(f) if f.is_finite() && *f >= 0.0 && *f < 1e9 => {
            Duration::from_secs_f64(*f)
        }
        toml::Value::String(s) => parse_duration(s).ok_or_else(err)?,
        _ => return Err(err()),
    };
    Ok(d)
}

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h`, and compound `1m30s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * factor;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<AnalysisSpec, SpecError> {
        let t: toml::Table = toml::from_str(src).unwrap();
        AnalysisSpec::from_table(&t)
    }

    const PROM: &str = "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n";

    #[test]
    fn defaults_for_templates_only() {
        let s = parse(&format!(
            "templates = [\"error-rate\", \"p95-latency\"]\n{PROM}"
        ))
        .unwrap();
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.count, None);
        assert_eq!(s.failure_limit, 0);
        assert_eq!(s.consecutive_error_limit, 4);
        assert_eq!(s.inconclusive_limit, 0);
        assert_eq!(s.inconclusive, InconclusivePolicy::Rollback);
        assert_eq!(s.selector, DEFAULT_SELECTOR);
        assert_eq!(s.window, "1m");
        assert_eq!(s.metrics.len(), 2);
        assert_eq!(s.metrics[0].threshold(), "pass if result <= 0.05");
        assert_eq!(s.metrics[1].threshold(), "pass if result <= 2");
        let p = s.prometheus.unwrap();
        assert_eq!(p.timeout, Duration::from_secs(5));
        assert_eq!(p.max_staleness, Duration::from_secs(300));
        assert!(s.notify.on_success && s.notify.on_rollback);
    }

    #[test]
    fn template_queries_render_for_a_release() {
        let s = parse(&format!(
            "templates = [\"error-rate\", \"p95-latency\", \"request-rate\"]\nwindow = \"30s\"\nselector = 'color=\"{{{{color}}}}\",path!=\"/metrics\"'\n{PROM}"
        ))
        .unwrap();
        let rel = Release {
            color: Some("green".into()),
            ..Release::default()
        };
        let q = |i: usize| match &s.metrics[i].provider {
            ProviderSpec::Prometheus { query } => render(query, &s, &rel).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(
            q(0),
            r#"sum(rate(http_requests_total{code=~"5..",color="green",path!="/metrics"}[30s])) / sum(rate(http_requests_total{color="green",path!="/metrics"}[30s]))"#
        );
        assert_eq!(
            q(1),
            r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{color="green",path!="/metrics"}[30s])))"#
        );
        assert_eq!(
            q(2),
            r#"sum(rate(http_requests_total{color="green",path!="/metrics"}[30s]))"#
        );
        assert_eq!(s.metrics[2].threshold(), "pass if result > 0");
    }

    #[test]
    fn instance_selector_empty_selector_custom_names_and_thresholds() {
        let s = parse(&format!(
            "templates = [\"error-rate\", \"request-rate\"]\nselector = 'instance=\"{{{{instance}}}}\"'\nerror_rate_max = 0.01\nrequest_rate_min = 5\nrequests_metric = \"http_server_requests_total\"\nstatus_label = \"status\"\n{PROM}"
        ))
        .unwrap();
        let rel = Release {
            instance: Some("127.0.0.1:18082".into()),
            ..Release::default()
        };
        let ProviderSpec::Prometheus { query } = &s.metrics[0].provider else {
            unreachable!()
        };
        assert_eq!(
            render(query, &s, &rel).unwrap(),
            r#"sum(rate(http_server_requests_total{status=~"5..",instance="127.0.0.1:18082"}[1m])) / sum(rate(http_server_requests_total{instance="127.0.0.1:18082"}[1m]))"#
        );
        assert_eq!(s.metrics[0].threshold(), "pass if result <= 0.01");
        assert_eq!(s.metrics[1].threshold(), "pass if result >= 5");

        let empty = parse(&format!(
            "templates = [\"error-rate\"]\nselector = \"\"\n{PROM}"
        ))
        .unwrap();
        let ProviderSpec::Prometheus { query } = &empty.metrics[0].provider else {
            unreachable!()
        };
        assert_eq!(
            render(query, &empty, &Release::default()).unwrap(),
            r#"sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total{}[1m]))"#
        );
    }

    #[test]
    fn render_refuses_missing_values_and_escapes_quotes() {
        let s = parse(&format!("templates = [\"request-rate\"]\n{PROM}")).unwrap();
        let ProviderSpec::Prometheus { query } = &s.metrics[0].provider else {
            unreachable!()
        };
        let e = render(query, &s, &Release::default()).unwrap_err();
        assert_eq!(e.placeholder, "color");
        let evil = Release {
            color: Some(r#"blue"} or vector(1) #"#.into()),
            ..Release::default()
        };
        let q = render(query, &s, &evil).unwrap();
        assert!(q.contains(r#"color="blue\"} or vector(1) #""#), "{q}");
    }

    #[test]
    fn custom_metrics_both_providers() {
        let s = parse(&format!(
            r#"
interval = "2s"
initial_delay = 5
count = 6
failure_limit = 1
consecutive_error_limit = 2
inconclusive = "hold"
{PROM}
[[metrics]]
name = "queue-depth"
query = "max(queue_depth{{color=\"{{{{color}}}}\"}})"
success_condition = "result < 100"

[[metrics]]
name = "upstream"
provider = "web"
url = "{{{{base_url}}}}/stats.json"
json_path = "data.errors.0.ratio"
failure_condition = "result >= 0.1 || result < 0"
"#
        ))
        .unwrap();
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.initial_delay, Duration::from_secs(5));
        assert_eq!(s.count, Some(6));
        assert_eq!(s.inconclusive, InconclusivePolicy::Hold);
        assert_eq!(s.min_window(), Some(Duration::from_secs(16)));
        assert!(matches!(s.metrics[1].provider, ProviderSpec::Web { .. }));
        assert_eq!(
            s.metrics[1].threshold(),
            "fail if result >= 0.1 || result < 0"
        );
    }

    #[test]
    fn validation_errors_name_the_field_and_the_fix() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "templates = [\"error-rate\"]\nintervall = \"5s\"\n",
                "intervall",
                "unknown field `intervall`",
            ),
            (
                "templates = [\"error-rate\"]\n",
                "prometheus.url",
                "no Prometheus URL",
            ),
            (
                "templates = [\"errors\"]\n",
                "templates[0]",
                "unknown template `errors`",
            ),
            (
                "templates = [\"error-rate\", \"error-rate\"]\n",
                "templates[1]",
                "twice",
            ),
            ("templates = []\n", "templates", "defines no metrics"),
            (
                "templates = [\"error-rate\"]\ninterval = \"10 sec\"\n",
                "interval",
                "not a duration",
            ),
            (
                "templates = [\"error-rate\"]\ninterval = \"10ms\"\n",
                "interval",
                "too short",
            ),
            (
                "templates = [\"error-rate\"]\ninterval = \"5s\"\ninterval_secs = 5\n",
                "interval_secs",
                "both",
            ),
            (
                "templates = [\"error-rate\"]\ncount = 0\n",
                "count",
                "0 measurements",
            ),
            (
                "templates = [\"error-rate\"]\ncount = \"3\"\n",
                "count",
                "invalid type",
            ),
            (
                "templates = [\"error-rate\"]\ninconclusive = \"promote\"\n",
                "inconclusive",
                "unknown policy",
            ),
            (
                "templates = [\"error-rate\"]\nerror_rate_max = 5.0\n",
                "error_rate_max",
                "between 0 and 1",
            ),
            (
                "templates = [\"error-rate\"]\np95_latency_max_secs = -1.0\n",
                "p95_latency_max_secs",
                "positive",
            ),
            (
                "templates = [\"error-rate\"]\nselector = '{color=\"blue\"}'\n",
                "selector",
                "braces",
            ),
            (
                "templates = [\"error-rate\"]\nselector = 'color=\"{{colour}}\"'\n",
                "selector",
                "unknown placeholder `{{colour}}`",
            ),
            (
                "templates = [\"error-rate\"]\nwindow = \"1 minute\"\n",
                "window",
                "not a Prometheus duration",
            ),
            (
                "templates = [\"error-rate\"]\nrequests_metric = \"http requests\"\n",
                "requests_metric",
                "not a Prometheus metric",
            ),
            (
                "[[metrics]]\nname = \"x\"\nquery = \"up\"\n",
                "metrics[0].success_condition",
                "neither",
            ),
            (
                "[[metrics]]\nname = \"x\"\nquery = \"up\"\nsuccess_condition = \"result =< 1\"\n",
                "metrics[0].success_condition",
                "use `==`",
            ),
            (
                "[[metrics]]\nname = \"x\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].provider",
                "cannot tell",
            ),
            (
                "[[metrics]]\nname = \"x\"\nprovider = \"datadog\"\nquery = \"q\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].provider",
                "unknown provider",
            ),
            (
                "[[metrics]]\nname = \"x\"\nprovider = \"web\"\nurl = \"http://x\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].json_path",
                "needs json_path",
            ),
            (
                "[[metrics]]\nname = \"x\"\nprovider = \"web\"\nurl = \"ftp://x\"\njson_path = \"a\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].url",
                "not an http(s) URL",
            ),
            (
                "[[metrics]]\nname = \"x\"\nprovider = \"web\"\nurl = \"http://x\"\njson_path = \"a..b\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].json_path",
                "empty",
            ),
            (
                "[[metrics]]\nname = \"x\"\nquery = \"up\"\nurl = \"http://x\"\nprovider = \"prometheus\"\nsuccess_condition = \"result < 1\"\n",
                "metrics[0].url",
                "web provider",
            ),
            (
                "[[metrics]]\nname = \"error-rate\"\nquery = \"up\"\nsuccess_condition = \"result < 1\"\n[[metrics]]\nname = \"error-rate\"\nquery = \"up\"\nsuccess_condition = \"result < 1\"\n",
                "metrics",
                "two metrics",
            ),
            (
                "[[metrics]]\nname = \"x\"\nquery = \"up\"\nsuccess_condition = \"result < 1\"\nthreshold = 1\n",
                "metrics[0].threshold",
                "unknown field `threshold`",
            ),
            (
                "templates = [\"error-rate\"]\n[smoke]\ncommand = []\n",
                "smoke.command",
                "empty command",
            ),
            (
                "templates = [\"error-rate\"]\n[prometheus]\nurl = \"localhost:9090\"\n",
                "prometheus.url",
                "not an http(s) URL",
            ),
            (
                "templates = [\"error-rate\"]\n[prometheus]\nurl = \"http://x\"\nbearer_token_env = \"abc def\"\n",
                "prometheus.bearer_token_env",
                "not an environment variable",
            ),
        ];
        for (src, field, msg) in cases {
            // Most cases need a Prometheus URL to get as far as the error they test.
            let src = if src.contains("[prometheus]") || *field == "prometheus.url" {
                src.to_string()
            } else {
                format!("{src}{PROM}")
            };
            let e = parse(&src).expect_err(&src);
            assert_eq!(&e.field, field, "{src}: {e}");
            assert!(e.message.contains(msg), "{src}: got `{e}`, want `{msg}`");
            assert!(!e.hint.is_empty(), "{src}: no hint");
            let f: Failure = e.into();
            assert_eq!(f.exit, davit_core::Exit::BadInput);
        }
    }

    #[test]
    fn a_url_with_credentials_is_never_echoed() {
        let e = parse(
            "templates = [\"error-rate\"]\n[prometheus]\nurl = \"ftp://user:hunter2@prom\"\n",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            redact_url("https://u:p@h:1/x@y"),
            "https://[REDACTED]@h:1/x@y"
        );
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn overrides_from_action_inputs_win_and_are_validated() {
        let t: toml::Table =
            toml::from_str("templates = [\"error-rate\"]\nerror_rate_max = 0.1\n").unwrap();
        let o = Overrides {
            prometheus_url: Some("http://prom:9090/".into()),
            error_rate_max: Some(0.02),
            templates: Some(vec!["error-rate".into(), "p95-latency".into()]),
            interval: Some("3s".into()),
            ..Overrides::default()
        };
        let s = AnalysisSpec::from_sources(Some(&t), &o).unwrap();
        assert_eq!(s.prometheus.unwrap().url, "http://prom:9090");
        assert_eq!(s.metrics[0].threshold(), "pass if result <= 0.02");
        assert_eq!(s.metrics.len(), 2);
        assert_eq!(s.interval, Duration::from_secs(3));
        let bad = Overrides {
            inconclusive: Some("ignore".into()),
            ..o
        };
        assert_eq!(
            AnalysisSpec::from_sources(Some(&t), &bad)
                .unwrap_err()
                .field,
            "inconclusive"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "10", "s", "10 s", "-1s", "1d", "1e9h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
