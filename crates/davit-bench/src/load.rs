//! The load generator: an open-loop, fixed-rate HTTP client that runs as its own process.
//!
//! It runs apart from the process that deploys so that a busy deploy (docker and nginx child
//! processes, plan bookkeeping) cannot pause the load and hide a gap: if requests were sent from
//! the same runtime, a stalled deploy would also stall the sender and the missing requests would
//! never be counted. The rate is fixed in advance (open loop, as in wrk2): request `i` on
//! connection `k` is due at `start + (k + i·K)/rate` whatever happened before, and its latency is
//! measured from when it was due, so a stall shows up as latency and failures instead of silently
//! lowering the rate (coordinated omission).
//!
//! The client is a minimal HTTP/1.1 keep-alive client on a plain `TcpStream`, written here on
//! purpose: pooled clients (hyper, reqwest) transparently retry a request that hit a keep-alive
//! connection the server was closing, which is exactly the failure a deploy benchmark must count.
//! Here a request that fails is recorded as failed, the connection is dropped, and the next
//! request opens a new one.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as the load generator saw it. Times are microseconds since the Unix epoch, the
/// one clock both processes share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the request was due (the open-loop schedule).
    #[serde(rename = "t")]
    pub due_us: u64,
    /// When it was actually written (later than `due_us` when the connection was behind).
    #[serde(rename = "s")]
    pub sent_us: u64,
    /// From due to the end of the answer or the failure (corrected for coordinated omission).
    #[serde(rename = "l")]
    pub latency_us: u64,
    /// HTTP status; 0 for a connection error (refused, reset, closed without an answer, timeout).
    #[serde(rename = "c")]
    pub status: u16,
    /// The `X-App-Version` header of the answer.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What went wrong, for connection errors.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which connection slot sent it.
    #[serde(rename = "k")]
    pub conn: u16,
    /// Its keep-alive connection had been closed by the server while idle, so a new one was
    /// opened before sending (nothing had been sent: this is not a retry).
    #[serde(rename = "r", default, skip_serializing_if = "std::ops::Not::not")]
    pub reopened: bool,
}

impl Record {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// When the answer (or the failure) arrived.
    pub fn done_us(&self) -> u64 {
        self.due_us + self.latency_us
    }
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the `load` subcommand needs.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub url: String,
    pub rate: f64,
    pub connections: u16,
    pub out: PathBuf,
    pub max_secs: u64,
    pub timeout: Duration,
    /// Check an idle keep-alive connection for the server's close before reusing it, as browsers,
    /// curl and pooled clients do. Off: the naive client that writes into a closed connection.
    pub idle_check: bool,
}

/// A loopback `http://host:port/path` split into its parts. Anything else is refused: this tool
/// sends hundreds of requests a second and must never be pointed at someone else's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub addr: String,
    pub host_header: String,
    pub path: String,
}

pub fn parse_loopback_url(url: &str) -> anyhow::Result<Url> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{url}: give an explicit port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("{url}: bad port {port}"))?;
    let ip = match host {
        "localhost" => "127.0.0.1",
        "[::1]" => "::1",
        h => h,
    };
    let parsed: std::net::IpAddr = ip
        .parse()
        .map_err(|_| anyhow::anyhow!("{url}: the host must be a loopback address"))?;
    if !parsed.is_loopback() {
        anyhow::bail!(
            "{url}: refusing a non-loopback target; the benchmark only loads this machine"
        );
    }
    let addr = match parsed {
        std::net::IpAddr::V4(_) => format!("{ip}:{port}"),
        std::net::IpAddr::V6(_) => format!("[{ip}]:{port}"),
    };
    Ok(Url {
        addr,
        host_header: authority.to_string(),
        path: path.to_string(),
    })
}

