//! A real run of the Rust preset on this repository: fmt, clippy and cargo-nextest (with its
//! JUnit report read back), narrowed to the small, stable davit-core crate so the run stays short
//! and does not depend on crates other people are editing right now.

mod common;

use std::path::Path;

#[test]
fn this_repository_passes_its_own_rust_checks() {
    let Some(_) = common::require(
        "cargo-nextest",
        which::which("cargo-nextest").map_err(|e| format!("{e} (cargo install cargo-nextest)")),
    ) else {
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // A separate target dir: the outer `cargo test` may hold the usual one.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-checks-target");
    let pkgs = r#""-p", "davit-core""#;
    let config = tmp.path().join("davit.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gate]
preset = "rust"
parallel = 1
[gate.checks.fmt]
run = ["cargo", "fmt", {pkgs}, "--", "--check"]
[gate.checks.clippy]
run = ["cargo", "clippy", {pkgs}, "--all-targets", "--", "-D", "warnings"]
[gate.checks.test]
run = ["cargo", "nextest", "run", {pkgs}, "--tool-config-file", "davit-gate:{}", "--profile", "davit-gate"]
"#,
            out.join("nextest-davit.toml").display()
        ),
    )
    .unwrap();
    let junit = out.join("nextest/davit-gate/junit.xml");
    let o = common::gate()
        .arg("--dir")
        .arg(&repo)
        .arg("--config")
        .arg(&config)
        .arg("--out-dir")
        .arg(&out)
        .arg("--json")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fmt", "clippy", "test"]);
    assert!(
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "passed")
    );
    // The JUnit report nextest wrote was found and read.
    assert!(junit.is_file());
    let t = &j["tests"]["totals"];
    assert!(t["tests"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["failed"].as_u64(), Some(0));
    assert_eq!(t["errors"].as_u64(), Some(0));
    // Count agrees with nextest's own listing of the same tests.
    let list = std::process::Command::new("cargo")
        .args([
            "nextest",
            "list",
            "-p",
            "davit-core",
            "--message-format",
            "oneline",
        ])
        .current_dir(&repo)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(t["tests"].as_u64(), Some(listed as u64));
}
