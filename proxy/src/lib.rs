//! skiff's ingress proxy: a pure data plane. It knows routes ([`RouteTable`]), certificates and
//! pending ACME challenge answers — nothing of Kubernetes. The control plane hands each over
//! whole; they are swapped atomically (`arc-swap`), so a change never drops an open connection
//! and the request path takes no lock.
//!
//! - Listeners: [`Proxy::serve_http`] (plain HTTP/1.1 and h2c; HTTP-01 answers; redirects to
//!   HTTPS for TLS hosts) and [`Proxy::serve_https`] (rustls, HTTP/2 or HTTP/1.1 by ALPN, a
//!   per-SNI certificate resolver, TLS-ALPN-01 answers), on the caller's runtime or on
//!   threads of the proxy's own ([`Proxy::serve_on_threads`], [`threads`]: what the daemon
//!   runs).
//! - Requests: routed by host and path, `X-Forwarded-For/-Proto/-Host` added, hop-by-hop
//!   headers removed, upgrades (WebSocket) spliced through, sent over per-backend keep-alive
//!   pools of HTTP/1.1 connections ([`upstream`]: round-robin, a failed connect moves on to
//!   the next endpoint, a GET that a long-idle connection failed before answering is sent
//!   again on a fresh one). 404 for unknown hosts, 503 when a backend has no ready
//!   endpoint, 502 when none answers, 504 on timeout.
//! - Observability: one access log line per request (tracing target `access`, level info) and
//!   per-host counters, latency histograms, TLS handshake counts and certificate expiry
//!   ([`Proxy::metrics`], Prometheus text format; [`metrics`]).

#![forbid(unsafe_code)]

pub mod metrics;
mod routes;
pub mod serve;
pub mod threads;
pub mod tls;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use routes::{Backend, HostRule, PathKind, PathRule, RouteTable};
pub use tls::{CertError, Certificate};
pub use upstream::{UpstreamBody, REPLAY_AFTER_IDLE};

use metrics::{HostRegistry, TlsStats, UpstreamError};
use routes::Compiled;
use tls::{CertTable, Resolver};

/// The response body: an upstream's, streamed, or one of ours.
pub type Body = Either<UpstreamBody, Full<Bytes>>;

/// Tunables.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Per endpoint connect attempt.
    pub connect_timeout: Duration,
    /// From sending a request upstream to its response headers.
    pub response_timeout: Duration,
    /// The port redirects to HTTPS point at (443 is left out of the URL).
    pub https_port: u16,
    /// TLS session resumption (tickets and a session cache); off only for benchmarks of full
    /// handshakes.
    pub tls_resumption: bool,
    /// Client connections: the cap, handshake, header-read and idle timeouts.
    pub limits: serve::Limits,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            https_port: 443,
            tls_resumption: true,
            limits: serve::Limits {
                max_connections: MAX_CONNECTIONS,
                ..serve::Limits::default()
            },
        }
    }
}

/// The ingress's default connection cap: it serves every site of the host, so more than the
/// API server's.
pub const MAX_CONNECTIONS: usize = 8192;

/// Errors starting the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Certificate generation failed.
    #[error(transparent)]
    Cert(#[from] CertError),
}

struct Shared {
    table: Arc<ArcSwap<Compiled>>,
    source: Mutex<Option<RouteTable>>,
    hosts: HostRegistry,
    handshakes: TlsStats,
    resolver: Arc<Resolver>,
    http01: RwLock<HashMap<String, String>>,
    config: ProxyConfig,
    tls: Arc<rustls::ServerConfig>,
    server: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    gate: serve::Gate,
}

/// A handle on the proxy; cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

