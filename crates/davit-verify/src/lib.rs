//! After the switch: is the new release really good, and if not, take it back.
//!
//! A health gate only proves the release started. Verification proves it keeps serving: first
//! the health check on the release's own port and through the public path, then a watch window
//! in which the public path is probed every interval. A run of failures (the failure limit)
//! decides: davit rolls back through the deploy library, which itself verifies the restored
//! release through the proxy, and the command exits 1 so the workflow shows red.

pub mod records;

use davit_config::Strategy;
use davit_core::{Exit, Failure, Probe};
use davit_deploy::{Options, Target, bluegreen, compose};
use davit_exec::runner::{check_response, wait_http};
use davit_exec::{Executor, Timeline};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How to verify, resolved from davit.toml `[environments.X.verify]` and flags.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The version that should be live; default what the host says is live.
    pub version: Option<String>,
    pub watch: Duration,
    pub interval: Duration,
    pub failure_limit: u32,
    pub rollback: bool,
}

impl VerifyOptions {
    pub fn from_target(t: &Target) -> Self {
        VerifyOptions {
            version: None,
            watch: Duration::from_secs(t.verify.watch_secs),
            interval: Duration::from_millis(t.verify.interval_ms),
            failure_limit: t.verify.failure_limit.max(1),
            rollback: t.verify.rollback,
        }
    }
}

/// One measurement for the summary and the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub at_secs: f32,
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// What verification concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub environment: String,
    pub version: String,
    pub healthy: bool,
    pub reason: Option<String>,
    /// Seconds from the start of verification to the decision to roll back.
    pub detected_after_secs: Option<f32>,
    /// Seconds from the decision to the previous release answering through the proxy.
    pub restored_after_secs: Option<f32>,
    pub rolled_back_to: Option<String>,
    pub measurements: Vec<Measurement>,
}

impl Verdict {
    pub fn exit(&self) -> Exit {
        if self.healthy {
            Exit::Ok
        } else {
            Exit::Rejected
        }
    }

    /// The step summary: the decision and every measurement against its expectation.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## davit verify: {} {}\n\n",
            self.environment,
            if self.healthy {
                format!("✅ {} is healthy", self.version)
            } else {
                format!("❌ {} failed verification", self.version)
            }
        );
        if let Some(r) = &self.reason {
            s.push_str(&format!("**Reason:** {r}\n\n"));
        }
        if let Some(v) = &self.rolled_back_to {
            s.push_str(&format!(
                "**Rolled back to {v}** (detected after {:.1}s, restored {:.2}s after the decision)\n\n",
                self.detected_after_secs.unwrap_or_default(),
                self.restored_after_secs.unwrap_or_default()
            ));
        }
        s.push_str("| t (s) | check | result | detail |\n|---:|---|---|---|\n");
        // Long watch windows produce many rows; keep failures and a sample of successes.
        let rows: Vec<&Measurement> = self
            .measurements
            .iter()
            .enumerate()
            .filter(|(i, m)| !m.ok || i % 5 == 0 || *i + 1 == self.measurements.len())
            .map(|(_, m)| m)
            .collect();
        for m in rows {
            s.push_str(&format!(
                "| {:.1} | {} | {} | {} |\n",
                m.at_secs,
                m.check,
                if m.ok { "ok" } else { "FAIL" },
                m.detail.replace('|', "\\|")
            ));
        }
        s
    }
}

/// The probes for the live release: (its own port, the public path).
fn probes(t: &Target, live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
    match t.strategy {
        Strategy::BlueGreen => {
            let mut v = Vec::new();
            if let Some(c) = live_color {
                v.push((
                    format!("{c} direct"),
                    bluegreen::direct_probe(t, c, version),
                ));
            }
            v.push(("public path".into(), bluegreen::proxy_probe(t, version)));
            v
        }
        Strategy::Compose => vec![("published port".into(), compose::probe(t, version))],
        Strategy::Swarm => vec![(
            "published port".into(),
            davit_deploy::swarm::probe(t, version),
        )],
        // The cluster's own readiness gates pods; verify probes the public URL when one is set.
        Strategy::Kubernetes => davit_deploy::kubernetes::probe(t, version)
            .map(|p| vec![("public url".to_string(), p)])
            .unwrap_or_default(),
    }
}

