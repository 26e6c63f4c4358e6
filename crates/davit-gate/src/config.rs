//! The `[gate]` table of davit.toml and the merge of presets, file and inputs into [`Settings`].
//!
//! Three layers, later wins: a detected preset proposes checks, `[gate.checks.<name>]` in
//! davit.toml replaces or disables them by name, and action inputs (`--check`, `DAVIT_GATE_*`)
//! replace both. Checks are keyed by name so that "a preset is a starting point" is literal:
//! overriding `test` keeps `lint`. Every mistake found here is a bad-input error (exit 2) with a
//! `hint:` naming the fix, reported before anything runs. The lead's `davit-config` crate will own
//! davit.toml eventually; until then this module reads only `[gate]` and ignores other tables.
//!
//! ```toml
//! [gate]
//! preset = "auto"              # auto | none | python,node,rust
//! parallel = 2                 # default: number of CPUs
//! fail_fast = false
//! timeout = "30m"              # default per-check timeout
//! junit = ["reports/*.xml"]    # extra JUnit reports (globs)
//! merge_reruns = false         # repeated test cases = attempts of one test (flaky if the last passed)
//! coverage = ["coverage.xml"]  # Cobertura XML or LCOV (globs)
//! coverage_min = 80            # percent, total
//! coverage_min_file = 50       # percent, every file
//! services = ["postgres://postgres@localhost:5432/app", "redis://localhost:6379"]
//! service_timeout = "60s"
//!
//! [gate.checks.test]           # replaces the preset's `test`
//! run = "pytest -q"            # a string runs with `sh -c`; an array is argv, no shell
//! kind = "test"                # lint | format | typecheck | test | migrations | custom
//! timeout = "20m"
//! services = true              # wait for services first (default: kinds test, migrations)
//! env = { DJANGO_SETTINGS_MODULE = "app.settings_ci" }
//! dir = "backend"              # relative to the project directory
//!
//! [gate.checks.typecheck]
//! enabled = false              # drop a preset check
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use davit_core::Failure;
use serde::{Deserialize, Serialize};

use crate::cli::Args;
use crate::preset::{self, Missing};
use crate::services::Service;

/// What a check is for; decides defaults (tests wait for services) and the summary's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Lint,
    Format,
    Typecheck,
    Test,
    Migrations,
    Custom,
}

impl Kind {
    /// The kind a check name implies when none is given.
    pub fn from_name(name: &str) -> Kind {
        let base = name.rsplit('-').next().unwrap_or(name);
        match base {
            "lint" | "clippy" | "flake8" => Kind::Lint,
            "format" | "fmt" | "isort" => Kind::Format,
            "typecheck" | "types" | "mypy" | "tsc" => Kind::Typecheck,
            "test" | "tests" | "pytest" => Kind::Test,
            "migrations" | "migrate" => Kind::Migrations,
            _ => Kind::Custom,
        }
    }
}

/// How a check's command is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Run {
    /// The user's own script, run with `sh -c` like a workflow `run:` step.
    Shell(String),
    /// A program and its arguments, no shell involved (what presets produce).
    Argv(Vec<String>),
}

impl Run {
    /// The program to look up on PATH before anything runs, when it can be known.
    pub fn program(&self) -> Option<String> {
        match self {
            Run::Argv(v) => v.first().cloned(),
            Run::Shell(s) => {
                let first = s.split_whitespace().next()?;
                const SHELL_WORDS: &[&str] = &[
                    "cd", "export", "set", "if", "for", "while", "test", "[", "echo", "true",
                    "false", "exec", "source", ".", "env", "!", "{", "(", "case", "until",
                ];
                let plain = first
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.+-/".contains(c));
                (plain && !SHELL_WORDS.contains(&first)).then(|| first.to_string())
            }
        }
    }

    pub fn display(&self) -> String {
        match self {
            Run::Shell(s) => s.clone(),
            Run::Argv(v) => v
                .iter()
                .map(|a| {
                    if a.is_empty()
                        || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c))
                    {
                        format!("'{}'", a.replace('\'', r"'\''"))
                    } else {
                        a.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// One check, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub kind: Kind,
    pub run: Run,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub needs_services: bool,
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute).
    pub dir: PathBuf,
    /// Where it came from: a preset name, "davit.toml" or "input".
    pub origin: String,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// `[gate]` as written in davit.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateToml {
    pub preset: Option<String>,
    pub parallel: Option<usize>,
    pub fail_fast: Option<bool>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub junit: Vec<String>,
    pub merge_reruns: Option<bool>,
    #[serde(default)]
    pub coverage: Vec<String>,
    pub coverage_min: Option<f64>,
    pub coverage_min_file: Option<f64>,
    #[serde(default)]
    pub services: Vec<String>,
    pub service_timeout: Option<String>,
    /// `[gate.checks.<name>]` tables, in file order (each one a [`CheckToml`]).
    #[serde(default)]
    pub checks: toml::Table,
}

/// `[gate.checks.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckToml {
    pub run: Option<Run>,
    pub kind: Option<Kind>,
    pub timeout: Option<String>,
    pub services: Option<bool>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub dir: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize)]
