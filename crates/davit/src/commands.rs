//! deploy, rollback, verify, releases: load settings, call the library, print, exit code.

use crate::cli::{
    BackupAction, BackupArgs, DeployArgs, Global, LockAction, LockArgs, ReleasesArgs, RollbackArgs,
    VerifyArgs,
};
use davit_config::Config;
use davit_core::{Exit, Failure};
use davit_deploy::{Options, Report, Target, ledger};
use davit_exec::Timeline;
use davit_exec::runner::Cancel;
use davit_gha::Gha;
use davit_verify::records::Records;
use std::time::Duration;

pub fn load(global: &Global, environment: &str) -> Result<Target, Failure> {
    load_with_config(global, environment).map(|(_, t)| t)
}

/// The target and the davit.toml it came from, read once.
fn load_with_config(global: &Global, environment: &str) -> Result<(Config, Target), Failure> {
    let cfg =
        Config::load(&global.config).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let t = Target::resolve(&cfg, environment, &|k| std::env::var(k).ok())?;
    Ok((cfg, t))
}

fn print_report(report: &Report, dry_run: bool) {
    for w in &report.warnings {
        warn(w);
    }
    if dry_run {
        print!("{}", report.plan.render());
    }
}

fn outputs(gha: &Gha, t: &Target, report: &Report) {
    if let Some(r) = &report.record {
        let _ = gha.set_output("release-id", &r.id);
        let _ = gha.set_output("version", &r.version);
        let _ = gha.set_output("image", &r.image);
        let _ = gha.set_output("digest", r.digest.as_deref().unwrap_or(""));
        let _ = gha.set_output("url", &t.public_url());
        // Everything in the row is untrusted text (actor, version): escaped so it cannot add
        // rows, tags or links to the summary (T47).
        use davit_core::text::{markdown as md, markdown_code as code};
        let _ = gha.summary(&format!(
            "## davit: {} {} → {}\n\n| release | image | digest | strategy | actor |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |\n",
            md(&t.environment),
            match r.event {
                ledger::Event::Restored => "rolled back",
                _ => "deployed",
            },
            md(&r.version),
            code(&r.id),
            code(&r.image),
            code(r.digest.as_deref().unwrap_or("-")),
            md(&r.strategy),
            md(&r.actor)
        ));
    }
}

pub async fn deploy(global: &Global, a: DeployArgs) -> Result<Exit, Failure> {
    let t = load(global, &a.environment)?;
    let approval = match &a.approval_json {
        Some(j) if !j.trim().is_empty() => Some(serde_json::from_str(j).map_err(|e| {
            Failure::bad_input(
                format!("--approval-json is not JSON: {e}"),
                "pass the decision-json output of davit-approve unchanged",
            )
        })?),
        _ => None,
    };
    davit_deploy::check_version(&a.version)?;
    let timeline = Timeline::default();
    if !a.dry_run {
        timeline.note(&format!(
            "deploy {} to {} ({})",
            a.version,
            t.environment,
            t.strategy.as_str()
        ));
    }
    let fleet = davit_deploy::fleet::connect(&t).await?;
    let exec = &*fleet.first().exec;
    let release_id = ledger::new_release_id(&a.version);
    let records = if a.dry_run {
        Records::disabled()
    } else {
        Records::from_env()
    };
    let image = t.image_for(&a.version);
    let digest = davit_deploy::docker::image_id(exec, &image)
        .await
        .unwrap_or_default();
    let record_id = records
        .begin_deploy(&t, &release_id, &image, &digest, approval.clone())
        .await;
    let result = fleet
        .deploy(
            &a.version,
            &Options {
                dry_run: a.dry_run,
                approval,
                cancel: cancel_on_signal(),
                release_id: Some(release_id),
                ..Default::default()
            },
            &timeline,
        )
        .await;
    // One GitHub deployment for the environment, whatever the number of hosts.
    let first = result.clone().map(|reports| reports[0].clone());
    records.end_deploy(&t, record_id, &first).await;
    for w in records.warnings() {
        warn(&w);
    }
    let reports = result?;
    print_reports(&fleet, &reports, a.dry_run);
    if !a.dry_run {
        timeline.note(&format!(
            "{} is live in {}{}",
            a.version,
            t.environment,
            on_hosts(&t)
        ));
        outputs(&Gha::from_env(), &t, &reports[0]);
    }
    Ok(Exit::Ok)
}

/// ` on web-1, web-2` when the environment has several hosts.
fn on_hosts(t: &Target) -> String {
    if t.hosts.len() > 1 {
        format!(" on {}", t.hosts.join(", "))
    } else {
        String::new()
    }
}

/// Each host's warnings and (dry run) plan, under the host's name when there are several.
fn print_reports(fleet: &davit_deploy::fleet::Fleet, reports: &[Report], dry_run: bool) {
    for (m, r) in fleet.members.iter().zip(reports) {
        if fleet.members.len() > 1 && dry_run {
            println!("# host {}", m.target.host);
        }
        print_report(r, dry_run);
    }
}

