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
    // T07: registry credentials (login and push) and build secrets only for the repository's own
    // code: not for a fork's run, nor for a pull request head checked out under
    // pull_request_target (its Dockerfile could read the secrets).
    if let davit_image::run::Cmd::Run(a) = &cli.command
        && (a.push || !a.secret_files.is_empty() || !a.secret_envs.is_empty())
    {
        let mut code = vec![a.context.clone()];
        code.extend(a.dockerfile.as_deref().map(davit_gha::trust::folder_of));
        let action = if a.push {
            "push an image"
        } else {
            "build with secrets"
        };
        if let Err(f) = davit_gha::trust::guard(action, &code) {
            return davit_gha::finish(Err(f));
        }
    }
    davit_image::run::main_with(cli).into()
}
