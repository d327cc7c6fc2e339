//! `initContainers`: run one at a time, in order, each to completion, before the app
//! containers, sharing the pod's volumes; `Init:N/M` in `kubectl get pods` while they run; a
//! failing one fails the pod under `restartPolicy: Never` and is restarted under `OnFailure`.
//! (Sidecars: `sidecars.rs`.)

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-init:v1";

fn status_column(k: &Kubectl, pod: &str) -> Option<String> {
    let o = k.run(&["get", "pod", pod, "--no-headers"]);
    o.ok()
        .then(|| o.stdout.split_whitespace().nth(2).map(String::from))
        .flatten()
}

#[test]
fn in_order_to_completion_then_the_app() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: ordered}}
spec:
  restartPolicy: Never
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: one
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"sleep 3; echo one >> /work/log\"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: two
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"grep -qx one /work/log && echo two >> /work/log && echo init two done\"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"cat /work/log; sleep 3600\"]
    volumeMounts: [{{name: work, mountPath: /work}}]
"
        ),
        &[],
    );
    let initializing = wait_for(Duration::from_secs(30), || {
        status_column(&k, "ordered").filter(|s| s.starts_with("Init:"))
    })
    .expect("Init:… while the first init container runs");
    assert_eq!(initializing, "Init:0/2");
    let p = k.get_json(&["pod", "ordered"]).expect("the pod");
    assert_eq!(p["status"]["phase"], "Pending");
    let init = p["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Initialized")
        .cloned()
        .expect("Initialized");
    assert_eq!(init["status"], "False");
    assert_eq!(init["reason"], "ContainersNotInitialized");

    wait_for(Duration::from_secs(60), || {
        (status_column(&k, "ordered").as_deref() == Some("Running")).then_some(())
    })
    .expect("Running once both init containers completed");
    let logs = wait_for(Duration::from_secs(30), || {
        let o = k.run(&["logs", "ordered", "-c", "app"]);
        (o.ok() && o.stdout.contains("two")).then_some(o.stdout)
    })
    .expect("the app's output");
    assert_eq!(logs, "one\ntwo\n");
    let o = k.run(&["logs", "ordered", "-c", "two"]);
    assert_eq!(o.stdout.trim(), "init two done", "{}", o.stderr);
    let p = k.get_json(&["pod", "ordered"]).expect("the pod");
    for s in p["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses")
    {
        assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s}");
        assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s}");
        assert_eq!(s["restartCount"], 0, "{s}");
    }
}

fn failing_pod(name: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  initContainers:
  - name: fails
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"exit 3\"]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo app ran; sleep 3600\"]
"
    )
}

#[test]
fn a_failing_init_container_fails_the_pod_or_is_restarted() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&failing_pod("never", "Never"), &[]);
    k.apply(&failing_pod("onfailure", "OnFailure"), &[]);

    let p = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "never"])?;
        (p["status"]["phase"] == "Failed").then_some(p)
    })
    .expect("phase Failed under restartPolicy: Never");
    let init = &p["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 3, "{init}");
    let app = &p["status"]["containerStatuses"][0]["state"];
    assert_eq!(app["waiting"]["reason"], "PodInitializing", "{app}");
    assert_eq!(status_column(&k, "never").as_deref(), Some("Init:Error"));
    std::thread::sleep(Duration::from_secs(2));
    let p = k.get_json(&["pod", "never"]).expect("the pod");
    assert_eq!(p["status"]["initContainerStatuses"][0]["restartCount"], 0);
    assert!(p["status"]["containerStatuses"][0]["state"]["waiting"].is_object());

    let shown = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "onfailure"])?;
        let restarts = p["status"]["initContainerStatuses"][0]["restartCount"].as_i64()?;
        let col = status_column(&k, "onfailure")?;
        (restarts >= 1 && (col == "Init:Error" || col == "Init:CrashLoopBackOff")).then_some(p)
    })
    .expect("restarted, Init:Error or Init:CrashLoopBackOff");
    assert_eq!(shown["status"]["phase"], "Pending");
    let app = &shown["status"]["containerStatuses"][0]["state"];
    assert_eq!(app["waiting"]["reason"], "PodInitializing", "{app}");

    // What Kubernetes refuses on an init container, refused by name: a restartPolicy other
    // than Always (a sidecar).
    let mut bad = failing_pod("sidecar", "Always");
    bad = bad.replace(
        "    command: [\"sh\", \"-c\", \"exit 3\"]",
        "    restartPolicy: OnFailure",
    );
    let o = k.run_stdin(&["apply", "-f", "-"], &bad);
    assert!(!o.ok(), "{}", o.stdout);
    assert!(
        o.stderr.contains("spec.initContainers[0].restartPolicy")
            && o.stderr.contains("supported values: \"Always\""),
        "{}",
        o.stderr
    );
}

#[test]
fn completed_init_containers_do_not_run_again_after_a_daemon_restart() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: once}}
spec:
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: count
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo ran >> /work/count\"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"sleep 3600\"]
    volumeMounts: [{{name: work, mountPath: /work}}]
"
        ),
        &[],
    );
    let running = || {
        wait_for(Duration::from_secs(60), || {
            (status_column(&k, "once").as_deref() == Some("Running")).then_some(())
        })
    };
    running().expect("Running");
    s.restart();
    let k = Kubectl::admin(&s);
    wait_for(Duration::from_secs(60), || {
        (status_column(&k, "once").as_deref() == Some("Running")).then_some(())
    })
    .expect("Running after the restart");
    std::thread::sleep(Duration::from_secs(2));
    let o = k.run(&["exec", "once", "-c", "app", "--", "cat", "/work/count"]);
    assert_eq!(o.stdout, "ran\n", "{o}");
    let p = k.get_json(&["pod", "once"]).expect("the pod");
    let init = &p["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init}");
    assert_eq!(init["restartCount"], 0, "{init}");
}
