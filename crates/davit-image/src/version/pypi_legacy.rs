//! PyPI versions that are not PEP 440 (`2004d`, `1.0-foo`, `0.3.2.dev-r1234`), ordered the way
//! `packaging` ordered them before it dropped `LegacyVersion`: always before every PEP 440
//! version, and among themselves by a key of zero-padded numbers and `*`-prefixed words, with
//! `pre`/`preview`/`rc` meaning `c`, `dev` sorting first and `-` meaning "final-".
use std::cmp::Ordering;

fn parts(v: &str) -> Vec<String> {
    let v = v.to_lowercase();
    let mut tokens: Vec<String> = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let class = |c: u8| {
            if c.is_ascii_digit() {
                0
            } else if c.is_ascii_lowercase() {
                1
            } else if c == b'.' || c == b'-' {
                2
            } else {
                3
            }
        };
        let k = class(b[i]);
        if k == 2 {
            i += 1;
        } else {
            while i < b.len() && class(b[i]) == k {
                i += 1;
            }
        }
        tokens.push(v[start..i].to_string());
    }
    let mut out: Vec<String> = Vec::new();
    let mapped = tokens
        .into_iter()
        .map(|t| match t.as_str() {
            "pre" | "preview" | "rc" => "c".to_string(),
            "-" => "final-".to_string(),
            "dev" => "@".to_string(),
            _ => t,
        })
        .filter(|t| !t.is_empty() && t != ".")
        .map(|t| {
            if t.as_bytes()[0].is_ascii_digit() {
                format!("{t:0>8}")
            } else {
                format!("*{t}")
            }
        })
        .chain(std::iter::once("*final".to_string()));
    for p in mapped {
        if p.starts_with('*') {
            if p.as_str() < "*final" {
                while out.last().is_some_and(|l| l == "*final-") {
                    out.pop();
                }
            }
            while out.last().is_some_and(|l| l == "00000000") {
                out.pop();
            }
        }
        out.push(p);
    }
    out
}

/// Whether `v` is usable as a legacy version at all (something to order, no whitespace).
pub fn accepts(v: &str) -> bool {
    let v = v.trim();
    !v.is_empty() && !v.contains(char::is_whitespace)
}

/// Order two legacy versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    parts(a.trim()).cmp(&parts(b.trim()))
}
