//! One test per rule that keeps the gate from passing a recorded failure, and per stack-trace
//! format the annotations read. JUnit inputs are written to show exactly the case; traces are
//! copied in the shape the real frameworks print them (pytest, unittest, jest/node, Maven
//! Surefire, Rust's test harness, `go test`).

mod common;

use std::path::Path;

use davit_gate::junit::{self, Outcome, TestCase};
use davit_gate::report::{RepoFiles, TestRun, Totals, frames, locate_in};

fn run_xml(xml: &str, merge: bool) -> TestRun {
    let mut run = TestRun::new(Path::new("/nonexistent-root"))
        .with_files(RepoFiles::default())
        .merge_reruns(merge);
    run.start_report("report.xml");
    junit::parse_reader(xml.as_bytes(), &mut run).unwrap();
    run
}

fn counts(t: &Totals) -> (u64, u64, u64, u64, u64, u64) {
    (t.tests, t.passed, t.failed, t.errors, t.skipped, t.flaky)
}

// ---- failures the report records outside a test case

#[test]
fn error_directly_in_a_testsuite_is_a_failed_test_named_after_the_suite() {
    // Surefire/Jenkins when a test class cannot load: no <testcase>, an <error> in the suite.
    let run = run_xml(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="com.example.BrokenTest" tests="1" errors="1" failures="0" skipped="0" time="0">
  <error message="Could not initialize class com.example.Db" type="java.lang.NoClassDefFoundError">java.lang.NoClassDefFoundError: Could not initialize class com.example.Db
	at com.example.BrokenTest.&lt;clinit&gt;(BrokenTest.java:12)
</error>
</testsuite>"#,
        false,
    );
    assert_eq!(counts(&run.totals), (1, 0, 0, 1, 0, 0));
    assert_eq!(run.failures.len(), 1);
    let f = &run.failures[0];
    assert_eq!(f.name, "com.example.BrokenTest");
    assert_eq!(f.outcome, Outcome::Error);
    assert!(f.detail.text.contains("NoClassDefFoundError"), "{f:?}");
    assert!(run.missing_failures.is_empty());
}

#[test]
fn failure_directly_in_a_testsuite_after_passing_cases_counts_too() {
    let run = run_xml(
        r#"<testsuites><testsuite name="tests.test_models" tests="2" failures="1">
  <testcase classname="tests.test_models" name="test_a" time="0.1"/>
  <failure message="fixture 'db' crashed during teardown"/>
</testsuite></testsuites>"#,
        false,
    );
    assert_eq!(counts(&run.totals), (2, 1, 1, 0, 0, 0));
    assert_eq!(run.failures[0].name, "tests.test_models");
    assert_eq!(
        run.failures[0].message.as_deref(),
        Some("fixture 'db' crashed during teardown")
    );
}

#[test]
fn suite_claiming_failures_without_failing_cases_is_reported_with_its_counts() {
    let run = run_xml(
        r#"<testsuites><testsuite name="api" tests="5" failures="2" errors="1">
  <testcase classname="api" name="test_ok"/>
</testsuite></testsuites>"#,
        false,
    );
    assert_eq!(counts(&run.totals), (1, 1, 0, 0, 0, 0));
    assert_eq!(
        run.missing_failures.len(),
        1,
        "one claim, not one per level"
    );
    let m = &run.missing_failures[0];
    assert_eq!(m.report, "report.xml");
    assert_eq!(m.claim.suite, "api");
    assert_eq!(
        (
            m.claim.claimed_tests,
            m.claim.claimed_failures,
            m.claim.claimed_errors,
            m.claim.cases
        ),
        (Some(5), 2, 1, 1)
    );
    let text = m.claim.to_string();
    assert!(
        text.contains("`api`") && text.contains("2 failure(s) and 1 error(s) in 5 test(s)"),
        "{text}"
    );
}

