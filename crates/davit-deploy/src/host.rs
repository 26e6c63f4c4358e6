//! One host's part of a deploy or a rollback: prepare and plan from what was observed, then run
//! the plan and record the outcome.
//!
//! The orchestrator ([`crate::fleet`]) decides the order across hosts, holds the locks and
//! converges back on failure; this module is what happens on each host, the same whether the
//! environment has one host or many. Preparing (pulling the image, checking the strategy can run
//! and every program the plan needs is installed) is separate from running so the orchestrator
//! can prepare every host before the first one changes.

use crate::ledger::{self, Event, Record};
use crate::migration_report::MigrationFailure;
use crate::observe::Observed;
use crate::strategy::{self, Rollback};
use crate::target::Target;
use crate::{NewRelease, Options, Report, docker, hooks, pull};
use async_trait::async_trait;
use davit_config::PullPolicy;
use davit_core::{Action, Exit, Failure, Plan, Step};
use davit_exec::runner::{Actions, Cancel, PlanError, StepError, run_plan_with};
use davit_exec::{Executor, Observer};

/// A deploy planned on one host, ready to run.
pub(crate) struct Deploy {
    pub rel: NewRelease,
    /// Everything the deploy does on this host, in order: the preparation (the pull), the
    /// backup, the strategy's steps and the ledger record. What the dry run shows and the
    /// report carries.
    pub plan: Plan,
    /// How many of the plan's first steps are the preparation, already run by
    /// [`plan_deploy`] outside a dry run.
    pub prepared: usize,
    /// The record the plan appends to the ledger when it succeeds.
    pub record: Record,
    pub warnings: Vec<String>,
    /// A release was live before: what a failed compose deploy's undo goes back to.
    pub previous_live: bool,
    /// The process containers before the deploy (a singleton's gap is measured against them).
    pub procs: Option<crate::processes::ProcObserved>,
}

