//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A real component (pytest, PostgreSQL, the shared fixtures) a test needs. Under CI (`CI=true`)
/// a missing component fails the test, so CI cannot go green by skipping; elsewhere the test
/// prints why it skipped and passes.
pub fn require<T>(component: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{component} is required under CI=true but unavailable: {why}");
            }
            eprintln!(
                "SKIPPED: {component} unavailable: {why} (set CI=true to make this a failure)"
            );
            None
        }
    }
}

/// The gate binary with a clean environment: nothing from the surrounding runner leaks in.
pub fn gate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_davit-gate"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("GITHUB_")
            || k.starts_with("RUNNER_")
            || k.starts_with("DAVIT_")
            || k.starts_with("INPUT_")
            || k == "CI"
        {
            cmd.env_remove(&k);
        }
    }
    cmd
}

/// The shared JUnit fixtures (/work/shared/fixtures/junit, or $DAVIT_JUNIT_FIXTURES).
pub fn junit_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("DAVIT_JUNIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/junit")
        });
    require(
        "shared JUnit fixtures",
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(format!("{} does not exist", dir.display()))
        },
    )
}

/// Copy a directory tree (fixture projects are copied so runs never write into the repo).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A virtualenv with pytest and pytest-cov (created once under the target dir; reused after).
/// `$DAVIT_TEST_VENV` points at an existing one instead.
pub fn python_venv() -> Option<PathBuf> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let venv = std::env::var_os("DAVIT_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("davit-gate-venv"));
    let bin = venv.join("bin");
    let ready = venv.join(".davit-ready");
    let setup = || -> Result<PathBuf, String> {
        if ready.is_file() {
            return Ok(bin.clone());
        }
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(bin.join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pytest",
            "pytest-cov",
        ]))?;
        std::fs::write(&ready, "").map_err(|e| e.to_string())?;
        Ok(bin.clone())
    };
    require("python3 venv with pytest and pytest-cov", setup())
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(parts).unwrap()
}

/// `$GITHUB_OUTPUT` contents as pairs.
pub fn outputs(path: &Path) -> std::collections::HashMap<String, String> {
    davit_gha::parse_output_file(&std::fs::read_to_string(path).unwrap_or_default())
        .into_iter()
        .collect()
}
