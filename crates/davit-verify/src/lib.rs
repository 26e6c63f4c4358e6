//! After the switch: is the new release really good, and if not, take it back.
//!
//! A health gate only proves the release started. Verification proves it keeps serving: first
//! the health check on the release's own port and through the public path, an optional smoke
//! test, then a watch window in which the public path is probed every interval and, when
//! `[analysis]` is configured, golden-signal metrics (error rate, p95 latency, request rate) are
//! measured with Argo-Rollouts semantics (`davit-analysis`). A run of failed probes or a failed
//! analysis decides: davit rolls back through the deploy library, which itself verifies the
//! restored release through the proxy, and the command exits 1 so the workflow shows red. The
//! previous color keeps running for the whole window, so that rollback is one switch.

pub mod records;

use davit_core::{Exit, Failure, Probe};
use davit_deploy::fleet::Fleet;
use davit_deploy::{Options, Target};
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
    /// The metric analysis, when one ran.
    pub analysis: Option<davit_analysis::Verdict>,
    /// Set when the analysis could not decide and its policy is `fail` (exit 3).
    #[serde(skip)]
    pub infra_failure: bool,
    /// The analysis was inconclusive and its policy is `hold`: not promoted, not rolled back.
    #[serde(skip)]
    pub held: bool,
}

impl Verdict {
    pub fn exit(&self) -> Exit {
        if self.healthy {
            Exit::Ok
        } else if self.infra_failure {
            Exit::Infra
        } else {
            Exit::Rejected
        }
    }

    /// Step summary and outputs (`healthy`, `rolled-back-to`, `verdict-json`), the same from the
    /// action's binary and from `davit verify`. Write failures only lose the summary.
    pub fn publish(&self, gha: &davit_gha::Gha) {
        let _ = gha.summary(&self.markdown());
        let _ = gha.set_output("healthy", &self.healthy.to_string());
        let _ = gha.set_output(
            "rolled-back-to",
            self.rolled_back_to.as_deref().unwrap_or(""),
        );
        let _ = gha.set_output(
            "verdict-json",
            &serde_json::to_string(self).unwrap_or_default(),
        );
    }

    /// The step summary: the decision and every measurement against its expectation.
    pub fn markdown(&self) -> String {
        // Versions, reasons and probe details are untrusted text: escaped for markdown (T47).
        use davit_core::text::markdown as md;
        let mut s = format!(
            "## davit verify: {} {}\n\n",
            md(&self.environment),
            if self.healthy {
                format!("✅ {} is healthy", md(&self.version))
            } else {
                format!("❌ {} failed verification", md(&self.version))
            }
        );
        if let Some(r) = &self.reason {
            s.push_str(&format!("**Reason:** {}\n\n", md(r)));
        }
        if let Some(v) = self.rolled_back_to.as_deref().map(md) {
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
                md(&m.check),
                if m.ok { "ok" } else { "FAIL" },
                md(&m.detail)
            ));
        }
        if let Some(a) = &self.analysis {
            s.push('\n');
            s.push_str(&a.markdown());
        }
        s
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
    let obs = davit_deploy::observe(exec, t, None).await?;
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
        watch(
            exec,
            &checks,
            opts,
            timeline,
            started,
            &mut verdict,
            analysis.as_mut(),
        )
        .await;
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

/// The probe loop of the watch window, with the analysis ticked on its own interval. Returns
/// when the window ends, the probes hit the failure limit, or the analysis decides.
async fn watch(
    exec: &dyn Executor,
    checks: &[(String, Probe)],
    opts: &VerifyOptions,
    timeline: &Timeline,
    started: Instant,
    verdict: &mut Verdict,
    mut analysis: Option<&mut davit_analysis::Analysis>,
) {
    let (name, probe) = checks.last().expect("at least one probe").clone();
    timeline.note(&format!(
        "verify: watching {} for {}s (every {}ms, {} failures in a row roll back){}",
        probe.url,
        opts.watch.as_secs(),
        opts.interval.as_millis(),
        opts.failure_limit,
        if analysis.is_some() {
            " with metric analysis"
        } else {
            ""
        }
    ));
    let watch_start = Instant::now();
    let mut next_analysis = analysis
        .as_ref()
        .map(|a| watch_start + a.spec().initial_delay);
    let mut streak = 0;
    while watch_start.elapsed() < opts.watch {
        let result = match exec.http_get(&probe.url, probe.per_try_timeout).await {
            Ok(resp) => check_response(&resp, &probe.expect),
            Err(e) => Err(e.to_string()),
        };
        let ok = result.is_ok();
        verdict.measurements.push(Measurement {
            at_secs: started.elapsed().as_secs_f32(),
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
                return;
            }
        }
        if let (Some(a), Some(due)) = (analysis.as_deref_mut(), next_analysis)
            && Instant::now() >= due
        {
            for m in a.tick().await {
                timeline.note(&format!(
                    "verify: analysis round {} {} = {} (condition {}): {:?}{}",
                    m.round,
                    m.metric,
                    m.value
                        .map(davit_analysis::run::fmt_value)
                        .unwrap_or_else(|| "-".into()),
                    m.threshold,
                    m.outcome,
                    if m.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", m.detail)
                    }
                ));
            }
            if a.status() != davit_analysis::Status::Running {
                return;
            }
            next_analysis = Some(due + a.spec().interval);
        }
        tokio::time::sleep(opts.interval).await;
    }
}

/// Where Prometheus scrapes the live release: its own published port.
fn live_instance(t: &Target, color: Option<&str>) -> Option<String> {
    davit_deploy::strategy::pick(&t.strategy).metrics_instance(t, color)
}

/// `http://host:port` of a probe URL.
fn base_of(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => match url[start..].find('/') {
            Some(end) => url[..start + end].to_string(),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Slack / webhook notifications on rollback or success, as the analysis spec asks. Never fails
/// verification: problems become timeline warnings.
async fn notify(opts: &VerifyOptions, t: &Target, verdict: &Verdict, timeline: &Timeline) {
    let verified = verdict.rolled_back_to.as_ref().map(|_| true);
    notify_with(opts, t, verdict, timeline, verified).await;
}

/// [`notify`] with the rollback's outcome given: `Some(false)` is a rollback that failed.
async fn notify_with(
    opts: &VerifyOptions,
    t: &Target,
    verdict: &Verdict,
    timeline: &Timeline,
    rollback_verified: Option<bool>,
) {
    let (Some(spec), Some(analysis)) = (&opts.analysis, &verdict.analysis) else {
        return;
    };
    let notifier =
        davit_analysis::notify::Notifier::from_env(|k| std::env::var(k).ok(), spec.notify.clone());
    let ctx = davit_analysis::notify::Context {
        environment: t.environment.clone(),
        version: verdict.version.clone(),
        rolled_back_to: verdict.rolled_back_to.clone(),
        rollback_verified,
        run_url: run_url(),
    };
    for w in notifier.send(&ctx, analysis).await {
        timeline.note(&format!("warning: {w}"));
    }
}

fn run_url() -> Option<String> {
    match (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        (Ok(s), Ok(r), Ok(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
        _ => None,
    }
}
