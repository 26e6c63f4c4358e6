//! The Prometheus provider: one instant query per interval through the HTTP API.
//!
//! `GET /api/v1/query?query=...` evaluates the expression at "now" and answers a vector or a
//! scalar. The parsing here is strict about the difference between an answer and a non-answer,
//! because that difference decides whether a release stays live: an empty vector (the selector
//! matched nothing, the new color is not scraped), `NaN` (0/0 over a window without traffic),
//! `±Inf` and samples older than the staleness bound are inconclusive; HTTP errors, timeouts,
//! refused connections and `"status": "error"` are errors. Neither is ever read as success.

use crate::provider::{Provider, Reading, Sample};
use crate::spec::{PrometheusSettings, redact_url};
use davit_core::Secret;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One Prometheus query, ready to read.
pub struct Prometheus {
    client: reqwest::Client,
    base: String,
    query: String,
    timeout: Duration,
    max_staleness: Duration,
    bearer: Option<Secret<String>>,
}

impl Prometheus {
    /// `query` is already rendered for the release (see [`crate::spec::render`]).
    pub fn new(
        client: reqwest::Client,
        settings: &PrometheusSettings,
        query: String,
        bearer: Option<Secret<String>>,
    ) -> Self {
        Prometheus {
            client,
            base: settings.url.clone(),
            query,
            timeout: settings.timeout,
            max_staleness: settings.max_staleness,
            bearer,
        }
    }

    pub fn query(&self) -> &str {
        &self.query
    }
}

#[async_trait::async_trait]
impl Provider for Prometheus {
    async fn read(&self) -> Reading {
        let mut req = self
            .client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", self.query.as_str())])
            .timeout(self.timeout);
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token.expose());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Reading::Error(format!(
                    "Prometheus at {} unreachable: {}",
                    redact_url(&self.base),
                    describe_error(&e)
                ));
            }
        };
        let status = resp.status().as_u16();
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) => {
                return Reading::Error(format!(
                    "Prometheus response unreadable: {}",
                    describe_error(&e)
                ));
            }
        };
        parse_response(status, &body, now_secs(), self.max_staleness)
    }

    fn describe(&self) -> String {
        self.query.clone()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// reqwest's Display hides the cause ("error sending request"); the cause is what users need.
/// The URL is stripped first: it may carry credentials.
pub(crate) fn describe_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut parts = Vec::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        src = s.source();
    }
    if parts.is_empty() {
        parts.push(format!("{}", DisplayWithoutUrl(e)));
    }
    parts.join(": ")
}

struct DisplayWithoutUrl<'a>(&'a reqwest::Error);

impl std::fmt::Display for DisplayWithoutUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        if e.is_connect() {
            f.write_str("connection failed")
        } else if e.is_decode() {
            f.write_str("bad response body")
        } else if let Some(s) = e.status() {
            write!(f, "HTTP {s}")
        } else {
            f.write_str("request failed")
        }
    }
}

/// Turn an HTTP answer of `/api/v1/query` into a [`Reading`].
///
/// `now` is Unix seconds; a sample stamped more than `max_staleness` before it is stale.
/// Several series are all returned (the judge takes the worst, see [`crate::provider::judge`]).
pub fn parse_response(status: u16, body: &str, now: f64, max_staleness: Duration) -> Reading {
    let json: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            return Reading::Error(format!(
                "HTTP {status}, not a Prometheus API response (is the URL the Prometheus server?): {}",
                snippet(body)
            ));
        }
    };
    if json.get("status").and_then(Value::as_str) != Some("success") {
        let kind = json
            .get("errorType")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let msg = json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Reading::Error(format!(
            "Prometheus query failed (HTTP {status}, {kind}): {}",
            snippet(msg)
        ));
    }
    if !(200..300).contains(&status) {
        return Reading::Error(format!("HTTP {status} from Prometheus"));
    }
    let Some(data) = json.get("data") else {
        return Reading::Error("Prometheus response has no `data`".into());
    };
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data.get("result").unwrap_or(&Value::Null);
    let samples: Vec<(String, &Value)> = match kind {
        "vector" => match result.as_array() {
            Some(series) => series
                .iter()
                .map(|s| {
                    (
                        labels(s.get("metric")),
                        s.get("value").unwrap_or(&Value::Null),
                    )
                })
                .collect(),
            None => return Reading::Error("vector result is not a list".into()),
        },
        "scalar" => vec![(String::new(), result)],
        "matrix" => {
            return Reading::Error(
                "the query returns a range vector; analysis needs one number per series: wrap it, e.g. rate(x[1m]) or max_over_time(x[1m])".into(),
            );
        }
        other => {
            return Reading::Error(format!(
                "result type `{other}` is not a number; the query must return a vector or a scalar"
            ));
        }
    };
    if samples.is_empty() {
        // The selector matched no series: the release is not scraped, has not served yet, or
        // the metric name is wrong. No data is never good news.
        return Reading::Inconclusive(
            "no data: the query returned no series (is the new release scraped? does the selector match?)"
                .into(),
        );
    }
    let mut out = Vec::new();
    for (labels, pair) in samples {
        let (Some(ts), Some(v)) = (
            pair.get(0).and_then(Value::as_f64),
            pair.get(1).and_then(Value::as_str),
        ) else {
            return Reading::Error(format!("malformed sample `{}`", snippet(&pair.to_string())));
        };
        let age = now - ts;
        if age > max_staleness.as_secs_f64() {
            return Reading::Inconclusive(format!(
                "stale: the sample{} is {age:.0}s old (bound {}s)",
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(" {labels}")
                },
                max_staleness.as_secs()
            ));
        }
        let value = match v {
            "NaN" => f64::NAN,
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => match other.parse::<f64>() {
                Ok(x) => x,
                Err(_) => return Reading::Error(format!("`{}` is not a number", snippet(other))),
            },
        };
        out.push(Sample { labels, value });
    }
    Reading::Values(out)
}