/// Verify the live release of `t`, rolling back when it fails and `opts.rollback` is set.
pub async fn verify(
    exec: &dyn Executor,
    t: &Target,
    opts: &VerifyOptions,
    timeline: &Timeline,
) -> Result<Verdict, Failure> {
    let started = Instant::now();
    let obs = davit_deploy::observe(exec, t, None).await?;
    let live_color = obs.live.as_ref().map(|l| l.color.clone());
    let live_version = match &obs.live {
        Some(l) => Some(l.version.clone()),
        None => davit_deploy::ledger::live(&obs.ledger).map(|r| r.version.clone()),
    };
    let version = match (&opts.version, &live_version) {
        (Some(want), Some(live)) if want != live => {
            return Err(Failure::rejected(format!(
                "{} serves {live}, not {want}: the deploy of {want} did not go live",
                t.environment
            ))
            .with_hint("check the deploy step's log; verify does not roll back a release that never went live"));
        }
        (Some(want), _) => want.clone(),
        (None, Some(live)) => live.clone(),
        (None, None) => {
            return Err(Failure::bad_input(
                format!("nothing is deployed to {} yet", t.environment),
                "deploy first: davit deploy <environment> --version <tag>",
            ));
        }
    };
    let mut verdict = Verdict {
        environment: t.environment.clone(),
        version: version.clone(),
        healthy: true,
        reason: None,
        detected_after_secs: None,
        restored_after_secs: None,
        rolled_back_to: None,
        measurements: Vec::new(),
    };
    let at = |s: Instant| s.elapsed().as_secs_f32();

    // 1. Health checks: each probe must pass its consecutive successes.
    let checks = probes(t, live_color.as_deref(), &version);
    for (name, p) in &checks {
        match wait_http(exec, p).await {
            Ok(passed) => {
                timeline.note(&format!(
                    "verify: {name} healthy ({} probes)",
                    passed.attempts
                ));
                verdict.measurements.push(Measurement {
                    at_secs: at(started),
                    check: format!("health {name}"),
                    ok: true,
                    detail: format!("{} in a row", p.consecutive),
                });
            }
            Err(why) => {
                verdict.measurements.push(Measurement {
                    at_secs: at(started),
                    check: format!("health {name}"),
                    ok: false,
                    detail: why.clone(),
                });
                verdict.healthy = false;
                verdict.reason = Some(format!("health check ({name}) failed: {why}"));
                break;
            }
        }
    }

    // 2. Watch window on the public path.
    if verdict.healthy && !opts.watch.is_zero() {
        let (name, probe) = checks.last().expect("at least one probe").clone();
        timeline.note(&format!(
            "verify: watching {} for {}s (every {}ms, {} failures in a row roll back)",
            probe.url,
            opts.watch.as_secs(),
            opts.interval.as_millis(),
            opts.failure_limit
        ));
        let watch_start = Instant::now();
        let mut streak = 0;
        while watch_start.elapsed() < opts.watch {
            let result = match exec.http_get(&probe.url, probe.per_try_timeout).await {
                Ok(resp) => check_response(&resp, &probe.expect),
                Err(e) => Err(e.to_string()),
            };
            let ok = result.is_ok();
            verdict.measurements.push(Measurement {
                at_secs: at(started),
                check: format!("watch {name}"),
                ok,
                detail: result.clone().err().unwrap_or_else(|| "ok".into()),
            });
            if ok {
                streak = 0;
            } else {
                streak += 1;
                timeline.note(&format!(
                    "verify: probe failed ({streak}/{}): {}",
                    opts.failure_limit,
                    result.unwrap_err()
                ));
                if streak >= opts.failure_limit {
                    verdict.healthy = false;
                    verdict.reason = Some(format!(
                        "{streak} failed probes in a row on the public path during the watch window"
                    ));
                    break;
                }
            }
            tokio::time::sleep(opts.interval).await;
        }
    }

    if verdict.healthy {
        timeline.note(&format!("verify: {version} is healthy"));
        return Ok(verdict);
    }
    verdict.detected_after_secs = Some(at(started));
    let reason = verdict.reason.clone().unwrap_or_default();
    timeline.note(&format!("verify: {version} is bad: {reason}"));
    if !opts.rollback {
        timeline.note("verify: rollback is off (verify.rollback = false); leaving it live");
        return Ok(verdict);
    }
    timeline.note("verify: rolling back");
    let decided = Instant::now();
    let report = davit_deploy::rollback(
        exec,
        t,
        None,
        &format!("verify: {reason}"),
        &Options::default(),
        timeline,
    )
    .await
    .map_err(|f| {
        Failure::new(
            f.exit,
            format!(
                "{version} failed verification ({reason}) and the rollback failed: {}",
                f.message
            ),
        )
        .with_hint(f.hint.unwrap_or_default())
    })?;
    verdict.restored_after_secs = Some(decided.elapsed().as_secs_f32());
    verdict.rolled_back_to = report.record.map(|r| r.version);
    timeline.note(&format!(
        "verify: rolled back to {} in {:.2}s; it answers through the public path",
        verdict.rolled_back_to.as_deref().unwrap_or("?"),
        verdict.restored_after_secs.unwrap_or_default()
    ));
    Ok(verdict)
}
