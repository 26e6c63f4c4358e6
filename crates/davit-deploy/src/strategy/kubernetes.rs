//! Kubernetes as a [`Strategy`]: the planners are in [`crate::kubernetes`].

use super::{Rollback, Strategy};
use crate::NewRelease;
use crate::kubernetes as k8s;
use crate::observe::Observed;
use crate::target::Target;
use async_trait::async_trait;
use davit_core::{Failure, Plan, Probe};
use davit_exec::Executor;

pub(super) struct Kubernetes<'a> {
    pub settings: &'a davit_config::Kubernetes,
}

#[async_trait]
impl Strategy for Kubernetes<'_> {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    /// The cluster is the Deployment's record; davit reads nothing more than the ledger.
    async fn observe(
        &self,
        _exec: &dyn Executor,
        _t: &Target,
        _obs: &mut Observed,
    ) -> Result<(), Failure> {
        Ok(())
    }

    fn plan_deploy(&self, t: &Target, rel: &NewRelease, obs: &Observed) -> Plan {
        k8s::plan_deploy(t, self.settings, rel, obs)
    }

    async fn plan_rollback(
        &self,
        _exec: &dyn Executor,
        t: &Target,
        rb: &Rollback<'_>,
        obs: &Observed,
        _warnings: &mut Vec<String>,
    ) -> Result<(Plan, Option<String>), Failure> {
        Ok((k8s::plan_rollback(t, self.settings, &rb.rel, obs), None))
    }

    /// The cluster's own readiness gates pods; davit probes the public URL when one is set.
    fn probes(&self, t: &Target, _live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
        k8s::probe(t, version)
            .map(|p| vec![("public url".to_string(), p)])
            .unwrap_or_default()
    }
}