impl Proxy {
    /// A proxy with an empty routing table and no certificates (unknown names get a
    /// self-signed default certificate).
    pub fn new(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let table = Arc::new(ArcSwap::from_pointee(Compiled::default()));
        let resolver = Arc::new(Resolver {
            certs: ArcSwap::from_pointee(CertTable {
                by_name: HashMap::new(),
            }),
            alpn01: ArcSwap::from_pointee(HashMap::new()),
            default: tls::self_signed(&["skiff-default.invalid".to_string()])?,
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        tls_config.alpn_protocols = vec![
            b"h2".to_vec(),
            b"http/1.1".to_vec(),
            tls::ACME_TLS_ALPN.to_vec(),
        ];
        if config.tls_resumption {
            tls_config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
            tls_config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| ProxyError::Tls(e.to_string()))?;
        } else {
            tls_config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            tls_config.send_tls13_tickets = 0;
        }
        let gate = serve::Gate::new(config.limits.clone());
        let server = gate.builder();
        Ok(Proxy {
            shared: Arc::new(Shared {
                table,
                source: Mutex::new(None),
                hosts: HostRegistry::default(),
                handshakes: TlsStats::default(),
                resolver,
                http01: RwLock::new(HashMap::new()),
                config,
                tls: Arc::new(tls_config),
                server,
                gate,
            }),
        })
    }

    /// Replaces the routing table (a no-op when equal to the current one). Returns whether it
    /// changed. Open connections and upstream pools of unchanged endpoint sets are kept.
    pub fn set_routes(&self, table: RouteTable) -> bool {
        let mut source = self.shared.source.lock().unwrap_or_else(|e| e.into_inner());
        if source.as_ref() == Some(&table) {
            return false;
        }
        let compiled = Compiled::compile(&table, &self.shared.hosts, &self.shared.table.load());
        self.shared.table.store(Arc::new(compiled));
        *source = Some(table);
        true
    }

    /// Replaces the certificates served, by name (`host` or `*.parent`).
    pub fn set_certificates(&self, by_name: HashMap<String, Certificate>) {
        self.shared
            .resolver
            .certs
            .store(Arc::new(CertTable { by_name }));
    }

    /// Answers `GET /.well-known/acme-challenge/<token>` on the HTTP port with `key_authorization`.
    pub fn add_http01(&self, token: &str, key_authorization: &str) {
        let mut m = self
            .shared
            .http01
            .write()
            .unwrap_or_else(|e| e.into_inner());
        m.insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering an HTTP-01 token.
    pub fn remove_http01(&self, token: &str) {
        let mut m = self
            .shared
            .http01
            .write()
            .unwrap_or_else(|e| e.into_inner());
        m.remove(token);
    }

    /// Serves `certificate` to `acme-tls/1` handshakes for `name` (TLS-ALPN-01).
    pub fn add_tls_alpn01(&self, name: &str, certificate: Certificate) {
        self.shared.resolver.alpn01.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(name.to_ascii_lowercase(), certificate.clone());
            m
        });
    }

    /// Stops answering TLS-ALPN-01 for `name`.
    pub fn remove_tls_alpn01(&self, name: &str) {
        self.shared.resolver.alpn01.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(&name.to_ascii_lowercase());
            m
        });
    }

    /// The proxy's metrics in Prometheus' text format (see [`metrics`]).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let certs = self.shared.resolver.certs.load();
        metrics::render(
            &mut out,
            &self.shared.hosts,
            &self.shared.handshakes,
            &certs.by_name,
        );
        out
    }

    /// Serves plain HTTP (HTTP/1.1, and h2c with prior knowledge) until `shutdown` flips, then
    /// drains ([`serve::Gate::stop_serving`]) and returns once the connections are closed.
    pub async fn serve_http(&self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.changed() => {
                    drop(listener);
                    return self.shared.gate.stop_serving("ingress (HTTP)").await;
                }
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => { accept_error(e).await; continue; }
                },
            };
            let Some(permit) = self.shared.gate.admit("ingress (HTTP)", peer) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let conn = Arc::new(Conn::new(peer, false));
                serve_conn(&shared, conn, stream).await;
                drop(permit);
            });
        }
    }

    /// Serves HTTPS until `shutdown` flips, then drains as [`Proxy::serve_http`] does.
    pub async fn serve_https(&self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.shared.tls.clone());
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.changed() => {
                    drop(listener);
                    return self.shared.gate.stop_serving("ingress (HTTPS)").await;
                }
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => { accept_error(e).await; continue; }
                },
            };
            let Some(permit) = self.shared.gate.admit("ingress (HTTPS)", peer) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let timeout = shared.gate.limits().handshake_timeout;
                let tls = match serve::tls_handshake(&acceptor, stream, timeout).await {
                    Ok(tls) => tls,
                    Err(failure) => {
                        shared.handshakes.count(failure.into());
                        return;
                    }
                };
                shared
                    .handshakes
                    .count(match tls.get_ref().1.protocol_version() {
                        Some(rustls::ProtocolVersion::TLSv1_2) => metrics::Handshake::Tls12,
                        _ => metrics::Handshake::Tls13,
                    });
                if tls.get_ref().1.alpn_protocol() == Some(tls::ACME_TLS_ALPN) {
                    // TLS-ALPN-01: the handshake was the answer.
                    return;
                }
                let conn = Arc::new(Conn::new(peer, true));
                serve_conn(&shared, conn, tls).await;
                drop(permit);
            });
        }
    }
}

