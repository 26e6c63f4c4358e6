//! The printed result: the markdown table docs/BENCHMARKS.md publishes, or JSON with every switch.
//!
//! The table always carries the machine and the exact command, because a latency or a switch time
//! means little without them, and the failure causes, because "3 failed" invites the question
//! "failed how?" that the cause list answers.

use crate::sandbox::Machine;
use crate::scenarios::{Ctx, Outcome, PROBES_ONLY, WITH_TRAFFIC};
use crate::stats::{Latency, Spread};
use serde::Serialize;

/// `--json` output.
#[derive(Debug, Serialize)]
pub struct Json {
    pub command: String,
    pub machine: Machine,
    pub rate: f64,
    pub connections: u16,
    pub settings: SettingsJson,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Serialize)]
pub struct SettingsJson {
    pub health_interval_ms: u64,
    pub health_consecutive: u32,
    pub verify_interval_ms: u64,
    pub failure_limit: u32,
    pub bad_after_secs: f64,
    pub rest_ms: u128,
    pub proxy_snippet: Option<String>,
}

impl SettingsJson {
    pub fn of(ctx: &Ctx) -> Self {
        let s = &ctx.settings;
        SettingsJson {
            health_interval_ms: s.health_interval_ms,
            health_consecutive: s.health_consecutive,
            verify_interval_ms: s.verify_interval_ms,
            failure_limit: s.failure_limit,
            bad_after_secs: ctx.bad_after_secs,
            rest_ms: ctx.rest.as_millis(),
            proxy_snippet: s.proxy_snippet.clone(),
        }
    }
}

