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
    let (code, out) = check("ingress-threads: 0\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ingress-threads"), "{out}");
    let (code, out) = check("ingress-threads: 3\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(!data.exists(), "check-config created the data directory");
}

/// Issue 14 part 5: under journald (systemd's `JOURNAL_STREAM` naming stderr's device and
/// inode) every line starts with its syslog priority (`<6>` info, `<3>` error) and carries no
/// timestamp or level word, journald adding its own; when `JOURNAL_STREAM` names another file
/// (stderr redirected by a wrapper) the usual format with timestamps comes back.
#[test]
fn logs_as_journald_expects_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let mut s = Server::new();
    // A file the folder cannot apply: an error line.
    s.write_manifest("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    let st = std::fs::metadata(&s.log_path).unwrap();
    // Stopped only once ready (SIGTERM handled).
    let notify = s.work_dir.join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    let notify_env = ("NOTIFY_SOCKET".to_string(), notify.display().to_string());
    s.extra_env = vec![
        (
            "JOURNAL_STREAM".into(),
            format!("{}:{}", st.dev(), st.ino()),
        ),
        notify_env.clone(),
    ];
    let ready = |socket: &UnixDatagram| {
        let got = receive_until(socket, "READY=1", WAIT);
        assert!(
            got.iter().any(|m| m.lines().any(|l| l == "READY=1")),
            "{got:?}"
        );
    };
    let timestamp = |l: &str| {
        // RFC 3339 as tracing's default format writes it: 2026-12-05T09:00:00.123456Z
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.len() >= 20 && w.as_bytes()[4] == b'-' && w.as_bytes()[10] == b'T')
    };
    s.start();
    let mark = 0;
    s.wait_log(mark, "API server listening", &[], WAIT)
        .unwrap_or_else(|| panic!("the API never listened:\n{}", s.log_tail(20)));
    s.wait_log(mark, "manifest not applied", &["broken.yaml"], WAIT)
        .unwrap_or_else(|| panic!("no error for broken.yaml:\n{}", s.log_tail(20)));
    ready(&socket);
    let status = s.stop();
    assert!(status.success(), "{status}\n{}", s.log_tail(30));
    let log = s.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("=== skiff-e2e:") && !l.trim().is_empty())
        .collect();
    assert!(lines.len() > 3, "{log}");
    for l in &lines {
        let priority = l.strip_prefix('<').and_then(|r| r.split_once('>'));
        let Some((p, rest)) = priority else {
            panic!("a line without a priority prefix: {l:?}\n{log}");
        };
        assert!(["3", "4", "6", "7"].contains(&p), "{l:?}");
        assert!(!timestamp(rest), "a timestamp under journald: {l:?}");
        assert!(
            !rest.starts_with("INFO") && !rest.starts_with(" INFO"),
            "a level word under journald: {l:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("API server listening")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<3>") && l.contains("broken.yaml")),
        "{log}"
    );

    // JOURNAL_STREAM naming another file: stderr is not the journal.
    s.extra_env = vec![
        ("JOURNAL_STREAM".into(), format!("{}:1", st.dev())),
        notify_env,
    ];
    let mark = s.log_mark();
    s.start();
    let line = s
        .wait_log(mark, "API server listening", &[], WAIT)
        .unwrap_or_else(|| panic!("the API never listened:\n{}", s.log_tail(20)));
    let line = line
        .lines()
        .find(|l| l.contains("API server listening"))
        .unwrap();
    assert!(timestamp(line), "no timestamp outside journald: {line:?}");
    assert!(line.contains("INFO") && !line.starts_with('<'), "{line:?}");
    ready(&socket);
    assert!(s.stop().success());
}
