//! The real-world JUnit files in the shared fixtures (../shared/fixtures/junit) parse to the
//! totals worked out by reading each file, and the corrupt one gives a clear error.
//!
//! Counting rules (see the `junit` module): every `<testcase>` is one test whatever the suites'
//! `tests=` attributes say; several result elements in one test take the worst (error > failure >
//! skipped); Surefire `flakyFailure` = passed and flaky; `rerunFailure` = extra failed attempts of
//! a test counted once, as failed.

mod common;

use std::path::Path;

use davit_gate::junit::{self, JunitError, Outcome, TestCase};
use davit_gate::report::TestRun;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Expect {
    tests: u64,
    passed: u64,
    failed: u64,
    errors: u64,
    skipped: u64,
    flaky: u64,
}

const fn e(tests: u64, passed: u64, failed: u64, errors: u64, skipped: u64, flaky: u64) -> Expect {
    Expect {
        tests,
        passed,
        failed,
        errors,
        skipped,
        flaky,
    }
}

/// Per file, from reading it (notes say where the file's own attributes disagree).
const EXPECTED: &[(&str, Expect)] = &[
    // Catch2: one failing case; the location is on the <failure> element.
    ("action-junit-report/catch2/report.xml", e(1, 0, 1, 0, 0, 0)),
    // cargo-nextest: test_failure fails; two pass; system-out/err on each case.
    ("action-junit-report/nextest/basic.xml", e(3, 2, 1, 0, 0, 0)),
    (
        "dorny-test-reporter/empty/jest-junit-empty-testsuite.xml",
        e(0, 0, 0, 0, 0, 0),
    ),
    // jest-junit: suite 1 has 1 passing + 3 failing, suite 2 one failing + one skipped.
    ("dorny-test-reporter/jest-junit.xml", e(6, 1, 4, 0, 1, 0)),
    // Nette Tester: 65 cases, 3 <skipped/>, 1 <failure> (the suite says errors="1").
    (
        "dorny-test-reporter/nette-tester/tester-v1.7-report.xml",
        e(65, 61, 1, 0, 3, 0),
    ),
    // PHPUnit: 2 failing .phpt cases + 10 passing in nested suites.
    (
        "dorny-test-reporter/phpunit/phpunit.xml",
        e(12, 10, 2, 0, 0, 0),
    ),
    // pytest: 10 cases (the suite claims 15): 2 failures, skip + xfail skipped.
    (
        "dorny-test-reporter/python-xunit-pytest.xml",
        e(10, 6, 2, 0, 2, 0),
    ),
    // Swift: "test_always_skip" has no <skipped>, so it passed.
    ("dorny-test-reporter/swift-xunit.xml", e(3, 2, 1, 0, 0, 0)),
    // Surefire: one case with <failure> and 3 <rerunFailure> (the suite says tests=4 failures=4).
    (
        "jenkins-junit-plugin/gh-237/TEST-io.olamy.AlwaysFailTest.xml",
        e(1, 0, 1, 0, 0, 0),
    ),
    // Surefire: one case with 2 <flakyFailure> and no final failure: passed, flaky.
    (
        "jenkins-junit-plugin/gh-237/TEST-io.olamy.FlakyTest.xml",
        e(1, 1, 0, 0, 0, 1),
    ),
    // Bazel: one <error>; the log is the suite's <system-out>.
    (
        "publish-unit-test-result-action/junit-xml/bazel/suite-logs.xml",
        e(1, 0, 0, 1, 0, 0),
    ),
    // skipped+failure+error -> error; skipped+failure -> failed; skipped; passed.
    (
        "publish-unit-test-result-action/junit-xml/junit.multiresult.xml",
        e(4, 1, 1, 1, 1, 0),
    ),
    // mocha: 109 passing cases, root element <testsuite>.
    (
        "publish-unit-test-result-action/junit-xml/mocha/latex-utensils.xml",
        e(109, 109, 0, 0, 0, 0),
    ),
    (
        "publish-unit-test-result-action/junit-xml/no-attributes.xml",
        e(4, 1, 1, 1, 1, 0),
    ),
    // Suites three deep; 5 cases at different levels.
    (
        "publish-unit-test-result-action/junit-xml/testsuite-in-testsuite.xml",
        e(5, 5, 0, 0, 0, 0),
    ),
    (
        "publish-unit-test-result-action/junit-xml/with-xml-entities.xml",
        e(4, 0, 1, 1, 2, 0),
    ),
    // xUnit.net: starts with a UTF-8 BOM.
    (
        "publish-unit-test-result-action/junit-xml/xunit/xunit.xml",
        e(2, 2, 0, 0, 0, 0),
    ),
];

