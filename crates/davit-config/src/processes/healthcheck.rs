//! A compose file's `healthcheck:` as the Docker health check davit sets on the container.
//!
//! Its own module because processes and services both take it from the compose file, and the
//! translation has rules of its own (`$$` escapes, `NONE`, durations in compose's syntax) that
//! neither resolver should repeat.

use super::rules::Problems;
use super::spec::HealthCmd;
use crate::compose_file::{self, ComposeHealthcheck, StringOrList};

pub(super) fn health_cmd(
    p: &mut Problems,
    name: &str,
    h: &ComposeHealthcheck,
) -> Option<HealthCmd> {
    if h.disable {
        return None;
    }
    let test = match h.test.as_ref()? {
        StringOrList::String(s) => {
            vec!["CMD-SHELL".to_string(), s.replace("$$", "$")]
        }
        StringOrList::List(l) => {
            let l: Vec<String> = l.iter().map(|s| s.replace("$$", "$")).collect();
            match l.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") => l,
                Some("NONE") => return None,
                _ => {
                    p.push(format!(
                        "compose service {name}: healthcheck test must start with CMD or CMD-SHELL"
                    ));
                    return None;
                }
            }
        }
    };
    let ms = |p: &mut Problems, v: Option<&str>, default: u64| -> u64 {
        match v.map(compose_file::duration) {
            None => default,
            Some(Ok(d)) => d.as_millis() as u64,
            Some(Err(e)) => {
                p.push(format!("compose service {name}: healthcheck: {e}"));
                default
            }
        }
    };
    Some(HealthCmd {
        test,
        interval_ms: ms(p, h.interval.as_deref(), 30_000),
        timeout_ms: ms(p, h.timeout.as_deref(), 30_000),
        retries: h.retries.unwrap_or(3),
        start_period_ms: ms(p, h.start_period.as_deref(), 0),
    })
}
