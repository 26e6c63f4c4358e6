//! Command-line syntax only; meaning lives in `commands` and the libraries.
//! Every flag also reads a `DAVIT_*` variable, which is how the actions pass their inputs.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "davit",
    version,
    about = "Ship a containerized web app and take it back when the release is bad"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Path to davit.toml.
    #[arg(
        long,
        global = true,
        env = "DAVIT_CONFIG",
        default_value = "davit.toml"
    )]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Deploy a version (image tag) to an environment.
    Deploy(DeployArgs),
    /// Roll an environment back to the previous good release (or --to a version).
    Rollback(RollbackArgs),
    /// Verify the live release; roll back when it fails.
    Verify(VerifyArgs),
    /// Show the release ledger of an environment.
    Releases(ReleasesArgs),
    /// What each process of an environment runs now (from the host), beside the ledger.
    Status(StatusArgs),
    /// Show or free the deploy lock of an environment.
    Lock(LockArgs),
    /// Verified database backups: list, take one now, restore one.
    Backup(BackupArgs),
    /// Run the whole release cycle on the bundled demo app against the local Docker engine.
    Demo(DemoArgs),
    /// Databases, caches and brokers beside the app: started once, kept across releases.
    Services(ServicesArgs),
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    #[command(subcommand)]
    pub action: ServicesAction,
}

#[derive(Subcommand, Debug)]
pub enum ServicesAction {
    /// Start the services that do not run yet (a running one is never recreated).
    Up {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What each service runs, and where it differs from the config.
    Status {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
    },
    /// The last lines of a service's log.
    Logs {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
        service: String,
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: BackupAction,
}

#[derive(Subcommand, Debug)]
pub enum BackupAction {
    /// Verified backups (newest first), and leftovers that are not backups.
    List {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
    },
    /// Take and verify a backup now (under the deploy lock).
    Now {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
    },
    /// Restore a backup into a database (refuses a non-empty one without --force).
    Restore {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
        /// Backup id from `davit backup list`.
        id: String,
        /// Database to restore into.
        #[arg(long)]
        database: String,
        /// Replace the contents of a database that already has tables.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(subcommand)]
    pub action: LockAction,
}

#[derive(Subcommand, Debug)]
pub enum LockAction {
    /// Who holds the lock, since when, from which run.
    Status {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
    },
    /// Free the lock (when its holder is dead). Prints who held it.
    Release {
        #[arg(env = "DAVIT_ENVIRONMENT")]
        environment: String,
    },
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[arg(env = "DAVIT_ENVIRONMENT")]
    pub environment: String,
    /// The image tag to deploy.
    #[arg(long, env = "DAVIT_VERSION")]
    pub version: String,
    /// Print the plan (secrets redacted) and change nothing.
    #[arg(long, env = "DAVIT_DRY_RUN")]
    pub dry_run: bool,
    /// Approval decision (JSON from davit-approve) to record with the release.
    #[arg(long, env = "DAVIT_APPROVAL_JSON")]
    pub approval_json: Option<String>,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[arg(env = "DAVIT_ENVIRONMENT")]
    pub environment: String,
    /// Roll back to this version instead of the previous good release.
    #[arg(long, env = "DAVIT_ROLLBACK_TO")]
    pub to: Option<String>,
    /// Why (recorded in the ledger).
    #[arg(long, env = "DAVIT_REASON", default_value = "manual rollback")]
    pub reason: String,
    #[arg(long, env = "DAVIT_DRY_RUN")]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(env = "DAVIT_ENVIRONMENT")]
    pub environment: String,
    /// The version that should be live.
    #[arg(long, env = "DAVIT_VERSION")]
    pub version: Option<String>,
    #[arg(long, env = "DAVIT_WATCH_SECS")]
    pub watch_secs: Option<u64>,
    #[arg(long, env = "DAVIT_NO_ROLLBACK")]
    pub no_rollback: bool,
    /// Prometheus URL for metric analysis (enables it; the rest comes from [analysis]).
    #[arg(long, env = "DAVIT_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(env = "DAVIT_ENVIRONMENT")]
    pub environment: String,
}

#[derive(Args, Debug)]
pub struct ReleasesArgs {
    #[arg(env = "DAVIT_ENVIRONMENT")]
    pub environment: String,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// The statically linked demo app binary (default: build it from this repository).
    #[arg(long, env = "DAVIT_DEMO_APP_BIN")]
    pub app_bin: Option<PathBuf>,
    /// Folder for the demo's davit.toml and state.
    #[arg(long, env = "DAVIT_DEMO_DIR", default_value = ".davit/demo")]
    pub dir: PathBuf,
    /// First of the demo's ports: proxy, blue, green = base, base+1, base+2; staging = base+10;
    /// Prometheus = base+20.
    #[arg(long, env = "DAVIT_DEMO_PORT_BASE", default_value_t = 18080)]
    pub port_base: u16,
    /// Remove the demo's containers, proxy and state, and exit.
    #[arg(long)]
    pub down: bool,
    /// The production strategy the story runs with: blue-green on this machine's engine, or
    /// swarm on a three-node Docker Swarm the demo makes on this machine (root) and removes at
    /// the end (its published port is the port base, on every node).
    #[arg(long, value_enum, default_value_t = DemoStrategy::BlueGreen)]
    pub strategy: DemoStrategy,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoStrategy {
    BlueGreen,
    Swarm,
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
