//! `davit-gate` binary: parse arguments, run the gate, exit with its code (see the library docs).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = davit_gate::cli::Args::parse();
    davit_gate::init_logging(args.verbose);
    davit_gate::run(args).into()
}
