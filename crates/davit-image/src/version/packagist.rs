//! Packagist (Composer) ordering: Composer normalizes `v1.2` to `1.2.0.0` and compares with
//! PHP's `version_compare`: `-`, `_` and `+` are separators, a letter/digit transition is one
//! too, numbers compare numerically and words by PHP's special forms
//! `dev < alpha = a < beta = b < RC = rc < number < pl = p`, an unknown word before all of them.
use std::cmp::Ordering;

fn canon(v: &str) -> Option<Vec<String>> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    if v.is_empty() || v.contains(char::is_whitespace) {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<bool> = None;
    for c in v.chars() {
        if matches!(c, '.' | '-' | '_' | '+') {
            if !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        let d = c.is_ascii_digit();
        if prev.is_some_and(|p| p != d) && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        prev = Some(d);
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    // Composer pads the numeric head to four parts (1.2 == 1.2.0.0).
    let head = parts
        .iter()
        .take_while(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .count();
    if head == 0 {
        return None;
    }
    for _ in head..4 {
        parts.insert(head, "0".into());
    }
    Some(parts)
}

fn special(s: &str) -> i32 {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return 4;
    }
    match s {
        "dev" => 0,
        "alpha" | "a" => 1,
        "beta" | "b" => 2,
        "RC" | "rc" => 3,
        "#" => 4,
        "pl" | "p" => 5,
        _ => -6,
    }
}

fn cmp_part(a: &str, b: &str) -> Ordering {
    let an = a.bytes().all(|c| c.is_ascii_digit());
    let bn = b.bytes().all(|c| c.is_ascii_digit());
    if an && bn {
        super::semver::cmp_digits(a, b)
    } else {
        special(a).cmp(&special(b))
    }
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (canon(a)?, canon(b)?);
    for (x, y) in a.iter().zip(&b) {
        let o = cmp_part(x, y);
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    // The longer one: a further number makes it greater, a further word is weighed against a
    // number (so `1.0-rc1` < `1.0`, `1.0-pl1` > `1.0`).
    Some(
        match a.len().cmp(&b.len()) {
            Ordering::Equal => Ordering::Equal,
            Ordering::Greater => cmp_part(&a[b.len()], "#"),
            Ordering::Less => cmp_part("#", &b[a.len()]),
        }
        .then(Ordering::Equal),
    )
}
