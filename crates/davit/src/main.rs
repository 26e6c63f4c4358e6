//! `davit`: see the library docs and `davit --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    davit_gha::finish(davit::run(davit::cli::Cli::parse()).await)
}