/// Run until stdin closes (the parent is done) or `max_secs` pass, then flush every record.
pub async fn run(a: LoadArgs) -> anyhow::Result<()> {
    let url = Arc::new(parse_loopback_url(&a.url)?);
    anyhow::ensure!(a.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(a.connections > 0, "--connections must be at least 1");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Record>();
    let file = std::fs::File::create(&a.out)?;
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut w = std::io::BufWriter::new(file);
        let mut n = 0;
        while let Some(r) = rx.blocking_recv() {
            serde_json::to_writer(&mut w, &r)?;
            w.write_all(b"\n")?;
            n += 1;
        }
        w.flush()?;
        Ok(n)
    });

    // The parent closes our stdin when it has finished its scenario.
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::stdin().read_to_end(&mut sink).await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    {
        let stop = stop.clone();
        let max = Duration::from_secs(a.max_secs);
        tokio::spawn(async move {
            tokio::time::sleep(max).await;
            stop.store(true, Ordering::SeqCst);
        });
    }

    let shared = Arc::new(Shared {
        url: url.clone(),
        timeout: a.timeout,
        idle_check: a.idle_check,
        stop: stop.clone(),
    });
    let start_us = now_us() + 50_000;
    let k = a.connections;
    let mut workers = Vec::new();
    for slot in 0..k {
        let period_us = (f64::from(k) * 1e6 / a.rate) as u64;
        let first_us = start_us + (f64::from(slot) * 1e6 / a.rate) as u64;
        workers.push(tokio::spawn(connection(
            shared.clone(),
            slot,
            first_us,
            period_us,
            tx.clone(),
        )));
    }
    drop(tx);
    for w in workers {
        w.await?;
    }
    let n = writer
        .join()
        .map_err(|_| anyhow::anyhow!("record writer panicked"))??;
    eprintln!("davit-bench load: {n} requests recorded");
    Ok(())
}

/// What every connection slot shares.
struct Shared {
    url: Arc<Url>,
    timeout: Duration,
    idle_check: bool,
    stop: Arc<AtomicBool>,
}

/// One keep-alive connection slot with its own share of the schedule.
async fn connection(
    shared: Arc<Shared>,
    slot: u16,
    first_us: u64,
    period_us: u64,
    tx: tokio::sync::mpsc::UnboundedSender<Record>,
) {
    let Shared {
        url,
        timeout,
        idle_check,
        stop,
    } = &*shared;
    let (timeout, idle_check) = (*timeout, *idle_check);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: davit-bench\r\n\r\n",
        url.path, url.host_header
    );
    let mut conn: Option<Conn> = None;
    let mut due_us = first_us;
    while !stop.load(Ordering::SeqCst) {
        let now = now_us();
        if due_us > now {
            tokio::time::sleep(Duration::from_micros(due_us - now)).await;
        }
        let reopened = idle_check && closed_while_idle(&mut conn);
        let sent_us = now_us();
        let outcome = tokio::time::timeout(timeout, exchange(&mut conn, &url.addr, &request)).await;
        let done_us = now_us();
        let mut record = Record {
            due_us,
            sent_us,
            latency_us: done_us.saturating_sub(due_us),
            status: 0,
            version: None,
            error: None,
            conn: slot,
            reopened,
        };
        match outcome {
            Ok(Ok(answer)) => {
                record.status = answer.status;
                record.version = answer.version;
                if answer.close {
                    conn = None;
                }
            }
            Ok(Err(e)) => {
                record.error = Some(e);
                conn = None;
            }
            Err(_) => {
                record.error = Some(format!("no answer within {timeout:?}"));
                conn = None;
            }
        }
        if tx.send(record).is_err() {
            return;
        }
        due_us += period_us;
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Whether the server closed our idle keep-alive connection (dropping it if so). A peek at the
/// kernel's socket (non-blocking: tokio's sockets are) that returns end-of-file, an error, or
/// bytes nobody asked for means the connection cannot carry a request; "would block" means it is
/// open and quiet. The peek is a real system call rather than tokio's cached readiness, so a close
/// that has already reached this machine is always seen. A close that arrives after the check
/// races with our request and is counted as a failure like any other.
fn closed_while_idle(conn: &mut Option<Conn>) -> bool {
    let Some(c) = conn.as_mut() else {
        return false;
    };
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let closed = match socket2::SockRef::from(&c.stream).peek(&mut probe) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Ok(_) | Err(_) => true,
    };
    if closed {
        *conn = None;
    }
    closed
}

/// What the parser took from one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub version: Option<String>,
    /// The server will close the connection (or did): open a new one next time.
    pub close: bool,
}

async fn exchange(conn: &mut Option<Conn>, addr: &str, request: &str) -> Result<Answer, String> {
    let fresh = conn.is_none();
    if fresh {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {}", short_io(&e)))?;
        let _ = stream.set_nodelay(true);
        *conn = Some(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        });
    }
    let c = conn.as_mut().expect("connected above");
    // Distinguish a failure on a reused connection: that is the keep-alive race to look for.
    let tag = if fresh { "" } else { "reused " };
    c.stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{tag}write: {}", short_io(&e)))?;
    read_answer(c).await.map_err(|e| format!("{tag}read: {e}"))
}

