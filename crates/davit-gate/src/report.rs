//! Turning check results, test reports and coverage into the verdict people read.
//!
//! [`TestRun`] is the [`Sink`] the JUnit reader feeds: it keeps totals, the failing tests (up to
//! [`MAX_FAILURES`], with their text) and the [`SLOWEST`] slowest tests in a small heap, so its
//! memory does not grow with the size of the report. [`GateReport`] is the whole result; it is
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

use std::cell::OnceCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::coverage::Shortfall;
use crate::junit::{Outcome, Sink, SuiteClaim, TestCase, Text};
use crate::runner::CheckResult;

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

fn location_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?:^|[\s("'\[])((?:[A-Za-z]:)?[\w.\-/\\]*[\w\-]\.[A-Za-z][A-Za-z0-9]{0,5}):(\d+)"#,
        )
        .expect("valid regex")
    })
}

/// Python's `File "path", line N, in f` (tracebacks, also inside pytest's long format).
fn python_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"File "([^"\n]+)", line (\d+)"#).expect("valid regex"))
}

/// A JVM frame: `at com.example.FooTest.testBar(FooTest.java:42)`.
fn java_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\bat\s+([\w$]+(?:\.[\w$]+)*)\.[\w$<>\-]+\(([\w$\-]+\.(?:java|kt|scala|groovy)):(\d+)\)")
            .expect("valid regex")
    })
}

/// `path:line` mentions in failure text, in order.
pub fn mentions(text: &str) -> Vec<(String, u32)> {
    location_re()
        .captures_iter(text)
        .filter_map(|c| Some((c[1].to_string(), c[2].parse().ok()?)))
        .collect()
}

/// One location in a stack trace or failure message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub path: String,
    pub line: u32,
    /// Node and JVM traces (`at ...` lines) list the innermost call first; Python lists it last.
    pub innermost_first: bool,
}

/// Every location in `text`, in text order: Python `File "...", line N`, JVM frames (turned into
/// a package path: `com/example/FooTest.java`), and `path:line[:col]` as pytest, node, Rust
/// panics, Go tests and compilers write them.
pub fn frames(text: &str) -> Vec<Frame> {
    // ESM stacks write `file:///abs/path.mjs:3:9`.
    let text = text.replace("file://", " ");
    let mut found: Vec<(usize, Frame)> = Vec::new();
    let at_line = |pos: usize| {
        let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
        text[start..].trim_start().starts_with("at ")
    };
    for c in python_re().captures_iter(&text) {
        if let Ok(line) = c[2].parse() {
            found.push((
                c.get(0).map_or(0, |m| m.start()),
                Frame {
                    path: c[1].to_string(),
                    line,
                    innermost_first: false,
                },
            ));
        }
    }
    let mut java_spans = Vec::new();
    for c in java_re().captures_iter(&text) {
        let Ok(line) = c[3].parse() else { continue };
        let class = &c[1];
        // Drop the class (and any nested `$Inner`): what is left is the package.
        let package: Vec<&str> = class.split('.').collect();
        let dir = package[..package.len().saturating_sub(1)].join("/");
        let path = if dir.is_empty() {
            c[2].to_string()
        } else {
            format!("{dir}/{}", &c[2])
        };
        let m = c.get(0).expect("whole match");
        java_spans.push(m.range());
        found.push((
            m.start(),
            Frame {
                path,
                line,
                innermost_first: true,
            },
        ));
    }
    for c in location_re().captures_iter(&text) {
        let m = c.get(1).expect("path group");
        if java_spans.iter().any(|r| r.contains(&m.start())) {
            continue;
        }
        if let Ok(line) = c[2].parse() {
            found.push((
                m.start(),
                Frame {
                    path: m.as_str().to_string(),
                    line,
                    innermost_first: at_line(m.start()),
                },
            ));
        }
    }
    found.sort_by_key(|(pos, _)| *pos);
    found.into_iter().map(|(_, f)| f).collect()
}

