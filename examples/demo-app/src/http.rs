//! The slice of HTTP/1.x the demo needs: reading request heads, skipping bodies and
//! writing responses.
//!
//! Hand-written because the static `FROM scratch` build should not pull in an async
//! runtime for a service with three routes. It is strict where mistakes would corrupt
//! a persistent connection (framing, header size) and lenient elsewhere (a missing
//! `Host` header is accepted so that bare-bones health probes work).

use std::fmt;
use std::io::{self, BufRead, Read};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest request head (request line plus headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body that is read and discarded to keep the connection usable.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
const MAX_HEADERS: usize = 100;

/// Request methods the app distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: as GET, without the body.
    Head,
    /// Anything else; answered with 405 on known paths.
    Other(String),
}

/// A parsed request head; the body, if any, has already been skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Path without the query string; absolute-form targets are reduced to their path.
    pub path: String,
    /// The `y` in `HTTP/1.y`.
    pub minor_version: u8,
    /// Whether the client allows the connection to stay open after the response.
    pub keep_alive: bool,
    /// The `Host` header, when sent.
    pub host: Option<String>,
    /// `Sec-WebSocket-Key` of a request that asks to upgrade to a websocket.
    pub websocket_key: Option<String>,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum RequestError {
    /// The connection closed or failed; nothing can be sent back.
    Io(io::Error),
    /// The client closed the connection before sending a complete head.
    Closed,
    /// The request is malformed; answer with this status and close the connection,
    /// because where the next request starts is unknown.
    Reject(u16, &'static str),
}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> Self {
        RequestError::Io(e)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Io(e) => write!(f, "{e}"),
            RequestError::Closed => f.write_str("connection closed mid-request"),
            RequestError::Reject(code, why) => write!(f, "{code}: {why}"),
        }
    }
}

/// Reads one request from `r`, which is positioned at the start of a request.
///
/// Blocks until the whole head has arrived, then reads and discards any
/// `Content-Length` body so that the next request on the connection starts cleanly.
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Request, RequestError> {
    let mut budget = MAX_HEAD_BYTES;
    let mut line = Vec::with_capacity(256);

    // RFC 9112 section 2.2: ignore empty lines before the request line, which some
    // clients send after a POST body.
    loop {
        read_line(r, &mut line, &mut budget)?;
        if !line.is_empty() {
            break;
        }
    }
    let request_line =
        std::str::from_utf8(&line).map_err(|_| reject(400, "request line is not UTF-8"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(reject(400, "malformed method"));
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Err(reject(505, "only HTTP/1.0 and 1.1")),
        _ => return Err(reject(400, "malformed HTTP version")),
    };
    let path = request_path(target).ok_or_else(|| reject(400, "malformed request target"))?;
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };

    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut host = None;
    let mut websocket_key = None;
    let mut upgrade_websocket = false;
    let mut headers = 0;
    loop {
        read_line(r, &mut line, &mut budget)?;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(reject(431, "too many headers"));
        }
        let text = std::str::from_utf8(&line).unwrap_or("");
        let Some((name, value)) = text.split_once(':') else {
            return Err(reject(400, "malformed header"));
        };
        // Whitespace before the colon is a request-smuggling vector (RFC 9112 5.1).
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(reject(400, "malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| reject(400, "malformed Content-Length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            host = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            websocket_key = Some(value.to_owned());
        }
    }

    // Chunked bodies are never needed by this app's routes; refusing them (and closing)
    // is simpler than decoding them only to throw them away.
    if chunked {
        return Err(reject(501, "Transfer-Encoding is not supported"));
    }
    if let Some(n) = content_length {
        if n > MAX_BODY_BYTES {
            return Err(reject(413, "request body too large"));
        }
        let skipped = io::copy(&mut Read::take(&mut *r, n), &mut io::sink())?;
        if skipped < n {
            return Err(RequestError::Closed);
        }
    }

    let keep_alive = if minor_version == 0 {
        keep_alive_token && !close
    } else {
        !close
    };
    Ok(Request {
        method,
        path,
        minor_version,
        keep_alive,
        host,
        websocket_key: websocket_key.filter(|_| upgrade_websocket),
    })
}

fn reject(code: u16, why: &'static str) -> RequestError {
    RequestError::Reject(code, why)
}

