//! StatefulSets (issue 11, part 3) with the real kubectl: stable names created in order, each
//! waiting for the previous to be Ready; the pod's hostname is its name and the headless
//! Service gives it a DNS name; a template change rolls from the highest ordinal down;
//! `kubectl rollout status|history|undo`, `get sts`, `describe`; scale-down from the highest
//! ordinal; deleting the set removes its pods. `volumeClaimTemplates`: a claim per ordinal,
//! kept across pod replacement, scale-down and the set's deletion.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::kubectl::{parse_tables, server_with_images, Kubectl};
use skiff_e2e::{wait_until, Server};

const IMAGE: &str = "skiff-e2e-sts:v1";

fn web_yaml(greeting: &str, replicas: u32) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {{app: web}}
  ports:
  - {{port: 8080, name: http}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        imagePullPolicy: Never
        env:
        - {{name: GREETING, value: \"{greeting}\"}}
        command: [\"sh\", \"-c\", \"echo $GREETING > /www/index.html; exec httpd -f -p 8080 -h /www\"]
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          tcpSocket: {{port: 8080}}
          initialDelaySeconds: 2
          periodSeconds: 1
"
    )
}

fn pods(k: &Kubectl) -> Vec<Value> {
    k.get_json(&["pods", "-l", "app=web"])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn name(p: &Value) -> &str {
    p["metadata"]["name"].as_str().unwrap_or_default()
}

fn revision(p: &Value) -> String {
    p["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A time as the API writes them (RFC 3339, whole seconds, UTC: they compare as strings).
fn time(v: &Value) -> String {
    v.as_str()
        .filter(|t| t.len() == 20 && t.ends_with('Z'))
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .to_string()
}

fn ready_since(p: &Value) -> String {
    let c = p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .expect("a Ready condition");
    time(&c["lastTransitionTime"])
}

fn rollout_ok(s: &mut Server, k: &Kubectl) -> String {
    let o = k.run(&["rollout", "status", "sts/web", "--timeout=120s"]);
    s.assert_running();
    assert!(o.ok(), "kubectl rollout status sts/web: {o}");
    o.stdout
}

/// Polls the pods until `done` holds, noting the order in which pod names first show a
/// revision other than `from` (the order of replacement).
fn watch_replacements(k: &Kubectl, from: &str, done: impl Fn(&[Value]) -> bool) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let ok = wait_until(Duration::from_secs(120), Duration::from_millis(200), || {
        let ps = pods(k);
        for p in &ps {
            if revision(p) != from && !order.iter().any(|n| n == name(p)) {
                order.push(name(p).to_string());
            }
        }
        done(&ps)
    });
    assert!(ok, "the rolling update did not finish: {order:?}");
    order
}

fn all_at(ps: &[Value], rev: &str, n: usize) -> bool {
    ps.len() == n && ps.iter().all(|p| revision(p) == rev)
}

#[test]
fn statefulset_orders_names_resolves_rolls_back_scales_and_deletes() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&web_yaml("one", 3), &[]);
    let status = rollout_ok(&mut s, &k);
    assert!(status.contains("roll out complete"), "{status}");

    // Ordered: web-1 is created only once web-0 is Ready, web-2 once web-1 is.
    let ps = pods(&k);
    let by_name: HashMap<&str, &Value> = ps.iter().map(|p| (name(p), p)).collect();
    let mut names: Vec<&str> = by_name.keys().copied().collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    for (before, after) in [("web-0", "web-1"), ("web-1", "web-2")] {
        let created = time(&by_name[after]["metadata"]["creationTimestamp"]);
        assert!(
            created >= ready_since(by_name[before]),
            "{after} created at {created} before {before} was Ready"
        );
    }

    // kubectl get sts: NAME READY AGE.
    let tables = parse_tables(&k.ok(&["get", "sts"]));
    let row = &tables[0].rows[0];
    assert_eq!(row["NAME"], "web");
    assert_eq!(row["READY"], "3/3");
    assert_eq!(tables[0].columns, ["NAME", "READY", "AGE"]);

    // Stable network identity.
    let host = k.ok(&["exec", "web-1", "--", "hostname"]);
    assert_eq!(host.trim(), "web-1");
    let ip0 = by_name["web-0"]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let mut last = String::new();
    let resolved = wait_until(Duration::from_secs(40), Duration::from_millis(500), || {
        let o = k.run(&[
            "exec",
            "web-2",
            "--",
            "nslookup",
            "web-0.web.default.svc.cluster.local",
        ]);
        last = o.to_string();
        o.ok() && o.stdout.contains(&ip0)
    });
    assert!(
        resolved,
        "web-0.web.default.svc.cluster.local → {ip0}: {last}"
    );

    rolls_and_rolls_back(&mut s, &k, &revision(by_name["web-0"]));
    describes(&k);
    scales_down_and_deletes(&mut s, &k);
}

/// A template change replaces web-2, web-1, web-0 in that order; `rollout undo` goes back.
fn rolls_and_rolls_back(s: &mut Server, k: &Kubectl, first: &str) {
    k.apply(&web_yaml("two", 3), &[]);
    let order = watch_replacements(k, first, |ps| {
        ps.len() == 3 && ps.iter().all(|p| revision(p) != first)
    });
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    rollout_ok(s, k);
    let second = revision(&pods(k)[0]);
    let history = k.ok(&["rollout", "history", "sts/web"]);
    assert!(
        history.contains("REVISION") && history.contains('1') && history.contains('2'),
        "{history}"
    );
    let revs = k.ok(&["get", "controllerrevisions"]);
    assert!(revs.contains("statefulset.apps/web"), "{revs}");

    let undo = k.run(&["rollout", "undo", "sts/web"]);
    assert!(undo.ok() && undo.stdout.contains("rolled back"), "{undo}");
    let order = watch_replacements(k, &second, |ps| all_at(ps, first, 3));
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    rollout_ok(s, k);
    let sts = k.get_json(&["sts", "web"]).expect("the StatefulSet");
    assert_eq!(sts["status"]["updateRevision"], first);
    assert_eq!(sts["status"]["currentRevision"], first);
    let body = k.ok(&["exec", "web-0", "--", "cat", "/www/index.html"]);
    assert_eq!(body.trim(), "one");
}

fn describes(k: &Kubectl) {
    let d = k.ok(&["describe", "sts", "web"]);
    for needle in [
        "Replicas:",
        "3 desired | 3 total",
        "Update Strategy:",
        "RollingUpdate",
        "Pods Status:",
        "3 Running",
        "SuccessfulCreate",
        "create Pod web-0 in StatefulSet web successful",
    ] {
        assert!(d.contains(needle), "describe sts lacks {needle:?}:\n{d}");
    }
}

/// Scale to 1 removes web-2 before web-1; deleting the set removes the pods.
fn scales_down_and_deletes(s: &mut Server, k: &Kubectl) {
    k.ok(&["scale", "sts/web", "--replicas=1"]);
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let ps = pods(k);
        let has = |n: &str| ps.iter().any(|p| name(p) == n);
        assert!(!has("web-2") || has("web-1"), "web-1 went before web-2");
        ps.len() == 1 && has("web-0")
    });
    s.assert_running();
    assert!(
        ok,
        "scale to 1: {:?}",
        pods(k).iter().map(name).collect::<Vec<_>>()
    );
    k.ok(&["delete", "sts", "web"]);
    let gone = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        pods(k).is_empty()
    });
    assert!(gone, "pods left after deleting the set");
}

