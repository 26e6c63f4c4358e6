//! `davit status <environment>`: what each process of the environment runs, read from the host.
//!
//! The containers' own labels (`davit.process`, `davit.version`, `davit.release`, the web's
//! color) say what runs; what the proxy serves says which web color is live. The ledger is the
//! history, shown beside it: when the two disagree (a container stopped by hand, a worker left
//! on another release), the host's answer is printed and the disagreement said, never hidden.

use crate::cli::{Global, StatusArgs};
use davit_core::{Exit, Failure};
use davit_deploy::Observed;
use davit_deploy::processes::ProcContainer;
use davit_deploy::{Target, services};

pub async fn run(global: &Global, a: StatusArgs) -> Result<Exit, Failure> {
    let t = crate::commands::load(global, &a.environment)?;
    let fleet = davit_deploy::fleet::connect(&t).await?;
    for m in &fleet.members {
        let obs = davit_deploy::observe(&*m.exec, &m.target, None).await?;
        if fleet.members.len() > 1 {
            println!("# {}", m.target.host);
        }
        for l in lines(&m.target, &obs) {
            println!("{}", davit_core::text::line(&l));
        }
        if let Some(set) = m
            .target
            .processes
            .as_ref()
            .filter(|s| !s.services.is_empty())
        {
            let seen = services::observe(&*m.exec, &t.app, &t.environment)
                .await
                .map_err(Failure::infra)?;
            println!("services:");
            for l in services::status_lines(set, &t.app, &t.environment, &seen) {
                println!("  {}", davit_core::text::line(&l.replace('\t', "  ")));
            }
        }
    }
    Ok(Exit::Ok)
}

/// One line per process (`name  version  what runs`), then the ledger's live release.
pub fn lines(t: &Target, obs: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    // What serves decides which release is live; the ledger's line about it is the history.
    let live_id = obs.live_release();
    let live = obs
        .ledger
        .iter()
        .rev()
        .find(|r| Some(&r.id) == live_id.as_ref());
    let containers: &[ProcContainer] = obs
        .procs
        .as_ref()
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    let mut names: Vec<String> = match &t.processes {
        Some(set) => set.processes.iter().map(|p| p.name.clone()).collect(),
        None => vec!["web".into()],
    };
    for c in containers {
        if !names.contains(&c.process) {
            names.push(c.process.clone());
        }
    }
    let web = t
        .processes
        .as_ref()
        .and_then(|s| s.web())
        .map_or("web", |w| w.name.as_str());
    for name in &names {
        let mine: Vec<&ProcContainer> = containers.iter().filter(|c| &c.process == name).collect();
        let line = if name == web {
            web_line(obs, &mine)
        } else {
            other_line(t, name, &mine)
        };
        out.push(format!("{name:<16}  {line}"));
    }
    match live {
        Some(r) => {
            let mut l = format!(
                "ledger: {} ({}) live since {} by {}",
                r.version, r.id, r.at, r.actor
            );
            if !r.processes.is_empty() {
                let p: Vec<String> = r
                    .processes
                    .iter()
                    .map(|p| format!("{} x{}", p.name, p.replicas))
                    .collect();
                l.push_str(&format!("; processes {}", p.join(", ")));
            }
            let off: Vec<&str> = containers
                .iter()
                .filter(|c| c.running && c.color.is_empty() && c.release != r.id)
                .map(|c| c.name.as_str())
                .collect();
            if !off.is_empty() {
                l.push_str(&format!(
                    "\nwarning: running on another release than the live one: {}",
                    off.join(", ")
                ));
            }
            out.push(l);
        }
        None => out.push("ledger: no live release".into()),
    }
    out
}

/// The web: the version the proxy serves (its color), and the standby color kept for rollback;
/// where davit runs no proxy (compose), the web containers as they run.
fn web_line(obs: &Observed, mine: &[&ProcContainer]) -> String {
    let Some(live) = obs.live.as_ref() else {
        let running: Vec<String> = mine
            .iter()
            .filter(|c| c.running)
            .map(|c| format!("{}  {} (running)", c.version, c.release))
            .collect();
        return match (running.is_empty(), obs.live_version()) {
            (false, _) => running.join("; "),
            (true, Some(v)) => format!("{v}  (live per the ledger)"),
            (true, None) => "-  not deployed".into(),
        };
    };
    let serving = format!("{}  {} (live, {})", live.version, live.release, live.color);
    let standby: Vec<String> = mine
        .iter()
        .filter(|c| c.color != live.color)
        .map(|c| {
            format!(
                "{} {} ({})",
                c.version,
                if c.running { "standby" } else { "stopped" },
                if c.color.is_empty() {
                    &c.name
                } else {
                    &c.color
                }
            )
        })
        .collect();
    if standby.is_empty() {
        serving
    } else {
        format!("{serving}; {}", standby.join("; "))
    }
}

/// A worker or scheduler: each version it runs with how many containers, against the replicas
/// the config asks for.
fn other_line(t: &Target, name: &str, mine: &[&ProcContainer]) -> String {
    let want = t
        .processes
        .as_ref()
        .and_then(|s| s.processes.iter().find(|p| p.name == name))
        .map(|p| p.replicas);
    let mut by_version: Vec<(String, String, usize)> = Vec::new();
    for c in mine.iter().filter(|c| c.running) {
        match by_version.iter_mut().find(|(v, _, _)| *v == c.version) {
            Some(e) => e.2 += 1,
            None => by_version.push((c.version.clone(), c.release.clone(), 1)),
        }
    }
    if by_version.is_empty() {
        return match want {
            Some(_) => "-  not running".into(),
            None => "-  not running (not in davit.toml)".into(),
        };
    }
    let parts: Vec<String> = by_version
        .iter()
        .map(|(v, r, n)| match want {
            Some(w) => format!("{v}  {r} ({n}/{w} running)"),
            None => format!("{v}  {r} ({n} running, not in davit.toml)"),
        })
        .collect();
    parts.join("; ")
}
