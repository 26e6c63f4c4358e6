//! From the raw `[analysis]` table to a checked [`AnalysisSpec`]: one function per part of the
//! table (timing, Prometheus, the template thresholds and names, each custom metric, the metric
//! set as a whole, smoke), each returning the first error with its field and its fix.

use super::check::{
    check_placeholders, check_promql_duration, check_selector, check_url, duration, opt_duration,
};
use super::*;
use crate::expr::{Expr, ExprError};

pub(super) fn resolve(raw: Raw) -> Result<AnalysisSpec, SpecError> {
    let (interval, initial_delay) = timing(&raw)?;
    let inconclusive = inconclusive_policy(raw.inconclusive.as_deref())?;
    let prometheus = raw.prometheus.map(prometheus_settings).transpose()?;
    let selector = raw.selector.unwrap_or_else(|| DEFAULT_SELECTOR.to_string());
    check_selector(&selector)?;
    check_placeholders("selector", &selector, &["color", "instance", "version"])?;
    let window = raw.window.unwrap_or_else(|| "1m".to_string());
    check_promql_duration("window", &window)?;
    let limits = Limits::of(
        raw.error_rate_max,
        raw.p95_latency_max_secs,
        raw.request_rate_min,
    )?;
    let names = TemplateNames::of(raw.requests_metric, raw.latency_histogram, raw.status_label)?;
    let mut metrics = template_metrics(&raw.templates, &names, &limits)?;
    for (i, m) in raw.metrics.into_iter().enumerate() {
        metrics.push(custom_metric(i, m)?);
    }
    check_metric_set(&metrics, prometheus.is_some())?;
    let smoke = raw.smoke.map(smoke_spec).transpose()?;
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

/// The interval (one of `interval`, `interval_secs`), the initial delay, and a count that
/// measures something.
fn timing(raw: &Raw) -> Result<(Duration, Duration), SpecError> {
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
    Ok((interval, initial_delay))
}

fn inconclusive_policy(policy: Option<&str>) -> Result<InconclusivePolicy, SpecError> {
    Ok(match policy {
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
    })
}

fn prometheus_settings(p: RawPrometheus) -> Result<PrometheusSettings, SpecError> {
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
}

/// The thresholds of the built-in templates.
struct Limits {
    error_rate_max: f64,
    p95_max: f64,
    request_rate_min: Option<f64>,
}

impl Limits {
    fn of(
        error_rate_max: Option<f64>,
        p95_latency_max_secs: Option<f64>,
        request_rate_min: Option<f64>,
    ) -> Result<Limits, SpecError> {
        let error_rate_max = error_rate_max.unwrap_or(DEFAULT_ERROR_RATE_MAX);
        if !(error_rate_max.is_finite() && (0.0..=1.0).contains(&error_rate_max)) {
            return Err(SpecError::new(
                "error_rate_max",
                format!("{error_rate_max} is not a share between 0 and 1"),
                "write a ratio, e.g. 0.05 for 5%",
            ));
        }
        let p95_max = p95_latency_max_secs.unwrap_or(DEFAULT_P95_LATENCY_MAX_SECS);
        if !(p95_max.is_finite() && p95_max > 0.0) {
            return Err(SpecError::new(
                "p95_latency_max_secs",
                format!("{p95_max} is not a positive number of seconds"),
                "write seconds, e.g. 2.0 or 0.5",
            ));
        }
        if let Some(min) = request_rate_min
            && !(min.is_finite() && min >= 0.0)
        {
            return Err(SpecError::new(
                "request_rate_min",
                format!("{min} is not a rate"),
                "write requests per second, e.g. 1.0",
            ));
        }
        Ok(Limits {
            error_rate_max,
            p95_max,
            request_rate_min,
        })
    }
}

impl TemplateNames {
    /// The metric and label names the templates query, checked.
    fn of(
        requests_metric: Option<String>,
        latency_histogram: Option<String>,
        status_label: Option<String>,
    ) -> Result<TemplateNames, SpecError> {
        let names = TemplateNames {
            requests: requests_metric.unwrap_or_else(|| "http_requests_total".into()),
            histogram: latency_histogram.unwrap_or_else(|| "http_request_duration_seconds".into()),
            status: status_label.unwrap_or_else(|| "code".into()),
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
        Ok(names)
    }
}

/// The metrics of the built-in templates listed in `templates`.
fn template_metrics(
    templates: &[String],
    names: &TemplateNames,
    limits: &Limits,
) -> Result<Vec<MetricSpec>, SpecError> {
    let mut metrics = Vec::new();
    let mut seen_templates = Vec::new();
    for (i, t) in templates.iter().enumerate() {
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
                error_rate_query(names),
                format!("result <= {}", limits.error_rate_max),
            ),
            Template::P95Latency => (p95_query(names), format!("result <= {}", limits.p95_max)),
            Template::RequestRate => (
                request_rate_query(names),
                match limits.request_rate_min {
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
    Ok(metrics)
}

/// One `[[analysis.metrics]]` entry: its provider (Prometheus or web) and its conditions.
fn custom_metric(i: usize, m: RawMetric) -> Result<MetricSpec, SpecError> {
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
    Ok(MetricSpec {
        name: m.name,
        provider,
        success_condition,
        failure_condition,
        template: None,
    })
}

/// Distinct names, at least one metric, and Prometheus settings when a metric needs them.
fn check_metric_set(metrics: &[MetricSpec], has_prometheus: bool) -> Result<(), SpecError> {
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
    if uses_prometheus && !has_prometheus {
        return Err(SpecError::new(
            "prometheus.url",
            "metrics use Prometheus but no Prometheus URL is set",
            "add [analysis.prometheus] url = \"http://127.0.0.1:9090\" (reachable from the runner)",
        ));
    }
    Ok(())
}

fn smoke_spec(s: RawSmoke) -> Result<SmokeSpec, SpecError> {
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
}

pub(super) struct TemplateNames {
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
