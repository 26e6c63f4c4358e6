//! `davit-gate` binary: parse arguments, run the gate, exit with its code (see the library docs).

fn main() -> std::process::ExitCode {
    let args = davit_gate::cli::Args::from_env_and_args();
    davit_gate::init_logging(args.verbose);
    davit_gha::finish(davit_gate::run(args))
}
