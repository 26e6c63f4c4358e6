//! The checks every part of the `[analysis]` table shares: placeholders, selectors, PromQL
//! durations, URLs, and durations written as text or numbers. Each error names the field and
//! the fix.

use super::{SpecError, redact_url};
use std::time::Duration;

pub(super) fn check_placeholders(
    field: &str,
    text: &str,
    allowed: &[&str],
) -> Result<(), SpecError> {
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
pub(super) fn check_selector(sel: &str) -> Result<(), SpecError> {
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

pub(super) fn check_promql_duration(field: &str, v: &str) -> Result<(), SpecError> {
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

pub(super) fn check_url(field: &str, url: &str) -> Result<(), SpecError> {
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

pub(super) fn opt_duration(
    field: &str,
    v: &Option<toml::Value>,
    default: Duration,
) -> Result<Duration, SpecError> {
    v.as_ref().map_or(Ok(default), |v| duration(field, v))
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1h"`, or a number of seconds.
pub(super) fn duration(field: &str, v: &toml::Value) -> Result<Duration, SpecError> {
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
