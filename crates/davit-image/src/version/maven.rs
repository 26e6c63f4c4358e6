//! Maven's `ComparableVersion` ordering, as documented for Maven 3 ("Version Order
//! Specification"): the version is split on `.`, `-` and digit/letter transitions; a `-` (or a
//! transition) opens a sub-list; numbers compare numerically, qualifiers as
//! `alpha < beta < milestone < rc = cr < snapshot < "" = final = ga = release < sp`, unknown
//! qualifiers after those in lexical order; trailing "null" items (`0`, `""`, `final`, `ga`) are
//! dropped; a number beats a qualifier and a sub-list.
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Int(String),
    Str(String),
    List(Vec<Item>),
}

fn qualifier_rank(q: &str) -> (u8, String) {
    match q {
        "alpha" => (0, String::new()),
        "beta" => (1, String::new()),
        "milestone" => (2, String::new()),
        "rc" => (3, String::new()),
        "snapshot" => (4, String::new()),
        "" => (5, String::new()),
        "sp" => (6, String::new()),
        other => (7, other.to_string()),
    }
}

fn is_null(i: &Item) -> bool {
    match i {
        Item::Int(n) => n.trim_start_matches('0').is_empty(),
        Item::Str(s) => s.is_empty(),
        Item::List(l) => l.is_empty(),
    }
}

/// Drop trailing null items, looking past non-null sub-lists (`1.0-1` = `1-1`).
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if is_null(&list[i]) {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

fn item(digit: bool, tok: &str, followed_by_digit: bool) -> Item {
    if digit {
        return Item::Int(tok.to_string());
    }
    Item::Str(match tok {
        "a" if followed_by_digit => "alpha".into(),
        "b" if followed_by_digit => "beta".into(),
        "m" if followed_by_digit => "milestone".into(),
        "ga" | "final" | "release" => String::new(),
        "cr" => "rc".into(),
        _ => tok.to_string(),
    })
}

fn parse(v: &str) -> Option<Vec<Item>> {
    let v = v.trim().to_lowercase();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return None;
    }
    // Open lists, outermost first; a sub-list is always the last item of its parent, so it is
    // attached when closed.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let b = v.as_bytes();
    let mut digit = false;
    let mut start = 0;
    for i in 0..b.len() {
        let c = b[i];
        let tok = &v[start..i];
        if c == b'.' || c == b'-' {
            let it = if i == start {
                Item::Int("0".into())
            } else {
                item(digit, tok, false)
            };
            stack.last_mut()?.push(it);
            start = i + 1;
            if c == b'-' {
                stack.push(Vec::new());
            }
        } else if c.is_ascii_digit() {
            if !digit && i > start {
                stack.last_mut()?.push(item(false, tok, true));
                start = i;
                stack.push(Vec::new());
            }
            digit = true;
        } else {
            if digit && i > start {
                stack.last_mut()?.push(item(true, tok, false));
                start = i;
                stack.push(Vec::new());
            }
            digit = false;
        }
    }
    if b.len() > start {
        stack.last_mut()?.push(item(digit, &v[start..], false));
    }
    while stack.len() > 1 {
        let mut l = stack.pop()?;
        normalize(&mut l);
        stack.last_mut()?.push(Item::List(l));
    }
    let mut top = stack.pop()?;
    normalize(&mut top);
    Some(top)
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    use Item::*;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(x), None) => cmp_null(x),
        (None, Some(y)) => cmp_null(y).reverse(),
        (Some(Int(x)), Some(Int(y))) => super::semver::cmp_digits(x, y),
        (Some(Int(_)), Some(_)) => Ordering::Greater,
        (Some(_), Some(Int(_))) => Ordering::Less,
        (Some(Str(x)), Some(Str(y))) => qualifier_rank(x).cmp(&qualifier_rank(y)),
        (Some(Str(_)), Some(List(_))) => Ordering::Less,
        (Some(List(_)), Some(Str(_))) => Ordering::Greater,
        (Some(List(x)), Some(List(y))) => cmp_list(x, y),
    }
}

/// An item against a missing one: numbers against 0, qualifiers against the release.
fn cmp_null(x: &Item) -> Ordering {
    match x {
        Item::Int(n) => {
            if n.trim_start_matches('0').is_empty() {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
        Item::Str(s) => qualifier_rank(s).cmp(&qualifier_rank("")),
        Item::List(l) => match l.first() {
            None => Ordering::Equal,
            Some(f) => cmp_null(f),
        },
    }
}

fn cmp_list(a: &[Item], b: &[Item]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let o = cmp_item(a.get(i), b.get(i));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(cmp_list(&parse(a)?, &parse(b)?))
}
