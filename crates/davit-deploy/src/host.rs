//! One host's part of a deploy or a rollback: prepare and plan from what was observed, then run
//! the plan and record the outcome.
//!
//! The orchestrator ([`crate::fleet`]) decides the order across hosts, holds the locks and
//! converges back on failure; this module is what happens on each host, the same whether the
//! environment has one host or many. Preparing (pulling the image, checking the strategy can run
//! and every program the plan needs is installed) is separate from running so the orchestrator
//! can prepare every host before the first one changes.

use crate::ledger::{self, Event, Record};
use crate::observe::Observed;
use crate::strategy::{self, Rollback};
use crate::target::Target;
use crate::{NewRelease, Options, Report, docker, pull};
use davit_config::PullPolicy;
use davit_core::{Exit, Failure, Plan, Step};
use davit_exec::runner::{PlanError, StepError, run_plan_cancellable};
use davit_exec::{Executor, Observer};

/// A deploy planned on one host, ready to run.
pub(crate) struct Deploy {
    pub rel: NewRelease,
    pub obs: Observed,
    pub plan: Plan,
    pub warnings: Vec<String>,
}

/// Get the host ready for `version` (the image pulled when davit pulls it) and plan the deploy
/// from `obs`. Outside a dry run, every program the plan runs must be installed.
pub(crate) async fn plan_deploy(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    release_id: &str,
    mut obs: Observed,
    dry_run: bool,
) -> Result<Deploy, Failure> {
    let s = strategy::pick(&t.strategy);
    let image = t.image_for(version);
    let mut warnings = obs.ledger_warnings();
    if !dry_run {
        s.repair(exec, t, &mut obs, &mut warnings).await?;
    }
    ensure_image(exec, t, s.pulls_image(), &image, &mut obs, dry_run).await?;
    s.ready(&obs, dry_run, &mut warnings)?;
    let rel = NewRelease {
        id: release_id.to_string(),
        version: version.to_string(),
        image,
    };
    let plan = s.plan_deploy(t, &rel, &obs);
    if !dry_run {
        preflight(exec, &plan).await?;
    }
    Ok(Deploy {
        rel,
        obs,
        plan,
        warnings,
    })
}

/// Run a planned deploy: the backup gate, the plan, and the ledger record of how it ended.
pub(crate) async fn run_deploy(
    exec: &dyn Executor,
    t: &Target,
    d: Deploy,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    let Deploy {
        rel,
        obs,
        plan,
        mut warnings,
    } = d;
    backup_before_migrations(exec, t, &rel, observer).await?;
    let s = strategy::pick(&t.strategy);
    let mut record = Record {
        id: rel.id.clone(),
        event: Event::Deployed,
        version: rel.version.clone(),
        image: rel.image.clone(),
        digest: obs.image_id.clone(),
        strategy: s.name().to_string(),
        color: s.deploy_color(&obs),
        environment: t.environment.clone(),
        host: exec.host().to_string(),
        at: String::new(),
        actor: t.actor.clone(),
        reason: None,
        approval: opts.approval.clone(),
    };
    match run_plan_cancellable(exec, &plan, observer, &opts.cancel).await {
        Ok(()) => {
            if record.digest.is_none() || obs.needs_pull {
                record.digest = docker::image_id(exec, &rel.image).await;
            }
            record.at = ledger::now();
            append(exec, t, &record, &mut warnings).await;
            Ok(Report {
                plan,
                record: Some(record),
                warnings,
            })
        }
        Err(e) => {
            record.event = Event::Failed;
            record.reason = Some(e.to_string());
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
                        "deploy of {} to {} failed; traffic stays on the previous release: {e}",
                        rel.version, t.environment
                    ),
                )
                .with_hint(hint_for(t, &plan, &e)),
                &warnings,
            ))
        }
    }
}

/// A rollback planned on one host, ready to run.
pub(crate) struct Restore {
    pub plan: Plan,
    /// The release made live again, as recorded.
    pub to: Record,
    /// The live release being rolled back away from.
    pub live: Option<Record>,
    /// The color the restored release runs in (blue-green).
    pub color: Option<String>,
    pub warnings: Vec<String>,
}

