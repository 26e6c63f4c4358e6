//! [`TestRun`], the [`Sink`] the JUnit reader feeds: totals, the failing tests (up to
//! [`MAX_FAILURES`], with their text), the flaky ones when reruns are merged, and the
//! [`SLOWEST`] slowest tests in a small heap, so memory does not grow with the report's size.

use std::cell::OnceCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use serde::Serialize;

use super::locate::{RepoFiles, locate_in};
use crate::junit::{Outcome, Sink, SuiteClaim, TestCase, Text};

/// Failing tests kept with their text; the rest are only counted.
pub const MAX_FAILURES: usize = 200;
/// Slowest tests listed in the summary.
pub const SLOWEST: usize = 10;
/// Flaky tests named in the summary; the rest are only counted.
pub const MAX_FLAKY_NAMES: usize = 50;

/// Test counts. Every `<testcase>` is one test; see [`crate::junit`] for the rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    pub skipped: u64,
    /// Passed only after one or more failed attempts (Surefire `flakyFailure`).
    pub flaky: u64,
    pub seconds: f64,
}

/// A failing test, ready for the summary and an annotation.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTest {
    pub name: String,
    pub suite: String,
    pub outcome: Outcome,
    pub message: Option<String>,
    pub kind: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub detail: Text,
    pub system_out: Text,
    pub system_err: Text,
    pub rerun_failures: u32,
    pub report: String,
    pub seconds: f64,
}

impl FailedTest {
    /// One line: the message, or the first line of the failure text.
    pub fn headline(&self) -> String {
        let from_detail = || {
            self.detail
                .text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        };
        self.message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .or_else(from_detail)
            .unwrap_or_else(|| match self.outcome {
                Outcome::Error => "error".into(),
                _ => "failed".into(),
            })
    }
    pub fn location(&self) -> Option<String> {
        self.file.as_ref().map(|f| match self.line {
            Some(l) => format!("{f}:{l}"),
            None => f.clone(),
        })
    }
}

/// A slow test, for the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlowTest {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, PartialEq)]
struct BySeconds(SlowTest);
impl Eq for BySeconds {}
impl PartialOrd for BySeconds {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for BySeconds {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0
            .seconds
            .total_cmp(&o.0.seconds)
            .then_with(|| o.0.name.cmp(&self.0.name))
    }
}

/// A suite claiming failures its test cases do not show, with the report it is in.
#[derive(Debug, Clone, Serialize)]
pub struct MissingFailures {
    pub report: String,
    #[serde(flatten)]
    pub claim: SuiteClaim,
}

/// What an earlier attempt of a test left counted (for `merge_reruns`).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    outcome: Outcome,
    /// Earlier attempts that failed.
    failed_before: u32,
    flaky: bool,
    kept: bool,
}

/// Aggregates test cases from any number of reports in bounded memory.
pub struct TestRun {
    pub totals: Totals,
    pub failures: Vec<FailedTest>,
    pub failures_omitted: u64,
    pub reports: Vec<String>,
    /// Suites whose attributes claim failures no test case shows (the gate fails closed).
    pub missing_failures: Vec<MissingFailures>,
    /// Names of flaky tests (passed after failing), at most [`MAX_FLAKY_NAMES`].
    pub flaky_tests: Vec<String>,
    /// Without `merge_reruns`: failing tests that also passed under the same name in the same
    /// report, i.e. probably reruns (the summary suggests the setting).
    pub unmerged_reruns: u64,
    slowest: BinaryHeap<Reverse<BySeconds>>,
    root: std::path::PathBuf,
    files: OnceCell<Option<RepoFiles>>,
    current_report: String,
    /// Index into `failures` where the current suite's failures start (for suite output).
    suite_failures_from: usize,
    merge_reruns: bool,
    /// (classname, name) -> attempt seen in the current report, only with `merge_reruns`.
    attempts: HashMap<(String, String), Attempt>,
}

impl TestRun {
    /// `root` is the project directory: absolute paths under it are shown relative, and failure
    /// locations are mapped onto the files git tracks there.
    pub fn new(root: &Path) -> TestRun {
        TestRun {
            totals: Totals::default(),
            failures: Vec::new(),
            failures_omitted: 0,
            reports: Vec::new(),
            missing_failures: Vec::new(),
            flaky_tests: Vec::new(),
            unmerged_reruns: 0,
            slowest: BinaryHeap::new(),
            root: root.to_path_buf(),
            files: OnceCell::new(),
            current_report: String::new(),
            suite_failures_from: 0,
            merge_reruns: false,
            attempts: HashMap::new(),
        }
    }

    /// Use this list of project files instead of asking git (tests).
    pub fn with_files(mut self, files: RepoFiles) -> TestRun {
        self.files = OnceCell::from(Some(files));
        self
    }

    /// Count repeated test cases of one report as attempts of one test.
    pub fn merge_reruns(mut self, on: bool) -> TestRun {
        self.merge_reruns = on;
        self
    }

    /// Call before feeding the cases of `report`.
    pub fn start_report(&mut self, report: &str) {
        self.current_report = report.to_string();
        self.reports.push(report.to_string());
        self.suite_failures_from = self.failures.len();
        self.attempts.clear();
    }

