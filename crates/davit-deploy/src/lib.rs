//! Deploying a release and taking it back: strategies, the nginx switch, the ledger, rollback.
//!
//! The flow is the same for every strategy and every number of hosts: observe each host once
//! (read-only), prepare and plan on each (pure plans; `--dry-run` stops here), check every
//! program a plan needs is installed, run the plans host by host with the one executor, and
//! record the outcome in each host's ledger. [`fleet`] orchestrates it (a single host is a fleet
//! of one), `host` is one host's part, and [`strategy`] is where the strategies differ.
//! Failures inside a plan undo what was done (a new color that never got healthy is removed; a
//! switch that does not verify is reverted), so "nothing lost" is a property of the plan, not of
//! each caller's error handling.

pub mod bluegreen;
pub mod compose;
pub mod docker;
pub mod fleet;
pub mod health;
mod hooks;
mod host;
pub mod journal;
pub mod kubernetes;
pub mod ledger;
pub mod lock;
pub mod migration_report;
pub mod nginx;
pub mod observe;
pub mod processes;
pub mod pull;
pub mod services;
pub mod strategy;
pub mod supervise;
pub mod swarm;
pub mod target;
pub mod truth;

use davit_core::{Failure, Plan, validate};
use davit_exec::runner::Cancel;
use davit_exec::{Executor, Observer};
use ledger::Record;
use std::path::PathBuf;

pub(crate) use hooks::{push_env, push_env_and_pre_hooks, push_post_hooks, push_pre_hooks};
pub use observe::{Observed, Seen, observe};
pub use target::Target;

/// A release about to go live (or to be restored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    pub id: String,
    pub version: String,
    pub image: String,
}

/// A version to deploy must be a valid image tag: bad input (exit 2) naming the fix otherwise.
pub fn check_version(version: &str) -> Result<(), Failure> {
    validate::version("version", version).map_err(|e| {
        Failure::bad_input(
            e.to_string(),
            "pass the image tag to deploy, e.g. --version 1.4.2",
        )
    })
}

pub fn release_dir(t: &Target, release: &str) -> PathBuf {
    t.state_dir.join("releases").join(release)
}

pub fn env_path(t: &Target, release: &str) -> PathBuf {
    release_dir(t, release).join("app.env")
}

/// What a deploy or rollback needs besides the target.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// The approval decision to record with the release.
    pub approval: Option<serde_json::Value>,
    /// Set by a signal handler; the plan stops and reverts.
    pub cancel: Cancel,
    /// How to take the deploy lock.
    pub lock: lock::LockOptions,
    /// The caller already holds the lock (verify rolling back inside its own locked run): the
    /// lock set is re-entrant through this flag.
    pub lock_held: bool,
    /// Use this release id instead of a fresh one (the caller already named the release in a
    /// GitHub deployment record).
    pub release_id: Option<String>,
}

/// The result of a deploy or rollback that ran (or, in dry-run, was planned).
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    /// The ledger record written; None in dry-run.
    pub record: Option<Record>,
    pub warnings: Vec<String>,
}

/// Deploy `version` of the target's image to the one host `exec` reaches, holding the deploy
/// lock: the fleet orchestration with a fleet of one.
pub async fn deploy(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    fleet::Hosts::one(exec, t)
        .deploy(version, opts, observer)
        .await
        .map(only)
}

/// Roll back to the previous good release, or to `to_version`, holding the deploy lock.
pub async fn rollback(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    reason: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    fleet::Hosts::one(exec, t)
        .rollback(to_version, reason, opts, observer)
        .await
        .map(only)
}

/// The report of a fleet of one.
fn only(mut reports: Vec<Report>) -> Report {
    reports.remove(0)
}

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod test_support;

#[cfg(test)]
mod strategy_plan_tests;
