//! Truth from the host: what serves decides, davit's files are records of it.
//!
//! The site file says which color nginx should send traffic to, and the ledger says which
//! release went live; both are written by davit, and a run killed between its steps leaves
//! them wrong: the candidate renamed over the live file but nginx never reloaded (the file
//! names the new color while the old one serves, T41), nginx reloaded but the ledger line never
//! written (T42), or a person edited or truncated the file (T43). Planning from such a file
//! takes the serving color for the idle one and removes it.
//!
//! So every site file davit writes makes nginx name what it serves in three response headers
//! (color, release, version), and before planning davit asks the public path. What answers is
//! the live release; a file that disagrees is reported and rewritten from it, a release that
//! serves without a ledger line is recorded, and when nothing says what serves (an unreadable
//! file and a proxy that does not answer with the headers) the run refuses before changing
//! anything rather than treat a running proxy as a first deploy.

use crate::ledger::{self, Event, Record};
use crate::nginx::{self, LiveSite};
use crate::observe::Observed;
use crate::target::{BluGreenPorts, Target, url_host};
use davit_core::{Exit, Failure};
use davit_exec::Executor;
use std::time::Duration;

/// The response headers nginx adds (see [`nginx::site_conf`]).
pub const COLOR_HEADER: &str = "X-Davit-Color";
pub const RELEASE_HEADER: &str = "X-Davit-Release";
pub const VERSION_HEADER: &str = "X-Davit-Version";

/// Where davit's files and what serves disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The site file names something else (or nothing readable) than what nginx serves.
    File {
        said: Option<LiveSite>,
        serving: LiveSite,
    },
    /// nginx runs, its site file cannot be read, and it does not say what it serves.
    Unknown,
}

/// What nginx serves through the public path, as it says in its headers; None when it does
/// not answer or answers without them (a configuration from a davit before these headers).
pub async fn served(exec: &dyn Executor, t: &Target, p: BluGreenPorts) -> Option<LiveSite> {
    let url = format!("http://{}:{}/", url_host(&t.proxy.listen), p.public);
    let r = exec.http_get(&url, Duration::from_secs(3)).await.ok()?;
    Some(LiveSite {
        color: r.header(COLOR_HEADER)?.to_string(),
        release: r.header(RELEASE_HEADER)?.to_string(),
        version: r.header(VERSION_HEADER)?.to_string(),
    })
    .filter(|s| s.color == "blue" || s.color == "green")
}

/// Set `obs.live` from what serves, noting any disagreement with the site file in `obs.drift`.
/// `file` is the site file's text, if there is one; read-only.
pub fn reconcile_view(obs: &mut Observed, file: Option<&str>, serving: Option<LiveSite>) {
    match serving {
        Some(s) if obs.live.as_ref() != Some(&s) => {
            obs.drift = Some(Drift::File {
                said: obs.live.take(),
                serving: s.clone(),
            });
            obs.live = Some(s);
        }
        Some(_) => {}
        None if file.is_some() && obs.live.is_none() => obs.drift = Some(Drift::Unknown),
        None => {}
    }
}

/// What the disagreement is, for the run's warnings.
pub fn describe(d: &Drift) -> String {
    match d {
        Drift::File { said, serving } => format!(
            "the live site file says {} but nginx serves {} ({}, version {}): davit plans from what serves and rewrites the file to match (a run killed between its rename and its reload, or a hand edit)",
            said.as_ref()
                .map(|s| format!("{} ({}, version {})", s.color, s.release, s.version))
                .unwrap_or_else(|| "nothing davit can read".into()),
            serving.color,
            serving.release,
            serving.version
        ),
        Drift::Unknown => {
            "the live site file cannot be read and nginx does not say what it serves".into()
        }
    }
}

/// Make davit's records agree with what serves, before planning (never in a dry run): the site
/// file rewritten from what nginx serves (the same configuration nginx has loaded, so no
/// reload), and a release that serves without a ledger line recorded. Refuses, changing
/// nothing, when nothing says what serves.
pub async fn repair(
    exec: &dyn Executor,
    t: &Target,
    p: BluGreenPorts,
    obs: &mut Observed,
    warnings: &mut Vec<String>,
) -> Result<(), Failure> {
    match &obs.drift {
        Some(Drift::Unknown) => {
            return Err(Failure::new(
                Exit::Infra,
                format!(
                    "{} refused before changing anything: {}; planning now could stop or remove what serves",
                    t.environment,
                    describe(&Drift::Unknown)
                ),
            )
            .with_hint(format!(
                "look at {} (edited by hand?); restore it from {} or from `davit releases`, then run again",
                nginx::Files::of(t).site().display(),
                nginx::Files::of(t).previous_site().display()
            )));
        }
        Some(Drift::File { serving, .. }) => {
            let text = nginx::site_conf(
                t,
                p.public,
                &serving.color,
                &serving.release,
                &serving.version,
                crate::bluegreen::port_of(p, &serving.color),
            );
            exec.write_file(&nginx::Files::of(t).site(), text.as_bytes(), 0o644)
                .await
                .map_err(|e| Failure::infra(e.to_string()))?;
        }
        None => {}
    }
    let Some(serving) = obs.live.clone() else {
        return Ok(());
    };
    let recorded = ledger::live(&obs.ledger).map(|r| r.id.as_str());
    if recorded == Some(serving.release.as_str()) {
        return Ok(());
    }
    // Served before (then rolled back away from, or failed on the way): restored; else new.
    let event =
        if obs.ledger.iter().any(|r| {
            r.id == serving.release && matches!(r.event, Event::Deployed | Event::Restored)
        }) {
            Event::Restored
        } else {
            Event::Deployed
        };
    let known = obs.ledger.iter().rev().find(|r| r.id == serving.release);
    let record = Record {
        id: serving.release.clone(),
        event,
        version: serving.version.clone(),
        image: known
            .map(|r| r.image.clone())
            .unwrap_or_else(|| t.image_for(&serving.version)),
        digest: known.and_then(|r| r.digest.clone()),
        strategy: "blue-green".into(),
        color: Some(serving.color.clone()),
        environment: t.environment.clone(),
        host: exec.host().to_string(),
        at: ledger::now(),
        actor: t.actor.clone(),
        reason: Some(format!(
            "found serving by a later run; the ledger said {}: a run killed after its switch",
            recorded.unwrap_or("nothing live")
        )),
        approval: None,
        processes: Vec::new(),
    };
    exec.mkdir(&t.state_dir, 0o750)
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    ledger::append(exec, &t.ledger_path(), std::slice::from_ref(&record))
        .await
        .map_err(|e| Failure::infra(e.to_string()))?;
    warnings.push(format!(
        "nginx serves release {} (version {}) which the ledger did not record as live: recorded it now",
        serving.release, serving.version
    ));
    obs.ledger.push(record);
    Ok(())
}
