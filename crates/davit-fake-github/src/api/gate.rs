//! The middleware in front of every GitHub route: authentication, recording each request for
//! the tests to inspect, and firing the faults a test injected (status, headers, delay).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{App, gh_error};
use crate::state::{self, RecordedRequest};

/// Authentication, recording and fault injection for every GitHub route. Control routes
/// (`/_fake/...`) pass straight through and are not recorded.
pub(super) async fn gate(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    if path.starts_with("/_fake") {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let method = parts.method.to_string();
    let (auth_scheme, token) = match parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match v.split_once(' ') {
            Some((s, t)) => (Some(s.to_string()), Some(t.trim().to_string())),
            None => (Some(String::new()), None),
        },
        None => (None, None),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION)
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Record before anything can stall, so a request whose answer is delayed past the client's
    // timeout is still visible to the test.
    let (index, fault, expected) = {
        let mut s = app.lock();
        s.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            headers,
            auth_scheme: auth_scheme.clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            status: 0,
        });
        (
            s.requests.len() - 1,
            s.take_fault(&method, &path),
            s.expected_token.clone(),
        )
    };

    let response = 'answer: {
        let scheme_ok = matches!(auth_scheme.as_deref(), Some("Bearer" | "token" | "bearer"));
        let token_ok = match (&token, &expected) {
            (Some(t), Some(e)) => t == e,
            (Some(t), None) => !t.is_empty(),
            (None, _) => false,
        };
        if !scheme_ok || !token_ok {
            break 'answer gh_error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        let has_body = !bytes.is_empty();
        if has_body && matches!(parts.method, Method::POST | Method::PATCH | Method::PUT) {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !ct.starts_with("application/json") {
                break 'answer gh_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported 'Content-Type' header",
                );
            }
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        match fault {
            Some(f) if !f.after_handler => {
                tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
                if f.status == 0 {
                    next.run(request).await
                } else {
                    fault_response(&f)
                }
            }
            Some(f) => {
                let real = next.run(request).await;
                tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
                if f.status == 0 {
                    real
                } else {
                    fault_response(&f)
                }
            }
            None => next.run(request).await,
        }
    };
    if let Some(r) = app.lock().requests.get_mut(index) {
        r.status = response.status().as_u16();
    }
    response
}

fn fault_response(f: &state::Fault) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut r = if status.is_server_error() && f.message.is_none() {
        // What a proxy in front of GitHub sends: not JSON.
        (status, "<html><body><h1>502 Bad Gateway</h1></body></html>").into_response()
    } else {
        gh_error(status, f.message.as_deref().unwrap_or("injected fault"))
    };
    for (k, v) in &f.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            r.headers_mut().insert(name, value);
        }
    }
    r
}
