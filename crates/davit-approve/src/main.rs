//! `davit-approve`: the approval gate in front of production. All logic is in the library.

use std::process::ExitCode;

use clap::Parser;
use davit_approve::cli::{Args, run};
use davit_gha::Gha;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAVIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let gha = Gha::from_env();
    // T07: no approval (and so no production deploy after it) for a fork's run or a pull
    // request head checked out under pull_request_target.
    if let Err(f) = davit_gha::trust::guard("approve a release", &[]) {
        let _ = gha.set_output("approved", "false");
        return davit_gha::finish(Err(f));
    }
    runtime.block_on(run(args, &gha)).into()
}
