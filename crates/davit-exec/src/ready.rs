//! Readiness of containers that serve no HTTP: workers, schedulers, databases.
//!
//! The web process proves itself through HTTP; a Celery worker or PostgreSQL cannot, so a deploy
//! that moves them needs another proof before it stops the old ones: Docker's health check, a
//! command run in the container, or the container staying up for a while. Whatever the check, a
//! container that exits or restarts meanwhile fails the wait at once with its last log lines, so a
//! crash-looping worker is a failed deploy (and a revert), not a timeout a minute later.

use crate::Executor;
use davit_core::{Cmd, ContainerReady, ReadyCheck};
use std::time::{Duration, Instant};

/// What `docker inspect` says of a container, in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    running: bool,
    started_at: String,
    restarts: u32,
    /// `healthy`, `starting`, `unhealthy`, or `none` without a health check.
    health: String,
}

const FORMAT: &str = "{{.State.Running}}|{{.State.StartedAt}}|{{.RestartCount}}|{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";

fn parse_state(s: &str) -> Option<State> {
    let mut it = s.trim().split('|');
    Some(State {
        running: it.next()? == "true",
        started_at: it.next()?.to_string(),
        restarts: it.next()?.parse().ok()?,
        health: it.next()?.to_string(),
    })
}

async fn state(exec: &dyn Executor, container: &str) -> Result<State, String> {
    let c = Cmd::new("docker")
        .args(["inspect", "--format", FORMAT, container])
        .timeout(Duration::from_secs(30));
    let o = exec.run(&c).await.map_err(|e| e.to_string())?;
    if !o.success() {
        return Err(format!(
            "container {container} is gone: {}",
            o.stderr.trim()
        ));
    }
    parse_state(&o.stdout)
        .ok_or_else(|| format!("cannot read the state of {container}: {:?}", o.stdout))
}

async fn last_logs(exec: &dyn Executor, container: &str) -> String {
    let c = Cmd::new("docker")
        .args(["logs", "--tail", "15", container])
        .timeout(Duration::from_secs(30));
    match exec.run(&c).await {
        Ok(o) => {
            let text = format!("{}{}", o.stdout, o.stderr);
            let text = text.trim();
            if text.is_empty() {
                String::new()
            } else {
                format!("\nlast log lines of {container}:\n{text}")
            }
        }
        Err(_) => String::new(),
    }
}

/// Wait until the container is ready, or fail with why (and its last log lines).
pub async fn wait_ready(exec: &dyn Executor, r: &ContainerReady) -> Result<(), String> {
    let started = Instant::now();
    let first = state(exec, &r.container).await?;
    loop {
        let now = state(exec, &r.container).await?;
        if !now.running || now.restarts != first.restarts || now.started_at != first.started_at {
            return Err(format!(
                "container {} stopped or restarted while davit waited for it to be ready{}",
                r.container,
                last_logs(exec, &r.container).await
            ));
        }
        let last;
        match &r.check {
            ReadyCheck::Healthy => match now.health.as_str() {
                "healthy" => return Ok(()),
                "none" => {
                    return Err(format!(
                        "container {} has no health check\nhint: add a healthcheck to its compose service or image, or use ready = {{ command = [...] }} or {{ up_secs = N }}",
                        r.container
                    ));
                }
                other => last = format!("health {other}"),
            },
            ReadyCheck::Command { run } => {
                let c = Cmd::new("docker")
                    .args(["exec", &r.container])
                    .args(run.iter().cloned())
                    .timeout(r.interval.max(Duration::from_secs(10)));
                match exec.run(&c).await {
                    Ok(o) if o.success() => return Ok(()),
                    Ok(o) => last = format!("exit {}: {}", o.status, o.stderr.trim()),
                    Err(e) => last = e.to_string(),
                }
            }
            ReadyCheck::UpFor { secs } => {
                // A container whose image has a health check must also pass it: "up" alone
                // would call a database ready before it accepts connections.
                let health_ok = matches!(now.health.as_str(), "none" | "healthy");
                if started.elapsed() >= Duration::from_secs(*secs) && health_ok {
                    return Ok(());
                }
                last = format!(
                    "up {}s of {secs}s, health {}",
                    started.elapsed().as_secs(),
                    now.health
                );
            }
        }
        if started.elapsed() >= r.deadline {
            return Err(format!(
                "container {} was not ready within {}s ({last}){}",
                r.container,
                r.deadline.as_secs(),
                last_logs(exec, &r.container).await
            ));
        }
        tokio::time::sleep(r.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Output, Recording};

    fn out(s: &str) -> Output {
        Output {
            status: 0,
            stdout: s.into(),
            stderr: String::new(),
        }
    }

    fn wait(check: ReadyCheck, deadline_ms: u64) -> ContainerReady {
        ContainerReady {
            container: "w1".into(),
            check,
            interval: Duration::from_millis(10),
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    #[tokio::test]
    async fn healthy_passes_and_no_health_check_names_the_fix() {
        let rec = Recording::new("h").with_output("docker inspect", out("true|t0|0|healthy\n"));
        wait_ready(&rec, &wait(ReadyCheck::Healthy, 1000))
            .await
            .unwrap();
        let rec = Recording::new("h").with_output("docker inspect", out("true|t0|0|none\n"));
        let e = wait_ready(&rec, &wait(ReadyCheck::Healthy, 1000))
            .await
            .unwrap_err();
        assert!(
            e.contains("has no health check") && e.contains("hint:"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_stopped_container_fails_at_once_with_its_logs() {
        let rec = Recording::new("h")
            .with_output("docker inspect", out("false|t0|0|starting\n"))
            .with_output("docker logs", out("Traceback: ImportError\n"));
        let e = wait_ready(&rec, &wait(ReadyCheck::UpFor { secs: 60 }, 60_000))
            .await
            .unwrap_err();
        assert!(
            e.contains("stopped or restarted") && e.contains("ImportError"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failing_command_times_out_with_its_last_answer() {
        let rec = Recording::new("h")
            .with_output("docker inspect", out("true|t0|0|none\n"))
            .with_output(
                "docker exec",
                Output {
                    status: 1,
                    stdout: String::new(),
                    stderr: "no nodes replied".into(),
                },
            );
        let e = wait_ready(
            &rec,
            &wait(
                ReadyCheck::Command {
                    run: vec!["celery".into(), "inspect".into(), "ping".into()],
                },
                50,
            ),
        )
        .await
        .unwrap_err();
        assert!(
            e.contains("not ready within") && e.contains("no nodes replied"),
            "{e}"
        );
        assert!(
            rec.log()
                .iter()
                .any(|l| l == "run docker exec w1 celery inspect ping"),
            "{:?}",
            rec.log()
        );
    }

    #[tokio::test]
    async fn up_for_also_waits_for_an_image_health_check() {
        let rec = Recording::new("h").with_output("docker inspect", out("true|t0|0|starting\n"));
        let e = wait_ready(&rec, &wait(ReadyCheck::UpFor { secs: 0 }, 50))
            .await
            .unwrap_err();
        assert!(e.contains("health starting"), "{e}");
    }

    #[tokio::test]
    async fn up_for_waits_its_time() {
        let rec = Recording::new("h").with_output("docker inspect", out("true|t0|0|none\n"));
        let t = Instant::now();
        wait_ready(&rec, &wait(ReadyCheck::UpFor { secs: 0 }, 1000))
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(
            parse_state("true|2026-01-01T00:00:00Z|2|unhealthy"),
            Some(State {
                running: true,
                started_at: "2026-01-01T00:00:00Z".into(),
                restarts: 2,
                health: "unhealthy".into()
            })
        );
    }
}
