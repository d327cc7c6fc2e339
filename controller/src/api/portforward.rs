//! `kubectl port-forward`: SPDY/3.1 sessions (`portforward.k8s.io`), either tunnelled in
//! WebSocket binary messages (a `GET` with the subprotocol `SPDY/3.1+portforward.k8s.io`,
//! which kubectl 1.32 tries first: KEP-4006) or over a plain `Upgrade: SPDY/3.1` connection
//! (its fallback: a `POST` with `X-Stream-Protocol-Version: portforward.k8s.io`).
//!
//! Per local connection kubectl opens two streams, `streamType: error` then `streamType: data`,
//! both with `port` and `requestID`. Each stream gets an empty SYN_REPLY (kubectl waits for it).
//! Once both streams of a request are open the server connects to the pod's port (its
//! `status.podIP`, or 127.0.0.1 for a `hostNetwork` pod) and relays bytes; a failure is written
//! on the error stream, and both streams are then finished — as the kubelet does.
//!
//! Framing is written here (a few hundred lines): the only SPDY/3.1 crate found, `spdy-mux`
//! 0.1, is new and client-side (it opens stream pairs over its own pool of WebSocket
//! transports) where a server accepting kubectl's streams is needed. Header blocks are zlib
//! streams (one per direction per session) with the SPDY/3 dictionary, through `flate2`'s
//! zlib-rs backend (which supports preset dictionaries). Flow control is not enforced, as
//! kubectl's SPDY library (spdystream) does not either; its pings are echoed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures_util::{SinkExt, StreamExt};
use hyper::{Request, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use super::status::ApiError;
use super::{full, Body, ReqBody};

const PROTOCOL: &str = "portforward.k8s.io";
const TUNNELED: &str = "SPDY/3.1+portforward.k8s.io";

// Frame types and flags (SPDY/3).
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// Frames larger than this are refused (kubectl's are small; data is cut at [`CHUNK`]).
const MAX_FRAME: usize = 1 << 24;
/// Bytes read from the pod per data frame.
const CHUNK: usize = 32 * 1024;
/// The most a SPDY header block may inflate to (zlib's ratio reaches 1000:1, so a frame of a
/// few megabytes would otherwise become gigabytes). kubectl's blocks are a few hundred bytes.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// The header names of the SPDY/3 compression dictionary, each written as a 32-bit length
/// then the name; [`DICTIONARY_TAIL`] follows them (SPDY/3 draft, "Compression").
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// Handles a port-forward request for `pod` (already authorized).
pub fn handle(
    node: &dyn super::Node,
    pod: &Value,
    req: Request<ReqBody>,
) -> Result<Response<Body>, ApiError> {
    let target = pod_address(pod)?;
    // A hostNetwork pod (the admin's: baseline refuses it to tokens) is forwarded to on the
    // node's loopback, as kubelet does in the pod's (the host's) network namespace; any other
    // pod only on its own address on the pod network.
    let host_network = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    if !host_network && !node.is_pod_address(target) {
        return Err(ApiError::bad_request(format!(
            "the address of pod {} ({target}) is not on this node's pod network",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    let pod_name = format!(
        "{}_{}",
        pod["metadata"]["name"].as_str().unwrap_or_default(),
        pod["metadata"]["namespace"].as_str().unwrap_or_default()
    );
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let upgrade = header("upgrade");
    let pod_ctx = PodTarget {
        ip: target,
        name: pod_name,
        uid,
    };
    let websocket = upgrade.eq_ignore_ascii_case("websocket");
    let response = if websocket {
        let key = header("sec-websocket-key");
        let offered = header("sec-websocket-protocol");
        if key.is_empty() || !offered.split(',').any(|p| p.trim() == TUNNELED) {
            return Err(ApiError::bad_request(format!(
                "port-forward over WebSocket needs the {TUNNELED} subprotocol"
            )));
        }
        super::exec::websocket_response(&key, TUNNELED)
    } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        let offered = header("x-stream-protocol-version");
        if !offered.is_empty() && !offered.split(',').any(|p| p.trim() == PROTOCOL) {
            return Err(ApiError::bad_request(format!(
                "port-forward supports the {PROTOCOL} stream protocol only"
            )));
        }
        Response::builder()
            .status(101)
            .header(hyper::header::UPGRADE, "SPDY/3.1")
            .header(hyper::header::CONNECTION, "Upgrade")
            .header("X-Stream-Protocol-Version", PROTOCOL)
            .body(full(Bytes::new()))
            .expect("valid response")
    } else {
        return Err(ApiError::bad_request(
            "port-forward needs a WebSocket upgrade with the SPDY/3.1+portforward.k8s.io subprotocol, or an SPDY/3.1 upgrade",
        ));
    };
    tokio::spawn(async move {
        let transport = if websocket { "WebSocket" } else { "SPDY" };
        let Some(io) = super::exec::upgraded(req).await else {
            return;
        };
        tracing::info!(pod = %pod_ctx.name, transport, "port-forward session");
        // Bytes from kubectl, and frames for it.
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(256);
        let (reader, writer) = if websocket {
            websocket_pumps(io, in_tx, out_rx).await
        } else {
            raw_pumps(io, in_tx, out_rx)
        };
        session(pod_ctx, in_rx, out_tx).await;
        reader.abort();
        let _ = writer.await;
    });
    Ok(response)
}

type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// SPDY inside WebSocket binary messages (message boundaries mean nothing).
async fn websocket_pumps(
    io: Upgraded,
    in_tx: mpsc::Sender<Bytes>,
    mut out_rx: mpsc::Receiver<Bytes>,
) -> (JoinHandle<()>, JoinHandle<()>) {
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let b = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(b).await.is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if sink.send(Message::Binary(b)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (reader, writer)
}

/// SPDY straight on the upgraded connection.
fn raw_pumps(
    io: Upgraded,
    in_tx: mpsc::Sender<Bytes>,
    mut out_rx: mpsc::Receiver<Bytes>,
) -> (JoinHandle<()>, JoinHandle<()>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    (reader, writer)
}

/// Where the pod's ports are reached from the host. A pod that has finished has none (its
/// address is released and may be another pod's): refused, as kubectl and kubelet do.
fn pod_address(pod: &Value) -> Result<IpAddr, ApiError> {
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod {} is not running. Current status={phase}",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    if pod["spec"]["hostNetwork"].as_bool() == Some(true) {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    pod["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "pod {} has no address yet (it is not running)",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            ))
        })
}

struct PodTarget {
    ip: IpAddr,
    name: String,
    uid: String,
}

/// Header blocks: one zlib stream per direction, with the SPDY dictionary.
struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl HeaderCodec {
    fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .expect("a fresh compressor takes a dictionary");
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
        }
    }

    fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<u8> = Vec::with_capacity((block.len() * 4 + 64).min(MAX_HEADER_BLOCK));
        let mut pos = 0;
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(format!(
                    "header block: inflates to more than {MAX_HEADER_BLOCK} bytes"
                ));
            }
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let r = self
                .inflate
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - in_before) as usize;
            pos += consumed;
            match r {
                // Done once all input is in and the output did not fill the room it had.
                Ok(_) if pos >= block.len() && out.len() < out.capacity() => break,
                Ok(_) if consumed == 0 && out.len() == out_before && pos < block.len() => {
                    return Err("header block: no progress".into())
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("header block: {e}")),
            }
        }
        parse_nv(&out)
    }

    fn encode(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
        for (n, v) in pairs {
            raw.extend_from_slice(&(n.len() as u32).to_be_bytes());
            raw.extend_from_slice(n.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .expect("deflate into memory");
            pos += (self.deflate.total_in() - before) as usize;
            if pos >= raw.len() && out.capacity() > out.len() {
                return out;
            }
        }
    }
}

