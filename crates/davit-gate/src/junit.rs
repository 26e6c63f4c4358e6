//! A streaming JUnit XML reader that works on every dialect we have met and never holds a whole
//! report in memory.
//!
//! "JUnit XML" is a family, not a format: pytest, cargo-nextest, jest-junit, Maven Surefire,
//! go-junit-report, mocha, PHPUnit, Catch2, Bazel and xUnit.net each write their own variant
//! (nested `<testsuite>`s, `<testsuite>` as the root, results with or without `message`, several
//! result elements in one `<testcase>`, Surefire's `flakyFailure`/`rerunFailure`, `file`/`line`
//! attributes or none). Reports of a large suite reach hundreds of megabytes, so the reader is an
//! event loop over quick-xml's streaming reader: each `<testcase>` is handed to a [`Sink`] the
//! moment it closes, and the text kept per test (failure body, system-out, system-err) is capped
//! at [`TEXT_CAP`] bytes with the truncation recorded. Malformed or truncated XML is an error that
//! names the file, line and column, never a panic.
//!
//! Counting rules (the same as the step summary uses):
//! - every `<testcase>` is one test, whatever the `tests=` attributes of its suites claim
//!   (attributes are often wrong or missing, e.g. Surefire counts reruns in `tests=`);
//! - a test with several result elements takes the worst: `error` > `failure` > `skipped`;
//! - Surefire `flakyFailure`/`flakyError` mean "failed, then passed on a rerun": the test counts
//!   as passed and additionally as flaky; `rerunFailure`/`rerunError` are further failed attempts
//!   of a test whose final result is its `failure`/`error`: it counts once, as failed;
//! - an `<error>` or `<failure>` placed directly in a `<testsuite>` (Jenkins and Surefire write
//!   these when a test class cannot even load) is one failed test named after the suite;
//! - `status="disabled"` (and GoogleTest's `status="notrun"`) test cases are skipped, and a
//!   suite's `disabled="N"` beyond the disabled cases it lists adds N skipped tests;
//! - a suite whose attributes claim failures or errors while none of its test cases failed is
//!   reported to the sink ([`SuiteClaim`]) so the gate can fail closed: the failures happened,
//!   only their test cases are missing from the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::Serialize;

/// Most bytes of text kept per field of one test (failure body, system-out, system-err).
pub const TEXT_CAP: usize = 64 * 1024;

/// Final result of one test case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Skipped,
    Failed,
    Error,
}

impl Outcome {
    fn rank(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Skipped => 1,
            Outcome::Failed => 2,
            Outcome::Error => 3,
        }
    }
    /// Whether the gate must say no because of this test.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error)
    }
}

/// Text with a size cap; `truncated` says whether bytes were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Text {
    pub text: String,
    pub truncated: bool,
}

impl Text {
    fn push(&mut self, s: &str) {
        if self.truncated {
            return;
        }
        let room = TEXT_CAP.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&s[..cut]);
            self.truncated = true;
        }
    }
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// One `<testcase>`, complete once its end tag was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TestCase {
    /// Name of the innermost enclosing `<testsuite>` (may be empty).
    pub suite: String,
    pub classname: String,
    pub name: String,
    /// `file` attribute of the test case, or of the nearest suite that has one.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Seconds.
    pub time: f64,
    pub outcome: Option<Outcome>,
    /// `type` attribute of the deciding result element.
    pub kind: Option<String>,
    /// `message` attribute of the deciding result element.
    pub message: Option<String>,
    /// Body of the deciding result element (stack trace, assertion diff, skip reason).
    pub detail: Text,
    pub system_out: Text,
    pub system_err: Text,
    /// Attempts that failed before a passing rerun (`flakyFailure`, `flakyError`).
    pub flaky_attempts: u32,
    /// Further failed attempts of a test that failed in the end (`rerunFailure`, `rerunError`).
    pub rerun_failures: u32,
    /// Marked disabled / not run by the report (`status="disabled"`), counted as skipped.
    pub disabled: bool,
    /// Made from an `<error>`/`<failure>` placed directly in a `<testsuite>`.
    pub suite_level: bool,
}

