//! Settings from environment variables, validated once at start.
//!
//! The app is configured only through the environment because it runs as PID 1 in a
//! `FROM scratch` image where there is no shell to build a command line. A bad value
//! must stop the process at start (exit code 2) rather than silently disabling a fault
//! that a test relies on, so every variable is parsed strictly and an unknown
//! `FAULT_*` variable (usually a typo) is an error too.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::faults::{ErrorRatio, Faults};

/// Every `FAULT_*` variable the app understands; any other `FAULT_*` name is rejected.
pub const FAULT_VARS: [&str; 6] = [
    "FAULT_NEVER_HEALTHY",
    "FAULT_FAIL_AFTER_SECS",
    "FAULT_ERROR_RATIO",
    "FAULT_LATENCY_MS",
    "FAULT_CRASH_AFTER_SECS",
    "FAULT_SLOW_START_SECS",
];

/// Validated settings for one run of the app.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to listen on (`BIND`).
    pub bind: IpAddr,
    /// TCP port (`PORT`); 0 asks the OS for a free port.
    pub port: u16,
    /// Reported in `/health`, `/`, `/metrics` and the `X-App-Version` header (`APP_VERSION`).
    pub version: String,
    /// Shown in the body of `/` (`APP_NAME`).
    pub name: String,
    /// Injected misbehaviour.
    pub faults: Faults,
    /// Host names requests may carry (`ALLOWED_HOSTS`, comma-separated), as Django checks
    /// them: any other Host header gets 400. Empty: every host.
    pub allowed_hosts: Vec<String>,
    /// Where the app writes user uploads (`MEDIA_ROOT`): at start it writes
    /// `<MEDIA_ROOT>/<APP_VERSION>.txt`, the file a proxy then serves as media.
    pub media_root: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 8000,
            version: "dev".to_owned(),
            name: "demo".to_owned(),
            faults: Faults::default(),
            allowed_hosts: Vec::new(),
            media_root: None,
        }
    }
}

/// A variable that is set to something the app cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending environment variable.
    pub var: String,
    /// Its value, lossily decoded, for the message.
    pub value: String,
    /// What was expected, phrased so the fix is obvious.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}\nhint: fix or unset {}",
            self.var, self.value, self.expected, self.var
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars_os())
    }

    /// Parses settings from name/value pairs, so tests need not touch the real
    /// environment (which is process-global and `unsafe` to mutate in edition 2024).
    ///
    /// An empty value counts as unset: compose files commonly pass `FAULT_X: ${FAULT_X:-}`.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in vars {
            let (k, v) = (k.into(), v.into());
            // Names that are not UTF-8 cannot be ours, so they are skipped; ours must be UTF-8.
            let Ok(k) = k.into_string() else { continue };
            if !is_ours(&k) {
                continue;
            }
            let v = v.into_string().map_err(|v| ConfigError {
                var: k.clone(),
                value: v.to_string_lossy().into_owned(),
                expected: "a UTF-8 value".to_owned(),
            })?;
            if k.starts_with("FAULT_") && !FAULT_VARS.contains(&k.as_str()) {
                return Err(ConfigError {
                    var: k,
                    value: v,
                    expected: format!("a known fault variable ({})", FAULT_VARS.join(", ")),
                });
            }
            env.push((k, v));
        }
        let get = |name: &str| -> Option<&str> {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };

        let defaults = Config::default();
        let port = match get("PORT") {
            None => defaults.port,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| err("PORT", v, "a port number from 0 to 65535"))?,
        };
        let bind = match get("BIND") {
            None => defaults.bind,
            // No DNS on purpose: a static binary cannot use NSS, and a host name would
            // make "which interface am I on" depend on the resolver.
            Some(v) => v
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| err("BIND", v, "an IP address such as 0.0.0.0, 127.0.0.1 or ::"))?,
        };
        let version = match get("APP_VERSION") {
            None => defaults.version,
            Some(v) => {
                // It is echoed in a response header, so it must be a valid header value.
                if v.chars().any(|c| c.is_control()) {
                    return Err(err(
                        "APP_VERSION",
                        v,
                        "a version without control characters or newlines",
                    ));
                }
                v.to_owned()
            }
        };
        let name = match get("APP_NAME") {
            None => defaults.name,
            Some(v) => {
                if v.chars().any(|c| c.is_control()) {
                    return Err(err(
                        "APP_NAME",
                        v,
                        "a name without control characters or newlines",
                    ));
                }
                v.to_owned()
            }
        };

        let faults = Faults {
            never_healthy: match get("FAULT_NEVER_HEALTHY") {
                None => false,
                Some(v) => parse_bool("FAULT_NEVER_HEALTHY", v)?,
            },
            fail_after: get("FAULT_FAIL_AFTER_SECS")
                .map(|v| parse_secs("FAULT_FAIL_AFTER_SECS", v))
                .transpose()?,
            error_ratio: match get("FAULT_ERROR_RATIO") {
                None => ErrorRatio::NEVER,
                Some(v) => parse_ratio("FAULT_ERROR_RATIO", v)?,
            },
            latency: match get("FAULT_LATENCY_MS") {
                None => Duration::ZERO,
                Some(v) => parse_millis("FAULT_LATENCY_MS", v)?,
            },
            crash_after: get("FAULT_CRASH_AFTER_SECS")
                .map(|v| parse_secs("FAULT_CRASH_AFTER_SECS", v))
                .transpose()?,
            slow_start: match get("FAULT_SLOW_START_SECS") {
                None => Duration::ZERO,
                Some(v) => parse_secs("FAULT_SLOW_START_SECS", v)?,
            },
        };

        let allowed_hosts = get("ALLOWED_HOSTS")
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let media_root = get("MEDIA_ROOT").map(std::path::PathBuf::from);

        Ok(Config {
            bind,
            port,
            version,
            name,
            faults,
            allowed_hosts,
            media_root,
        })
    }
}