/// Get the host ready for `version` and plan the deploy from `obs`. The preparation (pulling
/// the image where the strategy has davit pull it) is the plan's first part; outside a dry run
/// it runs here, so the orchestrator can prepare every host before the first one changes, and
/// every program the rest of the plan runs must then be installed.
pub(crate) async fn plan_deploy(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    release_id: &str,
    mut obs: Observed,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Deploy, Failure> {
    let dry_run = opts.dry_run;
    let s = strategy::pick(&t.strategy);
    strategy::check_processes(&*s, t)?;
    let image = t.image_for(version);
    let mut warnings = obs.ledger_warnings();
    if !dry_run {
        s.repair(exec, t, &mut obs, &mut warnings).await?;
    }
    require_image(exec, t, &image, &obs)?;
    warnings.extend(crate::supervise::prepare_host(exec, t, &mut obs, dry_run).await?);
    let mut plan = Plan::new(String::new());
    if obs.needs_pull && s.pulls_image() {
        plan.push(
            format!("pull {image}"),
            Step::Action(Action::Pull {
                image: image.clone(),
            }),
        );
    }
    let prepared = plan.steps.len();
    if !dry_run && prepared > 0 {
        let actions = DeployActions {
            t,
            version,
            observer,
            backup_taken: Default::default(),
        };
        run_plan_with(exec, &plan, observer, &Cancel::new(), &actions)
            .await
            .map_err(refusal)?;
        obs.needs_pull = false;
        obs.image_id = docker::image_id(exec, &image).await;
    }
    s.ready(&obs, dry_run, &mut warnings)?;
    let rel = NewRelease {
        id: release_id.to_string(),
        version: version.to_string(),
        image,
    };
    let body = s.plan_deploy(t, &rel, &obs);
    plan.title = body.title.clone();
    // No verified backup, no migration: the backup comes before the pre-deploy hooks (T37, T38).
    if t.backup.as_ref().is_some_and(|b| b.required) {
        plan.push(
            "database backup before migrations",
            Step::Action(Action::Backup {
                label: format!("before {}", rel.id),
            }),
        );
    }
    plan.extend(body);
    let record = Record {
        id: rel.id.clone(),
        event: Event::Deployed,
        version: rel.version.clone(),
        image: rel.image.clone(),
        digest: obs.image_id.clone(),
        strategy: s.name().to_string(),
        color: s.deploy_color(&obs),
        environment: t.environment.clone(),
        host: exec.host().to_string(),
        at: ledger::now(),
        actor: t.actor.clone(),
        reason: None,
        approval: opts.approval.clone(),
        processes: t
            .processes
            .as_ref()
            .map(ledger::ProcessRecord::of)
            .unwrap_or_default(),
    };
    push_records(&mut plan, t, std::slice::from_ref(&record));
    if !dry_run {
        preflight(exec, &plan).await?;
    }
    Ok(Deploy {
        rel,
        plan,
        prepared,
        record,
        warnings,
        previous_live: ledger::live(&obs.ledger).is_some(),
        procs: obs.procs.clone(),
    })
}

/// Run a planned deploy (the part after the preparation) and, when it fails, record how it
/// ended: its success record is the plan's last step.
pub(crate) async fn run_deploy(
    exec: &dyn Executor,
    t: &Target,
    d: Deploy,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    let Deploy {
        rel,
        plan,
        prepared,
        mut record,
        mut warnings,
        previous_live,
        procs,
    } = d;
    let rest = Plan {
        title: plan.title.clone(),
        steps: plan.steps[prepared..].to_vec(),
    };
    let actions = DeployActions {
        t,
        version: &rel.version,
        observer,
        backup_taken: Default::default(),
    };
    let clock = crate::compose::ServedClock::new(observer);
    match run_plan_with(exec, &rest, &clock, &opts.cancel, &actions).await {
        Ok(tolerated) => {
            record_warnings(&rest, &tolerated, &mut warnings);
            crate::processes::report_gaps(exec, t, &rel, procs.as_ref(), observer).await;
            Ok(Report {
                plan,
                record: Some(record),
                warnings,
            })
        }
        // The backup refused: nothing changed, and the failure says why (T37, T38). Other
        // actions (a swarm's health gate through every node) fail like any step.
        Err(PlanError {
            cause: StepError::Action(f),
            index,
            ..
        }) if matches!(
            rest.steps[index - 1].step,
            Step::Action(Action::Backup { .. })
        ) =>
        {
            Err(f)
        }
        Err(e) => {
            let migration = migration_failure(&e);
            let what = migration.as_ref().map(|m| m.summary());
            record.event = Event::Failed;
            record.reason = Some(match &what {
                Some(m) => format!("{m}: {e}"),
                None => e.to_string(),
            });
            record.at = ledger::now();
            append(exec, t, &record, &mut warnings).await;
            // A failed check (a health gate, Swarm reverting the update) rejects the release.
            let exit = if e.verdict {
                Exit::Rejected
            } else {
                Exit::Infra
            };
            Err(with_notes(
                Failure::new(
                    exit,
                    format!(
                        "deploy of {} to {} failed; {}: {e}{}",
                        rel.version,
                        t.environment,
                        clock.aftermath(previous_live),
                        what.map(|m| format!("\n{m}")).unwrap_or_default()
                    ),
                )
                .with_hint(match &migration {
                    Some(m) => migration_hint(t, m, actions.backup_taken()),
                    None => hint_for(t, &rest, &e),
                }),
                &warnings,
            ))
        }
    }
}

/// The plan's last steps: the ledger lines saying how it ended, in one write of whole lines
/// (a rollback's "rolled back" and "restored" never one without the other, T44), secret values
/// masked (T46). Best effort: a release that went live is not undone for want of a record; the
/// report warns instead.
fn push_records(plan: &mut Plan, t: &Target, records: &[Record]) {
    plan.push_best_effort(
        "make sure the state folder exists (for the ledger)",
        Step::MkDir {
            path: t.state_dir.clone(),
            mode: 0o750,
        },
    );
    let what: Vec<String> = records
        .iter()
        .map(|r| format!("{} of {}", event_name(r.event), r.id))
        .collect();
    plan.push_best_effort(
        format!("record {} in the ledger", what.join(" and ")),
        Step::AppendLine {
            path: t.ledger_path(),
            line: ledger::lines(records),
        },
    );
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::Deployed => "the deploy",
        Event::Failed => "the failure",
        Event::RolledBack => "the rollback away",
        Event::Restored => "the restore",
    }
}

