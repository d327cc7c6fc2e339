//! Persistent volumes: a claim on the default `local-path` class provisioned as a directory
//! under `<data-dir>/volumes`, data that outlives its pods, deletion protection, reclaim
//! policies (Delete removes the directory, Retain keeps it), static hostPath volumes, pods
//! that wait for their claim, and what is refused (a namespace token creating a PV, an
//! unknown access mode, a claim without a size) — through kubectl and the manifests folder.

use std::path::PathBuf;
use std::time::Duration;

use skiff_e2e::kubectl::{parse_tables, server_with_images, Kubectl};
use skiff_e2e::{wait_for, wait_until, Server};

const IMAGE: &str = "skiff-e2e-pvc:v1";
const WAIT: Duration = Duration::from_secs(90);

fn claim_yaml(name: &str, class: Option<&str>) -> String {
    let class = class
        .map(|c| format!("  storageClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
{class}"
    )
}

/// A pod that runs `script` with the claim mounted at /data (and, by `subPathExpr`, its
/// `logs/<pod name>` at /logs).
fn pod_yaml(name: &str, claim: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: {claim}}}}}]
  containers:
  - name: c
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"{script}; sleep 3600\"]
    env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
    volumeMounts:
    - {{name: data, mountPath: /data}}
    - {{name: data, mountPath: /logs, subPathExpr: logs/$(POD_NAME)}}
"
    )
}

fn json(k: &Kubectl, args: &[&str]) -> serde_json::Value {
    k.get_json(args)
        .unwrap_or_else(|| panic!("kubectl get {args:?}"))
}

fn wait_running(k: &Kubectl, s: &Server, pod: &str) {
    let ok = wait_until(WAIT, Duration::from_millis(200), || {
        k.get_json(&["pod", pod])
            .is_some_and(|p| p["status"]["phase"] == "Running")
    });
    assert!(
        ok,
        "pod {pod} not Running:\n{}\n{}",
        k.run(&["describe", "pod", pod]),
        s.log_tail(40)
    );
}

/// The directory of the volume bound to `claim` (default namespace).
fn volume_dir(k: &Kubectl, s: &Server, claim: &str) -> PathBuf {
    let pvc = json(k, &["pvc", claim]);
    let pv = pvc["spec"]["volumeName"]
        .as_str()
        .expect("bound")
        .to_string();
    let dir = s
        .data_dir
        .join("volumes")
        .join(format!("{pv}_default_{claim}"));
    let pv = json(k, &["pv", &pv]);
    assert_eq!(pv["spec"]["hostPath"]["path"], dir.to_str().unwrap());
    dir
}

fn gone(k: &Kubectl, args: &[&str]) -> bool {
    wait_until(WAIT, Duration::from_millis(200), || {
        k.get_json(args).is_none()
    })
}

