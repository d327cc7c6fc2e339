//! The proxy against a real (hand-written, HTTP/1.1 over TCP) backend: keep-alive pooling, a
//! backend closing its idle connections (before a request, and as one goes out), a backend
//! that is down, the upstream request's form.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skiff_proxy::{Backend, HostRule, PathKind, PathRule, Proxy, ProxyConfig, RouteTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering every request with its request head as the body. `close_after_answer`:
/// it closes each connection right after its first answer (without saying so), as a backend's
/// keep-alive timeout does. Returns its address and its count of accepted connections.
async fn backend(close_after_answer: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    listen(move |mut tcp| async move {
        let mut buf = Vec::new();
        loop {
            let Some(head) = read_head(&mut tcp, &mut buf).await else {
                return;
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            );
            if tcp.write_all(answer.as_bytes()).await.is_err() || close_after_answer {
                return;
            }
        }
    })
    .await
}

/// A listener serving each connection with `serve`; its address and count of connections.
async fn listen<F, Fut>(serve: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp));
        }
    });
    (addr, accepted)
}

/// Reads one message head (up to the blank line) from `tcp`; `buf` keeps what followed it.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A proxy, not serving yet, routing `app.test` to `endpoints`.
fn routed_to(endpoints: Vec<std::net::SocketAddr>) -> Proxy {
    let proxy = Proxy::new(ProxyConfig::default()).unwrap();
    proxy.set_routes(RouteTable {
        rules: vec![HostRule {
            host: "app.test".into(),
            redirect_to_https: false,
            paths: vec![PathRule {
                path: "/".into(),
                kind: PathKind::Prefix,
                backend: Backend {
                    name: "test".into(),
                    endpoints,
                },
            }],
        }],
        default_backend: None,
    });
    proxy
}

/// A proxy routing `app.test` to `endpoints`; its plain HTTP address.
async fn proxy(endpoints: Vec<std::net::SocketAddr>) -> std::net::SocketAddr {
    let proxy = routed_to(endpoints);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = tx;
        proxy.serve_http(listener, rx).await
    });
    addr
}

/// A message head's Content-Length.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().unwrap())
    })
}

/// Sends one HTTP/1.1 request on `tcp`; the status code and body of its answer.
async fn get(tcp: &mut TcpStream, buf: &mut Vec<u8>, target: &str, extra: &str) -> (u16, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\n{extra}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(tcp, buf).await.expect("an answer");
    let status: u16 = head[9..12].parse().unwrap();
    let len = content_length(&head).expect("a content-length");
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8(buf.drain(..len).collect()).unwrap();
    (status, body)
}

