//! Upstream connections. The request's URI names a backend's pool key (see
//! `routes::CompiledBackend::authority`), so hyper-util's client keeps one keep-alive pool per
//! endpoint set; this connector turns the key into the backend's endpoints and connects to the
//! next one round-robin, moving on to the following endpoint when a connect fails or times out
//! (a failed connect is retried on every other endpoint once; nothing was sent yet, so this is
//! safe for any method).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::routes::Compiled;

#[derive(Clone)]
pub(crate) struct Connector {
    pub table: Arc<ArcSwap<Compiled>>,
    pub connect_timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let table = self.table.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let backend = {
                let t = table.load();
                let key = uri.host().unwrap_or_default();
                t.backends
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("backend {key} is gone"))?
            };
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
                        return Ok(TokioIo::new(s));
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
        })
    }
}