/// Plan a rollback from `obs` to the previous good release, or to `to_version`.
pub(crate) async fn plan_rollback(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    obs: &Observed,
    dry_run: bool,
) -> Result<Restore, Failure> {
    let mut warnings = obs.ledger_warnings();
    let mut obs = obs.clone();
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
    let (plan, color) = strategy::pick(&t.strategy)
        .plan_rollback(exec, t, &rb, obs, &mut warnings)
        .await?;
    if !dry_run {
        preflight(exec, &plan).await?;
    }
    Ok(Restore {
        plan,
        to,
        live,
        color,
        warnings,
    })
}

/// Run a planned rollback and record it: the bad release rolled back, the target restored.
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
        live,
        color,
        mut warnings,
    } = r;
    let base = |event: Event, r: &Record| Record {
        event,
        at: ledger::now(),
        actor: t.actor.clone(),
        reason: Some(reason.to_string()),
        host: exec.host().to_string(),
        ..r.clone()
    };
    match run_plan_cancellable(exec, &plan, observer, &opts.cancel).await {
        Ok(()) => {
            let mut restored = base(Event::Restored, &to);
            if color.is_some() {
                restored.color = color;
            }
            // "rolled back" and "restored" in one write: never one without the other (T44).
            let mut lines: Vec<Record> = live
                .iter()
                .map(|bad| base(Event::RolledBack, bad))
                .collect();
            lines.push(restored.clone());
            append_all(exec, t, &lines, &mut warnings).await;
            Ok(Report {
                plan,
                record: Some(restored),
                warnings,
            })
        }
        Err(e) => {
            let mut failed = base(Event::Failed, &to);
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

/// No verified backup, no migration: with `[environments.X.backup]` (required by default) a
/// `pg_dump` is taken and verified (scratch restore by default) before the plan runs, because the
/// plan's pre-deploy hooks are where migrations change the schema. A failed or unverifiable
/// backup stops the deploy before anything changes (T37, T38).
async fn backup_before_migrations(
    exec: &dyn Executor,
    t: &Target,
    rel: &NewRelease,
    observer: &dyn Observer,
) -> Result<(), Failure> {
    let Some(settings) = &t.backup else {
        return Ok(());
    };
    if !settings.required {
        return Ok(());
    }
    let spec = settings
        .spec(|k| std::env::var(k).ok())
        .map_err(Failure::from)?;
    let started = chrono::Utc::now();
    observer.event(&davit_exec::Event::StepStarted {
        index: 0,
        total: 0,
        summary: "database backup before migrations",
    });
    let begun = std::time::Instant::now();
    let manifest = davit_backup::backup(exec, &spec, &format!("before {}", rel.id))
        .await
        .map_err(|e| {
            let f = Failure::from(e);
            Failure::new(
                f.exit,
                format!(
                    "no verified backup, no migration: the deploy of {} stopped before changing anything: {}",
                    rel.version, f.message
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
    observer.event(&davit_exec::Event::StepDone {
        index: 0,
        summary: &format!(
            "database backup {} verified ({} bytes)",
            manifest.id, manifest.size
        ),
        elapsed: begun.elapsed(),
    });
    Ok(())
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

/// The release's image is on the host, or the deploy stops here, before anything starts (T24):
/// missing under `pull = "never"` is bad input; otherwise, where davit pulls (`pulls`), it is
/// pulled (bounded retries).
async fn ensure_image(
    exec: &dyn Executor,
    t: &Target,
    pulls: bool,
    image: &str,
    obs: &mut Observed,
    dry_run: bool,
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
    if !dry_run && obs.needs_pull && pulls {
        pull::pull(exec, image).await?;
        obs.needs_pull = false;
        obs.image_id = docker::image_id(exec, image).await;
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

/// What was found and repaired before the plan ran (a site file that disagreed with what
/// serves, a torn ledger line) is part of a failure's story too, not only of a success's.
fn with_notes(mut f: Failure, warnings: &[String]) -> Failure {
    for w in warnings {
        f.message.push_str("\nnote: ");
        f.message.push_str(w);
    }
    f
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
        "nginx rejected the new configuration (see the message above); fix proxy.snippet in davit.toml".into()
    } else if matches!(e.cause, StepError::Probe(_)) {
        "the new release never passed its health check: check its logs (docker logs) and health settings".into()
    } else {
        "the previous release is untouched; fix the cause above and deploy again".into()
    }
}
