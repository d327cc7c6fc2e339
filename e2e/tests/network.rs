//! Pod networking (issue 5): an address per pod on the server's own bridge, Services with
//! virtual IPs balanced over ready endpoints, reached from the host and from other pods; no
//! network artefact left after `skiff killall`. Traffic goes only to addresses whose route is
//! checked to be the server's own bridge.

use std::process::Command;
use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::{route_dev, wait_until};

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

/// A Deployment serving its caller's address (busybox httpd CGI) with a hostPort on 127.0.0.1,
/// plus a NodePort and a LoadBalancer Service in front of it.
fn published_yaml(host_port: u16, lb_port: u16) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: pub
spec:
  selector:
    matchLabels: {{app: pub}}
  template:
    metadata:
      labels: {{app: pub}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"mkdir -p /www/cgi-bin && printf '#!/bin/sh\\\\necho Content-Type: text/plain\\\\necho\\\\necho $REMOTE_ADDR\\\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && hostname > /www/index.html && exec httpd -f -p 8080 -h /www\"]
        ports:
        - {{name: http, containerPort: 8080, hostPort: {host_port}, hostIP: 127.0.0.1}}
---
apiVersion: v1
kind: Service
metadata:
  name: np
spec:
  type: NodePort
  selector: {{app: pub}}
  ports:
  - {{port: 80, targetPort: http}}
---
apiVersion: v1
kind: Service
metadata:
  name: lb
spec:
  type: LoadBalancer
  selector: {{app: pub}}
  ports:
  - {{port: {lb_port}, targetPort: http}}
"
    )
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

#[test]
fn host_ports_node_ports_and_load_balancers_reach_pods_and_keep_the_callers_address() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let (host_port, lb_port) = (skiff_e2e::free_port(), skiff_e2e::free_port());
    k.apply(&published_yaml(host_port, lb_port), &[]);
    assert!(k
        .run(&["rollout", "status", "deploy/pub", "--timeout=60s"])
        .ok());
    let pod = k.names(&["pods", "-l", "app=pub"]).pop().expect("a pod");
    let np = k.get_json(&["svc", "np"]).expect("np");
    let node_port = np["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port allocated") as u16;
    assert!((30000..=32767).contains(&node_port));
    let lb = k.get_json(&["svc", "lb"]).expect("lb");
    assert!(
        lb["status"]["loadBalancer"]["ingress"][0]["ip"].is_string(),
        "LoadBalancer status: {lb}"
    );
    for (what, port) in [
        ("hostPort", host_port),
        ("NodePort", node_port),
        ("LoadBalancer", lb_port),
    ] {
        let body = wait_until_some(|| get("127.0.0.1", port));
        assert_eq!(body, pod, "{what} on 127.0.0.1:{port}");
    }
    // A caller from a test network namespace of our own: the pod sees its address.
    let n = s.net_index;
    let (ns, host_if) = (format!("skiff-e2e-lb-{n}"), format!("skelb{n}"));
    let (host_addr, client_addr) = (format!("10.246.{n}.1"), format!("10.246.{n}.2"));
    let setup = sh(&format!(
        "ip netns add {ns} && ip link add {host_if} type veth peer name eth0 netns {ns} && \
         ip addr add {host_addr}/30 dev {host_if} && ip link set {host_if} up && \
         ip -n {ns} addr add {client_addr}/30 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up"
    ));
    let seen = if setup.status.success() {
        let mut got = String::new();
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
            let o = sh(&format!(
                "ip netns exec {ns} busybox wget -qO- http://{host_addr}:{lb_port}/cgi-bin/ip"
            ));
            // httpd listens on IPv6 too: an IPv4 caller shows as [::ffff:a.b.c.d].
            got = String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("[::ffff:")
                .trim_end_matches(']')
                .to_string();
            o.status.success()
        });
        got
    } else {
        format!("setup failed: {}", String::from_utf8_lossy(&setup.stderr))
    };
    let _ = sh(&format!("ip link del {host_if}; ip netns del {ns}"));
    assert_eq!(
        seen, client_addr,
        "the pod sees the LoadBalancer caller's address"
    );
}

