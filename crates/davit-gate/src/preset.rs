//! Presets: the checks a Python, Node or Rust repository almost certainly wants, found by looking
//! at the repository and at PATH.
//!
//! A preset only proposes; every check it makes can be replaced or disabled by name in
//! `[gate.checks.<name>]` (see [`crate::config`]). Tools are located on PATH before anything
//! runs, so a workflow that forgot `pip install pytest` fails in a second with the name of the
//! tool and the command that installs it, rather than after the lint step. A tool the project
//! configures (say `[tool.mypy]` in pyproject.toml) but PATH lacks is an error; a tool that is
//! merely optional (black when ruff is absent) becomes a note in the log instead.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use davit_core::Failure;
use serde::Serialize;

use crate::config::Kind;

/// A tool a check needs that is not on PATH, with the command that installs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub tool: String,
    pub check: String,
    pub install: String,
}

/// Which presets to consider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Auto,
    None,
    Only(Vec<&'static str>),
}

pub const PRESETS: [&str; 3] = ["python", "node", "rust"];

pub fn parse_spec(spec: &str) -> Result<Wanted, Failure> {
    let spec = spec.trim();
    match spec {
        "" | "auto" => return Ok(Wanted::Auto),
        "none" | "off" => return Ok(Wanted::None),
        _ => {}
    }
    let mut list = Vec::new();
    for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match PRESETS.iter().find(|k| **k == p) {
            Some(k) => list.push(*k),
            None => {
                return Err(Failure::bad_input(
                    format!("unknown preset {p:?}"),
                    "use preset = \"auto\", \"none\" or a comma list of python, node, rust",
                ));
            }
        }
    }
    Ok(Wanted::Only(list))
}

/// One check a preset proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetCheck {
    pub name: &'static str,
    pub kind: Kind,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Set when the tool is not on PATH; the check then cannot run.
    pub missing: Option<Missing>,
}

/// A preset that applies to the repository.
#[derive(Debug, Clone, Default)]
pub struct Detected {
    pub name: &'static str,
    pub checks: Vec<PresetCheck>,
    pub notes: Vec<String>,
    pub junit: Vec<String>,
    pub coverage: Vec<String>,
}

/// Find `prog` on `path_env` (relative names with a `/` resolve against `dir`).
pub fn locate(prog: &str, dir: &Path, path_env: Option<&OsStr>) -> Option<PathBuf> {
    let path = path_env
        .map(|p| p.to_os_string())
        .or_else(|| std::env::var_os("PATH"))?;
    which::which_in(prog, Some(path), dir).ok()
}

/// How to install a tool we could not find.
pub fn install_hint(tool: &str) -> String {
    match tool {
        "pytest" => "pip install pytest pytest-cov (in the job's virtualenv)".into(),
        "ruff" | "black" | "isort" | "flake8" | "mypy" => format!("pip install {tool}"),
        "python" | "python3" => "use actions/setup-python, or apt-get install python3".into(),
        "npm" | "node" | "npx" => "use actions/setup-node".into(),
        "pnpm" => "use pnpm/action-setup, or corepack enable".into(),
        "yarn" => "corepack enable (or npm install -g yarn)".into(),
        "cargo" | "rustc" => "install Rust with rustup (dtolnay/rust-toolchain on Actions)".into(),
        "cargo-fmt" | "rustfmt" => "rustup component add rustfmt".into(),
        "cargo-clippy" => "rustup component add clippy".into(),
        "cargo-nextest" => "cargo install cargo-nextest (or taiki-e/install-action@nextest)".into(),
        _ => format!("install {tool} in an earlier step so it is on PATH"),
    }
}

struct Ctx<'a> {
    root: &'a Path,
    out_dir: &'a Path,
    path_env: Option<&'a OsStr>,
}

