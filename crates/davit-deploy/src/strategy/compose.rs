//! Docker Compose as a [`Strategy`]: the planners are in [`crate::compose`].

use super::{Rollback, Strategy};
use crate::compose as c;
use crate::docker::{self, ComposeFlavor};
use crate::observe::{Observed, Seen};
use crate::target::{Target, url_host};
use crate::{NewRelease, ledger};
use async_trait::async_trait;
use davit_core::{Failure, Plan, Probe};
use davit_exec::Executor;

pub(super) struct Compose {
    pub port: u16,
}

#[async_trait]
impl Strategy for Compose {
    fn name(&self) -> &'static str {
        "compose"
    }

    async fn observe(
        &self,
        exec: &dyn Executor,
        _t: &Target,
        obs: &mut Observed,
    ) -> Result<(), Failure> {
        obs.seen = Seen::Compose(docker::compose_flavor(exec).await);
        Ok(())
    }

    fn pulls_image(&self) -> bool {
        true
    }

    fn moves_processes(&self) -> bool {
        true
    }

    fn ready(
        &self,
        obs: &Observed,
        dry_run: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        flavor(obs, dry_run, warnings).map(|_| ())
    }

    /// The live release's compose file is re-applied if this one fails.
    fn plan_deploy(&self, t: &Target, rel: &NewRelease, obs: &Observed) -> Plan {
        let previous = ledger::live(&obs.ledger).map(|r| r.id.clone());
        let flavor = obs.seen.compose().unwrap_or(ComposeFlavor::Plugin);
        c::plan_deploy(t, self.port, rel, obs, flavor, previous.as_deref())
    }

    /// Re-apply the release's kept compose file; its image and the file must still be there.
    async fn plan_rollback(
        &self,
        exec: &dyn Executor,
        t: &Target,
        rb: &Rollback<'_>,
        obs: &Observed,
        warnings: &mut Vec<String>,
    ) -> Result<(Plan, Option<String>), Failure> {
        let rel = &rb.rel;
        let file = c::compose_file_path(t, &rel.id);
        if docker::image_id(exec, &rel.image).await.is_none() {
            return Err(rb.refuse(format!("its image {} is gone", rel.image)));
        }
        if exec.read_file(&file).await.ok().flatten().is_none() {
            return Err(rb.refuse(format!("its compose file {} is gone", file.display())));
        }
        let flavor = flavor(obs, rb.dry_run, warnings)?;
        Ok((c::plan_rollback(t, self.port, rel, obs, flavor), None))
    }

    fn probes(&self, t: &Target, _live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
        vec![("published port".into(), c::probe(t, self.port, version))]
    }

    fn metrics_instance(&self, t: &Target, _live_color: Option<&str>) -> Option<String> {
        Some(format!("{}:{}", url_host(&t.bind), self.port))
    }

    fn public_url(&self, t: &Target) -> Option<String> {
        Some(format!("http://{}:{}", url_host(&t.bind), self.port))
    }
}

/// The compose command a plan uses: the one found, or (dry run only) the v2 plugin form.
fn flavor(
    obs: &Observed,
    dry_run: bool,
    warnings: &mut Vec<String>,
) -> Result<ComposeFlavor, Failure> {
    match obs.seen.compose() {
        Some(f) => Ok(f),
        None if dry_run => {
            warnings.push("no docker compose found; the plan shows the v2 plugin form".into());
            Ok(ComposeFlavor::Plugin)
        }
        None => Err(Failure::infra("neither `docker compose` nor `docker-compose` works here")
            .with_hint("install the Compose plugin (apt-get install docker-compose-plugin) or docker-compose")),
    }
}
