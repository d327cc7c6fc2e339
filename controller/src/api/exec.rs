//! `kubectl exec` over WebSocket (`v5.channel.k8s.io`, or `v4.channel.k8s.io`): binary frames
//! whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 resize;
//! `[255, 0]` closes stdin (v5). The process's exit code travels as a `Status` with reason
//! `NonZeroExitCode` and a cause `ExitCode`, which makes kubectl exit with the same code.
//!
//! With `tty=true` (`kubectl exec -t`) the node runs the process on a pseudo-terminal: its
//! output (stdout and stderr merged, as with Kubernetes) goes to channel 1, channel 0 is the
//! terminal's input, and each resize message (channel 4, JSON `{"Width":W,"Height":H}`) sets
//! the terminal's window size. Both travel to the node as frames on the exec helper's stdin
//! (see [`Node::exec`](super::Node::exec)); the end of the WebSocket hangs the terminal up.

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

/// Kinds of the frames on the exec helper's stdin when it runs a terminal.
const TTY_INPUT: u8 = 0;
const TTY_RESIZE: u8 = 4;

/// One frame for the exec helper's stdin: `[kind, length (u32 big-endian), payload]`.
fn tty_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A resize message (`{"Width":W,"Height":H}`) as columns and rows, big-endian u16 each.
fn resize(json: &[u8]) -> Option<[u8; 4]> {
    let v: Value = serde_json::from_slice(json).ok()?;
    let clamp = |k: &str| v[k].as_u64().map(|n| n.min(u64::from(u16::MAX)) as u16);
    let (w, h) = (clamp("Width")?, clamp("Height")?);
    let mut out = [0u8; 4];
    out[..2].copy_from_slice(&w.to_be_bytes());
    out[2..].copy_from_slice(&h.to_be_bytes());
    Some(out)
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
    let request = exec_request(pod, params)?;
    let (key, protocol) = negotiate(req.headers())?;
    let command = request.command.clone();
    let (stdin, tty) = (request.stdin, request.tty);
    let child = state
        .node
        .exec(pod, request)
        .map_err(|e| ApiError::bad_request(e.0))?;
    let session = Session {
        command,
        streams: Streams {
            stdin,
            tty,
            v5: protocol == "v5.channel.k8s.io",
        },
    };
    let response = websocket_response(key, protocol);
    tokio::spawn(async move {
        if let Some(upgraded) = upgraded(req).await {
            session.run(upgraded, child).await;
        }
    });
    Ok(response)
}

/// The command, container and streams asked for, checked against the pod.
fn exec_request(pod: &Value, params: &[(String, String)]) -> Result<ExecRequest, ApiError> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let flag = |k: &str| get(k).is_some_and(super::query_bool);
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
    let container = super::container_of(pod, get("container"), true)?;
    Ok(ExecRequest {
        container,
        command,
        stdin: flag("stdin"),
        tty: flag("tty"),
    })
}

/// The WebSocket key and the channel subprotocol both sides speak.
fn negotiate(headers: &hyper::HeaderMap) -> Result<(&str, &'static str), ApiError> {
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
    match (key, protocol, upgrade.eq_ignore_ascii_case("websocket")) {
        (Some(key), Some(protocol), true) => Ok((key, protocol)),
        _ => Err(ApiError::bad_request("exec needs a WebSocket upgrade with the v5.channel.k8s.io or v4.channel.k8s.io subprotocol")),
    }
}

type Pipe = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// One exec session: the channels between kubectl's WebSocket and the helper's stdio.
struct Session {
    command: Vec<String>,
    streams: Streams,
}

/// What the client asked of the streams, and the protocol version.
#[derive(Clone, Copy)]
struct Streams {
    stdin: bool,
    tty: bool,
    v5: bool,
}

impl Session {
    async fn run(self, upgraded: Upgraded, mut child: tokio::process::Child) {
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
        let (mut sink, stream) = ws.split();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
        let reader = tokio::spawn(self.streams.client_to_stdin(stream, child.stdin.take()));
        // stdout / stderr → client. With a terminal the helper writes only its own errors on
        // stderr, and they go to the terminal's channel.
        let stdout = child.stdout.take().map(|p| Box::new(p) as Pipe);
        let stderr = child.stderr.take().map(|p| Box::new(p) as Pipe);
        let pumps: Vec<_> = [
            (1u8, stdout),
            (if self.streams.tty { 1 } else { 2u8 }, stderr),
        ]
        .into_iter()
        .filter_map(|(channel, pipe)| Some(tokio::spawn(pump(channel, pipe?, out_tx.clone()))))
        .collect();
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
        frame.extend_from_slice(
            &serde_json::to_vec(&status_for(code, &self.command)).expect("json"),
        );
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
    }
}

impl Streams {
    /// Client → the helper's stdin: channel 0 (input), 4 (resize, with a terminal), 255 (v5's
    /// close of a channel).
    async fn client_to_stdin(
        self,
        mut stream: futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<Upgraded>>,
        mut child_stdin: Option<tokio::process::ChildStdin>,
    ) {
        let Streams { stdin, tty, v5 } = self;
        let mut stdin_open = stdin;
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(data) if !data.is_empty() => {
                    let frame = match data[0] {
                        0 if tty && !stdin_open => continue,
                        0 if tty => tty_frame(TTY_INPUT, &data[1..]),
                        0 => data[1..].to_vec(),
                        4 if tty => match resize(&data[1..]) {
                            Some(size) => tty_frame(TTY_RESIZE, &size),
                            None => continue,
                        },
                        // With a terminal the helper's stdin also carries resizes: it
                        // stays open until the WebSocket ends.
                        255 if v5 && data.get(1) == Some(&0) => {
                            stdin_open = false;
                            if !tty {
                                child_stdin = None;
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    if let Some(w) = child_stdin.as_mut() {
                        if w.write_all(&frame).await.is_err() {
                            child_stdin = None;
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    }
}

/// Copies one of the helper's pipes to the client as frames of `channel`.
async fn pump(channel: u8, mut pipe: Pipe, tx: tokio::sync::mpsc::Sender<Message>) {
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
}