#[test]
fn root_testsuites_claim_without_any_case_is_reported() {
    let run = run_xml(
        r#"<testsuites name="jest tests" tests="3" failures="3" errors="0"></testsuites>"#,
        false,
    );
    assert_eq!(run.totals.tests, 0);
    assert_eq!(run.missing_failures.len(), 1);
    assert_eq!(run.missing_failures[0].claim.suite, "jest tests");
}

#[test]
fn claims_that_match_failing_or_flaky_cases_are_not_reported() {
    // Surefire counts reruns in failures= (tests=3 failures=2 for one flaky test).
    let run = run_xml(
        r#"<testsuite name="io.x.FlakyTest" tests="3" failures="2">
  <testcase name="t" classname="io.x.FlakyTest"><flakyFailure message="m"/><flakyFailure message="m"/></testcase>
</testsuite>"#,
        false,
    );
    assert!(run.missing_failures.is_empty());
    assert_eq!(counts(&run.totals), (1, 1, 0, 0, 0, 1));
}

// ---- disabled tests

#[test]
fn disabled_status_is_skipped_not_passed() {
    let run = run_xml(
        r#"<testsuite name="s" tests="2" disabled="1">
  <testcase name="on" classname="s"/>
  <testcase name="off" classname="s" status="disabled"/>
</testsuite>"#,
        false,
    );
    // The one disabled case is the one the suite counts: no extra.
    assert_eq!(counts(&run.totals), (2, 1, 0, 0, 1, 0));
}

#[test]
fn googletest_notrun_cases_are_skipped() {
    let run = run_xml(
        r#"<testsuites tests="2" failures="0" disabled="1" errors="0" name="AllTests">
  <testsuite name="MathTest" tests="2" failures="0" disabled="1" skipped="0" errors="0">
    <testcase name="Adds" file="math_test.cc" line="5" status="run" result="completed" classname="MathTest"/>
    <testcase name="DISABLED_Divides" file="math_test.cc" line="9" status="notrun" result="suppressed" classname="MathTest"/>
  </testsuite>
</testsuites>"#,
        false,
    );
    assert_eq!(counts(&run.totals), (2, 1, 0, 0, 1, 0));
}

#[test]
fn suite_disabled_count_without_cases_adds_skipped_tests() {
    let run = run_xml(
        r#"<testsuites disabled="3"><testsuite name="s" tests="4" disabled="3">
  <testcase name="a" classname="s"/>
</testsuite></testsuites>"#,
        false,
    );
    // Counted once at the suite, not again at <testsuites>.
    assert_eq!(counts(&run.totals), (4, 1, 0, 0, 3, 0));
}

// ---- reruns

const RERUN_THEN_PASS: &str = r#"<testsuites><testsuite name="pytest" tests="3" failures="1">
  <testcase classname="tests.test_api" name="test_flaky" time="0.5"><failure message="assert 500 == 200">tests/test_api.py:14: AssertionError</failure></testcase>
  <testcase classname="tests.test_api" name="test_flaky" time="0.4"/>
  <testcase classname="tests.test_api" name="test_ok" time="0.1"/>
</testsuite></testsuites>"#;

#[test]
fn merged_rerun_that_passed_is_flaky_not_failed() {
    let run = run_xml(RERUN_THEN_PASS, true);
    assert_eq!(counts(&run.totals), (2, 2, 0, 0, 0, 1));
    assert!(run.failures.is_empty());
    assert_eq!(
        run.flaky_tests,
        vec!["tests.test_api.test_flaky".to_string()]
    );
}

#[test]
fn without_merge_reruns_every_attempt_counts() {
    let run = run_xml(RERUN_THEN_PASS, false);
    assert_eq!(counts(&run.totals), (3, 2, 1, 0, 0, 0));
    assert_eq!(run.failures.len(), 1);
    // The gate notes that these look like reruns.
    assert_eq!(run.unmerged_reruns, 1);
}