/// Reads one line into `line` without its line ending, charging it to `budget`.
fn read_line<R: BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    budget: &mut usize,
) -> Result<(), RequestError> {
    line.clear();
    let limit = *budget as u64;
    let n = Read::take(&mut *r, limit).read_until(b'\n', line)?;
    if line.last() != Some(&b'\n') {
        return Err(if n as u64 >= limit {
            reject(431, "request head too large")
        } else {
            RequestError::Closed
        });
    }
    *budget -= n;
    line.pop();
    // Bare LF line endings are tolerated, as RFC 9112 section 2.2 allows.
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The path of a request target, without query or fragment.
fn request_path(target: &str) -> Option<String> {
    let rest = if target.starts_with('/') {
        target
    } else if let Some(after_scheme) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        // Absolute form, as sent to proxies; servers must accept it (RFC 9112 3.2.2).
        match after_scheme.find('/') {
            Some(i) => &after_scheme[i..],
            None => "/",
        }
    } else if target == "*" {
        "*"
    } else {
        return None;
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// A response before framing headers are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Extra headers, e.g. `Allow`.
    pub headers: Vec<(&'static str, String)>,
    /// The body; left out on the wire for HEAD requests, but still measured for
    /// `Content-Length`, as HEAD requires.
    pub body: Vec<u8>,
}

/// `Content-Type` for plain-text bodies.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` for JSON bodies.
pub const JSON: &str = "application/json";

impl Response {
    /// A response with a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// A response with a JSON body that is already serialized.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// How to frame a response on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Framing<'a> {
    /// Omit the body (HEAD).
    pub head_only: bool,
    /// Keep the connection open afterwards.
    pub keep_alive: bool,
    /// The request was HTTP/1.0, which needs an explicit `Connection: keep-alive`.
    pub http10: bool,
    /// Sent on every response, whatever the path or status.
    pub app_version: &'a str,
}

/// Serializes `resp` into one buffer, so it goes out in a single write and Nagle's
/// algorithm never holds back a second segment.
pub fn encode(resp: &Response, framing: Framing<'_>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    let head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nX-App-Version: {}\r\n",
        resp.status,
        reason(resp.status),
        http_date(now),
        resp.content_type,
        resp.body.len(),
        framing.app_version,
    );
    out.extend_from_slice(head.as_bytes());
    for (name, value) in &resp.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !framing.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if framing.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !framing.head_only {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// Reason phrase for the status codes this app sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 5.6.7).
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};
    use std::time::Duration;

    fn parse(raw: &str) -> Result<Request, RequestError> {
        read_request(&mut BufReader::new(Cursor::new(raw.as_bytes().to_vec())))
    }

    fn rejected(raw: &str) -> u16 {
        match parse(raw) {
            Err(RequestError::Reject(code, _)) => code,
            other => panic!("expected a rejection for {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_get_with_query() {
        let r = parse("GET /health?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/health");
        assert_eq!(r.minor_version, 1);
        assert!(r.keep_alive);
    }

    #[test]
    fn connection_semantics() {
        assert!(
            !parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse("GET / HTTP/1.1\r\nconnection: Upgrade, Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn tolerates_bare_lf_and_leading_blank_lines() {
        let r = parse("\r\nHEAD / HTTP/1.1\nHost: x\n\n").unwrap();
        assert_eq!(r.method, Method::Head);
        assert_eq!(r.path, "/");
    }

    #[test]
    fn absolute_form_target() {
        assert_eq!(
            parse("GET http://example.com/health HTTP/1.1\r\n\r\n")
                .unwrap()
                .path,
            "/health"
        );
        assert_eq!(
            parse("GET http://example.com HTTP/1.1\r\n\r\n")
                .unwrap()
                .path,
            "/"
        );
    }

    #[test]
    fn skips_body_so_the_next_request_parses() {
        let raw = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /metrics HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(Cursor::new(raw.as_bytes().to_vec()));
        let first = read_request(&mut r).unwrap();
        assert_eq!(first.method, Method::Other("POST".into()));
        let second = read_request(&mut r).unwrap();
        assert_eq!(second.path, "/metrics");
    }

    #[test]
    fn rejects_bad_requests() {
        assert_eq!(rejected("GET /\r\n\r\n"), 400);
        assert_eq!(rejected("GET  / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(rejected("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(rejected("GET / FTP/1.0\r\n\r\n"), 400);
        assert_eq!(rejected("GET foo HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(rejected("GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(rejected("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        assert_eq!(
            rejected("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            400
        );
        assert_eq!(
            rejected("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            rejected("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            rejected("POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"),
            413
        );
        let huge = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(rejected(&huge), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(rejected(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }

    #[test]
    fn early_close_is_not_a_rejection() {
        assert!(matches!(parse(""), Err(RequestError::Closed)));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost"),
            Err(RequestError::Closed)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Err(RequestError::Closed)
        ));
    }

    #[test]
    fn encodes_head_without_body_but_with_length() {
        let resp = Response::text(200, "hello\n").with_header("Allow", "GET, HEAD");
        let framing = Framing {
            head_only: true,
            keep_alive: false,
            http10: false,
            app_version: "1.0",
        };
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let wire = String::from_utf8(encode(&resp, framing, now)).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\n\
             X-App-Version: 1.0\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"
        );
        let wire = encode(
            &resp,
            Framing {
                head_only: false,
                keep_alive: true,
                http10: true,
                ..framing
            },
            now,
        );
        let wire = String::from_utf8(wire).unwrap();
        assert!(
            wire.ends_with("Connection: keep-alive\r\n\r\nhello\n"),
            "{wire}"
        );
    }

    #[test]
    fn http_dates() {
        let at = |s| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_735_689_599), "Tue, 31 Dec 2024 23:59:59 GMT");
        assert_eq!(at(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }
}