#[test]
fn a_udp_host_port_reaches_its_pod() {
    let s = server_with_images(&[IMAGE]);
    // A static UDP echo server (std only), added to a busybox image.
    skiff_e2e::import_image_with_program(&s, "skiff-e2e-udp:v1", "udp-echo");
    let port = skiff_e2e::free_port();
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: echo
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: echo
    image: skiff-e2e-udp:v1
    imagePullPolicy: Never
    command: [\"/bin/udp-echo\", \"5353\"]
    ports:
    - {{containerPort: 5353, hostPort: {port}, protocol: UDP}}
"
        ),
        &[],
    );
    assert!(k
        .run(&["wait", "--for=condition=Ready", "pod/echo", "--timeout=60s"])
        .ok());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answer = String::new();
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let _ = sock.send_to(b"ping", ("127.0.0.1", port));
        let mut buf = [0u8; 64];
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                answer = String::from_utf8_lossy(&buf[..n]).to_string();
                true
            }
            Err(_) => false,
        }
    });
    assert_eq!(answer, "echo:ping", "the UDP hostPort answered");
}

/// Events about an object, as `kubectl get events` lists them: (reason, message).
fn events_of(k: &Kubectl, name: &str) -> Vec<(String, String)> {
    let sel = format!("involvedObject.name={name}");
    k.get_json(&["events", "--field-selector", &sel])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn lb_service(name: &str, port: u16, address: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: LoadBalancer
  loadBalancerIP: {address}
  selector: {{app: web}}
  ports:
  - {{port: {port}, targetPort: http}}
"
    )
}

/// `loadBalancerIP` (issue 12): the Service answers on that host address only; an address
/// the host does not have leaves it Pending with an event saying why; collisions are by
/// address; `loadBalancerSourceRanges` drops other clients.
#[test]
fn a_load_balancer_ip_serves_on_that_address_only_and_a_foreign_one_stays_pending() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let port = skiff_e2e::free_port();
    k.apply(&web_yaml(1), &[]);
    k.apply(&lb_service("lb", port, "127.0.0.2"), &[]);
    assert!(k
        .run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .ok());
    let pod = k.names(&["pods", "-l", "app=web"]).pop().expect("a pod");
    assert_eq!(wait_until_some(|| get("127.0.0.2", port)), pod);
    assert_eq!(get("127.0.0.1", port), None, "not on 127.0.0.1:{port}");
    let svc = k.get_json(&["svc", "lb"]).expect("lb");
    assert_eq!(
        svc["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.2",
        "{svc}"
    );

    // The same port on every address collides with it; on another address it does not.
    let o = k.run_stdin(
        &["apply", "-f", "-"],
        &lb_service("all", port, "127.0.0.2").replace("  loadBalancerIP: 127.0.0.2\n", ""),
    );
    assert!(!o.ok(), "{o}");
    assert!(
        o.stderr
            .contains(&format!("127.0.0.2:{port} is the Service default/lb's")),
        "{o}"
    );
    k.apply(&lb_service("other", port, "127.0.0.3"), &[]);
    assert_eq!(wait_until_some(|| get("127.0.0.3", port)), pod);

    // loadBalancerSourceRanges: a client outside them (the host, from 127.0.0.0/8) is dropped;
    // inside them, served.
    let ranges = |r: &str| {
        let patch = format!(r#"{{"spec":{{"loadBalancerSourceRanges":[{r}]}}}}"#);
        let o = k.run(&["patch", "svc", "other", "-p", &patch]);
        assert!(o.ok(), "{o}");
    };
    ranges(r#""10.0.0.0/8""#);
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(200), || get(
            "127.0.0.3",
            port
        )
        .is_none()),
        "a client outside the source ranges is still served"
    );
    assert_eq!(
        get("127.0.0.2", port),
        Some(pod.clone()),
        "only that Service"
    );
    ranges(r#""10.0.0.0/8","127.0.0.0/8""#);
    assert_eq!(wait_until_some(|| get("127.0.0.3", port)), pod);

    // An address this host does not have: Pending, with the reason.
    let far = skiff_e2e::free_port();
    k.apply(&lb_service("far", far, "198.51.100.7"), &[]);
    let said = skiff_e2e::wait_for(Duration::from_secs(30), || {
        events_of(&k, "far")
            .into_iter()
            .find(|(reason, _)| reason == "SyncLoadBalancerFailed")
    });
    let (_, message) = said.unwrap_or_else(|| panic!("no event: {}", k.run(&["get", "events"])));
    assert!(
        message.contains("loadBalancerIP 198.51.100.7 is not an address of this host"),
        "{message}"
    );
    let row = k.run(&["get", "svc", "far", "--no-headers"]);
    assert!(row.stdout.contains("<pending>"), "{row}");
    let far = k.get_json(&["svc", "far"]).expect("far");
    assert!(far["status"]["loadBalancer"]["ingress"].is_null(), "{far}");
}

/// The rules of this server's table mention client IP affinity.
fn affinity_installed(s: &skiff_e2e::Server) -> bool {
    let table = format!("skiff_{}", s.bridge.replace('-', "_"));
    let o = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&o.stdout).contains("affinity-")
}

