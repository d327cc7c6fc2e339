//! Issue 14 part 1: a restart and an upgrade of the daemon lose no request. The test stands in
//! for `skiff.socket`: it holds the API's and the ingress proxy's listening sockets and hands
//! them to every start of the daemon as systemd does (`LISTEN_FDS`, `LISTEN_PID`), while clients
//! hammer an Ingress host — HTTP and HTTPS, keep-alive connections and a new connection per
//! request, HTTP/1.1 (a client here) and HTTP/2 (curl) — and `kubectl wait` watches an object.
//! The daemon is stopped with SIGTERM and started again, then the binary is swapped for a new
//! file and started again, then — without systemd: the test lets go of the sockets — a new
//! daemon takes them over from the running one: no request fails, the container keeps running,
//! `kubectl wait` sees a change made after all three. The longest requests are printed
//! (docs/benchmarks.md).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_e2e::kubectl::Kubectl;
use skiff_e2e::pebble::make_cert;
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e:v1";
/// The TLS host (HTTPS; over HTTP it is redirected) and a plain one (HTTP).
const HOST: &str = "app.upgrade.test";
const PLAIN_HOST: &str = "plain.upgrade.test";

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Per client kind: the time each successful request took.
    ok: Mutex<Vec<(&'static str, Duration)>>,
    /// What failed, with when.
    failed: Mutex<Vec<String>>,
}

fn tls_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn connect(port: u16, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    // A request may wait for the next daemon: as long as a restart takes, not forever.
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    })
}

/// One `GET /` over HTTP/1.1; the status, the body, and whether the server closes after it.
fn get(
    conn: &mut BufReader<Box<dyn Stream>>,
    host: &str,
    keep_alive: bool,
) -> io::Result<(u16, String, bool)> {
    let close = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    write!(
        conn.get_mut(),
        "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: skiff-e2e-upgrade\r\n{close}\r\n"
    )?;
    conn.get_mut().flush()?;
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut closes) = (None, false, !keep_alive);
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "connection" => closes |= v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; n + 2];
            conn.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
        closes = true;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned(), closes))
}

/// Requests `GET /` one after the other until `stop`, on one keep-alive connection (a new one
/// when the server closes it) or a new connection each time; every answer must be the pod's.
fn hammer(
    kind: &'static str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    keep_alive: bool,
    marker: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let t0 = Instant::now();
    let mut conn: Option<BufReader<Box<dyn Stream>>> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let reused = conn.is_some();
        let result = (|| {
            if conn.is_none() {
                conn = Some(BufReader::new(connect(port, tls.as_ref())?));
            }
            let host = if tls.is_some() { HOST } else { PLAIN_HOST };
            get(conn.as_mut().unwrap(), host, keep_alive)
        })();
        match result {
            Ok((200, body, closes)) if body.contains(&marker) => {
                tally.ok.lock().unwrap().push((kind, started.elapsed()));
                if closes {
                    conn = None;
                }
            }
            Ok((status, body, _)) => {
                tally
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("{kind} at {:?}: {status} {body:?}", started - t0));
                conn = None;
            }
            Err(e) => {
                tally.failed.lock().unwrap().push(format!(
                    "{kind} at {:?} (reused connection: {reused}): {e}",
                    started - t0
                ));
                conn = None;
            }
        }
    }
}

