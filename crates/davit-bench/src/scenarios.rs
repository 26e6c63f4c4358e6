//! The five scenarios, each in its own sandbox under load from a separate process.
//!
//! - blue-green: N cycles of `davit_deploy::deploy` (new version) then `davit_deploy::rollback`.
//! - detection: a release that passes its health gate and then fails, caught by
//!   `davit_verify::verify`, which rolls it back: judged by the probes alone, then by the
//!   probes and the traffic log, against the same load.
//! - false rollbacks: healthy releases with 1 % background errors, verified under that load.
//! - compose `up -d`: davit's compose strategy, which is exactly `docker compose up -d` of a
//!   changed compose file (the service is recreated), deploys and rollbacks alike.
//! - compose `down && up -d`: what many teams run today, driven directly, without davit.
//!
//! The deployer notes when each switch was decided on the wall clock the load generator also
//! uses; [`crate::stats`] does the rest from the records afterwards.

use crate::load::{Record, now_us};
use crate::sandbox::{IMAGE, Sandbox, Settings};
use crate::stats::{Kind, Summary, Switch, SwitchSeen, summarize};
use anyhow::Context;
use davit_deploy::{Options, Target};
use davit_exec::runner::{Event, Observer, Quiet};
use davit_exec::{Executor, Local, Timeline};
use serde::Serialize;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

/// The two good versions the cycles alternate between, and the one that goes bad.
pub const V1: &str = "v1";
pub const V2: &str = "v2";
pub const BAD: &str = "v3";
/// A healthy release with 1 % background errors (`FAULT_ERROR_RATIO=0.01` on `/`).
pub const NOISY: &str = "v4";

/// How verify judged in a detection: the probes alone, or the probes and the traffic log.
pub const PROBES_ONLY: &str = "probes only";
pub const WITH_TRAFFIC: &str = "probes + traffic";

/// What every scenario needs from the command line.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub cycles: u32,
    pub baseline_cycles: u32,
    pub detections: u32,
    pub bad_after_secs: f64,
    pub rate: f64,
    pub connections: u16,
    pub rest: Duration,
    pub idle_check: bool,
    /// Where to keep the raw records (`--records`).
    pub records: Option<PathBuf>,
    pub settings: Settings,
    pub verbose: bool,
    /// How long verify watches each release of the false-rollbacks scenario.
    pub noisy_watch_secs: u64,
    /// The traffic analysis' thresholds, as davit.toml's defaults say.
    pub traffic_limits: String,
}

impl Ctx {
    /// The plan timeline on stderr with `-v`, nothing otherwise.
    fn observer(&self) -> Box<dyn Observer> {
        if self.verbose {
            Box::new(Timeline::default())
        } else {
            Box::new(Quiet)
        }
    }
}

/// The load generator child process.
pub struct LoadProcess {
    child: tokio::process::Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoadProcess {
    /// Start `davit-bench load` against `url`, and wait until its schedule has begun.
    pub async fn start(ctx: &Ctx, url: &str) -> anyhow::Result<LoadProcess> {
        let dir = tempfile::Builder::new()
            .prefix("davit-bench-load-")
            .tempdir()?;
        let out = dir.path().join("records.jsonl");
        let exe = std::env::current_exe().context("locating the davit-bench binary")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("load");
        if !ctx.idle_check {
            cmd.arg("--no-idle-check");
        }
        let child = cmd
            .args(["--url", url])
            .args(["--rate", &ctx.rate.to_string()])
            .args(["--connections", &ctx.connections.to_string()])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the load generator")?;
        // Let it connect and settle before anything changes.
        tokio::time::sleep(ctx.rest).await;
        Ok(LoadProcess {
            child,
            out,
            _dir: dir,
        })
    }

    /// Stop the load (close its stdin), wait for it, and read every record, sorted by due time.
    /// With `--records`, the raw file is kept as `<name>.jsonl`.
    pub async fn finish(mut self, ctx: &Ctx, name: &str) -> anyhow::Result<Vec<Record>> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the load generator did not stop within 60 s")??;
        anyhow::ensure!(status.success(), "the load generator failed: {status}");
        let text = std::fs::read_to_string(&self.out)?;
        if let Some(dir) = &ctx.records {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{name}.jsonl")), &text)?;
        }
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            records.push(
                serde_json::from_str::<Record>(line)
                    .with_context(|| format!("record {} of the load generator", i + 1))?,
            );
        }
        records.sort_by_key(|r| r.due_us);
        Ok(records)
    }
}

