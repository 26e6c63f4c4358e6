//! Real runs of the gate on tests/fixtures/pyproj with real pytest and pytest-cov in a
//! virtualenv: one passing, one failing, one skipped test, and coverage.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_tree, gate, outputs, path_with, python_venv};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyproj")
}

/// The line of the failing assert, found by its marker rather than written down.
fn failing_line() -> usize {
    let text = std::fs::read_to_string(fixture().join("tests/test_failing.py")).unwrap();
    text.lines()
        .position(|l| l.contains("davit-gate: expected failure here"))
        .unwrap()
        + 1
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: std::collections::HashMap<String, String>,
    json: serde_json::Value,
}

/// Run the gate on a copy of the fixture as on a runner (`on_runner`) or as on a laptop.
fn run_gate(
    venv_bin: &Path,
    remove_failing: bool,
    on_runner: bool,
    extra_env: &[(&str, &str)],
) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("pyproj");
    copy_tree(&fixture(), &proj);
    if remove_failing {
        std::fs::remove_file(proj.join("tests/test_failing.py")).unwrap();
    }
    let summary = tmp.path().join("summary.md");
    let out = tmp.path().join("output");
    let mut cmd = gate();
    cmd.arg("--dir")
        .arg(&proj)
        .arg("--out-dir")
        .arg(tmp.path().join("gate"))
        .env("PATH", path_with(venv_bin));
    if on_runner {
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_OUTPUT", &out);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let json = std::fs::read_to_string(tmp.path().join("gate/gate.json"))
        .unwrap_or_else(|_| "null".into());
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        outputs: outputs(&out),
        json: serde_json::from_str(&json).unwrap(),
    }
}

#[test]
fn failing_test_is_annotated_summarised_and_exits_1() {
    let Some(bin) = python_venv() else { return };
    let r = run_gate(&bin, false, true, &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let line = failing_line();
    let annotation = format!(
        "::error title=tests.test_failing.test_subtract failed,file=tests/test_failing.py,line={line}::"
    );
    assert!(
        r.stdout.contains(&annotation),
        "no {annotation} in:\n{}",
        r.stdout
    );
    assert!(
        r.summary
            .contains("**3** tests: **1** passed, **1** failed, **0** errors, **1** skipped"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains(&format!("`tests/test_failing.py:{line}`")),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("| `test` | ❌ failed (exit 1)"),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("### Coverage"), "{}", r.summary);
    // The check's whole output is in its own collapsed group.
    assert!(
        r.stdout.contains("::group::❌ test — failed (exit 1)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("short test summary info"), "{}", r.stdout);
    assert_eq!(r.outputs["passed"], "1");
    assert_eq!(r.outputs["failed"], "1");
    assert_eq!(r.outputs["skipped"], "1");
    assert_eq!(r.outputs["result"], "fail");
    assert_eq!(r.outputs["failed-checks"], "test");
    let t = &r.json["tests"]["totals"];
    assert_eq!(
        (t["tests"].as_u64(), t["skipped"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn without_the_failing_test_it_passes_with_coverage() {
    let Some(bin) = python_venv() else { return };
    let r = run_gate(&bin, true, true, &[]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("::error"), "{}", r.stdout);
    assert!(
        r.summary.contains("## ✅ davit gate: passed"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("**2** tests: **1** passed, **0** failed, **0** errors, **1** skipped"),
        "{}",
        r.summary
    );
    let cov = &r.json["coverage"];
    // calc/ops.py has 8 statements; the fixture's tests run 4 of them (the defs and add's body).
    assert_eq!(
        (cov["covered"].as_u64(), cov["lines"].as_u64()),
        (Some(4), Some(8))
    );
    assert_eq!(r.outputs["coverage"], "50.00");
}

#[test]
fn coverage_below_the_minimum_exits_1() {
    let Some(bin) = python_venv() else { return };
    let r = run_gate(&bin, true, true, &[("DAVIT_GATE_COVERAGE_MIN", "90")]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    // `%` is escaped as %25 in workflow commands.
    assert!(
        r.stdout.contains(
            "::error title=coverage::total line coverage 50.0%25 is below the minimum 90%25"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.summary
            .contains("❌ **50.0%** of 8 lines in 1 files (minimum 90%)"),
        "{}",
        r.summary
    );
}

#[test]
fn locally_the_summary_prints_to_the_terminal() {
    let Some(bin) = python_venv() else { return };
    let r = run_gate(&bin, false, false, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = failing_line();
    assert!(
        r.stderr.contains(&format!(
            "error: tests/test_failing.py:{line}: tests.test_failing.test_subtract failed"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("## ❌ davit gate: failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("**1** passed, **1** failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("output passed=1"), "{}", r.stderr);
    // stdout is data only.
    assert_eq!(r.stdout, "");
}