/// The files of the project as git tracks them (`git ls-files`), to map trace paths onto.
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    all: HashSet<String>,
    /// File name -> tracked paths with that name.
    by_name: HashMap<String, Vec<String>>,
}

impl RepoFiles {
    pub fn new<I: IntoIterator<Item = String>>(files: I) -> RepoFiles {
        let mut r = RepoFiles::default();
        for f in files {
            let name = f.rsplit('/').next().unwrap_or(&f).to_string();
            r.by_name.entry(name).or_default().push(f.clone());
            r.all.insert(f);
        }
        r
    }

    /// `git ls-files` in `root` (paths relative to it); `None` outside a git work tree.
    pub fn from_git(root: &Path) -> Option<RepoFiles> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "-z", "--cached"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        Some(RepoFiles::new(
            out.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        ))
    }

    /// The tracked file `path` names: itself, or the only tracked file whose trailing path
    /// components match (an absolute path from another machine, a Java package path, a bare
    /// file name from `go test`). Ambiguous suffixes resolve to nothing rather than a guess.
    pub fn resolve(&self, path: &str, root: &Path) -> Option<String> {
        let rel = relativize(path, root);
        if self.all.contains(&rel) {
            return Some(rel);
        }
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let name = parts.last()?;
        let candidates = self.by_name.get(*name)?;
        for k in (1..=parts.len()).rev() {
            if parts[parts.len() - k..].contains(&"..") {
                continue;
            }
            let suffix = parts[parts.len() - k..].join("/");
            let hits: Vec<&String> = candidates
                .iter()
                .filter(|c| **c == suffix || c.ends_with(&format!("/{suffix}")))
                .collect();
            match hits.len() {
                0 => continue,
                1 => return Some(hits[0].clone()),
                _ => return None,
            }
        }
        None
    }
}

/// A path as the repository sees it: relative to `root` when under it, `/` separators.
pub fn relativize(path: &str, root: &Path) -> String {
    let p = path.replace('\\', "/");
    let root_s = root.to_string_lossy().replace('\\', "/");
    let root_s = root_s.trim_end_matches('/');
    match p.strip_prefix(root_s) {
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/').to_string(),
        _ => p.trim_start_matches("./").to_string(),
    }
}

/// File and line to annotate for a failing test, checking paths against the file system only.
pub fn locate(c: &TestCase, root: &Path) -> (Option<String>, Option<u32>) {
    locate_in(c, root, None)
}

