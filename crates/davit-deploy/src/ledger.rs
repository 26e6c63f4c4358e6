//! The release ledger: an append-only JSON-lines file on the host.
//!
//! Every deploy, failure, rollback and restore adds one line; nothing is rewritten, so the ledger
//! is an audit trail (who, what, when, outcome) and the single source for "the previous good
//! release". A line that cannot be parsed (a torn write after a crash) is skipped with a warning
//! rather than making the whole history unreadable.
//!
//! Appends are whole lines or nothing (T44): the executor cuts a torn tail (a write that never
//! finished) back to the last newline before the next record, cuts a write that fails part-way
//! (disk full) back to where it started, and reports success only after fsync. Records are
//! redacted of every known secret value before they are written (T46).

use serde::{Deserialize, Serialize};

/// What happened to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The release went live and passed its checks.
    Deployed,
    /// The deploy failed before or at the switch; traffic stayed where it was.
    Failed,
    /// The release was live and was rolled back away from (it is bad).
    RolledBack,
    /// A previous release was made live again by a rollback.
    Restored,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The release this line is about (a restore names the restored release).
    pub id: String,
    pub event: Event,
    pub version: String,
    pub image: String,
    #[serde(default)]
    pub digest: Option<String>,
    pub strategy: String,
    /// Blue-green color the release runs in.
    #[serde(default)]
    pub color: Option<String>,
    pub environment: String,
    #[serde(default)]
    pub host: String,
    /// RFC 3339 UTC.
    pub at: String,
    pub actor: String,
    /// Why (failure reason, rollback cause).
    #[serde(default)]
    pub reason: Option<String>,
    /// The approval decision that allowed it (production), as recorded by davit-approve.
    #[serde(default)]
    pub approval: Option<serde_json::Value>,
    /// The release's processes (web, workers, a scheduler) as davit started them; empty for a
    /// release of one web container. What runs now is read from the host's container labels
    /// (`davit status`); this is the history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessRecord>,
}

/// One process of a release, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub name: String,
    /// Containers of it.
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub web: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
    /// Its argv; None for the image's own command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

impl ProcessRecord {
    /// The records of a set's processes.
    pub fn of(set: &davit_config::AppSet) -> Vec<ProcessRecord> {
        set.processes
            .iter()
            .map(|p| ProcessRecord {
                name: p.name.clone(),
                replicas: p.replicas,
                web: p.web,
                singleton: p.singleton,
                command: p.command.clone(),
            })
            .collect()
    }
}

/// Parse ledger text; torn or foreign lines are returned separately so callers can warn.
pub fn parse(text: &str) -> (Vec<Record>, Vec<usize>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) => bad.push(i + 1),
        }
    }
    (records, bad)
}

/// Whether the ledger text ends in a fragment that is not a whole line (a write that never
/// finished); the next append cuts it (see the module docs).
pub fn has_torn_tail(text: &str) -> bool {
    !text.is_empty() && !text.ends_with('\n')
}

/// Append records as one write of whole lines (a rollback's "rolled back" and "restored" go in
/// together or not at all), with every known secret value masked.
pub async fn append(
    exec: &dyn davit_exec::Executor,
    path: &std::path::Path,
    records: &[Record],
) -> Result<(), davit_exec::ExecError> {
    exec.append_line(path, &lines(records)).await
}

/// Records as whole ledger lines (joined by newlines, no trailing one), every known secret
/// value masked: what [`append`] writes and what a plan's ledger step shows.
pub fn lines(records: &[Record]) -> String {
    let text: Vec<String> = records
        .iter()
        .map(|r| {
            davit_core::redact::redacted(&serde_json::to_string(r).expect("records serialize"))
        })
        .collect();
    text.join("\n")
}

/// The release that is live according to the ledger: the last one that went live.
pub fn live(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .rev()
        .find(|r| matches!(r.event, Event::Deployed | Event::Restored))
}

/// The release to roll back to: the most recent one that went live, is not `live_id`, and was
/// never rolled back away from. With `version`, the most recent good release of that version.
pub fn rollback_target<'a>(
    records: &'a [Record],
    live_id: Option<&str>,
    version: Option<&str>,
) -> Option<&'a Record> {
    let bad = |id: &str| {
        records
            .iter()
            .any(|r| r.id == id && r.event == Event::RolledBack)
    };
    records.iter().rev().find(|r| {
        matches!(r.event, Event::Deployed | Event::Restored)
            && Some(r.id.as_str()) != live_id
            && !bad(&r.id)
            && version.is_none_or(|v| r.version == v)
    })
}

/// A fresh release id: sortable time, version, and a random suffix against same-second clashes.
pub fn new_release_id(version: &str) -> String {
    let suffix: u16 = rand::random();
    format!(
        "{}-{version}-{suffix:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    )
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Who is deploying: the GitHub actor on a runner, the login user on a laptop.
pub fn actor() -> String {
    std::env::var("DAVIT_ACTOR")
        .or_else(|_| std::env::var("GITHUB_ACTOR"))
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|a| !a.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user from /etc/passwd (services and containers often have no
/// USER variable).
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, event: Event, version: &str) -> Record {
        Record {
            id: id.into(),
            event,
            version: version.into(),
            image: format!("app:{version}"),
            digest: None,
            strategy: "blue-green".into(),
            color: None,
            environment: "production".into(),
            host: "local".into(),
            at: "2026-01-01T00:00:00Z".into(),
            actor: "t".into(),
            reason: None,
            approval: None,
            processes: Vec::new(),
        }
    }

    #[test]
    fn rollback_skips_live_bad_and_failed_releases() {
        let records = vec![
            rec("1", Event::Deployed, "v1"),
            rec("2", Event::Deployed, "v2"),
            rec("x", Event::Failed, "vx"),
            rec("3", Event::Deployed, "v3"),
            rec("3", Event::RolledBack, "v3"),
            rec("2", Event::Restored, "v2"),
        ];
        assert_eq!(live(&records).unwrap().id, "2");
        assert_eq!(rollback_target(&records, Some("2"), None).unwrap().id, "1");
        assert_eq!(
            rollback_target(&records, Some("2"), Some("v1")).unwrap().id,
            "1"
        );
        assert!(rollback_target(&records, Some("2"), Some("v3")).is_none());
        assert!(rollback_target(&records[..1], Some("1"), None).is_none());
    }

    #[test]
    fn torn_lines_are_reported_not_fatal() {
        let good = serde_json::to_string(&rec("1", Event::Deployed, "v1")).unwrap();
        let text = format!("{good}\n{{\"id\":\"2\",\"ev\n\n{good}\n");
        let (records, bad) = parse(&text);
        assert_eq!(records.len(), 2);
        assert_eq!(bad, vec![2]);
    }
}
