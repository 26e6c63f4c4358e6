//! Deploying a release and taking it back: strategies, the nginx switch, the ledger, rollback.
//!
//! The flow is the same for every strategy: observe the host (read-only), make a `Plan` (pure),
//! show it (`--dry-run` stops here), check every program it needs is installed, run it with the
//! one executor, and record the outcome in the ledger. Failures inside the plan undo what was
//! done (a new color that never got healthy is removed; a switch that does not verify is
//! reverted), so "nothing lost" is a property of the plan, not of each caller's error handling.

pub mod bluegreen;
pub mod compose;
pub mod docker;
pub mod fleet;
pub mod kubernetes;
pub mod ledger;
pub mod lock;
pub mod nginx;
pub mod processes;
pub mod pull;
pub mod services;
pub mod swarm;
pub mod target;

use davit_config::{HookPlace, PullPolicy, Strategy};
use davit_core::{Exit, Failure, FileBody, Plan, Step, validate};
use davit_exec::runner::{Cancel, run_plan_cancellable};
use davit_exec::{Executor, Observer};
use ledger::{Event, Record};
use std::path::PathBuf;
use std::time::Duration;

pub use target::Target;

/// A release about to go live (or to be restored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    pub id: String,
    pub version: String,
    pub image: String,
}

/// What davit saw on the host before planning.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Local image id of the release's image, when present.
    pub image_id: Option<String>,
    pub needs_pull: bool,
    /// Blue-green: what the live site file points at.
    pub live: Option<nginx::LiveSite>,
    pub nginx_running: bool,
    pub compose: Option<docker::ComposeFlavor>,
    pub ledger: Vec<Record>,
    /// Ledger lines that could not be read (reported as a warning).
    pub torn_ledger_lines: Vec<usize>,
    /// Swarm: the node and the service (None for other strategies).
    pub swarm: Option<swarm::SwarmState>,
}

impl Observed {
    /// The id of the live release: the site file for blue-green, the ledger otherwise.
    pub fn live_release(&self) -> Option<String> {
        match &self.live {
            Some(l) => Some(l.release.clone()),
            None => ledger::live(&self.ledger).map(|r| r.id.clone()),
        }
    }

    /// The version that is live: the site file for blue-green, the ledger otherwise.
    pub fn live_version(&self) -> Option<String> {
        match &self.live {
            Some(l) => Some(l.version.clone()),
            None => ledger::live(&self.ledger).map(|r| r.version.clone()),
        }
    }
}

/// A version to deploy must be a valid image tag: bad input (exit 2) naming the fix otherwise.
pub fn check_version(version: &str) -> Result<(), Failure> {
    validate::version("version", version).map_err(|e| {
        Failure::bad_input(
            e.to_string(),
            "pass the image tag to deploy, e.g. --version 1.4.2",
        )
    })
}

pub fn release_dir(t: &Target, release: &str) -> PathBuf {
    t.state_dir.join("releases").join(release)
}

pub fn env_path(t: &Target, release: &str) -> PathBuf {
    release_dir(t, release).join("app.env")
}