pub async fn rollback(global: &Global, a: RollbackArgs) -> Result<Exit, Failure> {
    let t = load(global, &a.environment)?;
    let timeline = Timeline::default();
    let fleet = davit_deploy::fleet::connect(&t).await?;
    let reports = fleet
        .rollback(
            a.to.as_deref(),
            &a.reason,
            &Options {
                dry_run: a.dry_run,
                cancel: cancel_on_signal(),
                ..Default::default()
            },
            &timeline,
        )
        .await?;
    print_reports(&fleet, &reports, a.dry_run);
    let report = &reports[0];
    if let Some(r) = &report.record {
        timeline.note(&format!(
            "rolled back {} to {}{}",
            t.environment,
            r.version,
            on_hosts(&t)
        ));
        // A person rolled back on purpose: the replaced release is marked inactive, not failed.
        let records = Records::from_env();
        records
            .rolled_back(&t, report, davit_github::RolledBack::Inactive)
            .await;
        for w in records.warnings() {
            warn(&w);
        }
        outputs(&Gha::from_env(), &t, report);
    }
    Ok(Exit::Ok)
}

pub async fn verify(global: &Global, a: VerifyArgs) -> Result<Exit, Failure> {
    let cfg =
        Config::load(&global.config).map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let t = Target::resolve(&cfg, &a.environment, &|k| std::env::var(k).ok())?;
    let mut opts = davit_verify::VerifyOptions::from_target(&t);
    opts.analysis = davit_verify::analysis_spec(
        &cfg,
        &davit_analysis::Overrides {
            prometheus_url: a.prometheus_url.clone(),
            ..Default::default()
        },
    )?;
    opts.version = a.version;
    if let Some(w) = a.watch_secs {
        opts.watch = Duration::from_secs(w);
    }
    opts.rollback &= !a.no_rollback;
    let timeline = Timeline::default();
    let fleet = davit_deploy::fleet::connect(&t).await?;
    let verdict = davit_verify::verify_fleet(&fleet, &opts, &timeline).await?;
    verdict.publish(&Gha::from_env());
    Ok(verdict.exit())
}

pub async fn releases(global: &Global, a: ReleasesArgs) -> Result<Exit, Failure> {
    let t = load(global, &a.environment)?;
    let fleet = davit_deploy::fleet::connect(&t).await?;
    for m in &fleet.members {
        let obs = davit_deploy::observe(&*m.exec, &m.target, None).await?;
        for w in obs.ledger_warnings() {
            warn(&w);
        }
        if a.json {
            // Each record names its host, so the lines of several hosts stay apart.
            for r in &obs.ledger {
                println!("{}", serde_json::to_string(r).expect("records serialize"));
            }
            continue;
        }
        if fleet.members.len() > 1 {
            println!("# {}", m.target.host);
        }
        print!(
            "{}",
            ledger_table(&obs.ledger, obs.live_release().as_deref())
        );
    }
    Ok(Exit::Ok)
}

/// A warning on stderr: secret values masked, control characters escaped (T46, T47).
fn warn(w: &str) {
    let w = davit_core::redact::redact(w);
    eprintln!("warning: {}", davit_core::text::lines(&w));
}

/// The ledger as an aligned table, the live release marked with `*`. Every cell is one escaped
/// line: a newline or ANSI escape in an actor or reason cannot forge a row (T47).
pub fn ledger_table(records: &[ledger::Record], live: Option<&str>) -> String {
    // The processes column only for a ledger that records processes.
    let with_procs = records.iter().any(|r| !r.processes.is_empty());
    let procs = |r: &ledger::Record| -> String {
        if !with_procs {
            return String::new();
        }
        let p: Vec<String> = r
            .processes
            .iter()
            .map(|p| {
                if p.replicas > 1 {
                    format!("{}x{}", p.name, p.replicas)
                } else {
                    p.name.clone()
                }
            })
            .collect();
        let p = if p.is_empty() {
            "-".into()
        } else {
            p.join(",")
        };
        format!("{p:<40}  ")
    };
    let mut out = format!(
        "  {:<20}  {:<12}  {:<10}  {:<6}  {:<10}  {}{}\n",
        "time",
        "event",
        "version",
        "color",
        "actor",
        if with_procs {
            format!("{:<40}  ", "processes")
        } else {
            String::new()
        },
        "reason"
    );
    // Mark only the line that made the live release live (its last deployed/restored line).
    let live_line = records.iter().rposition(|r| {
        Some(r.id.as_str()) == live
            && matches!(r.event, ledger::Event::Deployed | ledger::Event::Restored)
    });
    for (i, r) in records.iter().enumerate() {
        let mark = if Some(i) == live_line { "*" } else { " " };
        let event = serde_json::to_value(r.event)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let cell = |s: &str| davit_core::text::line(&davit_core::redact::redact(s)).into_owned();
        let reason: String = cell(r.reason.as_deref().unwrap_or_default())
            .chars()
            .take(70)
            .collect();
        out.push_str(&format!(
            "{mark} {:<20}  {:<12}  {:<10}  {:<6}  {:<10}  {}{}\n",
            cell(&r.at),
            event,
            cell(&r.version),
            cell(r.color.as_deref().unwrap_or("-")),
            cell(&r.actor),
            cell(&procs(r)),
            reason
        ));
    }
    out
}

