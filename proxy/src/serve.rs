//! Serving client connections within bounds — shared by the ingress proxy's listeners and the
//! Kubernetes API server, so that both have the same defences:
//!
//! - a **connection cap** ([`Gate`]): past it a new connection is closed at once (the ones
//!   open keep working);
//! - a **TLS handshake timeout** ([`tls_handshake`]): a client that connects and sends nothing
//!   is cut;
//! - a **header-read timeout**: from the connection (or the handshake's end) to the first
//!   request's head, and for every HTTP/1 request head (hyper's own), so a client dribbling
//!   its headers a byte at a time is cut;
//! - an **idle timeout**: a connection with no request in flight for this long is closed
//!   (HTTP/2 with a GOAWAY). A request is in flight until its response body has ended, so a
//!   watch, a followed log or any other long answer keeps its connection, however quiet.
//!
//! The values kube-apiserver uses are the defaults ([`Limits::default`]): Go's
//! `ReadHeaderTimeout` 32 s (skiff: 30 s, hyper's default) and `IdleTimeout` 90 s.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The bounds of a listener's connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From accepting a connection to the end of its TLS handshake.
    pub handshake_timeout: Duration,
    /// From the connection (after its handshake) to its first request's head, and for each
    /// HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// How long a connection may stay without a request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as they come.
    pub max_connections: usize,
}

/// Default [`Limits::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::header_read_timeout`] (hyper's default; kube-apiserver's is 32 s).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::idle_timeout`] (kube-apiserver's, and Go's `http.DefaultTransport`'s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default [`Limits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// The connection cap of one server (all its listeners).
#[derive(Clone)]
pub struct Gate {
    open: Arc<Semaphore>,
    limits: Limits,
    refused: Arc<AtomicUsize>,
}

impl Gate {
    /// A gate for `limits.max_connections` connections.
    pub fn new(limits: Limits) -> Gate {
        Gate {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            refused: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The limits this gate serves with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A place for a new connection, held as long as it is open; `None` when the cap is
    /// reached (the caller closes the connection). The first refusal of a burst is logged.
    pub fn admit(&self, what: &str, peer: std::net::SocketAddr) -> Option<OwnedSemaphorePermit> {
        match self.open.clone().try_acquire_owned() {
            Ok(permit) => {
                self.refused.store(0, Ordering::Relaxed);
                Some(permit)
            }
            Err(_) => {
                if self.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(%peer, max = self.limits.max_connections,
                        "{what}: connection cap reached, closing new connections");
                }
                None
            }
        }
    }

    /// An HTTP/1.1 + HTTP/2 connection builder with the header-read timeout.
    pub fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        b.http2().timer(TokioTimer::new());
        b
    }
}

/// Why a TLS handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Either side refused or broke it off.
    Error,
    /// Not done within the handshake timeout.
    Timeout,
}

/// The TLS handshake of `tcp`, within `timeout`.
pub async fn tls_handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    timeout: Duration,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, HandshakeFailure> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            Err(HandshakeFailure::Error)
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            Err(HandshakeFailure::Timeout)
        }
    }
}

/// Requests in flight on one connection, and since when none is.
struct Activity {
    state: Mutex<(usize, Instant, bool)>,
    changed: Notify,
}

impl Activity {
    fn start(self: &Arc<Self>) -> InFlight {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        s.2 = true;
        if s.0 == 1 {
            self.changed.notify_one();
        }
        InFlight(self.clone())
    }

    /// When the connection will have been idle too long (`None`: a request is in flight).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (active, since, served) = *s;
        (active == 0).then(|| {
            since
                + if served {
                    limits.idle_timeout
                } else {
                    limits.header_read_timeout.min(limits.idle_timeout)
                }
        })
    }
}

/// A request in flight, until its response body has ended (or was dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        if s.0 == 0 {
            s.1 = Instant::now();
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight while it is sent.
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection with `service` until it ends, is idle for too long (see the module's
/// description), or — before its first request — has not sent a request head in time.
/// HTTP/1.1 upgrades are served: the connection ends here and its upgraded stream lives on
/// with whoever took it.
pub async fn serve<I, F, Fut, B>(gate: &Gate, builder: &auto::Builder<TokioExecutor>, io: I, f: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity {
        state: Mutex::new((0, Instant::now(), false)),
        changed: Notify::new(),
    });
    let f = Arc::new(f);
    let tracking = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let in_flight = tracking.start();
        let response = f(req);
        async move {
            let response = response.await;
            Ok::<_, std::convert::Infallible>(response.map(|inner| Tracked {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let limits = gate.limits();
    loop {
        let deadline = activity.deadline(limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = activity.changed.notified() => continue,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
            }
        }
    }
    // Idle: close (HTTP/2: GOAWAY, then the end once the client has seen it).
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}