/// Best-effort steps that failed become warnings: the ledger's as they always were, and a wait
/// for nginx's old workers that ran out of time.
fn record_warnings(plan: &Plan, tolerated: &[(usize, StepError)], warnings: &mut Vec<String>) {
    for (i, e) in tolerated {
        let journal = plan
            .steps
            .get(i - 1)
            .is_some_and(|s| matches!(&s.step, Step::AppendLine { path, .. } if path.ends_with("switches.jsonl")));
        let w = match e {
            StepError::Unsettled(why) => format!(
                "{why}: carried on; what they still held to the color that was then stopped or replaced was cut"
            ),
            _ if journal => format!(
                "could not record the end of the switch in its journal (the next run reads what serves instead): {e}"
            ),
            _ => format!(
                "could not record the release in the ledger (nothing partial was left in it): {e}"
            ),
        };
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
}

/// A preparation that failed: an action's own failure as it is, anything else as a fault.
fn refusal(e: PlanError) -> Failure {
    match e.cause {
        StepError::Action(f) => f,
        other => Failure::infra(format!("{}: {other}", e.summary)),
    }
}

/// How a deploy's [`Action`] steps are done on a host.
struct DeployActions<'a> {
    t: &'a Target,
    version: &'a str,
    /// Where the backup says which dump it took and verified.
    observer: &'a dyn Observer,
    /// The id of the verified backup this deploy took, for a failed migration's report.
    backup_taken: std::sync::Mutex<Option<String>>,
}

impl DeployActions<'_> {
    fn backup_taken(&self) -> Option<String> {
        self.backup_taken.lock().map(|b| b.clone()).unwrap_or(None)
    }
}

#[async_trait]
impl Actions for DeployActions<'_> {
    async fn run(&self, exec: &dyn Executor, action: &Action) -> Result<(), Failure> {
        match action {
            Action::Pull { image } => pull::pull(exec, image).await,
            Action::Backup { label } => {
                let id = backup(exec, self.t, label, self.version, self.observer).await?;
                if let Ok(mut b) = self.backup_taken.lock() {
                    *b = id;
                }
                Ok(())
            }
            Action::ProbeSwarmNodes { probe } => crate::swarm::probe_nodes(exec, probe).await,
        }
    }
}

/// The migration a failed pre-deploy hook was applying, when its output says (T51).
fn migration_failure(e: &PlanError) -> Option<MigrationFailure> {
    if !e.summary.starts_with(hooks::PRE_DEPLOY) {
        return None;
    }
    crate::migration_report::failed_migration(
        e.cause.stdout().unwrap_or_default(),
        e.cause.stderr().unwrap_or_default(),
    )
}

/// What to do after a migration failed half-way: the web was never switched, but the
/// migrations before the failed one changed the schema it runs on.
fn migration_hint(t: &Target, m: &MigrationFailure, backup: Option<String>) -> String {
    let mut h = String::from(
        "the previous release keeps serving and was never switched; fix the failed migration and deploy again",
    );
    if !m.applied.is_empty() {
        h.push_str(
            "; the migrations applied before it stay applied: check the previous release works with them",
        );
    }
    match backup {
        Some(id) => h.push_str(&format!(
            "; the verified backup {id} was taken before any migration ran: `davit backup restore {} {id} --database <name>` restores it",
            t.environment
        )),
        None if t.backup.is_none() => h.push_str(
            "; no backup was taken (add [environments.<env>.backup] so one is taken before migrations)",
        ),
        None => {}
    }
    h
}

/// A rollback planned on one host, ready to run.
pub(crate) struct Restore {
    /// The strategy's steps, then the ledger records of the rollback.
    pub plan: Plan,
    /// The release made live again, as recorded.
    pub to: Record,
    /// The record the plan appends when the rollback succeeds.
    pub restored: Record,
    pub warnings: Vec<String>,
    /// The process containers before the rollback (see [`Deploy::procs`]).
    pub procs: Option<crate::processes::ProcObserved>,
}

