//! Volumes: emptyDir shared between two containers of a pod, a ConfigMap and a Secret as
//! read-only files (items and subPath), a hostPath; and a subPath that tries to leave its
//! volume is refused by name.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-vol:v1";

#[test]
fn volumes_reach_containers() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let host_dir = s.work_dir.join("host-data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host.txt"), "host file\n").unwrap();
    k.apply(
        &format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: site}}
data: {{index.html: hello from a configmap, extra.conf: x=1}}
---
apiVersion: v1
kind: Secret
metadata: {{name: key}}
stringData: {{token: t0ken}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - name: site
    configMap:
      name: site
      items: [{{key: index.html, path: page/index.html}}]
  - {{name: key, secret: {{secretName: key, defaultMode: 0400}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  containers:
  - name: writer
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo written-by-writer > /shared/note; sleep 30\"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  - name: reader
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"sleep 1; cat /shared/note; cat /site/index.html; echo; cat /secret/token; echo; stat -c %a /secret/token; cat /host/from-host.txt; touch /site/x 2>/dev/null && echo site-writable || echo site-read-only; ls /only-page; sleep 30\"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: site, mountPath: /site, subPath: page}}
    - {{name: site, mountPath: /only-page, subPath: page}}
    - {{name: key, mountPath: /secret, readOnly: true}}
    - {{name: host, mountPath: /host}}
",
            host = host_dir.display()
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "vols", "-c", "reader"]);
        (o.ok() && o.stdout.contains("index.html")).then_some(o.stdout)
    })
    .expect("the reader's output");
    for want in [
        "written-by-writer",
        "hello from a configmap",
        "t0ken",
        "400",
        "host file",
        "site-read-only",
        "index.html",
    ] {
        assert!(logs.contains(want), "missing {want:?} in:\n{logs}");
    }
    assert!(
        !logs.contains("extra.conf"),
        "only the listed item is projected:\n{logs}"
    );

    // A subPath leaving its volume is refused by name, nothing is created.
    let bad = k.run_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: escape}}
spec:
  volumes: [{{name: v, emptyDir: {{}}}}]
  containers:
  - name: c
    image: {IMAGE}
    volumeMounts: [{{name: v, mountPath: /v, subPath: ../../etc}}]
"
        ),
    );
    assert!(!bad.ok() && bad.stderr.contains("subPath"), "{bad}");
    assert!(k.get_json(&["pod", "escape"]).is_none());
}
