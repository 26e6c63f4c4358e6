//! The umbrella CLI: what a person types on a laptop, and what the deploy actions run.
//!
//! Each subcommand is a thin layer: load `davit.toml`, resolve the environment into a `Target`,
//! call the library (`davit-deploy`, `davit-verify`), print the timeline on stderr and data on
//! stdout, and end with the documented exit code. `davit demo` drives the same library calls on a
//! bundled demo app so a new user sees the whole release cycle on their own Docker engine.

pub mod cli;
pub mod commands;
pub mod demo;
pub mod demo_swarm;
pub mod services;
pub mod status;
pub mod swarm_lab;

use davit_core::{Exit, Failure};

pub async fn run(cli: cli::Cli) -> Result<Exit, Failure> {
    use cli::Command::*;
    if let Some(action) = privileged(&cli.command) {
        // T07: nothing that touches production runs for a fork's code or a pull request head
        // checked out under pull_request_target; davit.toml's folder is code too (hooks).
        davit_gha::trust::guard(action, &[davit_gha::trust::folder_of(&cli.global.config)])?;
    }
    match cli.command {
        Deploy(a) => commands::deploy(&cli.global, a).await,
        Rollback(a) => commands::rollback(&cli.global, a).await,
        Verify(a) => commands::verify(&cli.global, a).await,
        Releases(a) => commands::releases(&cli.global, a).await,
        Lock(a) => commands::lock(&cli.global, a).await,
        Backup(a) => commands::backup(&cli.global, a).await,
        Demo(a) => demo::run(a).await,
        Services(a) => services::run(&cli.global, a).await,
        Status(a) => status::run(&cli.global, a).await,
    }
}

/// What a command does to production, when it changes or reads it with credentials (the untrusted
/// trigger guard runs for these); `None` for dry runs, the ledger and lock status, and the demo.
fn privileged(command: &cli::Command) -> Option<&'static str> {
    use cli::{BackupAction, Command::*, LockAction, ServicesAction};
    match command {
        Deploy(a) if !a.dry_run => Some("deploy"),
        Rollback(a) if !a.dry_run => Some("roll back"),
        Verify(_) => Some("verify (and possibly roll back) a release"),
        Lock(a) if matches!(a.action, LockAction::Release { .. }) => Some("release a deploy lock"),
        Backup(a) => Some(match a.action {
            BackupAction::List { .. } => "list database backups",
            BackupAction::Now { .. } => "take a database backup",
            BackupAction::Restore { .. } => "restore a database backup",
        }),
        Services(a) if matches!(a.action, ServicesAction::Up { dry_run: false, .. }) => {
            Some("start services")
        }
        Deploy(_) | Rollback(_) | Lock(_) | Releases(_) | Demo(_) | Services(_) | Status(_) => None,
    }
}