/// SIGINT or SIGTERM (a cancelled workflow run) sets the flag; the plan stops before its next
/// step and reverts, and the lock is released, instead of the process dying mid-switch.
pub fn cancel_on_signal() -> Cancel {
    let cancel = Cancel::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("davit: signal received; finishing the current step, then reverting");
        c.cancel();
    });
    cancel
}

pub async fn lock(global: &Global, a: LockArgs) -> Result<Exit, Failure> {
    match a.action {
        LockAction::Status { environment } => {
            let t = load(global, &environment)?;
            let fleet = davit_deploy::fleet::connect(&t).await?;
            for m in &fleet.members {
                let mt = &m.target;
                let place = lock_place(mt, &fleet);
                match davit_deploy::lock::status(&*m.exec, mt).await? {
                    Some(h) => {
                        println!("{place} is locked by {}", h.describe());
                        if h.is_stale() {
                            println!(
                                "the lock is stale (a CI lock past its TTL): the next deploy frees it"
                            );
                        }
                    }
                    None => println!("{place} is not locked"),
                }
            }
        }
        LockAction::Release { environment } => {
            let t = load(global, &environment)?;
            let fleet = davit_deploy::fleet::connect(&t).await?;
            for m in &fleet.members {
                let place = lock_place(&m.target, &fleet);
                match davit_deploy::lock::force_release(&*m.exec, &m.target).await? {
                    Some(h) => println!("{place}: released the lock held by {}", h.describe()),
                    None => println!("{place} was not locked"),
                }
            }
        }
    }
    Ok(Exit::Ok)
}

/// `production`, or `production on web-2` when the environment has several hosts.
fn lock_place(t: &Target, fleet: &davit_deploy::fleet::Fleet) -> String {
    if fleet.members.len() > 1 {
        format!("{} on {}", t.environment, t.host)
    } else {
        t.environment.clone()
    }
}

fn backup_spec(t: &Target) -> Result<davit_backup::BackupSpec, Failure> {
    let settings = t.backup.as_ref().ok_or_else(|| {
        Failure::bad_input(
            format!(
                "{} has no [environments.{}.backup] settings",
                t.environment, t.environment
            ),
            "add a backup table with dir and url_env (or container, user and database)",
        )
    })?;
    settings
        .spec(|k| std::env::var(k).ok())
        .map_err(Failure::from)
}

pub async fn backup(global: &Global, a: BackupArgs) -> Result<Exit, Failure> {
    match a.action {
        BackupAction::List { environment } => {
            let t = load(global, &environment)?;
            let spec = backup_spec(&t)?;
            let exec = davit_deploy::target::connect(&t).await?;
            let listing = davit_backup::list(&*exec, &spec.dir)
                .await
                .map_err(Failure::from)?;
            println!(
                "  {:<28}  {:<20}  {:>12}  {:<8}  label",
                "id", "created", "bytes", "verified"
            );
            for m in &listing.backups {
                println!(
                    "  {:<28}  {:<20}  {:>12}  {:<8}  {}",
                    m.id,
                    m.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    m.size,
                    format!("{:?}", m.verification.level).to_lowercase(),
                    m.label
                );
            }
            for p in &listing.partial {
                println!("  partial (interrupted, not a backup): {p}");
            }
            for u in &listing.unverified {
                println!("  unverified (no manifest, not a backup): {u}");
            }
            for (f, why) in &listing.broken {
                println!("  unusable: {f}: {why}");
            }
        }
        BackupAction::Now { environment } => {
            let t = load(global, &environment)?;
            let spec = backup_spec(&t)?;
            let exec = davit_deploy::target::connect(&t).await?;
            let exec = &*exec;
            let lock = davit_deploy::lock::acquire(
                exec,
                &t,
                "backup",
                "-",
                &davit_deploy::lock::LockOptions::default(),
            )
            .await?;
            let result = davit_backup::backup(exec, &spec, "manual").await;
            lock.release(exec, &t).await?;
            let m = result.map_err(Failure::from)?;
            println!("{} verified ({} bytes, sha256 {})", m.id, m.size, m.sha256);
        }
        BackupAction::Restore {
            environment,
            id,
            database,
            force,
        } => {
            let t = load(global, &environment)?;
            let spec = backup_spec(&t)?;
            let exec = davit_deploy::target::connect(&t).await?;
            let r = davit_backup::restore(&*exec, &spec, &id, &database, force)
                .await
                .map_err(Failure::from)?;
            println!("restored {id} into {database}: {r:?}");
        }
    }
    Ok(Exit::Ok)
}
