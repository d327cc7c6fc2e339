//! Pod networking (issue 5): an address per pod on the server's own bridge, Services with
//! virtual IPs balanced over ready endpoints, reached from the host and from other pods; no
//! network artefact left after `skiff killall`. Traffic goes only to addresses whose route is
//! checked to be the server's own bridge.

use std::process::Command;
use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_until;

const IMAGE: &str = "skiff-e2e-net:v1";

fn web_yaml(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"hostname > /www/index.html; exec httpd -f -p 8080 -h /www\"]
        ports:
        - {{name: http, containerPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - {{port: 80, targetPort: http}}
"
    )
}

/// The device the kernel routes `ip` through (`ip route get`), to check it is local.
fn route_dev(ip: &str) -> String {
    let out = Command::new("ip")
        .args(["route", "get", ip])
        .output()
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().unwrap_or_default().to_string();
        }
    }
    String::new()
}

/// `GET /` over plain TCP with a short timeout; the body, if any.
fn get(ip: &str, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.trim().to_string())
}

#[test]
fn pods_get_addresses_and_services_balance_over_ready_pods() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&web_yaml(2), &[]);
    let rollout = k.run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(rollout.ok(), "{rollout}");
    let pods = k.get_json(&["pods", "-l", "app=web"]).expect("pods");
    let items = pods["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    let mut names = Vec::new();
    for p in &items {
        let ip = p["status"]["podIP"].as_str().expect("a pod IP").to_string();
        assert!(
            ip.starts_with(&format!("10.244.{}.", s.net_index)),
            "{ip} outside this server's cluster CIDR"
        );
        assert_eq!(
            route_dev(&ip),
            s.bridge,
            "the route to {ip} must be the server's bridge"
        );
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        // Straight to the pod: it answers with its own name.
        let body = wait_until_some(|| get(&ip, 8080));
        assert_eq!(body, name, "pod {ip} answered");
        names.push(name);
    }
    let svc = k.get_json(&["svc", "web"]).expect("service");
    let vip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    assert!(
        vip.starts_with(&format!("10.245.{}.", s.net_index)),
        "{vip}"
    );
    assert_eq!(
        route_dev(&vip),
        s.bridge,
        "service addresses never leave by the uplink"
    );
    // From the host through the virtual IP: both pods answer.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        if let Some(b) = get(&vip, 80) {
            seen.insert(b);
        }
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both replicas answer through {vip}: {seen:?}"
    );
    // From a pod through the virtual IP.
    let client = &names[0];
    let mut from_pod = std::collections::HashSet::new();
    for _ in 0..20 {
        let o = k.run(&[
            "exec",
            client,
            "--",
            "wget",
            "-qO-",
            &format!("http://{vip}/"),
        ]);
        if o.ok() {
            from_pod.insert(o.stdout.trim().to_string());
        }
        if from_pod.len() == 2 {
            break;
        }
    }
    assert_eq!(
        from_pod.len(),
        2,
        "a pod reaches both replicas through the service: {from_pod:?}"
    );
    // Cluster DNS: the full name (busybox's nslookup applies no search path), and the short
    // names through the search path of the pod's resolv.conf.
    let o = k.run(&[
        "exec",
        client,
        "--",
        "nslookup",
        "web.default.svc.cluster.local",
    ]);
    assert!(
        o.ok() && o.stdout.contains(&vip),
        "nslookup from a pod: {o}"
    );
    for name in ["web.default.svc.cluster.local", "web.default", "web"] {
        let o = k.run(&[
            "exec",
            client,
            "--",
            "wget",
            "-qO-",
            &format!("http://{name}/"),
        ]);
        assert!(
            o.ok() && names.contains(&o.stdout.trim().to_string()),
            "wget http://{name}/ from a pod: {o}"
        );
    }
    let o = k.run(&[
        "exec",
        client,
        "--",
        "nslookup",
        "nosuch.default.svc.cluster.local",
    ]);
    assert!(
        !o.ok() || !o.stdout.contains("Address: 10."),
        "an unknown service must not resolve: {o}"
    );
    // A deleted pod leaves the endpoints; requests keep succeeding.
    let gone = &names[1];
    assert!(k.run(&["delete", "pod", gone, "--wait=false"]).ok());
    let dropped = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        k.get_json(&["endpointslice", "web"]).is_some_and(|e| {
            !e["endpoints"].as_array().into_iter().flatten().any(|ep| {
                ep["targetRef"]["name"] == gone.as_str() && ep["conditions"]["ready"] == true
            })
        })
    });
    assert!(
        dropped,
        "the deleted pod left the service's ready endpoints"
    );
    for _ in 0..10 {
        let b = get(&vip, 80);
        assert!(
            b.as_deref().is_some_and(|b| b != gone.as_str()),
            "a request through the service failed or reached the deleted pod: {b:?}"
        );
    }
    // killall removes every network artefact.
    s.stop();
    let o = s.cli(&["killall"]);
    assert!(
        o.status.success(),
        "killall: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-br", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        !links
            .lines()
            .any(|l| l.starts_with(&format!("{} ", s.bridge))),
        "bridge left:\n{links}"
    );
    let tables = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        !tables.contains(&s.bridge.replace('-', "_")),
        "nftables table left:\n{tables}"
    );
}

fn wait_until_some(mut f: impl FnMut() -> Option<String>) -> String {
    let mut got = None;
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        got = f();
        got.is_some()
    });
    got.expect("an answer within 20 s")
}

#[test]
fn a_users_own_nftables_table_survives_start_work_and_stop() {
    let table = format!("skiff_e2e_user_{}", std::process::id());
    let setup = format!("table inet {table} {{\n chain input {{\n type filter hook input priority 0; policy accept;\n tcp dport 9 accept\n }}\n}}\n");
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(setup.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let before = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "table", "inet", &table])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    {
        let mut s = server_with_images(&[IMAGE]);
        let k = Kubectl::admin(&s);
        k.apply(&web_yaml(1), &[]);
        assert!(k
            .run(&["rollout", "status", "deploy/web", "--timeout=60s"])
            .ok());
        s.stop();
        let o = s.cli(&["killall"]);
        assert!(
            o.status.success(),
            "killall: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let after = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "table", "inet", &table])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", &table])
        .status();
    assert_eq!(before, after, "the user's table changed");
}