/// Notes when the plan step whose summary starts with `prefix` starts: the switch decision.
struct SwitchClock<'a> {
    prefix: &'a str,
    at: Mutex<Option<u64>>,
    inner: &'a dyn Observer,
}

impl<'a> SwitchClock<'a> {
    fn new(prefix: &'a str, inner: &'a dyn Observer) -> Self {
        SwitchClock {
            prefix,
            at: Mutex::new(None),
            inner,
        }
    }
    fn take(&self) -> Option<u64> {
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for SwitchClock<'_> {
    fn event(&self, e: &Event<'_>) {
        if let Event::StepStarted { summary, .. } = e
            && summary.starts_with(self.prefix)
        {
            let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
            // The first switch step of the plan; an undo never emits StepStarted.
            at.get_or_insert_with(now_us);
        }
        self.inner.event(e);
    }
}

/// One detection repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// [`PROBES_ONLY`] or [`WITH_TRAFFIC`].
    pub mode: &'static str,
    /// Whether verify rolled the release back.
    pub rolled_back: bool,
    /// The first 5xx the load saw from the bad release.
    pub went_bad_us: Option<u64>,
    /// When verify decided to roll back.
    pub decided_us: Option<u64>,
    /// went bad -> decision.
    pub detection_secs: Option<f64>,
    /// verify's own figure: decision -> rollback verified through the proxy.
    pub verify_restored_secs: Option<f64>,
    /// 5xx the bad release served before the previous version answered again.
    pub bad_answers: u64,
    pub reason: Option<String>,
}

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub label: String,
    pub summary: Summary,
    pub switches: Vec<SwitchSeen>,
    pub detections: Vec<Detection>,
    /// interval × (failure limit + 1), the detection target.
    pub detection_bound_secs: Option<f64>,
    pub duration_secs: f64,
}

fn failure(f: davit_core::Failure) -> anyhow::Error {
    anyhow::anyhow!("{f}")
}

/// A sandboxed environment with v1 deployed through davit and the load generator already
/// running against its public URL: the common start of every davit scenario.
async fn v1_under_load(
    ctx: &Ctx,
    name: &str,
    environment: &str,
) -> anyhow::Result<(Sandbox, Target, LoadProcess)> {
    let sb = Sandbox::new(name)?;
    let t = sb.target(environment, &ctx.settings)?;
    davit_deploy::deploy(
        &Local::new(),
        &t,
        V1,
        &Options::default(),
        ctx.observer().as_ref(),
    )
    .await
    .map_err(failure)?;
    let load = LoadProcess::start(ctx, &format!("{}/", t.public_url())).await?;
    Ok((sb, t, load))
}

/// Blue-green deploy/rollback cycles under load.
pub async fn blue_green(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let started = now_us();
    let (sb, t, load) = v1_under_load(ctx, "bg", "production").await?;
    let exec = Local::new();
    let opts = Options::default();
    let obs = ctx.observer();
    let mut switches = Vec::new();
    let run = async {
        for i in 0..ctx.cycles {
            let clock = SwitchClock::new("switch:", obs.as_ref());
            let called = now_us();
            davit_deploy::deploy(&exec, &t, V2, &opts, &clock)
                .await
                .map_err(failure)?;
            switches.push(Switch {
                kind: Kind::Deploy,
                decided_us: clock.take().unwrap_or(called),
                returned_us: now_us(),
                expect: V2.into(),
            });
            tokio::time::sleep(ctx.rest).await;
            let decided = now_us();
            davit_deploy::rollback(&exec, &t, None, "davit-bench", &opts, obs.as_ref())
                .await
                .map_err(failure)?;
            switches.push(Switch {
                kind: Kind::Rollback,
                decided_us: decided,
                returned_us: now_us(),
                expect: V1.into(),
            });
            tokio::time::sleep(ctx.rest).await;
            progress("blue-green", i + 1, ctx.cycles);
        }
        anyhow::Ok(())
    }
    .await;
    let records = load.finish(ctx, "blue-green").await?;
    run?;
    let (summary, seen) = summarize(&records, &switches);
    drop(sb);
    Ok(Outcome {
        name: "blue-green".into(),
        label: "davit blue-green (nginx switch)".into(),
        summary,
        switches: seen,
        detections: Vec::new(),
        detection_bound_secs: None,
        duration_secs: (now_us() - started) as f64 / 1e6,
    })
}

