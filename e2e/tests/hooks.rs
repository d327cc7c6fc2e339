//! Lifecycle hooks: `postStart` runs right after the container starts and the container is not
//! Running until it returns; a failing one kills the container (FailedPostStartHook);
//! `preStop` (exec, and httpGet on the pod's own address) runs before SIGTERM on deletion.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-hooks:v1";

fn container_state(k: &Kubectl, pod: &str, name: &str) -> Option<serde_json::Value> {
    let p = k.get_json(&["pod", pod])?;
    p["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["state"].clone())
}

#[test]
fn post_start_then_running_pre_stop_before_sigterm() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let out = s.work_dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    k.apply(
        &format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: cgi}}
data:
  quit: |
    #!/bin/sh
    echo \"$REQUEST_METHOD\" > /out/prestop-http
    echo 'Content-Type: text/plain'
    echo
    echo bye
---
apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  volumes:
  - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
  - {{name: cgi, configMap: {{name: cgi, defaultMode: 0755}}}}
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo main > /out/main; trap 'if [ -f /out/prestop-exec ]; then echo after-prestop; else echo no-prestop; fi > /out/term; exit 0' TERM; while true; do sleep 1; done\"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart:
        exec: {{command: [\"sh\", \"-c\", \"sleep 4; echo post > /out/post\"]}}
      preStop:
        exec: {{command: [\"sh\", \"-c\", \"echo pre > /out/prestop-exec\"]}}
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"httpd -p 8080 -h /www; trap 'exit 0' TERM; while true; do sleep 1; done\"]
    ports: [{{name: http, containerPort: 8080}}]
    volumeMounts:
    - {{name: out, mountPath: /out}}
    - {{name: cgi, mountPath: /www/cgi-bin}}
    lifecycle:
      preStop:
        httpGet: {{path: /cgi-bin/quit, port: http}}
",
            out = out.display()
        ),
        &[],
    );
    // The container's process runs while its postStart hook does: it is not Running yet.
    let started = wait_for(Duration::from_secs(30), || {
        out.join("main").exists().then_some(())
    });
    assert!(started.is_some(), "the app container started");
    let state = container_state(&k, "hooks", "app").expect("a container status");
    assert!(
        state["running"].is_null() && !out.join("post").exists(),
        "not Running while postStart runs: {state}"
    );
    // Running once the hook returned, and only then.
    let running = wait_for(Duration::from_secs(30), || {
        container_state(&k, "hooks", "app").filter(|s| !s["running"].is_null())
    });
    assert!(
        running.is_some(),
        "the container runs after its postStart hook"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("post")).unwrap_or_default(),
        "post\n",
        "the hook finished before the container was Running"
    );
    assert!(k
        .run(&[
            "wait",
            "--for=condition=Ready",
            "pod/hooks",
            "--timeout=30s"
        ])
        .ok());
    // Deletion: preStop runs first, then SIGTERM.
    let o = k.run_full(
        &["delete", "pod", "hooks", "--timeout=60s"],
        None,
        Duration::from_secs(70),
    );
    assert!(o.ok(), "delete: {}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("term")).unwrap_or_default(),
        "after-prestop\n",
        "SIGTERM came after the preStop exec hook"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("prestop-http")).unwrap_or_default(),
        "GET\n",
        "the preStop httpGet hook reached the pod's own web server"
    );
}

#[test]
fn a_failing_post_start_kills_the_container() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sleep\", \"3600\"]
    lifecycle:
      postStart:
        exec: {{command: [\"sh\", \"-c\", \"exit 3\"]}}
"
        ),
        &[],
    );
    let failed = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "badhook"])?;
        (p["status"]["phase"] == "Failed").then_some(p)
    })
    .expect("the pod fails (restartPolicy: Never) when its postStart hook fails");
    let t = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 137, "{t}");
    assert!(
        t["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("PostStartHookError: Exec lifecycle hook")),
        "{t}"
    );
    let described = wait_for(Duration::from_secs(10), || {
        let d = k.ok(&["describe", "pod", "badhook"]);
        d.contains("FailedPostStartHook").then_some(d)
    });
    assert!(described.is_some(), "a FailedPostStartHook event");
}