async fn accept_error(e: std::io::Error) {
    // EMFILE and friends: back off instead of spinning.
    tracing::warn!("proxy accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Per client connection.
struct Conn {
    peer: SocketAddr,
    https: bool,
    peer_ip: HeaderValue,
}

impl Conn {
    fn new(peer: SocketAddr, https: bool) -> Conn {
        let ip = peer.ip().to_canonical();
        Conn {
            peer,
            https,
            peer_ip: HeaderValue::from_str(&ip.to_string()).expect("an IP is a header value"),
        }
    }
}

/// Serves one client connection within the proxy's limits.
async fn serve_conn<I>(shared: &Arc<Shared>, conn: Arc<Conn>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = shared.clone();
    serve::serve(&shared.gate, &shared.server, io, move |req| {
        let shared = handler.clone();
        let conn = conn.clone();
        async move { handle(&shared, &conn, req).await }
    })
    .await;
}

fn local(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The request's host: HTTP/2's `:authority` or HTTP/1's Host header, without the port.
fn request_host(req: &Request<Incoming>) -> &str {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    raw.split(':').next().unwrap_or("")
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && has_token(req.headers(), "upgrade")
}

fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), keeping `Upgrade` for upgrades.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            if !(upgrade && n == header::UPGRADE) {
                headers.remove(&n);
            }
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

async fn handle(shared: &Shared, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = metrics::method_index(req.method());
    let access = tracing::enabled!(target: "access", tracing::Level::INFO);
    let log = access.then(|| {
        (
            req.method().clone(),
            req.uri().path().to_string(),
            request_host(&req).to_string(),
        )
    });
    let routed = route(shared, conn, req).await;
    let took = started.elapsed();
    let status = routed.response.status().as_u16();
    routed
        .stats
        .as_deref()
        .unwrap_or(&shared.hosts.unknown)
        .observe(method, status, took);
    if let Some((method, path, host)) = log {
        tracing::info!(
            target: "access",
            client = %conn.peer.ip(),
            scheme = if conn.https { "https" } else { "http" },
            %host,
            %method,
            %path,
            status,
            route = routed.route.as_deref().unwrap_or("-"),
            ms = took.as_secs_f64() * 1000.0,
            "access"
        );
    }
    routed.response
}

/// A request's answer, the route it took and the counters of the host rule it matched.
struct Routed {
    response: Response<Body>,
    route: Option<Arc<str>>,
    /// `None`: no host rule matched (counted as [`metrics::UNKNOWN_HOST`]).
    stats: Option<Arc<metrics::HostStats>>,
}

async fn route(shared: &Shared, conn: &Conn, mut req: Request<Incoming>) -> Routed {
    let host = request_host(&req);
    let lower;
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = host.to_ascii_lowercase();
        lower.as_str()
    } else {
        host
    };
    let path = req.uri().path();
    let (backend, route_name, stats) = {
        let table = shared.table.load();
        let m = table.find(host, path);
        let stats = m.as_ref().and_then(|m| m.stats.cloned());
        let answer = |response, stats| Routed {
            response,
            route: None,
            stats,
        };
        if !conn.https {
            if let Some(answer) = http01_answer(shared, path) {
                return Routed {
                    response: answer,
                    route: None,
                    stats,
                };
            }
        }
        let Some(m) = m else {
            return answer(local(StatusCode::NOT_FOUND, "404 no such host\n"), None);
        };
        if m.redirect_to_https && !conn.https {
            return answer(redirect(shared, host, req.uri()), stats);
        }
        let Some(t) = m.target else {
            return answer(
                local(StatusCode::NOT_FOUND, "404 no route for this path\n"),
                stats,
            );
        };
        (t.backend.clone(), t.route.clone(), stats)
    };
    let answer = |response, route| Routed {
        response,
        route,
        stats: stats.clone(),
    };
    if backend.endpoints.is_empty() {
        return answer(
            local(StatusCode::SERVICE_UNAVAILABLE, "503 no ready endpoint\n"),
            Some(route_name),
        );
    }
    let upgrade = is_upgrade(&req);
    let on_client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upstream = match upstream_request(conn, req, upgrade) {
        Ok(r) => r,
        Err(Refused::BadRequest) => {
            return answer(local(StatusCode::BAD_REQUEST, "400 bad request\n"), None)
        }
        Err(Refused::Connect) => {
            let refused = local(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 CONNECT is not proxied\n",
            );
            return answer(refused, Some(route_name));
        }
    };
    let result = tokio::time::timeout(
        shared.config.response_timeout,
        upstream::send(&backend, shared.config.connect_timeout, upstream),
    )
    .await;
    let upstream_error = |why| {
        stats
            .as_deref()
            .unwrap_or(&shared.hosts.unknown)
            .upstream_error(why)
    };
    let mut resp = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            upstream_error(UpstreamError::Error);
            tracing::debug!(backend = %backend.name, "upstream failed: {e:?}");
            return answer(
                local(StatusCode::BAD_GATEWAY, "502 the backend did not answer\n"),
                Some(route_name),
            );
        }
        Err(_) => {
            upstream_error(UpstreamError::Timeout);
            return answer(
                local(StatusCode::GATEWAY_TIMEOUT, "504 the backend timed out\n"),
                Some(route_name),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = on_client_upgrade {
            return answer(relay_upgrade(client_side, resp), Some(route_name));
        }
    }
    strip_hop_by_hop(resp.headers_mut(), false);
    Routed {
        response: resp.map(Either::Left),
        route: Some(route_name),
        stats,
    }
}

/// The answer to a pending HTTP-01 challenge, if `path` asks for one.
fn http01_answer(shared: &Shared, path: &str) -> Option<Response<Body>> {
    let token = path.strip_prefix(CHALLENGE_PREFIX)?;
    let answer = shared
        .http01
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(token)
        .cloned()?;
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(answer))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(r)
}