#[test]
fn merged_rerun_that_failed_every_time_is_one_failed_test() {
    // jest-junit with jest.retryTimes(2): three <testcase> elements for one test.
    let xml = r#"<testsuites name="jest tests"><testsuite name="cart" tests="3" failures="3">
  <testcase classname="cart adds" name="cart adds" time="0.01"><failure>Error: expect(received).toBe(expected)</failure></testcase>
  <testcase classname="cart adds" name="cart adds" time="0.01"><failure>Error: expect(received).toBe(expected)</failure></testcase>
  <testcase classname="cart adds" name="cart adds" time="0.01"><failure>Error: expect(received).toBe(expected)</failure></testcase>
</testsuite></testsuites>"#;
    let run = run_xml(xml, true);
    assert_eq!(counts(&run.totals), (1, 0, 1, 0, 0, 0));
    assert_eq!(run.failures.len(), 1);
    assert_eq!(run.failures[0].rerun_failures, 2);
}

#[test]
fn merged_rerun_that_passed_then_failed_is_failed() {
    let xml = r#"<testsuite name="s">
  <testcase classname="s" name="t"/>
  <testcase classname="s" name="t"><error message="boom"/></testcase>
</testsuite>"#;
    let run = run_xml(xml, true);
    assert_eq!(counts(&run.totals), (1, 0, 0, 1, 0, 0));
    assert!(run.flaky_tests.is_empty());
}

// ---- stack traces -> tracked files

fn repo() -> RepoFiles {
    RepoFiles::new(
        [
            "tests/test_api.py",
            "shop/models.py",
            "web/src/cart.ts",
            "web/src/__tests__/cart.test.ts",
            "src/main/java/com/example/Cart.java",
            "src/test/java/com/example/CartTest.java",
            "src/lib.rs",
            "tests/parse.rs",
            "pkg/calc/calc.go",
            "pkg/calc/calc_test.go",
            "a/util.py",
            "b/util.py",
        ]
        .map(String::from),
    )
}

fn failing(classname: &str, name: &str, detail: &str) -> TestCase {
    let mut c = TestCase {
        classname: classname.into(),
        name: name.into(),
        outcome: Some(Outcome::Failed),
        ..TestCase::default()
    };
    c.detail.text = detail.into();
    c
}

fn at(c: &TestCase) -> (Option<String>, Option<u32>) {
    locate_in(c, Path::new("/work/checkout"), Some(&repo()))
}

#[test]
fn pytest_long_traceback_from_another_machine_lands_in_the_test_file() {
    let c = failing(
        "tests.test_api",
        "test_total",
        "def test_total():\n        order = make_order()\n>       assert order.total() == 30\nE       assert 25 == 30\n\n/home/runner/work/shop/shop/tests/test_api.py:21: AssertionError",
    );
    assert_eq!(at(&c), (Some("tests/test_api.py".into()), Some(21)));
}

#[test]
fn python_traceback_frames_map_the_innermost_project_frame_of_the_test_file() {
    let c = failing(
        "tests.test_api",
        "test_price",
        "Traceback (most recent call last):\n  File \"/builds/shop/tests/test_api.py\", line 30, in test_price\n    self.assertEqual(price(), 3)\n  File \"/builds/shop/shop/models.py\", line 8, in price\n    raise ValueError(\"no price\")\nValueError: no price",
    );
    assert_eq!(at(&c), (Some("tests/test_api.py".into()), Some(30)));
    // A class name that names no file: the first project frame.
    let c = failing("", "test_price", &c.detail.text);
    assert_eq!(at(&c), (Some("tests/test_api.py".into()), Some(30)));
}

#[test]
fn jest_node_stack_maps_absolute_paths_by_suffix() {
    let c = failing(
        "cart adds",
        "cart adds items",
        "Error: expect(received).toBe(expected) // Object.is equality\n\nExpected: 3\nReceived: 2\n    at Object.<anonymous> (/home/runner/work/shop/shop/web/src/__tests__/cart.test.ts:12:23)\n    at Promise.then.completed (/home/runner/work/shop/shop/web/node_modules/jest-circus/build/utils.js:298:28)\n    at new Promise (<anonymous>)",
    );
    assert_eq!(
        at(&c),
        (Some("web/src/__tests__/cart.test.ts".into()), Some(12))
    );
}

