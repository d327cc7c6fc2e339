//! Native sidecars (`initContainers[].restartPolicy: Always`, Kubernetes 1.29+): started in
//! their turn, the app container starting only once the sidecar has started (its startup
//! probe passed); restarted when they exit whatever the pod's `restartPolicy`; counted in
//! READY; stopped after the app containers when the pod is deleted; and a Job's pod completes
//! while its sidecar would run forever.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-sidecar:v1";

/// A log-shipper-like sidecar: after 3 s it serves on :8081 (its startup probe waits for
/// that), then runs until `/tmp/die` exists; SIGTERM ends it.
fn shipper() -> String {
    format!(
        "  - name: shipper
    image: {IMAGE}
    imagePullPolicy: Never
    restartPolicy: Always
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3; mkdir -p /tmp/www; echo shipping > /tmp/www/index.html; httpd -p 8081 -h /tmp/www; until [ -f /tmp/die ]; do sleep 0.2; done\"]
    startupProbe:
      tcpSocket: {{port: 8081}}
      periodSeconds: 1
      failureThreshold: 30
    readinessProbe:
      httpGet: {{port: 8081, path: /}}
      periodSeconds: 1
"
    )
}

fn columns(k: &Kubectl, pod: &str) -> Vec<String> {
    let o = k.run(&["get", "pod", pod, "--no-headers"]);
    o.stdout.split_whitespace().map(String::from).collect()
}

#[test]
fn a_sidecar_starts_first_runs_beside_the_app_restarts_and_stops_last() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let out = s.work_dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: shipped}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  volumes:
  - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
  initContainers:
{shipper}  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"wget -qO- http://127.0.0.1:8081/ || exit 7; echo app saw the shipper; trap 'exit 0' TERM; while sleep 0.2; do :; done\"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        exec:
          command: [\"sh\", \"-c\", \"sleep 2; wget -qO- http://127.0.0.1:8081/ > /out/prestop\"]
",
            out = out.display(),
            shipper = shipper()
        ),
        &[],
    );
    // While the sidecar has not started (its startup probe waits 3 s), the pod initializes.
    let early = wait_for(Duration::from_secs(30), || {
        let c = columns(&k, "shipped");
        (c.len() > 2 && c[2].starts_with("Init:")).then_some(c)
    })
    .expect("Init:… while the sidecar starts");
    assert_eq!(early[1..3], ["0/2", "Init:0/1"], "{early:?}");

    // Running with the sidecar counted in READY; the app found it on its first try.
    let row = wait_for(Duration::from_secs(60), || {
        let c = columns(&k, "shipped");
        (c.get(1).map(String::as_str) == Some("2/2")).then_some(c)
    })
    .expect("2/2 ready");
    assert_eq!(row[2], "Running", "{row:?}");
    let logs = k.run(&["logs", "shipped", "-c", "app"]);
    assert_eq!(
        logs.stdout, "shipping\napp saw the shipper\n",
        "{}",
        logs.stderr
    );
    let p = k.get_json(&["pod", "shipped"]).expect("the pod");
    let side = &p["status"]["initContainerStatuses"][0];
    assert_eq!(side["name"], "shipper");
    assert_eq!(side["started"], true, "{side}");
    assert_eq!(side["ready"], true, "{side}");
    assert_eq!(side["restartCount"], 0, "{side}");
    assert!(side["state"]["running"].is_object(), "{side}");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(p["status"]["phase"], "Running");

    // The sidecar exits (code 0, under restartPolicy: Never): it is restarted all the same,
    // and serves again; the app container keeps running.
    let o = k.run(&[
        "exec", "shipped", "-c", "shipper", "--", "touch", "/tmp/die",
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let side = wait_for(Duration::from_secs(60), || {
        let p = k.get_json(&["pod", "shipped"])?;
        let side = p["status"]["initContainerStatuses"][0].clone();
        (side["restartCount"] == 1 && side["ready"] == true).then_some(side)
    })
    .expect("the sidecar restarted and ready again");
    assert_eq!(side["lastState"]["terminated"]["exitCode"], 0, "{side}");
    let o = k.run(&[
        "exec",
        "shipped",
        "-c",
        "app",
        "--",
        "wget",
        "-qO-",
        "http://127.0.0.1:8081/",
    ]);
    assert_eq!(o.stdout, "shipping\n", "{}", o.stderr);
    let p = k.get_json(&["pod", "shipped"]).expect("the pod");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    let row = columns(&k, "shipped");
    assert_eq!(row[1..4], ["2/2", "Running", "1"], "{row:?}");

    // kill -9 of the daemon and a new one: the sidecar is found again, not run a second time
    // nor taken for an init container whose turn it is.
    s.kill9();
    s.start();
    let k = Kubectl::admin(&s);
    std::thread::sleep(Duration::from_secs(3));
    let row = wait_for(Duration::from_secs(60), || {
        let c = columns(&k, "shipped");
        (c.get(1).map(String::as_str) == Some("2/2")).then_some(c)
    })
    .expect("2/2 after the restart");
    assert_eq!(row[1..4], ["2/2", "Running", "1"], "{row:?}");
    let p = k.get_json(&["pod", "shipped"]).expect("the pod");
    assert_eq!(p["status"]["initContainerStatuses"][0]["restartCount"], 1);
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);

    // Deleted: the app's preStop hook (2 s, then a request to the sidecar) still reaches the
    // sidecar, which stops only after the app.
    let o = k.run_full(
        &["delete", "pod", "shipped", "--wait=true"],
        None,
        Duration::from_secs(60),
    );
    assert!(o.ok(), "{}", o.stderr);
    let prestop = std::fs::read_to_string(out.join("prestop")).unwrap_or_default();
    assert_eq!(
        prestop, "shipping\n",
        "the preStop hook reached the sidecar"
    );
}

