//! Command-line and environment syntax (no defaults or merging here; see [`crate::config`]).
//!
//! Every flag has a `DAVIT_GATE_*` variable so that `actions/gate/action.yml` can pass action
//! inputs through `env:` and never interpolate them into a shell script. Empty variables (an
//! input the user did not set) count as absent.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{CommandFactory, FromArgMatches, Parser};

/// Run the lint-and-test gate: named checks in parallel, then JUnit and coverage reports.
#[derive(Debug, Clone, Parser, Default)]
#[command(name = "davit-gate", version, about, long_about = None)]
pub struct Args {
    /// Project directory the checks run in.
    #[arg(long, env = "DAVIT_GATE_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// davit.toml to read the `[gate]` table from (default: `<dir>/davit.toml` when it exists).
    #[arg(long, env = "DAVIT_GATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Presets: auto, none, or a comma list of python, node, rust.
    #[arg(long, env = "DAVIT_GATE_PRESET")]
    pub preset: Option<String>,

    /// Add or replace a check: "name: command" (run with sh -c). Repeat, or one per line in the
    /// variable.
    #[arg(long = "check", env = "DAVIT_GATE_CHECKS", value_delimiter = '\n')]
    pub checks: Vec<String>,

    /// Run only these checks (comma-separated names).
    #[arg(long, env = "DAVIT_GATE_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Skip these checks (comma-separated names).
    #[arg(long, env = "DAVIT_GATE_SKIP", value_delimiter = ',')]
    pub skip: Vec<String>,

    /// Checks run at the same time (default: number of CPUs).
    #[arg(long, env = "DAVIT_GATE_PARALLEL")]
    pub parallel: Option<usize>,

    /// Stop the other checks as soon as one fails.
    #[arg(long, env = "DAVIT_GATE_FAIL_FAST", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub fail_fast: Option<bool>,

    /// Default timeout per check, e.g. 90s, 15m, 1h (default 30m).
    #[arg(long, env = "DAVIT_GATE_TIMEOUT")]
    pub timeout: Option<String>,

    /// JUnit XML reports to read after the checks (globs; repeat, or one per line / comma).
    #[arg(long, env = "DAVIT_GATE_JUNIT", value_delimiter = '\n')]
    pub junit: Vec<String>,

    /// Count repeated test cases in one report as reruns of one test (flaky when the last passed).
    #[arg(long, env = "DAVIT_GATE_MERGE_RERUNS", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub merge_reruns: Option<bool>,

    /// Coverage reports, Cobertura XML or LCOV (globs).
    #[arg(long, env = "DAVIT_GATE_COVERAGE", value_delimiter = '\n')]
    pub coverage: Vec<String>,

    /// Minimum total line coverage in percent.
    #[arg(long, env = "DAVIT_GATE_COVERAGE_MIN")]
    pub coverage_min: Option<f64>,

    /// Minimum line coverage of every single file in percent.
    #[arg(long, env = "DAVIT_GATE_COVERAGE_MIN_FILE")]
    pub coverage_min_file: Option<f64>,

    /// Services to wait for before tests: `tcp://host:port`, `postgres://[user@]host[:port][/db]`,
    /// `redis://[:password@]host[:port]`. Repeat, or one per line / comma.
    #[arg(long = "service", env = "DAVIT_GATE_SERVICES", value_delimiter = '\n')]
    pub services: Vec<String>,

    /// How long to wait for all services, e.g. 60s.
    #[arg(long, env = "DAVIT_GATE_SERVICE_TIMEOUT")]
    pub service_timeout: Option<String>,

    /// Where check logs, reports the presets ask for and gate.json go
    /// (default: `$RUNNER_TEMP/davit-gate`, else `<dir>/.davit/gate`).
    #[arg(long, env = "DAVIT_GATE_OUT_DIR")]
    pub out_dir: Option<PathBuf>,

    /// Print the result as JSON on stdout.
    #[arg(long, env = "DAVIT_GATE_JSON", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub json: Option<bool>,

    /// Only list the checks that would run (after presets and overrides), then exit.
    #[arg(long)]
    pub list: bool,

    /// More log output (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Args {
    /// Parse argv and the environment, treating empty `DAVIT_GATE_*` variables as unset: an
    /// action maps every input to a variable, and an input the user left out arrives as "".
    pub fn from_env_and_args() -> Args {
        let cmd = Args::command().mut_args(|a| {
            let empty = a
                .get_env()
                .is_some_and(|n| std::env::var_os(n).is_some_and(|v| v.is_empty()));
            if empty {
                a.env(clap::builder::Resettable::Reset)
            } else {
                a
            }
        });
        let matches = cmd.get_matches();
        Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}
