//! The ingress proxy passes WebSocket upgrades through, and a failed connect to one endpoint is
//! retried on another. The backend is a WebSocket echo server in this test process, reached
//! through a Service without selector and a hand-written EndpointSlice listing it (127.0.0.1)
//! and an address where nothing listens (127.0.0.2, same port).

use futures::{SinkExt, StreamExt};
use skiff_e2e::pebble::curl;
use skiff_e2e::*;
use tokio_tungstenite::tungstenite::Message;

async fn echo_server(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    if ws.send(msg).await.is_err() {
                        return;
                    }
                } else if msg.is_close() {
                    return;
                }
            }
        });
    }
}

#[test]
fn websocket_echo_through_the_proxy_and_connect_retry() {
    let mut s = Server::start_new();
    let hp = s.http_port;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(echo_server(listener));

    s.write_manifest(
        "echo.yaml",
        &format!(
            "apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  ports:
  - name: ws
    port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-manual
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
- name: ws
  port: {port}
  protocol: TCP
endpoints:
- addresses: [127.0.0.1]
  conditions: {{ready: true}}
- addresses: [127.0.0.2]
  conditions: {{ready: true}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: echo
spec:
  rules:
  - host: ws.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: echo
            port:
              name: ws
"
        ),
    );
    // The route exists once a plain GET reaches the echo server (it refuses non-upgrades).
    let url = format!("http://ws.test:{hp}/echo");
    let ok = wait_until(WAIT, POLL, || {
        let st = curl(&url, &[]).status;
        st != 404 && st != 503 && st != 0
    });
    assert!(ok, "no route to the echo service\n{}", s.log_tail(30));

    // Several connections: round-robin sends some to the dead endpoint first; all succeed.
    rt.block_on(async {
        for i in 0..6 {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", hp))
                .await
                .unwrap();
            let (mut ws, resp) =
                tokio_tungstenite::client_async(format!("ws://ws.test:{hp}/echo"), tcp)
                    .await
                    .unwrap_or_else(|e| panic!("WebSocket handshake {i} through the proxy: {e}"));
            assert_eq!(resp.status(), 101);
            for n in 0..3 {
                let text = format!("hello {i}.{n}");
                ws.send(Message::text(text.clone())).await.unwrap();
                let back = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
                    .await
                    .expect("an echo within 5 s")
                    .expect("a message")
                    .expect("no error");
                assert_eq!(back.into_text().unwrap().as_str(), text);
            }
            ws.close(None).await.unwrap();
        }
    });
    s.assert_running();
}