/// How to run this again: the cargo command with the same arguments.
pub fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut c = "cargo run --release -p davit-bench".to_string();
    if !args.is_empty() {
        c.push_str(" -- ");
        c.push_str(&args.join(" "));
    }
    c
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn lat(l: &Latency) -> String {
    if l.count == 0 {
        return "–".into();
    }
    format!("{} / {} ms", ms(l.p50_ms), ms(l.p99_ms))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn spread(s: &Spread) -> String {
    if s.count == 0 {
        return "–".into();
    }
    format!("{} / {} s", secs(s.p50_secs), secs(s.max_secs))
}

/// The detection cell: p50 / max of went-bad -> decision, against its bound.
fn detection_cell(o: &Outcome, mode: &str) -> String {
    let d: Vec<f64> = o
        .detections
        .iter()
        .filter(|d| d.mode == mode)
        .filter_map(|d| d.detection_secs)
        .collect();
    if d.is_empty() {
        return "–".into();
    }
    let s = Spread::of(&d);
    format!(
        "{} / {} s (bound {:.1} s)",
        secs(s.p50_secs),
        secs(s.max_secs),
        o.detection_bound_secs.unwrap_or_default()
    )
}

pub fn markdown(outcomes: &[Outcome], m: &Machine, ctx: &Ctx, command: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Load: {} requests/s open loop over {} keep-alive connections, GET / through the public URL \
         (nginx for blue-green, the published port for compose). Failed = non-2xx or connection \
         error, never retried{}. Latency of successful requests from their scheduled send time.\n\n",
        ctx.rate,
        ctx.connections,
        if ctx.idle_check {
            "; an idle connection the server has closed is noticed before sending, as browsers and pooled clients do"
        } else {
            "; naive client: requests are written into idle connections without checking whether the server closed them"
        }
    ));
    s.push_str("| strategy | deploys + rollbacks | requests | failed | longest failure run | p50 / p99 at rest | p50 / p99 during switches | switch time p50 / max | restore time p50 / max | detection p50 / max |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let detection = outcomes.iter().find(|o| o.name == "detection");
    let table = |o: &&Outcome| o.name != "detection" && o.name != "false-rollbacks";
    for o in outcomes.iter().filter(table) {
        let x = &o.summary;
        let det = if o.name == "blue-green" {
            detection.map_or("–".into(), |d| {
                format!(
                    "{}: {}; {}: {}",
                    PROBES_ONLY,
                    detection_cell(d, PROBES_ONLY),
                    WITH_TRAFFIC,
                    detection_cell(d, WITH_TRAFFIC)
                )
            })
        } else {
            "no verification".into()
        };
        s.push_str(&format!(
            "| {} | {} + {} | {} | **{}** | {} ({} ms) | {} | {} | {} | {} | {} |\n",
            o.label,
            x.deploys,
            x.rollbacks,
            x.requests,
            x.failed,
            x.longest_failure_run,
            ms(Some(x.longest_failure_run_ms)),
            lat(&x.at_rest),
            lat(&x.during_switches),
            spread(&x.switch_time),
            spread(&x.restore_time),
            det,
        ));
    }
    if let Some(d) = detection {
        let x = &d.summary;
        s.push_str(&format!(
            "\nDetection ({} release(s) that pass the health gate and answer 500 after {} s; verify probes every {} ms, rolls back after {} failures in a row; bound = interval × (limit + 1) = {:.1} s):\n\n",
            d.detections.len(),
            ctx.bad_after_secs,
            ctx.settings.verify_interval_ms,
            ctx.settings.failure_limit,
            d.detection_bound_secs.unwrap_or_default(),
        ));
        s.push_str(&format!(
            "Traffic analysis: {}.\n\n| verify judges by | bad releases | rolled back | detection p50 / max | 5xx served by the bad release p50 / max (total) |\n|---|---:|---:|---:|---:|\n",
            ctx.traffic_limits
        ));
        for mode in [PROBES_ONLY, WITH_TRAFFIC] {
            let ds: Vec<_> = d.detections.iter().filter(|x| x.mode == mode).collect();
            let served: Vec<f64> = ds.iter().map(|x| x.bad_answers as f64).collect();
            let sp = Spread::of(&served);
            s.push_str(&format!(
                "| {mode} | {} | {} | {} | {:.0} / {:.0} ({}) |\n",
                ds.len(),
                ds.iter().filter(|x| x.rolled_back).count(),
                detection_cell(d, mode),
                sp.p50_secs.unwrap_or_default(),
                sp.max_secs.unwrap_or_default(),
                ds.iter().map(|x| x.bad_answers).sum::<u64>(),
            ));
        }
        s.push('\n');
        s.push_str("| # | verify judges by | detection (first 5xx -> decision) | restore (decision -> previous version answers, load) | restore (verify's own figure) | 5xx served by the bad release | reason |\n|---:|---|---:|---:|---:|---:|---|\n");
        let rollbacks: Vec<_> = d
            .switches
            .iter()
            .filter(|w| w.switch.kind == crate::stats::Kind::Rollback)
            .collect();
        for (i, det) in d.detections.iter().enumerate() {
            let restore = det
                .decided_us
                .and_then(|dec| rollbacks.iter().find(|w| w.switch.decided_us == dec))
                .and_then(|w| w.switch_secs());
            s.push_str(&format!(
                "| {} | {} | {} s | {} s | {} s | {} | {} |\n",
                i + 1,
                det.mode,
                secs(det.detection_secs),
                secs(restore),
                secs(det.verify_restored_secs),
                det.bad_answers,
                det.reason.as_deref().unwrap_or("").replace('|', "/"),
            ));
        }
        s.push_str(&format!(
            "\nAll requests of the detection run: {} sent, {} failed ({}).\n",
            x.requests,
            x.failed,
            causes(x)
        ));
    }
    if let Some(n) = outcomes.iter().find(|o| o.name == "false-rollbacks") {
        let rolled = n.detections.iter().filter(|x| x.rolled_back).count();
        s.push_str(&format!(
            "\nFalse rollbacks: {} deploys of a healthy release with 1 % background errors (`FAULT_ERROR_RATIO=0.01`), each verified with probes + traffic for {} s under the same load: **{} rolled back**. {} requests, {} failed ({}).\n\n| # | kept | traffic |\n|---:|---|---|\n",
            n.detections.len(),
            ctx.noisy_watch_secs,
            rolled,
            n.summary.requests,
            n.summary.failed,
            causes(&n.summary),
        ));
        for (i, x) in n.detections.iter().enumerate() {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                i + 1,
                if x.rolled_back { "rolled back" } else { "kept" },
                x.reason.as_deref().unwrap_or("").replace('|', "/"),
            ));
        }
    }
    s.push_str("\nFailure causes:\n\n");
    for o in outcomes.iter().filter(table) {
        s.push_str(&format!(
            "- {}: {} (in switch windows: {}; achieved {:.0} req/s; switches whose version never answered: {}; idle keep-alive connections the server closed, reopened before sending: {})\n",
            o.label,
            causes(&o.summary),
            o.summary.failed_during_switches,
            o.summary.achieved_rps,
            o.summary.never_answered,
            o.summary.reopened_connections,
        ));
    }
    s.push_str(&format!(
        "\nMachine: {} CPU(s) {}, {:.1} GB RAM, Linux {}, Docker {} ({}), {}, docker-compose {}; \
         1-min load average {:.1} at start, {:.1} at end{}.\n",
        m.cpus,
        m.cpu_model,
        m.memory_gb,
        m.kernel,
        m.docker,
        m.storage_driver,
        m.nginx,
        m.compose,
        m.load_at_start,
        m.load_at_end,
        if m.load_at_start > m.cpus as f64 {
            " (a shared, busy machine)"
        } else {
            ""
        },
    ));
    s.push_str(&format!(
        "Health gate: every {} ms, {} in a row. Run time: {}.\n\nCommand: `{command}`\n",
        ctx.settings.health_interval_ms,
        ctx.settings.health_consecutive,
        outcomes
            .iter()
            .map(|o| format!("{} {:.0} s", o.name, o.duration_secs))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}

fn causes(x: &crate::stats::Summary) -> String {
    if x.failures_by_cause.is_empty() {
        return "none".into();
    }
    x.failures_by_cause
        .iter()
        .map(|(k, v)| format!("{v} × {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