/// Read the host's state. Nothing here changes anything.
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
        let (records, torn) = ledger::parse(&String::from_utf8_lossy(&bytes));
        obs.ledger = records;
        obs.torn_ledger_lines = torn;
    }
    match t.strategy {
        Strategy::BlueGreen => {
            let files = nginx::Files::of(t);
            if let Some(text) = exec
                .read_file(&files.site())
                .await
                .map_err(|e| Failure::infra(e.to_string()))?
            {
                obs.live = nginx::parse_live(&String::from_utf8_lossy(&text));
            }
            obs.nginx_running = pid_alive(exec, &files.pid()).await;
        }
        Strategy::Compose => {
            obs.compose = docker::compose_flavor(exec).await;
        }
        Strategy::Swarm => {
            obs.swarm = Some(swarm::observe(exec, t).await);
        }
        Strategy::Kubernetes => {}
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

async fn pid_alive(exec: &dyn Executor, pid_file: &std::path::Path) -> bool {
    let Ok(Some(bytes)) = exec.read_file(pid_file).await else {
        return false;
    };
    let pid = String::from_utf8_lossy(&bytes).trim().to_string();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let c = davit_core::Cmd::new("kill")
        .args(["-0", &pid])
        .timeout(Duration::from_secs(5));
    exec.run(&c).await.is_ok_and(|o| o.success())
}

/// The release folder, its 0600 env file, and pre-deploy hooks (which run before any switch).
pub(crate) fn push_env_and_pre_hooks(
    plan: &mut Plan,
    t: &Target,
    rel: &NewRelease,
    _obs: &Observed,
) {
    plan.push(
        "create the release folder",
        Step::MkDir {
            path: release_dir(t, &rel.id),
            mode: 0o700,
        },
    );
    let text = docker::env_file(t, &rel.id, &rel.version);
    let body = if t.secret_env.is_empty() {
        FileBody::Plain(text)
    } else {
        FileBody::Secret(davit_core::Secret::new(text))
    };
    plan.push(
        "write the release's env file (0600: it may hold secrets)",
        Step::WriteFile {
            path: env_path(t, &rel.id),
            body,
            mode: 0o600,
        },
    );
    for (i, h) in t.pre_deploy.iter().enumerate() {
        plan.push(
            format!("pre-deploy hook {}: {}", i + 1, h.run.join(" ")),
            Step::Exec(hook_cmd(t, rel, h)),
        );
    }
}

pub(crate) fn push_post_hooks(plan: &mut Plan, t: &Target, rel: &NewRelease) {
    for (i, h) in t.post_deploy.iter().enumerate() {
        plan.push(
            format!("post-deploy hook {}: {}", i + 1, h.run.join(" ")),
            Step::Exec(hook_cmd(t, rel, h)),
        );
    }
}

fn hook_cmd(t: &Target, rel: &NewRelease, h: &davit_config::Hook) -> davit_core::Cmd {
    let timeout = Duration::from_secs(h.timeout_secs);
    match h.on {
        HookPlace::Image => {
            docker::hook_in_image(&rel.image, &env_path(t, &rel.id), &h.run, timeout)
        }
        HookPlace::Host => davit_core::Cmd::new(h.run[0].clone())
            .args(h.run[1..].iter().cloned())
            .env("DAVIT_APP", t.app.clone())
            .env("DAVIT_ENVIRONMENT", t.environment.clone())
            .env("DAVIT_RELEASE", rel.id.clone())
            .env("DAVIT_VERSION", rel.version.clone())
            .env("DAVIT_IMAGE", rel.image.clone())
            .env("DAVIT_HOSTS", t.host.clone())
            .env("DAVIT_PERFORMER", t.actor.clone())
            .timeout(timeout),
    }
}

/// What a deploy or rollback needs besides the target.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// The approval decision to record with the release.
    pub approval: Option<serde_json::Value>,
    /// Set by a signal handler; the plan stops and reverts.
    pub cancel: Cancel,
    /// How to take the deploy lock.
    pub lock: lock::LockOptions,
    /// The caller already holds the lock (verify rolling back inside its own locked run).
    pub lock_held: bool,
    /// Use this release id instead of a fresh one (the caller already named the release in a
    /// GitHub deployment record).
    pub release_id: Option<String>,
}

/// The result of a deploy or rollback that ran (or, in dry-run, was planned).
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    /// The ledger record written; None in dry-run.
    pub record: Option<Record>,
    pub warnings: Vec<String>,
}

/// Run `f` holding the environment's deploy lock (released on every path), unless this is a
/// dry run or the caller already holds it.
async fn locked<F>(
    exec: &dyn Executor,
    t: &Target,
    operation: &str,
    version: &str,
    opts: &Options,
    f: F,
) -> Result<Report, Failure>
where
    F: std::future::Future<Output = Result<Report, Failure>>,
{
    if opts.dry_run || opts.lock_held {
        return f.await;
    }
    let lock = lock::acquire(exec, t, operation, version, &opts.lock).await?;
    let stale = lock.freed_stale.clone();
    let mut result = f.await;
    let released = lock.release(exec, t).await;
    if let Ok(report) = &mut result {
        if let Some(h) = stale {
            report.warnings.push(h.freed_note());
        }
        if let Err(e) = released {
            report
                .warnings
                .push(format!("could not release the deploy lock: {e}"));
        }
    }
    result
}

/// Deploy `version` of the target's image, holding the deploy lock.
pub async fn deploy(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    check_version(version)?;
    t.require_secrets()?;
    locked(
        exec,
        t,
        "deploy",
        version,
        opts,
        deploy_unlocked(exec, t, version, opts, observer),
    )
    .await
}

