//! NuGet's `NuGetVersion` ordering: up to four numeric parts (`1.0` = `1.0.0.0`), then SemVer 2.0
//! pre-release rules with letters compared case-insensitively; metadata after `+` is ignored.
use std::cmp::Ordering;

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let parse = |s: &str| -> Option<(Vec<String>, Vec<String>)> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p),
            None => (s, ""),
        };
        let core: Vec<String> = core.split('.').map(str::to_string).collect();
        if core.is_empty()
            || core.len() > 4
            || core
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let pre: Vec<String> = if pre.is_empty() {
            Vec::new()
        } else {
            pre.split('.').map(str::to_string).collect()
        };
        if pre
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return None;
        }
        Some((core, pre))
    };
    let (ac, ap) = parse(a)?;
    let (bc, bp) = parse(b)?;
    for i in 0..4 {
        let o = super::semver::cmp_digits(
            ac.get(i).map_or("0", String::as_str),
            bc.get(i).map_or("0", String::as_str),
        );
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    let ap: Vec<&str> = ap.iter().map(String::as_str).collect();
    let bp: Vec<&str> = bp.iter().map(String::as_str).collect();
    Some(super::semver::cmp_prerelease(&ap, &bp, true))
}
