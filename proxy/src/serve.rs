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
//!
//! And a **drain** ([`Gate::drain`], when the daemon stops): the accept loops stop accepting
//! (connections still arriving wait in the listening socket's queue for the next daemon, when
//! the socket outlives this one — [`Inherited`]), requests in flight are answered, HTTP/2
//! connections get a GOAWAY at once, and HTTP/1 connections answer their next request with
//! `Connection: close` — one idle for [`DRAIN_IDLE_GRACE`] is closed (a request its client
//! has already sent is read first). So a client's next request goes to the next daemon.

use std::net::SocketAddr;
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
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
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
/// While draining, how long an HTTP/1 connection with no request in flight stays open: a
/// request its client sent as the drain began is still read and answered (with
/// `Connection: close`) instead of meeting a closed connection.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_millis(500);
/// How long a drain waits for the requests in flight (a proxied download, a log followed
/// through the ingress) before the daemon stops anyway; under systemd's `TimeoutStopSec=30`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

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

/// The connection cap of one server (all its listeners), and its drain.
#[derive(Clone)]
pub struct Gate {
    open: Arc<Semaphore>,
    limits: Limits,
    refused: Arc<AtomicUsize>,
    draining: Arc<watch::Sender<bool>>,
}

impl Gate {
    /// A gate for `limits.max_connections` connections.
    pub fn new(limits: Limits) -> Gate {
        Gate {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            refused: Arc::new(AtomicUsize::new(0)),
            draining: Arc::new(watch::channel(false).0),
        }
    }

