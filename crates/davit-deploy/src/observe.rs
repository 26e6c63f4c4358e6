//! Reading the host before planning: the ledger, the image, and what the strategy reads.
//!
//! Nothing here changes anything. A plan is a pure function of what is observed, so the dry run
//! shows what would really run on this host now; the orchestrator observes each host once per
//! run and hands the same observation to preparation and planning.

use crate::docker::{self, ComposeFlavor};
use crate::ledger::{self, Record};
use crate::nginx;
use crate::swarm::SwarmState;
use crate::target::Target;
use davit_config::PullPolicy;
use davit_core::Failure;
use davit_exec::Executor;

/// What davit saw on the host before planning.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Local image id of the release's image, when present.
    pub image_id: Option<String>,
    pub needs_pull: bool,
    /// What the proxy davit manages says is live (blue-green's site file); None where davit
    /// manages no proxy, and then the ledger says what is live.
    pub live: Option<nginx::LiveSite>,
    pub ledger: Vec<Record>,
    /// Ledger lines that could not be read (reported as a warning).
    pub torn_ledger_lines: Vec<usize>,
    /// The ledger ends in a fragment of a line (cut before the next append; reported, T44).
    pub torn_ledger_tail: bool,
    /// What only the strategy reads (see [`crate::strategy::Strategy::observe`]).
    pub seen: Seen,
    /// Where davit's files disagree with what serves (blue-green; see [`crate::truth`]).
    pub drift: Option<crate::truth::Drift>,
    /// Blue-green: host folders of the named volumes the proxy serves (see
    /// [`nginx::volume_dirs`]).
    pub volumes: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// The release's process containers (by their labels) and whether the app network exists,
    /// when the target has processes besides web (see [`crate::processes`]).
    pub procs: Option<crate::processes::ProcObserved>,
    /// Blue-green: a switch whose write-ahead record has nothing after it (see
    /// [`crate::journal`]).
    pub switch_cut_short: Option<crate::journal::Entry>,
}

/// The strategy's own observation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seen {
    #[default]
    Nothing,
    /// Blue-green: whether davit's nginx runs.
    Proxy { nginx_running: bool },
    /// Compose: which compose works here, if any.
    Compose(Option<ComposeFlavor>),
    /// Swarm: the node and the service.
    Swarm(SwarmState),
}

impl Seen {
    pub fn nginx_running(&self) -> bool {
        matches!(
            self,
            Seen::Proxy {
                nginx_running: true
            }
        )
    }
    pub fn compose(&self) -> Option<ComposeFlavor> {
        match self {
            Seen::Compose(f) => *f,
            _ => None,
        }
    }
    pub fn swarm(&self) -> Option<&SwarmState> {
        match self {
            Seen::Swarm(s) => Some(s),
            _ => None,
        }
    }
}

impl Observed {
    /// The id of the live release: what the proxy serves where davit manages one, the ledger
    /// otherwise.
    pub fn live_release(&self) -> Option<String> {
        match &self.live {
            Some(l) => Some(l.release.clone()),
            None => ledger::live(&self.ledger).map(|r| r.id.clone()),
        }
    }

    /// The version that is live, read the same way.
    pub fn live_version(&self) -> Option<String> {
        match &self.live {
            Some(l) => Some(l.version.clone()),
            None => ledger::live(&self.ledger).map(|r| r.version.clone()),
        }
    }

    /// What is wrong with davit's records, said before anything is changed: the ledger (T44)
    /// and a site file that disagrees with what serves (T41, T43).
    pub fn ledger_warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self.drift.iter().map(crate::truth::describe).collect();
        if let Some(e) = &self.switch_cut_short {
            w.push(format!(
                "{}; the next deploy or rollback finishes or reverts it from what serves",
                crate::journal::describe(e, self.live.as_ref())
            ));
        }
        if let Some(serving) = &self.live
            && ledger::live(&self.ledger).is_none_or(|r| r.id != serving.release)
        {
            w.push(format!(
                "nginx serves release {} (version {}) which the ledger does not record as live (a run killed after its switch?); the next deploy or rollback records it",
                serving.release, serving.version
            ));
        }
        let mut unreadable = self.torn_ledger_lines.clone();
        if self.torn_ledger_tail {
            unreadable.pop();
            w.push(
                "the ledger ends in a torn line (a write cut short by a crash or a full disk): it is not a record and is cut before the next record is appended".to_string(),
            );
        }
        if !unreadable.is_empty() {
            w.push(format!(
                "ledger lines {unreadable:?} could not be read and were skipped (torn write?)"
            ));
        }
        w
    }
}

/// Read the host's state, with `image` the release's image when one is about to be deployed.
pub async fn observe(
    exec: &dyn Executor,
    t: &Target,
    image: Option<&str>,
) -> Result<Observed, Failure> {
    let mut obs = Observed::default();
    if let Some(bytes) = exec
        .read_file(&t.ledger_path())
        .await
        .map_err(|e| Failure::infra(e.to_string()))?
    {
        let text = String::from_utf8_lossy(&bytes);
        let (records, torn) = ledger::parse(&text);
        obs.ledger = records;
        obs.torn_ledger_lines = torn;
        obs.torn_ledger_tail = ledger::has_torn_tail(&text);
    }
    crate::strategy::pick(&t.strategy)
        .observe(exec, t, &mut obs)
        .await?;
    if let Some(set) = &t.processes {
        obs.procs = Some(
            crate::processes::observe(exec, &t.app, &t.environment, &set.network)
                .await
                .map_err(|e| Failure::infra(format!("reading the process containers: {e}")))?,
        );
    }
    if let Some(image) = image {
        obs.image_id = docker::image_id(exec, image).await;
        obs.needs_pull = match t.pull {
            PullPolicy::Always => true,
            PullPolicy::Missing => obs.image_id.is_none(),
            PullPolicy::Never => false,
        };
    }
    Ok(obs)
}
