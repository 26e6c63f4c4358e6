//! One redactor for the whole process, fed with every secret value davit knows.
//!
//! `Secret<String>` keeps a value out of what davit formats itself, but a secret also comes back
//! in text davit only relays: an app's hook that echoes a bad setting, `docker` or `nginx` errors
//! quoting an env file, a registry's error body. Every [`Secret`](crate::Secret) registers its
//! value here when it is made, and the places where captured output is taken in (process
//! output) or re-emitted (terminal, ledger, step summary, GitHub payloads) pass text through
//! [`redact`]. A value shorter than [`MIN_LEN`] is not registered: masking every `1` or `yes`
//! would make output unreadable without protecting anything that guessable.

use std::borrow::Cow;
use std::sync::RwLock;

/// The mark a secret value is replaced with.
pub use crate::secret::REDACTED;

/// Shorter values are not masked (see the module docs).
pub const MIN_LEN: usize = 4;

static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember a secret value so that [`redact`] masks it from now on. The whole value, not its
/// lines: a secret env file's text is one value, and its `PORT=8000` line is no secret.
pub fn register(value: &str) {
    let c = value.trim();
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    if c.chars().count() >= MIN_LEN && !known.iter().any(|k| k == c) {
        known.push(c.to_string());
    }
    // Longest first: a value that contains another is masked whole, not in pieces.
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
}

/// `text` with every registered secret value replaced by `[REDACTED]`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|p| p.into_inner());
    if !known.iter().any(|k| text.contains(k.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for k in known.iter() {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// [`redact`] into an owned string, for fields that are stored (ledger reasons, payloads).
pub fn redacted(text: &str) -> String {
    redact(text).into_owned()
}

/// Every string inside a JSON value, redacted in place (GitHub API payloads).
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t46_registered_values_are_masked_everywhere_in_text_and_json() {
        register("canary-7f3e1d-secret");
        register("PORT=8000\nDB=canary-7f3e1d-secret\n");
        register("abc"); // too short to mask
        let text = "boom: DATABASE_URL=canary-7f3e1d-secret, PORT=8000, abc";
        assert_eq!(
            redact(text),
            "boom: DATABASE_URL=[REDACTED], PORT=8000, abc"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        let mut v = serde_json::json!({"a": ["x canary-7f3e1d-secret"], "b": {"c": 1}});
        redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x [REDACTED]"], "b": {"c": 1}}));
    }
}
