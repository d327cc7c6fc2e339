//! The seam between the ingress reconciler and the data plane: [`IngressProxy`] is all the
//! reconciler and ACME know of the proxy, implemented here over [`skiff_proxy::Proxy`] (tests
//! use a recording fake), and [`bind`] binds the proxy's HTTP and HTTPS listeners.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use skiff_proxy::serve::Inherited;
use skiff_proxy::{Certificate, Proxy, RouteTable};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the reconciler needs from the proxy (implemented by the daemon over
/// `skiff_proxy::Proxy`; tests use a recording fake).
pub trait IngressProxy: Send + Sync {
    /// Replaces the routing table.
    fn set_routes(&self, table: RouteTable);
    /// Replaces the certificates, by host (`app.example.com` or `*.example.com`).
    fn set_certificates(&self, by_host: HashMap<String, Certificate>);
    /// Answers an HTTP-01 challenge.
    fn add_http01(&self, token: &str, key_authorization: &str);
    /// Stops answering an HTTP-01 challenge.
    fn remove_http01(&self, token: &str);
    /// Answers TLS-ALPN-01 for `host` with `certificate`.
    fn add_tls_alpn01(&self, host: &str, certificate: Certificate);
    /// Stops answering TLS-ALPN-01 for `host`.
    fn remove_tls_alpn01(&self, host: &str);
}

impl IngressProxy for Proxy {
    fn set_routes(&self, table: RouteTable) {
        if Proxy::set_routes(self, table) {
            tracing::debug!("ingress routes updated");
        }
    }
    fn set_certificates(&self, by_host: HashMap<String, Certificate>) {
        Proxy::set_certificates(self, by_host);
    }
    fn add_http01(&self, token: &str, key_authorization: &str) {
        Proxy::add_http01(self, token, key_authorization);
    }
    fn remove_http01(&self, token: &str) {
        Proxy::remove_http01(self, token);
    }
    fn add_tls_alpn01(&self, host: &str, certificate: Certificate) {
        Proxy::add_tls_alpn01(self, host, certificate);
    }
    fn remove_tls_alpn01(&self, host: &str) {
        Proxy::remove_tls_alpn01(self, host);
    }
}

/// Which of the proxy's listeners are up (ACME offers only the challenges they can answer).
#[derive(Clone, Copy, Debug, Default)]
pub struct Listening {
    /// The HTTP listener is bound.
    pub http: bool,
    /// The HTTPS listener is bound.
    pub https: bool,
}

/// The proxy's bound listeners, not yet serving.
pub struct Bound {
    http: Option<std::net::TcpListener>,
    https: Option<std::net::TcpListener>,
}

impl Bound {
    /// Which are up.
    pub fn listening(&self) -> Listening {
        Listening {
            http: self.http.is_some(),
            https: self.https.is_some(),
        }
    }

    /// Serves them on `threads` threads of the proxy's own until `shutdown` flips; the task
    /// ends once the connections are drained (or the threads could not start: logged).
    pub fn serve(
        self,
        proxy: &Proxy,
        threads: NonZeroUsize,
        shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        if self.http.is_none() && self.https.is_none() {
            return None;
        }
        match proxy.serve_on_threads(threads, self.http, self.https, shutdown) {
            Ok(serving) => Some(tokio::spawn(serving.finished())),
            Err(e) => {
                tracing::error!(
                    "ingress proxy: cannot start its threads: {e}; Ingresses are not served"
                );
                None
            }
        }
    }
}

/// Binds the proxy's HTTP and HTTPS listeners (or takes the sockets handed over for them). A
/// port that cannot be bound (taken, or 80/443 without privileges) is logged and skipped: the
/// rest of the daemon matters more than one listener.
pub async fn bind(
    listeners: &Inherited,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
) -> Bound {
    Bound {
        http: match http {
            Some(addr) => bind_one(listeners, addr, "HTTP").await,
            None => None,
        },
        https: match https {
            Some(addr) => bind_one(listeners, addr, "HTTPS").await,
            None => None,
        },
    }
}

async fn bind_one(
    listeners: &Inherited,
    addr: SocketAddr,
    scheme: &str,
) -> Option<std::net::TcpListener> {
    match listeners.bind_std(addr).await {
        Ok(listener) => {
            tracing::info!("ingress proxy listening on {addr} ({scheme})");
            Some(listener)
        }
        Err(e) => {
            tracing::error!(
                "ingress proxy: cannot listen on {addr} ({scheme}): {e}; Ingresses are not served over {scheme}"
            );
            None
        }
    }
}
