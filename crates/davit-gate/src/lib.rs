//! davit-gate: the first action of every pipeline; nothing is built or deployed unless it says
//! yes.
//!
//! It runs named checks (lint, format, typecheck, test, migrations, custom) in parallel, each with
//! its own timeout, after waiting for the services tests need; then it reads the JUnit and coverage
//! reports those checks wrote and decides. The checks come from presets detected in the
//! repository ([`preset`]), replaced or extended by the `[gate]` table of davit.toml and by action
//! inputs ([`config`]). The result is one [`report::GateReport`]: a step summary (printed to the
//! terminal when there is no summary file), an annotation per failing test at its file and line,
//! `gate.json` and step outputs.
//!
//! Exit codes follow the davit contract ([`davit_core::Exit`]): 0 every check passed and coverage
//! met its threshold; 1 a check, a test, a report or the coverage threshold failed (a malformed
//! report counts as failed: the gate cannot vouch for tests it cannot read); 2 the configuration
//! is wrong or a tool is missing (the message names the fix); 3 a service never came up or the
//! gate itself could not run.

pub mod cli;
pub mod config;
pub mod coverage;
pub mod junit;
pub mod preset;
pub mod report;
pub mod runner;
pub mod services;
#[doc(hidden)]
pub mod synthetic;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use davit_core::{Exit, Failure};
use davit_gha::{Annotation, Gha, Level};

use crate::cli::Args;
use crate::config::Settings;
use crate::report::{CoverageSummary, GateReport, TestRun, TestSummary};

/// Most test-failure annotations per run (GitHub shows only the first few per step anyway).
pub const MAX_ANNOTATIONS: usize = 50;

/// Set up `tracing` on stderr; `-v` for debug, `-vv` for trace. Honours NO_COLOR.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAVIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The binary's whole behaviour: run the gate in this process's environment. `main` hands the
/// result to [`davit_gha::finish`], which prints `error:`/`hint:` and picks the exit code.
pub fn run(args: Args) -> Result<Exit, Failure> {
    let gha = Gha::from_env();
    run_with(&args, &gha, std::env::var_os("PATH").as_deref())
}

/// Run the gate with an explicit runtime and PATH (tests use this directly).
pub fn run_with(args: &Args, gha: &Gha, path_env: Option<&OsStr>) -> Result<Exit, Failure> {
    let settings = Settings::resolve(args, path_env)?;
    for n in &settings.notes {
        gha.log(&format!("note: {n}"));
    }
    if args.list {
        for c in &settings.checks {
            println!(
                "{}\t{:?}\t{}\t{}",
                c.name,
                c.kind,
                c.origin,
                c.run.display()
            );
        }
        return Ok(Exit::Ok);
    }
    if !settings.missing.is_empty() {
        let list: Vec<String> = settings
            .missing
            .iter()
            .map(|m| {
                format!(
                    "  {} (needed by check `{}`): {}",
                    m.tool, m.check, m.install
                )
            })
            .collect();
        return Err(Failure::bad_input(
            format!("tools not found on PATH:\n{}", list.join("\n")),
            "install them in an earlier step, or replace the check with [gate.checks.<name>] run = \"...\" \
             or disable it with enabled = false",
        ));
    }
    if settings.checks.is_empty() && settings.junit.is_empty() && settings.coverage.is_empty() {
        return Err(Failure::bad_input(
            format!(
                "nothing to check in {}: no preset matched and no checks are configured",
                settings.root.display()
            ),
            "add [gate.checks.<name>] run = \"...\" to davit.toml, pass the `checks` input, \
             or set preset = \"python\" / \"node\" / \"rust\"",
        ));
    }
    std::fs::create_dir_all(&settings.out_dir).map_err(|e| {
        Failure::infra(format!("cannot create {}: {e}", settings.out_dir.display()))
    })?;
    // Reports the presets ask for live in out_dir: remove any left by an earlier run, so a check
    // that crashed before writing cannot be judged by yesterday's results.
    for f in settings
        .junit_optional
        .iter()
        .chain(&settings.coverage_optional)
    {
        let p = Path::new(f);
        if p.starts_with(&settings.out_dir) {
            let _ = std::fs::remove_file(p);
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::infra(format!("cannot start the async runtime: {e}")))?;
    let outcome = rt
        .block_on(runner::run_checks(&settings, gha))
        .map_err(|e| Failure::infra(format!("cannot write check logs: {e}")))?;

    let report = evaluate(&settings, outcome);
    publish(&settings, gha, &report);
    Ok(match report.exit_code {
        0 => Exit::Ok,
        1 => Exit::Rejected,
        2 => Exit::BadInput,
        _ => Exit::Infra,
    })
}

/// Expand globs relative to `root`; (files, patterns that matched nothing).
fn expand(root: &Path, patterns: &[String]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut empty = Vec::new();
    for pat in patterns {
        let full = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            root.join(pat)
        };
        let mut n = 0;
        if let Ok(paths) = glob::glob(&full.to_string_lossy()) {
            for p in paths.flatten() {
                if p.is_file() {
                    files.push(p);
                    n += 1;
                }
            }
        }
        if n == 0 {
            empty.push(pat.clone());
        }
    }
    files.sort();
    files.dedup();
    (files, empty)
}

