//! Untrusted text made safe for where it is shown.
//!
//! An actor name, a rollback reason, a hook's output or a version string comes from people and
//! programs davit does not control. Printed raw, a newline forges a row in `davit releases`, an
//! ANSI escape rewrites the terminal, and markdown or HTML in the step summary adds rows, links
//! or images that look like davit's own. These functions escape such text at the place it is
//! shown; the stored value stays what it was.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that change how a terminal shows the text around them: C0 and C1 controls, DEL,
/// and the Unicode bidirectional and zero-width format characters (which can reorder or hide
/// what a reader sees).
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    if keep_newlines && (c == '\n' || c == '\t') {
        return false;
    }
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c, keep_newlines) {
            escape_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line for a terminal or a table cell: every control character (newlines too) is shown as
/// an escape (`\n`, `\e`, `\x07`, `\u{202e}`), so the value cannot start a new row or move the
/// cursor.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Multi-line text for a terminal (errors, tool output): newlines and tabs stay, every other
/// control character (ANSI escapes, carriage returns that overwrite a line) is escaped.
pub fn lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// One line of untrusted text inside markdown (a step summary cell or heading): [`line`], then
/// every character markdown or HTML gives a meaning to is written as an HTML character
/// reference, which GitHub shows as the character itself. A `|` cannot end a table cell, `<`
/// cannot open a tag, `[x](y)` is no link and `*` no emphasis.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '|' | '~' | '#' | '!' | '{' | '}'
            | '+' | '-' | '.' | ':' | '=' | '\'' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// [`markdown`] shown as code (`<code>`): for ids, images and digests in a summary table.
pub fn markdown_code(s: &str) -> String {
    format!("<code>{}</code>", markdown(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t47_terminal_text_cannot_forge_lines_or_move_the_cursor() {
        assert_eq!(line("alice"), "alice");
        assert_eq!(
            line("a\nb\r\x1b[31mred\x07\u{202e}"),
            "a\\nb\\r\\e[31mred\\x07\\u{202e}"
        );
        assert_eq!(lines("one\ntwo\x1b[2J"), "one\ntwo\\e[2J");
    }

    #[test]
    fn t47_markdown_text_cannot_add_rows_tags_or_links() {
        let evil = "x | y |\n| forged | row |<img src=x onerror=alert(1)>[click](http://e)";
        let md = markdown(evil);
        assert!(!md.contains('|'), "{md}");
        assert!(!md.contains('<') && !md.contains('>'), "{md}");
        assert!(!md.contains('\n'), "{md}");
        assert!(!md.contains("](") && !md.contains('['), "{md}");
        assert_eq!(markdown("v1.2"), "v1&#46;2");
        assert_eq!(markdown_code("a`b"), "<code>a&#96;b</code>");
    }
}
