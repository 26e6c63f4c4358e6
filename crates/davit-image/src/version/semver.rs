//! SemVer 2.0 precedence without the `semver` crate's limits: numbers of any width (advisories
//! carry 20-digit build numbers) and any number of core parts (`1.2.3.4`, Go's and npm's
//! four-part versions), missing parts meaning 0. Used for npm, crates.io and Go.
use std::cmp::Ordering;

/// Compare digit strings of any length as numbers.
pub fn cmp_digits(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

struct Parsed<'a> {
    core: Vec<&'a str>,
    pre: Vec<&'a str>,
}

fn parse(s: &str) -> Option<Parsed<'_>> {
    let s = s.trim().trim_start_matches(['v', '=']);
    // Build metadata does not take part in precedence.
    let s = s.split_once('+').map_or(s, |(v, _)| v);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let core: Vec<&str> = core.split('.').collect();
    if core
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let pre: Vec<&str> = match pre {
        Some(p) => p.split('.').collect(),
        None => Vec::new(),
    };
    if pre
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return None;
    }
    Some(Parsed { core, pre })
}

/// Pre-release identifiers: numeric ones numerically and below alphanumeric ones, which compare
/// in ASCII order; a shorter list that is a prefix comes first. `fold` makes letters
/// case-insensitive (NuGet).
pub fn cmp_prerelease(a: &[&str], b: &[&str], fold: bool) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    for (x, y) in a.iter().zip(b) {
        let xn = x.bytes().all(|c| c.is_ascii_digit());
        let yn = y.bytes().all(|c| c.is_ascii_digit());
        let o = match (xn, yn) {
            (true, true) => cmp_digits(x, y),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) if fold => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
            (false, false) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    let n = a.core.len().max(b.core.len());
    for i in 0..n {
        let o = cmp_digits(
            a.core.get(i).copied().unwrap_or("0"),
            b.core.get(i).copied().unwrap_or("0"),
        );
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(cmp_prerelease(&a.pre, &b.pre, false))
}
