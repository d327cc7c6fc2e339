//! Bounded inputs and connections (issue 13 part 8): what a client sends cannot make the
//! daemon hold unbounded memory, threads or connections — a 10 MB body, a JSON patch of 20000
//! operations or of doubling copies, YAML aliases fanning out (through the API, kubectl and the
//! manifests folder), a TLS client that says nothing, one that dribbles its headers, more
//! connections than the cap — while a kubectl already connected keeps working and watches
//! outlive the idle timeout; a SPDY header block inflating huge ends its port-forward session;
//! and `kubectl logs` of a 200 MB log streams in bounded memory,
//! byte-exact, with followers holding no thread each. Each test prints the daemon's memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_e2e::kubectl::{kubeconfig_token, server_with_images, Kubectl};
use skiff_e2e::{wait_until, Server};

const IMAGE: &str = "skiff-e2e-bounds:v1";

/// A field of `/proc/<pid>/status` in KiB (or a count: `Threads`).
fn status_field(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resets the daemon's peak RSS (`VmHWM`) to its current RSS.
fn reset_peak(pid: i32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
}

/// `curl -k` with a body from a file; (status, body).
fn curl(
    s: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Path,
    extra: &[&str],
) -> (u16, String) {
    let token = kubeconfig_token(&s.kubeconfig);
    let o = std::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "60",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(extra)
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("https://127.0.0.1:{}{path}", s.api_port))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A TLS client trusting the server's CA, offering HTTP/1.1 only.
fn tls_config(s: &Server) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(s.data_dir.join("tls/ca.crt")).expect("the API's CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.expect("a CA certificate")).expect("add the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to the API with its handshake done; `None` if the server refused it.
fn tls_connect(s: &Server, config: &Arc<rustls::ClientConfig>) -> Option<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", s.api_port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    Some(tls)
}

/// Whether the server has closed `tls` (reads until EOF or an error other than a timeout).
fn closed(tls: &mut Tls) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match tls.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn server_with(args: &[&str]) -> Server {
    let mut s = Server::new();
    s.extra_args = args.iter().map(|a| a.to_string()).collect();
    s.start();
    assert!(
        wait_until(skiff_e2e::WAIT, skiff_e2e::POLL, || s.kubeconfig.is_file()),
        "no kubeconfig:\n{}",
        s.log_tail(40)
    );
    s
}

#[test]
fn request_bodies_patches_and_yaml_are_bounded() {
    let mut s = server_with(&[]);
    let admin = Kubectl::admin(&s);
    admin.ok(&["create", "configmap", "target", "--from-literal=a=b"]);
    let pid = s.pid().expect("the daemon");
    let rss_before = status_field(pid, "VmRSS");
    reset_peak(pid);

    // A 10 MB body: 413 naming the limit — by Content-Length, chunked, and through kubectl.
    let big = s.work_dir.join("big.json");
    std::fs::write(
        &big,
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
            "a".repeat(10_000_000)
        ),
    )
    .unwrap();
    let cms = "/api/v1/namespaces/default/configmaps";
    for extra in [
        &[][..],
        &["--http1.1", "-H", "Transfer-Encoding: chunked"][..],
    ] {
        let (code, body) = curl(&s, "POST", cms, "application/json", &big, extra);
        assert_eq!(code, 413, "{extra:?}: {body}");
        assert!(
            body.contains("\"reason\":\"RequestEntityTooLarge\""),
            "{body}"
        );
        assert!(
            body.contains("Request entity too large: limit is 3145728"),
            "{body}"
        );
    }
    let raw = s.work_dir.join("big.txt");
    std::fs::write(&raw, "a".repeat(10_000_000)).unwrap();
    let o = admin.run(&[
        "create",
        "configmap",
        "big",
        &format!("--from-file=x={}", raw.display()),
    ]);
    assert_ne!(o.code, 0, "{o}");
    assert!(
        o.stderr
            .contains("Request entity too large: limit is 3145728"),
        "{o}"
    );

    // A JSON patch of 20000 operations: 413, nothing applied.
    let target = format!("{cms}/target");
    let ops: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"op":"add","path":"/data/k{i}","value":"v"}}"#))
        .collect();
    let many = s.work_dir.join("many.json");
    std::fs::write(&many, format!("[{}]", ops.join(","))).unwrap();
    let (code, body) = curl(
        &s,
        "PATCH",
        &target,
        "application/json-patch+json",
        &many,
        &[],
    );
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("The allowed maximum operations in a JSON patch is 10000, got 20000"),
        "{body}"
    );
    // A patch doubling a list with every copy (60 copies: 2^60 times a kilobyte).
    let mut ops = vec![format!(
        r#"{{"op":"add","path":"/metadata/finalizers","value":["{}"]}}"#,
        "f".repeat(1024)
    )];
    ops.extend((0..60).map(|_| {
        r#"{"op":"copy","from":"/metadata/finalizers","path":"/metadata/finalizers/-"}"#.to_string()
    }));
    let doubling = s.work_dir.join("doubling.json");
    std::fs::write(&doubling, format!("[{}]", ops.join(","))).unwrap();
    let (code, body) = curl(
        &s,
        "PATCH",
        &target,
        "application/json-patch+json",
        &doubling,
        &[],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("accumulated size increase of copy"), "{body}");
    assert!(body.contains("exceeding the limit 3145728"), "{body}");
    let cm = admin.get_json(&["configmap", "target"]).expect("target");
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "b"}),
        "the patches changed it"
    );

    // YAML aliases: a 1 MiB anchored string aliased 200 times (200 MiB) in a 1 MiB body.
    let laughs = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: laughs}}\ndata: {{x: &big \"{}\"}}\ncopies: [{}]\n",
        "l".repeat(1 << 20),
        vec!["*big"; 200].join(", ")
    );
    let file = s.work_dir.join("laughs.yaml");
    std::fs::write(&file, &laughs).unwrap();
    let alias_error = "aliases expand to more than 16777216 bytes";
    let (code, body) = curl(&s, "POST", cms, "application/yaml", &file, &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(alias_error), "{body}");
    let apply = format!("{cms}/laughs?fieldManager=attacker");
    let (code, body) = curl(
        &s,
        "PATCH",
        &apply,
        "application/apply-patch+yaml",
        &file,
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(alias_error), "{body}");
    // kubectl expands aliases itself (client-side and server-side apply send JSON): what it
    // would send is 200 MiB, past the body limit.
    let path = file.display().to_string();
    for mode in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["apply", "-f", &path];
        args.extend_from_slice(mode);
        let o = admin.run_full(&args, None, Duration::from_secs(120));
        assert_ne!(o.code, 0, "{o}");
        assert!(
            o.stderr.contains("Request entity too large") || o.stderr.contains("aliasing"),
            "{o}"
        );
    }
    // The manifests folder: the file is refused by name, and its other document not applied.
    let mark = s.log_mark();
    s.write_manifest(
        "laughs.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: innocent}}\n---\n{laughs}"),
    );
    let excerpt = s.wait_log(mark, alias_error, &["laughs.yaml"], Duration::from_secs(30));
    assert!(
        excerpt.is_some(),
        "no error naming the file:\n{}",
        s.log_tail(30)
    );
    std::thread::sleep(Duration::from_secs(1));
    for name in ["laughs", "innocent"] {
        assert!(
            !s.exists("ConfigMap", name, Some("default")),
            "{name} was created"
        );
    }

    let peak = status_field(pid, "VmHWM");
    let rss_after = status_field(pid, "VmRSS");
    eprintln!(
        "daemon memory: RSS {rss_before} KiB before, peak {peak} KiB during, {rss_after} KiB after the attacks"
    );
    assert!(
        peak < rss_before + 120 * 1024,
        "the daemon's peak RSS grew from {rss_before} KiB to {peak} KiB"
    );
}

