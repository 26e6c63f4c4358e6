//! A ~100 MB report parses in bounded memory to exactly the counts that were generated, and
//! malformed or cut-off reports give an error with a position instead of a crash.
//! (Own test binary, so the process's peak RSS reflects this parse alone.)

use std::path::Path;

use davit_gate::junit::{self, JunitError, TEXT_CAP};
use davit_gate::report::{MAX_FAILURES, TestRun};
use davit_gate::synthetic;

const HUGE: u64 = 100 * 1024 * 1024;

#[test]
fn huge_report_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.xml");
    let want = synthetic::write_report(std::fs::File::create(&path).unwrap(), HUGE).unwrap();
    assert!(want.bytes >= HUGE);
    let before = synthetic::rss().unwrap_or(0);
    let mut run = TestRun::new(Path::new("/"));
    run.start_report("huge.xml");
    let stats = junit::parse_file(&path, &mut run).unwrap();
    let peak = synthetic::peak_rss().unwrap_or(0);
    assert_eq!(stats.bytes, want.bytes);
    let t = run.totals;
    assert_eq!(
        (t.tests, t.passed, t.failed, t.errors, t.skipped, t.flaky),
        (
            want.tests,
            want.passed,
            want.failed,
            want.errors,
            want.skipped,
            want.flaky
        )
    );
    assert!(want.failed + want.errors > MAX_FAILURES as u64);
    assert_eq!(run.failures.len(), MAX_FAILURES);
    assert_eq!(
        run.failures_omitted,
        want.failed + want.errors - MAX_FAILURES as u64
    );
    // The first failure with an oversized body is kept, cut at the cap and marked as cut.
    let big = run
        .failures
        .iter()
        .find(|f| f.detail.truncated)
        .expect("a truncated failure");
    assert_eq!(big.detail.text.len(), TEXT_CAP);
    assert_eq!(
        run.failures.iter().filter(|f| f.detail.truncated).count() as u64,
        {
            // oversized bodies among the failures that were kept (every 100th failure/error)
            let kept_ids = (0..).map(|k| 1007 + 50 * k).take(MAX_FAILURES);
            kept_ids.filter(|id| id % 5000 == 7).count() as u64
        }
    );
    // The report is 100 MB; what the reader holds must not grow with it. 200 failures with up
    // to 64 KiB of text each bounds the kept state near 13 MB even in the worst case.
    if before > 0 && peak > 0 {
        let grew = peak.saturating_sub(before);
        assert!(
            grew < 48 * 1024 * 1024,
            "peak RSS grew by {} MiB",
            grew >> 20
        );
    }
}

fn small_report(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("small.xml");
    synthetic::write_report(std::fs::File::create(&path).unwrap(), 2 * 1024 * 1024).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn cut_off_report_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_report(dir.path());
    let cut = dir.path().join("cut.xml");
    let at = bytes.len() * 3 / 5;
    std::fs::write(&cut, &bytes[..at]).unwrap();
    let mut run = TestRun::new(Path::new("/"));
    let err = junit::parse_file(&cut, &mut run).unwrap_err();
    let JunitError::Malformed { line, .. } = &err else {
        panic!("{err:?}")
    };
    let lines = bytes[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1;
    assert_eq!(*line, lines, "{err}");
    assert!(err.to_string().contains("cut.xml:"), "{err}");
    assert!(err.to_string().contains("cut off"), "{err}");
    assert!(run.totals.tests > 0);
}

#[test]
fn mangled_markup_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = small_report(dir.path());
    let text = String::from_utf8(bytes).unwrap();
    for (name, bad) in [
        (
            "mismatch.xml",
            text.replacen("</testcase>", "</testcasX>", 3),
        ),
        (
            "attr.xml",
            text.replacen("name=\"test_case", "name=test_case", 1),
        ),
        ("binary.xml", {
            let mut t = text.clone();
            t.insert_str(t.len() / 2, "\u{0}<<<>>>&&&");
            t
        }),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bad).unwrap();
        let mut run = TestRun::new(Path::new("/"));
        let err = junit::parse_file(&p, &mut run).unwrap_err();
        assert!(
            matches!(err, JunitError::Malformed { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // Not JUnit at all.
    let p = dir.path().join("page.xml");
    std::fs::write(&p, "<html><body>502 Bad Gateway</body></html>").unwrap();
    let err = junit::parse_file(&p, &mut TestRun::new(Path::new("/"))).unwrap_err();
    assert!(matches!(err, JunitError::NotJunit { .. }), "{err:?}");
}
