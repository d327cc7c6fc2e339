//! `/metrics`: Prometheus text for the admin token (objects, pods by phase, available
//! replicas), 401 without a token and 403 for a namespace-scoped one.

use std::time::Duration;

use skiff_e2e::kubectl::{https_request, kubeconfig_token, server_with_images, Kubectl};
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