/// Plan a rollback from `obs` to the previous good release, or to `to_version`: the strategy's
/// steps, then the records (the live release rolled back away from, the target restored).
pub(crate) async fn plan_rollback(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    reason: &str,
    obs: &Observed,
    dry_run: bool,
) -> Result<Restore, Failure> {
    let mut warnings = obs.ledger_warnings();
    // A dead proxy is started again before anything is switched (and the proxy's volumes found).
    let mut obs = obs.clone();
    warnings.extend(crate::supervise::prepare_host(exec, t, &mut obs, dry_run).await?);
    if !dry_run {
        strategy::pick(&t.strategy)
            .repair(exec, t, &mut obs, &mut warnings)
            .await?;
    }
    let obs = &obs;
    let live_id = obs.live_release();
    let live = live_id
        .as_deref()
        .and_then(|id| obs.ledger.iter().rev().find(|r| r.id == id))
        .cloned();
    let to = ledger::rollback_target(&obs.ledger, live_id.as_deref(), to_version)
        .cloned()
        .ok_or_else(|| {
            Failure::bad_input(
                match to_version {
                    Some(v) => format!(
                        "no good release of version {v} in the {} ledger to roll back to",
                        t.environment
                    ),
                    None => format!(
                        "no previous good release in the {} ledger to roll back to",
                        t.environment
                    ),
                },
                "see `davit releases` for what was deployed, then deploy the version you want",
            )
        })?;
    let rb = Rollback {
        to: &to,
        rel: NewRelease {
            id: to.id.clone(),
            version: to.version.clone(),
            image: to.image.clone(),
        },
        live: live.as_ref(),
        dry_run,
    };
    let s = strategy::pick(&t.strategy);
    strategy::check_processes(&*s, t)?;
    let (mut plan, color) = s.plan_rollback(exec, t, &rb, obs, &mut warnings).await?;
    if !dry_run {
        preflight(exec, &plan).await?;
    }
    let mut records: Vec<Record> = live
        .iter()
        .map(|bad| rollback_record(exec, t, Event::RolledBack, bad, reason))
        .collect();
    let mut restored = rollback_record(exec, t, Event::Restored, &to, reason);
    if color.is_some() {
        restored.color = color;
    }
    // The processes started again are the config's, as the plan ran them.
    if let Some(set) = &t.processes {
        restored.processes = ledger::ProcessRecord::of(set);
    }
    records.push(restored.clone());
    push_records(&mut plan, t, &records);
    Ok(Restore {
        plan,
        to,
        restored,
        warnings,
        procs: obs.procs.clone(),
    })
}

/// A rollback's record about release `r`.
fn rollback_record(
    exec: &dyn Executor,
    t: &Target,
    event: Event,
    r: &Record,
    reason: &str,
) -> Record {
    Record {
        event,
        at: ledger::now(),
        actor: t.actor.clone(),
        reason: Some(reason.to_string()),
        host: exec.host().to_string(),
        ..r.clone()
    }
}

/// Run a planned rollback; when it fails, record the failure.
pub(crate) async fn run_rollback(
    exec: &dyn Executor,
    t: &Target,
    r: Restore,
    reason: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    let Restore {
        plan,
        to,
        restored,
        mut warnings,
        procs,
    } = r;
    let actions = DeployActions {
        t,
        version: &to.version,
        observer,
        backup_taken: Default::default(),
    };
    match run_plan_with(exec, &plan, observer, &opts.cancel, &actions).await {
        Ok(tolerated) => {
            record_warnings(&plan, &tolerated, &mut warnings);
            let rel = NewRelease {
                id: to.id.clone(),
                version: to.version.clone(),
                image: to.image.clone(),
            };
            crate::processes::report_gaps(exec, t, &rel, procs.as_ref(), observer).await;
            Ok(Report {
                plan,
                record: Some(restored),
                warnings,
            })
        }
        Err(e) => {
            let mut failed = rollback_record(exec, t, Event::Failed, &to, reason);
            failed.reason = Some(format!("rollback failed: {e}"));
            append(exec, t, &failed, &mut warnings).await;
            Err(with_notes(
                Failure::new(
                    Exit::Infra,
                    format!(
                        "rollback of {} to {} failed; the current release keeps serving: {e}",
                        t.environment, to.version
                    ),
                )
                .with_hint(
                    "check the target release's container logs (docker logs) before retrying",
                ),
                &warnings,
            ))
        }
    }
}

/// What was found and repaired before the plan ran (a site file that disagreed with what
/// serves, a torn ledger line) is part of a failure's story too, not only of a success's.
fn with_notes(mut f: Failure, warnings: &[String]) -> Failure {
    for w in warnings {
        f.message.push_str("\nnote: ");
        f.message.push_str(w);
    }
    f
}