#[test]
fn api_connections_are_bounded_and_watches_outlive_the_idle_timeout() {
    let s = server_with(&[
        "--api-max-connections",
        "12",
        "--api-header-read-timeout",
        "4",
        "--api-idle-timeout",
        "6",
    ]);
    let admin = Kubectl::admin(&s);
    admin.ok(&["create", "configmap", "before"]);
    let pid = s.pid().expect("the daemon");
    let rss_before = status_field(pid, "VmRSS");
    let config = tls_config(&s);

    // A client that connects and sends nothing: cut at the handshake timeout (10 s).
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", s.api_port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 16];
    let r = silent.read(&mut b);
    let took = started.elapsed();
    assert!(
        matches!(r, Ok(0)) || r.is_err(),
        "the silent client got {r:?}"
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "the silent client was cut after {took:?}"
    );

    // A client sending its headers a byte a second: cut at the header-read timeout (4 s).
    let mut slow = tls_connect(&s, &config).expect("a TLS connection");
    slow.sock
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let started = Instant::now();
    let request = b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut sent = 0;
    let mut cut = false;
    for byte in request {
        if slow.write_all(&[*byte]).and_then(|_| slow.flush()).is_err() || closed(&mut slow) {
            cut = true;
            break;
        }
        sent += 1;
    }
    let took = started.elapsed();
    assert!(cut, "the slow client sent its whole request ({sent} bytes)");
    assert!(
        took < Duration::from_secs(8) && sent >= 3,
        "the slow client was cut after {took:?} and {sent} bytes"
    );

    // A connection that asked once and then idles is closed.
    let token = kubeconfig_token(&s.kubeconfig);
    let mut once = tls_connect(&s, &config).expect("a TLS connection");
    write!(
        once,
        "GET /version HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    once.flush().unwrap();
    let mut answer = [0u8; 1024];
    let n = once.read(&mut answer).unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    once.sock
        .set_read_timeout(Some(Duration::from_secs(12)))
        .unwrap();
    let started = Instant::now();
    assert!(closed(&mut once), "the idle connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // A watch that stays open longer than the idle timeout, then more connections than the
    // cap: the extra ones are refused while the watch keeps hearing changes.
    let mut watch = admin.spawn(&["get", "configmaps", "-w", "-o", "name"]);
    assert!(
        watch
            .wait_line(Duration::from_secs(30), |l| l.contains("before"))
            .is_some(),
        "{}",
        watch.describe()
    );
    std::thread::sleep(Duration::from_secs(9));
    s.write_manifest(
        "after-idle.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-idle}\n",
    );
    assert!(
        watch
            .wait_line(Duration::from_secs(30), |l| l.contains("after-idle"))
            .is_some(),
        "the watch was cut by the idle timeout: {}",
        watch.describe()
    );
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..16 {
        match tls_connect(&s, &config) {
            Some(c) => held.push(c),
            None => refused += 1,
        }
    }
    assert!(refused >= 4, "{refused} of 16 refused, {} held", held.len());
    assert!(
        held.len() <= 11,
        "{} connections held past a cap of 12",
        held.len()
    );
    s.write_manifest(
        "during-cap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: during-cap}\n",
    );
    assert!(
        watch
            .wait_line(Duration::from_secs(30), |l| l.contains("during-cap"))
            .is_some(),
        "the connected kubectl stopped hearing: {}",
        watch.describe()
    );
    // The held connections never send a request: cut at the header-read timeout, and new
    // clients are served again.
    std::thread::sleep(Duration::from_secs(6));
    for c in &mut held {
        c.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(closed(c), "a held connection was not cut");
    }
    admin.ok(&["get", "configmap", "during-cap"]);
    assert!(watch.running(), "the watch ended: {}", watch.describe());
    watch.stop();
    let rss_after = status_field(pid, "VmRSS");
    let peak = status_field(pid, "VmHWM");
    eprintln!(
        "daemon memory: RSS {rss_before} KiB before, {rss_after} KiB after (peak {peak} KiB)"
    );
}

#[test]
fn kubectl_logs_streams_a_large_log_byte_exact_and_followers_hold_no_thread() {
    let s = server_with_images(&[IMAGE]);
    let admin = Kubectl::admin(&s);
    // A line that is not UTF-8, written by the container through its shim.
    admin.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: chatty}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, \"printf 'end \\\\377\\\\376 bad \\\\200\\\\n'; exec sleep 3600\"]
"
        ),
        &[],
    );
    let last_line = b"end \xff\xfe bad \x80\n";
    let raw = |args: &[&str]| -> Vec<u8> {
        let o = admin.command(args).output().expect("run kubectl");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    assert!(
        wait_until(Duration::from_secs(60), Duration::from_millis(500), || {
            admin
                .command(&["logs", "chatty", "--tail=1"])
                .output()
                .is_ok_and(|o| o.stdout == last_line)
        }),
        "the log is not the invalid UTF-8 line: {:?}",
        String::from_utf8_lossy(&raw(&["logs", "chatty"]))
    );
    // Byte-exact, with --limit-bytes and --timestamps.
    assert_eq!(raw(&["logs", "chatty", "--limit-bytes=6"]), b"end \xff\xfe");
    let stamped = raw(&["logs", "chatty", "--timestamps"]);
    assert!(
        stamped.ends_with(b"Z end \xff\xfe bad \x80\n"),
        "{stamped:?}"
    );

    // 200 MB more: 2,000,000 records of 100 bytes appended to the container's CRI log file as
    // its shim writes them (a container writing them through a debug-built shim takes minutes).
    let log = std::fs::read_dir(s.data_dir.join("pods"))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("default_chatty_")
        })
        .map(|e| e.path().join("main/0.log"))
        .expect("the pod's log");
    let time =
        String::from_utf8_lossy(&stamped[..stamped.iter().position(|&b| b == b' ').unwrap()])
            .into_owned();
    let record = format!("{time} stdout F {}\n", "0".repeat(99));
    let block = record.repeat(10_000);
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for _ in 0..200 {
        file.write_all(block.as_bytes()).unwrap();
    }
    drop(file);
    let zeros = format!("{}\n", "0".repeat(99));
    assert_eq!(
        raw(&["logs", "chatty", "--tail=2"]),
        zeros.repeat(2).as_bytes()
    );

    // The whole log, with the daemon's peak memory measured around it.
    let pid = s.pid().expect("the daemon");
    let rss_before = status_field(pid, "VmRSS");
    reset_peak(pid);
    let started = Instant::now();
    let mut child = admin
        .command(&["logs", "chatty"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (mut total, mut tail) = (0usize, Vec::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 256 {
            tail.drain(..tail.len() - 256);
        }
    }
    assert!(child.wait().unwrap().success());
    let took = started.elapsed();
    let peak = status_field(pid, "VmHWM");
    eprintln!(
        "kubectl logs of {total} bytes in {took:?}: daemon RSS {rss_before} KiB before, peak {peak} KiB, {} KiB after",
        status_field(pid, "VmRSS")
    );
    assert_eq!(total, last_line.len() + 200_000_000);
    assert!(tail.ends_with(zeros.as_bytes()));
    assert!(
        peak < rss_before + 64 * 1024,
        "reading the log raised the daemon's RSS from {rss_before} KiB to {peak} KiB"
    );

    // Forty followers: each an async task, none a blocking-pool thread.
    let threads_before = status_field(pid, "Threads");
    let mut followers: Vec<_> = (0..40)
        .map(|_| admin.spawn(&["logs", "-f", "chatty", "--tail=1"]))
        .collect();
    for f in &mut followers {
        assert!(
            f.wait_line(Duration::from_secs(60), |l| l.starts_with("000"))
                .is_some(),
            "{}",
            f.describe()
        );
    }
    // Starting them reads each log's tail on the blocking pool, whose threads stay 10 s
    // after their last task (tokio's keep-alive): how many that takes depends on how the
    // reads overlap (on a loaded machine, one per follower). Past the keep-alive, what is
    // left is the pool the idle followers' occasional file operations keep warm (~7 here),
    // not a thread each.
    std::thread::sleep(Duration::from_secs(12));
    let threads = status_field(pid, "Threads");
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "daemon threads: {threads_before} before, {threads} with 40 idle followers: {names:?}"
    );
    assert!(
        threads < threads_before + 20,
        "40 idle followers hold {} threads",
        threads - threads_before
    );
    for f in &mut followers {
        assert!(f.running(), "a follower ended: {}", f.describe());
        f.stop();
    }
}

