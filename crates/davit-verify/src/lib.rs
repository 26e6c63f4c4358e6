//! After the switch: is the new release really good, and if not, take it back.
//!
//! A health gate only proves the release started. Verification proves it keeps serving: first
//! the health check on the release's own port and through the public path, an optional smoke
//! test, then a watch window in which the public path is probed every interval and, when
//! `[analysis]` is configured, golden-signal metrics (error rate, p95 latency, request rate) are
//! measured with Argo-Rollouts semantics (`davit-analysis`), while the live color's own traffic
//! (every response the managed nginx sent) is judged over a sliding window ([`traffic`]). A run
//! of failed probes, a failed analysis or a bad traffic window decides: davit rolls back through the deploy library, which itself verifies the
//! restored release through the proxy, and the command exits 1 so the workflow shows red. The
//! previous color keeps running for the whole window, so that rollback is one switch.

mod notify;
pub mod records;
mod tail;
pub mod traffic;
mod verdict;
mod watch;

use notify::{notify, notify_with};
pub use verdict::{Measurement, Verdict};
use watch::{base_of, watch};

use davit_core::{Exit, Failure, Probe};
use davit_deploy::fleet::Fleet;
use davit_deploy::{Options, Target, supervise};
use davit_exec::runner::wait_http;
use davit_exec::{Executor, Timeline};
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
    /// Metric analysis during the watch window (`[analysis]` in davit.toml).
    pub analysis: Option<davit_analysis::AnalysisSpec>,
}

/// The `[analysis]` spec from davit.toml with action inputs merged over it; None when neither
/// configures one. Errors are bad input (exit 2) naming the field.
pub fn analysis_spec(
    cfg: &davit_config::Config,
    overrides: &davit_analysis::Overrides,
) -> Result<Option<davit_analysis::AnalysisSpec>, Failure> {
    let wanted = cfg.analysis.is_some()
        || overrides.prometheus_url.is_some()
        || overrides.templates.is_some();
    if !wanted {
        return Ok(None);
    }
    davit_analysis::AnalysisSpec::from_sources(cfg.analysis.as_ref(), overrides)
        .map(Some)
        .map_err(Failure::from)
}

impl VerifyOptions {
    pub fn from_target(t: &Target) -> Self {
        VerifyOptions {
            version: None,
            watch: Duration::from_secs(t.verify.watch_secs),
            interval: Duration::from_millis(t.verify.interval_ms),
            failure_limit: t.verify.failure_limit.max(1),
            rollback: t.verify.rollback,
            analysis: None,
        }
    }
}

/// The probes for the live release: (its own port, the public path), as its strategy says.
fn probes(t: &Target, live_color: Option<&str>, version: &str) -> Vec<(String, Probe)> {
    davit_deploy::strategy::pick(&t.strategy).probes(t, live_color, version)
}

