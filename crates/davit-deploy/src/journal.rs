//! The switch journal: write-ahead records of blue-green switches.
//!
//! A switch is steps that cannot be one: rename the candidate site file over the live one,
//! reload nginx, verify through the public path. A run killed between them leaves the host
//! half-way, and the site file alone cannot say whether that happened. So the plan appends an
//! intent record before the rename (which color, release and version it makes live, and what
//! was live), a done record after the verify, and, as the intent's undo, a reverted record when
//! a failed plan puts traffic back. The next run reads the last record: an intent with nothing
//! after it is a switch cut short, and what nginx serves says how far it got. Serving the
//! intended release, the switch took effect and the run finishes it (the ledger records the
//! release, see [`crate::truth`]); serving anything else, it did not, and the run reverts it
//! (the site file is rewritten from what serves). Either way it appends a found record saying
//! what it found and what it did.
//!
//! The journal is a file of its own beside the site file, not part of the ledger: the ledger is
//! the history of releases (`davit releases`), which a switch's phases would only clutter, and
//! an older davit reading it would take the new lines for torn ones.

use crate::nginx::{Files, LiveSite};
use crate::target::Target;
use davit_core::Failure;
use davit_exec::Executor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a switch got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// About to rename the candidate over the live site file and reload (write-ahead).
    Intent,
    /// Verified through the public path.
    Done,
    /// A failed plan put the previous site file back and reloaded.
    Reverted,
    /// A later run found the switch cut short; `note` says what it found and did.
    Found,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub phase: Phase,
    /// What the switch makes live.
    pub to: LiveSite,
    /// What was live before it (None on a first deploy).
    #[serde(default)]
    pub from: Option<LiveSite>,
    /// RFC 3339 UTC.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Entry {
    pub fn new(phase: Phase, to: LiveSite, from: Option<LiveSite>) -> Entry {
        Entry {
            phase,
            to,
            from,
            at: crate::ledger::now(),
            note: None,
        }
    }

    /// The same switch in another phase.
    pub fn with_phase(&self, phase: Phase) -> Entry {
        Entry {
            phase,
            ..self.clone()
        }
    }

    /// The journal line (no newline).
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("journal entries serialize")
    }
}

pub fn path(t: &Target) -> PathBuf {
    Files::of(t).dir.join("switches.jsonl")
}

/// The switch cut short, if the journal's last readable record is an intent.
pub fn interrupted(text: &str) -> Option<Entry> {
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| e.phase == Phase::Intent)
}

/// Read the journal of `t` for a switch cut short (read-only).
pub async fn read_interrupted(exec: &dyn Executor, t: &Target) -> Result<Option<Entry>, Failure> {
    let bytes = exec
        .read_file(&path(t))
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    Ok(bytes.and_then(|b| interrupted(&String::from_utf8_lossy(&b))))
}

fn site(s: &LiveSite) -> String {
    format!("{} ({}, release {})", s.color, s.version, s.release)
}

/// What a switch cut short means now that `serving` answers, said before anything changes.
pub fn describe(e: &Entry, serving: Option<&LiveSite>) -> String {
    let took = match serving {
        Some(s) if *s == e.to => "it took effect: nginx serves it",
        Some(_) => "it did not take effect: nginx serves what was live before",
        None => "nginx does not say what it serves",
    };
    format!(
        "a switch to {} was cut short (a run killed between its write-ahead record at {} and its end); {took}",
        site(&e.to),
        e.at
    )
}

/// Finish or revert a switch cut short, from what serves, and record what was found and done
/// (never in a dry run). The site file and the ledger are already repaired from what serves
/// ([`crate::truth::repair`]); this says which way the switch went. Nothing is recorded while
/// nginx does not say what it serves: the next run decides.
pub async fn settle(
    exec: &dyn Executor,
    t: &Target,
    e: &Entry,
    serving: Option<&LiveSite>,
    warnings: &mut Vec<String>,
) -> Result<(), Failure> {
    let Some(serving) = serving else {
        return Ok(());
    };
    let did = if *serving == e.to {
        format!(
            "finished it: {} is live and the ledger records it",
            site(&e.to)
        )
    } else {
        format!(
            "reverted it: the site file names what serves, {}",
            site(serving)
        )
    };
    let mut found = e.with_phase(Phase::Found);
    found.at = crate::ledger::now();
    found.note = Some(format!("{}; {did}", describe(e, Some(serving))));
    exec.append_line(&path(t), &found.line())
        .await
        .map_err(|err| Failure::infra(format!("cannot write the switch journal: {err}")))?;
    warnings.push(format!("the switch to {} cut short: {did}", site(&e.to)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(color: &str, version: &str) -> LiveSite {
        LiveSite {
            color: color.into(),
            release: format!("r-{version}"),
            version: version.into(),
        }
    }

    #[test]
    fn only_an_intent_with_nothing_after_it_is_a_switch_cut_short() {
        let intent = Entry::new(Phase::Intent, live("green", "v2"), Some(live("blue", "v1")));
        let text = |phases: &[Phase]| {
            phases
                .iter()
                .map(|p| intent.with_phase(*p).line() + "\n")
                .collect::<String>()
        };
        assert_eq!(interrupted(&text(&[Phase::Intent])), Some(intent.clone()));
        for after in [Phase::Done, Phase::Reverted, Phase::Found] {
            assert_eq!(interrupted(&text(&[Phase::Intent, after])), None);
        }
        // A torn last line (a crash mid-append) is not a record: the one before it counts.
        let torn = format!("{}{{\"phase\":\"do", text(&[Phase::Intent]));
        assert_eq!(interrupted(&torn), Some(intent.clone()));
        assert_eq!(interrupted(""), None);
    }

    #[test]
    fn what_serves_says_which_way_it_went() {
        let e = Entry::new(Phase::Intent, live("green", "v2"), Some(live("blue", "v1")));
        assert!(describe(&e, Some(&live("green", "v2"))).contains("it took effect"));
        assert!(describe(&e, Some(&live("blue", "v1"))).contains("did not take effect"));
    }
}
