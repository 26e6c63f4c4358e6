//! `davit-bench`: measures the two things users choose a deploy tool for, "no downtime" and
//! "fast, safe rollback", next to what they would otherwise run (`docker compose up -d`, and
//! `docker compose down && up -d`), on this machine's Docker and nginx.
//!
//! The deploys run in this process through the same library calls `davit deploy`, `davit
//! rollback` and `davit verify` make; the load comes from a second copy of this binary (the
//! hidden `load` subcommand) so that nothing the deployer does can pause it. The figures are
//! computed afterwards from every request's record and are printed as the markdown table that
//! docs/BENCHMARKS.md publishes. Nothing here asserts a timing: the numbers are reported, and
//! the reader compares them with the targets.
//!
//! `davit-bench stack` does the same for a whole application (the Django + Celery example: web,
//! worker, beat, PostgreSQL, Redis), where losing a queued task counts as much as failing a
//! request (see `stack.rs`).

mod load;
mod report;
mod sandbox;
mod scenarios;
mod stack;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "davit-bench",
    version,
    about = "Requests lost and time to switch, detect and restore: davit blue-green vs docker compose, under constant load",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The load generator (started by the benchmark itself as a child process).
    #[command(hide = true)]
    Load {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 8)]
        connections: u16,
        #[arg(long)]
        out: PathBuf,
        /// Stop after this long even if the parent never closes stdin.
        #[arg(long, default_value_t = 3600)]
        max_secs: u64,
        /// A request without an answer after this long counts as failed.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// Write into idle keep-alive connections without checking whether the server closed them.
        #[arg(long)]
        no_idle_check: bool,
    },
    /// The whole Django + Celery example stack (web, worker, beat, PostgreSQL, Redis) deployed
    /// and rolled back under load: davit next to `docker-compose -f docker-compose.prod.yml up -d`.
    Stack {
        /// Deploy + rollback cycles of each side.
        #[arg(long, default_value_t = 5)]
        cycles: u32,
        /// Requests per second of `GET /health` (open loop).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        #[arg(long, default_value_t = 4)]
        connections: u16,
        /// One task enqueued through the web every this many milliseconds.
        #[arg(long, default_value_t = 200)]
        task_every_ms: u64,
        /// Only davit, or only the compose baseline.
        #[arg(long, value_enum)]
        only: Option<StackSide>,
        /// Print JSON instead of the markdown table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum StackSide {
    Davit,
    Compose,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    BlueGreen,
    Detection,
    FalseRollbacks,
    ComposeUp,
    ComposeDownUp,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Deploy+rollback cycles of blue-green.
    #[arg(long, env = "DAVIT_BENCH_CYCLES", default_value_t = 20)]
    cycles: u32,
    /// Deploy+rollback cycles of each compose baseline (default: --cycles).
    #[arg(long, env = "DAVIT_BENCH_BASELINE_CYCLES")]
    baseline_cycles: Option<u32>,
    /// Releases that go bad, each caught and rolled back by verify.
    #[arg(long, env = "DAVIT_BENCH_DETECTIONS", default_value_t = 10)]
    detections: u32,
    /// Requests per second sent by the load generator (open loop).
    #[arg(long, env = "DAVIT_BENCH_RATE", default_value_t = 200.0)]
    rate: f64,
    /// Keep-alive connections the rate is spread over.
    #[arg(long, env = "DAVIT_BENCH_CONNECTIONS", default_value_t = 8)]
    connections: u16,
    /// Time at rest after each switch (so at-rest latency has samples and switches never overlap).
    #[arg(long, default_value_t = 1000)]
    rest_ms: u64,
    /// verify's probe interval for the detection scenario.
    #[arg(long, default_value_t = 500)]
    verify_interval_ms: u64,
    /// verify's failures in a row before it rolls back.
    #[arg(long, default_value_t = 3)]
    failure_limit: u32,
    /// The bad release's FAULT_FAIL_AFTER_SECS (must leave time for its health gate and verify's
    /// health checks, so that the watch window is what catches it).
    #[arg(long, default_value_t = 8.0)]
    bad_after_secs: f64,
    /// How long verify watches each healthy release with 1 % errors (false-rollbacks).
    #[arg(long, default_value_t = 5)]
    noisy_watch_secs: u64,
    /// Make the load generator a naive client that writes into idle keep-alive connections
    /// without checking whether the server has closed them (browsers, curl and pooled clients
    /// check). Shows the cost of nginx closing idle client connections on every reload.
    #[arg(long)]
    no_idle_check: bool,
    /// Extra nginx directives for blue-green's public `location /` (davit's proxy.snippet), e.g.
    /// "keepalive_timeout 0;" to see what closing client connections after each answer changes.
    #[arg(long)]
    proxy_snippet: Option<String>,
    /// Smoke run: 3 cycles, 2 baseline cycles, 1 detection.
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// A prebuilt static davit-demo-app instead of building it with cargo.
    #[arg(long)]
    app_bin: Option<PathBuf>,
    /// Keep every scenario's raw request records here (`<scenario>.jsonl`), for investigation.
    #[arg(long)]
    records: Option<PathBuf>,
    /// Print JSON (every figure, every switch) instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Show each plan's timeline on stderr.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = match cli.command {
        Some(Command::Load {
            url,
            rate,
            connections,
            out,
            max_secs,
            timeout_ms,
            no_idle_check,
        }) => rt.block_on(load::run(load::LoadArgs {
            url,
            rate,
            connections,
            out,
            max_secs,
            timeout: Duration::from_millis(timeout_ms),
            idle_check: !no_idle_check,
        })),
        Some(Command::Stack {
            cycles,
            rate,
            connections,
            task_every_ms,
            only,
            json,
        }) => {
            let a = stack::StackArgs {
                cycles,
                rate,
                connections,
                task_every: Duration::from_millis(task_every_ms),
                davit: only != Some(StackSide::Compose),
                compose: only != Some(StackSide::Davit),
            };
            rt.block_on(async {
                let outcomes = stack::run(a.clone()).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&outcomes)?);
                } else {
                    println!("{}", stack::markdown(&outcomes, &a));
                }
                anyhow::Ok(())
            })
        }
        None => rt.block_on(bench(cli.run)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

async fn bench(a: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.rate > 0.0 && a.rate <= 5000.0,
        "--rate must be in (0, 5000]"
    );
    anyhow::ensure!(a.connections > 0, "--connections must be at least 1");
    let (cycles, baseline_cycles, detections) = if a.quick {
        (3, 2, 1)
    } else {
        (
            a.cycles,
            a.baseline_cycles.unwrap_or(a.cycles),
            a.detections,
        )
    };
    let ctx = scenarios::Ctx {
        cycles,
        baseline_cycles,
        detections,
        bad_after_secs: a.bad_after_secs,
        rate: a.rate,
        connections: a.connections,
        rest: Duration::from_millis(a.rest_ms),
        idle_check: !a.no_idle_check,
        records: a.records.clone(),
        settings: sandbox::Settings {
            health_interval_ms: 250,
            health_consecutive: 3,
            verify_interval_ms: a.verify_interval_ms,
            failure_limit: a.failure_limit,
            proxy_snippet: a.proxy_snippet.clone(),
        },
        verbose: a.verbose,
        noisy_watch_secs: a.noisy_watch_secs,
        traffic_limits:
            davit_verify::traffic::Limits::from_config(&davit_config::Verify::default()).describe(),
    };
    scenarios::prerequisites().await?;
    let mut machine = sandbox::Machine::describe();
    scenarios::build_images(a.app_bin.clone(), a.bad_after_secs).await?;
    let wanted = |s: Scenario| a.only.is_empty() || a.only.contains(&s);
    let mut outcomes = Vec::new();
    if wanted(Scenario::BlueGreen) {
        outcomes.push(scenarios::blue_green(&ctx).await?);
    }
    if wanted(Scenario::Detection) {
        outcomes.push(scenarios::detection(&ctx).await?);
    }
    if wanted(Scenario::FalseRollbacks) {
        outcomes.push(
            scenarios::false_rollbacks(&ctx, Duration::from_secs(ctx.noisy_watch_secs)).await?,
        );
    }
    if wanted(Scenario::ComposeUp) {
        outcomes.push(scenarios::compose_up(&ctx).await?);
    }
    if wanted(Scenario::ComposeDownUp) {
        outcomes.push(scenarios::compose_down_up(&ctx).await?);
    }
    machine.load_at_end = sandbox::load_average();
    let command = report::command_line();
    if a.json {
        let doc = report::Json {
            command,
            machine,
            rate: ctx.rate,
            connections: ctx.connections,
            settings: report::SettingsJson::of(&ctx),
            outcomes,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{}", report::markdown(&outcomes, &machine, &ctx, &command));
    }
    Ok(())
}