fn is_ours(name: &str) -> bool {
    matches!(
        name,
        "PORT" | "BIND" | "APP_VERSION" | "APP_NAME" | "ALLOWED_HOSTS" | "MEDIA_ROOT"
    ) || name.starts_with("FAULT_")
}

fn err(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(err(var, v, "1/true/yes/on or 0/false/no/off")),
    }
}

/// Whole or fractional seconds; fractions keep tests short (`0.5`).
fn parse_secs(var: &str, v: &str) -> Result<Duration, ConfigError> {
    let expected = "a number of seconds >= 0, such as 30 or 0.5";
    let secs: f64 = v.trim().parse().map_err(|_| err(var, v, expected))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(err(var, v, expected));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| err(var, v, expected))
}

fn parse_millis(var: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| err(var, v, "a whole number of milliseconds >= 0, such as 250"))
}

fn parse_ratio(var: &str, v: &str) -> Result<ErrorRatio, ConfigError> {
    let expected = "a fraction from 0 to 1, such as 0.2";
    let r: f64 = v.trim().parse().map_err(|_| err(var, v, expected))?;
    ErrorRatio::new(r).ok_or_else(|| err(var, v, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = parse(&[("HOME", "/root"), ("PATH", "/bin")]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 8000);
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.version, "dev");
        assert_eq!(c.name, "demo");
        assert!(!c.faults.any());
    }

    #[test]
    fn reads_every_variable() {
        let c = parse(&[
            ("PORT", "9000"),
            ("BIND", "127.0.0.1"),
            ("APP_VERSION", "1.2.3"),
            ("APP_NAME", "shop"),
            ("FAULT_NEVER_HEALTHY", "1"),
            ("FAULT_FAIL_AFTER_SECS", "5"),
            ("FAULT_ERROR_RATIO", "0.2"),
            ("FAULT_LATENCY_MS", "150"),
            ("FAULT_CRASH_AFTER_SECS", "0.5"),
            ("FAULT_SLOW_START_SECS", "3"),
        ])
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.version, "1.2.3");
        assert_eq!(c.name, "shop");
        let f = &c.faults;
        assert!(f.never_healthy);
        assert_eq!(f.fail_after, Some(Duration::from_secs(5)));
        assert_eq!(f.error_ratio, ErrorRatio::new(0.2).unwrap());
        assert_eq!(f.latency, Duration::from_millis(150));
        assert_eq!(f.crash_after, Some(Duration::from_millis(500)));
        assert_eq!(f.slow_start, Duration::from_secs(3));
        assert!(f.any());
    }

    #[test]
    fn ipv6_bind_with_or_without_brackets() {
        let expected = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(parse(&[("BIND", "::")]).unwrap().bind, expected);
        assert_eq!(parse(&[("BIND", "[::]")]).unwrap().bind, expected);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = parse(&[("PORT", ""), ("APP_VERSION", ""), ("FAULT_ERROR_RATIO", "")]).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn port_zero_is_allowed_for_ephemeral_ports() {
        assert_eq!(parse(&[("PORT", "0")]).unwrap().port, 0);
    }

    #[test]
    fn booleans() {
        for v in ["1", "true", "YES", "on"] {
            assert!(
                parse(&[("FAULT_NEVER_HEALTHY", v)])
                    .unwrap()
                    .faults
                    .never_healthy
            );
        }
        for v in ["0", "false", "No", "off"] {
            assert!(
                !parse(&[("FAULT_NEVER_HEALTHY", v)])
                    .unwrap()
                    .faults
                    .never_healthy
            );
        }
    }

    #[test]
    fn ratio_bounds() {
        assert_eq!(
            parse(&[("FAULT_ERROR_RATIO", "0")])
                .unwrap()
                .faults
                .error_ratio,
            ErrorRatio::NEVER
        );
        assert_eq!(
            parse(&[("FAULT_ERROR_RATIO", "1")])
                .unwrap()
                .faults
                .error_ratio,
            ErrorRatio::ALWAYS
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("PORT", "http"),
            ("PORT", "65536"),
            ("PORT", "-1"),
            ("BIND", "localhost"),
            ("BIND", "0.0.0.0:80"),
            ("APP_VERSION", "1.0\r\nX-Evil: 1"),
            ("APP_NAME", "a\nb"),
            ("FAULT_NEVER_HEALTHY", "maybe"),
            ("FAULT_FAIL_AFTER_SECS", "soon"),
            ("FAULT_FAIL_AFTER_SECS", "-1"),
            ("FAULT_FAIL_AFTER_SECS", "inf"),
            ("FAULT_FAIL_AFTER_SECS", "NaN"),
            ("FAULT_ERROR_RATIO", "20%"),
            ("FAULT_ERROR_RATIO", "1.5"),
            ("FAULT_ERROR_RATIO", "-0.1"),
            ("FAULT_ERROR_RATIO", "NaN"),
            ("FAULT_LATENCY_MS", "1.5"),
            ("FAULT_LATENCY_MS", "-3"),
            ("FAULT_LATENCY_MS", "100ms"),
            ("FAULT_CRASH_AFTER_SECS", "x"),
            ("FAULT_SLOW_START_SECS", "1e400"),
        ];
        for (var, value) in cases {
            let e = parse(&[(var, value)]).expect_err(&format!("{var}={value:?} should fail"));
            assert_eq!(e.var, var);
            assert_eq!(e.value, value);
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("invalid {var}=")), "{msg}");
            assert!(msg.contains("hint:"), "{msg}");
        }
    }

    #[test]
    fn unknown_fault_variable_is_rejected() {
        let e = parse(&[("FAULT_ERROR_RATE", "0.2")]).unwrap_err();
        assert_eq!(e.var, "FAULT_ERROR_RATE");
        assert!(e.to_string().contains("FAULT_ERROR_RATIO"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_value_is_rejected() {
        use std::os::unix::ffi::OsStringExt;
        let e = Config::from_vars([(
            OsString::from("APP_NAME"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )])
        .unwrap_err();
        assert_eq!(e.var, "APP_NAME");
    }
}
