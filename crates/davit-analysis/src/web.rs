//! The web provider: GET a URL and read one number from its JSON.
//!
//! For apps that publish their own health figures (a `/stats.json`, a status API) or a metrics
//! service that is not Prometheus. The same care applies as for Prometheus: a missing field, a
//! `null` or a string that is not a number is inconclusive, and an HTTP error or an unreachable
//! URL is an error, so an endpoint that stopped answering can never pass the analysis.

use crate::prometheus::describe_error;
use crate::provider::{Provider, Reading, Sample};
use crate::spec::redact_url;
use serde_json::Value;
use std::time::Duration;

/// A web metric ready to read.
pub struct WebMetric {
    client: reqwest::Client,
    url: String,
    path: Vec<Segment>,
    json_path: String,
    timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Parse `data.items.0.value` or `data.items[0].value`.
pub fn parse_path(path: &str) -> Result<(), String> {
    segments(path).map(|_| ())
}

fn segments(path: &str) -> Result<Vec<Segment>, String> {
    if path.trim().is_empty() {
        return Err("empty json_path".into());
    }
    let mut out = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            return Err(format!("`{path}` has an empty segment"));
        }
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            match key.parse::<usize>() {
                Ok(i) if rest.is_empty() => out.push(Segment::Index(i)),
                _ => out.push(Segment::Key(key.to_string())),
            }
        }
        while !rest.is_empty() {
            let Some(end) = rest.find(']') else {
                return Err(format!("`{path}` has `[` without `]`"));
            };
            let idx = rest[1..end]
                .parse::<usize>()
                .map_err(|_| format!("`{}` in `{path}` is not an index", &rest[..=end]))?;
            out.push(Segment::Index(idx));
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("`{path}`: expected `.` or `[` after `]`"));
            }
        }
    }
    Ok(out)
}

impl WebMetric {
    /// `url` is already rendered for the release; `json_path` was validated by the spec.
    pub fn new(
        client: reqwest::Client,
        url: String,
        json_path: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(WebMetric {
            client,
            url,
            path: segments(json_path)?,
            json_path: json_path.to_string(),
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl Provider for WebMetric {
    async fn read(&self) -> Reading {
        let resp = match self
            .client
            .get(&self.url)
            .timeout(self.timeout)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Reading::Error(format!(
                    "{} unreachable: {}",
                    redact_url(&self.url),
                    describe_error(&e)
                ));
            }
        };
        let status = resp.status();
        if !status.is_success() {
            return Reading::Error(format!(
                "HTTP {} from {}",
                status.as_u16(),
                redact_url(&self.url)
            ));
        }
        match resp.text().await {
            Ok(body) => extract(&body, &self.path, &self.json_path),
            Err(e) => Reading::Error(format!("response unreadable: {}", describe_error(&e))),
        }
    }

    fn describe(&self) -> String {
        format!("GET {} → {}", redact_url(&self.url), self.json_path)
    }
}

fn extract(body: &str, path: &[Segment], path_text: &str) -> Reading {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return Reading::Error("the response is not JSON".into());
    };
    let mut cur = &json;
    for seg in path {
        let next = match seg {
            Segment::Key(k) => cur.get(k),
            Segment::Index(i) => cur.get(*i),
        };
        match next {
            Some(v) => cur = v,
            None => return Reading::Inconclusive(format!("no `{path_text}` in the response")),
        }
    }
    let value = match cur {
        Value::Number(n) => n.as_f64(),
        // Some APIs send numbers as strings ("0.05", "NaN"), as Prometheus itself does.
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) => Reading::Values(vec![Sample {
            labels: String::new(),
            value: v,
        }]),
        None => Reading::Inconclusive(format!(
            "`{path_text}` is {}, not a number",
            match cur {
                Value::Null => "null".to_string(),
                other => other.to_string().chars().take(60).collect(),
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str, path: &str) -> Reading {
        extract(body, &segments(path).unwrap(), path)
    }

    #[test]
    fn paths() {
        assert_eq!(
            segments("data.items[0].value").unwrap(),
            segments("data.items.0.value").unwrap()
        );
        assert_eq!(
            segments("a[1][2]").unwrap(),
            vec![
                Segment::Key("a".into()),
                Segment::Index(1),
                Segment::Index(2)
            ]
        );
        for bad in ["", "a..b", "a[", "a[x]", "a[1]b", ".a"] {
            assert!(segments(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_strings_and_missing_fields() {
        let body =
            r#"{"data":{"error_rate":0.02,"p95":"1.5","items":[{"v":3}],"none":null,"word":"ok"}}"#;
        let v = |p| match read(body, p) {
            Reading::Values(s) => s[0].value,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(v("data.error_rate"), 0.02);
        assert_eq!(v("data.p95"), 1.5);
        assert_eq!(v("data.items[0].v"), 3.0);
        for p in [
            "data.missing",
            "data.none",
            "data.word",
            "data.items.5.v",
            "data",
        ] {
            assert!(matches!(read(body, p), Reading::Inconclusive(_)), "{p}");
        }
        assert!(matches!(read("<html>", "a"), Reading::Error(_)));
    }
}