/// A release that goes bad after its health gate, caught and rolled back by verify.
pub async fn detection(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let started = now_us();
    let (sb, t, load) = v1_under_load(ctx, "detect", "production").await?;
    let exec = Local::new();
    let opts = Options::default();
    let obs = ctx.observer();
    let mut switches = Vec::new();
    let mut verdicts = Vec::new();
    let tl = Timeline::new(if ctx.verbose {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::sink())
    });
    // The same bad release, the same load, in the same run: first judged by the probes alone,
    // then by the probes and the traffic log.
    let modes: Vec<&'static str> = [PROBES_ONLY, WITH_TRAFFIC]
        .into_iter()
        .flat_map(|m| std::iter::repeat_n(m, ctx.detections as usize))
        .collect();
    let run = async {
        for (i, mode) in modes.iter().enumerate() {
            let clock = SwitchClock::new("switch:", obs.as_ref());
            let called = now_us();
            davit_deploy::deploy(&exec, &t, BAD, &opts, &clock)
                .await
                .map_err(failure)?;
            switches.push(Switch {
                kind: Kind::Deploy,
                decided_us: clock.take().unwrap_or(called),
                returned_us: now_us(),
                expect: BAD.into(),
            });
            let mut judged = t.clone();
            judged.verify.traffic = *mode == WITH_TRAFFIC;
            let mut vopts = davit_verify::VerifyOptions::from_target(&judged);
            vopts.version = Some(BAD.into());
            vopts.rollback = true;
            let verify_started = now_us();
            let verdict = davit_verify::verify(&exec, &judged, &vopts, &tl)
                .await
                .map_err(failure)?;
            let decided = verdict
                .detected_after_secs
                .map(|s| verify_started + (f64::from(s) * 1e6) as u64);
            if let Some(d) = decided {
                switches.push(Switch {
                    kind: Kind::Rollback,
                    decided_us: d,
                    returned_us: now_us(),
                    expect: V1.into(),
                });
            }
            verdicts.push((switches.len() - 1, decided, verdict, *mode));
            tokio::time::sleep(ctx.rest).await;
            progress("detection", i as u32 + 1, modes.len() as u32);
        }
        anyhow::Ok(())
    }
    .await;
    let records = load.finish(ctx, "detection").await?;
    run?;
    let (summary, seen) = summarize(&records, &switches);
    let mut detections = Vec::new();
    for (last, decided, verdict, mode) in verdicts {
        // The deploy of the bad release is the switch before its rollback (or the last one).
        let deploy = if decided.is_some() {
            &seen[last - 1]
        } else {
            &seen[last]
        };
        let restored = decided.and_then(|_| seen[last].first_answer_us);
        let went_bad_us = records
            .iter()
            .filter(|r| {
                r.sent_us >= deploy.switch.decided_us
                    && r.status >= 500
                    && r.version.as_deref() == Some(BAD)
            })
            .map(|r| r.due_us.max(r.sent_us))
            .min();
        let until = restored.unwrap_or(u64::MAX);
        let bad_answers = records
            .iter()
            .filter(|r| {
                r.sent_us >= deploy.switch.decided_us
                    && r.done_us() <= until
                    && r.status >= 500
                    && r.version.as_deref() == Some(BAD)
            })
            .count() as u64;
        detections.push(Detection {
            mode,
            rolled_back: verdict.rolled_back_to.is_some(),
            went_bad_us,
            decided_us: decided,
            detection_secs: match (went_bad_us, decided) {
                (Some(b), Some(d)) => Some((d as f64 - b as f64) / 1e6),
                _ => None,
            },
            verify_restored_secs: verdict.restored_after_secs.map(f64::from),
            bad_answers,
            reason: verdict.reason.clone(),
        });
    }
    drop(sb);
    let s = &ctx.settings;
    Ok(Outcome {
        name: "detection".into(),
        label: "davit blue-green + verify, release goes bad".into(),
        summary,
        switches: seen,
        detections,
        detection_bound_secs: Some(
            s.verify_interval_ms as f64 / 1000.0 * f64::from(s.failure_limit + 1),
        ),
        duration_secs: (now_us() - started) as f64 / 1e6,
    })
}