impl Ctx<'_> {
    fn has(&self, tool: &str) -> Option<PathBuf> {
        locate(tool, self.root, self.path_env)
    }
    fn file(&self, rel: &str) -> bool {
        self.root.join(rel).is_file()
    }
    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }
    fn out(&self, name: &str) -> String {
        self.out_dir.join(name).to_string_lossy().into_owned()
    }
    fn check(&self, name: &'static str, kind: Kind, argv: &[&str], tool: &str) -> PresetCheck {
        PresetCheck {
            name,
            kind,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            missing: self.has(tool).is_none().then(|| Missing {
                tool: tool.to_string(),
                check: name.to_string(),
                install: install_hint(tool),
            }),
        }
    }
}

/// The presets that apply to `root`.
pub fn detect(
    root: &Path,
    out_dir: &Path,
    wanted: &Wanted,
    path_env: Option<&OsStr>,
) -> Vec<Detected> {
    let cx = Ctx {
        root,
        out_dir,
        path_env,
    };
    let mut out = Vec::new();
    for name in PRESETS {
        // A preset named explicitly applies even without its marker files.
        let include = match wanted {
            Wanted::None => false,
            Wanted::Auto => markers(&cx, name),
            Wanted::Only(l) => l.contains(&name),
        };
        if !include {
            continue;
        }
        out.push(match name {
            "python" => python(&cx),
            "node" => node(&cx),
            _ => rust(&cx),
        });
    }
    out
}

fn markers(cx: &Ctx<'_>, preset: &str) -> bool {
    match preset {
        "python" => [
            "pyproject.toml",
            "setup.py",
            "setup.cfg",
            "requirements.txt",
            "manage.py",
        ]
        .iter()
        .any(|f| cx.file(f)),
        "node" => cx.file("package.json"),
        _ => cx.file("Cargo.toml"),
    }
}

/// `[tool.<name>]` in pyproject.toml, or one of the named config files / setup.cfg sections.
fn py_configured(
    cx: &Ctx<'_>,
    pyproject: &Option<toml::Table>,
    tool: &str,
    files: &[&str],
) -> bool {
    let in_pyproject = pyproject
        .as_ref()
        .and_then(|t| t.get("tool"))
        .and_then(|t| t.get(tool))
        .is_some();
    let in_setup_cfg = cx.read("setup.cfg").is_some_and(|s| {
        s.lines()
            .any(|l| l.trim() == format!("[{tool}]") || l.trim() == format!("[tool:{tool}]"))
    });
    in_pyproject || in_setup_cfg || files.iter().any(|f| cx.file(f))
}