    /// Starts draining every connection of this gate (see the module's description); the
    /// accept loops stop accepting on their own (they call this as they stop).
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Waits until every connection of this gate has closed, at most `within`; whether they
    /// all did.
    pub async fn drained(&self, within: Duration) -> bool {
        // Polled, not `acquire_many`: a waiter for every permit would make the semaphore
        // refuse the connections another listener of this gate still accepts meanwhile.
        let deadline = Instant::now() + within;
        while self.open.available_permits() < self.limits.max_connections {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops an accept loop: drains (see [`Gate::drain`]) and waits for the connections to
    /// close, at most [`DRAIN_TIMEOUT`]. `what` names the listener in the log.
    pub async fn stop_serving(&self, what: &str) {
        self.drain();
        if !self.drained(DRAIN_TIMEOUT).await {
            tracing::warn!(
                "{what}: requests still in flight after {DRAIN_TIMEOUT:?} of draining; stopping anyway"
            );
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

/// What one connection is doing.
struct State {
    /// Requests in flight.
    active: usize,
    /// Since when none is.
    since: Instant,
    /// Whether a request was seen.
    served: bool,
    /// Whether it speaks HTTP/2.
    h2: bool,
    /// Draining since then: HTTP/1 responses say `Connection: close`.
    draining: Option<Instant>,
}

/// Requests in flight on one connection, and since when none is.
struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(self: &Arc<Self>, version: hyper::Version) -> InFlight {
        let mut s = self.lock();
        s.active += 1;
        s.served = true;
        s.h2 = version == hyper::Version::HTTP_2;
        // Only a drain needs the connection's loop to look at once (to send HTTP/2's GOAWAY,
        // or to close an HTTP/1 connection soon after its last answer); otherwise the idle
        // timer finds out lazily when it fires, instead of a wake-up and a re-armed timer
        // on every request.
        if s.active == 1 && s.draining.is_some() {
            self.changed.notify_one();
        }
        InFlight(self.clone())
    }

    /// When the connection will have been idle too long (`None`: a request is in flight).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.lock();
        (s.active == 0).then(|| {
            let idle = s.since
                + if s.served {
                    limits.idle_timeout
                } else {
                    limits.header_read_timeout.min(limits.idle_timeout)
                };
            match s.draining {
                Some(since) => idle.min(since.max(s.since) + DRAIN_IDLE_GRACE),
                None => idle,
            }
        })
    }
}

/// A request in flight, until its response body has ended (or was dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.active -= 1;
        if s.active == 0 {
            s.since = Instant::now();
            if s.draining.is_some() {
                self.0.changed.notify_one();
            }
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
/// description), or — before its first request — has not sent a request head in time; or,
/// once the gate drains, as the module's description says. HTTP/1.1 upgrades are served: the
/// connection ends here and its upgraded stream lives on with whoever took it.
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
        state: Mutex::new(State {
            active: 0,
            since: Instant::now(),
            served: false,
            h2: false,
            draining: None,
        }),
        changed: Notify::new(),
    });
    let f = Arc::new(f);
    let tracking = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let version = req.version();
        let in_flight = tracking.start(version);
        let response = f(req);
        let tracking = tracking.clone();
        async move {
            let mut response = response.await;
            // Draining: this connection's last HTTP/1 response (hyper closes after it).
            if version < hyper::Version::HTTP_2
                && tracking.lock().draining.is_some()
                && response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS
            {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(response.map(|inner| Tracked {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let limits = gate.limits();
    let mut draining = gate.draining.subscribe();
    // One timer for the connection's life, re-armed only when it fires early (a request was
    // in flight, or came and went: the deadline moved) or the drain begins.
    let next_check = |activity: &Activity| {
        activity
            .deadline(limits)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout)
    };
    let idle = tokio::time::sleep_until(next_check(&activity));
    tokio::pin!(idle);
    loop {
        let (drain_started, h2) = {
            let s = activity.lock();
            (s.draining.is_some(), s.h2)
        };
        if drain_started && h2 {
            // GOAWAY: the streams in flight finish, the client opens no new one here.
            break;
        }
        tokio::select! {
            // The connection first: a request that has arrived is read (and so in flight)
            // before a deadline is looked at.
            biased;
            _ = conn.as_mut() => return,
            _ = activity.changed.notified() => {
                idle.as_mut().reset(next_check(&activity));
            }
            _ = draining.wait_for(|d| *d), if !drain_started => {
                activity.lock().draining = Some(Instant::now());
                idle.as_mut().reset(next_check(&activity));
            }
            _ = idle.as_mut() => {
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
                idle.as_mut().reset(next_check(&activity));
            }
        }
    }
    // Idle, or draining HTTP/2: close (HTTP/2: GOAWAY, then the end once the streams in
    // flight are done and the client has seen it).
    conn.as_mut().graceful_shutdown();
    let grace = if drain_started(&activity) {
        DRAIN_TIMEOUT
    } else {
        Duration::from_secs(5)
    };
    let _ = tokio::time::timeout(grace, conn).await;
}

fn drain_started(activity: &Activity) -> bool {
    activity.lock().draining.is_some()
}

/// Listening sockets the daemon was handed when it started — by systemd's socket activation
/// (`skiff.socket`) or whoever stands in for it — so that they outlive each daemon: while one
/// stops and the next starts, connections wait in the socket's queue instead of being refused.
/// Each is taken by the listener it matches ([`Inherited::bind`]); the rest are bound anew.
///
/// It also keeps a copy of every listening socket it gives out ([`Inherited::kept`]), for a
/// successor to take over without systemd (`src/handover.rs`).
#[derive(Default)]
pub struct Inherited {
    sockets: Mutex<Vec<std::net::TcpListener>>,
    kept: Mutex<Vec<std::net::TcpListener>>,
}

impl std::fmt::Debug for Inherited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.addresses()).finish()
    }
}

impl Inherited {
    /// These sockets, to be taken by address.
    pub fn new(sockets: Vec<std::net::TcpListener>) -> Inherited {
        Inherited {
            sockets: Mutex::new(sockets),
            kept: Mutex::default(),
        }
    }

    /// Copies of every listening socket given out so far (for a successor).
    pub fn kept(&self) -> std::io::Result<Vec<std::net::TcpListener>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().map(|s| s.try_clone()).collect()
    }

    /// Whether a socket listening on `socket` serves a listener asked for on `wanted`: the same
    /// port, and the same address or both unspecified (systemd's `ListenStream=443` listens on
    /// `[::]:443`, which covers `0.0.0.0:443`).
    pub fn serves(socket: SocketAddr, wanted: SocketAddr) -> bool {
        socket.port() == wanted.port()
            && (socket.ip().to_canonical() == wanted.ip().to_canonical()
                || (socket.ip().is_unspecified() && wanted.ip().is_unspecified()))
    }

    /// The addresses of the sockets not taken yet.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Takes the socket serving `addr`, if one was handed over.
    pub fn take(&self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let i = sockets
            .iter()
            .position(|s| s.local_addr().is_ok_and(|a| Inherited::serves(a, addr)))?;
        Some(sockets.remove(i))
    }

    /// The inherited socket serving `addr`, else a new one bound to `addr`.
    pub async fn bind(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::from_std(self.bind_std(addr).await?)
    }

    /// As [`Inherited::bind`], a non-blocking std socket (for another runtime to serve).
    pub async fn bind_std(&self, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let socket = match self.take(addr) {
            Some(socket) => {
                tracing::info!(
                    "listening on {addr} through the socket handed over ({})",
                    socket.local_addr()?
                );
                socket
            }
            None => tokio::net::TcpListener::bind(addr).await?.into_std()?,
        };
        socket.set_nonblocking(true)?;
        let copy = socket.try_clone()?;
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(copy);
        Ok(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A gate and a listener whose connections answer "ok" through [`serve`].
    async fn server() -> (Gate, SocketAddr, tokio::task::JoinHandle<()>) {
        let gate = Gate::new(Limits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let g = gate.clone();
        let task = tokio::spawn(async move {
            let builder = Arc::new(g.builder());
            loop {
                let (tcp, peer) = listener.accept().await.unwrap();
                let permit = g.admit("test", peer).unwrap();
                let (g, builder) = (g.clone(), builder.clone());
                tokio::spawn(async move {
                    serve(&g, &builder, tcp, |_req| async {
                        Response::new(Full::new(bytes::Bytes::from_static(b"ok")))
                    })
                    .await;
                    drop(permit);
                });
            }
        });
        (gate, addr, task)
    }

    async fn request(tcp: &mut tokio::net::TcpStream) -> String {
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap().to_ascii_lowercase()
    }

    #[tokio::test]
    async fn draining_answers_the_next_http1_request_with_connection_close() {
        let (gate, addr, task) = server().await;
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(!request(&mut busy).await.contains("connection: close"));
        assert!(!request(&mut idle).await.contains("connection: close"));
        gate.drain();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A request sent after the drain began is answered, and its answer closes.
        let answer = request(&mut busy).await;
        assert!(answer.contains("connection: close"), "{answer}");
        let mut rest = Vec::new();
        busy.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        // A connection that stays idle is closed after the grace.
        let started = Instant::now();
        let mut rest = Vec::new();
        idle.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() <= DRAIN_IDLE_GRACE + Duration::from_millis(300));
        assert!(gate.drained(Duration::from_secs(2)).await);
        task.abort();
    }

    #[tokio::test]
    async fn drained_waits_for_the_request_in_flight() {
        let gate = Gate::new(Limits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let g = gate.clone();
        tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let permit = g.admit("test", peer).unwrap();
            let builder = g.builder();
            serve(&g, &builder, tcp, |_req| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Response::new(Full::new(bytes::Bytes::from_static(b"ok")))
            })
            .await;
            drop(permit);
        });
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = tokio::spawn(async move { request(&mut tcp).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        gate.drain();
        assert!(!gate.drained(Duration::from_millis(50)).await);
        let answer = answer.await.unwrap();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(gate.drained(Duration::from_secs(2)).await);
    }

    #[test]
    fn a_handed_over_socket_serves_the_same_port_on_the_same_or_any_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(Inherited::serves(a("0.0.0.0:443"), a("0.0.0.0:443")));
        assert!(Inherited::serves(a("[::]:443"), a("0.0.0.0:443")));
        assert!(Inherited::serves(a("127.0.0.1:6443"), a("127.0.0.1:6443")));
        assert!(Inherited::serves(
            a("[::ffff:127.0.0.1]:6443"),
            a("127.0.0.1:6443")
        ));
        assert!(!Inherited::serves(a("127.0.0.1:6443"), a("0.0.0.0:6443")));
        assert!(!Inherited::serves(a("0.0.0.0:6443"), a("127.0.0.1:6443")));
        assert!(!Inherited::serves(a("0.0.0.0:80"), a("0.0.0.0:443")));
    }

    #[tokio::test]
    async fn a_listener_takes_its_handed_over_socket_and_binds_the_others() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = held.local_addr().unwrap();
        let inherited = Inherited::new(vec![held]);
        let l = inherited.bind(at).await.unwrap();
        assert_eq!(l.local_addr().unwrap(), at);
        assert!(inherited.addresses().is_empty());
        let other = inherited
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_ne!(other.local_addr().unwrap(), at);
    }
}
