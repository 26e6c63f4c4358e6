//! Text on its way into a message: commit ids checked and shortened, names from the payload
//! reduced to safe characters, local text (paths, git's stderr) kept to one bounded line.
//!
//! A refusal is printed in the job log, where a line starting `::` is a workflow command; so
//! nothing the fork controls is printed as it came.

pub(super) fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// A repository or event name reduced to characters GitHub allows in them; anything else
/// (a newline, `:`, `%`) becomes `?`, so the name can neither start a workflow command nor
/// forge a line.
pub(super) fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('?');
    }
    out
}

/// Local text (a path, git's stderr) on one line: control characters escaped, length capped.
pub(super) fn printable(s: &str, max: usize) -> String {
    let one_line: String = s
        .trim()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}
