//! The Kubernetes API server: the REST subset `kubectl` and `kube` clients use, over HTTPS
//! only, with bearer tokens.
//!
//! - [`tls`]: the CA and serving certificate; [`auth`]: tokens (admin, or one namespace);
//! - [`discovery`]: `/version`, aggregated and legacy discovery, OpenAPI v3 documents;
//! - [`rest`]: objects and collections — get, list (Table or List), watch, create, update,
//!   patch (strategic merge, merge, JSON, apply), delete, `status` and `scale` subresources,
//!   pod logs through the [`Node`];
//! - [`exec`] and [`portforward`]: `kubectl exec` over WebSocket, `kubectl port-forward` over
//!   SPDY/3.1 (tunnelled in WebSocket, or plain) to the pod's address;
//! - [`protobuf`]: bodies in Kubernetes' protobuf encoding (kubectl's typed generators) decoded
//!   into the JSON objects everything else handles;
//! - [`metrics_api`]: `metrics.k8s.io/v1beta1` (`kubectl top`) from the [`Node`]'s usage;
//! - [`table`], [`select`], [`patch`], [`status`]: what those need.
//!
//! Writes go through the same validation and defaulting as the manifests folder, into the same
//! store. An object declared by a manifests-folder file can be read through the API, but a
//! change to what the file declares is refused as a conflict with the folder's field manager.

mod admission;
pub mod auth;
pub mod discovery;
pub mod exec;
pub mod housekeeping;
pub mod local;
pub mod metrics_api;
mod openapi;
mod openapi_v2;
pub mod portforward;
pub mod protobuf;
pub mod rbac;
mod read;
pub mod rest;
mod review;
pub mod sa_token;
pub mod select;
pub mod status;
pub mod table;
pub mod tls;
mod write;

#[doc(hidden)]
pub use write::{fuzz_stored, fuzz_write};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use tokio::sync::{mpsc, watch};

use crate::model::store::Store;

/// A boolean query parameter as the API server reads it (Go's `strconv.ParseBool`): `1`, `t`,
/// `T`, `true`, `TRUE`, `True` are true — the Python client sends `watch=True`, `follow=True`.
pub(crate) fn query_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// A response body: whole, or streamed (watches, followed logs).
pub type Body = BoxBody<Bytes, Infallible>;

/// The body of a request: from a TLS connection or from the in-process client ([`local`]).
pub type ReqBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// Erases the type of a request body.
pub fn req_body<B>(body: B) -> ReqBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    body.map_err(|e| BodyError(e.to_string())).boxed_unsync()
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// How `kubectl logs` asked for a log.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// The container (empty: the pod's only container).
    pub container: String,
    /// Keep streaming new lines.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// The previous instance's log.
    pub previous: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
}

/// What `kubectl exec` asked for.
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    /// The container.
    pub container: String,
    /// argv.
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether the process gets a terminal (`kubectl exec -t`).
    pub tty: bool,
}

/// The node could not do what was asked; the message is for the client (`kubectl logs`,
/// `kubectl exec` show it).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(pub String);

impl From<String> for NodeError {
    fn from(message: String) -> Self {
        NodeError(message)
    }
}

/// What the API server asks of the node (the kubelet's part of the API: logs, exec).
pub trait Node: Send + Sync + 'static {
    /// Streams a container's log as text chunks. Errors are messages for the client.
    fn logs(
        &self,
        pod: &serde_json::Value,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<Bytes>, NodeError>;
    /// Starts a process in a running container, with piped stdio (stdin piped only if asked).
    ///
    /// With `tty` the process runs on a terminal: stdout carries the terminal's output, stderr
    /// only the node's own error messages, and stdin (always piped) carries frames
    /// `[kind, length (u32 big-endian), payload]`: kind 0 input for the terminal, kind 4 a
    /// window size (columns, rows: big-endian u16 each). Closing stdin hangs the terminal up.
    fn exec(
        &self,
        pod: &serde_json::Value,
        request: ExecRequest,
    ) -> Result<tokio::process::Child, NodeError>;
    /// Whether `ip` is a pod address of this node (on its pod network), which port-forward
    /// may connect to: a pod's `status.podIP` is written through the API, so it is checked
    /// before the node connects anywhere on a client's behalf.
    fn is_pod_address(&self, ip: std::net::IpAddr) -> bool;
    /// The host ports skiff itself listens on, each with its address (`None`: every address of
    /// the host) and what listens there (the API, the ingress, the cluster DNS): no Service or
    /// hostPort may take them.
    fn reserved_ports(&self) -> Vec<(Option<std::net::IpAddr>, u16, String)> {
        Vec::new()
    }
    /// CPU and memory usage of the node and its containers over the last sampling window,
    /// for the Metrics API (`None`: not measured yet).
    fn usage(&self) -> Option<metrics_api::UsageReport> {
        None
    }
}

/// The API server's settings.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Extra names for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Where to write the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The data directory (certificates, tokens).
    pub data_dir: PathBuf,
    /// How pods reach the API (`None`: they do not).
    pub in_cluster: Option<InCluster>,
    /// Bounds on connections and request bodies.
    pub limits: ApiLimits,
}

