//! The reads and writes the approval gate needs: issues and their comments, team members,
//! environments and a run's review history.
//!
//! These return GitHub's facts as plain types and decide nothing; what counts as an approval is
//! davit-approve's pure logic. Comments keep both timestamps because an edited comment must not
//! count (T13), and team members are returned only from a successful lookup so a failure can
//! never be mistaken for an empty team or a username.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Call, GithubClient, q, seg};
use crate::error::{GithubError, Permission};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Issue {
    pub number: u64,
    pub html_url: String,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub locked: bool,
    pub user: User,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub created_at: DateTime<Utc>,
}

impl Issue {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct IssueComment {
    pub id: u64,
    pub user: User,
    #[serde(default)]
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub html_url: String,
}

/// An environment's settings, reduced to what the approval gate checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    /// Logins and team slugs of its required reviewers; empty when it has no such rule.
    pub required_reviewers: Vec<String>,
    pub has_required_reviewers: bool,
}

/// One entry of a workflow run's deployment review history.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RunReview {
    /// `approved` or `rejected`.
    pub state: String,
    pub user: User,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub environments: Vec<NamedEnvironment>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NamedEnvironment {
    pub name: String,
}

/// How an issue is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Completed,
    NotPlanned,
}

impl GithubClient {
    /// Open an issue. `key` must be unique to this request and appear in `body` (an HTML
    /// comment works): a retry after a lost response finds the issue by it instead of opening a
    /// second one.
    pub async fn create_issue(
        &self,
        title: &str,
        body: &str,
        labels: &[String],
        key: &str,
    ) -> Result<Issue, GithubError> {
        if key.is_empty() || !body.contains(key) {
            return Err(GithubError::Invalid {
                what: "issue key",
                value: key.to_string(),
                reason: "must be non-empty and appear in the body".into(),
            });
        }
        let payload = json!({ "title": title, "body": body, "labels": labels });
        let call = Call::post(self.repo_path("/issues"), &payload, Permission::IssuesWrite);
        self.create(&call, || async {
            let mut path = self.repo_path("/issues?state=all&sort=created&direction=desc");
            if let Some(l) = labels.first() {
                path.push_str(&format!("&labels={}", q(l)));
            }
            let recent: Vec<Issue> = self
                .request(&Call::get(
                    format!("{path}&per_page=50"),
                    Permission::IssuesRead,
                ))
                .await?;
            Ok(recent
                .into_iter()
                .find(|i| i.body.as_deref().is_some_and(|b| b.contains(key))))
        })
        .await
    }

    pub async fn get_issue(&self, number: u64) -> Result<Issue, GithubError> {
        self.request(&Call::get(
            self.repo_path(&format!("/issues/{number}")),
            Permission::IssuesRead,
        ))
        .await
    }

    /// All comments, oldest first.
    pub async fn list_comments(&self, number: u64) -> Result<Vec<IssueComment>, GithubError> {
        self.get_all(
            &self.repo_path(&format!("/issues/{number}/comments")),
            Permission::IssuesRead,
        )
        .await
    }

    /// Add a comment. A retry after a lost response may post it twice; for the decision notes
    /// davit writes that is harmless, and it is never used for anything that counts.
    pub async fn add_comment(&self, number: u64, body: &str) -> Result<IssueComment, GithubError> {
        let payload = json!({ "body": body });
        self.create(
            &Call::post(
                self.repo_path(&format!("/issues/{number}/comments")),
                &payload,
                Permission::IssuesWrite,
            ),
            || async { Ok(None) },
        )
        .await
    }

    pub async fn close_issue(
        &self,
        number: u64,
        reason: CloseReason,
    ) -> Result<Issue, GithubError> {
        let reason = match reason {
            CloseReason::Completed => "completed",
            CloseReason::NotPlanned => "not_planned",
        };
        let payload = json!({ "state": "closed", "state_reason": reason });
        self.request(&Call::patch(
            self.repo_path(&format!("/issues/{number}")),
            &payload,
            Permission::IssuesWrite,
        ))
        .await
    }

    /// Logins of a team's members (`org/team-slug`). Any failure is an error, never an empty
    /// list: the caller must fail closed.
    pub async fn team_members(&self, org: &str, slug: &str) -> Result<Vec<String>, GithubError> {
        let members: Vec<User> = self
            .get_all(
                &format!("/orgs/{}/teams/{}/members", seg(org), seg(slug)),
                Permission::MembersRead,
            )
            .await?;
        Ok(members.into_iter().map(|u| u.login).collect())
    }

    /// An environment's protection rules. `Ok(None)` when it does not exist.
    pub async fn environment(&self, name: &str) -> Result<Option<Environment>, GithubError> {
        let v: Value = match self
            .request(&Call::get(
                self.repo_path(&format!("/environments/{}", seg(name))),
                Permission::ActionsRead,
            ))
            .await
        {
            Ok(v) => v,
            Err(GithubError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut reviewers = Vec::new();
        let mut has_rule = false;
        for rule in v["protection_rules"].as_array().into_iter().flatten() {
            if rule["type"] == "required_reviewers" {
                has_rule = true;
                for r in rule["reviewers"].as_array().into_iter().flatten() {
                    let who = &r["reviewer"];
                    if let Some(l) = who["login"].as_str().or(who["slug"].as_str()) {
                        reviewers.push(l.to_string());
                    }
                }
            }
        }
        Ok(Some(Environment {
            name: v["name"].as_str().unwrap_or(name).to_string(),
            required_reviewers: reviewers,
            has_required_reviewers: has_rule,
        }))
    }

    /// The deployment review history of a workflow run (who approved which environment).
    pub async fn run_reviews(&self, run_id: u64) -> Result<Vec<RunReview>, GithubError> {
        self.request(&Call::get(
            self.repo_path(&format!("/actions/runs/{run_id}/approvals")),
            Permission::ActionsRead,
        ))
        .await
    }
}