/// A name/value block: a count, then each name and value with 32-bit lengths.
fn parse_nv(b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut b = b;
    let take_u32 = |b: &mut &[u8]| -> Result<usize, String> {
        if b.len() < 4 {
            return Err("short header block".into());
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *b = &b[4..];
        Ok(n)
    };
    let take = |b: &mut &[u8], n: usize| -> Result<String, String> {
        if b.len() < n {
            return Err("short header block".into());
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        *b = &b[n..];
        Ok(s)
    };
    let count = take_u32(&mut b)?;
    let mut pairs = Vec::new();
    for _ in 0..count {
        let n = take_u32(&mut b)?;
        let name = take(&mut b, n)?.to_ascii_lowercase();
        let n = take_u32(&mut b)?;
        let value = take(&mut b, n)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[0x80, 0x03]);
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    Bytes::from(f)
}

fn data(stream: u32, flags: u8, payload: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    Bytes::from(f)
}

fn reply(codec: &mut HeaderCodec, stream: u32) -> Bytes {
    let mut p = stream.to_be_bytes().to_vec();
    p.extend_from_slice(&codec.encode(&[]));
    control(SYN_REPLY, 0, &p)
}

/// The two streams of one forwarded connection.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: String,
}

/// One forwarded connection, once both streams are open.
struct Forward {
    /// Bytes from kubectl for the pod; `None` when kubectl finished its side.
    to_pod: mpsc::Sender<Option<Bytes>>,
    /// Its error stream.
    error: u32,
    task: JoinHandle<()>,
}

/// Runs one SPDY session: `input` is the byte stream from kubectl, `output` takes frames.
async fn session(pod: PodTarget, mut input: mpsc::Receiver<Bytes>, output: mpsc::Sender<Bytes>) {
    let mut s = Session {
        pod: Arc::new(pod),
        codec: HeaderCodec::new(),
        pairs: HashMap::new(),
        forwards: HashMap::new(),
        request_of: HashMap::new(),
        output,
    };
    let mut buf = BytesMut::new();
    'session: while let Some(chunk) = input.recv().await {
        buf.extend_from_slice(&chunk);
        while buf.len() >= 8 {
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            if len >= MAX_FRAME {
                break 'session;
            }
            if buf.len() < 8 + len {
                break;
            }
            let head = buf.split_to(8);
            let payload = buf.split_to(len).freeze();
            let flags = head[4];
            let go_on = if head[0] & 0x80 == 0 {
                let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                s.data_frame(stream, flags, payload).await;
                true
            } else {
                s.control_frame(u16::from_be_bytes([head[2], head[3]]), payload)
                    .await
            };
            if !go_on {
                break 'session;
            }
        }
        s.forwards.retain(|_, f| !f.task.is_finished());
    }
    for (_, f) in s.forwards {
        f.task.abort();
    }
}