#[test]
fn a_local_path_claim_outlives_its_pods_and_is_protected_while_used() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&claim_yaml("data", None), &[]);
    // WaitForFirstConsumer: nothing is provisioned before a pod uses the claim.
    let pvc = json(&k, &["pvc", "data"]);
    assert_eq!(
        pvc["spec"]["storageClassName"], "local-path",
        "the default class"
    );
    assert_eq!(pvc["status"]["phase"], "Pending");
    k.apply(
        &pod_yaml(
            "writer",
            "data",
            "echo persisted > /data/hello.txt; echo mine > /logs/note",
        ),
        &[],
    );
    wait_running(&k, &s, "writer");
    let dir = volume_dir(&k, &s, "data");
    let hello = dir.join("hello.txt");
    assert!(
        wait_until(WAIT, Duration::from_millis(200), || hello.is_file()),
        "no {}",
        hello.display()
    );
    assert_eq!(std::fs::read_to_string(&hello).unwrap(), "persisted\n");
    assert!(dir.join("logs/writer/note").is_file(), "subPathExpr");

    // kubectl's columns, as a real cluster prints them.
    let out = k.ok(&["get", "pvc,pv,sc"]);
    let tables = parse_tables(&out);
    let pvc_row = tables[0].row("data").expect("pvc row");
    assert_eq!(pvc_row["STATUS"], "Bound", "{out}");
    assert_eq!(pvc_row["STORAGECLASS"], "local-path");
    assert_eq!(pvc_row["ACCESS MODES"], "RWO");
    assert_eq!(pvc_row["CAPACITY"], "1Gi");
    assert!(
        tables[0]
            .columns
            .contains(&"VOLUMEATTRIBUTESCLASS".to_string()),
        "{out}"
    );
    let pv_row = &tables[1].rows[0];
    assert_eq!(pv_row["CLAIM"], "default/data", "{out}");
    assert_eq!(pv_row["RECLAIM POLICY"], "Delete");
    assert_eq!(pv_row["STATUS"], "Bound");
    let sc_row = tables[2]
        .row("local-path (default)")
        .expect("default class row");
    assert_eq!(sc_row["PROVISIONER"], "rancher.io/local-path", "{out}");
    assert_eq!(sc_row["VOLUMEBINDINGMODE"], "WaitForFirstConsumer");
    assert_eq!(sc_row["RECLAIMPOLICY"], "Delete");
    let described = k.ok(&["describe", "pvc", "data"]);
    assert!(described.contains("capacity not enforced:"), "{described}");

    // Another pod on the same claim finds the data.
    k.ok(&["delete", "pod", "writer"]);
    assert!(gone(&k, &["pod", "writer"]));
    k.apply(&pod_yaml("reader", "data", "cat /data/hello.txt"), &[]);
    wait_running(&k, &s, "reader");
    let logs = wait_for(WAIT, || {
        let o = k.run(&["logs", "reader"]);
        o.stdout.contains("persisted").then_some(o.stdout)
    });
    assert!(logs.is_some(), "the second pod did not read the data");

    // Deleting the claim while a pod uses it: Terminating until the pod is gone.
    k.ok(&["delete", "pvc", "data", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(2));
    let pvc = json(&k, &["pvc", "data"]);
    assert!(pvc["metadata"]["deletionTimestamp"].is_string(), "{pvc}");
    let out = k.ok(&["get", "pvc", "data"]);
    assert!(out.contains("Terminating"), "{out}");
    assert!(hello.is_file());
    k.ok(&["delete", "pod", "reader"]);
    assert!(
        gone(&k, &["pvc", "data"]),
        "the claim stays after its pod went"
    );
    // Delete: the volume and its directory go.
    assert!(
        wait_until(WAIT, Duration::from_millis(200), || !dir.exists()),
        "{} still exists",
        dir.display()
    );
    assert!(k.names(&["pv"]).is_empty(), "{}", k.ok(&["get", "pv"]));
}

#[test]
fn retain_static_volumes_waiting_pods_and_refusals() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    // Retain, Immediate: provisioned at once, kept when the claim goes.
    k.apply(
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: keep}
provisioner: rancher.io/local-path
reclaimPolicy: Retain
volumeBindingMode: Immediate
",
        &[],
    );
    k.apply(&claim_yaml("kept", Some("keep")), &[]);
    assert!(wait_until(WAIT, Duration::from_millis(200), || {
        k.get_json(&["pvc", "kept"])
            .is_some_and(|p| p["status"]["phase"] == "Bound")
    }));
    let dir = volume_dir(&k, &s, "kept");
    assert!(dir.is_dir());
    std::fs::write(dir.join("precious"), "x").unwrap();
    let pv = json(&k, &["pvc", "kept"])["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_string();
    k.ok(&["delete", "pvc", "kept"]);
    assert!(wait_until(WAIT, Duration::from_millis(200), || {
        k.get_json(&["pv", &pv])
            .is_some_and(|v| v["status"]["phase"] == "Released")
    }));
    assert!(dir.join("precious").is_file(), "Retain keeps the data");
    k.ok(&["delete", "pv", &pv]);
    assert!(gone(&k, &["pv", &pv]));
    assert!(
        dir.join("precious").is_file(),
        "deleting a retained PV keeps its data"
    );

    // A static hostPath volume binds a class-less claim; its directory is never removed.
    let media = s.work_dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("song"), "la").unwrap();
    k.apply(
        &format!(
            "apiVersion: v1
kind: PersistentVolume
metadata: {{name: media}}
spec:
  capacity: {{storage: 5Gi}}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: \"\"
  hostPath: {{path: {}}}
",
            media.display()
        ),
        &[],
    );
    k.apply(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: media}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: \"\"
  resources: {requests: {storage: 1Gi}}
