//! Untrusted triggers (T07): the privileged steps refuse to run for code that is not the
//! repository's own.
//!
//! A deploy, rollback, verify, backup, lock release, approval or registry push holds production
//! or registry credentials. On GitHub Actions some triggers hand such a step code or data that a
//! stranger wrote:
//!
//! * `pull_request` (and `pull_request_review`, `pull_request_review_comment`) for a pull request
//!   from a fork: the checkout is the fork's code. GitHub withholds secrets by default, but a
//!   repository setting, a self-hosted runner or an ssh key in a runner image can still expose
//!   production. Refused, with no override: that is the point.
//! * `pull_request_target`: runs the base branch's workflow *with* secrets and a write token. It
//!   is safe only while the checked-out code is the base branch's. Refused when the commit
//!   checked out in `$GITHUB_WORKSPACE` (or in a folder the step reads code from, such as the one
//!   holding `davit.toml`) is the pull request's head, its merge commit, or a merge of its head;
//!   refused as well when that commit cannot be read (fail closed).
//! * `workflow_run` whose triggering run came from a fork (`workflow_run.head_repository` is not
//!   `workflow_run.repository`): its artifacts and outputs were produced by the fork's code.
//!
//! Every other trigger (push, workflow_dispatch, release, schedule, merge_group, ...) runs the
//! repository's own code and passes. Off Actions (`GITHUB_ACTIONS` not `true`: a laptop) nothing
//! is checked. A payload that cannot be read or lacks the fields above, under one of those pull
//! request triggers, is refused.
//!
//! The refusal is [`Exit::BadInput`](davit_core::Exit) (2): the fix is in the workflow (its
//! trigger or its checkout), and running it again unchanged will not pass. Strings from the
//! payload that the fork controls (branch names, titles) are never printed; repository names
//! and commit ids are printed only after reducing them to safe characters, so a message cannot
//! carry a workflow command.
//!
//! The decision ([`decide`]) is pure and lives here; `payload` reads where a pull request or
//! triggering run comes from, `text` reduces what may be printed, and `runner` reads the run's
//! environment, event file and checkouts before asking for the decision ([`guard`]).

mod payload;
mod runner;
mod text;

use davit_core::Failure;
use payload::{Origin, fork_phrase, pull_request_origin, str_at, workflow_run_origin};
use serde_json::Value;
use text::{is_sha, printable, safe_name, short};

pub use runner::{assess, folder_of, git_checkout, guard};

/// The commit checked out in a working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// `HEAD`'s commit id (lowercase hex).
    pub head: String,
    /// Its parents, read from the commit object itself (present even in a shallow clone, where
    /// the parent commits are not).
    pub parents: Vec<String>,
}

/// A folder whose code a step runs or reads, and what is checked out there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDir {
    /// How messages name it (`$GITHUB_WORKSPACE`, or the path).
    pub label: String,
    /// The checkout, or why it could not be read.
    pub checkout: Result<Checkout, String>,
}

/// What started this run, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Trigger<'a> {
    /// `GITHUB_EVENT_NAME`.
    pub event: &'a str,
    /// The text of the event payload (`GITHUB_EVENT_PATH`), or why it could not be read.
    /// Consulted only for the pull request triggers.
    pub payload: Result<&'a str, &'a str>,
    /// The checkouts the step uses. Consulted only for `pull_request_target`.
    pub code: &'a [CodeDir],
}

/// The verdict on a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not on GitHub Actions, or no event: nothing to judge.
    Skipped,
    /// The code and inputs are the repository's own.
    Trusted,
    /// The step must not run.
    Refused(Refusal),
}

/// Why a trigger is refused and how to proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The event name (safe characters only).
    pub event: String,
    /// Completes "refusing to <action> from a <event> run ...".
    pub reason: String,
    pub hint: String,
}

impl Refusal {
    /// The error every binary prints and exits with (exit code 2).
    pub fn failure(&self, action: &str) -> Failure {
        Failure::bad_input(
            format!(
                "refusing to {action} from a {} run {}",
                self.event, self.reason
            ),
            self.hint.clone(),
        )
    }
}

impl Decision {
    /// `Err` with the refusal as a [`Failure`] for `action` ("deploy", "push an image").
    pub fn into_result(self, action: &str) -> Result<(), Failure> {
        match self {
            Decision::Refused(r) => Err(r.failure(action)),
            Decision::Skipped | Decision::Trusted => Ok(()),
        }
    }
}

/// Triggers whose checkout is the pull request's code, without secrets by default.
const PULL_REQUEST_EVENTS: [&str; 3] = [
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
];

/// Whether an event is one that this module looks into (the others are trusted unread).
pub fn scrutinized(event: &str) -> bool {
    PULL_REQUEST_EVENTS.contains(&event)
        || event == "pull_request_target"
        || event == "workflow_run"
}

const FORK_HINT: &str = "run this step on a trusted trigger once the change \
     is merged (push to the default branch, workflow_dispatch or release) and keep fork pull \
     requests to steps without credentials (gate, image without push); there is no override for \
     forks";

