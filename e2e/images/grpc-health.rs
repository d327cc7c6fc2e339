//! A tiny grpc health server for tests (std only, built static with rustc, added to the busybox
//! test image): `grpc-health PORT` answers every `grpc.health.v1.Health/Check` over HTTP/2
//! without TLS — SERVING for the service "" or "up", NOT_SERVING for any other. Just enough
//! HTTP/2: the preface, SETTINGS and PING acknowledged, one response per request stream.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn frame(out: &mut TcpStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    let _ = out.write_all(&f);
}

fn respond(out: &mut TcpStream, stream: u32, body: &[u8]) {
    // The service from `HealthCheckRequest { service = 1 }` after the 5-byte grpc prefix.
    let proto = body.get(5..).unwrap_or_default();
    let service = match proto {
        [0x0a, n, rest @ ..] => String::from_utf8_lossy(&rest[..(*n as usize).min(rest.len())]).to_string(),
        _ => String::new(),
    };
    let status = if service.is_empty() || service == "up" { 1 } else { 2 };
    // HPACK: `:status: 200` (static index 8); `content-type: application/grpc` (literal,
    // name from static index 31).
    let mut headers = vec![0x88, 0x0f, 0x10, 16];
    headers.extend_from_slice(b"application/grpc");
    frame(out, 1, 0x4, stream, &headers);
    frame(out, 0, 0, stream, &[0, 0, 0, 0, 2, 0x08, status]);
    // Trailers: `grpc-status: 0` (literal, new name), ending the stream.
    let mut trailers = vec![0x00, 11];
    trailers.extend_from_slice(b"grpc-status");
    trailers.extend_from_slice(&[1, b'0']);
    frame(out, 1, 0x4 | 0x1, stream, &trailers);
}

fn serve(mut s: TcpStream) {
    let mut preface = [0u8; 24];
    if s.read_exact(&mut preface).is_err() {
        return;
    }
    frame(&mut s, 4, 0, 0, &[]);
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            return;
        }
        let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return;
        }
        match kind {
            0 => {
                bodies.entry(stream).or_default().extend_from_slice(&payload);
                if flags & 0x1 != 0 {
                    let body = bodies.remove(&stream).unwrap_or_default();
                    respond(&mut s, stream, &body);
                }
            }
            1 if flags & 0x1 != 0 => respond(&mut s, stream, &[]),
            4 if flags & 0x1 == 0 => frame(&mut s, 4, 0x1, 0, &[]),
            6 if flags & 0x1 == 0 => frame(&mut s, 6, 0x1, 0, &payload),
            7 => return,
            _ => {}
        }
    }
}

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9090".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("bind");
    for s in listener.incoming().flatten() {
        std::thread::spawn(move || serve(s));
    }
}
