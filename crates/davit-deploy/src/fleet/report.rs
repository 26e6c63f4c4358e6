//! What a fleet operation reports: each host's state when the hosts did not converge, read
//! as one line per host, and the lock warnings that go with the result.
//!
//! Kept apart from the orchestration so the wording users read when something went wrong is
//! in one place and tested without hosts.

use crate::Report;
use davit_core::Failure;
use std::fmt::Write as _;

/// What happened on one host, for the report when the fleet did not converge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    /// Nothing was done; the host serves what it served.
    Untouched { serving: Option<String> },
    /// The new release went live here.
    Deployed { version: String },
    /// The host's own deploy (or rollback) failed. `serving` is what it served when davit looked
    /// again afterwards, or, when `checked` is false, what it served before (it did not answer).
    Failed {
        error: String,
        serving: Option<String>,
        checked: bool,
    },
    /// Did not answer when davit looked again after the failure.
    Unknown { before: Option<String> },
    /// The host had switched and was rolled back.
    RolledBack { to: String },
    /// Still on the new release: the rollback failed, or there was nothing to go back to.
    StillOnNew { version: String, why: String },
}

impl HostState {
    pub(super) fn describe(&self) -> String {
        let serving = |s: &Option<String>| match s {
            Some(v) => format!("serving {v}"),
            None => "serving nothing yet".into(),
        };
        match self {
            HostState::Untouched { serving: s } => format!("not deployed, {}", serving(s)),
            HostState::Deployed { version } => format!("deployed, serving {version}"),
            HostState::Failed {
                error,
                serving: s,
                checked: true,
            } => format!("FAILED ({}), {}", one_line(error), serving(s)),
            HostState::Failed {
                error,
                serving: s,
                checked: false,
            } => format!(
                "FAILED ({}), not answering now, so not checked ({} before)",
                one_line(error),
                serving(s)
            ),
            HostState::Unknown { before } => format!(
                "NOT ANSWERING now, so not checked ({} before)",
                serving(before)
            ),
            HostState::RolledBack { to } => format!("rolled back, serving {to}"),
            HostState::StillOnNew { version, why } => {
                format!("STILL SERVING {version}: {why}")
            }
        }
    }

    pub(super) fn mixed(&self) -> bool {
        matches!(self, HostState::StillOnNew { .. })
    }
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A whole error on one line: an undo that failed too is part of the story.
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `  web-1: deployed, serving 1.4`, one line per host.
pub fn describe_states(hosts: &[(String, HostState)]) -> String {
    let mut out = String::new();
    for (h, s) in hosts {
        let _ = writeln!(out, "  {h}: {}", s.describe());
    }
    out
}

/// Lock warnings go with the reports on success, and into the error on failure: a lock left
/// on an unreachable host is part of what the user must know to recover.
pub(super) fn with_warnings(
    result: Result<Vec<Report>, Failure>,
    warnings: Vec<String>,
) -> Result<Vec<Report>, Failure> {
    match result {
        Ok(mut reports) => {
            if let Some(r) = reports.first_mut() {
                r.warnings.extend(warnings);
            }
            Ok(reports)
        }
        Err(mut e) => {
            for w in warnings {
                e.message.push('\n');
                e.message.push_str(&w);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_a_list_and_only_still_on_new_is_mixed() {
        let states = vec![
            (
                "web-1".to_string(),
                HostState::RolledBack { to: "1.0".into() },
            ),
            (
                "web-2".to_string(),
                HostState::Failed {
                    error: "health gate failed\nmore".into(),
                    serving: Some("1.0".into()),
                    checked: true,
                },
            ),
            (
                "web-3".to_string(),
                HostState::Untouched {
                    serving: Some("1.0".into()),
                },
            ),
        ];
        assert_eq!(
            describe_states(&states),
            "  web-1: rolled back, serving 1.0\n  web-2: FAILED (health gate failed more), serving 1.0\n  web-3: not deployed, serving 1.0\n"
        );
        assert!(!states.iter().any(|(_, s)| s.mixed()));
        assert!(
            HostState::StillOnNew {
                version: "2.0".into(),
                why: "x".into()
            }
            .mixed()
        );
    }
}