fn short_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "refused".into(),
        ConnectionReset => "reset".into(),
        BrokenPipe => "broken pipe".into(),
        UnexpectedEof => "closed".into(),
        _ => e.to_string(),
    }
}

async fn read_answer(c: &mut Conn) -> Result<Answer, String> {
    loop {
        match parse_answer(&c.buf)? {
            Parsed::Complete { answer, used } => {
                c.buf.drain(..used);
                return Ok(answer);
            }
            Parsed::NeedMore { until_eof } => {
                let mut chunk = [0u8; 8192];
                let n = c.stream.read(&mut chunk).await.map_err(|e| short_io(&e))?;
                if n == 0 {
                    if let Some(answer) = until_eof {
                        c.buf.clear();
                        return Ok(answer);
                    }
                    return Err(if c.buf.is_empty() {
                        "closed before any answer".into()
                    } else {
                        "closed in the middle of an answer".into()
                    });
                }
                c.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// The state of a response in a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Complete {
        answer: Answer,
        used: usize,
    },
    /// Read more; `until_eof` is the answer when the body is delimited by the connection closing.
    NeedMore {
        until_eof: Option<Answer>,
    },
}

/// Parse one HTTP/1.1 response (status, headers, then a body framed by Content-Length, chunked
/// encoding, or the end of the connection).
pub fn parse_answer(buf: &[u8]) -> Result<Parsed, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::NeedMore { until_eof: None }),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut version = None;
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("x-app-version") {
            version = Some(value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad content-length {value}"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    let answer = |close| Answer {
        status,
        version: version.clone(),
        close,
    };
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Parsed::Complete {
            answer: answer(close),
            used: head,
        });
    }
    if chunked {
        return Ok(match chunked_end(&buf[head..])? {
            Some(n) => Parsed::Complete {
                answer: answer(close),
                used: head + n,
            },
            None => Parsed::NeedMore { until_eof: None },
        });
    }
    match length {
        Some(n) if buf.len() >= head + n => Ok(Parsed::Complete {
            answer: answer(close),
            used: head + n,
        }),
        Some(_) => Ok(Parsed::NeedMore { until_eof: None }),
        None => Ok(Parsed::NeedMore {
            until_eof: Some(answer(true)),
        }),
    }
}

/// Where a chunked body ends, if it is all in `body`.
fn chunked_end(body: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&body[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&body[at..at + eol]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(eol) = find_crlf(&body[at..]) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls() {
        let u = parse_loopback_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080");
        assert_eq!(u.path, "/");
        assert_eq!(parse_loopback_url("http://localhost:9").unwrap().path, "/");
        assert!(parse_loopback_url("http://[::1]:9/x").is_ok());
        assert!(parse_loopback_url("http://10.0.0.1:80/").is_err());
        assert!(parse_loopback_url("http://example.com:80/").is_err());
        assert!(parse_loopback_url("https://127.0.0.1:80/").is_err());
    }

    #[test]
    fn content_length_answer() {
        let b = b"HTTP/1.1 200 OK\r\nX-App-Version: v2\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        match parse_answer(b).unwrap() {
            Parsed::Complete { answer, used } => {
                assert_eq!(answer.status, 200);
                assert_eq!(answer.version.as_deref(), Some("v2"));
                assert!(!answer.close);
                assert_eq!(used, b.len() - "HTTP/1.1".len());
            }
            p => panic!("{p:?}"),
        }
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(
            parse_answer(partial).unwrap(),
            Parsed::NeedMore { until_eof: None }
        );
    }

    #[test]
    fn chunked_and_close() {
        let b = b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        match parse_answer(b).unwrap() {
            Parsed::Complete { answer, used } => {
                assert_eq!(answer.status, 502);
                assert!(answer.close);
                assert_eq!(used, b.len());
            }
            p => panic!("{p:?}"),
        }
        let open = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab";
        assert_eq!(
            parse_answer(open).unwrap(),
            Parsed::NeedMore { until_eof: None }
        );
    }

    #[test]
    fn body_until_close() {
        let b = b"HTTP/1.0 200 OK\r\n\r\nbody";
        match parse_answer(b).unwrap() {
            Parsed::NeedMore { until_eof: Some(a) } => assert!(a.close),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn records_round_trip_compactly() {
        let r = Record {
            due_us: 1,
            sent_us: 2,
            latency_us: 3,
            status: 0,
            version: None,
            error: Some("connect: refused".into()),
            conn: 4,
            reopened: false,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"t":1,"s":2,"l":3,"c":0,"e":"connect: refused","k":4}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
