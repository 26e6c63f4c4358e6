//! Turning check results, test reports and coverage into the verdict people read.
//!
//! [`TestRun`] is the [`Sink`](crate::junit::Sink) the JUnit reader feeds: it keeps totals, the
//! failing tests (up to [`MAX_FAILURES`], with their text) and the [`SLOWEST`] slowest tests in
//! a small heap, so its memory does not grow with the size of the report. [`GateReport`] is the whole result; it is
//! what `gate.json` and the `json` output contain, and [`GateReport::markdown`] renders the step
//! summary (which davit-gha prints to the terminal when there is no summary file, as locally and
//! under act). Failure locations come from the report's `file`/`line` attributes or, because
//! pytest's default report has none and nextest/jest put them only in the message, from the
//! stack trace in the failure text ([`frames`]: Python, JavaScript/TypeScript, Java, Rust and Go
//! formats), mapped onto the files git tracks in the project ([`RepoFiles`]): a trace written on
//! another machine names `/home/runner/work/app/app/src/x.py` or, in Java, only
//! `FooTest.java` of class `com.example.FooTest`, and an annotation is only useful on a path
//! GitHub knows.
//!
//! With `merge_reruns` on, repeated test cases of one report (pytest-rerunfailures, Maven, jest
//! retries writing one `<testcase>` per attempt) are one test: the last attempt decides, and a
//! test that failed and then passed is flaky, not failed.
//!
//! Here: the [`GateReport`] and its renderings; `run` holds the [`TestRun`] counting, `locate`
//! the mapping of stack traces onto tracked files.

mod locate;
mod run;

pub use locate::{Frame, RepoFiles, frames, locate, locate_in, mentions, relativize};
pub use run::{
    FailedTest, MAX_FAILURES, MAX_FLAKY_NAMES, MissingFailures, SLOWEST, SlowTest, TestRun, Totals,
};

use std::fmt::Write as _;

use serde::Serialize;

use crate::coverage::Shortfall;
use crate::runner::CheckResult;

/// Tests part of the result.
#[derive(Debug, Clone, Serialize)]
pub struct TestSummary {
    pub totals: Totals,
    pub failures: Vec<FailedTest>,
    pub failures_omitted: u64,
    /// Tests that passed after failing (named up to [`MAX_FLAKY_NAMES`]).
    pub flaky_tests: Vec<String>,
    /// Suites that claim failures their test cases do not show.
    pub missing_failures: Vec<MissingFailures>,
    pub slowest: Vec<SlowTest>,
    pub reports: Vec<String>,
}

/// Coverage part of the result.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageSummary {
    pub percent: f64,
    pub covered: u64,
    pub lines: u64,
    pub files: usize,
    pub minimum: Option<f64>,
    pub minimum_per_file: Option<f64>,
    pub shortfalls: Vec<Shortfall>,
    pub reports: Vec<String>,
}

/// The whole result of a gate run.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub ok: bool,
    pub exit_code: u8,
    pub presets: Vec<String>,
    pub checks: Vec<CheckResult>,
    /// Why services were not ready, if they were not.
    pub services_error: Option<String>,
    pub tests: Option<TestSummary>,
    pub coverage: Option<CoverageSummary>,
    /// Problems with reports (malformed XML, a threshold without a coverage report, ...).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

fn secs(s: f64) -> String {
    if s >= 60.0 {
        format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1}s")
    }
}

/// Keep table cells on one line and free of `|`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Fence that the text cannot close.
fn fenced(text: &str, max: usize) -> String {
    let mut t: String = text.trim_end().to_string();
    if t.len() > max {
        let mut cut = max;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
        t.push_str("\n… (truncated; the whole text is in gate.json)");
    }
    let mut fence = "```".to_string();
    while t.contains(&fence) {
        fence.push('`');
    }
    format!("{fence}\n{t}\n{fence}\n")
}

