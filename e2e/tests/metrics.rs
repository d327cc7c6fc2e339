//! `/metrics`: Prometheus text for the admin token (objects, pods by phase, available
//! replicas), 401 without a token and 403 for a namespace-scoped one; `kubectl top` through the
//! Metrics API.

use std::time::Duration;

use skiff_e2e::kubectl::{
    https_request, kubeconfig_token, parse_tables, server_with_images, Kubectl,
};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-metrics:v1";

#[test]
fn metrics_for_the_admin_only() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &skiff_e2e::deployment_yaml("met", IMAGE, &["sleep", "3600"]),
        &[],
    );
    assert!(k
        .run(&["rollout", "status", "deploy/met", "--timeout=60s"])
        .ok());
    let admin = kubeconfig_token(&s.kubeconfig);
    let body = wait_for(Duration::from_secs(20), || {
        let r = https_request(s.api_port, "GET", "/metrics", Some(&admin), None, None);
        (r.status == 200
            && r.body.contains(
                "skiff_deployment_replicas_available{namespace=\"default\",deployment=\"met\"} 1",
            ))
        .then_some(r.body)
    })
    .expect("metrics with the deployment available");
    assert!(body.contains("skiff_pods{phase=\"Running\"} 1"), "{body}");
    assert!(
        body.contains("skiff_objects{kind=\"Deployment\"} 1"),
        "{body}"
    );
    assert_eq!(
        https_request(s.api_port, "GET", "/metrics", None, None, None).status,
        401
    );
    let out = s.cli(&["token", "create", "-n", "default"]);
    assert!(out.status.success());
    let scoped = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        https_request(s.api_port, "GET", "/metrics", Some(&scoped), None, None).status,
        403
    );
}

/// Millicores of a `kubectl top` CPU cell (`998m`, `2`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => cell.parse::<u64>().map(|c| c * 1000).unwrap_or(0),
    }
}

/// MiB of a `kubectl top` memory cell (`61Mi`).
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// `kubectl top` reads the Metrics API: a busy loop shows more than 100m of CPU, a container
/// holding 60 MiB in tmpfs at least 50Mi; per container, by label, the node; a namespace
/// token reads its own namespace's pods only, never the node.
#[test]
fn kubectl_top_prints_real_numbers() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &skiff_e2e::pod_yaml(
            "busy",
            IMAGE,
            "Always",
            &["sh", "-c", "while :; do :; done"],
        ),
        &[],
    );
    k.apply(
        &skiff_e2e::pod_yaml(
            "mem",
            IMAGE,
            "Always",
            &[
                "sh",
                "-c",
                "dd if=/dev/zero of=/dev/shm/fill bs=1M count=60; sleep 3600",
            ],
        ),
        &[],
    );
    // Two samples, 10 s apart, must have seen both containers.
    let top = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["top", "pods", "-A"]);
        let t = parse_tables(&o.stdout).into_iter().next()?;
        (t.row("busy").is_some() && t.row("mem").is_some()).then_some(t)
    })
    .expect("kubectl top pods -A lists both pods");
    assert_eq!(
        top.columns,
        ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    let busy = top.row("busy").unwrap();
    assert!(millicores(&busy["CPU(cores)"]) > 100, "{busy:?}");
    let mem = top.row("mem").unwrap();
    assert!(mebibytes(&mem["MEMORY(bytes)"]) >= 50, "{mem:?}");
    assert!(millicores(&mem["CPU(cores)"]) < 100, "{mem:?}");

    // The same figures in /metrics.
    let admin = kubeconfig_token(&s.kubeconfig);
    let body = https_request(s.api_port, "GET", "/metrics", Some(&admin), None, None).body;
    let gauge = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    assert!(gauge("skiff_container_cpu_usage_cores{namespace=\"default\",pod=\"busy\",container=\"main\"}") > 0.1);
    assert!(
        gauge("skiff_container_memory_working_set_bytes{namespace=\"default\",pod=\"mem\",container=\"main\"}")
            >= 50.0 * 1024.0 * 1024.0
    );
    assert!(gauge("skiff_node_cpu_usage_cores") > 0.1);

    let o = k.run(&["top", "pod", "mem", "-n", "default", "--containers"]);
    assert!(o.ok(), "{}", o.stderr);
    let t = &parse_tables(&o.stdout)[0];
    assert_eq!(t.columns, ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]);
    let row = t.row("main").expect("the container's row");
    assert_eq!(row["POD"], "mem");
    assert!(mebibytes(&row["MEMORY(bytes)"]) >= 50, "{row:?}");

    let o = k.run(&["top", "pods", "-l", "app=busy"]);
    assert!(o.ok(), "{}", o.stderr);
    let t = &parse_tables(&o.stdout)[0];
    assert_eq!(t.rows.len(), 1, "{}", o.stdout);
    assert!(t.row("busy").is_some());

    let o = k.run(&["top", "node"]);
    assert!(o.ok(), "{}", o.stderr);
    let t = &parse_tables(&o.stdout)[0];
    assert_eq!(t.rows.len(), 1, "{}", o.stdout);
    let node = &t.rows[0];
    assert!(millicores(&node["CPU(cores)"]) > 100, "{node:?}");
    assert!(mebibytes(&node["MEMORY(bytes)"]) > 50, "{node:?}");

    let o = k.run(&["top", "pod", "nothere"]);
    assert!(!o.ok());
    assert!(o.stderr.contains("not found"), "{}", o.stderr);

    // A namespace token: its own pods only, not the node, not another namespace.
    let (kc, _) = skiff_e2e::kubectl::namespace_token(&s, "default");
    let scoped = Kubectl::with_kubeconfig(&s, &kc);
    let o = scoped.run(&["top", "pods", "-n", "default"]);
    assert!(o.ok(), "{}", o.stderr);
    assert!(parse_tables(&o.stdout)[0].row("busy").is_some());
    let o = scoped.run(&["top", "pods", "-A"]);
    assert!(!o.ok() && o.stderr.contains("forbidden"), "{o:?}");
    let o = scoped.run(&["top", "node"]);
    assert!(!o.ok() && o.stderr.contains("forbidden"), "{o:?}");
    let o = scoped.run(&["top", "pods", "-n", "kube-system"]);
    assert!(!o.ok() && o.stderr.contains("forbidden"), "{o:?}");
}

