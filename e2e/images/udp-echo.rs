//! A tiny UDP echo server for tests (built static with rustc, added to the busybox test image):
//! `udp-echo PORT` answers every datagram with `echo:` + the datagram.
use std::net::UdpSocket;

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "5353".into());
    let sock = UdpSocket::bind(format!("0.0.0.0:{port}")).expect("bind");
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, peer);
        }
    }
}