/// No verified backup, no migration: with `[environments.X.backup]` (required by default) a
/// `pg_dump` is taken and verified (scratch restore by default) as the plan's first change,
/// because the plan's pre-deploy hooks are where migrations change the schema. A failed or
/// unverifiable backup stops the deploy before anything changes (T37, T38).
async fn backup(
    exec: &dyn Executor,
    t: &Target,
    label: &str,
    version: &str,
    observer: &dyn Observer,
) -> Result<Option<String>, Failure> {
    let Some(settings) = &t.backup else {
        return Ok(None);
    };
    let spec = settings
        .spec(|k| std::env::var(k).ok())
        .map_err(Failure::from)?;
    let started = chrono::Utc::now();
    let manifest = davit_backup::backup(exec, &spec, label)
        .await
        .map_err(|e| {
            let f = Failure::from(e);
            Failure::new(
                f.exit,
                format!(
                    "no verified backup, no migration: the deploy of {version} stopped before changing anything: {}",
                    f.message
                ),
            )
            .with_hint(f.hint.unwrap_or_default())
        })?;
    davit_backup::require_verified_backup(exec, &spec, Some(started), spec.verify)
        .await
        .map_err(Failure::from)?;
    // Retention runs under the deploy lock and never deletes the newest verified backup.
    if let Err(e) = davit_backup::prune(exec, &spec).await {
        tracing::warn!("backup retention: {e}");
    }
    observer.event(&davit_exec::runner::Event::Note {
        text: &format!(
            "database backup {} verified ({} bytes)",
            manifest.id, manifest.size
        ),
    });
    Ok(Some(manifest.id))
}

/// Every program the plan runs must exist, checked once, all missing named together.
async fn preflight(exec: &dyn Executor, plan: &Plan) -> Result<(), Failure> {
    let missing = davit_exec::missing_programs(exec, &plan.programs()).await;
    if missing.is_empty() {
        return Ok(());
    }
    let hints: Vec<String> = missing
        .iter()
        .map(|m| match m.as_str() {
            "nginx" => "nginx: apt-get install nginx-light (or nginx)".to_string(),
            "docker" => "docker: install Docker Engine (apt-get install docker.io)".to_string(),
            "docker-compose" => "docker-compose: apt-get install docker-compose".to_string(),
            other => format!("{other}: install it on {}", exec.host()),
        })
        .collect();
    Err(Failure::infra(format!(
        "missing on {}: {}",
        exec.host(),
        missing.join(", ")
    ))
    .with_hint(hints.join("; ")))
}

/// Under `pull = "never"` the release's image must already be on the host, or the deploy stops
/// here, before anything starts (T24): bad input naming the fix.
fn require_image(
    exec: &dyn Executor,
    t: &Target,
    image: &str,
    obs: &Observed,
) -> Result<(), Failure> {
    if obs.image_id.is_none() && t.pull == PullPolicy::Never {
        return Err(Failure::bad_input(
            format!(
                "image {image} is not on {} and image.pull = \"never\"",
                exec.host()
            ),
            format!(
                "build or load it first (docker build -t {image} .), or set image.pull = \"missing\""
            ),
        ));
    }
    Ok(())
}

async fn append(exec: &dyn Executor, t: &Target, r: &Record, warnings: &mut Vec<String>) {
    append_all(exec, t, std::slice::from_ref(r), warnings).await
}

/// Records in one write of whole lines, secret values masked (T44, T46).
async fn append_all(exec: &dyn Executor, t: &Target, r: &[Record], warnings: &mut Vec<String>) {
    let dir_ok = exec.mkdir(&t.state_dir, 0o750).await;
    if let Err(e) = dir_ok.and(ledger::append(exec, &t.ledger_path(), r).await) {
        warnings.push(format!(
            "could not record the release in the ledger (nothing partial was left in it): {e}"
        ));
    }
}

/// A hint for the most common causes of a failed step, from what kind of step failed and, for
/// a command, what it said.
fn hint_for(t: &Target, plan: &Plan, e: &PlanError) -> String {
    let step = plan.steps.get(e.index - 1).map(|s| &s.step);
    let stderr = e.cause.stderr().unwrap_or_default();
    if stderr.contains("port is already allocated") || stderr.contains("address already in use") {
        "another process holds the port: free it or change the ports in davit.toml".into()
    } else if let Some(Step::Exec(c)) = step
        && c.program == t.proxy.nginx
        && c.args.iter().any(|a| a == "-t")
    {
        "nginx rejected the new configuration (see the message above); fix the [..proxy] settings in davit.toml (snippet, files, locations)".into()
    } else if matches!(e.cause, StepError::Probe(_)) && e.to_string().contains("status 400") {
        "the app answered 400 Bad Request: Django does that when the Host header is not in ALLOWED_HOSTS; add the probe's host (health.host, default the host of the environment's url) to ALLOWED_HOSTS, or set health.host to a name it lists".into()
    } else if matches!(e.cause, StepError::Probe(_)) {
        "the new release never passed its health check: check its logs (docker logs) and health settings".into()
    } else {
        "the previous release is untouched; fix the cause above and deploy again".into()
    }
}

#[cfg(test)]
mod tests;
