//! The umbrella CLI: what a person types on a laptop, and what the deploy actions run.
//!
//! Each subcommand is a thin layer: load `davit.toml`, resolve the environment into a `Target`,
//! call the library (`davit-deploy`, `davit-verify`), print the timeline on stderr and data on
//! stdout, and end with the documented exit code. `davit demo` drives the same library calls on a
//! bundled demo app so a new user sees the whole release cycle on their own Docker engine.

pub mod cli;
pub mod commands;
pub mod demo;

use davit_core::{Exit, Failure};

pub async fn run(cli: cli::Cli) -> Result<Exit, Failure> {
    use cli::Command::*;
    match cli.command {
        Deploy(a) => commands::deploy(&cli.global, a).await,
        Rollback(a) => commands::rollback(&cli.global, a).await,
        Verify(a) => commands::verify(&cli.global, a).await,
        Releases(a) => commands::releases(&cli.global, a).await,
        Lock(a) => commands::lock(&cli.global, a).await,
        Backup(a) => commands::backup(&cli.global, a).await,
        Demo(a) => demo::run(a).await,
    }
}
