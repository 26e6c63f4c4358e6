//! Locating failures, bounded state and fences the text cannot close.

use super::*;
use crate::junit::{Outcome, Sink, TestCase};
use std::path::Path;

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
    c.detail.text =
        "def test_x():\n>  assert f()\n\ncalc/f.py:3: in f\ntests/test_lib.py:22: AssertionError"
            .into();
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