",
        &[],
    );
    k.apply(&pod_yaml("player", "media", "cat /data/song"), &[]);
    wait_running(&k, &s, "player");
    assert_eq!(json(&k, &["pvc", "media"])["spec"]["volumeName"], "media");
    k.ok(&["delete", "pod", "player"]);
    k.ok(&["delete", "pvc", "media"]);
    assert!(wait_until(WAIT, Duration::from_millis(200), || {
        k.get_json(&["pv", "media"])
            .is_some_and(|v| v["status"]["phase"] == "Failed")
    }));
    assert!(
        media.join("song").is_file(),
        "a hostPath volume's data is never removed"
    );

    // A pod whose claim does not exist waits, and starts once the claim exists.
    k.apply(&pod_yaml("early", "later", "true"), &[]);
    assert!(
        wait_until(WAIT, Duration::from_millis(200), || {
            k.run(&["describe", "pod", "early"])
                .stdout
                .contains("persistentvolumeclaim \"later\" not found")
        }),
        "{}",
        k.run(&["describe", "pod", "early"])
    );
    assert_eq!(json(&k, &["pod", "early"])["status"]["phase"], "Pending");
    k.apply(&claim_yaml("later", None), &[]);
    wait_running(&k, &s, "early");
    refusals(&s, &k);
}

fn refusals(s: &Server, k: &Kubectl) {
    // An unknown access mode, a claim without a size: refused by field.
    let bad = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec:
  accessModes: [ReadWriteSometimes]
  resources: {requests: {storage: 1Gi}}
",
    );
    assert!(
        !bad.ok() && bad.stderr.contains("spec.accessModes[0]"),
        "{bad}"
    );
    assert!(bad.stderr.contains("ReadWriteSometimes"), "{bad}");
    let bad = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec:
  accessModes: [ReadWriteOnce]
",
    );
    assert!(
        !bad.ok() && bad.stderr.contains("spec.resources.requests.storage"),
        "{bad}"
    );
    // A namespace token may not create a PersistentVolume (cluster-scoped: the admin's).
    k.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ci}\n",
        &[],
    );
    let kc = s.work_dir.join("ci-kubeconfig.yaml");
    let o = s.cli(&[
        "token",
        "create",
        "-n",
        "ci",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--admin-kubeconfig",
        s.kubeconfig.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ci = Kubectl::with_kubeconfig(s, &kc);
    let o = ci.run_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1
kind: PersistentVolume
metadata: {name: root}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /}
",
    );
    assert!(!o.ok() && o.stderr.contains("forbidden"), "{o}");
    assert!(k.get_json(&["pv", "root"]).is_none());
    // Its own namespace's claims are fine.
    let o = ci.run_stdin(&["apply", "-n", "ci", "-f", "-"], &claim_yaml("mine", None));
    assert!(o.ok(), "{o}");
}

#[test]
fn a_claim_from_the_manifests_folder() {
    let s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    s.write_manifest(
        "app.yaml",
        &format!(
            "{}---\n{}",
            claim_yaml("app-data", None),
            pod_yaml("app", "app-data", "echo from-folder > /data/f")
        ),
    );
    wait_running(&k, &s, "app");
    let dir = volume_dir(&k, &s, "app-data");
    assert!(wait_until(WAIT, Duration::from_millis(200), || dir
        .join("f")
        .is_file()));
    // The file goes: the pod, then the claim (after its pod), then the directory.
    s.remove_manifest("app.yaml");
    assert!(
        gone(&k, &["pvc", "app-data"]),
        "{}\n{}",
        k.run(&["get", "pvc,pods", "-o", "yaml"]),
        k.run(&["get", "events"])
    );
    assert!(
        wait_until(WAIT, Duration::from_millis(200), || !dir.exists()),
        "{} still exists",
        dir.display()
    );
}
