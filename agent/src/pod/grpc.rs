//! `grpc` probes: one call of the standard health protocol, `grpc.health.v1.Health/Check`, over
//! HTTP/2 without TLS to the pod's own address (as kubelet). SERVING is success; any other
//! answer, a grpc error status, or no answer is a failure, in kubelet's words.

use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The health protocol's `ServingStatus` names (SERVING = 1).
const STATUS_NAMES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// `HealthCheckRequest { service }` as a length-prefixed grpc message.
fn request_message(service: &str) -> Vec<u8> {
    let mut proto = Vec::new();
    if !service.is_empty() {
        proto.push(0x0a); // field 1, length-delimited
        varint(service.len() as u64, &mut proto);
        proto.extend_from_slice(service.as_bytes());
    }
    let mut msg = vec![0u8];
    msg.extend_from_slice(&(proto.len() as u32).to_be_bytes());
    msg.extend_from_slice(&proto);
    msg
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if buf.is_empty() {
            return None;
        }
        let b = buf.get_u8();
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` of a `HealthCheckResponse` grpc message (0, UNKNOWN, when absent).
fn response_status(mut body: &[u8]) -> Result<u64, String> {
    if body.len() < 5 {
        return Err("empty health response".into());
    }
    if body[0] != 0 {
        return Err("compressed health response".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body = &body[5..];
    let mut proto = body.get(..len).ok_or("truncated health response")?;
    let mut status = 0;
    while !proto.is_empty() {
        let key = read_varint(&mut proto).ok_or("bad health response")?;
        match key & 7 {
            0 => {
                let v = read_varint(&mut proto).ok_or("bad health response")?;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let n = read_varint(&mut proto).ok_or("bad health response")? as usize;
                if proto.len() < n {
                    return Err("bad health response".into());
                }
                proto.advance(n);
            }
            _ => return Err("bad health response".into()),
        }
    }
    Ok(status)
}

/// One health check of `service` on `ip:port`; `Err` says why it failed.
pub(super) async fn check(ip: IpAddr, port: u16, service: &str) -> Result<(), String> {
    let addr = SocketAddr::new(ip, port);
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("failed to connect service {addr:?}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("failed to connect service {addr:?}: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.32")
        .body(Full::new(Bytes::from(request_message(service))))
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("health rpc failed: {e}"))?;
        let (parts, body) = resp.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| format!("health rpc failed: {e}"))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let header = |name: &str| {
            trailers
                .get(name)
                .or(parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let code = header("grpc-status").unwrap_or_else(|| "2".into());
        if code != "0" {
            let desc = header("grpc-message").unwrap_or_default();
            return Err(format!("rpc error: code = {code} desc = {desc}"));
        }
        let status = response_status(&collected.to_bytes())?;
        if status == 1 {
            Ok(())
        } else {
            let name = STATUS_NAMES.get(status as usize).unwrap_or(&"UNKNOWN");
            Err(format!("service unhealthy (responded with {name:?})"))
        }
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    #[test]
    fn messages() {
        assert_eq!(request_message(""), [0, 0, 0, 0, 0]);
        assert_eq!(request_message("db"), [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Ok(0));
        assert!(response_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(response_status(&[]).is_err());
    }

    /// A health server on loopback answering `status` for service "web", NOT_FOUND otherwise.
    async fn server(status: u8) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let known = body.as_ref() == request_message("web").as_slice();
                        let mut trailers = hyper::HeaderMap::new();
                        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = if known {
                            trailers.insert("grpc-status", "0".parse().unwrap());
                            vec![
                                Ok(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                                Ok(Frame::trailers(trailers)),
                            ]
                        } else {
                            trailers.insert("grpc-status", "5".parse().unwrap());
                            trailers.insert("grpc-message", "unknown service".parse().unwrap());
                            vec![Ok(Frame::trailers(trailers))]
                        };
                        let body = StreamBody::new(futures_util::stream::iter(frames));
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn serving_not_serving_and_errors() {
        let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let serving = server(1).await;
        assert_eq!(check(lo, serving, "web").await, Ok(()));
        assert_eq!(
            check(lo, serving, "other").await,
            Err("rpc error: code = 5 desc = unknown service".into())
        );
        let not_serving = server(2).await;
        assert_eq!(
            check(lo, not_serving, "web").await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        // Nothing listens on port 1.
        assert!(check(lo, 1, "web")
            .await
            .unwrap_err()
            .starts_with("failed to connect service"));
    }
}
