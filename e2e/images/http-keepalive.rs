//! A tiny HTTP/1.1 server that keeps connections open, for benchmarks (built static with
//! rustc, added to the busybox test image): `http-keepalive PORT` answers every request with a
//! fixed 600-byte 200 and keeps the connection (unless the client sent `Connection: close`),
//! pipelined requests included. One thread per connection.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn serve(mut conn: TcpStream, reply: &[u8], closing: &[u8]) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        // Answer every complete request in the buffer, then read more.
        let mut out = Vec::new();
        let mut close = false;
        while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            close = head.contains("\r\nconnection: close");
            out.extend_from_slice(if close { closing } else { reply });
            buf.copy_within(end + 4..filled, 0);
            filled -= end + 4;
            if close {
                break;
            }
        }
        if !out.is_empty() && conn.write_all(&out).is_err() {
            return;
        }
        if close {
            return;
        }
        if filled == buf.len() {
            return; // a header larger than the buffer: not ours to serve
        }
        match conn.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    let body = "x".repeat(599) + "\n";
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let closing = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (reply, closing): (&'static [u8], &'static [u8]) = (
        Box::leak(reply.into_bytes().into_boxed_slice()),
        Box::leak(closing.into_bytes().into_boxed_slice()),
    );
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || serve(conn, reply, closing));
    }
}