/// Healthy releases with 1 % background errors, deployed and verified (probes + traffic) under
/// the same load: every rollback here is a false one.
pub async fn false_rollbacks(ctx: &Ctx, watch: Duration) -> anyhow::Result<Outcome> {
    let started = now_us();
    let (sb, t, load) = v1_under_load(ctx, "noisy", "production").await?;
    let exec = Local::new();
    let opts = Options::default();
    let obs = ctx.observer();
    let tl = Timeline::new(if ctx.verbose {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::sink())
    });
    let mut switches = Vec::new();
    let mut verdicts = Vec::new();
    let run = async {
        for i in 0..ctx.cycles {
            let clock = SwitchClock::new("switch:", obs.as_ref());
            let called = now_us();
            davit_deploy::deploy(&exec, &t, NOISY, &opts, &clock)
                .await
                .map_err(failure)?;
            switches.push(Switch {
                kind: Kind::Deploy,
                decided_us: clock.take().unwrap_or(called),
                returned_us: now_us(),
                expect: NOISY.into(),
            });
            let mut vopts = davit_verify::VerifyOptions::from_target(&t);
            vopts.version = Some(NOISY.into());
            vopts.watch = watch;
            let verdict = davit_verify::verify(&exec, &t, &vopts, &tl)
                .await
                .map_err(failure)?;
            if verdict.rolled_back_to.is_none() {
                // Back to v1 for the next round (not verified: v1 has no errors).
                let decided = now_us();
                davit_deploy::rollback(&exec, &t, None, "davit-bench", &opts, obs.as_ref())
                    .await
                    .map_err(failure)?;
                switches.push(Switch {
                    kind: Kind::Rollback,
                    decided_us: decided,
                    returned_us: now_us(),
                    expect: V1.into(),
                });
            }
            verdicts.push(verdict);
            tokio::time::sleep(ctx.rest).await;
            progress("false-rollbacks", i + 1, ctx.cycles);
        }
        anyhow::Ok(())
    }
    .await;
    let records = load.finish(ctx, "false-rollbacks").await?;
    run?;
    let (summary, seen) = summarize(&records, &switches);
    drop(sb);
    let detections = verdicts
        .into_iter()
        .map(|v| Detection {
            mode: WITH_TRAFFIC,
            rolled_back: v.rolled_back_to.is_some(),
            went_bad_us: None,
            decided_us: None,
            detection_secs: None,
            verify_restored_secs: v.restored_after_secs.map(f64::from),
            bad_answers: v.traffic.as_ref().map_or(0, |t| t.failures),
            reason: v
                .reason
                .clone()
                .or_else(|| v.traffic.as_ref().map(|t| t.describe())),
        })
        .collect();
    Ok(Outcome {
        name: "false-rollbacks".into(),
        label: "healthy release, 1 % errors, verified".into(),
        summary,
        switches: seen,
        detections,
        detection_bound_secs: None,
        duration_secs: (now_us() - started) as f64 / 1e6,
    })
}

/// davit's compose strategy: `docker compose up -d` of the release's compose file.
pub async fn compose_up(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let started = now_us();
    let (sb, t, load) = v1_under_load(ctx, "up", "staging").await?;
    let exec = Local::new();
    let opts = Options::default();
    let obs = ctx.observer();
    let mut switches = Vec::new();
    let run = async {
        for i in 0..ctx.baseline_cycles {
            for (kind, version) in [(Kind::Deploy, V2), (Kind::Rollback, V1)] {
                let clock = SwitchClock::new("docker compose up -d", obs.as_ref());
                let called = now_us();
                match kind {
                    Kind::Deploy => davit_deploy::deploy(&exec, &t, version, &opts, &clock)
                        .await
                        .map(drop),
                    Kind::Rollback => {
                        davit_deploy::rollback(&exec, &t, None, "davit-bench", &opts, &clock)
                            .await
                            .map(drop)
                    }
                }
                .map_err(failure)?;
                switches.push(Switch {
                    kind,
                    // A rollback is decided when it is called; a deploy when `up -d` starts.
                    decided_us: match kind {
                        Kind::Deploy => clock.take().unwrap_or(called),
                        Kind::Rollback => called,
                    },
                    returned_us: now_us(),
                    expect: version.into(),
                });
                tokio::time::sleep(ctx.rest).await;
            }
            progress("compose up -d", i + 1, ctx.baseline_cycles);
        }
        anyhow::Ok(())
    }
    .await;
    let records = load.finish(ctx, "compose-up").await?;
    run?;
    let (summary, seen) = summarize(&records, &switches);
    drop(sb);
    Ok(Outcome {
        name: "compose-up".into(),
        label: "`docker compose up -d` (recreate; davit compose strategy)".into(),
        summary,
        switches: seen,
        detections: Vec::new(),
        detection_bound_secs: None,
        duration_secs: (now_us() - started) as f64 / 1e6,
    })
}

