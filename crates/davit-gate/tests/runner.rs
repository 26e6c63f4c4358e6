//! The check runner through the binary: timeouts kill the whole process group, fail-fast stops
//! the rest, output is kept whole, inputs arrive through DAVIT_GATE_* variables, and bad
//! configuration exits 2 with a hint.

mod common;

use std::path::Path;
use std::process::Output;

fn gate_in(
    dir: &Path,
    toml: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    if let Some(t) = toml {
        std::fs::write(dir.join("davit.toml"), t).unwrap();
    }
    let mut cmd = common::gate();
    cmd.arg("--dir")
        .arg(dir)
        .arg("--out-dir")
        .arg(dir.join("out"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let j = std::fs::read_to_string(dir.join("out/gate.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    (o, j)
}

fn status<'a>(j: &'a serde_json::Value, name: &str) -> &'a str {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {j}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn timeout_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let toml = format!(
        r#"
[gate]
preset = "none"
[gate.checks.slow]
run = "sleep 300 & echo $! > {}; wait"
timeout = "1s"
[gate.checks.quick]
run = "echo fine"
"#,
        pidfile.display()
    );
    let (o, j) = gate_in(dir.path(), Some(&toml), &[], &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(status(&j, "slow"), "timed_out");
    assert_eq!(status(&j, "quick"), "passed");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    // The background sleep was in the check's process group, so it is gone too (or a zombie
    // about to be reaped by init).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "sleep survived: {stat}"
    );
    let log = std::fs::read_to_string(dir.path().join("out/logs/slow.log")).unwrap();
    assert!(log.contains("timed out after 1s"), "{log}");
}

#[test]
fn fail_fast_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[gate]
preset = "none"
parallel = 2
fail_fast = true
[gate.checks.broken]
run = "echo broken; exit 4"
[gate.checks.long]
run = "sleep 300"
[gate.checks.later]
run = "echo later"
"#;
    let (o, j) = gate_in(dir.path(), Some(toml), &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(status(&j, "broken"), "failed");
    assert_eq!(j["checks"][0]["exit_code"], 4);
    // `long` is either stopped mid-run or never started, depending on whether it got its slot
    // before `broken` failed; both are fail-fast doing its job.
    assert!(
        ["cancelled", "not_run"].contains(&status(&j, "long")),
        "{j}"
    );
    assert_eq!(status(&j, "later"), "not_run");
    // Without fail-fast the independent check runs.
    let (_, j) = gate_in(
        dir.path(),
        Some(
            &toml
                .replace("fail_fast = true", "fail_fast = false")
                .replace("sleep 300", "true"),
        ),
        &[],
        &[],
    );
    assert_eq!(status(&j, "later"), "passed");
}

#[test]
fn output_is_kept_whole_in_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = gate_in(
        dir.path(),
        None,
        &[
            "--preset",
            "none",
            "--check",
            "big: seq 1 200000; echo to-stderr >&2",
        ],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let group = out.split("::group::").nth(1).unwrap();
    let body: Vec<&str> = group
        .split("::endgroup::")
        .next()
        .unwrap()
        .lines()
        .collect();
    let numbers: Vec<&str> = body
        .iter()
        .copied()
        .filter(|l| l.parse::<u32>().is_ok())
        .collect();
    assert_eq!(numbers.len(), 200000);
    assert_eq!((numbers[0], numbers[199999]), ("1", "200000"));
    assert!(body.contains(&"to-stderr"));
}

#[test]
fn inputs_come_through_env_and_empty_ones_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (o, j) = gate_in(
        dir.path(),
        None,
        &[],
        &[
            ("DAVIT_GATE_PRESET", "none"),
            (
                "DAVIT_GATE_CHECKS",
                "lint: echo lint-ran\ntest = echo $((6*7))\n",
            ),
            ("DAVIT_GATE_PARALLEL", ""),
            ("DAVIT_GATE_FAIL_FAST", ""),
            ("DAVIT_GATE_TIMEOUT", ""),
            ("DAVIT_GATE_COVERAGE_MIN", ""),
            ("DAVIT_GATE_SERVICES", ""),
            ("DAVIT_GATE_SKIP", "lint"),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let names: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["test"]);
    assert!(stderr.contains("\n42\n"), "{stderr}");
}

#[test]
fn bad_configuration_exits_2_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, args, expect) in [
        (
            Some(
                "[gate]\npreset = \"none\"\n[gate.checks.lint]\nrun = \"x\"\ntimeout = \"soon\"\n",
            ),
            vec![],
            "timeout",
        ),
        (
            None,
            vec![
                "--preset",
                "none",
                "--check",
                "lint: no-such-tool-davit --fix",
            ],
            "no-such-tool-davit",
        ),
        (None, vec!["--preset", "none"], "nothing to check"),
        (
            None,
            vec!["--preset", "none", "--check", "x: true", "--only", "y"],
            "no check named \"y\"",
        ),
        (
            None,
            vec![
                "--preset",
                "none",
                "--check",
                "x: true",
                "--service",
                "tcp://db",
            ],
            "tcp:// needs a port",
        ),
    ] {
        let _ = std::fs::remove_file(dir.path().join("davit.toml"));
        let (o, _) = gate_in(dir.path(), toml, &args, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(stderr.contains("\nhint: "), "{args:?}: {stderr}");
    }
}
