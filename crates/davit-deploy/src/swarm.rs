//! The swarm strategy: not implemented yet (see docs/STATUS.md); the slot exists so the
//! configuration and dispatch are in place.

use crate::target::Target;
use crate::{NewRelease, Observed};
use davit_core::{Cmd, Plan, Probe, Step};

pub fn plan_deploy(t: &Target, rel: &NewRelease, _obs: &Observed) -> Plan {
    unimplemented_plan(t, &rel.version)
}

pub fn plan_rollback(t: &Target, to: &NewRelease, _obs: &Observed) -> Plan {
    unimplemented_plan(t, &to.version)
}

pub fn probe(t: &Target, version: &str) -> Probe {
    crate::compose::probe(t, version)
}

fn unimplemented_plan(t: &Target, version: &str) -> Plan {
    let mut p = Plan::new(format!(
        "swarm deploy of {version} to {} (not available yet)",
        t.environment
    ));
    p.push(
        "the swarm strategy is not available in this build",
        Step::Exec(Cmd::new("false")),
    );
    p
}