/// One session fed `chunks` (the bytes from kubectl, as they arrive), for the fuzz targets in
/// `fuzz/`: the number of bytes written back. Its pod is at `fe80::1` without an interface,
/// which the kernel refuses at `connect` (EINVAL): no forward sends a packet anywhere.
#[doc(hidden)]
pub fn fuzz_session(chunks: &[&[u8]]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
        let pod = PodTarget {
            ip: IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            name: "fuzz_default".into(),
            uid: "fuzz".into(),
        };
        let written = tokio::spawn(async move {
            let mut n = 0;
            while let Some(b) = out_rx.recv().await {
                n += b.len();
            }
            n
        });
        let feed = async move {
            for c in chunks {
                if in_tx.send(Bytes::copy_from_slice(c)).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(feed, session(pod, in_rx, out_tx));
        written.await.unwrap_or(0)
    })
}

/// One port-forward session's streams.
struct Session {
    pod: Arc<PodTarget>,
    codec: HeaderCodec,
    /// Pairs (error + data stream) by request id, while incomplete.
    pairs: HashMap<String, Pair>,
    /// Data stream id → its forward.
    forwards: HashMap<u32, Forward>,
    /// Streams of pairs still incomplete, with their request (to drop it on RST_STREAM).
    request_of: HashMap<u32, String>,
    output: mpsc::Sender<Bytes>,
}

fn stream_id(payload: &[u8]) -> u32 {
    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff
}

impl Session {
    /// Data from kubectl for a forwarded connection.
    async fn data_frame(&self, stream: u32, flags: u8, payload: Bytes) {
        if let Some(f) = self.forwards.get(&stream) {
            if !payload.is_empty() {
                // A gone pod connection just drops what kubectl sends.
                let _ = f.to_pod.send(Some(payload)).await;
            }
            if flags & FLAG_FIN != 0 {
                let _ = f.to_pod.send(None).await;
            }
        }
    }

    /// A control frame; false ends the session.
    async fn control_frame(&mut self, kind: u16, payload: Bytes) -> bool {
        match kind {
            SYN_STREAM if payload.len() >= 10 => return self.syn_stream(&payload).await,
            RST_STREAM if payload.len() >= 4 => {
                let stream = stream_id(&payload);
                // kubectl resets the data stream once the pod's side ended (the forward has
                // finished), or when its local connection failed: then the pod connection
                // is dropped and the error stream finished, which kubectl waits for.
                if let Some(f) = self.forwards.remove(&stream) {
                    if !f.task.is_finished() {
                        f.task.abort();
                        let _ = self.output.send(data(f.error, FLAG_FIN, &[])).await;
                    }
                }
                if let Some(r) = self.request_of.remove(&stream) {
                    self.pairs.remove(&r);
                }
            }
            // Echo kubectl's keep-alive pings.
            PING => return self.output.send(control(PING, 0, &payload)).await.is_ok(),
            GOAWAY => return false,
            // SETTINGS, WINDOW_UPDATE, HEADERS, NOOP: nothing to do.
            _ => {}
        }
        true
    }

