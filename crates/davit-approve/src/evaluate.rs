//! The approval decision as a pure function of what GitHub shows.
//!
//! No I/O and no clock of its own: the polling loop hands in the issue, its comments, the team
//! members it could (or could not) expand and the current time, and gets back approved, denied
//! or pending. Every bypass attempt in T13 is a plain unit test here. The rules, each one
//! failing closed:
//! - a closed or locked issue denies, and so does any team that could not be expanded;
//! - only comments created inside the window (from the request to the deadline) count, and only
//!   their author and creation time: an edited comment is ignored, whatever it says now;
//! - the whole trimmed first line is the vote (`approve`, `lgtm`, ... / `deny`, `reject`, ...);
//! - approvals count from listed users and expanded team members, distinct, never from the
//!   requester unless self-approval is allowed, never from the account that opened the issue;
//! - a deny from an approver (or from the requester, withdrawing) ends the wait as denied;
//! - past the deadline without enough approvals, the answer is denied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::{Policy, TeamRef, Word, word_of};

/// The approval issue as the gate sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueView {
    pub open: bool,
    pub locked: bool,
    pub created_at: DateTime<Utc>,
    /// The account that opened it (davit's token).
    pub author: String,
}

/// One comment as the gate sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentView {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Seen earlier with a different body. GitHub timestamps have whole seconds, so an edit in
    /// the creation second keeps `updated_at == created_at`; the poller catches those.
    pub body_changed: bool,
}

/// Team expansion results: members, or why the lookup failed.
pub type TeamMembers = BTreeMap<TeamRef, Result<Vec<String>, String>>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Approved {
        by: Vec<String>,
        at: DateTime<Utc>,
    },
    Denied {
        reason: String,
        by: Option<String>,
        at: DateTime<Utc>,
    },
    Pending,
}

/// A comment that said approve or deny but did not count, and why (for the log and the issue).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ignored {
    pub comment_id: u64,
    pub author: String,
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub ignored: Vec<Ignored>,
}

/// When approvals stop counting.
pub fn deadline(policy: &Policy, issue: &IssueView) -> DateTime<Utc> {
    issue.created_at + chrono::Duration::from_std(policy.timeout).unwrap_or(chrono::Duration::MAX)
}