const CORRUPT: &str = "publish-unit-test-result-action/junit-xml/pytest/corrupt-xml.xml";

fn totals(path: &Path) -> (Expect, TestRun) {
    let mut run = TestRun::new(Path::new("/nonexistent-root"));
    run.start_report(&path.to_string_lossy());
    junit::parse_file(path, &mut run).unwrap_or_else(|e| panic!("{e}"));
    let t = run.totals;
    (
        e(t.tests, t.passed, t.failed, t.errors, t.skipped, t.flaky),
        run,
    )
}

#[test]
fn every_fixture_parses_to_the_expected_totals() {
    let Some(dir) = common::junit_fixtures() else {
        return;
    };
    for (file, want) in EXPECTED {
        let (got, run) = totals(&dir.join(file));
        assert_eq!(got, *want, "{file}");
        // Every claim of failures in these files is matched by failing test cases.
        assert!(
            run.missing_failures.is_empty(),
            "{file}: {:?}",
            run.missing_failures
        );
    }
    // Every XML file there is either listed above or is the corrupt one: none left untested.
    let mut all: Vec<String> = glob::glob(&format!("{}/**/*.xml", dir.display()))
        .unwrap()
        .flatten()
        .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .collect();
    all.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    listed.push(CORRUPT.to_string());
    listed.sort();
    assert_eq!(all, listed);
}

fn cases(path: &Path) -> Vec<TestCase> {
    let mut v = Vec::new();
    junit::parse_file(path, &mut v).unwrap();
    v
}

#[test]
fn details_survive_parsing() {
    let Some(dir) = common::junit_fixtures() else {
        return;
    };

    let (_, run) = totals(&dir.join("action-junit-report/catch2/report.xml"));
    let f = &run.failures[0];
    assert_eq!(
        f.file.as_deref(),
        Some("test/unit/detail/utility/is_constant_evaluated.cpp")
    );
    assert_eq!(f.line, Some(19));
    assert_eq!(f.headline(), "REQUIRE(v == 1) expands to 0 == 10");

    // nextest has no file attribute: the location comes from the panic message, when that
    // file exists in the project (here a stand-in project with tests/parry3d.rs).
    let (_, run) = totals(&dir.join("action-junit-report/nextest/basic.xml"));
    assert_eq!(run.failures[0].file, None);
    let proj = tempfile::tempdir().unwrap();
    std::fs::create_dir(proj.path().join("tests")).unwrap();
    std::fs::write(proj.path().join("tests/parry3d.rs"), "").unwrap();
    let mut run = TestRun::new(proj.path());
    run.start_report("basic.xml");
    junit::parse_file(&dir.join("action-junit-report/nextest/basic.xml"), &mut run).unwrap();
    let f = &run.failures[0];
    assert_eq!(f.name, "oxidized_navigation::parry3d.test_failure");
    assert_eq!(
        (f.file.as_deref(), f.line),
        (Some("tests/parry3d.rs"), Some(154))
    );
    assert!(f.system_out.text.contains("test test_failure ... FAILED"));
    assert!(
        f.system_err
            .text
            .contains("panicked at tests/parry3d.rs:154:5")
    );

    let v = cases(&dir.join("jenkins-junit-plugin/gh-237/TEST-io.olamy.AlwaysFailTest.xml"));
    assert_eq!((v[0].outcome(), v[0].rerun_failures), (Outcome::Failed, 3));
    assert!(
        v[0].detail
            .text
            .starts_with("junit.framework.AssertionFailedError: built to fail")
    );
    assert_eq!(v[0].system_out.text, "this will fail for real\n");
    let v = cases(&dir.join("jenkins-junit-plugin/gh-237/TEST-io.olamy.FlakyTest.xml"));
    assert_eq!((v[0].outcome(), v[0].flaky_attempts), (Outcome::Passed, 2));
    // The flaky attempts' own system-out must not become the passing test's output.
    assert_eq!(v[0].system_out.text, "");

    let v = cases(&dir.join("publish-unit-test-result-action/junit-xml/with-xml-entities.xml"));
    assert_eq!(v[0].name, "Test with \"quotes\" in the test name");
    assert_eq!(
        v[1].message.as_deref(),
        Some("A message with 'apostrophes'")
    );
    assert_eq!(v[2].detail.text, "Content with &");
    assert_eq!(v[3].name, "Test with < and > in the test name");

    // Bazel's suite-level log is attached to the failing case.
    let (_, run) =
        totals(&dir.join("publish-unit-test-result-action/junit-xml/bazel/suite-logs.xml"));
    assert!(
        run.failures[0]
            .system_out
            .text
            .contains("ModuleNotFoundError: No module named 'non_existent_package'")
    );
    assert_eq!(run.failures[0].headline(), "exited with error code 1");

    let v =
        cases(&dir.join("publish-unit-test-result-action/junit-xml/testsuite-in-testsuite.xml"));
    let suites: Vec<&str> = v.iter().map(|c| c.suite.as_str()).collect();
    assert_eq!(
        suites,
        [
            "TestSuite1",
            "TestSuite1",
            "TestSuite2.1",
            "TestSuite2",
            "Project Test Suite"
        ]
    );
    assert_eq!(v[0].file.as_deref(), Some("/somepath"));
    assert_eq!(v[0].line, Some(34));

    // PHPUnit: absolute file attributes, made relative when under the project root.
    let mut run = TestRun::new(Path::new("/home/matteo/OSS/phpunit"));
    run.start_report("phpunit.xml");
    junit::parse_file(
        &dir.join("dorny-test-reporter/phpunit/phpunit.xml"),
        &mut run,
    )
    .unwrap();
    assert_eq!(
        run.failures[0].file.as_deref(),
        Some(
            "tests/end-to-end/metadata/targeting-traits-with-coversclass-attribute-is-deprecated.phpt"
        )
    );
    assert_eq!(run.failures[0].line, Some(28));
}

