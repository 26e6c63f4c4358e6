//! The one orchestrator of deploys and rollbacks, for one host or several (`hosts = [...]`):
//! converge on all of them or on none. A single host is a fleet of one, through the same path.
//!
//! Teams outgrowing one server put two or three behind a load balancer and deploy the same
//! release to each. The danger is the half-done deploy: host 1 on the new version, host 2 still
//! on the old one, and a green check mark. So a fleet deploy takes every host's lock first (in
//! the order listed, so two deployers cannot deadlock), deploys host by host with the strategy's
//! own plan (each host's plan undoes itself when it fails), and when one host fails it rolls the
//! hosts that already switched back to the release they served before. The result is either
//! every host on the new release, or an error that lists each host's state; a state that is
//! still mixed (a rollback that failed too, or a host with nothing to go back to) is said loudly
//! and never reported as success.
//!
//! The backup and the hooks run once per deploy, on the first host, as part of its deploy:
//! migrations change one shared database, and running them per host would run them N times.
//!
//! Each host is observed once per run, before anything changes; that observation is what its
//! plan is made from, and every host is prepared and planned (image pulled, tools checked)
//! before the first one changes. A host is looked at again only after it changed, to report
//! what is rather than what should be.

mod locks;
mod report;

use crate::host;
use crate::ledger;
use crate::observe::{Observed, observe};
use crate::target::{self, Target};
use crate::{Options, Report};
use davit_core::{Exit, Failure};
use davit_exec::{Executor, Observer};
use report::{first_line, one_line, with_warnings};

pub use report::{HostState, describe_states};

/// One host of the environment, connected.
pub struct Member {
    pub exec: Box<dyn Executor>,
    /// The environment acting on this host.
    pub target: Target,
}

/// Every host of an environment, connected (a single host is a fleet of one).
pub struct Fleet {
    pub members: Vec<Member>,
}

/// Connect to every host. One unreachable host fails the whole operation before anything
/// changes anywhere, naming each host's connection state.
pub async fn connect(t: &Target) -> Result<Fleet, Failure> {
    let mut members = Vec::new();
    let mut lines = Vec::new();
    let mut failed: Option<Failure> = None;
    for h in &t.hosts {
        let ht = t.for_host(h);
        match target::connect(&ht).await {
            Ok(exec) => {
                lines.push(format!("  {h}: connected"));
                members.push(Member { exec, target: ht });
            }
            Err(e) => {
                lines.push(format!("  {h}: NOT CONNECTED ({})", first_line(&e.message)));
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        None => Ok(Fleet { members }),
        Some(e) if t.hosts.len() == 1 => Err(e),
        Some(e) => Err(Failure::new(
            e.exit,
            format!(
                "cannot reach every host of {}; nothing was changed on any of them:\n{}",
                t.environment,
                lines.join("\n")
            ),
        )
        .with_hint(e.hint.unwrap_or_else(|| {
            "bring the host back (or remove it from hosts) and run again".into()
        }))),
    }
}

impl Fleet {
    pub fn first(&self) -> &Member {
        &self.members[0]
    }

    /// The hosts, borrowed for one operation.
    pub fn hosts(&self) -> Hosts<'_> {
        Hosts {
            hosts: self
                .members
                .iter()
                .map(|m| Host {
                    exec: &*m.exec,
                    target: &m.target,
                })
                .collect(),
        }
    }

    /// Deploy `version` to every host, or to none: see the module documentation.
    pub async fn deploy(
        &self,
        version: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        self.hosts().deploy(version, opts, observer).await
    }

    /// Roll every host back to one version: see [`Hosts::rollback`].
    pub async fn rollback(
        &self,
        to_version: Option<&str>,
        reason: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        self.hosts()
            .rollback(to_version, reason, opts, observer)
            .await
    }
}

/// One host of an operation: how to reach it and the environment acting on it.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub exec: &'a dyn Executor,
    pub target: &'a Target,
}

/// The hosts an operation acts on, in order: one, or every host of the environment.
pub struct Hosts<'a> {
    hosts: Vec<Host<'a>>,
}