#[test]
fn node_esm_file_urls_are_read() {
    let c = failing(
        "",
        "adds",
        "AssertionError [ERR_ASSERTION]: 2 == 3\n    at file:///srv/ci/app/web/src/cart.ts:40:10\n    at Test.runInAsyncScope (node:async_hooks:206:9)",
    );
    assert_eq!(at(&c), (Some("web/src/cart.ts".into()), Some(40)));
}

#[test]
fn surefire_java_frames_map_through_the_package_path() {
    let c = failing(
        "com.example.CartTest",
        "addsItems",
        "org.opentest4j.AssertionFailedError: expected: <3> but was: <2>\n\tat org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)\n\tat org.junit.jupiter.api.Assertions.assertEquals(Assertions.java:150)\n\tat com.example.CartTest.addsItems(CartTest.java:27)\n\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
    );
    assert_eq!(
        at(&c),
        (
            Some("src/test/java/com/example/CartTest.java".into()),
            Some(27)
        )
    );
}

#[test]
fn java_frame_in_production_code_maps_when_the_class_names_no_frame() {
    let c = failing(
        "CartSuite",
        "total",
        "java.lang.IllegalStateException: empty\n\tat com.example.Cart.total(Cart.java:51)\n\tat com.example.CartTest$Inner.total(CartTest.java:88)",
    );
    assert_eq!(
        at(&c),
        (Some("src/main/java/com/example/Cart.java".into()), Some(51))
    );
}

#[test]
fn rust_test_panic_location_is_read() {
    let c = failing(
        "parse",
        "parses_empty",
        "thread 'parses_empty' panicked at tests/parse.rs:17:5:\nassertion `left == right` failed\n  left: 1\n right: 2\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
    );
    assert_eq!(at(&c), (Some("tests/parse.rs".into()), Some(17)));
}

#[test]
fn go_test_bare_file_name_maps_to_the_one_tracked_file() {
    let c = failing(
        "example.com/shop/pkg/calc",
        "TestAdd",
        "=== RUN   TestAdd\n    calc_test.go:14: Add(1, 2) = 4; want 3\n--- FAIL: TestAdd (0.00s)",
    );
    assert_eq!(at(&c), (Some("pkg/calc/calc_test.go".into()), Some(14)));
}

#[test]
fn ambiguous_suffix_gives_no_location_rather_than_a_guess() {
    let c = failing("", "t", "  File \"/elsewhere/util.py\", line 3, in f");
    assert_eq!(at(&c), (None, None));
    let c = failing("", "t", "  File \"/elsewhere/b/util.py\", line 3, in f");
    assert_eq!(at(&c), (Some("b/util.py".into()), Some(3)));
}

#[test]
fn file_attribute_from_another_machine_is_mapped_and_trace_line_preferred() {
    let mut c = failing(
        "tests.test_api",
        "test_x",
        "/opt/ci/shop/tests/test_api.py:44: AssertionError",
    );
    c.file = Some("/opt/ci/shop/tests/test_api.py".into());
    c.line = Some(40);
    assert_eq!(at(&c), (Some("tests/test_api.py".into()), Some(44)));
}

#[test]
fn frames_keep_text_order_and_direction() {
    let f = frames("  File \"a.py\", line 1, in x\n    at Object.<anonymous> (b.js:2:3)\n");
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].path.as_str(), f[0].line, f[0].innermost_first),
        ("a.py", 1, false)
    );
    assert_eq!(
        (f[1].path.as_str(), f[1].line, f[1].innermost_first),
        ("b.js", 2, true)
    );
}

