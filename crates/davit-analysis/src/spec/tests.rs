//! The `[analysis]` table's validation: every rule and its message.

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
    let e =
        parse("templates = [\"error-rate\"]\n[prometheus]\nurl = \"ftp://user:hunter2@prom\"\n")
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
