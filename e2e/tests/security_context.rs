//! Pod and container `securityContext` as far as skiff implements it: `runAsUser`,
//! `runAsGroup` and `supplementalGroups` at pod level (the container's own `runAsUser` wins),
//! `runAsNonRoot` refusing a process that would run as root with kubelet's message, and
//! `fsGroup` giving an emptyDir and a local-path claim to the pod's group, and what takes
//! privileges away: `capabilities.drop`, `allowPrivilegeEscalation: false`,
//! `readOnlyRootFilesystem`.

use std::time::Duration;

use skiff_e2e::kubectl::{server_with_images, Kubectl};
use skiff_e2e::wait_for;

const IMAGE: &str = "skiff-e2e-sc:v1";

#[test]
fn run_as_user_group_supplemental_groups_and_non_root() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: ids}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000], runAsNonRoot: true}}
  containers:
  - name: pod-level
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)\"]
  - name: own-user
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{runAsUser: 2000}}
    command: [\"sh\", \"-c\", \"echo uid=$(id -u) gid=$(id -g)\"]
"
        ),
        &[],
    );
    for (container, want) in [
        ("pod-level", "uid=1000 gid=3000 groups=3000 4000"),
        ("own-user", "uid=2000 gid=3000"),
    ] {
        let logs = wait_for(Duration::from_secs(60), || {
            let o = k.run(&["logs", "ids", "-c", container]);
            (o.ok() && o.stdout.contains("uid=")).then_some(o.stdout)
        })
        .unwrap_or_else(|| panic!("{container}'s output"));
        assert_eq!(logs.trim(), want, "{container}");
    }

    // runAsNonRoot on an image that runs as root: waiting, with kubelet's reason and message.
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: rooted}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext: {{runAsNonRoot: true}}
    command: [\"sh\", \"-c\", \"echo ran\"]
"
        ),
        &[],
    );
    let message = wait_for(Duration::from_secs(30), || {
        let p = k.get_json(&["pod", "rooted"])?;
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == "CreateContainerConfigError")
            .then(|| w["message"].as_str().unwrap_or_default().to_string())
    })
    .expect("CreateContainerConfigError");
    assert_eq!(
        message,
        "container has runAsNonRoot and image will run as root"
    );
}

#[test]
fn fs_group_gives_writable_volumes_to_the_pod() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 16Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: grouped}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000}}
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"touch /scratch/f /data/f && echo groups=$(id -G) scratch=$(stat -c %g /scratch/f) data=$(stat -c %g /data/f)\"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: data, mountPath: /data}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: data, persistentVolumeClaim: {{claimName: data}}}}
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "grouped"]);
        (o.ok() && o.stdout.contains("groups=")).then_some(o.stdout)
    })
    .expect("the pod's output");
    assert_eq!(logs.trim(), "groups=1000 2000 scratch=2000 data=2000");
}

#[test]
fn dropped_capabilities_no_new_privileges_and_a_read_only_root() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: locked}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    securityContext:
      capabilities: {{drop: [ALL]}}
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
    command: [\"sh\", \"-c\", \"grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /x 2>/dev/null && echo root=writable || echo root=read-only; touch /scratch/x && echo scratch=writable\"]
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
  volumes: [{{name: scratch, emptyDir: {{}}}}]
"
        ),
        &[],
    );
    let logs = wait_for(Duration::from_secs(60), || {
        let o = k.run(&["logs", "locked"]);
        (o.ok() && o.stdout.contains("scratch=")).then_some(o.stdout)
    })
    .expect("the pod's output");
    let fields: Vec<&str> = logs.split_whitespace().collect();
    for want in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "root=read-only",
        "scratch=writable",
    ] {
        let (key, value) = want.split_once('\t').unwrap_or((want, ""));
        let ok = if value.is_empty() {
            fields.contains(&key)
        } else {
            fields.windows(2).any(|w| w[0] == key && w[1] == value)
        };
        assert!(ok, "missing {want:?} in:\n{logs}");
    }
}
