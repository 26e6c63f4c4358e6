//! A websocket echo on `/ws/...`: what a Django Channels route is to a proxy.
//!
//! It exists so tests can prove that a proxy in front passes the upgrade through (the
//! `Upgrade`/`Connection` headers and the long-lived connection). The handshake is RFC 6455's
//! (SHA-1 of the key and the protocol GUID, base64); frames are echoed back unmasked, text and
//! binary alike, pings answered, and a close frame is returned and ends the connection.

use base64::Engine;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Frames larger than this close the connection: an echo for tests needs no more.
const MAX_PAYLOAD: u64 = 1 << 20;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// Answer the upgrade and echo frames until the client closes or goes away.
pub fn serve(mut reader: BufReader<TcpStream>, key: &str, version: &str) {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nX-App-Version: {version}\r\n\r\n",
        accept_key(key)
    );
    if reader.get_ref().write_all(head.as_bytes()).is_err() {
        return;
    }
    while let Ok((opcode, payload)) = read_frame(&mut reader) {
        let reply = match opcode {
            0x8 => {
                let _ = reader.get_ref().write_all(&frame(0x8, &payload));
                return;
            }
            0x9 => frame(0xA, &payload),
            0xA => continue,
            op => frame(op, &payload),
        };
        if reader.get_ref().write_all(&reply).is_err() {
            return;
        }
    }
}

/// One client frame: (opcode, unmasked payload). Fragments are echoed as they come.
fn read_frame<R: Read>(r: &mut R) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
    r.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// A final, unmasked server frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(u8::try_from(n).unwrap_or(0)),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_frames_are_read_and_echoed_unmasked() {
        let mask = [1u8, 2, 3, 4];
        let text = b"hello";
        let mut wire = vec![0x81, 0x80 | 5];
        wire.extend_from_slice(&mask);
        wire.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let (op, payload) = read_frame(&mut &wire[..]).unwrap();
        assert_eq!((op, payload.as_slice()), (1, &text[..]));
        assert_eq!(frame(1, text), [&[0x81u8, 5][..], text].concat());
    }
}
