//! Probes: a readiness probe holds a pod un-ready until its check passes (and takes it out of
//! its Service's endpoints when it fails again); a failing liveness probe restarts the
//! container, with Unhealthy events.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-probe:v1";

fn ready(k: &Kubectl, pod: &str) -> Option<bool> {
    let p = k.get_json(&["pod", pod])?;
    let c = p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    Some(c["status"] == "True")
}

#[test]
fn readiness_gates_and_liveness_restarts() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: slow, labels: {{app: slow}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"(sleep 3; echo ok > /www/ready) & exec httpd -f -p 8080 -h /www\"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /ready, port: http}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: slow}}
spec:
  selector: {{app: slow}}
  ports: [{{port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: dying}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600\"]
    livenessProbe:
      exec: {{command: [cat, /tmp/alive]}}
      periodSeconds: 1
      failureThreshold: 2
"
        ),
        &[],
    );
    // Running but not ready at first, then ready once /ready exists.
    let running_unready = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "slow"])?;
        (p["status"]["phase"] == "Running" && ready(&k, "slow") == Some(false)).then_some(())
    });
    assert!(
        running_unready.is_some(),
        "the pod runs un-ready before its readiness probe passes"
    );
    assert!(k
        .run(&["wait", "--for=condition=Ready", "pod/slow", "--timeout=30s"])
        .ok());
    let in_endpoints = |want: bool| {
        wait_for(Duration::from_secs(20), || {
            let e = k.get_json(&["endpointslice", "slow"])?;
            let ready = e["endpoints"]
                .as_array()?
                .iter()
                .any(|ep| ep["conditions"]["ready"] == true);
            (ready == want).then_some(())
        })
        .is_some()
    };
    assert!(in_endpoints(true), "a ready pod is a ready endpoint");
    // The check fails again: not ready, out of the endpoints.
    assert!(k.run(&["exec", "slow", "--", "rm", "/www/ready"]).ok());
    assert!(wait_for(Duration::from_secs(20), || (ready(&k, "slow")
        == Some(false))
    .then_some(()))
    .is_some());
    assert!(
        in_endpoints(false),
        "an un-ready pod leaves the ready endpoints"
    );

    // Probes run again for a container re-adopted by a restarted daemon.
    assert!(k
        .run(&["exec", "slow", "--", "sh", "-c", "echo ok > /www/ready"])
        .ok());
    assert!(k
        .run(&["wait", "--for=condition=Ready", "pod/slow", "--timeout=30s"])
        .ok());
    s.kill9();
    s.start();
    assert!(
        wait_for(Duration::from_secs(30), || k
            .run(&["get", "pod", "slow"])
            .ok()
            .then_some(()))
        .is_some(),
        "the API is back"
    );
    assert!(k.run(&["exec", "slow", "--", "rm", "/www/ready"]).ok());
    assert!(
        wait_for(Duration::from_secs(20), || (ready(&k, "slow")
            == Some(false))
        .then_some(()))
        .is_some(),
        "the re-adopted container's readiness probe runs"
    );

    // Liveness: restarted after its check fails, with events.
    let restarts = wait_for(Duration::from_secs(40), || {
        let p = k.get_json(&["pod", "dying"])?;
        let n = p["status"]["containerStatuses"][0]["restartCount"].as_i64()?;
        (n >= 1).then_some(n)
    });
    assert!(
        restarts.is_some(),
        "the liveness probe restarted the container"
    );
    let describe = k.run(&["describe", "pod", "dying"]);
    assert!(
        describe.stdout.contains("Liveness probe failed"),
        "{describe}"
    );
}