/// `sessionAffinity: ClientIP` (issue 12): from one client, every request reaches the same
/// pod — through the virtual IP from a pod and through the LoadBalancer port from the host;
/// with None, both pods answer.
#[test]
fn client_ip_session_affinity_keeps_a_client_on_one_pod() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let port = skiff_e2e::free_port();
    k.apply(&web_yaml(2), &[]);
    k.apply(
        &lb_service("lb", port, "127.0.0.1").replace("  loadBalancerIP: 127.0.0.1\n", ""),
        &[],
    );
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"3600\"]
"
        ),
        &[],
    );
    assert!(k
        .run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .ok());
    assert!(k
        .run(&[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=60s"
        ])
        .ok());
    let vip = k.get_json(&["svc", "lb"]).expect("lb")["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    // 20 requests from the client pod through the virtual IP; the distinct answers.
    let from_pod = || -> std::collections::BTreeSet<String> {
        let o = k.run(&[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            &format!("for i in $(seq 20); do wget -qO- http://{vip}:{port}/; done"),
        ]);
        assert!(o.ok(), "{o}");
        o.stdout.lines().map(|l| l.trim().to_string()).collect()
    };
    let from_host = || -> std::collections::BTreeSet<String> {
        (0..20).filter_map(|_| get("127.0.0.1", port)).collect()
    };
    wait_until_some(|| get("127.0.0.1", port));
    assert_eq!(from_pod().len(), 2, "None: both pods answer the pod");
    assert_eq!(from_host().len(), 2, "None: both pods answer the host");

    let o = k.run(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    assert!(o.ok(), "{o}");
    let svc = k.get_json(&["svc", "lb"]).expect("lb");
    assert_eq!(
        svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800,
        "defaulted as Kubernetes does"
    );
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
            affinity_installed(&s)
        }),
        "the affinity rules were installed"
    );
    let pod_answers = from_pod();
    assert_eq!(
        pod_answers.len(),
        1,
        "ClientIP, from a pod: {pod_answers:?}"
    );
    let host_answers = from_host();
    assert_eq!(
        host_answers.len(),
        1,
        "ClientIP, from the host: {host_answers:?}"
    );
}

/// Issue 14 part 6: what another tool removes is put back within seconds — skiff's nftables
/// table (`systemctl restart nftables` flushes the ruleset; this test deletes only this
/// server's own table), the bridge (`ip link del`; the pod's veth goes back on the new one)
/// and a pod's veth pair (its `eth0` re-created with the same address). The Service answers
/// after each.
#[test]
fn the_table_the_bridge_and_a_pods_interface_come_back_when_removed() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&web_yaml(1), &[]);
    let rollout = k.run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(rollout.ok(), "{rollout}");
    let pod = k.get_json(&["pods", "-l", "app=web"]).expect("pods")["items"][0].clone();
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(route_dev(&ip), s.bridge);
    let vip = k.get_json(&["svc", "web"]).expect("service")["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(route_dev(&vip), s.bridge);
    wait_until_some(|| get(&vip, 80));
    let table = if s.bridge == "skiff0" {
        "skiff".to_string()
    } else {
        format!("skiff_{}", s.bridge.replace('-', "_"))
    };
    let back = |what: &str| {
        let started = std::time::Instant::now();
        let ok = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
            route_dev(&vip) == s.bridge && get(&vip, 80).is_some() && get(&ip, 8080).is_some()
        });
        assert!(
            ok,
            "the Service did not come back after {what}\n{}",
            s.log_tail(20)
        );
        eprintln!("{what}: answering again after {:?}", started.elapsed());
    };
    let run = |cmd: &[&str]| {
        let o = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["nft", "delete", "table", "inet", &table]);
    assert!(
        get(&vip, 80).is_none(),
        "the Service answered without its rules"
    );
    back("the nftables table deleted");
    run(&["ip", "link", "del", &s.bridge]);
    back("the bridge deleted");
    // The pod's veth pair: deleting the host end takes the pod's eth0 with it.
    let veth = {
        use sha2::Digest;
        format!(
            "sk{}",
            &hex::encode(sha2::Sha256::digest(uid.as_bytes()))[..11]
        )
    };
    run(&["ip", "link", "del", &veth]);
    back("the pod's interface deleted");
    let again = k.get_json(&["pods", "-l", "app=web"]).expect("pods")["items"][0].clone();
    assert_eq!(again["status"]["podIP"], ip.as_str(), "the same address");
    assert_eq!(
        again["status"]["containerStatuses"][0]["restartCount"], 0,
        "the container kept running"
    );
    assert!(
        s.log_tail(200).contains("put back"),
        "the log says what was repaired"
    );
    // The cluster DNS answers on the re-created bridge's gateway.
    let name = again["metadata"]["name"].as_str().unwrap();
    let dns = wait_until(Duration::from_secs(20), Duration::from_millis(500), || {
        k.run(&[
            "exec",
            name,
            "--",
            "nslookup",
            "web.default.svc.cluster.local",
        ])
        .stdout
        .contains(&vip)
    });
    assert!(dns, "the cluster DNS did not answer after the repairs");
}

