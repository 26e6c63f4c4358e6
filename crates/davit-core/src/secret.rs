//! A value that must never be printed.
//!
//! `Secret<T>` redacts itself in `Debug`, `Display` and `Serialize`, so a secret that ends up in a
//! log line, a plan snapshot, a step summary or a GitHub API payload shows as `[REDACTED]` instead
//! of leaking. Reading the value is explicit (`expose`), which makes every place that hands a
//! secret to a process easy to find in review.

use std::fmt;

pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T: AsRef<str>> Secret<T> {
    /// Wrap a value; it is registered with the process's redactor ([`crate::redact`]), so text
    /// davit relays (a hook's error output, a registry's answer) never shows it either.
    pub fn new(value: T) -> Self {
        crate::redact::register(value.as_ref());
        Secret(value)
    }
}

impl<T> Secret<T> {
    /// The raw value. Call sites should pass it to stdin, a 0600 file or an env var, never argv.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de, T: serde::Deserialize<'de> + AsRef<str>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret::new)
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_renders_its_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "hunter2");
    }
}