/// The API server's bounds: its connections (the ingress proxy's code,
/// [`skiff_proxy::serve`]) and the size of a request body.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// The connection cap and the handshake, header-read and idle timeouts.
    pub connections: skiff_proxy::serve::Limits,
    /// The largest request body; a larger one is answered 413.
    pub max_body_bytes: usize,
}

/// Default [`ApiLimits::max_body_bytes`]: kube-apiserver's `MaxRequestBodyBytes` (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            connections: skiff_proxy::serve::Limits::default(),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// How pods reach the API: the `kubernetes` Service in `default` at `service_ip:443`, whose
/// EndpointSlice is `address` (the pod bridge's gateway, an address of the host that is not
/// loopback) at the API's port. The API listens there too when `listen` does not cover it.
#[derive(Clone, Debug)]
pub struct InCluster {
    /// The Service's ClusterIP: the first address of the service range.
    pub service_ip: std::net::Ipv4Addr,
    /// The host's address on the pod network.
    pub address: std::net::Ipv4Addr,
}

/// Shared state of request handlers.
pub struct ApiState {
    /// The store.
    pub store: Arc<Store>,
    /// Tokens.
    pub tokens: auth::Tokens,
    /// ServiceAccount tokens.
    pub issuer: Arc<sa_token::Issuer>,
    /// The node.
    pub node: Arc<dyn Node>,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// The manifests folder's last apply result per file (for `/metrics`).
    pub manifest_results: crate::folder::FileResults,
    /// Flips to true when the daemon stops: watches end cleanly then, so their clients watch
    /// again — from the next daemon.
    pub stopping: watch::Receiver<bool>,
    /// The ingress proxy, once it is made (its counters and certificates are in `/metrics`).
    pub proxy: std::sync::OnceLock<skiff_proxy::Proxy>,
}

