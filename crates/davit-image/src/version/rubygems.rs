//! RubyGems' `Gem::Version` ordering: segments are the runs of digits and of letters; a `-` is
//! read as `.pre.`; a version with a letter is a pre-release; trailing zeros of the release
//! and of the pre-release part do not count; a letter segment sorts before a number.
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Num(String),
    Str(String),
}

fn parse(v: &str) -> Option<Vec<Seg>> {
    let v = v.trim();
    if v.is_empty() {
        return Some(vec![Seg::Num("0".into())]);
    }
    // Gem::Version::ANCHORED_VERSION_PATTERN: [0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?
    if !v.starts_with(|c: char| c.is_ascii_digit())
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        || v.contains("..")
        || v.ends_with('.')
    {
        return None;
    }
    let v = v.replace('-', ".pre.");
    let mut segs = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let d = b[i].is_ascii_digit();
        let s = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == d {
            i += 1;
        }
        segs.push(if d {
            Seg::Num(v[s..i].to_string())
        } else {
            Seg::Str(v[s..i].to_string())
        });
    }
    // canonical_segments: drop trailing zeros of the numeric part and of the rest.
    let split = segs
        .iter()
        .position(|s| matches!(s, Seg::Str(_)))
        .unwrap_or(segs.len());
    let zero = |s: &Seg| matches!(s, Seg::Num(n) if n.trim_start_matches('0').is_empty());
    let mut release: Vec<Seg> = segs[..split].to_vec();
    let mut pre: Vec<Seg> = segs[split..].to_vec();
    while release.last().is_some_and(zero) {
        release.pop();
    }
    while pre.last().is_some_and(zero) {
        pre.pop();
    }
    release.extend(pre);
    Some(release)
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    let zero = Seg::Num("0".into());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).unwrap_or(&zero);
        let y = b.get(i).unwrap_or(&zero);
        let o = match (x, y) {
            (Seg::Num(x), Seg::Num(y)) => super::semver::cmp_digits(x, y),
            (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
            (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
            (Seg::Str(x), Seg::Str(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}