/// The value of the series `series` (name and labels, exactly) in Prometheus text, 0 if absent.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Unix time of an `openssl x509 -dates` date (`Jan  4 09:00:00 2027 GMT`).
fn unix_time(openssl_date: &str) -> i64 {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", openssl_date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Issue 14 part 7: the ingress proxy's counters in `/metrics`, after real requests through it
/// over HTTP and HTTPS: requests by Ingress host, method and status class, the latency
/// histogram's count, one label for hosts no Ingress names, upstream errors, TLS handshakes by
/// version and result, and the served certificate's expiry equal to its notAfter.
#[test]
fn proxy_requests_handshakes_and_certificate_expiry() {
    use skiff_e2e::ingress::{app_yaml, expect_curl, import_image, ingress_yaml, tls_secret_yaml};
    use skiff_e2e::pebble::{curl, make_cert, served_cert};
    use skiff_e2e::{deployment_yaml, free_port, Server};

    let mut s = Server::start_new();
    import_image(&s);
    let (hp, hsp) = (s.http_port, s.https_port);
    let (cert, key, ca) = make_cert(&s.work_dir, "app", &["app.test"]).unwrap();
    let down_port = free_port();
    s.write_manifest("web.yaml", &app_yaml("web", free_port(), 1));
    // Ready, but nothing listens on its port: 502.
    s.write_manifest(
        "down.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: down\nspec:\n  selector:\n    app: down\n  ports:\n  - port: 80\n    targetPort: {down_port}\n",
            deployment_yaml("down", skiff_e2e::ingress::IMAGE, &["sleep", "3600"])
        ),
    );
    s.write_manifest("secret.yaml", &tls_secret_yaml("app-tls", &cert, &key));
    s.write_manifest(
        "ingress.yaml",
        &[
            ingress_yaml("web", "app.test", "web", Some("app-tls"), ""),
            ingress_yaml("plain", "plain.test", "web", None, ""),
            ingress_yaml("down", "down.test", "down", None, ""),
        ]
        .join("---\n"),
    );
    let ca = ca.display().to_string();
    expect_curl(&mut s, &format!("http://plain.test:{hp}/"), &[], 200, None);
    expect_curl(
        &mut s,
        &format!("https://app.test:{hsp}/"),
        &["--cacert", &ca],
        200,
        None,
    );
    expect_curl(&mut s, &format!("http://down.test:{hp}/"), &[], 502, None);
    let served = served_cert(hsp, "app.test");
    let not_after = served
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap_or_else(|| panic!("no notAfter in {served}"));
    assert!(served.contains("app test CA"), "{served}");

    let admin = kubeconfig_token(&s.kubeconfig);
    let scrape = || {
        let r = https_request(s.api_port, "GET", "/metrics", Some(&admin), None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let before = scrape();

    // Known numbers of requests, each on its own connection.
    for _ in 0..5 {
        assert_eq!(curl(&format!("http://plain.test:{hp}/"), &[]).status, 200);
    }
    assert_eq!(
        curl(&format!("http://plain.test:{hp}/"), &["-I"]).status,
        200
    );
    for _ in 0..3 {
        let r = curl(&format!("https://app.test:{hsp}/"), &["--cacert", &ca]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = curl(
        &format!("https://app.test:{hsp}/"),
        &["--cacert", &ca, "--tls-max", "1.2"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // HTTP to a TLS host: redirected.
    assert_eq!(curl(&format!("http://app.test:{hp}/"), &[]).status, 308);
    // Hosts no Ingress names, over both ports: one label.
    assert_eq!(curl(&format!("http://nothing.test:{hp}/"), &[]).status, 404);
    assert_eq!(
        curl(&format!("http://other.test:{hp}/"), &["-X", "POST"]).status,
        404
    );
    assert_eq!(
        curl(&format!("https://nothing.test:{hsp}/"), &["-k"]).status,
        404
    );
    assert_eq!(curl(&format!("http://down.test:{hp}/"), &[]).status, 502);
    // Plain HTTP to the HTTPS port: a failed handshake.
    assert_eq!(curl(&format!("http://app.test:{hsp}/"), &[]).status, 0);

    let after = scrape();
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let requests = |host: &str, method: &str, code: &str| {
        delta(&format!(
            "skiff_proxy_requests_total{{host=\"{host}\",method=\"{method}\",code=\"{code}\"}}"
        ))
    };
    assert_eq!(requests("plain.test", "GET", "2xx"), 5.0, "{after}");
    assert_eq!(requests("plain.test", "HEAD", "2xx"), 1.0, "{after}");
    assert_eq!(requests("app.test", "GET", "2xx"), 4.0, "{after}");
    assert_eq!(requests("app.test", "GET", "3xx"), 1.0, "{after}");
    assert_eq!(requests("(unknown)", "GET", "4xx"), 2.0, "{after}");
    assert_eq!(requests("(unknown)", "POST", "4xx"), 1.0, "{after}");
    assert_eq!(requests("down.test", "GET", "5xx"), 1.0, "{after}");
    assert_eq!(
        delta("skiff_proxy_upstream_errors_total{host=\"down.test\",reason=\"error\"}"),
        1.0
    );
    assert_eq!(
        delta("skiff_proxy_request_duration_seconds_count{host=\"plain.test\"}"),
        6.0
    );
    assert_eq!(
        delta("skiff_proxy_request_duration_seconds_bucket{host=\"plain.test\",le=\"+Inf\"}"),
        6.0
    );
    assert!(delta("skiff_proxy_request_duration_seconds_sum{host=\"plain.test\"}") > 0.0);
    // The client's own Host header never becomes a label.
    assert!(!after.contains("nothing.test") && !after.contains("other.test"));
    // 3 + the unknown host over TLS 1.3; 1 over TLS 1.2; 1 failed.
    assert_eq!(
        delta("skiff_proxy_tls_handshakes_total{result=\"ok\",version=\"TLSv1.3\"}"),
        4.0,
        "{after}"
    );
    assert_eq!(
        delta("skiff_proxy_tls_handshakes_total{result=\"ok\",version=\"TLSv1.2\"}"),
        1.0
    );
    assert_eq!(
        delta("skiff_proxy_tls_handshakes_total{result=\"error\",version=\"unknown\"}"),
        1.0
    );
    let expiry = sample(
        &after,
        "skiff_certificate_expiry_timestamp_seconds{host=\"app.test\",issuer=\"app test CA\"}",
    );
    assert_eq!(expiry as i64, unix_time(not_after), "{after}");
}