/// HTTP/2 over TLS with curl: batches of requests on one connection each, until `stop`.
fn hammer_h2(port: u16, ca: std::path::PathBuf, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let url = format!("https://{HOST}:{port}/");
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut c = Command::new("curl");
        c.args(["-sS", "--http2", "--max-time", "30", "--resolve"])
            .arg(format!("{HOST}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&ca)
            .args(["-w", "%{http_code} %{http_version} %{time_total}\\n"]);
        for _ in 0..20 {
            c.args(["-o", "/dev/null", &url]);
        }
        let o = c.stdin(Stdio::null()).output().expect("curl");
        let out = String::from_utf8_lossy(&o.stdout);
        let mut n = 0;
        for line in out.lines() {
            n += 1;
            let mut w = line.split_whitespace();
            match (
                w.next(),
                w.next(),
                w.next().and_then(|t| t.parse::<f64>().ok()),
            ) {
                (Some("200"), Some("2"), Some(t)) => tally
                    .ok
                    .lock()
                    .unwrap()
                    .push(("https-h2", Duration::from_secs_f64(t))),
                _ => tally.failed.lock().unwrap().push(format!(
                    "https-h2 batch at {:?}: {line:?} ({})",
                    started - t0,
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
            }
        }
        if !o.status.success() || n != 20 {
            tally.failed.lock().unwrap().push(format!(
                "https-h2 curl {}: {n} answers; {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
}

fn b64(data: &[u8]) -> String {
    let mut c = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
}

/// The inodes of the sockets listening on `port` (from `/proc/net/tcp`).
fn listening_inodes(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            (u16::from_str_radix(local_port, 16).ok()? == port && f.get(3)? == &"0A")
                .then(|| f.get(9).map(|i| i.to_string()))?
        })
        .collect()
}

/// The socket inodes `pid` has open.
fn socket_inodes(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `how` restarts the daemon (the old one must exit cleanly, having drained); waits until the
/// API answers (through the sockets that outlived it); then two more seconds of traffic.
/// Returns how long until the API answered.
fn restart(
    s: &mut Server,
    k: &Kubectl,
    how: impl FnOnce(&mut Server) -> std::process::ExitStatus,
) -> Duration {
    let down = Instant::now();
    let status = how(s);
    assert!(status.success(), "{status}");
    let ok = wait_until(WAIT, POLL, || {
        s.assert_running();
        k.run(&["get", "configmap", "marker", "-o", "name"]).ok()
    });
    assert!(ok, "the API did not answer again\n{}", s.log_tail(40));
    let took = down.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    took
}

#[test]
fn restart_and_upgrade_lose_no_request() {
    let mut s = Server::new();
    s.hold_sockets();
    // The installed binary, replaced by a new file for the upgrade.
    let installed = s.work_dir.join("bin/skiff");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(skiff_bin(), &installed).unwrap();
    s.bin = Some(installed.clone());
    s.start();
    let archive = s.work_dir.join("img.tar");
    build_busybox_image(&archive, IMAGE, false).unwrap();
    assert!(s.import_image(&archive).status.success());
    let (cert, key, ca) = make_cert(&s.work_dir, "app", &[HOST]).unwrap();
    let marker = format!("upgrade-{}", random_hex(6));
    let port = free_port();
    let script = format!(
        "mkdir -p /www && echo {marker} > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    let deployment = deployment_yaml("app", IMAGE, &["sh", "-c", &script]);
    s.write_manifest(
        "app.yaml",
        &format!(
            "{deployment}---
apiVersion: v1
kind: Service
metadata: {{name: app}}
spec:
  selector: {{app: app}}
  ports: [{{name: http, port: 80, targetPort: {port}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: app-tls}}
type: kubernetes.io/tls
data:
  tls.crt: {}
  tls.key: {}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: app}}
spec:
  tls: [{{hosts: [{HOST}], secretName: app-tls}}]
  rules:
  - host: {HOST}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: plain}}
spec:
  rules:
  - host: {PLAIN_HOST}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}
",
            b64(&std::fs::read(&cert).unwrap()),
            b64(&std::fs::read(&key).unwrap()),
        ),
    );
    let config = tls_config(&ca);
    // Both ways answer the pod's page before the clients start.
    for (p, tls) in [(s.http_port, None), (s.https_port, Some(&config))] {
        let ok = wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
            s.assert_running();
            connect(p, tls)
                .and_then(|c| {
                    let host = if tls.is_some() { HOST } else { PLAIN_HOST };
                    get(&mut BufReader::new(c), host, false)
                })
                .is_ok_and(|(st, body, _)| st == 200 && body.contains(&marker))
        });
        assert!(
            ok,
            "port {p} never answered the pod's page\n{}",
            s.pods_summary()
        );
    }
    let httpd = s.httpd_pid(port).expect("the pod's httpd");
    let k = Kubectl::admin(&s);
    k.ok(&[
        "create",
        "configmap",
        "marker",
        "--from-literal=phase=before",
    ]);
    // Watches across both restarts: `kubectl wait` (client-go watches again when the stream
    // ends) must see the change made after them.
    let mut wait = k.spawn(&[
        "wait",
        "--for=jsonpath={.data.phase}=after",
        "configmap/marker",
        "--timeout=120s",
    ]);

    let stop = Arc::new(AtomicBool::new(false));
    // The clients stop with the test, failed or not.
    let _stop_clients = StopOnDrop(stop.clone());
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for (kind, p, tls, keep_alive) in [
        ("http-keepalive", s.http_port, None, true),
        ("http-new-conn", s.http_port, None, false),
        ("https-keepalive", s.https_port, Some(config.clone()), true),
        ("https-new-conn", s.https_port, Some(config.clone()), false),
    ] {
        let (marker, stop, tally) = (marker.clone(), stop.clone(), tally.clone());
        clients.push(std::thread::spawn(move || {
            hammer(kind, p, tls, keep_alive, marker, stop, tally)
        }));
    }
    {
        let (stop, tally, https) = (stop.clone(), tally.clone(), s.https_port);
        clients.push(std::thread::spawn(move || {
            hammer_h2(https, ca, stop, tally)
        }));
    }
    std::thread::sleep(Duration::from_secs(2));

    // 1. `systemctl restart`: SIGTERM, then the same binary again with the same sockets.
    let restart_took = restart(&mut s, &k, Server::restart);

    // 2. An upgrade: a new file at the installed path (as a package manager writes it), then
    //    the restart.
    let new = s.work_dir.join("bin/skiff.new");
    std::fs::copy(skiff_bin(), &new).unwrap();
    std::fs::rename(&new, &installed).unwrap();
    let upgrade_took = restart(&mut s, &k, Server::restart);

    // 3. Without systemd: the test lets go of its copies of the sockets (only the daemon holds
    //    them now), and a new daemon started on the same data directory takes them over from
    //    the running one, which drains and stops.
    s.handed_over.clear();
    let new = s.work_dir.join("bin/skiff.new");
    std::fs::copy(skiff_bin(), &new).unwrap();
    std::fs::rename(&new, &installed).unwrap();
    let take_over_took = restart(&mut s, &k, Server::take_over);

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    k.ok(&[
        "patch",
        "configmap",
        "marker",
        "--type=merge",
        "-p",
        r#"{"data":{"phase":"after"}}"#,
    ]);
    let waited = wait.wait_exit(Duration::from_secs(30));
    let wait_err = wait.stop();
    assert!(
        waited.is_some_and(|st| st.success()),
        "kubectl wait across the restarts: {waited:?} {wait_err}\n{}",
        wait.describe()
    );

    let failed = tally.failed.lock().unwrap().clone();
    let ok = tally.ok.lock().unwrap().clone();
    let mut report = String::new();
    for kind in [
        "http-keepalive",
        "http-new-conn",
        "https-keepalive",
        "https-new-conn",
        "https-h2",
    ] {
        let mut times: Vec<Duration> = ok
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .collect();
        times.sort();
        report.push_str(&format!(
            "{kind}: {} requests, p50 {:?}, p99 {:?}, max {:?}\n",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.last().copied().unwrap_or_default()
        ));
        assert!(times.len() >= 10, "{kind}: too few requests\n{report}");
    }
    eprintln!(
        "restart: API back after {restart_took:?}, upgrade: after {upgrade_took:?}, \
         take-over: after {take_over_took:?}\n{report}{} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed requests:\n{}\n{report}\nlog tail:\n{}",
        failed.len(),
        failed
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        s.log_tail(60)
    );
    // The daemon took the sockets it was handed, and the container kept running.
    let log = s.log();
    assert!(
        log.matches("through the socket handed over").count() >= 12
            && log.contains("listeners handed to a successor"),
        "{}",
        s.log_tail(60)
    );
    assert_eq!(
        s.httpd_pid(port),
        Some(httpd),
        "the container was restarted"
    );
    // Nothing the daemon started holds its listening sockets (they are close-on-exec): only
    // the daemon does, once the test let go of its copies.
    let listening: Vec<String> = [s.api_port, s.http_port, s.https_port]
        .iter()
        .flat_map(|p| listening_inodes(*p))
        .collect();
    assert!(listening.len() >= 3, "{listening:?}");
    let daemon = s.pid().unwrap();
    assert!(listening.iter().all(|i| socket_inodes(daemon).contains(i)));
    for pid in s.shim_pids().into_iter().chain([httpd]) {
        let held: Vec<String> = socket_inodes(pid)
            .into_iter()
            .filter(|i| listening.contains(i))
            .collect();
        assert!(
            held.is_empty(),
            "pid {pid} holds listening sockets {held:?}"
        );
    }
}

/// A handed-over socket that matches none of the daemon's listeners is refused by name: the
/// daemon does not start (a `skiff.socket` out of step with the configuration).
#[test]
fn a_socket_matching_no_listener_is_refused() {
    let mut s = Server::new();
    s.hold_sockets();
    let stray = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let at = stray.local_addr().unwrap();
    s.handed_over.push(stray);
    s.start();
    let exited = wait_until(WAIT, POLL, || !s.is_running());
    assert!(exited, "the daemon started with a stray socket");
    let log = s.log();
    assert!(
        log.contains(&format!(
            "listens on {at}, which is none of skiff's listeners"
        )),
        "{}",
        s.log_tail(20)
    );
}

/// `kubectl get -w` across a restart: the daemon ends the watch cleanly on SIGTERM, and
/// kubectl's `get -w` (a plain watch, not an informer) ends with it — exit 0, nothing on stderr
/// — as at kube-apiserver's own watch timeout.
#[test]
fn kubectl_get_watch_ends_cleanly_on_restart() {
    let mut s = Server::new();
    s.hold_sockets();
    s.start();
    let k = Kubectl::admin(&s);
    let ok = wait_until(WAIT, POLL, || k.run(&["get", "namespaces"]).ok());
    assert!(ok, "{}", s.log_tail(20));
    k.ok(&["create", "configmap", "watched", "--from-literal=a=b"]);
    let mut watch = k.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    assert!(watch
        .wait_line(WAIT, |l| l.contains("configmap/watched"))
        .is_some());
    let status = s.restart();
    assert!(status.success(), "{status}");
    let exited = watch.wait_exit(Duration::from_secs(30));
    let stderr = watch.stop();
    eprintln!("kubectl get -w: {exited:?}, stderr {stderr:?}");
    assert!(exited.is_some_and(|st| st.success()), "{exited:?} {stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}