const TARGET_HINT: &str = "check out the base branch instead (actions/checkout \
     without `ref:` does that under pull_request_target), or run this step on push, \
     workflow_dispatch or release; build and test pull request code in a pull_request workflow, \
     which gets no secrets";

const UNKNOWN_CHECKOUT_HINT: &str = "check out the base branch with actions/checkout \
     (without `ref:`) before this step so davit can confirm the code is the repository's own, or \
     run this step on push, workflow_dispatch or release";

const PAYLOAD_HINT: &str = "the GitHub runner writes this file for every job; run \
     this step in an ordinary job, or on push, workflow_dispatch or release";

/// The decision over a trigger: pure, for every case the module docs list.
pub fn decide(t: &Trigger<'_>) -> Decision {
    let event = t.event.trim();
    if event.is_empty() {
        return Decision::Skipped;
    }
    if !scrutinized(event) {
        return Decision::Trusted;
    }
    let shown = safe_name(event);
    let refuse = |reason: String, hint: &str| {
        Decision::Refused(Refusal {
            event: shown.clone(),
            reason,
            hint: hint.to_string(),
        })
    };
    let malformed = |detail: &str| {
        refuse(
            format!(
                "whose event payload ($GITHUB_EVENT_PATH) cannot be used ({}): davit cannot tell \
                 whether the code comes from a fork",
                printable(detail, 200)
            ),
            PAYLOAD_HINT,
        )
    };
    let payload: Value = match t.payload {
        Err(why) => return malformed(why),
        Ok(text) => match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return malformed("it is not a JSON object"),
            Err(e) => return malformed(&format!("not JSON: {e}")),
        },
    };

    if event == "workflow_run" {
        return match workflow_run_origin(&payload) {
            Err(detail) => malformed(&detail),
            Ok(Origin::Own) => Decision::Trusted,
            Ok(Origin::Fork { head, base, via }) => refuse(
                format!(
                    "triggered by a {via} run from {} (into {base}): its artifacts and outputs \
                     come from untrusted code",
                    fork_phrase(head.as_deref())
                ),
                FORK_HINT,
            ),
        };
    }

    let Some(pr) = payload.get("pull_request").filter(|v| v.is_object()) else {
        return malformed("it has no pull_request object");
    };
    let origin = match pull_request_origin(pr) {
        Ok(o) => o,
        Err(detail) => return malformed(&detail),
    };

    if event != "pull_request_target" {
        return match origin {
            Origin::Own => Decision::Trusted,
            Origin::Fork { head, base, .. } => refuse(
                format!(
                    "for a pull request from {} (into {base}): its code and inputs are \
                     untrusted and must not reach production or registry credentials",
                    fork_phrase(head.as_deref())
                ),
                FORK_HINT,
            ),
        };
    }

    // pull_request_target: the base branch's workflow with secrets; safe only on base code.
    let Some(head_sha) = str_at(pr, &["head", "sha"]).filter(|s| is_sha(s)) else {
        return malformed("pull_request.head.sha is missing or not a commit id");
    };
    let head_sha = head_sha.to_ascii_lowercase();
    let merge_sha = str_at(pr, &["merge_commit_sha"])
        .filter(|s| is_sha(s))
        .map(str::to_ascii_lowercase);
    let whose = match origin {
        Origin::Own => "the pull request",
        Origin::Fork { .. } => "a fork",
    };
    for dir in t.code {
        let Ok(c) = &dir.checkout else { continue };
        let head = c.head.to_ascii_lowercase();
        let what = if head == head_sha {
            "the pull request's head"
        } else if merge_sha.as_deref() == Some(head.as_str()) {
            "the pull request's merge commit"
        } else if c.parents.iter().any(|p| p.eq_ignore_ascii_case(&head_sha)) {
            "a merge of the pull request's head"
        } else {
            continue;
        };
        return refuse(
            format!(
                "that checked out {what} ({}) in {}: code from {whose} would run with this \
                 workflow's secrets",
                short(&head),
                dir.label
            ),
            TARGET_HINT,
        );
    }
    let unknown = t.code.iter().find_map(|d| match &d.checkout {
        Err(why) => Some((d.label.as_str(), why.as_str())),
        Ok(_) => None,
    });
    match (t.code.is_empty(), unknown) {
        (true, _) => refuse(
            "but no checkout was given to inspect: it could be the pull request's code, which \
             would run with this workflow's secrets"
                .to_string(),
            UNKNOWN_CHECKOUT_HINT,
        ),
        (false, Some((label, why))) => refuse(
            format!(
                "but the commit checked out in {label} cannot be read ({}): it could be the pull \
                 request's code, which would run with this workflow's secrets",
                printable(why, 200)
            ),
            UNKNOWN_CHECKOUT_HINT,
        ),
        (false, None) => Decision::Trusted,
    }
}

#[cfg(test)]
mod tests;