fn shown(p: &Path, root: &Path) -> String {
    report::relativize(&p.to_string_lossy(), root)
}

/// Read the reports and decide.
pub fn evaluate(settings: &Settings, outcome: runner::RunOutcome) -> GateReport {
    let root = &settings.root;
    let mut problems = Vec::new();
    let mut notes = settings.notes.clone();

    let (mut junit_files, missing) = expand(root, &settings.junit);
    for m in missing {
        notes.push(format!("no JUnit report matched {m}"));
    }
    junit_files.extend(expand(root, &settings.junit_optional).0);
    junit_files.sort();
    junit_files.dedup();
    let tests = if junit_files.is_empty() {
        None
    } else {
        let mut run = TestRun::new(root).merge_reruns(settings.merge_reruns);
        for f in &junit_files {
            run.start_report(&shown(f, root));
            if let Err(e) = junit::parse_file(f, &mut run) {
                problems.push(e.to_string());
            }
        }
        // Fail closed: a report that says tests failed fails the gate even when it does not say
        // which.
        for m in &run.missing_failures {
            problems.push(format!("{}: {}", m.report, m.claim));
        }
        if run.unmerged_reruns > 0 {
            notes.push(format!(
                "{} failing test(s) also passed under the same name in the same report; if these \
                 are reruns (pytest-rerunfailures, jest retries), set merge-reruns to count a \
                 test that failed and then passed as flaky",
                run.unmerged_reruns
            ));
        }
        Some(TestSummary {
            totals: run.totals,
            slowest: run.slowest(),
            failures: run.failures,
            failures_omitted: run.failures_omitted,
            flaky_tests: run.flaky_tests,
            missing_failures: run.missing_failures,
            reports: run.reports,
        })
    };

    let (mut cov_files, missing) = expand(root, &settings.coverage);
    for m in missing {
        notes.push(format!("no coverage report matched {m}"));
    }
    cov_files.extend(expand(root, &settings.coverage_optional).0);
    cov_files.sort();
    cov_files.dedup();
    let thresholds = settings.coverage_min.is_some() || settings.coverage_min_file.is_some();
    let coverage = if cov_files.is_empty() {
        if thresholds {
            problems.push(
                "a coverage minimum is set but no coverage report was found; configure `coverage` \
                 (Cobertura XML or LCOV) or install pytest-cov for the Python preset"
                    .to_string(),
            );
        }
        None
    } else {
        let mut cov = coverage::Coverage::default();
        let mut read = Vec::new();
        for f in &cov_files {
            match coverage::load(f, &mut cov) {
                Ok(()) => read.push(shown(f, root)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        let total = cov.total();
        let shortfalls = coverage::check(&cov, settings.coverage_min, settings.coverage_min_file)
            .into_iter()
            .map(|mut s| {
                s.file = s.file.map(|f| report::relativize(&f, root));
                s
            })
            .collect();
        Some(CoverageSummary {
            percent: total.percent(),
            covered: total.covered,
            lines: total.lines,
            files: cov.files.len(),
            minimum: settings.coverage_min,
            minimum_per_file: settings.coverage_min_file,
            shortfalls,
            reports: read,
        })
    };

    let services_error = match &outcome.services {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let checks_failed = outcome.checks.iter().any(|c| !c.status.ok());
    let tests_failed = tests
        .as_ref()
        .is_some_and(|t| t.totals.failed + t.totals.errors > 0);
    let coverage_failed = coverage.as_ref().is_some_and(|c| !c.shortfalls.is_empty());
    let exit = if services_error.is_some() {
        Exit::Infra
    } else if checks_failed || tests_failed || coverage_failed || !problems.is_empty() {
        Exit::Rejected
    } else {
        Exit::Ok
    };
    GateReport {
        ok: exit == Exit::Ok,
        exit_code: exit.code(),
        presets: settings.presets.clone(),
        checks: outcome.checks,
        services_error,
        tests,
        coverage,
        problems,
        notes,
    }
}

/// Annotations, the summary, gate.json and step outputs.
pub fn publish(settings: &Settings, gha: &Gha, report: &GateReport) {
    if let Some(t) = &report.tests {
        for f in t.failures.iter().take(MAX_ANNOTATIONS) {
            let mut message = f.headline();
            let detail: Vec<&str> = f.detail.text.trim().lines().take(20).collect();
            if !detail.is_empty() && detail.join("\n").trim() != message.trim() {
                message.push_str("\n\n");
                message.push_str(&detail.join("\n"));
            }
            gha.annotate(
                Level::Error,
                &Annotation {
                    title: Some(format!(
                        "{} {}",
                        f.name,
                        if f.outcome == junit::Outcome::Error {
                            "errored"
                        } else {
                            "failed"
                        }
                    )),
                    file: f.file.clone(),
                    line: f.line,
                    message,
                },
            );
        }
    }
    for c in report.checks.iter().filter(|c| !c.status.ok()) {
        gha.annotate(
            Level::Error,
            &Annotation {
                title: Some(format!("check {}", c.name)),
                message: match c.status {
                    runner::Status::NotRun { .. } => format!("{} {}", c.name, c.status.label()),
                    _ => format!(
                        "{} {}; its output is in the log group `{}`",
                        c.name,
                        c.status.label(),
                        c.name
                    ),
                },
                ..Annotation::default()
            },
        );
    }
    if let Some(c) = &report.coverage {
        for s in &c.shortfalls {
            gha.annotate(
                Level::Error,
                &Annotation {
                    title: Some("coverage".into()),
                    file: s.file.clone(),
                    line: None,
                    message: format!(
                        "{} coverage {:.1}% is below the minimum {}%",
                        if s.file.is_some() {
                            "line"
                        } else {
                            "total line"
                        },
                        s.percent,
                        s.minimum
                    ),
                },
            );
        }
    }
    for p in report.problems.iter().chain(&report.services_error) {
        gha.annotate(
            Level::Error,
            &Annotation {
                title: Some("davit gate".into()),
                message: p.clone(),
                ..Annotation::default()
            },
        );
    }

    // On a runner the summary goes to a file: repeat the table in the log. Locally the summary
    // itself prints, table included.
    if std::env::var_os("GITHUB_STEP_SUMMARY").is_some_and(|v| !v.is_empty()) {
        gha.log(&report.table());
    }
    if let Err(e) = gha.summary(&report.markdown()) {
        gha.log(&format!("warning: cannot write the step summary: {e}"));
    }

    let json_path = settings.out_dir.join("gate.json");
    match serde_json::to_string_pretty(report) {
        Ok(j) => {
            if let Err(e) = std::fs::write(&json_path, &j) {
                gha.log(&format!(
                    "warning: cannot write {}: {e}",
                    json_path.display()
                ));
            }
            if settings.json {
                println!("{j}");
            }
        }
        Err(e) => gha.log(&format!("warning: cannot serialise the result: {e}")),
    }

    let totals = report.tests.as_ref().map(|t| t.totals).unwrap_or_default();
    let failed_checks: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.status.ok())
        .map(|c| c.name.as_str())
        .collect();
    let outputs = [
        (
            "result",
            if report.ok { "pass" } else { "fail" }.to_string(),
        ),
        ("passed", totals.passed.to_string()),
        ("failed", (totals.failed + totals.errors).to_string()),
        ("skipped", totals.skipped.to_string()),
        ("tests", totals.tests.to_string()),
        ("failed-checks", failed_checks.join(",")),
        (
            "coverage",
            report
                .coverage
                .as_ref()
                .map(|c| format!("{:.2}", c.percent))
                .unwrap_or_default(),
        ),
        ("report", json_path.to_string_lossy().into_owned()),
        ("json", compact_json(report)),
    ];
    for (k, v) in outputs {
        if let Err(e) = gha.set_output(k, &v) {
            gha.log(&format!("warning: cannot set output {k}: {e}"));
        }
    }
}

/// The `json` output: the report without failure texts and at most 20 failures, so it stays far
/// below the runner's output size limits. gate.json has everything.
fn compact_json(report: &GateReport) -> String {
    let mut r = report.clone();
    if let Some(t) = &mut r.tests {
        t.failures.truncate(20);
        for f in &mut t.failures {
            f.detail = Default::default();
            f.system_out = Default::default();
            f.system_err = Default::default();
        }
    }
    serde_json::to_string(&r).unwrap_or_default()
}
