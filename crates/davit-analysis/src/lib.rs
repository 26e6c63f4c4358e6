//! Metric analysis after cut-over: is the new release hurting users, judged from its metrics.
//!
//! A health check proves a release started; it does not prove users are fine. Kubernetes users
//! get metric analysis from Argo Rollouts or Flagger; this crate brings the same to a plain
//! Docker host behind nginx. During verify's watch window, while the previous color keeps
//! running, an [`Analysis`] queries Prometheus (or a JSON endpoint) every interval, judges each
//! value against success and failure conditions with Argo's counting rules, and returns a
//! [`Verdict`] whose [`Action`] tells the caller to keep the release, roll back, hold or fail.
//!
//! The one rule everything here obeys (RELIABILITY.md T23): no data is never good news. An
//! empty result, `NaN`, `±Inf`, a stale sample or an unreachable Prometheus is inconclusive or
//! an error, and neither counts as a pass.
//!
//! - [`spec`]: the `[analysis]` table of davit.toml and its validation;
//! - [`expr`]: the tiny condition language (`result < 0.05 && result >= 0`);
//! - [`prometheus`], [`web`]: the providers;
//! - [`run`]: the runner, the Argo-style tally and the verdict (markdown and JSON);
//! - [`notify`]: Slack and generic webhooks; [`smoke`]: the smoke-test command;
//! - [`scrape`]: the Prometheus scrape config davit expects.
//!
//! This crate does not switch or roll back anything; davit-verify drives it and acts on the
//! verdict through davit-deploy.

pub mod expr;
pub mod notify;
pub mod prometheus;
pub mod provider;
pub mod run;
pub mod scrape;
pub mod smoke;
pub mod spec;
pub mod web;

pub use provider::{Outcome, Provider, Reading, Sample};
pub use run::{Action, Analysis, Measurement, SetupError, Status, Verdict};
pub use spec::{AnalysisSpec, InconclusivePolicy, Overrides, Release, SpecError};