fn db_yaml(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: {replicas}
  podManagementPolicy: Parallel
  selector:
    matchLabels: {{app: db}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
  template:
    metadata:
      labels: {{app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sh\", \"-c\", \"[ -f /data/who ] || hostname > /data/who; exec sleep 3600\"]
        volumeMounts:
        - {{name: data, mountPath: /data}}
"
    )
}

fn claim_names(k: &Kubectl) -> Vec<String> {
    let mut names = k.names(&["pvc", "-l", "app=db"]);
    names.sort();
    names
}

fn db_pods_ready(k: &Kubectl, want: &[&str]) -> bool {
    let ps = k
        .get_json(&["pods", "-l", "app=db"])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default();
    let mut names: Vec<&str> = ps.iter().map(name).collect();
    names.sort();
    names == want
        && ps.iter().all(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
}

fn wait_db(s: &mut Server, k: &Kubectl, want: &[&str], what: &str) {
    let ok = wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        db_pods_ready(k, want)
    });
    s.assert_running();
    assert!(
        ok,
        "{what}: pods {want:?}\n{}",
        k.run(&["get", "pods,pvc", "-o", "wide"])
    );
}

fn cat(k: &Kubectl, pod: &str, file: &str) -> String {
    k.ok(&["exec", pod, "--", "cat", file]).trim().to_string()
}

/// A claim per ordinal, made before the pod, kept across pod replacement, scale-down and the
/// set's deletion (Kubernetes' default retention), and mounted again by the same ordinal.
#[test]
fn volume_claim_templates_give_each_ordinal_its_own_kept_claim() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&db_yaml(2), &[]);
    wait_db(&mut s, &k, &["db-0", "db-1"], "created");
    assert_eq!(claim_names(&k), ["data-db-0", "data-db-1"]);
    assert_eq!(cat(&k, "db-1", "/data/who"), "db-1");
    k.ok(&["exec", "db-0", "--", "sh", "-c", "echo kept > /data/note"]);
    let uid = k.get_json(&["pod", "db-0"]).expect("db-0")["metadata"]["uid"].clone();
    k.ok(&["delete", "pod", "db-0"]);
    let replaced = wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        k.get_json(&["pod", "db-0"])
            .is_some_and(|p| p["metadata"]["uid"] != uid)
            && db_pods_ready(&k, &["db-0", "db-1"])
    });
    assert!(replaced, "db-0 was not replaced");
    assert_eq!(cat(&k, "db-0", "/data/note"), "kept");

    k.ok(&["scale", "sts/db", "--replicas=1"]);
    wait_db(&mut s, &k, &["db-0"], "scaled to 1");
    assert_eq!(claim_names(&k), ["data-db-0", "data-db-1"]);
    k.ok(&["scale", "sts/db", "--replicas=2"]);
    wait_db(&mut s, &k, &["db-0", "db-1"], "scaled to 2");
    assert_eq!(cat(&k, "db-1", "/data/who"), "db-1");

    let d = k.ok(&["describe", "sts", "db"]);
    assert!(
        d.contains("Volume Claims:") && d.contains("Capacity:") && d.contains("1Gi"),
        "{d}"
    );
    k.ok(&["delete", "sts", "db"]);
    wait_db(&mut s, &k, &[], "deleted");
    assert_eq!(claim_names(&k), ["data-db-0", "data-db-1"]);
}

