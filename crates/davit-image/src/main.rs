//! `davit-image`: thin binary over [`davit_image::run`]; see the crate docs for what it does.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    davit_gha::drop_empty_inputs();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAVIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = davit_image::run::Cli::parse();
    davit_image::run::main_with(cli).into()
}
