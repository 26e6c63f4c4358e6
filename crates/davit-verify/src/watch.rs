//! The watch window: the public path probed every interval, a run of failures deciding, the
//! metric analysis ticked on its own interval beside it, and the live color's own traffic
//! followed beside both ([`crate::traffic`]): whichever finds the release bad first decides.

use crate::tail::{Poll, Tail};
use crate::traffic::{Figures, Judge, Limits};
use crate::{Measurement, Verdict, VerifyOptions, proxy_recovered};
use davit_core::Probe;
use davit_deploy::Target;
use davit_exec::runner::check_response;
use davit_exec::{Executor, Timeline};
use std::time::{Duration, Instant};

/// How often the traffic log is read: a tenth of a second adds at most that to a detection.
const TRAFFIC_POLL: Duration = Duration::from_millis(100);

/// The live color's traffic log and its judge, during the watch window.
pub(crate) struct TrafficWatch {
    pub tail: Tail,
    pub judge: Judge,
}

/// Follow the traffic log until the judge decides the release is bad (never returns otherwise).
async fn follow(exec: &dyn Executor, tw: &mut TrafficWatch) -> Figures {
    let mut missing_since: Option<Instant> = None;
    loop {
        match tw.tail.poll(exec).await {
            Ok(Poll::Lines(lines)) => {
                missing_since = None;
                for l in &lines {
                    if let Some(f) = tw.judge.line(l) {
                        return f;
                    }
                }
            }
            // nginx creates the file with the first configuration that names it.
            Ok(Poll::Missing) => {
                if missing_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2)
                {
                    tw.judge.note("no traffic log yet (the proxy's configuration predates it until the next deploy)".into());
                }
            }
            Err(e) => tw
                .judge
                .note(format!("the traffic log could not be read: {e}")),
        }
        tokio::time::sleep(TRAFFIC_POLL).await;
    }
}

/// The watch window: the probe loop (with the analysis ticked on its own interval) and, beside
/// it, the traffic judge. Returns when the window ends, the probes hit the failure limit, the
/// analysis decides, or the traffic shows the release is bad.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn watch(
    exec: &dyn Executor,
    t: &Target,
    checks: &[(String, Probe)],
    opts: &VerifyOptions,
    timeline: &Timeline,
    started: Instant,
    verdict: &mut Verdict,
    analysis: Option<&mut davit_analysis::Analysis>,
    traffic: Option<&mut TrafficWatch>,
) {
    let Some(tw) = traffic else {
        return probe_loop(exec, t, checks, opts, timeline, started, verdict, analysis).await;
    };
    timeline.note(&format!(
        "verify: judging {}'s own traffic ({}; {})",
        tw.judge.summary().color,
        tw.judge.summary().limits,
        tw.tail_path()
    ));
    let decided = tokio::select! {
        _ = probe_loop(exec, t, checks, opts, timeline, started, verdict, analysis) => None,
        f = follow(exec, tw) => Some(f),
    };
    if let Some(f) = decided {
        let reason = tw.judge.reason(&f);
        timeline.note(&format!("verify: {reason}"));
        verdict.measurements.push(Measurement {
            at_secs: started.elapsed().as_secs_f32(),
            check: format!("traffic {}", tw.judge.summary().color),
            ok: false,
            detail: tw.judge.summary().describe(),
        });
        verdict.healthy = false;
        verdict.reason = Some(reason);
    }
}

/// The traffic judge for the live release, when its strategy writes a traffic log (blue-green's
/// managed nginx) and `verify.traffic` is on.
pub(crate) fn traffic_watch(
    t: &Target,
    live: Option<&davit_deploy::nginx::LiveSite>,
) -> Option<TrafficWatch> {
    let live = live?;
    // Only the proxy davit runs itself writes the traffic log.
    if !t.verify.traffic
        || davit_deploy::strategy::pick(&t.strategy)
            .managed_proxy()
            .is_none()
    {
        return None;
    }
    let limits = Limits::from_config(&t.verify);
    Some(TrafficWatch {
        tail: Tail::new(davit_deploy::nginx::Files::of(t).traffic_log(&live.color)),
        judge: Judge::new(&live.color, &live.release, limits),
    })
}

impl TrafficWatch {
    fn tail_path(&self) -> String {
        self.tail.path().display().to_string()
    }
}

/// The probe loop of the watch window, with the analysis ticked on its own interval.
#[allow(clippy::too_many_arguments)]
async fn probe_loop(
    exec: &dyn Executor,
    t: &Target,
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
        let result = match exec
            .http_get_as(&probe.url, probe.host.as_deref(), probe.per_try_timeout)
            .await
        {
            Ok(resp) => check_response(&resp, &probe.expect),
            Err(e) => Err(e.to_string()),
        };
        // A dead managed proxy is started again and not counted against the release.
        if result.is_err() && proxy_recovered(exec, t, timeline, verdict).await {
            streak = 0;
            continue;
        }
        if verdict.infra_failure {
            return;
        }
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

/// `http://host:port` of a probe URL.
pub(crate) fn base_of(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => match url[start..].find('/') {
            Some(end) => url[..start + end].to_string(),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_of_keeps_scheme_host_and_port() {
        assert_eq!(
            base_of("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_of("https://shop.example.com"),
            "https://shop.example.com"
        );
        assert_eq!(base_of("not a url"), "not a url");
    }
}