/// From the manifests folder: a StatefulSet declared in a file rolls when the file changes,
/// and a change Kubernetes forbids (its serviceName) is refused, naming the field.
#[test]
fn statefulset_from_the_manifests_folder_rolls_and_refuses_immutable_changes() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    s.write_manifest("web.yaml", &web_yaml("one", 1));
    let rev_of_web0 = |k: &Kubectl| k.get_json(&["pod", "web-0"]).map(|p| revision(&p));
    let first = skiff_e2e::wait_for(Duration::from_secs(60), || rev_of_web0(&k))
        .expect("web-0 from the folder");
    s.write_manifest("web.yaml", &web_yaml("two", 1));
    let rolled = wait_until(Duration::from_secs(90), Duration::from_millis(250), || {
        rev_of_web0(&k).is_some_and(|r| r != first)
    });
    s.assert_running();
    assert!(rolled, "web-0 kept revision {first}\n{}", s.log_tail(30));
    let mark = s.log_mark();
    s.write_manifest(
        "web.yaml",
        &web_yaml("two", 1).replace("serviceName: web", "serviceName: other"),
    );
    let refused = wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
        let log = s.log_since(mark);
        log.contains("spec") && log.contains("Forbidden: updates to statefulset spec")
    });
    assert!(refused, "no refusal in the log:\n{}", s.log_since(mark));
    let sts = k.get_json(&["sts", "web"]).expect("the set");
    assert_eq!(sts["spec"]["serviceName"], "web");
}