#[test]
fn a_spdy_header_block_that_inflates_huge_ends_the_port_forward_session() {
    let s = server_with_images(&[IMAGE]);
    let admin = Kubectl::admin(&s);
    admin.apply(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: sleeper}}\nspec:\n  containers:\n  - name: main\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n"
        ),
        &[],
    );
    admin.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=60s",
    ]);
    let pid = s.pid().expect("the daemon");
    let rss_before = status_field(pid, "VmRSS");
    reset_peak(pid);

    // kubectl's plain SPDY/3.1 upgrade of port-forward.
    let token = kubeconfig_token(&s.kubeconfig);
    let mut tls = tls_connect(&s, &tls_config(&s)).expect("a TLS connection");
    write!(
        tls,
        "POST /api/v1/namespaces/default/pods/sleeper/portforward HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tls.read(&mut b).unwrap(),
            1,
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // A SYN_STREAM whose header block (one pair, a 64 MiB value) is 64 KiB of zlib.
    let mut raw = Vec::new();
    raw.extend_from_slice(&1u32.to_be_bytes());
    raw.extend_from_slice(&10u32.to_be_bytes());
    raw.extend_from_slice(b"streamtype");
    raw.extend_from_slice(&(64u32 << 20).to_be_bytes());
    raw.extend(std::iter::repeat_n(b'a', 64 << 20));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).unwrap();
    let block = z.finish().unwrap();
    drop(raw);
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u32.to_be_bytes()); // stream 1
    payload.extend_from_slice(&0u32.to_be_bytes()); // associated stream
    payload.extend_from_slice(&[0, 0]); // priority, slot
    payload.extend_from_slice(&block);
    let len = payload.len() as u32;
    let mut frame = vec![
        0x80,
        3,
        0,
        1,
        0,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
    ];
    frame.extend_from_slice(&payload);
    tls.write_all(&frame).unwrap();
    tls.flush().unwrap();
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert!(closed(&mut tls), "the session went on");

    let peak = status_field(pid, "VmHWM");
    eprintln!(
        "a {} byte header block of 64 MiB: daemon RSS {rss_before} KiB before, peak {peak} KiB",
        block.len()
    );
    assert!(
        peak < rss_before + 32 * 1024,
        "the header block raised the daemon's RSS from {rss_before} KiB to {peak} KiB"
    );
    admin.ok(&["get", "pod", "sleeper"]);
}
