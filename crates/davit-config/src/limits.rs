//! Bounds on what a configuration may be: the file itself, and numbers other programs must accept.
//!
//! `--config` can point anywhere: at a FIFO (a plain read blocks forever), a device such as
//! /dev/urandom (a read never ends), a directory, or a 10 MB file whose one line an error would
//! echo whole. And a number davit passes on (a timeout nginx turns into milliseconds, a duration
//! Docker parses) that the other program rejects fails only at `nginx -t` or at `docker stack
//! deploy`, mid-deploy. Both are checked here, up front, as bad input (exit 2) naming the fix.

use crate::{Config, ConfigError};
use std::io::Read;
use std::path::Path;

/// The largest davit.toml davit reads. Real ones are a few KB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The longest excerpt of a configuration an error message quotes, per line and in all.
const MAX_EXCERPT_LINE: usize = 160;
const MAX_EXCERPT: usize = 2000;

/// nginx keeps timeouts in milliseconds in an `ngx_msec_t`, which is 32 bits wide on 32-bit
/// hosts: 2^31 - 1 ms is the longest timeout every nginx build accepts (about 24.8 days).
pub const NGINX_MAX_SECS: u64 = (i32::MAX as u64) / 1000;

/// Docker parses durations into Go's `time.Duration` (int64 nanoseconds): about 292 years.
pub const DOCKER_MAX_SECS: u64 = (i64::MAX as u64) / 1_000_000_000;

/// Read a configuration file: a regular file (a FIFO, device or directory is refused before
/// it is opened, so nothing blocks), at most [`MAX_CONFIG_BYTES`].
pub fn read_config(path: &Path) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_fifo() {
                "a FIFO (named pipe)"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        };
        return Err(fail(format!("it is {what}, not a regular file")));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "it is {} bytes; a davit configuration is at most {MAX_CONFIG_BYTES} bytes",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Bounded even if the file grows (or was swapped) after the check above.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "it is larger than {MAX_CONFIG_BYTES} bytes, the most a davit configuration may be"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A message that may quote the configuration, cut to a bounded excerpt: each line at most
/// [`MAX_EXCERPT_LINE`] characters and the whole at most [`MAX_EXCERPT`].
pub fn excerpt(message: &str) -> String {
    let mut out = String::new();
    for line in message.lines() {
        let n = line.chars().count();
        if n > MAX_EXCERPT_LINE {
            out.extend(line.chars().take(MAX_EXCERPT_LINE));
            out.push_str(&format!("… ({} more characters)", n - MAX_EXCERPT_LINE));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if out.chars().count() > MAX_EXCERPT {
            out = out.chars().take(MAX_EXCERPT).collect();
            out.push_str("…\n");
            break;
        }
    }
    davit_core::text::lines(out.trim_end()).into_owned()
}

/// Numbers davit hands to nginx and Docker, checked against what those accept.
pub fn check(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, env) in &cfg.environments {
        let f = |field: &str| format!("environments.{name}.{field}");
        let p = &env.proxy;
        if p.read_timeout_secs == 0 || p.read_timeout_secs > NGINX_MAX_SECS {
            problems.push(format!(
                "{} = {}: nginx accepts 1 to {NGINX_MAX_SECS} seconds (a timeout of 0 fails every request); e.g. 60",
                f("proxy.read_timeout_secs"),
                p.read_timeout_secs
            ));
        }
        if p.client_keepalive_secs > NGINX_MAX_SECS {
            problems.push(format!(
                "{} = {}: nginx accepts 0 to {NGINX_MAX_SECS} seconds; e.g. 0 (close after each response) or 75",
                f("proxy.client_keepalive_secs"),
                p.client_keepalive_secs
            ));
        }
        let v = &env.verify;
        let r = v.traffic_error_ratio.0;
        if !(r > 0.0 && r <= 1.0) {
            problems.push(format!(
                "{} = {r}: a fraction of the requests, above 0 and at most 1; e.g. 0.1 (10 %)",
                f("verify.traffic_error_ratio")
            ));
        }
        if v.traffic_window_ms == 0 || v.traffic_window_ms > NGINX_MAX_SECS * 1000 {
            problems.push(format!(
                "{} = {}: 1 to {} milliseconds; e.g. 1000",
                f("verify.traffic_window_ms"),
                v.traffic_window_ms,
                NGINX_MAX_SECS * 1000
            ));
        }
        if v.traffic_min_requests == 0 {
            problems.push(format!(
                "{} = 0: at least 1 request (one failed request would then decide); e.g. 50",
                f("verify.traffic_min_requests")
            ));
        }
        if let Some(s) = &env.swarm {
            for (field, v) in [
                ("swarm.monitor_secs", s.monitor_secs),
                ("swarm.update_timeout_secs", s.update_timeout_secs),
            ] {
                if v > DOCKER_MAX_SECS {
                    problems.push(format!(
                        "{} = {v}: Docker accepts durations up to {DOCKER_MAX_SECS} seconds",
                        f(field)
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t48_excerpts_are_bounded_and_escaped() {
        let long = format!("line 1: {}\x1b[31m", "x".repeat(10_000_000));
        let e = excerpt(&long);
        assert!(e.len() < 400, "{}", e.len());
        assert!(e.contains("more characters"));
        let many = "short line\n".repeat(100_000);
        assert!(excerpt(&many).len() <= MAX_EXCERPT + 8);
    }
}