struct FileToml {
    #[serde(default)]
    gate: Option<toml::Value>,
}

/// Read `[gate]` from a davit.toml; other tables are someone else's business.
pub fn read_gate_table(path: &Path) -> Result<GateToml, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(
            format!("cannot read {}: {e}", path.display()),
            "pass --config with an existing davit.toml, or remove DAVIT_GATE_CONFIG",
        )
    })?;
    let file: FileToml = toml::from_str(&text).map_err(|e| {
        Failure::bad_input(
            format!("{} is not valid TOML: {e}", path.display()),
            "fix the syntax at the position shown",
        )
    })?;
    match file.gate {
        None => Ok(GateToml::default()),
        Some(v) => GateToml::deserialize(v).map_err(|e| {
            Failure::bad_input(
                format!("{}: [gate]: {e}", path.display()),
                "see crates/davit-gate/README.md for the [gate] keys; check the spelling",
            )
        }),
    }
}

/// Parse "90", "90s", "15m", "1h30m", "500ms".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(n * mult);
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn duration(field: &str, v: &str) -> Result<Duration, Failure> {
    match parse_duration(v) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(Failure::bad_input(
            format!("{field} = {v:?} is not a duration"),
            format!("write {field} like 90s, 15m or 1h30m"),
        )),
    }
}

fn percent(field: &str, v: Option<f64>) -> Result<Option<f64>, Failure> {
    match v {
        Some(p) if !(0.0..=100.0).contains(&p) || p.is_nan() => Err(Failure::bad_input(
            format!("{field} = {p} is not a percentage"),
            format!("set {field} to a number from 0 to 100"),
        )),
        other => Ok(other),
    }
}

/// Everything the gate needs to run, after presets, davit.toml and inputs were merged.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub out_dir: PathBuf,
    pub checks: Vec<Check>,
    pub parallel: usize,
    pub fail_fast: bool,
    /// JUnit globs the user named (a glob matching nothing is worth a warning).
    pub junit: Vec<String>,
    /// JUnit globs presets add (silently optional: the tool may not have run).
    pub junit_optional: Vec<String>,
    /// Repeated test cases in one report are attempts of one test (pytest-rerunfailures, jest
    /// retries): the last attempt decides and fail-then-pass is flaky. Off by default, because
    /// two different tests can share a name in a report.
    pub merge_reruns: bool,
    pub coverage: Vec<String>,
    pub coverage_optional: Vec<String>,
    pub coverage_min: Option<f64>,
    pub coverage_min_file: Option<f64>,
    pub services: Vec<Service>,
    pub service_timeout: Duration,
    pub json: bool,
    /// Remarks from preset detection (a linter that is not installed, ...).
    pub notes: Vec<String>,
    /// Tools the remaining checks need but PATH does not have.
    pub missing: Vec<Missing>,
    pub presets: Vec<String>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// Split "name: command" / "name=command" into its parts.
fn split_check_input(line: &str) -> Option<(&str, &str)> {
    let i = line.find([':', '='])?;
    let (name, cmd) = (line[..i].trim(), line[i + 1..].trim());
    (!name.is_empty() && !cmd.is_empty()).then_some((name, cmd))
}

fn valid_name(field: &str, name: &str) -> Result<(), Failure> {
    davit_core::validate::name(field, name).map_err(|e| {
        Failure::bad_input(
            e.to_string(),
            "check names become file names and summary rows: e.g. lint, test, e2e-api",
        )
    })
}

