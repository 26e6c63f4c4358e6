//! The seam between the deploy flow and the strategies: one trait, one implementation per
//! strategy, and the one place ([`pick`]) that chooses it.
//!
//! The flow (observe, prepare, plan, run, record; one host or many) is the same for every
//! strategy and lives in `host` and [`crate::fleet`]; what differs (what to read on the
//! host, whether the host can run it, the deploy and rollback plans, where health is probed) is
//! asked of a [`Strategy`]. The planners themselves stay in their modules (`bluegreen`,
//! `compose`, `swarm`, `kubernetes`): these implementations only hand them their own settings
//! and the observation, so adding a strategy is one new file here and one arm in [`pick`].

mod bluegreen;
mod compose;
mod kubernetes;
mod swarm;

use crate::NewRelease;
use crate::ledger::Record;
use crate::observe::Observed;
use crate::target::{BluGreenPorts, StrategySettings, Target};
use async_trait::async_trait;
use davit_config::Environment;
use davit_core::{Exit, Failure, Plan, Probe};
use davit_exec::Executor;

/// What a strategy knows that the deploy flow does not.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// The name in davit.toml and in the ledger: `compose`, `blue-green`, `swarm`, `kubernetes`.
    fn name(&self) -> &'static str;

    /// Read what only this strategy needs from the host into `obs` (read-only).
    async fn observe(
        &self,
        exec: &dyn Executor,
        t: &Target,
        obs: &mut Observed,
    ) -> Result<(), Failure>;

    /// Make davit's records agree with what serves before planning (never in a dry run); see
    /// [`crate::truth`]. Refuses, changing nothing, when nothing says what serves.
    async fn repair(
        &self,
        _exec: &dyn Executor,
        _t: &Target,
        _obs: &mut Observed,
        _warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// The ports of the proxy davit runs and supervises itself (blue-green's managed nginx:
    /// restarted when it dies, its traffic log read by verify), or None when the proxy belongs
    /// to the engine or the team (compose, swarm's HAProxy service, Kubernetes).
    fn managed_proxy(&self) -> Option<BluGreenPorts> {
        None
    }

    /// Whether davit puts the image on the host itself before the plan runs. Swarm resolves
    /// images through the engine and Kubernetes through the cluster, so they do not.
    fn pulls_image(&self) -> bool {
        false
    }

    /// Whether this host can run the strategy at all, refused before anything changes. A dry
    /// run only warns, so it can still show the plan.
    fn ready(
        &self,
        _obs: &Observed,
        _dry_run: bool,
        _warnings: &mut Vec<String>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Whether the strategy's plans move the release's other processes (workers, a scheduler)
    /// with the web. A release with other processes is refused by one that does not, before
    /// anything changes, rather than leaving them on another release than the web.
    fn moves_processes(&self) -> bool {
        false
    }

    /// The plan that makes `rel` live.
    fn plan_deploy(&self, t: &Target, rel: &NewRelease, obs: &Observed) -> Plan;

    /// The blue-green color a deploy puts the release in (recorded in the ledger).
    fn deploy_color(&self, _obs: &Observed) -> Option<String> {
        None
    }

    /// The plan that makes the recorded release `to` live again, after checking on the host
    /// that it can be (its container, image or file still there). `live` is the release being
    /// rolled back away from. Returns the plan and the color `to` will run in.
    async fn plan_rollback(
        &self,
        exec: &dyn Executor,
        t: &Target,
        rb: &Rollback<'_>,
        obs: &Observed,
        warnings: &mut Vec<String>,
    ) -> Result<(Plan, Option<String>), Failure>;

    /// The health checks of the live `version`, named for the report: its own port (the
    /// `live_color` for blue-green) and the public path.
    fn probes(&self, t: &Target, live_color: Option<&str>, version: &str) -> Vec<(String, Probe)>;

    /// `host:port` where Prometheus scrapes the live release, when davit publishes one.
    fn metrics_instance(&self, _t: &Target, _live_color: Option<&str>) -> Option<String> {
        None
    }

    /// Where users reach the environment, when the settings say (no `url` configured).
    fn public_url(&self, _t: &Target) -> Option<String> {
        None
    }
}

/// A rollback about to be planned.
pub struct Rollback<'a> {
    /// The release to make live again, as the ledger recorded it.
    pub to: &'a Record,
    /// The same as a release to start.
    pub rel: NewRelease,
    /// The live release, being rolled back away from.
    pub live: Option<&'a Record>,
    pub dry_run: bool,
}

impl Rollback<'_> {
    /// A rollback that cannot work, refused before anything changes.
    pub fn refuse(&self, what: String) -> Failure {
        Failure::new(
            Exit::Infra,
            format!(
                "rollback to {} refused before changing anything: {what}",
                self.rel.version
            ),
        )
        .with_hint(format!(
            "bring the image back (docker pull {}) or roll back to another version with --to <version>; see `davit releases`",
            self.rel.image
        ))
    }
}

/// Refuse a release with processes besides web when the strategy cannot move them.
pub(crate) fn check_processes(s: &dyn Strategy, t: &Target) -> Result<(), Failure> {
    let others: Vec<&str> = t
        .processes
        .iter()
        .flat_map(|set| set.others())
        .map(|p| p.name.as_str())
        .collect();
    if others.is_empty() || s.moves_processes() {
        return Ok(());
    }
    Err(Failure::bad_input(
        format!(
            "environments.{} uses strategy {}, which does not move processes other than web yet ({})",
            t.environment,
            s.name(),
            others.join(", ")
        ),
        "use strategy = \"blue-green\" or \"compose\" for a release with workers or a scheduler",
    ))
}

/// The strategy for `s`: the one place a strategy is chosen.
pub fn pick(s: &StrategySettings) -> Box<dyn Strategy + '_> {
    match s {
        StrategySettings::Compose { port } => Box::new(compose::Compose { port: *port }),
        StrategySettings::BlueGreen(p) => Box::new(bluegreen::BlueGreen { ports: *p }),
        StrategySettings::Swarm(s) => Box::new(swarm::Swarm { settings: s }),
        StrategySettings::Kubernetes(k) => Box::new(kubernetes::Kubernetes { settings: k }),
    }
}

/// The strategy's settings from an environment's config. Validation already refused a
/// strategy without its settings; this says so again rather than assume it.
pub(crate) fn settings(name: &str, env: &Environment) -> Result<StrategySettings, Failure> {
    use davit_config::Strategy as S;
    let port = |p: u32| u16::try_from(p).unwrap_or(0);
    let (found, what) = match env.strategy {
        S::Compose => (
            env.port
                .map(|p| StrategySettings::Compose { port: port(p) }),
            "port = 8090",
        ),
        S::BlueGreen => (
            env.ports.map(|p| {
                StrategySettings::BlueGreen(BluGreenPorts {
                    public: port(p.public),
                    blue: port(p.blue),
                    green: port(p.green),
                })
            }),
            "ports = { public = 8080, blue = 8081, green = 8082 }",
        ),
        S::Swarm => (
            env.swarm.clone().map(StrategySettings::Swarm),
            "a [swarm] table with published_port",
        ),
        S::Kubernetes => (
            env.kubernetes.clone().map(StrategySettings::Kubernetes),
            "a [kubernetes] table with namespace, deployment and container",
        ),
    };
    found.ok_or_else(|| {
        Failure::bad_input(
            format!(
                "environments.{name} uses strategy {} but has no settings for it",
                env.strategy.as_str()
            ),
            format!("add {what} to [environments.{name}]"),
        )
    })
}