async fn deploy_unlocked(
    exec: &dyn Executor,
    t: &Target,
    version: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    let image = t.image_for(version);
    let mut obs = observe(exec, t, Some(&image)).await?;
    let mut warnings = ledger_warnings(&obs);
    ensure_image(exec, t, &image, &mut obs, opts.dry_run).await?;
    let rel = NewRelease {
        id: opts
            .release_id
            .clone()
            .unwrap_or_else(|| ledger::new_release_id(version)),
        version: version.to_string(),
        image: image.clone(),
    };
    let plan = match t.strategy {
        Strategy::BlueGreen => bluegreen::plan_deploy(t, &rel, &obs),
        Strategy::Compose => {
            let flavor = compose_flavor(&obs, opts.dry_run, &mut warnings)?;
            let previous = ledger::live(&obs.ledger).map(|r| r.id.clone());
            compose::plan_deploy(t, &rel, &obs, flavor, previous.as_deref())
        }
        Strategy::Swarm => {
            swarm::ready(&obs, opts.dry_run, &mut warnings)?;
            swarm::plan_deploy(t, &rel, &obs)
        }
        Strategy::Kubernetes => kubernetes::plan_deploy(t, &rel, &obs),
    };
    if opts.dry_run {
        return Ok(Report {
            plan,
            record: None,
            warnings,
        });
    }
    preflight(exec, &plan).await?;
    backup_before_migrations(exec, t, &rel, observer).await?;
    let color = match t.strategy {
        Strategy::BlueGreen => Some(bluegreen::idle_color(&obs).to_string()),
        Strategy::Compose | Strategy::Swarm | Strategy::Kubernetes => None,
    };
    let mut record = Record {
        id: rel.id.clone(),
        event: Event::Deployed,
        version: rel.version.clone(),
        image: rel.image.clone(),
        digest: obs.image_id.clone(),
        strategy: t.strategy.as_str().to_string(),
        color,
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
                record.digest = docker::image_id(exec, &image).await;
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
            let failed_probe = matches!(
                plan.steps.get(e.index - 1).map(|s| &s.step),
                Some(Step::WaitHttp(_))
            ) || swarm::rolled_back(&e.cause); // Swarm reverted the release: a verdict, not a fault
            let exit = if failed_probe {
                Exit::Rejected
            } else {
                Exit::Infra
            };
            Err(Failure::new(
                exit,
                format!(
                    "deploy of {version} to {} failed; traffic stays on the previous release: {e}",
                    t.environment
                ),
            )
            .with_hint(hint_for(&e.cause)))
        }
    }
}

/// Roll back to the previous good release, or to `to_version`, holding the deploy lock.
pub async fn rollback(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    reason: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    locked(
        exec,
        t,
        "rollback",
        to_version.unwrap_or("previous"),
        opts,
        rollback_unlocked(exec, t, to_version, reason, opts, observer),
    )
    .await
}