/// Why a request is not proxied.
enum Refused {
    /// Its target does not make an upstream URI.
    BadRequest,
    /// CONNECT (a tunnel, not a request for the backend).
    Connect,
}

/// The upstream request: same method, path, headers and body, hop-by-hop headers removed,
/// `X-Forwarded-*` added, in origin form (`/path?query`).
fn upstream_request(
    conn: &Conn,
    req: Request<Incoming>,
    upgrade: bool,
) -> Result<Request<Incoming>, Refused> {
    let (mut parts, body) = req.into_parts();
    let forwarded_host = match parts.headers.get(header::HOST) {
        Some(h) => h.clone(),
        None => match parts.uri.authority() {
            Some(a) => match HeaderValue::from_str(a.as_str()) {
                Ok(v) => {
                    parts.headers.insert(header::HOST, v.clone());
                    v
                }
                Err(_) => HeaderValue::from_static(""),
            },
            None => HeaderValue::from_static(""),
        },
    };
    strip_hop_by_hop(&mut parts.headers, upgrade);
    let xff = match parts.headers.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + conn.peer_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(conn.peer_ip.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| conn.peer_ip.clone())
        }
        None => conn.peer_ip.clone(),
    };
    parts.headers.insert(X_FORWARDED_FOR.clone(), xff);
    parts.headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if conn.https { "https" } else { "http" }),
    );
    parts
        .headers
        .insert(X_FORWARDED_HOST.clone(), forwarded_host);
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        // HTTP/2's (and an absolute-form HTTP/1.1 target's) URI: keep its path and query.
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        parts.uri = Uri::from_parts(uri).map_err(|_| Refused::BadRequest)?;
    }
    parts.version = Version::HTTP_11;
    if parts.method == Method::CONNECT {
        return Err(Refused::Connect);
    }
    Ok(Request::from_parts(parts, body))
}

/// Answers 101 to the client and relays bytes both ways once both sides have switched.
fn relay_upgrade(
    client_side: hyper::upgrade::OnUpgrade,
    mut resp: Response<UpstreamBody>,
) -> Response<Body> {
    let upstream_side = hyper::upgrade::on(&mut resp);
    resp.body_mut().upgraded();
    tokio::spawn(async move {
        match (client_side.await, upstream_side.await) {
            (Ok(c), Ok(u)) => {
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            }
            (c, u) => tracing::debug!(
                "upgrade failed: client {:?}, upstream {:?}",
                c.err(),
                u.err()
            ),
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Either::Right(Full::default()))
}

fn redirect(shared: &Shared, host: &str, uri: &Uri) -> Response<Body> {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = if shared.config.https_port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{}{pq}", shared.config.https_port)
    };
    let mut r = local(StatusCode::PERMANENT_REDIRECT, "308 redirecting to HTTPS\n");
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
