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