/// Verify every host of an environment. With one host this is [`verify`]. With several, each
/// other host's health checks run first (direct and through its proxy), then the first host gets
/// the whole verification (smoke test, watch window, analysis: metrics are the environment's,
/// not one host's); when any host is bad, every host is rolled back to one version together
/// ([`Fleet::rollback`]), so a bad release never stays live on some hosts only.
pub async fn verify_fleet(
    fleet: &Fleet,
    opts: &VerifyOptions,
    timeline: &Timeline,
) -> Result<Verdict, Failure> {
    let first = fleet.first();
    if fleet.members.len() == 1 {
        return verify(&*first.exec, &first.target, opts, timeline).await;
    }
    let started = Instant::now();
    // Every host must serve the same version: the one asked for, or the first host's.
    let version = match &opts.version {
        Some(v) => v.clone(),
        None => {
            let obs = davit_deploy::observe(&*first.exec, &first.target, None).await?;
            obs.live_version().ok_or_else(|| {
                Failure::bad_input(
                    format!(
                        "nothing is deployed to {} on {} yet",
                        first.target.environment, first.target.host
                    ),
                    "deploy first: davit deploy <environment> --version <tag>",
                )
            })?
        }
    };
    let opts = &VerifyOptions {
        version: Some(version),
        ..opts.clone()
    };
    let health_only = VerifyOptions {
        rollback: false,
        watch: Duration::ZERO,
        analysis: None,
        ..opts.clone()
    };
    let on = |m: &davit_deploy::fleet::Member| {
        let host = m.target.host.clone();
        move |mut f: Failure| {
            f.message = format!("{host}: {}", f.message);
            f
        }
    };
    let mut measurements = Vec::new();
    let mut bad: Option<Verdict> = None;
    for m in &fleet.members[1..] {
        timeline.note(&format!("verify: host {}", m.target.host));
        let mut v = verify(&*m.exec, &m.target, &health_only, timeline)
            .await
            .map_err(on(m))?;
        for x in &mut v.measurements {
            x.check = format!("{}: {}", m.target.host, x.check);
        }
        measurements.append(&mut v.measurements);
        if !v.healthy {
            v.reason = Some(format!(
                "{}: {}",
                m.target.host,
                v.reason.unwrap_or_default()
            ));
            bad = Some(v);
            break;
        }
    }
    let mut verdict = match bad {
        Some(v) => v,
        None => {
            timeline.note(&format!("verify: host {}", first.target.host));
            verify(
                &*first.exec,
                &first.target,
                &VerifyOptions {
                    rollback: false,
                    ..opts.clone()
                },
                timeline,
            )
            .await
            .map_err(on(first))?
        }
    };
    measurements.append(&mut verdict.measurements);
    verdict.measurements = measurements;
    // A hold keeps the release on every host, as it does on one.
    if verdict.healthy || !opts.rollback || verdict.infra_failure || verdict.held {
        return Ok(verdict);
    }
    let reason = verdict.reason.clone().unwrap_or_default();
    verdict.detected_after_secs = Some(started.elapsed().as_secs_f32());
    timeline.note("verify: rolling back every host");
    let decided = Instant::now();
    let rolled = fleet
        .rollback(
            None,
            &format!("verify: {reason}"),
            &Options::default(),
            timeline,
        )
        .await
        .map(|reports| reports.into_iter().next().and_then(|r| r.record));
    let how = |to: &str, secs: f32| format!("verify: every host rolled back to {to} in {secs:.2}s");
    after_rollback(rolled, decided, verdict, opts, &first.target, timeline, how).await
}

/// The end of an automatic rollback: its failure is an error and an alert (T32: davit does
/// not try again, so traffic cannot flap between two bad releases); its success is timed,
/// noted (`how` words it) and notified.
async fn after_rollback(
    rolled: Result<Option<davit_deploy::ledger::Record>, Failure>,
    decided: Instant,
    mut verdict: Verdict,
    opts: &VerifyOptions,
    t: &Target,
    timeline: &Timeline,
    how: impl Fn(&str, f32) -> String,
) -> Result<Verdict, Failure> {
    let restored = match rolled {
        Ok(r) => r,
        Err(f) => {
            notify_with(opts, t, &verdict, timeline, Some(false)).await;
            let reason = verdict.reason.clone().unwrap_or_default();
            return Err(Failure::new(
                f.exit,
                format!(
                    "{} failed verification ({reason}) and the rollback failed: {}",
                    verdict.version, f.message
                ),
            )
            .with_hint(f.hint.unwrap_or_default()));
        }
    };
    verdict.restored_after_secs = Some(decided.elapsed().as_secs_f32());
    verdict.rolled_back_to = restored.map(|r| r.version);
    timeline.note(&how(
        verdict.rolled_back_to.as_deref().unwrap_or("?"),
        verdict.restored_after_secs.unwrap_or_default(),
    ));
    notify(opts, t, &verdict, timeline).await;
    Ok(verdict)
}

