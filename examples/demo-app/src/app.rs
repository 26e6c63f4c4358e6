//! Routes: what each path answers, given the fault modes.
//!
//! Kept apart from the socket handling so the decisions can be read in one place.

use std::thread;
use std::time::Instant;

use crate::config::Config;
use crate::faults::{FaultClock, RootOutcome};
use crate::http::{Method, Request, Response};
use crate::metrics::Metrics;

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    /// Settings the app was started with.
    pub config: Config,
    /// Fault modes and their timers.
    pub faults: FaultClock,
    /// What `/metrics` shows.
    pub metrics: Metrics,
}

impl App {
    /// Builds the app; fault timers count from `start`.
    pub fn new(config: Config, start: Instant) -> App {
        App {
            faults: FaultClock::new(config.faults.clone(), start),
            metrics: Metrics::new(&config.version),
            config,
        }
    }

    /// Answers one request. May sleep when `FAULT_LATENCY_MS` is set.
    pub fn handle(&self, req: &Request) -> Response {
        if !self.host_allowed(req) {
            // What Django answers for a Host not in ALLOWED_HOSTS.
            return Response::text(400, "Bad Request (400): invalid HTTP_HOST header\n");
        }
        let known = matches!(req.path.as_str(), "/" | "/health" | "/metrics");
        if !known {
            return Response::text(404, "not found\n");
        }
        if let Method::Other(_) = req.method {
            return Response::text(405, "method not allowed\n").with_header("Allow", "GET, HEAD");
        }
        match req.path.as_str() {
            "/" => self.root(),
            "/health" => self.health(),
            _ => Response::text(200, self.metrics.render())
                .with_content_type("text/plain; version=0.0.4; charset=utf-8"),
        }
    }

    /// `ALLOWED_HOSTS`: the Host header without its port must be listed (any when empty).
    pub fn host_allowed(&self, req: &Request) -> bool {
        if self.config.allowed_hosts.is_empty() {
            return true;
        }
        let host = req.host.as_deref().unwrap_or("").to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host.as_str(),
        };
        self.config.allowed_hosts.iter().any(|h| h == name)
    }

    fn root(&self) -> Response {
        let outcome = self.faults.root(Instant::now());
        let latency = self.faults.latency();
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        let (name, version) = (&self.config.name, &self.config.version);
        match outcome {
            RootOutcome::Ok => Response::text(200, format!("hello from {name} {version}\n")),
            RootOutcome::Unhealthy => Response::text(
                500,
                format!("{name} {version} is failing (FAULT_FAIL_AFTER_SECS elapsed)\n"),
            ),
            RootOutcome::InjectedError => Response::text(
                503,
                format!("{name} {version}: injected error (FAULT_ERROR_RATIO)\n"),
            ),
        }
    }

    fn health(&self) -> Response {
        let version = json_string(&self.config.version);
        match self.faults.health(Instant::now()) {
            None => Response::json(200, format!(r#"{{"status":"ok","version":{version}}}"#)),
            Some(why) => Response::json(
                500,
                format!(
                    r#"{{"status":"failing","version":{version},"reason":"{}"}}"#,
                    why.reason()
                ),
            ),
        }
    }
}

impl Response {
    fn with_content_type(mut self, content_type: &'static str) -> Response {
        self.content_type = content_type;
        self
    }
}

/// A JSON string literal, quoted and escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{ErrorRatio, Faults};

    fn get(path: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.to_owned(),
            minor_version: 1,
            keep_alive: true,
            host: None,
            websocket_key: None,
        }
    }

    fn app(faults: Faults) -> App {
        let config = Config {
            version: "1.0.0".into(),
            name: "shop".into(),
            faults,
            ..Config::default()
        };
        App::new(config, Instant::now())
    }

    #[test]
    fn routes() {
        let a = app(Faults::default());
        let r = a.handle(&get("/"));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"hello from shop 1.0.0\n"[..])
        );
        let r = a.handle(&get("/health"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"status":"ok","version":"1.0.0"}"#);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(a.handle(&get("/metrics")).status, 200);
        assert_eq!(a.handle(&get("/nope")).status, 404);
        let post = Request {
            method: Method::Other("POST".into()),
            ..get("/health")
        };
        let r = a.handle(&post);
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, [("Allow", "GET, HEAD".to_owned())]);
    }

    #[test]
    fn never_healthy() {
        let a = app(Faults {
            never_healthy: true,
            ..Faults::default()
        });
        let r = a.handle(&get("/health"));
        assert_eq!(r.status, 500);
        assert_eq!(
            r.body,
            br#"{"status":"failing","version":"1.0.0","reason":"FAULT_NEVER_HEALTHY"}"#
        );
        assert_eq!(a.handle(&get("/")).status, 200);
        assert_eq!(a.handle(&get("/metrics")).status, 200);
    }

    #[test]
    fn error_ratio_spares_health_and_metrics() {
        let a = app(Faults {
            error_ratio: ErrorRatio::ALWAYS,
            ..Faults::default()
        });
        assert_eq!(a.handle(&get("/")).status, 503);
        assert_eq!(a.handle(&get("/health")).status, 200);
        assert_eq!(a.handle(&get("/metrics")).status, 200);
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("a\"b\\c\td"), r#""a\"b\\c\u0009d""#);
    }
}
