//! Typed backup errors, each with the fix in [`BackupError::hint`].
//!
//! Every message that can carry text from a tool (pg_dump's stderr, age's complaints) goes
//! through `scrub` first, so a password or key that a tool chose to echo is replaced by
//! `[REDACTED]` before it reaches a log, an annotation or a step summary (T08).

use crate::VerifyLevel;
use davit_core::{Exit, Failure};
use davit_exec::ExecError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup configuration: {message}")]
    Config { message: String, hint: String },
    #[error("backup source URL is not valid: {reason}")]
    InvalidUrl { reason: String },
    #[error("backup encryption is configured but the key is empty or missing")]
    KeyMissing,
    #[error("backup encryption key is not a valid age identity")]
    KeyInvalid,
    #[error("backup {id} was encrypted for {expected}, the configured key is for {actual}")]
    WrongKey {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("{host}: tools needed for backups are missing: {}", .tools.join(", "))]
    MissingTools { host: String, tools: Vec<String> },
    #[error("{host}: {what} failed (exit {status}){}", tail(.stderr))]
    Tool {
        host: String,
        what: &'static str,
        status: i32,
        stderr: String,
    },
    #[error("{host}: no space left while writing the dump in {dir}; the partial file was removed")]
    DiskFull { host: String, dir: String },
    #[error("{host}: the dump failed {level} verification: {reason}; the partial file was removed")]
    Verify {
        host: String,
        level: VerifyLevel,
        reason: String,
    },
    #[error("the restored copy does not match the source: {}", .diffs.join("; "))]
    RowCountMismatch { diffs: Vec<String> },
    #[error("backup {id} not found in {dir}")]
    NotFound { id: String, dir: String },
    #[error(
        "backup {id}: {file} changed since it was verified (sha256 {actual}, manifest says {expected})"
    )]
    ChecksumMismatch {
        id: String,
        file: String,
        expected: String,
        actual: String,
    },
    #[error("manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("refusing to restore over database {target}: it already has {tables} table(s)")]
    TargetNotEmpty { target: String, tables: u64 },
    #[error("no verified backup in {dir}{}", .why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    NoVerifiedBackup { dir: String, why: Option<String> },
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl BackupError {
    /// What the user can do about it; printed as `hint:` by the binaries.
    pub fn hint(&self) -> String {
        match self {
            BackupError::Config { hint, .. } => hint.clone(),
            BackupError::InvalidUrl { .. } => {
                "use postgres://user:password@host:5432/dbname (percent-encode special characters in the password)".into()
            }
            BackupError::KeyMissing => "set the secret named by backup.encryption_key_env to an age identity (AGE-SECRET-KEY-1..., from `age-keygen`), or remove backup.encryption_key_env to store backups unencrypted".into(),
            BackupError::KeyInvalid => "the key must be an age identity line AGE-SECRET-KEY-1... as printed by `age-keygen`".into(),
            BackupError::WrongKey { .. } => "restore with the key the backup was made with; nothing was restored".into(),
            BackupError::MissingTools { tools, .. } => format!(
                "install them on the database host (Debian: apt-get install {}), or set backup.pg_bin to the PostgreSQL client directory",
                debian_packages(tools).join(" ")
            ),
            BackupError::Tool { what, stderr, .. } => {
                if stderr.contains("password authentication failed") || stderr.contains("no password supplied") {
                    "check the database password in the backup source secret".into()
                } else if stderr.contains("permission denied to create database") {
                    "verify = \"restore\" needs a role with CREATEDB (ALTER ROLE ... CREATEDB), or set backup.verify = \"read\"".into()
                } else if stderr.contains("server version") && stderr.contains("mismatch") {
                    "pg_dump must be at least the server's major version: set backup.pg_bin to a newer client".into()
                } else {
                    format!("{what} failed; migrations are blocked until a verified backup exists. Fix the cause above and deploy again")
                }
            }
            BackupError::DiskFull { dir, .. } => format!(
                "free space in {dir} (or point backup.dir at a larger disk) and deploy again; migrations are blocked until a verified backup exists"
            ),
            BackupError::Verify { .. } | BackupError::RowCountMismatch { .. } => {
                "the dump is unusable and was not kept; migrations are blocked. Check the database host's disk and memory, then deploy again".into()
            }
            BackupError::NotFound { .. } => "`davit backup list` shows the backup ids".into(),
            BackupError::ChecksumMismatch { .. } => {
                "the file was modified or damaged on disk; restore another backup (`davit backup list`)".into()
            }
            BackupError::Manifest { .. } => "remove the damaged manifest; the backup it describes is no longer considered verified".into(),
            BackupError::TargetNotEmpty { .. } => {
                "restore into a new database name, or pass --force to replace its contents (in one transaction)".into()
            }
            BackupError::NoVerifiedBackup { .. } => {
                "migrations run only after a verified backup of this deploy; fix the backup error and deploy again".into()
            }
            BackupError::Exec(_) => "check that the database host is reachable and the backup directory is writable".into(),
        }
    }

    /// Which exit code the binaries should use.
    pub fn exit(&self) -> Exit {
        match self {
            BackupError::Config { .. }
            | BackupError::InvalidUrl { .. }
            | BackupError::KeyMissing
            | BackupError::KeyInvalid
            | BackupError::WrongKey { .. }
            | BackupError::NotFound { .. }
            | BackupError::TargetNotEmpty { .. } => Exit::BadInput,
            BackupError::NoVerifiedBackup { .. } => Exit::Rejected,
            _ => Exit::Infra,
        }
    }
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        let hint = e.hint();
        Failure::new(e.exit(), e.to_string()).with_hint(hint)
    }
}

fn debian_packages(tools: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for t in tools {
        let p = match t.rsplit('/').next().unwrap_or(t) {
            "pg_dump" | "pg_restore" | "psql" => "postgresql-client",
            "age" | "age-keygen" => "age",
            "docker" => "docker.io",
            "sha256sum" | "wc" => "coreutils",
            "bash" => "bash",
            _ => continue,
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The last lines of a tool's stderr: enough to see why without flooding the log.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(6);
    format!(": {}", lines[start..].join("\n  "))
}

/// Replace every occurrence of a secret (and its percent-encoded form) in tool output.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, davit_core::secret::REDACTED);
        let enc = crate::source::percent_encode(s);
        if enc != *s {
            out = out.replace(&enc, davit_core::secret::REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_plain_and_encoded_secrets() {
        let s = scrub("FATAL: bad p@ss and p%40ss", &["p@ss"]);
        assert_eq!(s, "FATAL: bad [REDACTED] and [REDACTED]");
    }

    #[test]
    fn hints_name_the_fix() {
        let e = BackupError::MissingTools {
            host: "db".into(),
            tools: vec!["pg_dump".into(), "age".into(), "psql".into()],
        };
        assert!(e.hint().contains("apt-get install postgresql-client age"));
        let f: Failure = BackupError::KeyMissing.into();
        assert_eq!(f.exit, Exit::BadInput);
        assert!(f.to_string().contains("hint: set the secret"));
    }
}