#[tokio::test]
async fn requests_reuse_one_upstream_connection_in_origin_form_with_forwarded_headers() {
    let (be, accepted) = backend(false).await;
    let addr = proxy(vec![be]).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..5 {
        let (status, head) = get(
            &mut tcp,
            &mut buf,
            &format!("/a/{i}?q=1"),
            "Connection: keep-alive, x-drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\n",
        )
        .await;
        assert_eq!(status, 200, "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            head.starts_with(&format!("GET /a/{i}?q=1 HTTP/1.1\r\n")),
            "{head}"
        );
        assert!(lower.contains("\r\nhost: app.test\r\n"), "{head}");
        assert!(
            lower.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
            "{head}"
        );
        assert!(lower.contains("\r\nx-forwarded-proto: http\r\n"), "{head}");
        assert!(
            lower.contains("\r\nx-forwarded-host: app.test\r\n"),
            "{head}"
        );
        assert!(!lower.contains("x-drop"), "{head}");
        assert!(!lower.contains("keep-alive"), "{head}");
    }
    // A second client connection takes the idle upstream connection too.
    let mut other = TcpStream::connect(addr).await.unwrap();
    let mut other_buf = Vec::new();
    assert_eq!(get(&mut other, &mut other_buf, "/", "").await.0, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_backend_closing_idle_connections_costs_no_request() {
    let (be, accepted) = backend(true).await;
    let addr = proxy(vec![be]).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..4 {
        let (status, body) = get(&mut tcp, &mut buf, &format!("/{i}"), "").await;
        assert_eq!(status, 200, "request {i}: {body}");
        if i % 2 == 1 {
            // Give the closed connection time to be seen closed, and not.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

/// A backend that answers the first request of each connection and closes the connection as
/// the next request arrives, without answering it — what a backend's keep-alive timeout does
/// when it expires just as the proxy sends a request on the idle connection. Its address, its
/// count of connections, and the request lines it answered.
async fn closing_as_the_next_request_arrives() -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = answered.clone();
    let (addr, accepted) = listen(move |mut tcp| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            let Some(head) = read_head(&mut tcp, &mut buf).await else {
                return;
            };
            let len = content_length(&head).unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..len);
            seen.lock()
                .unwrap()
                .push(head.lines().next().unwrap().to_string());
            let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if tcp.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            // The next request arrives; the connection closes without an answer.
            let _ = read_head(&mut tcp, &mut buf).await;
        }
    })
    .await;
    (addr, accepted, answered)
}

#[tokio::test]
async fn a_request_safe_to_repeat_is_sent_again_when_an_idle_connection_closes_under_it() {
    let (be, accepted, answered) = closing_as_the_next_request_arrives().await;
    let addr = proxy(vec![be]).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        get(&mut tcp, &mut buf, "/first", "").await,
        (200, "ok".into())
    );
    // The upstream connection idles in the pool, then takes the next request and closes
    // under it: a GET is sent again on a new connection, and answered.
    for i in 0..2 {
        tokio::time::sleep(skiff_proxy::REPLAY_AFTER_IDLE + Duration::from_millis(100)).await;
        let (status, body) = get(&mut tcp, &mut buf, &format!("/again/{i}"), "").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "GET {i}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(
        *answered.lock().unwrap(),
        [
            "GET /first HTTP/1.1",
            "GET /again/0 HTTP/1.1",
            "GET /again/1 HTTP/1.1"
        ]
    );

    // A POST is not safe to send twice: its failure is the client's 502, and the backend
    // never answered it.
    tokio::time::sleep(skiff_proxy::REPLAY_AFTER_IDLE + Duration::from_millis(100)).await;
    let post = "POST /form HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\na=1";
    tcp.write_all(post.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp, &mut buf).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(answered.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_backend_that_is_down_answers_502_and_the_next_endpoint_is_tried() {
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let addr = proxy(vec![gone]).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(get(&mut tcp, &mut buf, "/", "").await.0, 502);

    let (be, _) = backend(false).await;
    let addr = proxy(vec![gone, be]).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        assert_eq!(get(&mut tcp, &mut buf, "/", "").await.0, 200);
    }
}

#[tokio::test]
async fn http2_requests_go_upstream_in_origin_form_with_a_host() {
    let (be, _) = backend(false).await;
    let addr = proxy(vec![be]).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://app.test/h2/path?x=y")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let head = String::from_utf8(body.to_vec())
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("get /h2/path?x=y http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: app.test\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-forwarded-host: app.test\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn an_upgrade_is_relayed_both_ways_and_its_connection_never_pooled() {
    let (be, accepted) = listen(|mut tcp| async move {
        let mut buf = Vec::new();
        let Some(head) = read_head(&mut tcp, &mut buf).await else {
            return;
        };
        assert!(
            head.to_ascii_lowercase().contains("\r\nupgrade: echo\r\n"),
            "{head}"
        );
        tcp.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        // Echo whatever follows, the bytes already read first.
        tcp.write_all(&buf).await.unwrap();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut chunk).await {
            if n == 0 || tcp.write_all(&chunk[..n]).await.is_err() {
                return;
            }
        }
    })
    .await;
    let addr = proxy(vec![be]).await;
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let head = read_head(&mut tcp, &mut buf).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        for word in ["ping", "pong"] {
            tcp.write_all(word.as_bytes()).await.unwrap();
            while buf.len() < word.len() {
                let mut chunk = [0u8; 64];
                let n = tcp.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(buf.drain(..word.len()).collect::<Vec<_>>(), word.as_bytes());
        }
    }
    // Each upgrade took its own upstream connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_proxys_own_threads_serve_keep_alive_upstreams_and_drain_on_shutdown() {
    let (be, accepted) = backend(false).await;
    let proxy = routed_to(vec![be]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let threads = std::num::NonZeroUsize::new(2).unwrap();
    let serving = proxy
        .serve_on_threads(threads, Some(listener), None, rx)
        .unwrap();
    // One client after another: whichever thread accepts it, its requests go over that
    // thread's pooled upstream connection.
    for i in 0..8 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        for j in 0..3 {
            let (status, head) = get(&mut tcp, &mut buf, &format!("/{i}/{j}"), "").await;
            assert_eq!(status, 200, "{head}");
            assert!(
                head.starts_with(&format!("GET /{i}/{j} HTTP/1.1\r\n")),
                "{head}"
            );
        }
    }
    let upstreams = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=threads.get()).contains(&upstreams),
        "{upstreams} upstream connections for 2 threads"
    );
    // Shutdown: an idle keep-alive client is closed, the threads end, the port is closed.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(get(&mut idle, &mut buf, "/idle", "").await.0, 200);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving.finished())
        .await
        .expect("the proxy's threads drain and end");
    let mut rest = [0u8; 16];
    assert_eq!(
        idle.read(&mut rest).await.unwrap(),
        0,
        "the idle client was closed"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