impl TestCase {
    pub fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or(Outcome::Passed)
    }
    /// `classname.name`, or whichever of the two exists.
    pub fn full_name(&self) -> String {
        match (self.classname.is_empty(), self.name.is_empty()) {
            (false, false) => format!("{}.{}", self.classname, self.name),
            (true, false) => self.name.clone(),
            (false, true) => self.classname.clone(),
            (true, true) => "(unnamed test)".to_string(),
        }
    }
}

/// A suite whose `failures`/`errors` attributes claim failures that no test case in it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SuiteClaim {
    pub suite: String,
    pub claimed_tests: Option<u64>,
    pub claimed_failures: u64,
    pub claimed_errors: u64,
    /// Test cases the file actually holds in that suite (nested suites included).
    pub cases: u64,
}

impl std::fmt::Display for SuiteClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.suite.is_empty() {
            "(unnamed suite)"
        } else {
            &self.suite
        };
        write!(
            f,
            "suite `{name}` claims {} failure(s) and {} error(s){} but holds {} test case(s), none failed: \
             the failing test cases are missing from the report, so the gate fails closed",
            self.claimed_failures,
            self.claimed_errors,
            self.claimed_tests
                .map(|t| format!(" in {t} test(s)"))
                .unwrap_or_default(),
            self.cases
        )
    }
}

/// Receives test cases as they are parsed.
pub trait Sink {
    fn case(&mut self, case: TestCase);
    /// Output attached to a whole suite (Bazel writes the test log there), sent when the suite ends.
    fn suite_output(&mut self, _suite: &str, _out: &Text, _err: &Text) {}
    /// A suite claims failures its test cases do not show (see [`SuiteClaim`]).
    fn suite_claim(&mut self, _claim: SuiteClaim) {}
    /// `n` tests a suite counts as `disabled` without listing them as test cases: skipped tests.
    fn disabled(&mut self, _suite: &str, _n: u64) {}
}

impl Sink for Vec<TestCase> {
    fn case(&mut self, case: TestCase) {
        self.push(case);
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot read test report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{column}: malformed XML in test report: {message} (byte {offset}); \
         the test run probably crashed or was cut off while writing it"
    )]
    Malformed {
        path: PathBuf,
        line: u64,
        column: u64,
        offset: u64,
        message: String,
    },
    #[error(
        "{path}: not a JUnit report: the root element is <{root}>, expected <testsuites> or <testsuite>"
    )]
    NotJunit { path: PathBuf, root: String },
}

/// What the reader saw in one file besides the test cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub bytes: u64,
    pub cases: u64,
}

/// Parse one report file, feeding each test case to `sink`.
pub fn parse_file(path: &Path, sink: &mut dyn Sink) -> Result<FileStats, JunitError> {
    let file = File::open(path).map_err(|source| JunitError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match parse_reader(BufReader::with_capacity(256 * 1024, file), sink) {
        Ok(stats) => Ok(stats),
        Err(ReadError::Io(source)) => Err(JunitError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(ReadError::NotJunit(root)) => Err(JunitError::NotJunit {
            path: path.to_path_buf(),
            root,
        }),
        Err(ReadError::Malformed { offset, message }) => {
            let (line, column) = line_column(path, offset).unwrap_or((0, 0));
            Err(JunitError::Malformed {
                path: path.to_path_buf(),
                line,
                column,
                offset,
                message,
            })
        }
    }
}

/// Parse errors before a file name is attached.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Malformed { offset: u64, message: String },
    NotJunit(String),
}

/// Line and column (1-based) of a byte offset; only computed on the error path.
fn line_column(path: &Path, offset: u64) -> Option<(u64, u64)> {
    let mut r = BufReader::new(File::open(path).ok()?).take(offset);
    let mut buf = Vec::new();
    let (mut line, mut col) = (1u64, 1u64);
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).ok()?;
        if n == 0 {
            break;
        }
        if buf.ends_with(b"\n") {
            line += 1;
            col = 1;
        } else {
            col += n as u64;
        }
    }
    Some((line, col))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Suites,
    Suite,
    Case,
    Result(Outcome),
    Flaky,
    Rerun,
    SystemOut,
    SystemErr,
    Other,
}