pub fn evaluate(
    policy: &Policy,
    issue: &IssueView,
    comments: &[CommentView],
    now: DateTime<Utc>,
    teams: &TeamMembers,
) -> Evaluation {
    let denied = |reason: String, by: Option<String>, at: DateTime<Utc>| Evaluation {
        verdict: Verdict::Denied { reason, by, at },
        ignored: Vec::new(),
    };
    // A team we could not expand might hold an approver or not; either way we cannot know, so
    // nobody is treated as approved through it.
    for team in &policy.teams {
        match teams.get(team) {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return denied(
                    format!("could not expand team {team} ({e}); failing closed"),
                    None,
                    now,
                );
            }
            None => {
                return denied(
                    format!("team {team} was not expanded; failing closed"),
                    None,
                    now,
                );
            }
        }
    }
    if !issue.open {
        return denied("the approval issue was closed".into(), None, now);
    }
    if issue.locked {
        return denied("the approval issue was locked".into(), None, now);
    }

    let deadline = deadline(policy, issue);
    let bot = issue.author.to_lowercase();
    let is_approver = |login: &str| {
        policy.users.iter().any(|u| u == login)
            || policy.teams.iter().any(|t| {
                matches!(teams.get(t), Some(Ok(m)) if m.iter().any(|x| x.eq_ignore_ascii_case(login)))
            })
    };

    let mut ordered: Vec<&CommentView> = comments.iter().collect();
    ordered.sort_by_key(|c| (c.created_at, c.id));
    let mut ignored = Vec::new();
    let mut approvals: Vec<String> = Vec::new();
    for c in ordered {
        let Some(word) = word_of(&c.body) else {
            continue;
        };
        let author = c.author.to_lowercase();
        let mut ignore = |why: &'static str| {
            ignored.push(Ignored {
                comment_id: c.id,
                author: c.author.clone(),
                why,
            })
        };
        if c.created_at < issue.created_at {
            ignore("written before the request");
            continue;
        }
        if c.created_at > deadline {
            ignore("written after the deadline");
            continue;
        }
        if c.updated_at != c.created_at || c.body_changed {
            ignore("edited");
            continue;
        }
        if author == bot {
            ignore("written by the account that opened the request");
            continue;
        }
        let requester = author == policy.requested_by;
        match word {
            Word::Deny if is_approver(&author) || requester => {
                return Evaluation {
                    verdict: Verdict::Denied {
                        reason: format!("denied by @{}", c.author),
                        by: Some(c.author.clone()),
                        at: c.created_at,
                    },
                    ignored,
                };
            }
            Word::Deny => ignore("not an approver"),
            Word::Approve if !is_approver(&author) => ignore("not an approver"),
            Word::Approve if requester && !policy.allow_self_approval => {
                ignore("self-approval is not allowed")
            }
            Word::Approve => {
                if !approvals.contains(&author) {
                    approvals.push(author);
                }
                if approvals.len() >= policy.min_approvals {
                    return Evaluation {
                        verdict: Verdict::Approved {
                            by: approvals,
                            at: c.created_at,
                        },
                        ignored,
                    };
                }
            }
        }
    }
    let verdict = if now >= deadline {
        Verdict::Denied {
            reason: format!(
                "timed out: {} of {} approval(s) before the deadline",
                approvals.len(),
                policy.min_approvals
            ),
            by: None,
            at: deadline,
        }
    } else {
        Verdict::Pending
    };
    Evaluation { verdict, ignored }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn team() -> TeamRef {
        TeamRef {
            org: "acme".into(),
            slug: "release".into(),
        }
    }

    fn policy(approvers: &str, min: usize) -> Policy {
        Policy::new(approvers, min, false, "carol", Duration::from_secs(600)).unwrap()
    }

    fn issue() -> IssueView {
        IssueView {
            open: true,
            locked: false,
            created_at: t(0),
            author: "github-actions[bot]".into(),
        }
    }

    fn c(id: u64, author: &str, body: &str, at: i64) -> CommentView {
        CommentView {
            id,
            author: author.into(),
            body: body.into(),
            created_at: t(at),
            updated_at: t(at),
            body_changed: false,
        }
    }

    fn no_teams() -> TeamMembers {
        TeamMembers::new()
    }

    fn run(p: &Policy, comments: &[CommentView], now: i64) -> Verdict {
        evaluate(p, &issue(), comments, t(now), &no_teams()).verdict
    }

    fn approved_by(v: &Verdict) -> Option<Vec<String>> {
        match v {
            Verdict::Approved { by, .. } => Some(by.clone()),
            _ => None,
        }
    }

    fn is_denied(v: &Verdict) -> bool {
        matches!(v, Verdict::Denied { .. })
    }

    #[test]
    fn a_listed_approver_approves() {
        let v = run(&policy("alice", 1), &[c(1, "Alice", "approve", 5)], 10);
        assert_eq!(
            v,
            Verdict::Approved {
                by: vec!["alice".into()],
                at: t(5)
            }
        );
    }

    #[test]
    fn nothing_yet_is_pending_until_the_deadline_then_denied() {
        let p = policy("alice", 1);
        assert_eq!(run(&p, &[], 10), Verdict::Pending);
        assert_eq!(
            run(&p, &[c(1, "alice", "looks good to me", 5)], 10),
            Verdict::Pending
        );
        let v = run(&p, &[], 600);
        assert!(is_denied(&v), "{v:?}");
        assert!(format!("{v:?}").contains("timed out"));
    }

    #[test]
    fn t13_non_approver_approve_is_ignored() {
        let p = policy("alice", 1);
        let e = evaluate(
            &p,
            &issue(),
            &[c(1, "mallory", "approve", 5)],
            t(10),
            &no_teams(),
        );
        assert_eq!(e.verdict, Verdict::Pending);
        assert_eq!(e.ignored[0].why, "not an approver");
        assert!(is_denied(&run(&p, &[c(1, "mallory", "approve", 5)], 600)));
    }

    #[test]
    fn t13_self_approval_is_off_by_default() {
        let p = policy("alice, carol", 1);
        let e = evaluate(
            &p,
            &issue(),
            &[c(1, "Carol", "approve", 5)],
            t(10),
            &no_teams(),
        );
        assert_eq!(e.verdict, Verdict::Pending);
        assert_eq!(e.ignored[0].why, "self-approval is not allowed");
        let mut allowed = p.clone();
        allowed.allow_self_approval = true;
        assert!(approved_by(&run(&allowed, &[c(1, "carol", "approve", 5)], 10)).is_some());
    }

    #[test]
    fn t13_edited_comments_are_ignored() {
        let p = policy("alice", 1);
        let mut edited = c(1, "alice", "approve", 5);
        edited.updated_at = t(7);
        assert_eq!(run(&p, &[edited], 10), Verdict::Pending);
        let mut same_second = c(2, "alice", "approve", 5);
        same_second.body_changed = true;
        assert_eq!(run(&p, &[same_second], 10), Verdict::Pending);
    }

    #[test]
    fn t13_failed_team_lookup_denies_and_is_never_read_as_a_user() {
        let p = policy("acme/release", 1);
        let mut teams = TeamMembers::new();
        teams.insert(team(), Err("HTTP 404".into()));
        // Even a comment from someone named like the team or its org does not count.
        let comments = [c(1, "acme", "approve", 5), c(2, "release", "approve", 6)];
        let v = evaluate(&p, &issue(), &comments, t(10), &teams).verdict;
        assert!(is_denied(&v), "{v:?}");
        assert!(format!("{v:?}").contains("could not expand team acme/release"));
        // A team missing from the map entirely fails closed too.
        assert!(is_denied(
            &evaluate(&p, &issue(), &comments, t(10), &no_teams()).verdict
        ));
    }

    #[test]
    fn team_members_approve() {
        let p = policy("acme/release", 1);
        let mut teams = TeamMembers::new();
        teams.insert(team(), Ok(vec!["Dave".into()]));
        let v = evaluate(&p, &issue(), &[c(1, "dave", "lgtm", 5)], t(10), &teams).verdict;
        assert_eq!(approved_by(&v), Some(vec!["dave".into()]));
    }

    #[test]
    fn t13_closed_or_locked_issue_denies_even_with_approvals() {
        let p = policy("alice", 1);
        let ok = [c(1, "alice", "approve", 5)];
        let mut closed = issue();
        closed.open = false;
        assert!(is_denied(
            &evaluate(&p, &closed, &ok, t(10), &no_teams()).verdict
        ));
        let mut locked = issue();
        locked.locked = true;
        assert!(is_denied(
            &evaluate(&p, &locked, &ok, t(10), &no_teams()).verdict
        ));
    }

    #[test]
    fn t13_late_and_early_approvals_do_not_count() {
        let p = policy("alice", 1);
        let e = evaluate(
            &p,
            &issue(),
            &[c(1, "alice", "approve", 601)],
            t(700),
            &no_teams(),
        );
        assert!(is_denied(&e.verdict));
        assert_eq!(e.ignored[0].why, "written after the deadline");
        let e = evaluate(
            &p,
            &issue(),
            &[c(1, "alice", "approve", -1)],
            t(10),
            &no_teams(),
        );
        assert_eq!(e.verdict, Verdict::Pending);
        // Exactly at the deadline still counts; seen late (slow poll) it still counts.
        assert!(approved_by(&run(&p, &[c(1, "alice", "approve", 600)], 900)).is_some());
    }

    #[test]
    fn min_approvals_are_distinct_people() {
        let p = policy("alice, bob", 2);
        let twice = [c(1, "alice", "approve", 5), c(2, "ALICE", "lgtm", 6)];
        assert_eq!(run(&p, &twice, 10), Verdict::Pending);
        let both = [c(1, "alice", "approve", 5), c(2, "bob", "/approve", 8)];
        assert_eq!(
            run(&p, &both, 10),
            Verdict::Approved {
                by: vec!["alice".into(), "bob".into()],
                at: t(8)
            }
        );
    }

    #[test]
    fn a_deny_from_an_approver_or_the_requester_ends_the_wait() {
        let p = policy("alice, bob", 2);
        let v = run(
            &p,
            &[c(1, "alice", "approve", 5), c(2, "bob", "deny", 6)],
            10,
        );
        assert_eq!(
            v,
            Verdict::Denied {
                reason: "denied by @bob".into(),
                by: Some("bob".into()),
                at: t(6)
            }
        );
        assert!(is_denied(&run(&p, &[c(1, "carol", "reject", 5)], 10)));
        // A stranger's deny is noise, not a veto.
        assert_eq!(run(&p, &[c(1, "mallory", "deny", 5)], 10), Verdict::Pending);
    }

    #[test]
    fn order_is_by_creation_time_not_list_order() {
        let p = policy("alice", 1);
        let v = run(
            &p,
            &[c(2, "alice", "approve", 9), c(1, "alice", "deny", 5)],
            10,
        );
        assert!(is_denied(&v), "{v:?}");
    }

    #[test]
    fn the_requesting_account_cannot_vote() {
        let p = policy("github-actions", 1);
        let mut i = issue();
        i.author = "github-actions".into();
        let e = evaluate(
            &p,
            &i,
            &[c(1, "github-actions", "approve", 5)],
            t(10),
            &no_teams(),
        );
        assert_eq!(e.verdict, Verdict::Pending);
    }
}