/// `docker compose down && docker compose up -d`, driven directly: no davit involved.
pub async fn compose_down_up(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let started = now_us();
    let sb = Sandbox::new("downup")?;
    let exec = Local::new();
    let flavor = davit_deploy::docker::compose_flavor(&exec)
        .await
        .ok_or_else(|| anyhow::anyhow!("neither `docker compose` nor `docker-compose` works"))?;
    let project = format!("davit-{}-plain", sb.app);
    let file = sb.dir.path().join("compose.yaml");
    let url = format!("http://127.0.0.1:{}/", sb.compose);
    let write = |version: &str| {
        std::fs::write(
            &file,
            format!(
                "services:\n  app:\n    image: \"{IMAGE}:{version}\"\n    ports: [\"127.0.0.1:{port}:8000\"]\n    restart: unless-stopped\n    labels: [\"davit.app={app}\"]\n",
                port = sb.compose,
                app = sb.app,
            ),
        )
    };
    let compose = |args: &[&str]| {
        flavor
            .cmd(&project, &file)
            .args(args.iter().copied())
            .timeout(Duration::from_secs(300))
    };
    write(V1)?;
    exec.run_ok(&compose(&["up", "-d"])).await?;
    wait_version(&exec, &url, V1).await?;
    let load = LoadProcess::start(ctx, &url).await?;
    let mut switches = Vec::new();
    let run = async {
        for i in 0..ctx.baseline_cycles {
            for (kind, version) in [(Kind::Deploy, V2), (Kind::Rollback, V1)] {
                let decided = now_us();
                write(version)?;
                exec.run_ok(&compose(&["down"])).await?;
                exec.run_ok(&compose(&["up", "-d"])).await?;
                wait_version(&exec, &url, version).await?;
                switches.push(Switch {
                    kind,
                    decided_us: decided,
                    returned_us: now_us(),
                    expect: version.into(),
                });
                tokio::time::sleep(ctx.rest).await;
            }
            progress("compose down && up -d", i + 1, ctx.baseline_cycles);
        }
        anyhow::Ok(())
    }
    .await;
    let records = load.finish(ctx, "compose-down-up").await?;
    let _ = exec.run(&compose(&["down"])).await;
    run?;
    let (summary, seen) = summarize(&records, &switches);
    drop(sb);
    Ok(Outcome {
        name: "compose-down-up".into(),
        label: "`docker compose down && docker compose up -d`".into(),
        summary,
        switches: seen,
        detections: Vec::new(),
        detection_bound_secs: None,
        duration_secs: (now_us() - started) as f64 / 1e6,
    })
}

/// Poll until `version` answers at `url` (the plain baseline has no health gate of its own).
async fn wait_version(exec: &dyn Executor, url: &str, version: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = exec.http_get(url, Duration::from_secs(2)).await
            && r.status == 200
            && r.header("x-app-version") == Some(version)
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{version} did not answer at {url} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn progress(what: &str, done: u32, of: u32) {
    eprintln!("davit-bench: {what}: {done}/{of}");
}

/// Build the demo app statically and the three images FROM scratch, as `davit demo` does.
pub async fn build_images(app_bin: Option<PathBuf>, bad_after_secs: f64) -> anyhow::Result<()> {
    let exec = Local::new();
    let bin = match app_bin {
        Some(b) => b,
        None => {
            let root = davit::demo::repo_root().ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot find the davit repository (examples/demo-app) above the current folder; run from the repository or pass --app-bin"
                )
            })?;
            eprintln!("davit-bench: building the static demo app (cargo, crt-static)");
            davit::demo::build_static_app(&root)
                .await
                .map_err(failure)?
        }
    };
    for (version, env) in [
        (V1, vec![]),
        (V2, vec![]),
        (
            BAD,
            vec![("FAULT_FAIL_AFTER_SECS", format!("{bad_after_secs}"))],
        ),
        (NOISY, vec![("FAULT_ERROR_RATIO", "0.01".to_string())]),
    ] {
        davit::demo::build_image(&exec, &bin, &format!("{IMAGE}:{version}"), version, &env)
            .await
            .map_err(failure)?;
    }
    eprintln!("davit-bench: built {IMAGE}:{{{V1},{V2},{BAD},{NOISY}}}");
    Ok(())
}

/// Check the tools before building anything.
pub async fn prerequisites() -> anyhow::Result<()> {
    let exec = Local::new();
    let mut missing = Vec::new();
    if davit_deploy::docker::engine_reachable(&exec).await.is_err() {
        missing.push("a reachable Docker engine (apt-get install docker.io)");
    }
    if !exec.has_program("nginx").await {
        missing.push("nginx (apt-get install nginx-light)");
    }
    if davit_deploy::docker::compose_flavor(&exec).await.is_none() {
        missing.push("docker compose or docker-compose (apt-get install docker-compose)");
    }
    anyhow::ensure!(
        missing.is_empty(),
        "the benchmark needs: {}",
        missing.join(", ")
    );
    Ok(())
}
