//! `kubectl exec` over WebSocket (`v5.channel.k8s.io`, or `v4.channel.k8s.io`): binary frames
//! whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 resize;
//! `[255, 0]` closes stdin (v5). The process's exit code travels as a `Status` with reason
//! `NonZeroExitCode` and a cause `ExitCode`, which makes kubectl exit with the same code.
//! Terminals (`-t`) are not supported yet: they are refused with a clear message.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use super::status::ApiError;
use super::ReqBody;
use super::{full, ApiState, Body, ExecRequest};

const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

fn status_for(code: Option<i32>, command: &[String]) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(c) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {c}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]},
        }),
        None => {
            json!({"metadata": {}, "status": "Failure", "message": "the process ended without an exit code", "reason": "InternalError"})
        }
    }
}

/// The 101 answer accepting a WebSocket upgrade (`key`: the client's `Sec-WebSocket-Key`) with
/// `protocol`.
pub fn websocket_response(key: &str, protocol: &str) -> Response<Body> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(101)
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header("Sec-WebSocket-Accept", accept)
        .header("Sec-WebSocket-Protocol", protocol)
        .body(full(Bytes::new()))
        .expect("valid response")
}

/// The connection of an upgraded request, once the 101 has been sent.
pub async fn upgraded(
    req: Request<ReqBody>,
) -> Option<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
    match hyper::upgrade::on(req).await {
        Ok(u) => Some(hyper_util::rt::TokioIo::new(u)),
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            None
        }
    }
}

/// Handles an exec request for `pod` (already authorized).
pub fn handle(
    state: &Arc<ApiState>,
    pod: &Value,
    params: &[(String, String)],
    req: Request<ReqBody>,
) -> Result<Response<Body>, ApiError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let flag = |k: &str| get(k).is_some_and(|v| v == "true" || v == "1");
    let command: Vec<String> = params
        .iter()
        .filter(|(n, _)| n == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if flag("tty") {
        return Err(ApiError::bad_request(
            "terminals (kubectl exec -t) are not supported by skiff yet; run without -t",
        ));
    }
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let container = match get("container") {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => containers.first().cloned().unwrap_or_default(),
    };
    if !containers.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {}",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    let headers = req.headers();
    let upgrade = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok());
    let offered = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protocol = PROTOCOLS
        .iter()
        .find(|p| offered.split(',').any(|o| o.trim() == **p));
    let (Some(key), Some(protocol), true) =
        (key, protocol, upgrade.eq_ignore_ascii_case("websocket"))
    else {
        return Err(ApiError::bad_request("exec needs a WebSocket upgrade with the v5.channel.k8s.io or v4.channel.k8s.io subprotocol"));
    };
    let stdin = flag("stdin");
    let mut child = state
        .node
        .exec(
            pod,
            ExecRequest {
                container,
                command: command.clone(),
                stdin,
            },
        )
        .map_err(ApiError::bad_request)?;
    let v5 = *protocol == "v5.channel.k8s.io";
    let response = websocket_response(key, protocol);
    tokio::spawn(async move {
        let Some(upgraded) = upgraded(req).await else {
            return;
        };
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
        let mut child_stdin = child.stdin.take();
        // Client → stdin.
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Binary(data) if !data.is_empty() => match data[0] {
                        0 => {
                            if let Some(w) = child_stdin.as_mut() {
                                if w.write_all(&data[1..]).await.is_err() {
                                    child_stdin = None;
                                }
                            }
                        }
                        255 if v5 && data.get(1) == Some(&0) => child_stdin = None,
                        _ => {}
                    },
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        // stdout / stderr → client.
        let mut pumps = Vec::new();
        for (channel, pipe) in [
            (
                1u8,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
            (
                2u8,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = out_tx.clone();
            pumps.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match pipe.read(&mut buf[1..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            buf[0] = channel;
                            if tx
                                .send(Message::Binary(Bytes::copy_from_slice(&buf[..=n])))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let code = child.wait().await.ok().and_then(|s| s.code());
        for p in pumps {
            let _ = p.await;
        }
        let mut frame = vec![3u8];
        frame.extend_from_slice(&serde_json::to_vec(&status_for(code, &command)).expect("json"));
        let _ = out_tx.send(Message::Binary(Bytes::from(frame))).await;
        // A normal close (1000) tells kubectl every stream has ended.
        let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        let _ = out_tx.send(Message::Close(Some(close))).await;
        drop(out_tx);
        let _ = writer.await;
        reader.abort();
    });
    Ok(response)
}
