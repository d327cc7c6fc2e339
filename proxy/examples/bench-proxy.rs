//! The proxy alone, for benchmarks against nginx/HAProxy/Caddy (`e2e/bench/proxy-bench.py`):
//! one host routed to one backend, one certificate, served as the daemon serves it — on one
//! thread of the proxy's own (`Proxy::serve_on_threads`; the process is pinned to one CPU
//! like its peers).
//!
//! bench-proxy HTTP_ADDR HTTPS_ADDR HOST BACKEND_ADDR CERT_PEM KEY_PEM
//! (`SKIFF_PROXY_NO_TLS_RESUMPTION=1`: full handshakes only; `SKIFF_BENCH_MULTI_THREAD=1`: the
//! accept loops on a multi-thread runtime with one worker instead, as the daemon served them
//! before it gave the proxy threads of its own — to compare.)

use std::collections::HashMap;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [http, https, host, backend, cert, key] = &args[..] else {
        eprintln!("usage: bench-proxy HTTP_ADDR HTTPS_ADDR HOST BACKEND_ADDR CERT_PEM KEY_PEM");
        std::process::exit(2);
    };
    let proxy = skiff_proxy::Proxy::new(skiff_proxy::ProxyConfig {
        tls_resumption: std::env::var_os("SKIFF_PROXY_NO_TLS_RESUMPTION").is_none(),
        ..Default::default()
    })
    .unwrap();
    proxy.set_routes(skiff_proxy::RouteTable {
        rules: vec![skiff_proxy::HostRule {
            host: host.clone(),
            redirect_to_https: false,
            paths: vec![skiff_proxy::PathRule {
                path: "/".into(),
                kind: skiff_proxy::PathKind::Prefix,
                backend: skiff_proxy::Backend {
                    name: "bench".into(),
                    endpoints: vec![backend.parse().unwrap()],
                },
            }],
        }],
        default_backend: None,
    });
    let c = skiff_proxy::tls::certificate_from_pem(
        &std::fs::read(cert).unwrap(),
        &std::fs::read(key).unwrap(),
    )
    .unwrap();
    // Clients connect to `localhost` (SNI) and send `Host: app.test`.
    proxy.set_certificates(HashMap::from([
        (host.clone(), c.clone()),
        ("localhost".into(), c),
    ]));
    // Bound by tokio, as the daemon binds them (SO_REUSEADDR: a round can rebind at once).
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bind = |addr: &str| {
        waiter.block_on(async {
            let l = tokio::net::TcpListener::bind(addr).await.unwrap();
            l.into_std().unwrap()
        })
    };
    let (h, s) = (bind(http), bind(https));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    if std::env::var_os("SKIFF_BENCH_MULTI_THREAD").is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = tokio::net::TcpListener::from_std(h).unwrap();
            let s = tokio::net::TcpListener::from_std(s).unwrap();
            let (p2, rx2) = (proxy.clone(), rx.clone());
            tokio::spawn(async move { p2.serve_http(h, rx2).await });
            proxy.serve_https(s, rx).await;
        });
        return;
    }
    let serving = proxy
        .serve_on_threads(std::num::NonZeroUsize::MIN, Some(h), Some(s), rx)
        .unwrap();
    // Serves until killed.
    waiter.block_on(serving.finished());
}
