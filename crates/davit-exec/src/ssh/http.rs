//! Reading `curl -i` output from the host: [`crate::Executor::http_get`] asks from the host's
//! point of view, and this turns what curl printed into a response.

use crate::HttpResponse;

/// Parse `curl -i` output: header blocks (1xx interim ones skipped), then the body.
pub(super) fn parse_http(bytes: &[u8]) -> Result<HttpResponse, String> {
    let mut rest = bytes;
    loop {
        let end = find(rest, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(rest, b"\n\n").map(|i| (i, 2)))
            .ok_or("the response has no header block")?;
        let head = String::from_utf8_lossy(&rest[..end.0]).into_owned();
        let body = &rest[end.0 + end.1..];
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
        if (100..200).contains(&status) && status != 101 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Ok(HttpResponse {
            status,
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
