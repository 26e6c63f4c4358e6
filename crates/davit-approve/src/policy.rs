//! Who may approve, how many must, and for how long the gate waits: parsed and checked before
//! anything is asked, so a gate nobody can pass (or everybody can) never opens (T12).

use std::time::Duration;

use crate::ApproveError;

/// An organization team, `org/team-slug`. Kept apart from usernames by type, so a team that
/// cannot be expanded can never be read as a login.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TeamRef {
    pub org: String,
    pub slug: String,
}

impl std::fmt::Display for TeamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.org, self.slug)
    }
}

/// Words that count, matched against a comment's whole trimmed first line, case-insensitive.
pub const APPROVE_WORDS: [&str; 4] = ["approve", "approved", "lgtm", "/approve"];
pub const DENY_WORDS: [&str; 6] = ["deny", "denied", "reject", "rejected", "/deny", "/reject"];

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Approving users, lowercase.
    pub users: Vec<String>,
    pub teams: Vec<TeamRef>,
    /// Distinct approvals needed.
    pub min_approvals: usize,
    /// Whether the person who asked for the release may approve it. Off by default.
    pub allow_self_approval: bool,
    /// Who asked for the release (`GITHUB_ACTOR`), lowercase.
    pub requested_by: String,
    /// How long after the request approvals are accepted.
    pub timeout: Duration,
}

impl Policy {
    /// Build and check a policy from the user's settings.
    pub fn new(
        approvers: &str,
        min_approvals: usize,
        allow_self_approval: bool,
        requested_by: &str,
        timeout: Duration,
    ) -> Result<Policy, ApproveError> {
        let (users, teams) = parse_approvers(approvers)?;
        if users.is_empty() && teams.is_empty() {
            return Err(ApproveError::bad_input(
                "no approvers are configured, so nobody could approve this release",
                "set `approvers` to users and/or teams, e.g. `alice, bob, my-org/release-managers`",
            ));
        }
        if min_approvals == 0 {
            return Err(ApproveError::bad_input(
                "min-approvals is 0, which would approve without anyone",
                "set min-approvals to 1 or more",
            ));
        }
        if teams.is_empty() && users.len() < min_approvals {
            return Err(ApproveError::bad_input(
                format!(
                    "min-approvals is {min_approvals} but only {} approver(s) are listed",
                    users.len()
                ),
                "list more approvers or lower min-approvals",
            ));
        }
        if timeout.is_zero() {
            return Err(ApproveError::bad_input(
                "the approval timeout is 0",
                "set a timeout such as 30m or 2h",
            ));
        }
        let requested_by = requested_by.trim().trim_start_matches('@').to_lowercase();
        if requested_by.is_empty() {
            return Err(ApproveError::bad_input(
                "who requested the release is unknown, so self-approval cannot be checked",
                "set requested-by (the runner sets GITHUB_ACTOR)",
            ));
        }
        Ok(Policy {
            users,
            teams,
            min_approvals,
            allow_self_approval,
            requested_by,
            timeout,
        })
    }
}

/// Split `alice, @bob my-org/release` into users and teams; anything else is rejected.
pub fn parse_approvers(list: &str) -> Result<(Vec<String>, Vec<TeamRef>), ApproveError> {
    let mut users: Vec<String> = Vec::new();
    let mut teams: Vec<TeamRef> = Vec::new();
    for raw in list.split(|c: char| c == ',' || c.is_whitespace()) {
        let item = raw.trim().trim_start_matches('@');
        if item.is_empty() {
            continue;
        }
        let bad = || {
            ApproveError::bad_input(
                format!("approver {item:?} is neither a GitHub login nor an org/team-slug"),
                "logins hold letters, digits and '-'; teams are written org/team-slug",
            )
        };
        match item.split_once('/') {
            Some((org, slug)) => {
                if !is_login(org)
                    || slug.is_empty()
                    || !slug
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(bad());
                }
                let t = TeamRef {
                    org: org.to_lowercase(),
                    slug: slug.to_lowercase(),
                };
                if !teams.contains(&t) {
                    teams.push(t);
                }
            }
            None => {
                if !is_login(item) {
                    return Err(bad());
                }
                let u = item.to_lowercase();
                if !users.contains(&u) {
                    users.push(u);
                }
            }
        }
    }
    Ok((users, teams))
}

/// GitHub logins: letters, digits and single hyphens, not at either end, at most 39 chars.
fn is_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// What a comment says, if it says anything the gate listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Approve,
    Deny,
}

/// Classify by the whole trimmed first line: "approve" counts, "I don't approve" does not.
pub fn word_of(body: &str) -> Option<Word> {
    let first = body.lines().next().unwrap_or("").trim().to_lowercase();
    if APPROVE_WORDS.contains(&first.as_str()) {
        Some(Word::Approve)
    } else if DENY_WORDS.contains(&first.as_str()) {
        Some(Word::Deny)
    } else {
        None
    }
}

/// Parse `90`, `90s`, `15m`, `2h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, ApproveError> {
    let s = s.trim();
    let bad = || {
        ApproveError::bad_input(
            format!("{s:?} is not a duration"),
            "write a number with an optional unit: 500ms, 90s, 15m, 2h",
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(approvers: &str, min: usize) -> Result<Policy, ApproveError> {
        Policy::new(approvers, min, false, "carol", Duration::from_secs(60))
    }

    #[test]
    fn t12_empty_approvers_fail_closed() {
        for empty in ["", "  ", ",,", "\n"] {
            let e = policy(empty, 1).unwrap_err();
            assert!(e.to_string().contains("no approvers"), "{e}");
            assert_eq!(e.to_failure().exit, davit_core::Exit::BadInput);
        }
    }

    #[test]
    fn impossible_or_meaningless_policies_are_rejected() {
        assert!(policy("alice", 0).is_err());
        assert!(policy("alice", 2).is_err());
        assert!(policy("alice bob", 2).is_ok());
        assert!(policy("alice, alice", 2).is_err(), "duplicates count once");
        assert!(policy("org/team", 3).is_ok(), "checked after expansion");
        assert!(Policy::new("alice", 1, false, "", Duration::from_secs(1)).is_err());
        assert!(Policy::new("alice", 1, false, "x", Duration::ZERO).is_err());
    }

    #[test]
    fn approvers_split_into_users_and_teams() {
        let (u, t) = parse_approvers("@Alice, bob\nMy-Org/Release_Managers").unwrap();
        assert_eq!(u, ["alice", "bob"]);
        assert_eq!(
            t,
            [TeamRef {
                org: "my-org".into(),
                slug: "release_managers".into()
            }]
        );
        for bad in [
            "a b/c/d",
            "org/",
            "/team",
            "al!ce",
            "-x",
            "x--y",
            "a/b c/d/e",
        ] {
            assert!(parse_approvers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_whole_first_line_counts() {
        assert_eq!(word_of("approve"), Some(Word::Approve));
        assert_eq!(word_of("  LGTM  \nship it"), Some(Word::Approve));
        assert_eq!(word_of("/approve"), Some(Word::Approve));
        assert_eq!(word_of("Denied"), Some(Word::Deny));
        assert_eq!(word_of("/reject\nbecause"), Some(Word::Deny));
        assert_eq!(word_of("I do not approve"), None);
        assert_eq!(word_of("approve?"), None);
        assert_eq!(word_of("\napprove"), None);
        assert_eq!(word_of(""), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("20ms").unwrap(), Duration::from_millis(20));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