fn classify(local: &[u8]) -> Elem {
    match local {
        b"testsuites" => Elem::Suites,
        b"testsuite" => Elem::Suite,
        b"testcase" => Elem::Case,
        b"failure" => Elem::Result(Outcome::Failed),
        b"error" => Elem::Result(Outcome::Error),
        b"skipped" => Elem::Result(Outcome::Skipped),
        b"flakyFailure" | b"flakyError" => Elem::Flaky,
        b"rerunFailure" | b"rerunError" => Elem::Rerun,
        b"system-out" => Elem::SystemOut,
        b"system-err" => Elem::SystemErr,
        _ => Elem::Other,
    }
}

#[derive(Default)]
struct SuiteCtx {
    name: String,
    file: Option<String>,
    out: Text,
    err: Text,
    claimed_tests: Option<u64>,
    claimed_failures: u64,
    claimed_errors: u64,
    claimed_disabled: u64,
    /// Test cases inside (nested suites included).
    cases: u64,
    /// Cases inside that failed, or failed on an attempt (flaky, rerun).
    failing: u64,
    /// Disabled tests accounted for inside (listed cases and nested suites' extras).
    disabled: u64,
    /// A nested suite already reported a missing-failures claim.
    claimed_below: bool,
}

/// Where text events currently go.
#[derive(Clone, Copy)]
enum Target {
    None,
    Detail,
    CaseOut,
    CaseErr,
    SuiteOut,
    SuiteErr,
}

struct State {
    stack: Vec<Elem>,
    suites: Vec<SuiteCtx>,
    case: Option<TestCase>,
    /// Whether the result element being read decides the test's outcome (so its text is kept).
    detail_active: bool,
    cases: u64,
}

impl State {
    fn target(&self) -> Target {
        let n = self.stack.len();
        if n < 2 {
            return Target::None;
        }
        match (self.stack[n - 2], self.stack[n - 1]) {
            (Elem::Case, Elem::Result(_)) if self.detail_active => Target::Detail,
            (Elem::Suite, Elem::Result(_)) if self.detail_active => Target::Detail,
            (Elem::Case, Elem::SystemOut) => Target::CaseOut,
            (Elem::Case, Elem::SystemErr) => Target::CaseErr,
            (Elem::Suite, Elem::SystemOut) => Target::SuiteOut,
            (Elem::Suite, Elem::SystemErr) => Target::SuiteErr,
            _ => Target::None,
        }
    }

    fn text(&mut self, s: &str) {
        match self.target() {
            Target::None => {}
            Target::Detail => {
                if let Some(c) = &mut self.case {
                    c.detail.push(s)
                }
            }
            Target::CaseOut => {
                if let Some(c) = &mut self.case {
                    c.system_out.push(s)
                }
            }
            Target::CaseErr => {
                if let Some(c) = &mut self.case {
                    c.system_err.push(s)
                }
            }
            Target::SuiteOut => {
                if let Some(s2) = self.suites.last_mut() {
                    s2.out.push(s)
                }
            }
            Target::SuiteErr => {
                if let Some(s2) = self.suites.last_mut() {
                    s2.err.push(s)
                }
            }
        }
    }

    fn char(&mut self, c: char) {
        let mut b = [0u8; 4];
        self.text(c.encode_utf8(&mut b));
    }

