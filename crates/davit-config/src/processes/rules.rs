//! The small rules that both the table checks and resolution apply: which stop signals exist,
//! what looks like a scheduler, how a `ready` table becomes a [`Readiness`], the defaults, and
//! the list problems are collected in.
//!
//! One home for them so that `davit check` and a deploy can never disagree on what is valid
//! (a signal accepted when the file is read must be the one the deploy sends).

use super::spec::Readiness;
use super::tables::{ReadyConfig, default_ready_timeout};
use davit_core::validate;

pub(super) const SIGNALS: [&str; 9] = [
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGSTOP",
];
pub(super) const DEFAULT_GRACE: u64 = 30;
pub(super) const DEFAULT_UP_SECS: u64 = 5;

/// Every problem found, each with its fix: resolution goes on after one so that a team sees
/// all of them at once, like the rest of the config's validation.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    pub(super) fn push(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }
    pub(super) fn check(&mut self, r: Result<(), validate::Invalid>) {
        if let Err(e) = r {
            self.0.push(e.to_string());
        }
    }
}

/// `SIGTERM` from `SIGTERM`, `TERM` or `15`.
pub(super) fn signal(v: &str) -> Option<String> {
    let up = v.trim().to_ascii_uppercase();
    let named = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if SIGNALS.contains(&named.as_str()) {
        return Some(named);
    }
    match v.trim() {
        "15" => Some("SIGTERM".into()),
        "2" => Some("SIGINT".into()),
        "3" => Some("SIGQUIT".into()),
        "1" => Some("SIGHUP".into()),
        "9" => Some("SIGKILL".into()),
        _ => None,
    }
}

/// Words that name a scheduler: running two of them fires every job twice.
pub(super) fn looks_like_scheduler(name: &str, command: Option<&[String]>) -> bool {
    let words = ["beat", "scheduler", "clock", "cron"];
    let hit = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| words.contains(&w.to_ascii_lowercase().as_str()))
    };
    hit(name) || command.is_some_and(|c| c.iter().any(|a| hit(a)))
}

pub(super) fn readiness(r: Option<&ReadyConfig>, compose_health: bool) -> Readiness {
    match r {
        Some(r) if r.healthcheck => Readiness::Healthcheck {
            timeout_secs: r.timeout_secs,
        },
        Some(ReadyConfig {
            command: Some(c),
            timeout_secs,
            ..
        }) => Readiness::Command {
            run: c.clone(),
            timeout_secs: *timeout_secs,
        },
        Some(ReadyConfig {
            up_secs: Some(s), ..
        }) => Readiness::UpFor { secs: *s },
        _ if compose_health => Readiness::Healthcheck {
            timeout_secs: default_ready_timeout(),
        },
        _ => Readiness::UpFor {
            secs: DEFAULT_UP_SECS,
        },
    }
}
