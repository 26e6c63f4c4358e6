//! The vocabulary every davit crate speaks, with no I/O of its own.
//!
//! Strategies (compose, blue-green, ...) are pure functions that return a [`Plan`]; one executor
//! (in `davit-exec`) runs it. Keeping the plan types here, free of processes and sockets, is what
//! lets `--dry-run` print exactly what would run and lets tests snapshot every strategy without
//! Docker. Secrets are a type ([`Secret`]) so that rendering a plan, a log line or an error can
//! never show one by accident, and the exit-code contract ([`Exit`]) lives here so every binary
//! agrees on what 1, 2 and 3 mean.

pub mod exit;
pub mod plan;
pub mod redact;
pub mod secret;
pub mod text;
pub mod validate;

pub use exit::{Exit, Failure};
pub use plan::{
    Action, Arg, Cmd, ContainerReady, FileBody, Plan, PlannedStep, Probe, ProbeExpect, ProxyDrain,
    ReadyCheck, Step,
};
pub use secret::Secret;
