//! grpc probes: the standard health protocol (`grpc.health.v1.Health/Check`) on the pod's own
//! address, against a real grpc health server in a container: SERVING makes the pod Ready,
//! NOT_SERVING fails a liveness probe (Unhealthy events in kubelet's words, restarts).

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-grpc:v1";

#[test]
fn serving_is_ready_not_serving_restarts() {
    let s = server_with_images(&[]);
    skiff_e2e::import_image_with_program(&s, IMAGE, "grpc-health");
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: up}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [/bin/grpc-health, \"9090\"]
    readinessProbe:
      grpc: {{port: 9090, service: up}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: down}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [/bin/grpc-health, \"9090\"]
    livenessProbe:
      grpc: {{port: 9090, service: down}}
      periodSeconds: 1
      failureThreshold: 2
"
        ),
        &[],
    );
    let o = k.run(&["wait", "--for=condition=Ready", "pod/up", "--timeout=60s"]);
    assert!(o.ok(), "SERVING: ready ({})", o.stderr);
    let restarted = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "down"])?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(())
    });
    assert!(
        restarted.is_some(),
        "NOT_SERVING: restarted by its liveness probe"
    );
    let d = k.ok(&["describe", "pod", "down"]);
    assert!(
        d.contains("Liveness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{d}"
    );
}
