//! Drives a real server on an ephemeral loopback port with raw HTTP, so framing,
//! keep-alive and timing faults are checked on the wire rather than through a client
//! library that might paper over mistakes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use davit_demo_app::faults::{ErrorRatio, Faults};
use davit_demo_app::{Config, Outcome, Server, StopHandle};

struct Running {
    addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<std::io::Result<Outcome>>>,
}

impl Running {
    fn start(faults: Faults) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            version: "1.2.3".into(),
            name: "shop".into(),
            faults,
            ..Config::default()
        };
        let server = Server::new(listener, config);
        let addr = server.local_addr().unwrap();
        let stop = server.stop_handle();
        let thread = Some(thread::spawn(move || server.serve()));
        Running { addr, stop, thread }
    }

    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// One request on a fresh connection that the client asks to close.
    fn get(&self, path: &str) -> Resp {
        let mut c = self.connect();
        c.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        ));
        c.read()
    }

    fn stop(mut self) -> Outcome {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn send(&mut self, raw: &str) {
        self.reader.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
        let status = line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end_matches("\r\n");
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(": ").unwrap();
            headers.push((n.to_owned(), v.to_owned()));
        }
        (status, headers)
    }

    fn read(&mut self) -> Resp {
        let (status, headers) = self.read_head();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .expect("Content-Length")
            .1
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    /// Whether the server has closed the connection.
    fn at_eof(&mut self) -> bool {
        let mut buf = [0; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

#[test]
fn endpoints() {
    let s = Running::start(Faults::default());

    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from shop 1.2.3\n");
    assert_eq!(r.header("X-App-Version"), Some("1.2.3"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(r.header("Date").unwrap().ends_with(" GMT"));

    let r = s.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"status":"ok","version":"1.2.3"}"#);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("X-App-Version"), Some("1.2.3"));

    let r = s.get("/does-not-exist");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-App-Version"), Some("1.2.3"));

    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-App-Version"), Some("1.2.3"));
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    for line in [
        "http_requests_total{path=\"/\",code=\"200\"} 1",
        "http_requests_total{path=\"/health\",code=\"200\"} 1",
        "http_requests_total{path=\"other\",code=\"404\"} 1",
        "http_request_duration_seconds_count{path=\"/\"} 1",
        "http_request_duration_seconds_bucket{path=\"/\",le=\"+Inf\"} 1",
        "demo_app_info{version=\"1.2.3\"} 1",
    ] {
        assert!(r.body.lines().any(|l| l == line), "{line} in\n{}", r.body);
    }

    assert_eq!(s.stop(), Outcome::Stopped);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = Running::start(Faults::default());
    let mut c = s.connect();

    c.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), None);

    c.send("HEAD /health HTTP/1.1\r\nHost: test\r\n\r\n");
    let (status, headers) = c.read_head();
    assert_eq!(status, 200);
    // HEAD reports the GET body's length but sends no body, so the next response
    // must start right after the blank line.
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "Content-Length" && v != "0")
    );

    // Pipelined: both requests in one write.
    c.send(
        "GET /health HTTP/1.1\r\nHost: test\r\n\r\nGET /nope HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c.read().status, 200);
    let r = c.read();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.at_eof());
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let s = Running::start(Faults::default());
    let mut c = s.connect();
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read();
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    c.send("GET / HTTP/1.0\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.at_eof());
}

#[test]
fn malformed_request_gets_400_with_version_header_and_close() {
    let s = Running::start(Faults::default());
    let mut c = s.connect();
    c.send("NONSENSE\r\n\r\n");
    let r = c.read();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("X-App-Version"), Some("1.2.3"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.at_eof());
}

#[test]
fn post_to_known_path_is_405_and_keeps_the_connection() {
    let s = Running::start(Faults::default());
    let mut c = s.connect();
    c.send("POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.read();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read().status, 200);
}

#[test]
fn fail_after_secs_turns_health_and_root_to_500() {
    let s = Running::start(Faults {
        fail_after: Some(Duration::from_secs(1)),
        ..Faults::default()
    });
    assert_eq!(s.get("/health").status, 200);
    assert_eq!(s.get("/").status, 200);

    thread::sleep(Duration::from_millis(1100));

    let r = s.get("/health");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        r#"{"status":"failing","version":"1.2.3","reason":"FAULT_FAIL_AFTER_SECS"}"#
    );
    assert_eq!(s.get("/").status, 500);
    let m = s.get("/metrics");
    assert_eq!(
        m.status, 200,
        "metrics stay up so monitoring sees the fault"
    );
    assert!(
        m.body
            .contains("http_requests_total{path=\"/health\",code=\"500\"} 1")
    );
}

#[test]
fn never_healthy() {
    let s = Running::start(Faults {
        never_healthy: true,
        ..Faults::default()
    });
    let r = s.get("/health");
    assert_eq!(r.status, 500);
    assert!(r.body.starts_with(r#"{"status":"failing""#));
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn error_ratio_over_one_connection() {
    let s = Running::start(Faults {
        error_ratio: ErrorRatio::new(0.2).unwrap(),
        ..Faults::default()
    });
    let mut c = s.connect();
    let mut failed = 0;
    for _ in 0..100 {
        c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.read();
        assert_eq!(r.header("X-App-Version"), Some("1.2.3"));
        if r.status == 503 {
            failed += 1;
        } else {
            assert_eq!(r.status, 200);
        }
        c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read().status, 200, "health is not affected by the ratio");
    }
    assert_eq!(failed, 20);
}

#[test]
fn latency_applies_to_root_only() {
    let s = Running::start(Faults {
        latency: Duration::from_millis(200),
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(s.get("/").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(s.get("/health").status, 200);
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[test]
fn stop_finishes_in_flight_requests_then_refuses_connections() {
    let s = Running::start(Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    });
    let addr = s.addr;
    let mut c = s.connect();
    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let stopper = thread::spawn(move || s.stop());
    let r = c.read();
    assert_eq!(r.status, 200, "in-flight request completes");
    assert_eq!(
        r.header("Connection"),
        Some("close"),
        "draining closes keep-alive"
    );
    assert_eq!(stopper.join().unwrap(), Outcome::Stopped);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(TcpStream::connect(addr).is_err(), "listener is closed");
}

#[test]
fn crash_after_ends_serve_with_crashed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        faults: Faults {
            crash_after: Some(Duration::from_millis(300)),
            ..Faults::default()
        },
        ..Config::default()
    };
    let t = Instant::now();
    let outcome = Server::new(listener, config).serve().unwrap();
    assert_eq!(outcome, Outcome::Crashed);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn handles_many_concurrent_keep_alive_clients() {
    let s = Running::start(Faults::default());
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let mut c = s.connect();
            thread::spawn(move || {
                for _ in 0..200 {
                    c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                    assert_eq!(c.read().status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let m = s.get("/metrics");
    assert!(
        m.body
            .contains("http_requests_total{path=\"/\",code=\"200\"} 3200")
    );
}