    /// An element opened (`empty` = `<x/>`, which also closes immediately).
    fn open(&mut self, e: &BytesStart<'_>, empty: bool, sink: &mut dyn Sink) -> Result<(), String> {
        let kind = classify(e.local_name().as_ref());
        if self.stack.is_empty() && !matches!(kind, Elem::Suites | Elem::Suite) {
            return Err(String::from_utf8_lossy(e.name().as_ref()).into_owned());
        }
        let parent = self.stack.last().copied();
        match kind {
            // The root `<testsuites>` gets a context too: its counts are claims like a suite's.
            Elem::Suite | Elem::Suites => {
                let mut ctx = SuiteCtx::default();
                let count = |v: String| v.trim().parse::<u64>().ok();
                for_attrs(e, |k, v| match k {
                    b"name" => ctx.name = v(),
                    b"file" | b"filepath" => ctx.file = Some(v()),
                    b"tests" => ctx.claimed_tests = count(v()),
                    b"failures" => ctx.claimed_failures = count(v()).unwrap_or(0),
                    b"errors" => ctx.claimed_errors = count(v()).unwrap_or(0),
                    b"disabled" => ctx.claimed_disabled = count(v()).unwrap_or(0),
                    _ => {}
                });
                if ctx.file.is_none() {
                    ctx.file = self.suites.last().and_then(|s| s.file.clone());
                }
                self.suites.push(ctx);
                if empty {
                    self.close_suite(sink);
                }
            }
            Elem::Case => {
                let mut c = TestCase {
                    suite: self
                        .suites
                        .last()
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                    ..TestCase::default()
                };
                let mut file = None;
                for_attrs(e, |k, v| match k {
                    b"name" => c.name = v(),
                    b"classname" => c.classname = v(),
                    // Ant's schema and GoogleTest: a disabled or not-run test is skipped.
                    b"status" | b"result"
                        if matches!(
                            v().trim().to_ascii_lowercase().as_str(),
                            "disabled" | "notrun" | "suppressed" | "skipped"
                        ) =>
                    {
                        c.outcome = Some(Outcome::Skipped);
                        c.disabled = true;
                    }
                    b"file" | b"filepath" => file = Some(v()),
                    b"line" | b"lineno" => c.line = v().trim().parse().ok(),
                    b"time" => c.time = parse_time(&v()),
                    _ => {}
                });
                c.file = file.or_else(|| self.suites.last().and_then(|s| s.file.clone()));
                self.case = Some(c);
                if empty {
                    self.close_case(sink);
                }
            }
            Elem::Result(outcome) if parent == Some(Elem::Case) => {
                if let Some(c) = &mut self.case {
                    let better = c.outcome.is_none_or(|o| outcome.rank() > o.rank());
                    self.detail_active = better;
                    if better {
                        c.outcome = Some(outcome);
                        c.message = None;
                        c.kind = None;
                        c.detail = Text::default();
                        for_attrs(e, |k, v| match k {
                            b"message" => c.message = Some(v()),
                            b"type" => c.kind = Some(v()),
                            // Catch2 and some others put the location on the result element.
                            b"file" => c.file = Some(v()),
                            b"line" => c.line = v().trim().parse().ok().or(c.line),
                            _ => {}
                        });
                    }
                }
            }
            // A result directly in a suite: the suite as a whole failed (a class that could not
            // load, a crashed fixture). It becomes a failed test named after the suite.
            Elem::Result(outcome)
                if parent == Some(Elem::Suite) && outcome.is_failure() && self.case.is_none() =>
            {
                let suite = self.suites.last();
                let mut c = TestCase {
                    suite: suite.map(|s| s.name.clone()).unwrap_or_default(),
                    name: suite
                        .map(|s| s.name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "(unnamed suite)".into()),
                    file: suite.and_then(|s| s.file.clone()),
                    outcome: Some(outcome),
                    suite_level: true,
                    ..TestCase::default()
                };
                for_attrs(e, |k, v| match k {
                    b"message" => c.message = Some(v()),
                    b"type" => c.kind = Some(v()),
                    _ => {}
                });
                self.case = Some(c);
                self.detail_active = true;
                if empty {
                    self.detail_active = false;
                    self.close_case(sink);
                }
            }
            Elem::Flaky if parent == Some(Elem::Case) => {
                if let Some(c) = &mut self.case {
                    c.flaky_attempts += 1;
                }
            }
            Elem::Rerun if parent == Some(Elem::Case) => {
                if let Some(c) = &mut self.case {
                    c.rerun_failures += 1;
                }
            }
            _ => {}
        }
        if !empty {
            self.stack.push(kind);
        }
        Ok(())
    }