/// Resolves once `stopping` flips to true (never, when its sender is gone without flipping).
pub(crate) async fn stopped(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The container of `pod` a request names (logs, exec). Without a name: the only container, or
/// with `first_by_default` the first (exec); otherwise the request must name one.
fn container_of(
    pod: &serde_json::Value,
    asked: Option<&str>,
    first_by_default: bool,
) -> Result<String, status::ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let inits: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match asked {
        Some(c) if !c.is_empty() => c,
        _ if containers.len() == 1 || (first_by_default && !containers.is_empty()) => containers[0],
        _ if first_by_default => "",
        _ => {
            let init = if inits.is_empty() {
                String::new()
            } else {
                format!(" or one of the init containers: [{}]", inits.join(" "))
            };
            return Err(status::ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]{init}",
                containers.join(" ")
            )));
        }
    };
    if !containers.contains(&container) && !inits.contains(&container) {
        return Err(status::ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    Ok(container.to_string())
}

/// Why the API server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CA or the serving certificate.
    #[error("the API's certificates: {0}")]
    Tls(#[from] tls::TlsError),
    /// The token table.
    #[error(transparent)]
    Tokens(#[from] auth::TokenError),
    /// The `kubernetes` Service could not be written.
    #[error("the kubernetes Service: {0}")]
    Builtin(crate::model::store::StoreError),
    /// The ServiceAccount token key.
    #[error(transparent)]
    ServiceAccountKey(#[from] sa_token::TokenError),
    /// The listening socket.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin kubeconfig or token file.
    #[error("writing the admin kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes the admin kubeconfig (mode 0600), creating the admin token on first start.
fn write_kubeconfig(
    path: &Path,
    data_dir: &Path,
    tokens: &auth::Tokens,
    ca_pem: &str,
    port: u16,
) -> Result<(), StartError> {
    let token_file = data_dir.join("tls").join("admin.token");
    let token = match std::fs::read_to_string(&token_file) {
        Ok(t) if tokens.authenticate(t.trim()).is_some() => t.trim().to_string(),
        _ => {
            let _ = tokens.revoke("admin");
            let (_, t) = tokens.create(None, Some("admin"))?;
            crate::files::write_private(&token_file, t.as_bytes()).map_err(|source| {
                StartError::Kubeconfig {
                    path: token_file.clone(),
                    source,
                }
            })?;
            t
        }
    };
    let ca = base64_encode(ca_pem.as_bytes());
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: admin\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: admin\n  user:\n    token: {token}\n"
    );
    let failed = |source| StartError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    crate::files::write_private(path, config.as_bytes()).map_err(failed)
}

/// Standard base64 (for kubeconfig data fields).
pub fn base64_encode(data: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(data.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Starts the API server; returns once it listens. It serves until `shutdown` flips.
pub async fn start(
    config: ApiConfig,
    listeners: &skiff_proxy::serve::Inherited,
    store: Arc<Store>,
    node: Arc<dyn Node>,
    shutdown: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, Arc<ApiState>), StartError> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let host = crate::model::node::hostname();
    if !sans.contains(&host) {
        sans.push(host);
    }
    sans.extend(config.tls_sans.iter().cloned());
    if let Some(c) = &config.in_cluster {
        // What in-cluster clients connect to: KUBERNETES_SERVICE_HOST, or the DNS name.
        sans.extend([
            c.service_ip.to_string(),
            c.address.to_string(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "kubernetes.default.svc.cluster.local".into(),
        ]);
    }
    let certs = tls::ensure(&config.data_dir.join("tls"), &sans)?;
    let tokens = auth::Tokens::open(&config.data_dir)?;
    let issuer = Arc::new(sa_token::Issuer::open(&config.data_dir.join("tls"))?);
    crate::model::serviceaccount::set_root_ca(&certs.ca_pem);
    let listen_failed = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let listener = listeners.bind(config.listen).await.map_err(listen_failed)?;
    let port = listener.local_addr().map_err(listen_failed)?.port();
    let mut bound = vec![listener];
    if let Some(c) = &config.in_cluster {
        let ip = std::net::IpAddr::V4(c.address);
        if !config.listen.ip().is_unspecified() && config.listen.ip() != ip {
            let addr = SocketAddr::new(ip, port);
            let failed = |source| StartError::Listen { addr, source };
            bound.push(listeners.bind(addr).await.map_err(failed)?);
        }
        crate::model::builtin::kubernetes_service(&store, c.service_ip, c.address, port)
            .map_err(StartError::Builtin)?;
    }
    write_kubeconfig(
        &config.kubeconfig,
        &config.data_dir,
        &tokens,
        &certs.ca_pem,
        port,
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&certs)?);
    let state = Arc::new(ApiState {
        store,
        tokens,
        issuer,
        node,
        max_body_bytes: config.limits.max_body_bytes,
        manifest_results: Default::default(),
        stopping: shutdown.clone(),
        proxy: Default::default(),
    });
    let gate = skiff_proxy::serve::Gate::new(config.limits.connections.clone());
    let local = state.clone();
    tracing::info!(listen = %config.listen.ip(), port, kubeconfig = %config.kubeconfig.display(), "API server listening");
    for listener in bound.drain(1..) {
        tokio::spawn(accept(
            listener,
            acceptor.clone(),
            state.clone(),
            gate.clone(),
            shutdown.clone(),
        ));
    }
    let task = tokio::spawn(async move {
        let mut forget = tokio::time::interval(std::time::Duration::from_secs(5));
        let first = bound.pop().expect("the main listener");
        // Returns once shut down and drained (every connection of the gate closed).
        let serve = accept(first, acceptor, state.clone(), gate, shutdown);
        tokio::pin!(serve);
        loop {
            tokio::select! {
                _ = forget.tick() => state.tokens.forget(),
                _ = &mut serve => return,
            }
        }
    });
    Ok((task, local))
}

/// Accepts TLS connections on `listener` until `shutdown` flips, within `gate`'s bounds: the
/// connection cap, the handshake, header-read and idle timeouts ([`skiff_proxy::serve`], as
/// the ingress proxy serves). Watches and followed logs are requests in flight, never idle.
/// Then drains the gate: watches end cleanly on `shutdown` (clients watch again, from the next
/// daemon), other requests are answered, and this returns once the connections are closed.
async fn accept(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<ApiState>,
    gate: skiff_proxy::serve::Gate,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(gate.builder());
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                drop(listener);
                return gate.stop_serving("API server").await;
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("API accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(permit) = gate.admit("API server", peer) else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = state.clone();
                let gate = gate.clone();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let timeout = gate.limits().handshake_timeout;
                    let Ok(tls) = skiff_proxy::serve::tls_handshake(&acceptor, tcp, timeout).await
                    else {
                        return;
                    };
                    skiff_proxy::serve::serve(&gate, &builder, tls, move |req| {
                        handle(state.clone(), req.map(req_body), peer)
                    })
                    .await;
                    drop(permit);
                });
            }
        }
    }
}

async fn handle(state: Arc<ApiState>, req: Request<ReqBody>, peer: SocketAddr) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = match authenticate(&state, &req) {
        None => {
            // Read (a bounded part of) the body first: answering an HTTP/2 request before its
            // body has been read resets the stream, and the client sees a framing error
            // instead of the 401.
            let _ = http_body_util::Limited::new(req.into_body(), state.max_body_bytes)
                .collect()
                .await;
            rest::error(&status::ApiError::unauthorized())
        }
        Some(identity) => rest::route(&state, identity, req).await,
    };
    tracing::debug!(%method, %path, %peer, status = response.status().as_u16(), took = ?started.elapsed(), "request");
    response
}

fn authenticate(state: &ApiState, req: &Request<ReqBody>) -> Option<auth::Identity> {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?;
    let token = token.trim();
    // A JWT (three base64url parts) is a ServiceAccount token; skiff's own start `skiff.`.
    if token.starts_with("eyJ") {
        let claims = state.issuer.verify(token)?;
        if !sa_token::still_bound(&claims, &state.store) {
            return None;
        }
        let b = claims.kubernetes;
        return Some(auth::Identity {
            id: b.serviceaccount.name,
            namespace: Some(b.namespace),
            service_account: true,
        });
    }
    state.tokens.authenticate(token)
}
