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

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::routes::CompiledBackend;

/// Idle connections kept per endpoint set; more are closed as they come back.
const MAX_IDLE: usize = 256;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The idle keep-alive connections to one endpoint set, each with the proxy thread whose
/// runtime drives it ([`crate::threads::worker`]): a request takes only its own thread's, so
/// it never waits on another thread's scheduler.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<(usize, SendRequest<Incoming>)>>,
}

impl Pool {
    fn take(&self) -> Option<SendRequest<Incoming>> {
        let worker = crate::threads::worker();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The most recently idled of this thread's (the warmest); closed ones go on the way.
        while let Some(i) = idle.iter().rposition(|(w, _)| *w == worker) {
            let (_, c) = idle.remove(i);
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `c`, driven by `worker`'s runtime.
    fn put(&self, worker: usize, c: SendRequest<Incoming>) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            // Drop the closed ones first; still full: this one goes.
            idle.retain(|(_, c)| !c.is_closed());
            if idle.len() >= MAX_IDLE {
                return;
            }
        }
        idle.push((worker, c));
    }
}

/// Sends `req` to `backend` over a pooled or new connection; the response's body returns the
/// connection to the pool once read to its end.
pub(crate) async fn send(
    backend: &Arc<CompiledBackend>,
    connect_timeout: Duration,
    mut req: Request<Incoming>,
) -> Result<Response<UpstreamBody>, BoxError> {
    let mut fresh = false;
    loop {
        let mut conn = match backend.pool.take() {
            Some(c) => c,
            None => {
                fresh = true;
                connect(backend, connect_timeout).await?
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
            Err(mut e) => match e.take_message() {
                // Not sent: the connection was found closed; another one gets it.
                Some(unsent) if !fresh => req = unsent,
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
) -> Result<SendRequest<Incoming>, BoxError> {
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
    conn: Option<SendRequest<Incoming>>,
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