impl Settings {
    /// Merge inputs, davit.toml and presets. `path_env` is the PATH used to locate tools.
    pub fn resolve(args: &Args, path_env: Option<&std::ffi::OsStr>) -> Result<Settings, Failure> {
        let root = std::path::absolute(&args.dir).map_err(|e| {
            Failure::bad_input(
                format!("project directory {}: {e}", args.dir.display()),
                "pass --dir with an existing directory",
            )
        })?;
        if !root.is_dir() {
            return Err(Failure::bad_input(
                format!("project directory {} does not exist", root.display()),
                "pass --dir (DAVIT_GATE_DIR, input working-directory) with an existing directory",
            ));
        }
        // Explicit paths are relative to the current directory, like --dir itself.
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let config_path = match &args.config {
            Some(p) => Some(abs(p)),
            None => Some(root.join("davit.toml")).filter(|p| p.is_file()),
        };
        let file = match &config_path {
            Some(p) => read_gate_table(p)?,
            None => GateToml::default(),
        };

        let out_dir = match &args.out_dir {
            Some(p) => abs(p),
            None => match std::env::var_os("RUNNER_TEMP").filter(|v| !v.is_empty()) {
                Some(t) => PathBuf::from(t).join("davit-gate"),
                None => root.join(".davit").join("gate"),
            },
        };

        let timeout = match args.timeout.as_deref().or(file.timeout.as_deref()) {
            Some(v) => duration("timeout", v)?,
            None => DEFAULT_TIMEOUT,
        };
        let service_timeout = match args
            .service_timeout
            .as_deref()
            .or(file.service_timeout.as_deref())
        {
            Some(v) => duration("service_timeout", v)?,
            None => DEFAULT_SERVICE_TIMEOUT,
        };
        let parallel = args
            .parallel
            .or(file.parallel)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if parallel == 0 {
            return Err(Failure::bad_input(
                "parallel = 0 would run nothing",
                "set parallel to 1 or more, or leave it unset for the number of CPUs",
            ));
        }

        // Presets.
        let preset_spec = args
            .preset
            .clone()
            .or(file.preset.clone())
            .unwrap_or_else(|| "auto".to_string());
        let wanted = preset::parse_spec(&preset_spec)?;
        let detected = preset::detect(&root, &out_dir, &wanted, path_env);
        let prefix = detected.len() > 1;
        let mut checks: BTreeMap<String, (Check, Option<Missing>)> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        let mut junit_optional = Vec::new();
        let mut coverage_optional = Vec::new();
        let mut presets = Vec::new();
        for p in detected {
            presets.push(p.name.to_string());
            notes.extend(p.notes);
            junit_optional.extend(p.junit);
            coverage_optional.extend(p.coverage);
            for pc in p.checks {
                let name = if prefix {
                    format!("{}-{}", p.name, pc.name)
                } else {
                    pc.name.to_string()
                };
                let check = Check {
                    name: name.clone(),
                    kind: pc.kind,
                    run: Run::Argv(pc.argv),
                    timeout,
                    needs_services: matches!(pc.kind, Kind::Test | Kind::Migrations),
                    env: pc.env,
                    dir: root.clone(),
                    origin: format!("preset {}", p.name),
                };
                order.push(name.clone());
                checks.insert(name, (check, pc.missing));
            }
        }

        // davit.toml overrides, by name.
        for (name, c) in &file.checks {
            valid_name(&format!("[gate.checks.{name}]"), name)?;
            let c: CheckToml = c.clone().try_into().map_err(|e: toml::de::Error| {
                Failure::bad_input(
                    format!("[gate.checks.{name}]: {}", e.message()),
                    "keys are run, kind, timeout, services, env, dir, enabled; see crates/davit-gate/README.md",
                )
            })?;
            if c.enabled == Some(false) {
                checks.remove(name);
                continue;
            }
            let existing = checks.remove(name);
            let run = match (&c.run, &existing) {
                (Some(r), _) => r.clone(),
                (None, Some((e, _))) => e.run.clone(),
                (None, None) => {
                    return Err(Failure::bad_input(
                        format!(
                            "[gate.checks.{name}] has no `run` command and no preset defines {name:?}"
                        ),
                        format!("add run = \"...\" to [gate.checks.{name}]"),
                    ));
                }
            };
            if matches!(&run, Run::Argv(v) if v.is_empty())
                || matches!(&run, Run::Shell(s) if s.trim().is_empty())
            {
                return Err(Failure::bad_input(
                    format!("[gate.checks.{name}] run is empty"),
                    "give the command to run, e.g. run = \"pytest -q\"",
                ));
            }
            // A user command replaces the preset's, so the preset's missing tool no longer matters.
            let missing = if c.run.is_some() {
                None
            } else {
                existing.as_ref().and_then(|e| e.1.clone())
            };
            let kind = c
                .kind
                .or(existing.as_ref().map(|e| e.0.kind))
                .unwrap_or_else(|| Kind::from_name(name));
            let dir = match &c.dir {
                Some(d) => {
                    davit_core::validate::relative_path(&format!("[gate.checks.{name}] dir"), d)
                        .map_err(|e| {
                            Failure::bad_input(
                                e.to_string(),
                                "dir is relative to the project directory",
                            )
                        })?;
                    root.join(d)
                }
                None => existing.as_ref().map_or(root.clone(), |e| e.0.dir.clone()),
            };
            let mut env = existing
                .as_ref()
                .map(|e| e.0.env.clone())
                .unwrap_or_default();
            for (k, v) in &c.env {
                davit_core::validate::env_name(&format!("[gate.checks.{name}.env]"), k).map_err(
                    |e| {
                        Failure::bad_input(
                            e.to_string(),
                            "environment variable names are letters, digits and _",
                        )
                    },
                )?;
                env.insert(k.clone(), v.clone());
            }
            let check = Check {
                name: name.clone(),
                kind,
                run,
                timeout: match &c.timeout {
                    Some(t) => duration(&format!("[gate.checks.{name}] timeout"), t)?,
                    None => timeout,
                },
                needs_services: c
                    .services
                    .unwrap_or(matches!(kind, Kind::Test | Kind::Migrations)),
                env,
                dir,
                origin: "davit.toml".into(),
            };
            if !order.contains(name) {
                order.push(name.clone());
            }
            checks.insert(name.clone(), (check, missing));
        }

        // Inputs override both.
        for line in args
            .checks
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
        {
            let Some((name, cmd)) = split_check_input(line) else {
                return Err(Failure::bad_input(
                    format!("check input {line:?} is not \"name: command\""),
                    "write one check per line as name: command, e.g. lint: ruff check .",
                ));
            };
            valid_name("check name", name)?;
            let kind = checks
                .get(name)
                .map_or_else(|| Kind::from_name(name), |e| e.0.kind);
            let check = Check {
                name: name.to_string(),
                kind,
                run: Run::Shell(cmd.to_string()),
                timeout: checks.get(name).map_or(timeout, |e| e.0.timeout),
                needs_services: matches!(kind, Kind::Test | Kind::Migrations),
                env: BTreeMap::new(),
                dir: root.clone(),
                origin: "input".into(),
            };
            if !order.iter().any(|o| o == name) {
                order.push(name.to_string());
            }
            checks.insert(name.to_string(), (check, None));
        }

        for (list, what) in [(&args.only, "only"), (&args.skip, "skip")] {
            for n in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                if !checks.contains_key(n) {
                    return Err(Failure::bad_input(
                        format!("{what}: there is no check named {n:?}"),
                        format!(
                            "known checks: {}",
                            order
                                .iter()
                                .filter(|o| checks.contains_key(*o))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        let only: Vec<&str> = args
            .only
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let skip: Vec<&str> = args
            .skip
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();

        let mut final_checks = Vec::new();
        let mut missing = Vec::new();
        order.dedup();
        for name in order {
            if (!only.is_empty() && !only.contains(&name.as_str())) || skip.contains(&name.as_str())
            {
                continue;
            }
            if let Some((check, miss)) = checks.remove(&name) {
                match miss {
                    Some(m) => missing.push(m),
                    None => {
                        if let Some(prog) = check.run.program()
                            && preset::locate(&prog, &check.dir, path_env).is_none()
                        {
                            missing.push(Missing {
                                tool: prog.clone(),
                                check: check.name.clone(),
                                install: preset::install_hint(&prog),
                            });
                        }
                    }
                }
                final_checks.push(check);
            }
        }

        let mut services = Vec::new();
        let service_inputs = if args.services.iter().any(|s| !s.trim().is_empty()) {
            &args.services
        } else {
            &file.services
        };
        for s in service_inputs
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            services.push(Service::parse(s)?);
        }

        let globs = |a: &[String], f: &[String]| -> Vec<String> {
            let a: Vec<String> = a
                .iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if a.is_empty() { f.to_vec() } else { a }
        };

        Ok(Settings {
            root,
            out_dir,
            checks: final_checks,
            parallel,
            fail_fast: args.fail_fast.or(file.fail_fast).unwrap_or(false),
            junit: globs(&args.junit, &file.junit),
            junit_optional,
            merge_reruns: args.merge_reruns.or(file.merge_reruns).unwrap_or(false),
            coverage: globs(&args.coverage, &file.coverage),
            coverage_optional,
            coverage_min: percent("coverage_min", args.coverage_min.or(file.coverage_min))?,
            coverage_min_file: percent(
                "coverage_min_file",
                args.coverage_min_file.or(file.coverage_min_file),
            )?,
            services,
            service_timeout,
            json: args.json.unwrap_or(false),
            notes,
            missing,
            presets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn check_inputs_split_at_the_first_separator() {
        assert_eq!(
            split_check_input("test: FOO=1 pytest -k 'a:b'"),
            Some(("test", "FOO=1 pytest -k 'a:b'"))
        );
        assert_eq!(
            split_check_input("lint=ruff check ."),
            Some(("lint", "ruff check ."))
        );
        assert_eq!(split_check_input("lint"), None);
        assert_eq!(split_check_input("lint:"), None);
    }

    #[test]
    fn programs_are_found_for_simple_shell_commands_only() {
        assert_eq!(
            Run::Shell("ruff check .".into()).program().as_deref(),
            Some("ruff")
        );
        assert_eq!(Run::Shell("cd x && make".into()).program(), None);
        assert_eq!(Run::Shell("FOO=1 make".into()).program(), None);
        assert_eq!(
            Run::Argv(vec!["cargo".into(), "fmt".into()])
                .program()
                .as_deref(),
            Some("cargo")
        );
    }

    fn resolve_in(dir: &Path, toml: &str, args: Args) -> Result<Settings, Failure> {
        std::fs::write(dir.join("davit.toml"), toml).unwrap();
        let args = Args {
            dir: dir.to_path_buf(),
            out_dir: Some(dir.join("out")),
            ..args
        };
        Settings::resolve(&args, Some(std::ffi::OsStr::new("/usr/bin:/bin")))
    }

    #[test]
    fn toml_and_inputs_layer_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = resolve_in(
            dir.path(),
            r#"
[other]
ignored = true
[gate]
preset = "none"
timeout = "2m"
coverage_min = 75
[gate.checks.lint]
run = ["sh", "-c", "true"]
[gate.checks.unit-test]
run = "sh -c 'exit 0'"
kind = "test"
timeout = "5s"
"#,
            Args {
                checks: vec!["lint: sh -c 'exit 3'".into(), "".into()],
                ..Args::default()
            },
        )
        .unwrap();
        let names: Vec<_> = s.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["lint", "unit-test"]);
        assert_eq!(s.checks[0].run, Run::Shell("sh -c 'exit 3'".into()));
        assert_eq!(s.checks[0].origin, "input");
        assert_eq!(s.checks[0].timeout, Duration::from_secs(120));
        assert_eq!(s.checks[1].timeout, Duration::from_secs(5));
        assert!(s.checks[1].needs_services);
        assert_eq!(s.coverage_min, Some(75.0));
        assert!(s.missing.is_empty());
    }

    #[test]
    fn config_mistakes_are_bad_input_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        for (toml, args) in [
            ("[gate]\ntimout = \"1m\"\n", Args::default()),
            ("[gate]\ntimeout = \"soon\"\n", Args::default()),
            ("[gate]\ncoverage_min = 120\n", Args::default()),
            ("[gate]\npreset = \"cobol\"\n", Args::default()),
            ("[gate.checks.Lint]\nrun = \"x\"\n", Args::default()),
            ("[gate.checks.e2e]\ntimeout = \"1m\"\n", Args::default()),
            ("[gate\n", Args::default()),
            (
                "[gate]\npreset = \"none\"\n",
                Args {
                    checks: vec!["no separator".into()],
                    ..Args::default()
                },
            ),
            (
                "[gate]\npreset = \"none\"\nservices = [\"http://x\"]\n",
                Args::default(),
            ),
        ] {
            let err = resolve_in(dir.path(), toml, args).unwrap_err();
            assert_eq!(err.exit, davit_core::Exit::BadInput, "{toml}: {err}");
            assert!(err.hint.is_some(), "{toml}: {err}");
        }
    }

    #[test]
    fn missing_tools_are_collected_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let s = resolve_in(
            dir.path(),
            "[gate]\npreset = \"none\"\n[gate.checks.lint]\nrun = \"definitely-not-a-tool-xyz .\"\n",
            Args::default(),
        )
        .unwrap();
        assert_eq!(s.missing.len(), 1);
        assert_eq!(s.missing[0].tool, "definitely-not-a-tool-xyz");
    }
}