fn python(cx: &Ctx<'_>) -> Detected {
    let mut d = Detected {
        name: "python",
        ..Detected::default()
    };
    let pyproject: Option<toml::Table> = cx.read("pyproject.toml").and_then(|s| s.parse().ok());

    // Lint and format: ruff if configured or installed, else the classic trio when present.
    let ruff_cfg = py_configured(cx, &pyproject, "ruff", &["ruff.toml", ".ruff.toml"]);
    let black_cfg = py_configured(cx, &pyproject, "black", &[]);
    let isort_cfg = py_configured(cx, &pyproject, "isort", &[".isort.cfg"]);
    let flake8_cfg = py_configured(cx, &pyproject, "flake8", &[".flake8"]);
    if ruff_cfg || (cx.has("ruff").is_some() && !black_cfg && !flake8_cfg) {
        d.checks
            .push(cx.check("lint", Kind::Lint, &["ruff", "check", "."], "ruff"));
        d.checks.push(cx.check(
            "format",
            Kind::Format,
            &["ruff", "format", "--check", "."],
            "ruff",
        ));
    } else {
        let mut any = false;
        if flake8_cfg || cx.has("flake8").is_some() {
            d.checks
                .push(cx.check("lint", Kind::Lint, &["flake8", "."], "flake8"));
            any = true;
        }
        if black_cfg || cx.has("black").is_some() {
            d.checks
                .push(cx.check("format", Kind::Format, &["black", "--check", "."], "black"));
            any = true;
        }
        if isort_cfg || cx.has("isort").is_some() {
            d.checks.push(cx.check(
                "isort",
                Kind::Format,
                &["isort", "--check-only", "--diff", "."],
                "isort",
            ));
            any = true;
        }
        if !any {
            d.notes.push(
                "python: no linter on PATH, so no lint check: install ruff (pip install ruff) \
                 or set [gate.checks.lint]"
                    .into(),
            );
        }
    }

    if py_configured(cx, &pyproject, "mypy", &["mypy.ini", ".mypy.ini"]) {
        d.checks
            .push(cx.check("typecheck", Kind::Typecheck, &["mypy", "."], "mypy"));
    }

    // Tests: pytest with a JUnit report (xunit1 keeps the file attribute for annotations) and,
    // when pytest-cov is importable next to pytest, a Cobertura report.
    let has_tests = cx.root.join("tests").is_dir()
        || cx.root.join("test").is_dir()
        || py_configured(cx, &pyproject, "pytest", &["pytest.ini", "conftest.py"]);
    if has_tests {
        let junit = cx.out("pytest-junit.xml");
        let mut argv = vec![
            "pytest".to_string(),
            format!("--junitxml={junit}"),
            "-o".into(),
            "junit_family=xunit1".into(),
        ];
        let pytest = cx.has("pytest");
        if let Some(p) = &pytest {
            if has_pytest_cov(p) {
                let cov = cx.out("coverage.xml");
                argv.extend([
                    "--cov".to_string(),
                    format!("--cov-report=xml:{cov}"),
                    "--cov-report=term".into(),
                ]);
                d.coverage.push(cov);
            } else {
                d.notes.push(
                    "python: pytest-cov is not installed next to pytest, so no coverage report \
                     (pip install pytest-cov)"
                        .into(),
                );
            }
        }
        d.junit.push(junit);
        let mut c = cx.check("test", Kind::Test, &[], "pytest");
        c.argv = argv;
        d.checks.push(c);
    }

    if cx.file("manage.py") {
        let py = if cx.has("python").is_some() {
            "python"
        } else {
            "python3"
        };
        d.checks.push(cx.check(
            "migrations",
            Kind::Migrations,
            &[py, "manage.py", "makemigrations", "--check", "--dry-run"],
            py,
        ));
    }
    d
}

