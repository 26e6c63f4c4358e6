//! Waiting for nginx workers of an earlier configuration to finish their requests.
//!
//! After `nginx -s reload` the master starts workers with the new configuration, and only then
//! (about 100 ms later, longer on a loaded host) tells the old ones to stop accepting and finish
//! what they hold; those go on sending their requests to the upstream of the old configuration.
//! A plan that stops or replaces that upstream right away cuts them: T49 lost 2 requests that
//! way when a run killed just after its reload was followed at once by one that replaced the
//! color nginx had just left. So before such a step the plan waits here until the master has no
//! more than one generation of workers and none of them is shutting down.
//!
//! The workers are read from `/proc` through the executor's file reads (so it works over SSH
//! too): the master's children (`/proc/<pid>/task/<pid>/children`) and each child's title in
//! `/proc/<child>/cmdline`, which nginx sets to `nginx: worker process` and, once told to stop,
//! `nginx: worker process is shutting down`. No pid file or no master: nothing to wait for. A host
//! without those `/proc` files (not Linux) cannot say; the wait then ends at once.

use crate::Executor;
use davit_core::ProxyDrain;
use std::path::Path;
use std::time::Instant;

/// What the master's children say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workers {
    /// One generation, none shutting down (or no nginx at all).
    Settled,
    /// Workers of an earlier configuration still run: how many.
    Draining(usize),
    /// The host cannot say (no `/proc` children file).
    Unknown,
}

/// The titles of a master's children, classified.
fn classify(titles: &[String], workers: u32) -> Workers {
    let shutting = titles
        .iter()
        .filter(|t| t.contains("shutting down"))
        .count();
    let running = titles
        .iter()
        .filter(|t| t.contains("worker process") && !t.contains("shutting down"))
        .count();
    // Until the master tells the old generation to stop, both answer as "worker process".
    let extra = running.saturating_sub(workers.max(1) as usize);
    match shutting + extra {
        0 => Workers::Settled,
        n => Workers::Draining(n),
    }
}

async fn read_text(exec: &dyn Executor, path: &Path) -> Option<String> {
    exec.read_file(path)
        .await
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

async fn workers(exec: &dyn Executor, d: &ProxyDrain) -> Workers {
    let Some(pid) = read_text(exec, &d.pid_file).await else {
        return Workers::Settled;
    };
    let pid = pid.trim();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return Workers::Settled;
    }
    let children = format!("/proc/{pid}/task/{pid}/children");
    let Some(children) = read_text(exec, Path::new(&children)).await else {
        // No such master (it exited) or a host without the file.
        return match read_text(exec, Path::new(&format!("/proc/{pid}/stat"))).await {
            Some(_) => Workers::Unknown,
            None => Workers::Settled,
        };
    };
    let mut titles = Vec::new();
    for child in children.split_whitespace() {
        // A child that exited between the two reads has nothing left to finish.
        if let Some(t) = read_text(exec, Path::new(&format!("/proc/{child}/cmdline"))).await {
            titles.push(t.replace('\0', " "));
        }
    }
    classify(&titles, d.workers)
}

/// Wait until `d`'s nginx has no workers of an earlier configuration, or say how many are left
/// when the deadline passes.
pub async fn wait_drained(exec: &dyn Executor, d: &ProxyDrain) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match workers(exec, d).await {
            Workers::Settled | Workers::Unknown => return Ok(()),
            Workers::Draining(n) => {
                if started.elapsed() + d.interval > d.deadline {
                    return Err(format!(
                        "{n} nginx worker(s) of an earlier configuration still held connections after {}s (long requests or websockets)",
                        d.deadline.as_secs()
                    ));
                }
            }
        }
        tokio::time::sleep(d.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_generation_is_settled() {
        assert_eq!(
            classify(&titles(&["nginx: worker process"]), 1),
            Workers::Settled
        );
        assert_eq!(classify(&[], 1), Workers::Settled);
        assert_eq!(
            classify(
                &titles(&["nginx: worker process", "nginx: cache manager process"]),
                1
            ),
            Workers::Settled
        );
    }

    #[test]
    fn old_workers_are_draining_until_they_exit() {
        // Right after the reload, before the master told the old worker to stop.
        assert_eq!(
            classify(
                &titles(&["nginx: worker process", "nginx: worker process"]),
                1
            ),
            Workers::Draining(1)
        );
        assert_eq!(
            classify(
                &titles(&[
                    "nginx: worker process is shutting down",
                    "nginx: worker process"
                ]),
                1
            ),
            Workers::Draining(1)
        );
    }
}