impl GateReport {
    /// The plain-text table for logs: check, result, time.
    pub fn table(&self) -> String {
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let rw = self
            .checks
            .iter()
            .map(|c| c.status.label().chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut s = format!("{:w$}  {:rw$}  time\n", "check", "result");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "{:w$}  {:rw$}  {}",
                c.name,
                c.status.label(),
                secs(c.seconds)
            );
        }
        s
    }

    /// The step summary.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## {} davit gate: {}\n",
            if self.ok { "✅" } else { "❌" },
            if self.ok { "passed" } else { "failed" }
        );
        if !self.checks.is_empty() {
            s.push_str("| Check | Result | Time |\n|---|---|---|\n");
            for c in &self.checks {
                let _ = writeln!(
                    s,
                    "| `{}` | {} {} | {} |",
                    cell(&c.name),
                    c.status.icon(),
                    cell(&c.status.label()),
                    secs(c.seconds)
                );
            }
            s.push('\n');
        }
        if let Some(e) = &self.services_error {
            let _ = writeln!(s, "**Services:** {}\n", cell(e));
        }
        for p in &self.problems {
            let _ = writeln!(s, "> [!WARNING]\n> {}\n", cell(p));
        }
        if let Some(t) = &self.tests {
            let x = &t.totals;
            let _ = writeln!(
                s,
                "### Tests\n\n**{}** tests: **{}** passed, **{}** failed, **{}** errors, **{}** skipped{} in {} ({} report{})\n",
                x.tests,
                x.passed,
                x.failed,
                x.errors,
                x.skipped,
                if x.flaky > 0 {
                    format!(", {} flaky", x.flaky)
                } else {
                    String::new()
                },
                secs(x.seconds),
                t.reports.len(),
                if t.reports.len() == 1 { "" } else { "s" }
            );
            if !t.failures.is_empty() {
                s.push_str("#### Failures\n\n");
                for f in t.failures.iter().take(25) {
                    let loc = f
                        .location()
                        .map(|l| format!(" — `{l}`"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "<details><summary>❌ <code>{}</code>{}: {}</summary>\n",
                        html(&f.name),
                        loc,
                        html(&f.headline())
                    );
                    if !f.detail.is_empty() {
                        s.push_str(&fenced(&f.detail.text, 4000));
                    }
                    if f.rerun_failures > 0 {
                        let _ = writeln!(s, "\nFailed on {} rerun(s) as well.", f.rerun_failures);
                    }
                    s.push_str("\n</details>\n\n");
                }
                let more = t.failures.len().saturating_sub(25) as u64 + t.failures_omitted;
                if more > 0 {
                    let _ = writeln!(
                        s,
                        "…and {more} more failing tests (see gate.json and the reports).\n"
                    );
                }
            }
            if !t.flaky_tests.is_empty() {
                s.push_str("#### Flaky (failed, then passed on a rerun)\n\n");
                for n in &t.flaky_tests {
                    let _ = writeln!(s, "- ⚠️ `{}`", cell(n));
                }
                if x.flaky > t.flaky_tests.len() as u64 {
                    let _ = writeln!(s, "- …and {} more", x.flaky - t.flaky_tests.len() as u64);
                }
                s.push('\n');
            }
            if !t.slowest.is_empty() {
                s.push_str(
                    "<details><summary>Slowest tests</summary>\n\n| Test | Time |\n|---|---|\n",
                );
                for st in &t.slowest {
                    let _ = writeln!(s, "| `{}` | {} |", cell(&st.name), secs(st.seconds));
                }
                s.push_str("\n</details>\n\n");
            }
        }
        if let Some(c) = &self.coverage {
            let verdict = if c.shortfalls.is_empty() {
                "✅"
            } else {
                "❌"
            };
            let min = c
                .minimum
                .map(|m| format!(" (minimum {m}%)"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "### Coverage\n\n{verdict} **{:.1}%** of {} lines in {} files{min}\n",
                c.percent, c.lines, c.files
            );
            let files: Vec<&Shortfall> = c.shortfalls.iter().filter(|x| x.file.is_some()).collect();
            if !files.is_empty() {
                let _ = writeln!(
                    s,
                    "Files under {}%:\n\n| File | Coverage |\n|---|---|",
                    c.minimum_per_file.unwrap_or_default()
                );
                for f in files.iter().take(50) {
                    let _ = writeln!(
                        s,
                        "| `{}` | {:.1}% |",
                        cell(f.file.as_deref().unwrap_or("")),
                        f.percent
                    );
                }
                s.push('\n');
            }
        }
        if !self.notes.is_empty() {
            s.push_str("<details><summary>Notes</summary>\n\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {}", cell(n));
            }
            s.push_str("\n</details>\n");
        }
        s
    }
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests;