/// A hostNetwork pod's address is the node's (its `hostIP`), as on Kubernetes: `get -o wide`
/// and the EndpointSlice show it, and its Service's ClusterIP and NodePort reach it from the
/// host and from a pod on the bridge (DNAT to the node's own address).
#[test]
fn a_host_network_pod_has_the_node_address_and_its_services_reach_it() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let port = skiff_e2e::free_port();
    k.apply(
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostweb
spec:
  selector:
    matchLabels: {{app: hostweb}}
  template:
    metadata:
      labels: {{app: hostweb}}
    spec:
      hostNetwork: true
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"mkdir -p /tmp/www && echo on-the-host > /tmp/www/index.html && exec httpd -f -p {port} -h /tmp/www\"]
        env:
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
        readinessProbe:
          httpGet: {{path: /, port: {port}}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hostweb
spec:
  type: NodePort
  selector: {{app: hostweb}}
  ports:
  - {{port: 80, targetPort: {port}}}
---
{}",
            web_yaml(1)
        ),
        &[],
    );
    for d in ["deploy/hostweb", "deploy/web"] {
        let o = k.run(&["rollout", "status", d, "--timeout=90s"]);
        assert!(o.ok(), "{d}: {o}");
    }
    let node = k.get_json(&["nodes"]).expect("nodes");
    let node_ip = node["items"][0]["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .expect("the node's InternalIP")
        .to_string();
    assert!(
        !node_ip.starts_with("127."),
        "this test needs a host with an address besides loopback, the node reports {node_ip}"
    );
    let pods = k.get_json(&["pods", "-l", "app=hostweb"]).expect("pods");
    let pod = &pods["items"][0];
    let status = &pod["status"];
    assert_eq!(status["podIP"], node_ip.as_str(), "{status}");
    assert_eq!(status["podIPs"][0]["ip"], node_ip.as_str(), "{status}");
    assert_eq!(status["hostIP"], node_ip.as_str(), "{status}");
    let name = pod["metadata"]["name"].as_str().unwrap();
    // The downward API says the same.
    let env = k.ok(&["exec", name, "--", "sh", "-c", "echo $POD_IP $HOST_IP"]);
    assert_eq!(env.trim(), format!("{node_ip} {node_ip}"));
    let wide = k.ok(&["get", "pod", name, "-o", "wide"]);
    assert!(
        wide.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().any(|c| c == node_ip)),
        "{wide}"
    );
    let slice = wait_until_some(|| {
        let l = k.get_json(&["endpointslices", "-l", "kubernetes.io/service-name=hostweb"])?;
        let e = &l["items"][0]["endpoints"][0];
        (e["conditions"]["ready"] == true).then(|| e["addresses"][0].as_str().map(String::from))?
    });
    assert_eq!(slice, node_ip);
    let svc = k.get_json(&["svc", "hostweb"]).expect("hostweb");
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    // From the host.
    assert_eq!(wait_until_some(|| get(&cluster_ip, 80)), "on-the-host");
    assert_eq!(
        wait_until_some(|| get("127.0.0.1", node_port)),
        "on-the-host"
    );
    // From a pod on the bridge.
    let client = k
        .names(&["pods", "-l", "app=web"])
        .pop()
        .expect("a web pod");
    for url in [
        format!("http://{cluster_ip}/"),
        "http://hostweb.default.svc.cluster.local/".to_string(),
        format!("http://{node_ip}:{node_port}/"),
    ] {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(20), Duration::from_millis(300), || {
            let o = k.run(&["exec", &client, "--", "wget", "-qO-", &url]);
            last = o.to_string();
            o.ok() && o.stdout.trim() == "on-the-host"
        });
        assert!(ok, "{url} from a pod: {last}");
    }
}