    /// A new stream: one half of a (error, data) pair for a port; a complete pair starts a
    /// forward. False ends the session.
    async fn syn_stream(&mut self, payload: &[u8]) -> bool {
        let stream = stream_id(payload);
        let headers = match self.codec.decode(&payload[10..]) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!("port-forward: {e}");
                return false;
            }
        };
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (kind, port, request) = (get("streamtype"), get("port"), get("requestid"));
        if self
            .output
            .send(reply(&mut self.codec, stream))
            .await
            .is_err()
        {
            return false;
        }
        let pair = self.pairs.entry(request.clone()).or_default();
        pair.port = port;
        match kind.as_str() {
            "error" => pair.error = Some(stream),
            "data" => pair.data = Some(stream),
            other => {
                tracing::debug!("port-forward: unknown stream type {other:?}");
                let mut p = stream.to_be_bytes().to_vec();
                p.extend_from_slice(&1u32.to_be_bytes()); // PROTOCOL_ERROR
                let _ = self.output.send(control(RST_STREAM, 0, &p)).await;
                return true;
            }
        }
        self.request_of.insert(stream, request.clone());
        if let (Some(error), Some(data_id)) = (pair.error, pair.data) {
            let port = pair.port.clone();
            self.pairs.remove(&request);
            self.request_of.remove(&error);
            self.request_of.remove(&data_id);
            let (tx, rx) = mpsc::channel(64);
            let task = tokio::spawn(forward(
                self.pod.clone(),
                port,
                error,
                data_id,
                rx,
                self.output.clone(),
            ));
            self.forwards.insert(
                data_id,
                Forward {
                    to_pod: tx,
                    error,
                    task,
                },
            );
        }
        true
    }
}

/// An I/O error as Go words it (`connection refused`, not `Connection refused (os error 111)`).
fn go_style(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.to_ascii_lowercase()
}

/// Connects to the pod's `port` and relays bytes between it and the data stream.
async fn forward(
    pod: Arc<PodTarget>,
    port: String,
    error: u32,
    data_stream: u32,
    mut from_client: mpsc::Receiver<Option<Bytes>>,
    output: mpsc::Sender<Bytes>,
) {
    let conn = match port.parse::<u16>() {
        Ok(p) if p > 0 => tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(SocketAddr::new(pod.ip, p)),
        )
        .await
        .map_err(|_| "i/o timeout".to_string())
        .and_then(|r| r.map_err(|e| go_style(&e))),
        _ => Err(format!("invalid port {port:?}")),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            // The kubelet's wording.
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: dial tcp {}:{port}: connect: {e}",
                pod.name, pod.uid, pod.ip
            );
            tracing::debug!("port-forward: {msg}");
            let _ = output.send(data(error, 0, msg.as_bytes())).await;
            let _ = output.send(data(error, FLAG_FIN, &[])).await;
            let _ = output.send(data(data_stream, FLAG_FIN, &[])).await;
            return;
        }
    };
    let (mut rd, mut wr) = conn.into_split();
    let upstream = tokio::spawn(async move {
        while let Some(m) = from_client.recv().await {
            match m {
                Some(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        let _ = wr.shutdown().await;
        // Keep receiving (and dropping) so the session never blocks on this stream.
        while from_client.recv().await.is_some() {}
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if output.send(data(data_stream, 0, &buf[..n])).await.is_err() {
                    upstream.abort();
                    return;
                }
            }
        }
    }
    let _ = output.send(data(data_stream, FLAG_FIN, &[])).await;
    let _ = output.send(data(error, FLAG_FIN, &[])).await;
    upstream.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_pod_is_not_forwarded_to() {
        let pod = |phase: &str| {
            serde_json::json!({"metadata": {"name": "job-x"}, "spec": {},
                "status": {"phase": phase, "podIP": "10.42.0.9"}})
        };
        assert_eq!(
            pod_address(&pod("Running")).unwrap(),
            "10.42.0.9".parse::<IpAddr>().unwrap()
        );
        for phase in ["Succeeded", "Failed"] {
            let e = pod_address(&pod(phase)).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(
                e.message
                    .contains(&format!("pod job-x is not running. Current status={phase}")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32, which zlib streams that use it carry.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut tx = HeaderCodec::new();
        let mut rx = HeaderCodec::new();
        let pairs = [("streamtype", "error"), ("port", "80"), ("requestid", "0")];
        for _ in 0..3 {
            let block = tx.encode(&pairs);
            let got = rx.decode(&block).expect("decodes");
            let want: Vec<(String, String)> = pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want);
        }
        assert!(rx.decode(&tx.encode(&[])).expect("empty").is_empty());
    }

    #[test]
    fn a_header_block_that_inflates_huge_is_refused() {
        // A 16 MiB value compresses to ~16 KiB: refused once past the cap, without
        // inflating it all.
        let mut tx = HeaderCodec::new();
        let mut rx = HeaderCodec::new();
        let value = "a".repeat(16 << 20);
        let block = tx.encode(&[("streamtype", &value)]);
        assert!(block.len() < 1 << 20, "{}", block.len());
        let e = rx.decode(&block).unwrap_err();
        assert!(e.contains("inflates to more than 262144 bytes"), "{e}");
    }

    #[test]
    fn frames_have_spdy3_headers() {
        assert_eq!(
            &control(PING, 0, &[0, 0, 0, 1])[..],
            &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(
            &data(5, FLAG_FIN, b"hi")[..],
            &[0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']
        );
    }
}