/// Verify the live release of `t`, rolling back when it fails and `opts.rollback` is set.
pub async fn verify(
    exec: &dyn Executor,
    t: &Target,
    opts: &VerifyOptions,
    timeline: &Timeline,
) -> Result<Verdict, Failure> {
    let started = Instant::now();
    let mut obs = davit_deploy::observe(exec, t, None).await?;
    // A dead proxy is not the release's fault: start it again first (exit 3 when it cannot be).
    if let Some(note) = supervise::revive(exec, t, &mut obs).await? {
        timeline.note(&format!("verify: {note}"));
    }
    let live_color = obs.live.as_ref().map(|l| l.color.clone());
    let live_version = obs.live_version();
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
        analysis: None,
        infra_failure: false,
        held: false,
        traffic: None,
    };
    let at = |s: Instant| s.elapsed().as_secs_f32();

    // 1. Health checks: each probe must pass its consecutive successes.
    let checks = probes(t, live_color.as_deref(), &version);
    for (name, p) in &checks {
        let mut passed = wait_http(exec, p).await;
        if passed.is_err() && proxy_recovered(exec, t, timeline, &mut verdict).await {
            passed = wait_http(exec, p).await;
        }
        if verdict.infra_failure {
            return Ok(verdict);
        }
        match passed {
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
                verdict.reason = Some(format!(
                    "health check ({name}) failed: {why}{}",
                    allowed_hosts_hint(&why)
                ));
                break;
            }
        }
    }

    // 2. Smoke test against the new release, when configured.
    let direct_url = checks
        .first()
        .map(|(_, p)| base_of(&p.url))
        .unwrap_or_default();
    if verdict.healthy
        && let Some(smoke) = opts.analysis.as_ref().and_then(|a| a.smoke.as_ref())
    {
        let r = davit_analysis::smoke::run_smoke(smoke, &direct_url, None, &[]).await;
        timeline.note(&format!("verify: smoke test: {}", r.summary()));
        verdict.measurements.push(Measurement {
            at_secs: at(started),
            check: "smoke test".into(),
            ok: r.passed,
            detail: r.summary(),
        });
        if !r.passed {
            verdict.healthy = false;
            verdict.reason = Some(format!("smoke test failed: {}", r.summary()));
        }
    }

    // 3. Watch window: the public path every interval, and the metric analysis when configured.
    if verdict.healthy && !opts.watch.is_zero() {
        let mut analysis = match &opts.analysis {
            Some(spec) => {
                let release = davit_analysis::Release {
                    color: live_color.clone(),
                    instance: live_instance(t, live_color.as_deref()),
                    version: Some(version.clone()),
                    base_url: Some(direct_url.clone()),
                };
                let a = davit_analysis::Analysis::new(spec, &release).map_err(|e| {
                    Failure::bad_input(
                        format!("the analysis cannot start: {e}"),
                        "check [analysis] in davit.toml (placeholders and the bearer token variable)",
                    )
                })?;
                for (name, query) in a.sources() {
                    timeline.note(&format!("verify: analysis metric {name}: {query}"));
                }
                Some(a)
            }
            None => None,
        };
        let mut traffic = watch::traffic_watch(t, obs.live.as_ref());
        watch(
            exec,
            t,
            &checks,
            opts,
            timeline,
            started,
            &mut verdict,
            analysis.as_mut(),
            traffic.as_mut(),
        )
        .await;
        if let Some(tw) = traffic {
            let summary = tw.judge.into_summary();
            if summary.decided.is_none() {
                timeline.note(&format!("verify: traffic: {}", summary.describe()));
                verdict.measurements.push(Measurement {
                    at_secs: at(started),
                    check: format!("traffic {}", summary.color),
                    ok: true,
                    detail: summary.describe(),
                });
            }
            verdict.traffic = Some(summary);
        }
        if let Some(mut a) = analysis {
            let v = if a.status() == davit_analysis::Status::Running {
                a.finish()
            } else {
                a.verdict()
            };
            timeline.note(&format!(
                "verify: analysis {:?} after {} round(s): {}",
                v.status,
                a.rounds(),
                v.reason
            ));
            match v.action {
                davit_analysis::Action::Keep => {}
                davit_analysis::Action::Rollback => {
                    if verdict.healthy {
                        verdict.healthy = false;
                        verdict.reason = Some(format!("analysis: {}", v.reason));
                    }
                }
                davit_analysis::Action::Hold => {
                    if verdict.healthy {
                        verdict.healthy = false;
                        verdict.held = true;
                        verdict.reason = Some(format!(
                            "analysis was inconclusive and its policy is hold: {}; the release stays live and the previous color keeps running",
                            v.reason
                        ));
                        verdict.analysis = Some(v);
                        verdict.detected_after_secs = Some(at(started));
                        timeline.note(&format!(
                            "verify: {version} held: not promoted, not rolled back"
                        ));
                        notify(opts, t, &verdict, timeline).await;
                        return Ok(verdict);
                    }
                }
                davit_analysis::Action::Fail => {
                    if verdict.healthy {
                        verdict.healthy = false;
                        verdict.infra_failure = true;
                        verdict.reason = Some(format!(
                            "analysis could not decide and its policy is fail: {}",
                            v.reason
                        ));
                        verdict.analysis = Some(v);
                        notify(opts, t, &verdict, timeline).await;
                        return Ok(verdict);
                    }
                }
            }
            verdict.analysis = Some(v);
        }
    }

    if verdict.healthy {
        timeline.note(&format!("verify: {version} is healthy"));
        notify(opts, t, &verdict, timeline).await;
        return Ok(verdict);
    }
    if verdict.infra_failure {
        // The proxy is down and would not start: no verdict on the release, no rollback.
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
    let rolled = davit_deploy::rollback(
        exec,
        t,
        None,
        &format!("verify: {reason}"),
        &Options::default(),
        timeline,
    )
    .await
    .map(|report| report.record);
    let how = |to: &str, secs: f32| {
        format!("verify: rolled back to {to} in {secs:.2}s; it answers through the public path")
    };
    after_rollback(rolled, decided, verdict, opts, t, timeline, how).await
}

