//! `davit-fake-github`: the fake GitHub API as a process, for end-to-end runs under `act`.
//!
//! Prints its URL on the first line of stdout (scripts read it and export `GITHUB_API_URL`),
//! then serves until killed. Scripting goes through the `/_fake/...` control API.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use davit_fake_github::{State, serve};

#[derive(Parser)]
#[command(about = "A fake GitHub REST API for davit's tests")]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "DAVIT_FAKE_GITHUB_PORT", default_value_t = 0)]
    port: u16,
    /// Address to bind. Keep 127.0.0.1 unless a container must reach it.
    #[arg(long, env = "DAVIT_FAKE_GITHUB_BIND", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Accept only this token (default: any non-empty token).
    #[arg(long, env = "DAVIT_FAKE_GITHUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Login that issues and comments created through the API belong to.
    #[arg(
        long,
        env = "DAVIT_FAKE_GITHUB_USER",
        default_value = "github-actions[bot]"
    )]
    user: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(SocketAddr::new(args.bind, args.port)).await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}:{}: {e}", args.bind, args.port);
            return ExitCode::from(3);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    let mut state = State::new();
    state.expected_token = args.token;
    state.token_user = args.user;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "http://{addr}");
    let _ = out.flush();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match serve(listener, Arc::new(Mutex::new(state)), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