impl<'a> Hosts<'a> {
    /// A fleet of one.
    pub fn one(exec: &'a dyn Executor, target: &'a Target) -> Hosts<'a> {
        Hosts {
            hosts: vec![Host { exec, target }],
        }
    }

    fn many(&self) -> bool {
        self.hosts.len() > 1
    }

    fn first(&self) -> &Host<'a> {
        &self.hosts[0]
    }

    /// `web-2: ` when there are several hosts, else nothing.
    fn label(&self, h: &Host<'_>) -> String {
        if self.many() {
            format!("{}: ", h.target.host)
        } else {
            String::new()
        }
    }

    /// Prefix a host's error with its name when there are several hosts.
    fn on_host(&self, h: &Host<'_>, mut e: Failure) -> Failure {
        e.message = format!("{}{}", self.label(h), e.message);
        e
    }

    /// A line in the timeline about which host comes next; a single host needs none.
    fn note(&self, observer: &dyn Observer, text: &str) {
        if self.many() {
            note(observer, text);
        }
    }

    /// Observe every host once (with `image`, the image about to be deployed).
    async fn observe_all(&self, image: Option<&str>) -> Result<Vec<Observed>, Failure> {
        let mut out = Vec::new();
        for h in &self.hosts {
            out.push(
                observe(h.exec, h.target, image)
                    .await
                    .map_err(|e| self.on_host(h, e))?,
            );
        }
        Ok(out)
    }

    /// After a failure: look at every host again, so the report says what is, not what should
    /// be. A host that does not answer becomes unchecked, never assumed.
    async fn recheck(&self, states: &mut [HostState], before: &[Option<String>]) {
        for (i, h) in self.hosts.iter().enumerate() {
            let now = serving_on(h).await;
            let st = &mut states[i];
            match (now, &mut *st) {
                (
                    Ok(v),
                    HostState::Failed {
                        serving, checked, ..
                    },
                ) => {
                    *serving = v;
                    *checked = true;
                }
                (
                    Err(_),
                    HostState::Failed {
                        serving, checked, ..
                    },
                ) => {
                    *serving = before[i].clone();
                    *checked = false;
                }
                (Ok(v), HostState::RolledBack { to }) if v.as_deref() != Some(to.as_str()) => {
                    *st = HostState::StillOnNew {
                        version: v.unwrap_or_else(|| "nothing".into()),
                        why: format!("its rollback to {to} reported success, but it serves this"),
                    };
                }
                (Ok(_), _) => {}
                (Err(_), _) => {
                    *st = HostState::Unknown {
                        before: before[i].clone(),
                    };
                }
            }
        }
    }

    /// Deploy `version` to every host, or to none: see the module documentation.
    pub async fn deploy(
        &self,
        version: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        crate::check_version(version)?;
        self.first().target.require_secrets()?;
        // One release id on every host, so the ledgers and the GitHub record agree.
        let release_id = opts
            .release_id
            .clone()
            .unwrap_or_else(|| ledger::new_release_id(version));
        if opts.dry_run {
            let image = self.first().target.image_for(version);
            let mut reports = Vec::new();
            for (i, h) in self.hosts.iter().enumerate() {
                let mt = host_share(h.target, i);
                let obs = observe(h.exec, &mt, Some(&image)).await?;
                let d = host::plan_deploy(h.exec, &mt, version, &release_id, obs, opts, observer)
                    .await?;
                reports.push(Report {
                    plan: d.plan,
                    record: None,
                    warnings: d.warnings,
                });
            }
            return Ok(reports);
        }
        let locks = if opts.lock_held {
            Vec::new()
        } else {
            self.lock_all("deploy", version, opts).await?
        };
        let result = self
            .deploy_locked(version, &release_id, opts, observer)
            .await;
        let warnings = self.release_all(locks).await;
        with_warnings(result, warnings)
    }

    async fn deploy_locked(
        &self,
        version: &str,
        release_id: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        let image = self.first().target.image_for(version);
        let observed = self.observe_all(Some(&image)).await?;
        let before: Vec<Option<String>> = observed.iter().map(Observed::live_version).collect();
        if before.iter().any(|v| v != &before[0]) {
            note(
                observer,
                &format!(
                    "hosts serve different versions before this deploy: {}",
                    self.hosts
                        .iter()
                        .zip(&before)
                        .map(|(h, v)| format!("{}={}", h.target.host, v.as_deref().unwrap_or("-")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let mut states: Vec<HostState> = before
            .iter()
            .map(|s| HostState::Untouched { serving: s.clone() })
            .collect();
        // Every host must be able to take the release (image pulled, tools present) before
        // the first host migrates the database and switches.
        let mut planned = Vec::new();
        for (i, (h, obs)) in self.hosts.iter().zip(observed).enumerate() {
            self.note(
                observer,
                &format!("{}: checking it can take {version}", h.target.host),
            );
            let mt = host_share(h.target, i);
            match host::plan_deploy(h.exec, &mt, version, release_id, obs, opts, observer).await {
                Ok(d) => planned.push((mt, d)),
                Err(e) if !self.many() => return Err(e),
                Err(e) => {
                    return Err(Failure::new(
                        e.exit,
                        format!(
                            "{}: {}; no host was changed:\n{}",
                            h.target.host,
                            e.message,
                            describe_states(&self.named(&states)).trim_end()
                        ),
                    )
                    .with_hint(e.hint.unwrap_or_default()));
                }
            }
        }
        let mut reports = Vec::new();
        for (i, (h, (mt, d))) in self.hosts.iter().zip(planned).enumerate() {
            if i > 0 && opts.cancel.is_cancelled() {
                let cause = Failure::infra("a signal stopped the deploy");
                let reason = format!("deploy of {version} cancelled; converging back");
                states[i] = HostState::Failed {
                    error: "cancelled before this host".into(),
                    serving: before[i].clone(),
                    checked: false,
                };
                return Err(self
                    .converge_back(version, i, cause, &reason, states, &before, observer)
                    .await);
            }
            self.note(
                observer,
                &format!("host {}/{}: {}", i + 1, self.hosts.len(), h.target.host),
            );
            match host::run_deploy(h.exec, &mt, d, opts, observer).await {
                Ok(r) => {
                    states[i] = HostState::Deployed {
                        version: version.to_string(),
                    };
                    reports.push(r);
                }
                // With no other host there is nothing to converge: the host's error is the report.
                Err(e) if !self.many() => return Err(e),
                Err(e) => {
                    let reason = format!(
                        "deploy of {version} failed on {}; converging back",
                        h.target.host
                    );
                    states[i] = HostState::Failed {
                        error: e.message.clone(),
                        serving: before[i].clone(),
                        checked: false,
                    };
                    return Err(self
                        .converge_back(version, i, e, &reason, states, &before, observer)
                        .await);
                }
            }
        }
        Ok(reports)
    }

    /// Host `failed` did not take the release (`states[failed]` says how): put the hosts before
    /// it back on what they served, look at every host again, and build the report.
    #[allow(clippy::too_many_arguments)]
    async fn converge_back(
        &self,
        version: &str,
        failed: usize,
        cause: Failure,
        reason: &str,
        mut states: Vec<HostState>,
        before: &[Option<String>],
        observer: &dyn Observer,
    ) -> Failure {
        for j in (0..failed).rev() {
            states[j] = self
                .revert(j, version, before[j].as_deref(), reason, observer)
                .await;
        }
        self.recheck(&mut states, before).await;
        self.not_converged(version, failed, cause, &states)
    }

    /// Put host `j` back on `previous` after a later host failed. Its lock is already held,
    /// and it changed since it was observed, so it is observed again.
    async fn revert(
        &self,
        j: usize,
        version: &str,
        previous: Option<&str>,
        reason: &str,
        observer: &dyn Observer,
    ) -> HostState {
        let h = &self.hosts[j];
        let Some(previous) = previous else {
            return HostState::StillOnNew {
                version: version.to_string(),
                why: "it served nothing before, so there is nothing to go back to".into(),
            };
        };
        note(
            observer,
            &format!("{}: rolling back to {previous}", h.target.host),
        );
        let opts = Options {
            lock_held: true,
            ..Default::default()
        };
        let mt = host_share(h.target, j);
        match rollback_host(h.exec, &mt, Some(previous), reason, &opts, observer, None).await {
            Ok(_) => HostState::RolledBack {
                to: previous.to_string(),
            },
            Err(e) => HostState::StillOnNew {
                version: version.to_string(),
                why: format!("its rollback failed too: {}", one_line(&e.message)),
            },
        }
    }

    fn not_converged(
        &self,
        version: &str,
        failed: usize,
        cause: Failure,
        states: &[HostState],
    ) -> Failure {
        let named = self.named(states);
        let env = &self.first().target.environment;
        let failed_host = &self.hosts[failed].target.host;
        let mixed = states.iter().any(HostState::mixed);
        let unchecked = states.iter().any(|s| {
            matches!(
                s,
                HostState::Unknown { .. } | HostState::Failed { checked: false, .. }
            )
        });
        let headline = if mixed {
            format!(
                "deploy of {version} to {env} failed on {failed_host} and the hosts now serve DIFFERENT versions"
            )
        } else if unchecked {
            format!(
                "deploy of {version} to {env} failed on {failed_host}; the hosts that answer are back on what they served before, the others could not be checked"
            )
        } else {
            format!(
                "deploy of {version} to {env} failed on {failed_host}; every host is back on what it served before"
            )
        };
        let exit = if mixed || unchecked {
            Exit::Infra
        } else {
            cause.exit
        };
        let previous = states.iter().find_map(|s| match s {
            HostState::RolledBack { to } => Some(to.clone()),
            _ => None,
        });
        let hint = if mixed {
            match previous {
                Some(v) => format!(
                    "bring every host to one version: `davit rollback {env} --to {v}` (hosts already on it are left alone), or deploy again once the failed host is fixed"
                ),
                None => "deploy again once the failed host is fixed; `davit releases` shows each host's ledger".to_string(),
            }
        } else {
            cause
                .hint
                .unwrap_or_else(|| "fix the cause on the failed host and deploy again".into())
        };
        Failure::new(
            exit,
            format!("{headline}:\n{}", describe_states(&named).trim_end()),
        )
        .with_hint(hint)
    }

    /// `(host, state)` pairs for the report.
    fn named(&self, states: &[HostState]) -> Vec<(String, HostState)> {
        self.hosts
            .iter()
            .map(|h| h.target.host.clone())
            .zip(states.iter().cloned())
            .collect()
    }

    /// Roll every host back to one version: `to_version`, or the release the first host would
    /// go back to, so the fleet converges on one version even when the hosts' ledgers differ.
    /// A single host goes back to its own previous good release.
    pub async fn rollback(
        &self,
        to_version: Option<&str>,
        reason: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        let locks = if opts.dry_run || opts.lock_held {
            Vec::new()
        } else {
            self.lock_all("rollback", to_version.unwrap_or("previous"), opts)
                .await?
        };
        let result = self
            .rollback_locked(to_version, reason, opts, observer)
            .await;
        let warnings = self.release_all(locks).await;
        with_warnings(result, warnings)
    }

    async fn rollback_locked(
        &self,
        to_version: Option<&str>,
        reason: &str,
        opts: &Options,
        observer: &dyn Observer,
    ) -> Result<Vec<Report>, Failure> {
        let observed = self.observe_all(None).await?;
        if !self.many() {
            let h = self.first();
            let obs = observed.into_iter().next();
            return rollback_host(h.exec, h.target, to_version, reason, opts, observer, obs)
                .await
                .map(|r| vec![r]);
        }
        let version = match to_version {
            Some(v) => v.to_string(),
            None => {
                let h = self.first();
                let obs = &observed[0];
                let live = obs.live_release();
                ledger::rollback_target(&obs.ledger, live.as_deref(), None)
                    .map(|r| r.version.clone())
                    .ok_or_else(|| {
                        Failure::bad_input(
                            format!(
                                "no previous good release in the {} ledger of {} to roll back to",
                                h.target.environment, h.target.host
                            ),
                            "see `davit releases` for what was deployed, then deploy the version you want",
                        )
                    })?
            }
        };
        let inner = Options {
            lock_held: true,
            ..opts.clone()
        };
        let mut reports = Vec::new();
        let mut states = Vec::new();
        let mut failure: Option<Failure> = None;
        // Every host is attempted: a rollback is the way out, so one host failing must not
        // leave the others on the release being rolled back.
        for (i, (h, obs)) in self.hosts.iter().zip(observed).enumerate() {
            // A host already on the target (an earlier, partly failed rollback) is done.
            if let Some(v) = obs.live_version()
                && v == version
            {
                note(
                    observer,
                    &format!("{}: already serving {version}", h.target.host),
                );
                states.push((h.target.host.clone(), HostState::RolledBack { to: v }));
                continue;
            }
            note(
                observer,
                &format!("{}: rolling back to {version}", h.target.host),
            );
            let mt = host_share(h.target, i);
            match rollback_host(
                h.exec,
                &mt,
                Some(&version),
                reason,
                &inner,
                observer,
                Some(obs),
            )
            .await
            {
                Ok(r) => {
                    states.push((
                        h.target.host.clone(),
                        HostState::RolledBack {
                            to: version.clone(),
                        },
                    ));
                    reports.push(r);
                }
                Err(e) => {
                    let now = serving_on(h).await;
                    states.push((
                        h.target.host.clone(),
                        HostState::Failed {
                            error: e.message.clone(),
                            checked: now.is_ok(),
                            serving: now.ok().flatten(),
                        },
                    ));
                    failure.get_or_insert(e);
                }
            }
        }
        let env = &self.first().target.environment;
        match failure {
            None => Ok(reports),
            // The hosts now differ: an infrastructure state, whatever the first error was.
            Some(e) => Err(Failure::new(
                Exit::Infra,
                format!(
                    "rollback of {env} to {version} did not reach every host:\n{}",
                    describe_states(&states).trim_end()
                ),
            )
            .with_hint(format!(
                "fix the failed host, then `davit rollback {env} --to {version}` (hosts already on {version} are left alone){}",
                e.hint.map(|h| format!("; {h}")).unwrap_or_default()
            ))),
        }
    }
}

/// One host's rollback, its lock already held: plan from `obs` (observed now when None) and,
/// unless this is a dry run, run it.
async fn rollback_host(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    reason: &str,
    opts: &Options,
    observer: &dyn Observer,
    obs: Option<Observed>,
) -> Result<Report, Failure> {
    let obs = match obs {
        Some(o) => o,
        None => observe(exec, t, None).await?,
    };
    let r = host::plan_rollback(exec, t, to_version, reason, &obs, opts.dry_run).await?;
    if opts.dry_run {
        return Ok(Report {
            plan: r.plan,
            record: None,
            warnings: r.warnings,
        });
    }
    host::run_rollback(exec, t, r, reason, opts, observer).await
}

/// The version a host serves now (from its live site and ledger).
async fn serving_on(h: &Host<'_>) -> Result<Option<String>, Failure> {
    Ok(observe(h.exec, h.target, None).await?.live_version())
}

/// A line in the timeline between plan steps (which host, what the fleet does next).
fn note(observer: &dyn Observer, text: &str) {
    observer.event(&davit_exec::Event::StepStarted {
        index: 0,
        total: 0,
        summary: text,
    });
}

/// The target for the `i`th host of a deploy: the backup, the hooks and the singletons (a
/// scheduler) belong to the first host only (they touch shared things, like the database, once
/// per deploy; a scheduler on every host would fire every job once per host).
fn host_share(t: &Target, i: usize) -> Target {
    if i == 0 {
        return t.clone();
    }
    let mut processes = t.processes.clone();
    if let Some(set) = &mut processes {
        set.processes.retain(|p| !p.singleton);
    }
    Target {
        pre_deploy: Vec::new(),
        post_deploy: Vec::new(),
        backup: None,
        processes,
        ..t.clone()
    }
}
