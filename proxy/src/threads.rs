//! The proxy's own threads, as Pingora's "no steal" mode: each thread runs a current-thread
//! tokio runtime with an accept loop on every listener (copies of the same sockets; the kernel
//! hands each new connection to one of them), and a connection lives on the thread that
//! accepted it — its requests, its HTTP/2 streams, its TLS and the upstream connections it
//! uses (see [`worker`]). Nothing on the request path waits for another thread or is moved
//! between threads by a scheduler, and the daemon's other work (the API, the controllers,
//! the agent) runs on its own runtime, not between two proxied requests.
//!
//! Measured against the daemon's multi-thread runtime with one worker (`docs/benchmarks.md`):
//! on a current-thread runtime the HTTP/2 p99 halved and HTTP/1.1 cost 6 % less CPU.

use std::cell::Cell;
use std::num::NonZeroUsize;

use tokio::sync::{oneshot, watch};

use crate::Proxy;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The proxy thread the caller runs on (`usize::MAX`: none — a test's or a benchmark's own
/// runtime, where every task shares one group). An upstream connection is driven by a task
/// of the runtime that opened it, so the pools hand it only to requests of the same thread.
pub(crate) fn worker() -> usize {
    WORKER.with(Cell::get)
}

/// The proxy's threads serving; [`Threads::finished`] waits for them to drain and end.
pub struct Threads {
    done: Vec<oneshot::Receiver<()>>,
}

impl Threads {
    /// Waits until every thread has stopped serving (after `shutdown` flipped and their
    /// connections drained, [`crate::serve::Gate::stop_serving`]), or died.
    pub async fn finished(self) {
        for d in self.done {
            let _ = d.await;
        }
    }
}

impl Proxy {
    /// Serves the HTTP and HTTPS listeners on `threads` threads of its own until `shutdown`
    /// flips, then drains as [`Proxy::serve_http`] does (see the module's description).
    pub fn serve_on_threads(
        &self,
        threads: NonZeroUsize,
        http: Option<std::net::TcpListener>,
        https: Option<std::net::TcpListener>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Threads> {
        for l in [&http, &https].into_iter().flatten() {
            l.set_nonblocking(true)?;
        }
        let mut done = Vec::with_capacity(threads.get());
        for n in 0..threads.get() {
            let copy =
                |l: &Option<std::net::TcpListener>| l.as_ref().map(|l| l.try_clone()).transpose();
            let (http, https) = (copy(&http)?, copy(&https)?);
            let (proxy, shutdown) = (self.clone(), shutdown.clone());
            let (tx, rx) = oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("skiff-proxy-{n}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(n));
                    runtime.block_on(proxy.serve_listeners(http, https, shutdown));
                    // Tasks still running (an upgraded connection's relay) end with it.
                    drop(runtime);
                    let _ = tx.send(());
                })?;
            done.push(rx);
        }
        Ok(Threads { done })
    }

    /// The accept loops of one thread.
    async fn serve_listeners(
        &self,
        http: Option<std::net::TcpListener>,
        https: Option<std::net::TcpListener>,
        shutdown: watch::Receiver<bool>,
    ) {
        let tokio_listener = |l: std::net::TcpListener| match tokio::net::TcpListener::from_std(l) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("ingress proxy: cannot serve a listener on this thread: {e}");
                None
            }
        };
        let http = http.and_then(tokio_listener);
        let https = https.and_then(tokio_listener);
        let s = shutdown.clone();
        tokio::join!(
            async {
                if let Some(l) = http {
                    self.serve_http(l, s).await
                }
            },
            async {
                if let Some(l) = https {
                    self.serve_https(l, shutdown).await
                }
            },
        );
    }
}
