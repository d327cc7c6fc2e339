//! The proxy alone, for benchmarks against nginx/HAProxy/Caddy (`e2e/bench/proxy-bench.sh`):
//! one host routed to one backend, one certificate, a single-worker runtime (the process is
//! pinned to one CPU like its peers).
//!
//! bench-proxy HTTP_ADDR HTTPS_ADDR HOST BACKEND_ADDR CERT_PEM KEY_PEM
//! (`SKIFF_PROXY_NO_TLS_RESUMPTION=1`: full handshakes only; `SKIFF_BENCH_CURRENT_THREAD=1`: a
//! current-thread runtime.)

use std::collections::HashMap;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [http, https, host, backend, cert, key] = &args[..] else {
        eprintln!("usage: bench-proxy HTTP_ADDR HTTPS_ADDR HOST BACKEND_ADDR CERT_PEM KEY_PEM");
        std::process::exit(2);
    };
    // `SKIFF_BENCH_CURRENT_THREAD=1`: a current-thread runtime instead (no LIFO slot), to
    // compare scheduling.
    let rt = match std::env::var_os("SKIFF_BENCH_CURRENT_THREAD") {
        Some(_) => tokio::runtime::Builder::new_current_thread(),
        None => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1);
            b
        }
    }
    .enable_all()
    .build()
    .unwrap();
    rt.block_on(async {
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
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let h = tokio::net::TcpListener::bind(http).await.unwrap();
        let s = tokio::net::TcpListener::bind(https).await.unwrap();
        let p2 = proxy.clone();
        let rx2 = rx.clone();
        tokio::spawn(async move { p2.serve_http(h, rx2).await });
        proxy.serve_https(s, rx).await;
    });
}
