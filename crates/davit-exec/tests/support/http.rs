//! A tiny HTTP/1.1 server on 127.0.0.1 answering every request with one fixed response, so
//! `http_get` through ssh (curl on the "remote" host, which is this machine) has a target.

use std::io::{Read, Write};
use std::net::TcpListener;

pub struct Server {
    pub port: u16,
}

/// Serve `status`, one extra header and `body` to every request, from a background thread.
pub fn serve(status: u16, header: (&str, &str), body: &'static [u8]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let head = format!(
        "HTTP/1.1 {status} X\r\n{}: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        header.0,
        header.1,
        body.len()
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    Server { port }
}