/// When a probe failed because the managed nginx is not running, start it again and say so:
/// true when it was down and runs again (probe again; the release is not to blame). When it
/// will not start, the verdict becomes an infrastructure failure (exit 3, no rollback: rolling
/// back a healthy release cannot bring a proxy back).
pub(crate) async fn proxy_recovered(
    exec: &dyn Executor,
    t: &Target,
    timeline: &Timeline,
    verdict: &mut Verdict,
) -> bool {
    if !supervise::proxy_down(exec, t).await {
        return false;
    }
    let mut obs = match davit_deploy::observe(exec, t, None).await {
        Ok(o) => o,
        Err(_) => return false,
    };
    obs.seen = davit_deploy::Seen::Proxy {
        nginx_running: false,
    };
    match supervise::revive(exec, t, &mut obs).await {
        Ok(Some(note)) => {
            timeline.note(&format!("verify: {note}; not counted against the release"));
            true
        }
        Ok(None) => false,
        Err(f) => {
            timeline.note(&format!("verify: {}", f.message));
            verdict.healthy = false;
            verdict.infra_failure = true;
            verdict.reason = Some(format!(
                "the proxy is down, not the release: {}{}",
                f.message,
                f.hint.map(|h| format!(" (hint: {h})")).unwrap_or_default()
            ));
            false
        }
    }
}

/// A 400 from the app is almost always Django refusing the probe's Host header.
fn allowed_hosts_hint(why: &str) -> &'static str {
    if why.contains("status 400") {
        " (hint: Django answers 400 when the Host header is not in ALLOWED_HOSTS: list the probe's host there, or set health.host; it defaults to the host of the environment's url)"
    } else {
        ""
    }
}

/// Where Prometheus scrapes the live release: its own published port.
fn live_instance(t: &Target, color: Option<&str>) -> Option<String> {
    davit_deploy::strategy::pick(&t.strategy).metrics_instance(t, color)
}
