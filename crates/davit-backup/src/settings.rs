//! `[environments.<name>.backup]` in davit.toml, and its resolution into a [`BackupSpec`].
//!
//! Secrets are never in the file: the settings name environment variables (filled from GitHub
//! secrets by the action) that hold the database URL, the container password and the
//! encryption key. A named key variable that is unset or empty is an error (T12): configuring
//! encryption and silently getting plaintext backups is the failure this guards against.

use crate::{BackupError, BackupSpec, Source, VerifyLevel};
use davit_core::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Serde-ready backup settings for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Block migrations (and the deploy) without a verified backup of this deploy.
    #[serde(default = "yes")]
    pub required: bool,
    /// Absolute directory on the database host.
    pub dir: PathBuf,
    #[serde(default)]
    pub verify: VerifyLevel,
    #[serde(default = "seven")]
    pub keep: usize,
    pub max_age_days: Option<u32>,
    /// Container mode: the PostgreSQL container's name.
    pub container: Option<String>,
    pub user: Option<String>,
    pub database: Option<String>,
    /// Container mode: env var holding the password, if local connections need one.
    pub password_env: Option<String>,
    /// URL mode: env var holding `postgres://user:password@host:port/db`.
    pub url_env: Option<String>,
    /// Env var holding an age identity (`AGE-SECRET-KEY-1...`); set = encryption required.
    pub encryption_key_env: Option<String>,
    /// URL mode: PostgreSQL client directory on the host, e.g. /usr/lib/postgresql/16/bin.
    pub pg_bin: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn seven() -> usize {
    7
}

impl BackupSettings {
    /// Resolve against an environment lookup (`|k| std::env::var(k).ok()` at the binary edge).
    pub fn spec(&self, env: impl Fn(&str) -> Option<String>) -> Result<BackupSpec, BackupError> {
        let config = |message: String, hint: &str| BackupError::Config {
            message,
            hint: hint.to_string(),
        };
        let source = match (&self.container, &self.url_env) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(config(
                    "backup needs exactly one source: container or url_env".into(),
                    "set backup.container (with user and database) or backup.url_env",
                ));
            }
            (None, Some(var)) => match env(var).filter(|v| !v.is_empty()) {
                Some(url) => Source::Url(Secret::new(url)),
                None => {
                    return Err(config(
                        format!("backup.url_env names {var}, which is unset or empty"),
                        "add the database URL as a secret and pass it in that variable",
                    ));
                }
            },
            (Some(name), None) => {
                let (Some(user), Some(database)) = (&self.user, &self.database) else {
                    return Err(config(
                        "backup.container needs backup.user and backup.database".into(),
                        "set backup.user and backup.database (the POSTGRES_USER / POSTGRES_DB of the container)",
                    ));
                };
                let password = match &self.password_env {
                    Some(var) => Some(Secret::new(env(var).filter(|v| !v.is_empty()).ok_or_else(
                        || {
                            config(
                                format!("backup.password_env names {var}, which is unset or empty"),
                                "pass the database password in that variable, or remove password_env",
                            )
                        },
                    )?)),
                    None => None,
                };
                Source::Container {
                    name: name.clone(),
                    user: user.clone(),
                    database: database.clone(),
                    password,
                }
            }
        };
        let encryption = match &self.encryption_key_env {
            Some(var) => Some(Secret::new(
                env(var)
                    .filter(|v| !v.trim().is_empty())
                    .ok_or(BackupError::KeyMissing)?,
            )),
            None => None,
        };
        let spec = BackupSpec {
            source,
            dir: self.dir.clone(),
            verify: self.verify,
            encryption,
            keep: self.keep,
            max_age: self
                .max_age_days
                .map(|d| chrono::Duration::days(i64::from(d))),
            pg_bin: self.pg_bin.clone(),
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> BackupSettings {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn container_settings_with_defaults() {
        let s = parse(
            r#"
            dir = "/var/backups/davit/shop"
            container = "shop-db"
            user = "app"
            database = "shop"
            "#,
        );
        assert!(s.required);
        assert_eq!((s.keep, s.verify), (7, VerifyLevel::Restore));
        let spec = s.spec(|_| None).unwrap();
        assert!(matches!(
            spec.source,
            Source::Container { password: None, .. }
        ));
        assert!(spec.encryption.is_none());
    }

    #[test]
    fn empty_encryption_key_fails_closed() {
        let s = parse(
            r#"
            dir = "/b"
            url_env = "DATABASE_URL"
            verify = "read"
            encryption_key_env = "DAVIT_BACKUP_KEY"
            keep = 3
            max_age_days = 30
            "#,
        );
        let env = |k: &str| match k {
            "DATABASE_URL" => Some("postgres://a:b@h/d".to_string()),
            "DAVIT_BACKUP_KEY" => Some("  ".to_string()),
            _ => None,
        };
        assert!(matches!(s.spec(env), Err(BackupError::KeyMissing)));
        let env = |k: &str| (k == "DATABASE_URL").then(|| "postgres://a:b@h/d".to_string());
        assert!(matches!(s.spec(env), Err(BackupError::KeyMissing)));
    }

    #[test]
    fn unknown_or_ambiguous_settings_are_refused() {
        assert!(toml::from_str::<BackupSettings>("dir = \"/b\"\npassword = \"x\"").is_err());
        let s = parse("dir = \"/b\"\ncontainer = \"c\"\nurl_env = \"U\"");
        assert!(s.spec(|_| Some("x".into())).is_err());
        let s = parse("dir = \"relative\"\ncontainer = \"c\"\nuser = \"u\"\ndatabase = \"d\"");
        let e = s.spec(|_| None).unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }
}