/// Whether the Python interpreter that runs `pytest` can import pytest_cov.
fn has_pytest_cov(pytest: &Path) -> bool {
    let python = pytest
        .parent()
        .map(|d| d.join("python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"));
    std::process::Command::new(python)
        .args(["-c", "import pytest_cov"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn node(cx: &Ctx<'_>) -> Detected {
    let mut d = Detected {
        name: "node",
        ..Detected::default()
    };
    let pkg: serde_json::Value = cx
        .read("package.json")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let scripts = pkg.get("scripts").and_then(|s| s.as_object());
    let has_script = |n: &str| scripts.is_some_and(|s| s.contains_key(n));
    let pm = if cx.file("pnpm-lock.yaml") {
        "pnpm"
    } else if cx.file("yarn.lock") {
        "yarn"
    } else if cx.file("bun.lockb") || cx.file("bun.lock") {
        "bun"
    } else {
        "npm"
    };
    let script = |name: &'static str, kind: Kind, script: &str| {
        let argv: Vec<&str> = if pm == "yarn" {
            vec![pm, script]
        } else {
            vec![pm, "run", script]
        };
        cx.check(name, kind, &argv, pm)
    };
    if has_script("lint") {
        d.checks.push(script("lint", Kind::Lint, "lint"));
    }
    for s in ["format:check", "fmt:check", "prettier:check"] {
        if has_script(s) {
            d.checks.push(script("format", Kind::Format, s));
            break;
        }
    }
    for s in ["typecheck", "type-check", "tsc", "types"] {
        if has_script(s) {
            d.checks.push(script("typecheck", Kind::Typecheck, s));
            break;
        }
    }
    if has_script("test") {
        let mut c = script("test", Kind::Test, "test");
        // jest-junit reads these; other runners ignore them.
        let junit = cx.out("jest-junit.xml");
        c.env.insert("JEST_JUNIT_OUTPUT_FILE".into(), junit.clone());
        c.env.insert("CI".into(), "true".into());
        d.junit.push(junit);
        d.coverage.push(
            cx.root
                .join("coverage/lcov.info")
                .to_string_lossy()
                .into_owned(),
        );
        d.coverage.push(
            cx.root
                .join("coverage/cobertura-coverage.xml")
                .to_string_lossy()
                .into_owned(),
        );
        d.checks.push(c);
    }
    if d.checks.is_empty() {
        d.notes
            .push("node: package.json has no lint, typecheck or test script".into());
    } else if !cx.root.join("node_modules").is_dir() {
        d.notes.push(format!(
            "node: node_modules is missing; run `{pm} ci` (or install) in an earlier step"
        ));
    }
    d
}

fn rust(cx: &Ctx<'_>) -> Detected {
    let mut d = Detected {
        name: "rust",
        ..Detected::default()
    };
    let mut fmt = cx.check(
        "fmt",
        Kind::Format,
        &["cargo", "fmt", "--all", "--", "--check"],
        "cargo",
    );
    if fmt.missing.is_none() && cx.has("cargo-fmt").is_none() {
        fmt.missing = Some(Missing {
            tool: "cargo-fmt".into(),
            check: "fmt".into(),
            install: install_hint("cargo-fmt"),
        });
    }
    d.checks.push(fmt);
    let mut clippy = cx.check(
        "clippy",
        Kind::Lint,
        &[
            "cargo",
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        "cargo",
    );
    if clippy.missing.is_none() && cx.has("cargo-clippy").is_none() {
        clippy.missing = Some(Missing {
            tool: "cargo-clippy".into(),
            check: "clippy".into(),
            install: install_hint("cargo-clippy"),
        });
    }
    d.checks.push(clippy);
    if cx.has("cargo-nextest").is_some() {
        // A tool config file adds a profile with a JUnit report, and moves nextest's store into
        // out_dir, without touching the repository's own .config/nextest.toml.
        let cfg_path = cx.out_dir.join("nextest-davit.toml");
        let store = cx.out_dir.join("nextest");
        let _ = std::fs::create_dir_all(cx.out_dir);
        let _ = std::fs::write(
            &cfg_path,
            format!(
                "[store]\ndir = {}\n\n[profile.davit-gate]\nfail-fast = false\n\n\
                 [profile.davit-gate.junit]\npath = \"junit.xml\"\n",
                toml::Value::String(store.to_string_lossy().into_owned())
            ),
        );
        d.junit.push(cx.out("nextest/davit-gate/junit.xml"));
        let tool_cfg = format!("davit-gate:{}", cfg_path.to_string_lossy());
        let mut c = cx.check("test", Kind::Test, &[], "cargo");
        c.argv = [
            "cargo",
            "nextest",
            "run",
            "--workspace",
            "--tool-config-file",
            &tool_cfg,
            "--profile",
            "davit-gate",
            "--no-tests=pass",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        d.checks.push(c);
    } else {
        d.checks.push(cx.check(
            "test",
            Kind::Test,
            &["cargo", "test", "--workspace"],
            "cargo",
        ));
        d.notes.push(
            "rust: cargo-nextest is not installed, so tests run with cargo test and without a \
             JUnit report (cargo install cargo-nextest)"
                .into(),
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools_dir(tools: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for t in tools {
            let p = d.path().join(t);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        d
    }

    fn names(d: &Detected) -> Vec<&str> {
        d.checks.iter().map(|c| c.name).collect()
    }

    #[test]
    fn python_project_with_configured_tools() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(
            repo.path().join("pyproject.toml"),
            "[tool.ruff]\nline-length = 100\n[tool.mypy]\nstrict = true\n",
        )
        .unwrap();
        std::fs::create_dir(repo.path().join("tests")).unwrap();
        std::fs::write(repo.path().join("manage.py"), "").unwrap();
        let tools = tools_dir(&["ruff", "pytest", "python"]);
        let found = detect(
            repo.path(),
            Path::new("/out"),
            &Wanted::Auto,
            Some(tools.path().as_os_str()),
        );
        assert_eq!(found.len(), 1);
        let py = &found[0];
        assert_eq!(
            names(py),
            ["lint", "format", "typecheck", "test", "migrations"]
        );
        // mypy is configured but not installed: named, with the install command.
        let missing: Vec<_> = py.checks.iter().filter_map(|c| c.missing.clone()).collect();
        assert_eq!(
            missing,
            [Missing {
                tool: "mypy".into(),
                check: "typecheck".into(),
                install: "pip install mypy".into()
            }]
        );
        let test = &py.checks[3];
        assert!(
            test.argv
                .contains(&"--junitxml=/out/pytest-junit.xml".to_string())
        );
        assert_eq!(py.junit, ["/out/pytest-junit.xml"]);
        assert_eq!(
            py.checks[4].argv,
            [
                "python",
                "manage.py",
                "makemigrations",
                "--check",
                "--dry-run"
            ]
        );
    }

    #[test]
    fn python_without_linters_notes_how_to_get_one() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("requirements.txt"), "").unwrap();
        let tools = tools_dir(&[]);
        let found = detect(
            repo.path(),
            Path::new("/o"),
            &Wanted::Auto,
            Some(tools.path().as_os_str()),
        );
        assert!(found[0].checks.is_empty());
        assert!(found[0].notes[0].contains("pip install ruff"));
    }

    #[test]
    fn node_scripts_and_package_manager() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(
            repo.path().join("package.json"),
            r#"{"scripts":{"lint":"eslint .","test":"jest","type-check":"tsc --noEmit"}}"#,
        )
        .unwrap();
        std::fs::write(repo.path().join("pnpm-lock.yaml"), "").unwrap();
        let tools = tools_dir(&["npm"]);
        let found = detect(
            repo.path(),
            Path::new("/o"),
            &Wanted::Auto,
            Some(tools.path().as_os_str()),
        );
        let node = &found[0];
        assert_eq!(names(node), ["lint", "typecheck", "test"]);
        assert_eq!(node.checks[1].argv, ["pnpm", "run", "type-check"]);
        assert_eq!(node.checks[2].missing.as_ref().unwrap().tool, "pnpm");
        assert_eq!(
            node.checks[2].env["JEST_JUNIT_OUTPUT_FILE"],
            "/o/jest-junit.xml"
        );
    }

    #[test]
    fn rust_preset_and_explicit_choice() {
        let repo = tempfile::tempdir().unwrap();
        let tools = tools_dir(&["cargo", "cargo-fmt", "cargo-clippy"]);
        // Nothing marks the repository as Rust, but the preset was asked for by name.
        let found = detect(
            repo.path(),
            repo.path(),
            &Wanted::Only(vec!["rust"]),
            Some(tools.path().as_os_str()),
        );
        assert_eq!(names(&found[0]), ["fmt", "clippy", "test"]);
        assert!(found[0].checks.iter().all(|c| c.missing.is_none()));
        assert_eq!(found[0].checks[2].argv, ["cargo", "test", "--workspace"]);
        assert!(detect(repo.path(), repo.path(), &Wanted::Auto, None).is_empty());
        assert!(parse_spec("cobol").is_err());
        assert_eq!(
            parse_spec("rust, python").unwrap(),
            Wanted::Only(vec!["rust", "python"])
        );
    }
}