    fn close(&mut self, sink: &mut dyn Sink) {
        match self.stack.pop() {
            Some(Elem::Suite | Elem::Suites) => self.close_suite(sink),
            Some(Elem::Case) => self.close_case(sink),
            Some(Elem::Result(_)) => {
                self.detail_active = false;
                if self.case.as_ref().is_some_and(|c| c.suite_level) {
                    self.close_case(sink);
                }
            }
            _ => {}
        }
    }

    fn close_case(&mut self, sink: &mut dyn Sink) {
        if let Some(c) = self.case.take() {
            self.cases += 1;
            if let Some(s) = self.suites.last_mut() {
                s.cases += 1;
                if c.outcome().is_failure() || c.flaky_attempts > 0 || c.rerun_failures > 0 {
                    s.failing += 1;
                }
                if c.disabled {
                    s.disabled += 1;
                }
            }
            sink.case(c);
        }
    }

    fn close_suite(&mut self, sink: &mut dyn Sink) {
        let Some(mut s) = self.suites.pop() else {
            return;
        };
        if !s.out.is_empty() || !s.err.is_empty() {
            sink.suite_output(&s.name, &s.out, &s.err);
        }
        let extra_disabled = s.claimed_disabled.saturating_sub(s.disabled);
        if extra_disabled > 0 {
            sink.disabled(&s.name, extra_disabled);
            s.disabled += extra_disabled;
        }
        let claimed = s.claimed_failures + s.claimed_errors;
        let flagged = claimed > 0 && s.failing == 0 && !s.claimed_below;
        if flagged {
            sink.suite_claim(SuiteClaim {
                suite: s.name.clone(),
                claimed_tests: s.claimed_tests,
                claimed_failures: s.claimed_failures,
                claimed_errors: s.claimed_errors,
                cases: s.cases,
            });
        }
        if let Some(p) = self.suites.last_mut() {
            p.cases += s.cases;
            p.failing += s.failing;
            p.disabled += s.disabled;
            p.claimed_below |= flagged || s.claimed_below;
        }
    }
}

/// Calls `f` with each attribute's local name and a decoder for its value, so values are only
/// unescaped and copied for the few attributes we keep (reports carry many we ignore).
fn for_attrs(e: &BytesStart<'_>, mut f: impl FnMut(&[u8], &dyn Fn() -> String)) {
    for a in e.attributes().with_checks(false).flatten() {
        let value = || match a.unescape_value() {
            Ok(v) => v.into_owned(),
            Err(_) => String::from_utf8_lossy(&a.value).into_owned(),
        };
        f(a.key.local_name().as_ref(), &value);
    }
}

/// Seconds; tolerates thousands separators ("1,234.5") and garbage (0).
fn parse_time(v: &str) -> f64 {
    let v = v.trim();
    let parsed = if v.contains(',') {
        v.replace(',', "").parse::<f64>()
    } else {
        v.parse::<f64>()
    };
    parsed
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .unwrap_or(0.0)
}