fn labels(metric: Option<&Value>) -> String {
    let Some(Value::Object(m)) = metric else {
        return String::new();
    };
    if m.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or(v.to_string(), |s| format!("{s:?}"))
            )
        })
        .collect();
    pairs.sort();
    format!("{{{}}}", pairs.join(","))
}

/// Error bodies can be long (HTML error pages); a summary row needs the start.
fn snippet(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}…", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_100.0;
    const STALE: Duration = Duration::from_secs(300);

    fn parse(status: u16, body: &str) -> Reading {
        parse_response(status, body, NOW, STALE)
    }

    fn values(r: Reading) -> Vec<f64> {
        match r {
            Reading::Values(v) => v.into_iter().map(|s| s.value).collect(),
            other => panic!("expected values, got {other:?}"),
        }
    }

    #[test]
    fn vector_one_series() {
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000099.5,"0.2"]}]}}"#,
        );
        assert_eq!(values(r), vec![0.2]);
    }

    #[test]
    fn vector_several_series_keep_their_labels() {
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[
              {"metric":{"color":"green","__name__":"up"},"value":[1700000099,"1"]},
              {"metric":{"color":"blue"},"value":[1700000099,"0"]}]}}"#,
        );
        let Reading::Values(v) = r else { panic!() };
        assert_eq!(v[0].labels, r#"{__name__="up",color="green"}"#);
        assert_eq!(v[1].value, 0.0);
    }

    #[test]
    fn scalar() {
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000100,"2.5"]}}"#,
        );
        assert_eq!(values(r), vec![2.5]);
    }

    #[test]
    fn empty_vector_is_inconclusive() {
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        );
        assert!(
            matches!(r, Reading::Inconclusive(ref m) if m.starts_with("no data")),
            "{r:?}"
        );
    }

    #[test]
    fn nan_and_infinities_are_passed_on_as_non_finite() {
        // The judge turns them into inconclusive measurements (see provider::judge_value);
        // the value is kept so the summary shows `NaN` rather than a blank.
        for (text, check) in [
            ("NaN", f64::is_nan as fn(f64) -> bool),
            ("+Inf", |v: f64| v == f64::INFINITY),
            ("-Inf", |v: f64| v == f64::NEG_INFINITY),
        ] {
            let r = parse(
                200,
                &format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000100,"{text}"]}}]}}}}"#
                ),
            );
            assert!(check(values(r)[0]), "{text}");
        }
    }

    #[test]
    fn stale_sample_is_inconclusive() {
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"app"},"value":[1699999000,"0.01"]}]}}"#,
        );
        assert!(
            matches!(r, Reading::Inconclusive(ref m) if m.contains("stale") && m.contains("1100s")),
            "{r:?}"
        );
    }

    #[test]
    fn error_status_and_http_errors_are_errors() {
        let r = parse(
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#,
        );
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("bad_data") && m.contains("parse error")),
            "{r:?}"
        );
        let r = parse(502, "<html><body>502 Bad Gateway</body></html>");
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("HTTP 502") && m.contains("not a Prometheus")),
            "{r:?}"
        );
        let r = parse(
            500,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000100,"1"]}}"#,
        );
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("HTTP 500")),
            "{r:?}"
        );
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        );
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("range vector")),
            "{r:?}"
        );
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
        );
        assert!(matches!(r, Reading::Error(_)), "{r:?}");
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000100,"zero"]}]}}"#,
        );
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("not a number")),
            "{r:?}"
        );
        let r = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
        );
        assert!(
            matches!(r, Reading::Error(ref m) if m.contains("malformed")),
            "{r:?}"
        );
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let body = "x".repeat(10_000);
        let Reading::Error(m) = parse(503, &body) else {
            panic!()
        };
        assert!(m.len() < 400, "{}", m.len());
    }
}
