//! Input validation for values that end up in argv, file names, container names or URLs.
//!
//! davit never runs a shell, so `$(id)` in a value is inert anyway; these checks exist for the
//! other ways a value can hurt: a leading `-` read as an option by docker or ssh (T02), a newline
//! that splits an env file or an output, a path that climbs out of the workspace (T04). Each
//! error says what is allowed, so the message names the fix.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub value: String,
    pub rule: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = \"{}\" is not valid: {}",
            self.field,
            printable(&self.value),
            self.rule
        )
    }
}

impl std::error::Error for Invalid {}

/// Show control characters (newline, NUL) visibly in error messages.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn invalid(field: &str, value: &str, rule: &'static str) -> Invalid {
    Invalid {
        field: field.to_string(),
        value: value.to_string(),
        rule,
    }
}

/// A short name used in container, project and file names: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn name(field: &str, value: &str) -> Result<(), Invalid> {
    const RULE: &str =
        "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit";
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, value, RULE))
    }
}

/// A release version label (`v2`, `1.2.3`, `sha-abc1234`): also a docker tag, so the tag grammar.
pub fn version(field: &str, value: &str) -> Result<(), Invalid> {
    const RULE: &str =
        "use 1-128 characters from letters, digits, '.', '_' and '-', not starting with '.' or '-'";
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, value, RULE))
    }
}

/// An image reference `[registry[:port]/]path[:tag][@sha256:digest]`, per the distribution grammar.
pub fn image_ref(field: &str, value: &str) -> Result<(), Invalid> {
    const RULE: &str = "use an image reference like registry.example.com/team/app:1.2.3 or app@sha256:<64 hex>; it may not start with '-' or contain spaces";
    let bad = || invalid(field, value, RULE);
    if value.is_empty() || value.len() > 512 || value.starts_with('-') {
        return Err(bad());
    }
    let (rest, digest) = match value.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (value, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Err(bad());
        }
    }
    // A tag is after the last ':' that follows the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        version(field, t).map_err(|_| bad())?;
    }
    let mut components = path.split('/').peekable();
    let first = components.peek().copied().unwrap_or("");
    // The first component is a registry host when it has a '.' or ':' or is localhost.
    if path.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        let (host, port) = match first.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        hostname(field, host).map_err(|_| bad())?;
        if let Some(p) = port
            && p.parse::<u16>().map(|n| n == 0).unwrap_or(true)
        {
            return Err(bad());
        }
        components.next();
    }
    for c in components {
        let ok = !c.is_empty()
            && c.chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .last()
                .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase()
                    || ch.is_ascii_digit()
                    || ch == '.'
                    || ch == '_'
                    || ch == '-'
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// A DNS name or IPv4/IPv6 literal. Never starts with '-' (an ssh option otherwise, T02).
pub fn hostname(field: &str, value: &str) -> Result<(), Invalid> {
    const RULE: &str =
        "use a DNS name (letters, digits, '-', '.') or an IP address; it may not start with '-'";
    if value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(field, value, RULE))
    }
}

/// A TCP port in 1..=65535.
pub fn port(field: &str, value: u32) -> Result<u16, Invalid> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Invalid {
            field: field.to_string(),
            value: value.to_string(),
            rule: "use a TCP port from 1 to 65535",
        }),
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name(field: &str, value: &str) -> Result<(), Invalid> {
    const RULE: &str = "use letters, digits and '_', not starting with a digit";
    let ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, value, RULE))
    }
}

/// A value written on one line of an env file: no newline, carriage return or NUL.
pub fn single_line(field: &str, value: &str) -> Result<(), Invalid> {
    if value.contains(['\n', '\r', '\0']) {
        Err(invalid(
            field,
            value,
            "remove newlines and NUL characters from the value",
        ))
    } else {
        Ok(())
    }
}

/// A URL path for health checks: starts with '/', no whitespace or control characters.
pub fn url_path(field: &str, value: &str) -> Result<(), Invalid> {
    let ok = value.starts_with('/') && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "use a path starting with '/' and without spaces, e.g. /health",
        ))
    }
}

/// A path relative to a workspace that stays inside it (no absolute path, no `..`), T04.
pub fn relative_path(field: &str, value: &str) -> Result<(), Invalid> {
    use std::path::{Component, Path};
    let p = Path::new(value);
    let ok = !value.is_empty()
        && !value.contains('\0')
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            value,
            "use a path inside the repository, without '..' or a leading '/'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T01/T02-style hostile values: none of them may pass any validator.
    const HOSTILE: &[&str] = &[
        "\"; id #",
        "$(id)",
        "`id`",
        "a\nb",
        "a\0b",
        "-oProxyCommand=touch /tmp/pwned",
        "--privileged",
        "-v /:/x",
        "",
    ];

    #[test]
    fn t01_t02_hostile_values_are_rejected_everywhere() {
        for v in HOSTILE {
            assert!(name("app.name", v).is_err(), "name accepted {v:?}");
            assert!(version("version", v).is_err(), "version accepted {v:?}");
            assert!(image_ref("image", v).is_err(), "image accepted {v:?}");
            assert!(hostname("host", v).is_err(), "host accepted {v:?}");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for v in [
            "app",
            "app:1.2.3",
            "ghcr.io/team/app:sha-abc123",
            "localhost:5000/demo:v2",
            "127.0.0.1:5000/team/app",
            "registry.example.com/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            image_ref("image", v).unwrap();
        }
        for h in ["localhost", "10.0.0.5", "::1", "web-1.example.com"] {
            hostname("host", h).unwrap();
        }
        name("app", "shop_web-2").unwrap();
        version("v", "v2").unwrap();
    }

    #[test]
    fn ports_and_paths() {
        assert!(port("ports.blue", 0).is_err());
        assert!(port("ports.blue", 70000).is_err());
        assert_eq!(port("ports.blue", 8081).unwrap(), 8081);
        assert!(relative_path("f", "../../etc/passwd").is_err());
        assert!(relative_path("f", "/etc/passwd").is_err());
        relative_path("f", "deploy/compose.yaml").unwrap();
        assert!(url_path("health.path", "health").is_err());
        assert!(single_line("env.X", "a\nB=1").is_err());
    }

    #[test]
    fn error_names_field_and_fix() {
        let e = image_ref("image.name", "--privileged")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("image.name = \"--privileged\" is not valid: use an image reference"),
            "{e}"
        );
        let e = hostname("host", "a\nb").unwrap_err().to_string();
        assert!(e.contains(r"a\nb"), "{e}");
    }
}
