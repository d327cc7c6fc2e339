//! Upstream connections: one keep-alive pool per endpoint set ([`Pool`], kept across routing
//! table swaps while the set is unchanged), held by the backend the request path already has in
//! hand — no pool map to look up, no boxed connector future, no client layer between the
//! request and hyper's HTTP/1.1 connection.
//!
//! A request takes the most recently idled connection (LIFO: the warmest), else connects to the
//! backend's next endpoint round-robin, moving on to the following endpoint when a connect
//! fails or times out (a failed connect is retried on every other endpoint once; nothing was
//! sent yet, so this is safe for any method). A pooled connection the backend closed meanwhile
//! is skipped; one found closed as the request is handed to it gives the request back unsent,
//! and it goes on a fresh connection. A connection returns to its pool when the response body
//! it carried has been read to its end (see [`UpstreamBody`]).
//!
//! The race no pool avoids: a backend closes a keep-alive connection that sat idle for its
//! timeout (Node's and Apache's 5 s, gunicorn's 2 s) just as a request goes out on it; the
//! request was sent, so it is not given back. A request that is safe to send twice — GET,
//! HEAD, OPTIONS or TRACE without a body — taken by a connection idle for at least
//! [`REPLAY_AFTER_IDLE`] is sent once more on a fresh connection when the first one fails
//! before answering (as Go's `http.Transport` and nginx's `proxy_next_upstream` do), instead
//! of a 502. Connections reused sooner (every one under load) carry no copy of the request.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::routes::CompiledBackend;

/// Idle connections kept per endpoint set; more are closed as they come back.
const MAX_IDLE: usize = 256;

/// A request safe to send twice, taken by a pooled connection idle at least this long, is
/// sent again on a fresh connection if that one fails before answering (see the module's
/// description). No backend closes an idle keep-alive connection sooner.
pub const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(100);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The idle keep-alive connections to one endpoint set, each with the proxy thread whose
/// runtime drives it ([`crate::threads::worker`]): a request takes only its own thread's, so
/// it never waits on another thread's scheduler.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Each with the thread driving it and since when it is idle.
    idle: Mutex<Vec<(usize, SendRequest<RequestBody>, Instant)>>,
}

impl Pool {
    /// An idle connection of this thread's, and how long it was idle.
    fn take(&self) -> Option<(SendRequest<RequestBody>, Duration)> {
        let worker = crate::threads::worker();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The most recently idled of this thread's (the warmest); closed ones go on the way.
        while let Some(i) = idle.iter().rposition(|(w, _, _)| *w == worker) {
            let (_, c, since) = idle.remove(i);
            if !c.is_closed() {
                return Some((c, since.elapsed()));
            }
        }
        None
    }

    /// Keeps `c`, driven by `worker`'s runtime.
    fn put(&self, worker: usize, c: SendRequest<RequestBody>) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            // Drop the closed ones first; still full: this one goes.
            idle.retain(|(_, c, _)| !c.is_closed());
            if idle.len() >= MAX_IDLE {
                return;
            }
        }
        idle.push((worker, c, Instant::now()));
    }
}

/// An upstream request's body: the client's, or none (a request sent again, see the module's
/// description — only body-less requests are).
#[derive(Debug)]
pub(crate) enum RequestBody {
    Client(Incoming),
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Client(b) => Pin::new(b).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Client(b) => b.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Client(b) => b.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// A copy of `req` to send again if the connection it goes on fails before answering: for a
/// request safe to send twice (an idempotent method without a body: RFC 9110 §9.2.2).
fn replay_copy(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) && req.body().is_end_stream();
    safe.then(|| {
        let mut copy = Request::new(RequestBody::Empty);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        copy
    })
}

/// Sends `req` to `backend` over a pooled or new connection; the response's body returns the
/// connection to the pool once read to its end.
pub(crate) async fn send(
    backend: &Arc<CompiledBackend>,
    connect_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<UpstreamBody>, BoxError> {
    let mut req = req.map(RequestBody::Client);
    let mut fresh = false;
    loop {
        let pooled = if fresh { None } else { backend.pool.take() };
        let (mut conn, replay) = match pooled {
            Some((c, idle)) => (
                c,
                (idle >= REPLAY_AFTER_IDLE)
                    .then(|| replay_copy(&req))
                    .flatten(),
            ),
            None => {
                fresh = true;
                (connect(backend, connect_timeout).await?, None)
            }
        };
        if conn.ready().await.is_err() {
            if fresh {
                return Err("the new upstream connection closed at once".into());
            }
            continue;
        }
        match conn.try_send_request(req).await {
            Ok(resp) => {
                let pool = backend.pool.clone();
                return Ok(resp.map(|body| UpstreamBody {
                    body,
                    conn: Some(conn),
                    worker: crate::threads::worker(),
                    pool,
                    done: false,
                }));
            }
            Err(mut e) => match (e.take_message(), replay) {
                // Not sent: the connection was found closed; another one gets it.
                (Some(unsent), _) if !fresh => req = unsent,
                // Sent, and the long-idle connection failed before answering (closed, reset —
                // not an answer hyper could not parse): most likely the backend closed it as
                // the request went out. Once more, on a fresh connection.
                (None, Some(copy)) if !e.error().is_parse() => {
                    tracing::debug!(backend = %backend.name,
                        "upstream connection failed before answering ({}); sending again", e.error());
                    req = copy;
                    fresh = true;
                }
                _ => return Err(e.into_error().into()),
            },
        }
    }
}

/// A new connection to the backend's next endpoint that accepts one (see the module's
/// description), its HTTP/1.1 driver spawned.
async fn connect(
    backend: &CompiledBackend,
    timeout: Duration,
) -> Result<SendRequest<RequestBody>, BoxError> {
    let n = backend.endpoints.len();
    if n == 0 {
        return Err(format!("{}: no ready endpoint", backend.name).into());
    }
    let first = backend.next.fetch_add(1, Ordering::Relaxed);
    let mut last: BoxError = "no endpoint".into();
    for i in 0..n {
        let addr = backend.endpoints[(first + i) % n];
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                let (send, conn) = http1::Builder::new()
                    .handshake(TokioIo::new(s))
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!("upstream connection: {e}");
                    }
                });
                return Ok(send);
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.name, %addr, "connect failed: {e}");
                last = format!("{addr}: {e}").into();
            }
            Err(_) => {
                tracing::debug!(backend = %backend.name, %addr, "connect timed out");
                last = format!("{addr}: connect timed out after {timeout:?}").into();
            }
        }
        // Spread the next connection elsewhere too.
        backend.next.fetch_add(1, Ordering::Relaxed);
    }
    Err(last)
}

/// An upstream response's body; once read to its end (or when it had none) its connection
/// goes back to the pool, else (the client went away mid-body) the connection is closed.
pub struct UpstreamBody {
    body: Incoming,
    conn: Option<SendRequest<RequestBody>>,
    /// The proxy thread whose runtime drives `conn`.
    worker: usize,
    pool: Arc<Pool>,
    done: bool,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.put(self.worker, c);
        }
    }

    /// The connection was upgraded (a 101 answer): it is no longer HTTP, never pooled.
    pub(crate) fn upgraded(&mut self) {
        self.conn = None;
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.done || self.body.is_end_stream() {
            self.release();
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.done = true;
                self.release();
            }
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => {
                self.done = true;
                self.release();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
