//! `davit-verify`: the verify action's binary. See the library docs.

use clap::Parser;
use davit_core::{Exit, Failure};
use davit_deploy::Target;
use davit_exec::Timeline;
use davit_gha::Gha;
use std::path::PathBuf;
use std::time::Duration;

// `--version` is the release to verify (as in every davit command), so clap's own version flag
// is off.
#[derive(Parser)]
#[command(
    about = "Verify the live release and roll back when it is bad",
    disable_version_flag = true
)]
struct Args {
    /// Environment from davit.toml.
    #[arg(env = "DAVIT_ENVIRONMENT")]
    environment: String,
    #[arg(long, env = "DAVIT_CONFIG", default_value = "davit.toml")]
    config: PathBuf,
    /// The version that should be live (default: whatever is live).
    #[arg(long, env = "DAVIT_VERSION")]
    version: Option<String>,
    /// Watch window in seconds (overrides davit.toml).
    #[arg(long, env = "DAVIT_WATCH_SECS")]
    watch_secs: Option<u64>,
    /// Roll back automatically when verification fails (overrides davit.toml).
    #[arg(long, env = "DAVIT_ROLLBACK")]
    rollback: Option<bool>,
    /// Prometheus base URL for metric analysis (enables it; overrides [analysis.prometheus]).
    #[arg(long, env = "DAVIT_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Golden-signal templates, comma-separated: error-rate, p95-latency, request-rate.
    #[arg(long, env = "DAVIT_ANALYSIS_TEMPLATES", value_delimiter = ',')]
    templates: Option<Vec<String>>,
    /// Analysis interval, e.g. 10s.
    #[arg(long, env = "DAVIT_ANALYSIS_INTERVAL")]
    analysis_interval: Option<String>,
    /// Failed measurements tolerated before rolling back (0 = the first one rolls back).
    #[arg(long, env = "DAVIT_ANALYSIS_FAILURE_LIMIT")]
    failure_limit: Option<u32>,
    /// What an inconclusive analysis does: rollback, hold or fail.
    #[arg(long, env = "DAVIT_ANALYSIS_INCONCLUSIVE")]
    inconclusive: Option<String>,
    /// Highest acceptable 5xx ratio (default 0.05).
    #[arg(long, env = "DAVIT_ERROR_RATE_MAX")]
    error_rate_max: Option<f64>,
    /// Highest acceptable p95 latency in seconds (default 2).
    #[arg(long, env = "DAVIT_P95_LATENCY_MAX_SECS")]
    p95_latency_max_secs: Option<f64>,
    /// Smoke-test command run with BASE_URL set (split on spaces; no shell).
    #[arg(long, env = "DAVIT_SMOKE_COMMAND")]
    smoke_command: Option<String>,
}

impl Args {
    fn overrides(&self) -> davit_analysis::Overrides {
        davit_analysis::Overrides {
            prometheus_url: self.prometheus_url.clone(),
            templates: self.templates.clone(),
            interval: self.analysis_interval.clone(),
            failure_limit: self.failure_limit,
            inconclusive: self.inconclusive.clone(),
            error_rate_max: self.error_rate_max,
            p95_latency_max_secs: self.p95_latency_max_secs,
            smoke_command: self
                .smoke_command
                .as_ref()
                .map(|c| c.split_whitespace().map(String::from).collect()),
            ..Default::default()
        }
    }
}

fn main() -> std::process::ExitCode {
    davit_gha::drop_empty_inputs();
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    davit_gha::finish(runtime.block_on(run(args)))
}

async fn run(args: Args) -> Result<Exit, Failure> {
    // T07: verify may roll production back; refuse a fork's code or a pull request head checked
    // out under pull_request_target (davit.toml's folder is code too: smoke commands, hooks).
    davit_gha::trust::guard(
        "verify (and possibly roll back) a release",
        &[davit_gha::trust::folder_of(&args.config)],
    )?;
    let cfg = davit_config::Config::load(&args.config)
        .map_err(|e| Failure::new(Exit::BadInput, e.to_string()))?;
    let target = Target::resolve(&cfg, &args.environment, &|k| std::env::var(k).ok())?;
    let mut opts = davit_verify::VerifyOptions::from_target(&target);
    opts.analysis = davit_verify::analysis_spec(&cfg, &args.overrides())?;
    opts.version = args.version;
    if let Some(w) = args.watch_secs {
        opts.watch = Duration::from_secs(w);
    }
    if let Some(r) = args.rollback {
        opts.rollback = r;
    }
    let timeline = Timeline::default();
    let fleet = davit_deploy::fleet::connect(&target).await?;
    let verdict = davit_verify::verify_fleet(&fleet, &opts, &timeline).await?;
    verdict.publish(&Gha::from_env());
    Ok(verdict.exit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