/// File and line to annotate for a failing test. With `files` (what git tracks), trace paths are
/// mapped onto tracked files; without, a path counts when it exists under `root`.
pub fn locate_in(
    c: &TestCase,
    root: &Path,
    files: Option<&RepoFiles>,
) -> (Option<String>, Option<u32>) {
    let mut found = frames(&c.detail.text);
    if let Some(m) = &c.message {
        found.extend(frames(m));
    }
    let resolve = |p: &str| -> Option<String> {
        match files {
            Some(f) => f.resolve(p, root),
            None => {
                let p = relativize(p, root);
                (!Path::new(&p).is_absolute() && !p.contains("..") && root.join(&p).is_file())
                    .then_some(p)
            }
        }
    };
    // Innermost frame among those matching: first for `at` traces, last for Python's.
    let innermost = |hits: Vec<(String, &Frame)>| -> Option<(String, u32)> {
        let pick = if hits.iter().any(|(_, f)| f.innermost_first) {
            hits.first()
        } else {
            hits.last()
        };
        pick.map(|(p, f)| (p.clone(), f.line))
    };
    if let Some(file) = &c.file {
        let file = files
            .and_then(|f| f.resolve(file, root))
            .unwrap_or_else(|| relativize(file, root));
        // pytest's `line` attribute is the (0-based) line of the `def`; the failing line is in
        // the traceback, so prefer a frame in the same file.
        let same: Vec<(String, &Frame)> = found
            .iter()
            .filter_map(|f| {
                let p = resolve(&f.path).unwrap_or_else(|| relativize(&f.path, root));
                (p == file).then_some((p, f))
            })
            .collect();
        if let Some((_, l)) = innermost(same) {
            return (Some(file), Some(l));
        }
        return (Some(file), c.line);
    }
    // No file attribute: a frame in the file the class name points at (tests.test_x ->
    // tests/test_x.py, com.example.FooTest -> src/test/java/com/example/FooTest.java).
    let guess = c.classname.replace('.', "/");
    let resolved: Vec<(String, &Frame)> = found
        .iter()
        .map(|f| (resolve(&f.path), f))
        .map(|(p, f)| (p.unwrap_or_else(|| relativize(&f.path, root)), f))
        .collect();
    if !guess.is_empty() {
        let hits: Vec<(String, &Frame)> = resolved
            .iter()
            .filter(|(p, _)| {
                p.rsplit_once('.')
                    .is_some_and(|(stem, _)| stem == guess || stem.ends_with(&format!("/{guess}")))
            })
            .cloned()
            .collect();
        if let Some(hit) = innermost(hits) {
            return (Some(hit.0), Some(hit.1));
        }
    }
    // Otherwise the first frame in a project file.
    if let Some(f) = found
        .iter()
        .find_map(|f| resolve(&f.path).map(|p| (p, f.line)))
    {
        return (Some(f.0), Some(f.1));
    }
    (None, None)
}

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
mod tests {
    use super::*;

    #[test]
    fn mentions_find_paths_with_lines() {
        let t = "thread 'x' panicked at tests/parry3d.rs:154:5:\n    tests/test_lib.py:25: AssertionError\n at Object.<anonymous> (C:\\w\\__tests__\\main.test.js:10:21)";
        assert_eq!(
            mentions(t),
            vec![
                ("tests/parry3d.rs".to_string(), 154),
                ("tests/test_lib.py".to_string(), 25),
                ("C:\\w\\__tests__\\main.test.js".to_string(), 10)
            ]
        );
    }

    #[test]
    fn locate_prefers_traceback_line_in_the_test_file() {
        let root = Path::new("/repo");
        let mut c = TestCase {
            classname: "tests.test_lib".into(),
            name: "test_x".into(),
            file: Some("tests/test_lib.py".into()),
            line: Some(20),
            ..TestCase::default()
        };
        c.detail.text = "def test_x():\n>  assert f()\n\ncalc/f.py:3: in f\ntests/test_lib.py:22: AssertionError".into();
        assert_eq!(
            locate(&c, root),
            (Some("tests/test_lib.py".into()), Some(22))
        );
        c.file = None;
        assert_eq!(
            locate(&c, root),
            (Some("tests/test_lib.py".into()), Some(22))
        );
        c.file = Some("/repo/src/a.php".into());
        c.line = Some(7);
        assert_eq!(locate(&c, root), (Some("src/a.php".into()), Some(7)));
    }

    #[test]
    fn run_keeps_bounded_state() {
        let mut run = TestRun::new(Path::new("/r"));
        run.start_report("r.xml");
        for i in 0..(MAX_FAILURES as u64 + 50) {
            run.case(TestCase {
                name: format!("t{i}"),
                time: i as f64,
                outcome: Some(Outcome::Failed),
                ..TestCase::default()
            });
        }
        assert_eq!(run.failures.len(), MAX_FAILURES);
        assert_eq!(run.failures_omitted, 50);
        let slow = run.slowest();
        assert_eq!(slow.len(), SLOWEST);
        assert_eq!(slow[0].name, format!("t{}", MAX_FAILURES + 49));
        assert_eq!(run.totals.failed, MAX_FAILURES as u64 + 50);
    }

    #[test]
    fn fences_cannot_be_closed_by_the_text() {
        assert_eq!(fenced("a```b", 100), "````\na```b\n````\n");
    }
}