async fn rollback_unlocked(
    exec: &dyn Executor,
    t: &Target,
    to_version: Option<&str>,
    reason: &str,
    opts: &Options,
    observer: &dyn Observer,
) -> Result<Report, Failure> {
    let obs = observe(exec, t, None).await?;
    let mut warnings = ledger_warnings(&obs);
    let live_id = obs.live_release();
    let live_rec = live_id
        .as_deref()
        .and_then(|id| obs.ledger.iter().rev().find(|r| r.id == id))
        .cloned();
    let target_rec = ledger::rollback_target(&obs.ledger, live_id.as_deref(), to_version)
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
    let rel = NewRelease {
        id: target_rec.id.clone(),
        version: target_rec.version.clone(),
        image: target_rec.image.clone(),
    };
    let bad_color = live_rec.as_ref().and_then(|r| r.color.clone());
    let image_present = docker::image_id(exec, &rel.image).await.is_some();
    let refuse = |what: String| {
        Failure::new(
            Exit::Infra,
            format!(
                "rollback to {} refused before changing anything: {what}",
                rel.version
            ),
        )
        .with_hint(format!(
            "bring the image back (docker pull {}) or roll back to another version with --to <version>; see `davit releases`",
            rel.image
        ))
    };
    let (plan, color) = match t.strategy {
        Strategy::BlueGreen => {
            let color = target_rec.color.clone().unwrap_or_else(|| "blue".into());
            let state = docker::container(exec, &bluegreen::container_name(t, &color)).await;
            match state {
                Some(s) if s.release == rel.id && (s.running || image_present) => (
                    bluegreen::plan_switch_back(
                        t,
                        &color,
                        &rel.id,
                        &rel.version,
                        !s.running,
                        bad_color.as_deref(),
                        &obs,
                    ),
                    color,
                ),
                _ if image_present => {
                    // Re-creating the release writes its env file again.
                    t.require_secrets()?;
                    let new_color = bluegreen::idle_color(&obs).to_string();
                    (
                        bluegreen::plan_redeploy(t, &rel, bad_color.as_deref(), &obs),
                        new_color,
                    )
                }
                _ => {
                    return Err(refuse(format!(
                        "its container ({}) and its image ({}) are both gone",
                        bluegreen::container_name(t, &color),
                        rel.image
                    )));
                }
            }
        }
        Strategy::Compose => {
            let file = compose::compose_file_path(t, &rel.id);
            if !image_present {
                return Err(refuse(format!("its image {} is gone", rel.image)));
            }
            if exec.read_file(&file).await.ok().flatten().is_none() {
                return Err(refuse(format!(
                    "its compose file {} is gone",
                    file.display()
                )));
            }
            let flavor = compose_flavor(&obs, opts.dry_run, &mut warnings)?;
            (compose::plan_rollback(t, &rel, flavor), String::new())
        }
        Strategy::Swarm => {
            swarm::ready(&obs, opts.dry_run, &mut warnings)?;
            (swarm::plan_rollback(t, &rel, &obs), String::new())
        }
        Strategy::Kubernetes => (kubernetes::plan_rollback(t, &rel, &obs), String::new()),
    };
    if opts.dry_run {
        return Ok(Report {
            plan,
            record: None,
            warnings,
        });
    }
    preflight(exec, &plan).await?;
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
            if let Some(bad) = &live_rec {
                append(exec, t, &base(Event::RolledBack, bad), &mut warnings).await;
            }
            let mut restored = base(Event::Restored, &target_rec);
            if !color.is_empty() {
                restored.color = Some(color);
            }
            append(exec, t, &restored, &mut warnings).await;
            Ok(Report {
                plan,
                record: Some(restored),
                warnings,
            })
        }
        Err(e) => {
            let mut failed = base(Event::Failed, &target_rec);
            failed.reason = Some(format!("rollback failed: {e}"));
            append(exec, t, &failed, &mut warnings).await;
            Err(Failure::new(
                Exit::Infra,
                format!(
                    "rollback of {} to {} failed; the current release keeps serving: {e}",
                    t.environment, rel.version
                ),
            )
            .with_hint("check the target release's container logs (docker logs) before retrying"))
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
/// missing under `pull = "never"` is bad input; otherwise it is pulled (bounded retries).
async fn ensure_image(
    exec: &dyn Executor,
    t: &Target,
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
    if !dry_run && obs.needs_pull && matches!(t.strategy, Strategy::BlueGreen | Strategy::Compose) {
        pull::pull(exec, image).await?;
        obs.needs_pull = false;
        obs.image_id = docker::image_id(exec, image).await;
    }
    Ok(())
}

/// What a host needs to take `version`, checked and fetched without changing what runs: the
/// image (pulled when the policy says so) and the strategy's tools. A fleet runs this on every
/// host before the first host's plan, so a host that cannot take the release stops the deploy
/// before any host, or the database, changes.
pub async fn prepare(exec: &dyn Executor, t: &Target, version: &str) -> Result<(), Failure> {
    let image = t.image_for(version);
    let mut obs = observe(exec, t, Some(&image)).await?;
    ensure_image(exec, t, &image, &mut obs, false).await?;
    if t.strategy == Strategy::Compose {
        compose_flavor(&obs, false, &mut Vec::new())?;
    }
    if t.strategy == Strategy::BlueGreen && !exec.has_program(&t.proxy.nginx).await {
        return Err(Failure::infra(format!(
            "{} is not installed on {}",
            t.proxy.nginx,
            exec.host()
        ))
        .with_hint("install nginx on the host (apt-get install nginx-light) or set proxy.nginx"));
    }
    Ok(())
}

fn compose_flavor(
    obs: &Observed,
    dry_run: bool,
    warnings: &mut Vec<String>,
) -> Result<docker::ComposeFlavor, Failure> {
    match obs.compose {
        Some(f) => Ok(f),
        None if dry_run => {
            warnings.push("no docker compose found; the plan shows the v2 plugin form".into());
            Ok(docker::ComposeFlavor::Plugin)
        }
        None => Err(Failure::infra("neither `docker compose` nor `docker-compose` works here")
            .with_hint("install the Compose plugin (apt-get install docker-compose-plugin) or docker-compose")),
    }
}

fn ledger_warnings(obs: &Observed) -> Vec<String> {
    if obs.torn_ledger_lines.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "ledger lines {:?} could not be read and were skipped (torn write?)",
            obs.torn_ledger_lines
        )]
    }
}

async fn append(exec: &dyn Executor, t: &Target, r: &Record, warnings: &mut Vec<String>) {
    let line = serde_json::to_string(r).expect("records serialize");
    let dir_ok = exec.mkdir(&t.state_dir, 0o750).await;
    if let Err(e) = dir_ok.and(exec.append_line(&t.ledger_path(), &line).await) {
        warnings.push(format!("could not record the release in the ledger: {e}"));
    }
}

/// A hint for the most common causes of a failed step.
fn hint_for(cause: &str) -> String {
    if cause.contains("port is already allocated") || cause.contains("address already in use") {
        "another process holds the port: free it or change the ports in davit.toml".into()
    } else if cause.contains("nginx") && cause.contains("-t") {
        "nginx rejected the new configuration (see the message above); fix proxy.snippet in davit.toml".into()
    } else if cause.contains("GET ") {
        "the new release never passed its health check: check its logs (docker logs) and health settings".into()
    } else {
        "the previous release is untouched; fix the cause above and deploy again".into()
    }
}

#[cfg(test)]
mod plan_tests;