#[test]
fn corrupt_report_is_a_clear_error_with_file_and_position() {
    let Some(dir) = common::junit_fixtures() else {
        return;
    };
    let path = dir.join(CORRUPT);
    let mut run = TestRun::new(Path::new("/"));
    let err = junit::parse_file(&path, &mut run).unwrap_err();
    let JunitError::Malformed { line, column, .. } = &err else {
        panic!("expected Malformed, got {err:?}")
    };
    // The file ends in the middle of line 11 ("                suppo"), inside <skipped>.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(*line, text.lines().count() as u64);
    assert!(*column > 1);
    let msg = err.to_string();
    assert!(msg.contains("corrupt-xml.xml:11:"), "{msg}");
    assert!(msg.contains("<skipped> is not closed"), "{msg}");
    // The test before the cut was still seen.
    assert_eq!(run.totals.tests, 1);
}

/// Several files by glob through the binary: totals add up, the corrupt file is named, and the
/// gate says no (exit 1) because it cannot vouch for a report it cannot read.
#[test]
fn glob_over_all_fixtures_through_the_binary() {
    let Some(dir) = common::junit_fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let o = common::gate()
        .arg("--dir")
        .arg(tmp.path())
        .args(["--preset", "none", "--json", "--junit"])
        .arg(format!("{}/**/*.xml", dir.display()))
        .arg("--out-dir")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sum = EXPECTED.iter().fold(e(0, 0, 0, 0, 0, 0), |a, (_, x)| {
        e(
            a.tests + x.tests,
            a.passed + x.passed,
            a.failed + x.failed,
            a.errors + x.errors,
            a.skipped + x.skipped,
            a.flaky + x.flaky,
        )
    });
    // The corrupt file contributes the one case before the cut (a pass).
    let t = &j["tests"]["totals"];
    assert_eq!(t["tests"].as_u64(), Some(sum.tests + 1));
    assert_eq!(t["passed"].as_u64(), Some(sum.passed + 1));
    assert_eq!(t["failed"].as_u64(), Some(sum.failed));
    assert_eq!(t["errors"].as_u64(), Some(sum.errors));
    assert_eq!(t["skipped"].as_u64(), Some(sum.skipped));
    assert_eq!(t["flaky"].as_u64(), Some(sum.flaky));
    assert_eq!(
        j["tests"]["reports"].as_array().unwrap().len(),
        EXPECTED.len() + 1
    );
    let problems = j["problems"].to_string();
    assert!(problems.contains("corrupt-xml.xml:11:"), "{problems}");
}