/// Parse a report from any buffered reader.
pub fn parse_reader<R: BufRead>(input: R, sink: &mut dyn Sink) -> Result<FileStats, ReadError> {
    let mut reader = Reader::from_reader(input);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    let mut st = State {
        stack: Vec::with_capacity(16),
        suites: Vec::new(),
        case: None,
        detail_active: false,
        cases: 0,
    };
    let mut saw_root = false;
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let ev = reader.read_event_into(&mut buf);
        let malformed = |reader: &Reader<R>, message: String| ReadError::Malformed {
            offset: reader.error_position(),
            message,
        };
        match ev {
            Err(quick_xml::Error::Io(e)) => {
                return Err(ReadError::Io(std::io::Error::new(e.kind(), e.to_string())));
            }
            Err(e) => return Err(malformed(&reader, e.to_string())),
            Ok(Event::Start(e)) => {
                saw_root = true;
                st.open(&e, false, sink).map_err(ReadError::NotJunit)?;
            }
            Ok(Event::Empty(e)) => {
                saw_root = true;
                st.open(&e, true, sink).map_err(ReadError::NotJunit)?;
            }
            Ok(Event::End(_)) => st.close(sink),
            Ok(Event::Text(t)) => {
                if !matches!(st.target(), Target::None) {
                    let s = t
                        .decode()
                        .map_err(|e| malformed(&reader, format!("invalid text: {e}")))?;
                    st.text(&s);
                }
            }
            Ok(Event::CData(t)) => {
                if !matches!(st.target(), Target::None) {
                    let s = t
                        .decode()
                        .map_err(|e| malformed(&reader, format!("invalid CDATA: {e}")))?;
                    st.text(&s);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if !matches!(st.target(), Target::None) {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => st.char(c),
                        _ => {
                            let name = String::from_utf8_lossy(&r);
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(v) => st.text(v),
                                None => st.text(&format!("&{name};")),
                            }
                        }
                    }
                }
            }
            Ok(Event::Eof) => {
                if let Some(open) = st.stack.last() {
                    let _ = open;
                    let name = match st.stack.iter().rev().find(|e| !matches!(e, Elem::Other)) {
                        Some(Elem::Suites) => "testsuites",
                        Some(Elem::Suite) => "testsuite",
                        Some(Elem::Case) => "testcase",
                        Some(Elem::Result(Outcome::Failed)) => "failure",
                        Some(Elem::Result(Outcome::Error)) => "error",
                        Some(Elem::Result(_)) => "skipped",
                        Some(Elem::SystemOut) => "system-out",
                        Some(Elem::SystemErr) => "system-err",
                        _ => "element",
                    };
                    return Err(ReadError::Malformed {
                        offset: reader.buffer_position(),
                        message: format!(
                            "unexpected end of file: <{name}> is not closed (the report is truncated)"
                        ),
                    });
                }
                if !saw_root {
                    return Err(ReadError::Malformed {
                        offset: reader.buffer_position(),
                        message: "the file has no XML elements (empty report)".to_string(),
                    });
                }
                break;
            }
            Ok(_) => {}
        }
        buf.clear();
    }
    Ok(FileStats {
        bytes: reader.buffer_position(),
        cases: st.cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<Vec<TestCase>, ReadError> {
        let mut v = Vec::new();
        parse_reader(xml.as_bytes(), &mut v)?;
        Ok(v)
    }

    #[test]
    fn worst_result_wins_and_entities_decode() {
        let v = parse(
            r#"<testsuite name="s"><testcase name="a&amp;b" time="1,000.5">
            <skipped/><failure message="m &lt;1&gt;">body &#x22;q&#34; &amp; <![CDATA[<raw>]]></failure>
            <error message="e">err</error></testcase></testsuite>"#,
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "a&b");
        assert_eq!(v[0].time, 1000.5);
        assert_eq!(v[0].outcome(), Outcome::Error);
        assert_eq!(v[0].message.as_deref(), Some("e"));
        assert_eq!(v[0].detail.text, "err");
        let v = parse(r#"<testsuite><testcase name="x"><failure message="m &lt;1&gt;">body &#x22;q&#34; &amp; <![CDATA[<raw>]]></failure></testcase></testsuite>"#).unwrap();
        assert_eq!(v[0].message.as_deref(), Some("m <1>"));
        assert_eq!(v[0].detail.text, "body \"q\" & <raw>");
    }

    #[test]
    fn text_is_capped_with_truncation_noted() {
        let big = "é".repeat(TEXT_CAP);
        let xml = format!(
            "<testsuite><testcase name=\"x\"><system-out>{big}</system-out></testcase></testsuite>"
        );
        let v = parse(&xml).unwrap();
        assert!(v[0].system_out.truncated);
        assert!(v[0].system_out.text.len() <= TEXT_CAP);
        assert!(v[0].system_out.text.len() > TEXT_CAP - 4);
    }

    #[test]
    fn truncated_and_foreign_documents_are_errors() {
        match parse("<testsuites><testsuite><testcase name=\"x\">") {
            Err(ReadError::Malformed { message, .. }) => assert!(message.contains("<testcase>")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("<html></html>"), Err(ReadError::NotJunit(r)) if r == "html"));
        assert!(matches!(parse(""), Err(ReadError::Malformed { .. })));
        assert!(matches!(
            parse("<testsuite><testcase></testsuite>"),
            Err(ReadError::Malformed { .. })
        ));
    }
}
