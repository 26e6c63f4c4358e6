//! Docker Swarm as a [`Strategy`]: the planners are in [`crate::swarm`].

use super::{Rollback, Strategy};
use crate::NewRelease;
use crate::observe::{Observed, Seen};
use crate::swarm as sw;
use crate::target::Target;
use async_trait::async_trait;
use davit_core::{Failure, Plan, Probe};
use davit_exec::Executor;

pub(super) struct Swarm<'a> {
    pub settings: &'a davit_config::Swarm,
}

#[async_trait]
impl Strategy for Swarm<'_> {
    fn name(&self) -> &'static str {
        "swarm"
    }

    async fn observe(
        &self,
        exec: &dyn Executor,
        t: &Target,
        obs: &mut Observed,
    ) -> Result<(), Failure> {
        obs.seen = Seen::Swarm(sw::observe(exec, t).await);
        Ok(())
    }

    /// The manager pulls the image before the stack changes (with the bounded retries), so a
    /// registry that is down stops the deploy before Swarm starts an update.
    fn pulls_image(&self) -> bool {
        true
    }

    fn ready(
        &self,
        obs: &Observed,
        dry_run: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        sw::ready(obs, dry_run, warnings)
    }

    fn plan_deploy(&self, t: &Target, rel: &NewRelease, obs: &Observed) -> Plan {
        sw::plan_deploy(t, self.settings, rel, obs)
    }

    async fn plan_rollback(
        &self,
        _exec: &dyn Executor,
        t: &Target,
        rb: &Rollback<'_>,
        obs: &Observed,
        warnings: &mut Vec<String>,
    ) -> Result<(Plan, Option<String>), Failure> {
        sw::ready(obs, rb.dry_run, warnings)?;
        Ok((sw::plan_rollback(t, self.settings, &rb.rel, obs), None))
    }

    fn probes(&self, t: &Target, _live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
        vec![(
            "published port".into(),
            sw::probe(t, self.settings, version),
        )]
    }
}
