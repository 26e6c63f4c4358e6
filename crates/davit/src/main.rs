//! `davit`: see the library docs and `davit --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    davit_gha::drop_empty_inputs();
    let cli = davit::cli::Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    davit_gha::finish(runtime.block_on(davit::run(cli)))
}