    /// Slowest tests, slowest first.
    pub fn slowest(&self) -> Vec<SlowTest> {
        let mut v: Vec<SlowTest> = self.slowest.iter().map(|r| r.0.0.clone()).collect();
        v.sort_by(|a, b| {
            b.seconds
                .total_cmp(&a.seconds)
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    }
}

impl TestRun {
    /// Count one test (or the attempt that now decides it); returns whether its failure was kept.
    fn count(&mut self, c: TestCase, failed_before: u32) -> (bool, bool) {
        let t = &mut self.totals;
        let outcome = c.outcome();
        match outcome {
            Outcome::Passed => t.passed += 1,
            Outcome::Skipped => t.skipped += 1,
            Outcome::Failed => t.failed += 1,
            Outcome::Error => t.errors += 1,
        }
        let flaky = outcome == Outcome::Passed && (c.flaky_attempts > 0 || failed_before > 0);
        if flaky {
            t.flaky += 1;
            if self.flaky_tests.len() < MAX_FLAKY_NAMES {
                self.flaky_tests.push(c.full_name());
            }
        }
        if outcome != Outcome::Skipped
            && (self.slowest.len() < SLOWEST
                || self.slowest.peek().is_some_and(|m| c.time > m.0.0.seconds))
        {
            self.slowest.push(Reverse(BySeconds(SlowTest {
                name: c.full_name(),
                seconds: c.time,
            })));
            if self.slowest.len() > SLOWEST {
                self.slowest.pop();
            }
        }
        if !outcome.is_failure() {
            return (false, flaky);
        }
        if self.failures.len() >= MAX_FAILURES {
            self.failures_omitted += 1;
            return (false, flaky);
        }
        let (file, line) = {
            let files = self
                .files
                .get_or_init(|| RepoFiles::from_git(&self.root))
                .as_ref();
            locate_in(&c, &self.root, files)
        };
        self.failures.push(FailedTest {
            name: c.full_name(),
            suite: c.suite,
            outcome,
            message: c.message,
            kind: c.kind,
            file,
            line,
            detail: c.detail,
            system_out: c.system_out,
            system_err: c.system_err,
            rerun_failures: c.rerun_failures + failed_before,
            report: self.current_report.clone(),
            seconds: c.time,
        });
        (true, flaky)
    }

    /// Take back what an earlier attempt of `name` counted.
    fn uncount(&mut self, name: &str, prev: Attempt) {
        let t = &mut self.totals;
        match prev.outcome {
            Outcome::Passed => t.passed -= 1,
            Outcome::Skipped => t.skipped -= 1,
            Outcome::Failed => t.failed -= 1,
            Outcome::Error => t.errors -= 1,
        }
        if prev.flaky {
            t.flaky -= 1;
            if let Some(i) = self.flaky_tests.iter().position(|n| n == name) {
                self.flaky_tests.remove(i);
            }
        }
        if prev.outcome.is_failure() {
            if prev.kept {
                let report = &self.current_report;
                if let Some(i) = self
                    .failures
                    .iter()
                    .rposition(|f| f.name == name && f.report == *report)
                {
                    self.failures.remove(i);
                }
            } else {
                self.failures_omitted -= 1;
            }
        }
    }
}

impl Sink for TestRun {
    fn case(&mut self, c: TestCase) {
        self.totals.seconds += c.time;
        let outcome = c.outcome();
        let mut failed_before = 0;
        let key = self
            .merge_reruns
            .then(|| (c.classname.clone(), c.name.clone()));
        match key.as_ref().and_then(|k| self.attempts.get(k).copied()) {
            Some(prev) => {
                // A further attempt of a test already counted: it replaces the earlier result.
                self.uncount(&c.full_name(), prev);
                failed_before = prev.failed_before + u32::from(prev.outcome.is_failure());
            }
            None => self.totals.tests += 1,
        }
        if !self.merge_reruns && outcome == Outcome::Passed {
            // Only the kept failures are compared, so this stays bounded.
            let name = c.full_name();
            let report = &self.current_report;
            if self
                .failures
                .iter()
                .any(|f| f.name == name && f.report == *report)
            {
                self.unmerged_reruns += 1;
            }
        }
        let (kept, flaky) = self.count(c, failed_before);
        if let Some(k) = key {
            self.attempts.insert(
                k,
                Attempt {
                    outcome,
                    failed_before,
                    flaky,
                    kept,
                },
            );
        }
    }

    fn suite_claim(&mut self, claim: SuiteClaim) {
        self.missing_failures.push(MissingFailures {
            report: self.current_report.clone(),
            claim,
        });
    }

    fn disabled(&mut self, _suite: &str, n: u64) {
        self.totals.tests += n;
        self.totals.skipped += n;
    }

    fn suite_output(&mut self, suite: &str, out: &Text, err: &Text) {
        // Bazel writes the test log on the suite: give it to that suite's failures that have none.
        for f in &mut self.failures[self.suite_failures_from..] {
            if f.suite == suite {
                if f.system_out.is_empty() {
                    f.system_out = out.clone();
                }
                if f.system_err.is_empty() {
                    f.system_err = err.clone();
                }
            }
        }
    }
}