#[test]
fn tracked_files_come_from_git_ls_files() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(dir.path().join("app/tests")).unwrap();
    std::fs::write(dir.path().join("app/tests/test_x.py"), "").unwrap();
    std::fs::write(dir.path().join("untracked.py"), "").unwrap();
    git(&["add", "app/tests/test_x.py"]);
    let files = RepoFiles::from_git(dir.path()).unwrap();
    assert_eq!(
        files.resolve("/home/u/src/app/tests/test_x.py", dir.path()),
        Some("app/tests/test_x.py".into())
    );
    assert_eq!(files.resolve("untracked.py", dir.path()), None);
    assert!(RepoFiles::from_git(Path::new("/nonexistent-root")).is_none());
}

// ---- through the binary

fn gate_on(xml: &str, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.xml"), xml).unwrap();
    let o = common::gate()
        .arg("--dir")
        .arg(dir.path())
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .args(["--preset", "none", "--junit", "report.xml"])
        .args(extra)
        .output()
        .unwrap();
    let j = std::fs::read_to_string(dir.path().join("out/gate.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    (o, j)
}

#[test]
fn binary_exits_1_naming_the_suite_with_a_suite_level_error() {
    let (o, j) = gate_on(
        r#"<testsuite name="com.example.BrokenTest" tests="1" errors="1"><error message="Could not initialize class com.example.Db" type="java.lang.NoClassDefFoundError"/></testsuite>"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("com.example.BrokenTest"), "{out}");
    assert_eq!(j["tests"]["failures"][0]["name"], "com.example.BrokenTest");
    assert_eq!(j["tests"]["totals"]["errors"], 1);
}

#[test]
fn binary_fails_closed_on_claimed_but_missing_failures() {
    let (o, j) = gate_on(
        r#"<testsuite name="checkout" tests="4" failures="2"><testcase name="a" classname="checkout"/></testsuite>"#,
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("`checkout` claims 2 failure(s)"), "{out}");
    assert_eq!(j["tests"]["missing_failures"][0]["claimed_failures"], 2);
}

#[test]
fn binary_merges_reruns_only_when_asked() {
    let (o, j) = gate_on(RERUN_THEN_PASS, &["--merge-reruns"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(j["tests"]["totals"]["flaky"], 1);
    assert!(
        out.contains("Flaky") && out.contains("tests.test_api.test_flaky"),
        "{out}"
    );
    let (o, j) = gate_on(RERUN_THEN_PASS, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        j["notes"].to_string().contains("set merge-reruns"),
        "{}",
        j["notes"]
    );
}

#[test]
fn binary_annotates_the_tracked_file_and_line_from_a_trace_written_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(dir.path().join("src/test/java/com/example")).unwrap();
    std::fs::write(
        dir.path().join("src/test/java/com/example/CartTest.java"),
        "class CartTest {}\n",
    )
    .unwrap();
    git(&["add", "."]);
    // Surefire report from a CI machine: no file/line attributes, only the stack trace.
    std::fs::write(
        dir.path().join("TEST-com.example.CartTest.xml"),
        r#"<testsuite name="com.example.CartTest" tests="1" failures="1">
  <testcase name="addsItems" classname="com.example.CartTest" time="0.01">
    <failure message="expected: &lt;3&gt; but was: &lt;2&gt;" type="org.opentest4j.AssertionFailedError">org.opentest4j.AssertionFailedError: expected: &lt;3&gt; but was: &lt;2&gt;
	at org.junit.jupiter.api.AssertionFailureBuilder.build(AssertionFailureBuilder.java:151)
	at com.example.CartTest.addsItems(CartTest.java:27)
</failure>
  </testcase>
</testsuite>"#,
    )
    .unwrap();
    let o = common::gate()
        .arg("--dir")
        .arg(dir.path())
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .args(["--preset", "none", "--junit", "TEST-*.xml"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("file=src/test/java/com/example/CartTest.java,line=27"),
        "{stdout}"
    );
}