#[test]
fn a_jobs_pod_completes_while_its_sidecar_would_run_forever() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: batch/v1
kind: Job
metadata: {{name: work}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 60
      initContainers:
      - name: forever
        image: {IMAGE}
        imagePullPolicy: Never
        restartPolicy: Always
        command: [\"sh\", \"-c\", \"trap 'echo sidecar got TERM; sleep 3; exit 0' TERM; while sleep 0.2; do :; done\"]
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"sleep 2; echo work done\"]
"
        ),
        &[],
    );
    // The main container finished: while its sidecar stops (3 s after SIGTERM) the pod is
    // still Running, as kubelet reports it.
    let stopping = wait_for(Duration::from_secs(60), || {
        let pods = k.get_json(&["pods", "-l", "job-name=work"])?;
        let p = pods["items"].get(0)?.clone();
        let main = &p["status"]["containerStatuses"][0]["state"];
        (main["terminated"].is_object()).then_some(p)
    })
    .expect("the main container finished");
    let side = &stopping["status"]["initContainerStatuses"][0]["state"];
    assert!(side["running"].is_object(), "{stopping:#}");
    assert_eq!(stopping["status"]["phase"], "Running", "{stopping:#}");
    let o = k.run_full(
        &[
            "wait",
            "--for=condition=complete",
            "job/work",
            "--timeout=90s",
        ],
        None,
        Duration::from_secs(100),
    );
    assert!(o.ok(), "the Job completes: {} {}", o.stdout, o.stderr);
    let pod = k.names(&["pods", "-l", "job-name=work"]);
    assert_eq!(pod.len(), 1, "{pod:?}");
    let pod = pod[0].trim_start_matches("pod/").to_string();
    // The sidecar is stopped (SIGTERM: it says so and exits 0, well within its 60 s grace).
    let p = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", &pod])?;
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]
            .is_object()
            .then_some(p)
    })
    .expect("the sidecar stopped");
    assert_eq!(p["status"]["phase"], "Succeeded");
    let side = &p["status"]["initContainerStatuses"][0];
    assert_eq!(side["state"]["terminated"]["exitCode"], 0, "{side}");
    assert_eq!(side["restartCount"], 0, "{side}");
    let logs = k.run(&["logs", &pod, "-c", "forever"]);
    assert_eq!(logs.stdout, "sidecar got TERM\n", "{}", logs.stderr);
    let row = columns(&k, &pod);
    assert_eq!(row[1..3], ["0/2", "Completed"], "{row:?}");
    let events = k.get_json(&["events"]).expect("events");
    let killing = events["items"].as_array().into_iter().flatten().any(|e| {
        e["involvedObject"]["name"] == pod.as_str()
            && e["reason"] == "Killing"
            && e["message"] == "Stopping container forever"
    });
    assert!(killing, "a Killing event: {events:#}");
    // It is not started again.
    std::thread::sleep(Duration::from_secs(3));
    let p = k.get_json(&["pod", &pod]).expect("the pod");
    assert_eq!(p["status"]["initContainerStatuses"][0]["restartCount"], 0);
    assert!(p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object());
}
