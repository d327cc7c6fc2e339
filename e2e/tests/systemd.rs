//! Issue 14 part 2: skiff under systemd's `Type=notify`, with a test standing in for systemd —
//! a `NOTIFY_SOCKET` datagram socket and `WATCHDOG_USEC`: `STATUS=` while starting, `READY=1`
//! only once the API answers, `WATCHDOG=1` at half the interval, `STOPPING=1` on SIGTERM. And
//! the unit and socket files as `systemd-analyze verify` reads them.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use skiff_e2e::kubectl::Kubectl;
use skiff_e2e::*;

/// The datagrams received within `within`, each as text, until one contains `until`.
fn receive_until(socket: &UnixDatagram, until: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.lines().any(|l| l == until);
                got.push(text);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    got
}

#[test]
fn ready_status_watchdog_and_stopping_reach_systemd() {
    let mut s = Server::new();
    let path = s.work_dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    s.extra_env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "2000000".into()),
    ];
    s.start();
    let got = receive_until(&socket, "READY=1", WAIT);
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {got:?}\n{}",
        s.log_tail(20)
    );
    assert!(
        got.iter().any(|m| m.starts_with("STATUS=")),
        "no STATUS= while starting: {got:?}"
    );
    let ready = got.last().unwrap();
    assert!(ready.contains("STATUS=serving: API on"), "{ready}");
    // Ready means ready: the API answers at once, without waiting.
    let k = Kubectl::admin(&s);
    let o = k.run(&["get", "namespaces"]);
    assert!(o.ok() && o.stdout.contains("default"), "{o}");
    // The watchdog: pinged at half of 2 s.
    let started = Instant::now();
    let mut pings = 0;
    while pings < 2 && started.elapsed() < Duration::from_secs(5) {
        pings += receive_until(&socket, "WATCHDOG=1", Duration::from_secs(3))
            .iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count();
    }
    assert!(
        pings >= 2,
        "{pings} watchdog pings in {:?}",
        started.elapsed()
    );
    let status = s.stop();
    assert!(status.success(), "{status}");
    let got = receive_until(&socket, "STOPPING=1", Duration::from_secs(5));
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1: {got:?}"
    );
}

#[test]
fn the_unit_file_verifies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("docs/skiff.service")).unwrap();
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec="),
        "{unit}"
    );
    // The sockets systemd holds across restarts (issue 14 part 1): the API's and the ingress
    // proxy's default ports, handed to skiff.service.
    let socket = std::fs::read_to_string(root.join("docs/skiff.socket")).unwrap();
    for listen in [
        "ListenStream=0.0.0.0:6443",
        "ListenStream=0.0.0.0:80",
        "ListenStream=0.0.0.0:443",
        "Service=skiff.service",
        "Accept=no",
    ] {
        assert!(socket.lines().any(|l| l == listen), "{listen}: {socket}");
    }
    // systemd-analyze wants ExecStart's binary to exist: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("skiff.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/skiff", &skiff_bin().display().to_string()),
    )
    .unwrap();
    std::fs::write(dir.path().join("skiff.socket"), &socket).unwrap();
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("skiff.socket"))
        .arg(&copy)
        .output()
        .expect("systemd-analyze (e2e/install-deps.sh installs systemd)");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `skiff check-config`: the same flags as `skiff server`; every manifest file validated as the
/// folder would, each error naming the file, document and field; a bad config.yaml key named;
/// nothing started, the data directory not even created.
#[test]
fn check_config_names_what_is_wrong_without_starting_anything() {
    let s = Server::new(); // folders only, no daemon
    let data = s.work_dir.join("never-created");
    std::fs::write(
        s.manifests_dir.join("good.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n",
    )
    .unwrap();
    std::fs::write(
        s.manifests_dir.join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx, bogus: 1}\n",
    )
    .unwrap();
    let check = |config: &str| {
        let c = s.work_dir.join("config.yaml");
        std::fs::write(&c, config).unwrap();
        let o = std::process::Command::new(skiff_bin())
            .args(["check-config", "--config"])
            .arg(&c)
            .arg("--manifests")
            .arg(&s.manifests_dir)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (code, out) = check("");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("good.yaml: ok"), "{out}");
    assert!(
        out.contains(
            "bad.yaml: document 2 (Deployment web): spec.template.spec.containers[0].bogus"
        ),
        "{out}"
    );
    std::fs::remove_file(s.manifests_dir.join("bad.yaml")).unwrap();
    let (code, out) = check("");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check("manifest: /typo\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("manifest"), "{out}");
    assert!(!data.exists(), "check-config created the data directory");
}
