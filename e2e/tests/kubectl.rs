//! The kubectl issue's "Done when", checked with the real `kubectl` (1.32, `/usr/bin/kubectl`,
//! a fresh `--cache-dir` per server) against a real `skiff server`, with manifests written by
//! the tests: one test per bullet, and the rest of what a k3s user does with kubectl
//! (server-side apply between managers, `kind: List`, typed generators, `exec -it`,
//! `port-forward`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::kubectl::*;
use skiff_e2e::*;

const IMAGE: &str = "skiff-e2e-kubectl:v1";
const IMAGE2: &str = "skiff-e2e-kubectl:v2";

/// A ConfigMap `NAME-config` (key `greeting`) and a Deployment `NAME` (label `app: NAME`,
/// container `main`) whose container prints `greeting=$GREETING` every second.
fn app_yaml(name: &str, replicas: u32, greeting: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  greeting: {greeting}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        env:
        - name: GREETING
          value: {greeting}
        command: [\"sh\", \"-c\", \"while true; do echo greeting=$GREETING; sleep 1; done\"]
"
    )
}

/// A Deployment whose single container runs `sleep SECONDS` (to find its processes).
fn sleeper_yaml(name: &str, replicas: u32, seconds: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
        command: [\"sleep\", \"{seconds}\"]
"
    )
}

/// Pods matching `selector`.
fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    k.get_json(&["pods", "-l", selector])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

fn running_and_ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["phase"] == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits until exactly `n` pods match `selector`, all running and ready, none terminating,
/// and `extra` holds for each. Returns them.
fn expect_pods(
    s: &mut Server,
    k: &Kubectl,
    selector: &str,
    n: usize,
    what: &str,
    extra: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    let ok = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        s.assert_running();
        last = pods(k, selector);
        last.len() == n && last.iter().all(|p| running_and_ready(p) && extra(p))
    });
    assert!(
        ok,
        "{what}: expected {n} running pods for {selector}; last seen:\n{}\nlog tail:\n{}",
        last.iter()
            .map(|p| format!(
                "{} phase={} deleting={} hash={}",
                p["metadata"]["name"],
                p["status"]["phase"],
                !p["metadata"]["deletionTimestamp"].is_null(),
                p["metadata"]["labels"]["pod-template-hash"]
            ))
            .collect::<Vec<_>>()
            .join("\n"),
        s.log_tail(30)
    );
    last
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn hash_of(p: &Value) -> String {
    p["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rollout_ok(k: &Kubectl, deploy: &str, ns: &[&str]) {
    let mut args = vec!["rollout", "status", deploy, "--timeout=90s"];
    args.extend(ns);
    let o = k.run(&args);
    assert_eq!(o.code, 0, "kubectl rollout status: {o}");
    assert!(
        o.stdout.contains("successfully rolled out"),
        "kubectl rollout status: {o}"
    );
}

// ---------------------------------------------------------------------------------------------

/// "A Deployment + ConfigMap applied with `kubectl apply -f`, changed and applied again, then
/// applied with `--server-side`, converge each time; `kubectl rollout status` returns success;
/// `kubectl get deploy,rs,pods` shows the usual columns and values."
#[test]
fn apply_reapply_server_side_converge_with_usual_columns() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let file = s.work_dir.join("web.yaml");

    // 1. kubectl apply -f (create).
    std::fs::write(&file, app_yaml("web", 2, "one")).unwrap();
    let o = k.run(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("configmap/web-config created"), "{o}");
    assert!(o.stdout.contains("deployment.apps/web created"), "{o}");
    rollout_ok(&k, "deploy/web", &[]);
    let v1 = expect_pods(&mut s, &k, "app=web", 2, "after the first apply", |_| true);
    let hash1 = hash_of(&v1[0]);

    let o = k.run(&["get", "deploy,rs,pods"]);
    assert_eq!(o.code, 0, "{o}");
    let t = parse_tables(&o.stdout);
    assert_eq!(t.len(), 3, "three blocks (deploy, rs, pods): {o}");
    assert_eq!(
        t[0].columns,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{o}"
    );
    let d = t[0].row("deployment.apps/web").expect("the deployment row");
    assert_eq!(
        (
            d["READY"].as_str(),
            d["UP-TO-DATE"].as_str(),
            d["AVAILABLE"].as_str()
        ),
        ("2/2", "2", "2"),
        "{o}"
    );
    assert_eq!(
        t[1].columns,
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{o}"
    );
    let rs_name = format!("replicaset.apps/web-{hash1}");
    let rs = t[1].row(&rs_name).expect("the replicaset row");
    assert_eq!(
        (
            rs["DESIRED"].as_str(),
            rs["CURRENT"].as_str(),
            rs["READY"].as_str()
        ),
        ("2", "2", "2"),
        "{o}"
    );
    assert_eq!(
        t[2].columns,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{o}"
    );
    assert_eq!(t[2].rows.len(), 2, "{o}");
    for r in &t[2].rows {
        assert!(r["NAME"].starts_with(&format!("pod/web-{hash1}-")), "{o}");
        assert_eq!(r["READY"], "1/1", "{o}");
        assert_eq!(r["STATUS"], "Running", "{o}");
        assert_eq!(r["RESTARTS"], "0", "{o}");
        assert!(
            r["AGE"].ends_with('s') || r["AGE"].ends_with('m'),
            "AGE {:?}: {o}",
            r["AGE"]
        );
    }
    // -o wide adds the containers, images and selector.
    let wide = parse_tables(&k.ok(&["get", "deploy", "-o", "wide"]));
    let w = wide[0].row("web").expect("wide row");
    assert_eq!(w["CONTAINERS"], "main");
    assert_eq!(w["IMAGES"], IMAGE);
    assert_eq!(w["SELECTOR"], "app=web");

    // 2. Changed and applied again (client-side: strategic merge patch).
    std::fs::write(&file, app_yaml("web", 3, "two")).unwrap();
    let o = k.run(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("configmap/web-config configured"), "{o}");
    assert!(o.stdout.contains("deployment.apps/web configured"), "{o}");
    rollout_ok(&k, "deploy/web", &[]);
    let v2 = expect_pods(&mut s, &k, "app=web", 3, "after the second apply", |p| {
        hash_of(p) != hash1
    });
    assert_eq!(
        k.ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"]),
        "two"
    );
    let hash2 = hash_of(&v2[0]);
    let pod = name_of(&v2[0]);
    let mut last = String::new();
    assert!(
        wait_until(WAIT, Duration::from_millis(300), || {
            last = k.run(&["logs", &pod]).stdout;
            last.contains("greeting=two")
        }),
        "the new pod's log does not say greeting=two: {last:?}"
    );

    // 3. Applied with --server-side.
    std::fs::write(&file, app_yaml("web", 1, "three")).unwrap();
    let o = k.run(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout.contains("configmap/web-config serverside-applied"),
        "{o}"
    );
    assert!(
        o.stdout.contains("deployment.apps/web serverside-applied"),
        "{o}"
    );
    rollout_ok(&k, "deploy/web", &[]);
    expect_pods(
        &mut s,
        &k,
        "app=web",
        1,
        "after the server-side apply",
        |p| hash_of(p) != hash1 && hash_of(p) != hash2,
    );
    assert_eq!(
        k.ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"]),
        "three"
    );
    let d = k.get_json(&["deploy", "web"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["metadata"]["generation"], 3, "one bump per spec change");
    assert_eq!(d["status"]["observedGeneration"], 3);
    // Defaults applied by the server.
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    // kubectl now owns what it applied (it took the client-side apply's fields over).
    let d: Value = serde_json::from_str(&k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    let managers: Vec<(String, String)> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl".into(), "Apply".into())),
        "{managers:?}"
    );
    assert!(d["metadata"]["managedFields"]
        .to_string()
        .contains("f:replicas"));
    // The controllers are API clients: what they create carries their field manager.
    for kind in ["rs", "pods"] {
        let list: Value = serde_json::from_str(&k.ok(&[
            "get",
            kind,
            "-l",
            "app=web",
            "-o",
            "json",
            "--show-managed-fields",
        ]))
        .unwrap();
        let items = list["items"].as_array().unwrap();
        assert!(!items.is_empty(), "no {kind}");
        for item in items {
            assert!(
                item["metadata"]["managedFields"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|e| e["manager"] == "skiff-controller")),
                "{kind} {} was not written through the API by skiff-controller: {}",
                item["metadata"]["name"],
                item["metadata"]["managedFields"]
            );
        }
    }
}

/// Server-side apply as on a real cluster: two managers conflict on a field with different
/// values, `--force-conflicts` takes it over, and a field a manager stops applying is removed.
#[test]
fn server_side_apply_managers_conflicts_and_removal() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n{data}")
    };
    let file = s.work_dir.join("shared.yaml");
    let f = file.to_str().unwrap();
    std::fs::write(&file, cm("  a: \"1\"\n  b: \"2\"\n")).unwrap();
    k.ok(&["apply", "--server-side", "-f", f]);
    // A second manager applying the same value of `a` shares it; a different value conflicts.
    std::fs::write(&file, cm("  a: \"1\"\n  c: \"3\"\n")).unwrap();
    k.ok(&["apply", "--server-side", "--field-manager=ci", "-f", f]);
    std::fs::write(&file, cm("  a: \"9\"\n")).unwrap();
    let o = k.run(&["apply", "--server-side", "--field-manager=ci", "-f", f]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains(r#"conflict with "kubectl""#) && o.stderr.contains(".data.a"),
        "{o}"
    );
    assert_eq!(
        k.ok(&["get", "cm", "shared", "-o", "jsonpath={.data.a}"]),
        "1",
        "a conflict changes nothing"
    );
    // Forced: ci takes `a` over; ci stopped applying `c`, which only it owned, so `c` goes;
    // `b` is kubectl's and stays.
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=ci",
        "--force-conflicts",
        "-f",
        f,
    ]);
    let data = k.get_json(&["cm", "shared"]).unwrap()["data"].clone();
    assert_eq!(data, serde_json::json!({"a": "9", "b": "2"}));
    // kubectl applying without `b` removes it; its old `a` is no longer its own.
    std::fs::write(&file, cm("  d: \"4\"\n")).unwrap();
    k.ok(&["apply", "--server-side", "-f", f]);
    let data = k.get_json(&["cm", "shared"]).unwrap()["data"].clone();
    assert_eq!(data, serde_json::json!({"a": "9", "d": "4"}));
    // An ordinary update (kubectl patch) takes the field from its applier without conflict;
    // the applier re-applying its old value then conflicts with the patcher.
    k.ok(&[
        "patch",
        "cm",
        "shared",
        "--type=merge",
        "-p",
        r#"{"data":{"d":"5"}}"#,
    ]);
    let o = k.run(&["apply", "--server-side", "-f", f]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains(r#"conflict with "kubectl-patch""#), "{o}");
}

/// "`kubectl scale`, `kubectl rollout restart|undo|history`, `kubectl wait --for=condition=Available` …
/// behave as on a real cluster."
#[test]
fn scale_rollout_restart_and_wait_available() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&sleeper_yaml("sc", 1, 3601), &[]);
    let o = k.run(&[
        "wait",
        "--for=condition=Available",
        "deploy/sc",
        "--timeout=90s",
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "deployment.apps/sc condition met", "{o}");

    // scale up: pods (and containers) follow.
    let o = k.run(&["scale", "deploy/sc", "--replicas=3"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "deployment.apps/sc scaled", "{o}");
    expect_pods(&mut s, &k, "app=sc", 3, "after scale to 3", |_| true);
    s.expect("3 sleep containers run", WAIT, |s| {
        s.container_pids(&["sleep", "3601"]).len() == 3
    });
    // scale down.
    let o = k.run(&["scale", "deployment", "sc", "--replicas=2"]);
    assert_eq!(o.code, 0, "{o}");
    let before = expect_pods(&mut s, &k, "app=sc", 2, "after scale to 2", |_| true);
    s.expect("2 sleep containers run", WAIT, |s| {
        s.container_pids(&["sleep", "3601"]).len() == 2
    });
    let old_hash = hash_of(&before[0]);
    let old_names: HashSet<String> = before.iter().map(name_of).collect();

    // rollout restart: a new ReplicaSet, every pod replaced.
    let o = k.run(&["rollout", "restart", "deploy/sc"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "deployment.apps/sc restarted", "{o}");
    rollout_ok(&k, "deploy/sc", &[]);
    let after = expect_pods(&mut s, &k, "app=sc", 2, "after rollout restart", |p| {
        hash_of(p) != old_hash
    });
    for p in &after {
        assert!(
            !old_names.contains(&name_of(p)),
            "pod {} was not replaced",
            name_of(p)
        );
    }
    let d = k.get_json(&["deploy", "sc"]).unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "restartedAt annotation: {d}"
    );
    let rs = parse_tables(&k.ok(&["get", "rs", "-l", "app=sc"]));
    let old = rs[0]
        .row(&format!("sc-{old_hash}"))
        .expect("old rs kept in history");
    assert_eq!(old["DESIRED"], "0");
    let new = rs[0]
        .row(&format!("sc-{}", hash_of(&after[0])))
        .expect("new rs");
    assert_eq!((new["DESIRED"].as_str(), new["READY"].as_str()), ("2", "2"));
    s.expect("2 sleep containers run after the restart", WAIT, |s| {
        s.container_pids(&["sleep", "3601"]).len() == 2
    });

    // rollout undo: the previous template comes back; its ReplicaSet becomes revision 3.
    let restarted_hash = hash_of(&after[0]);
    let o = k.run(&["rollout", "undo", "deploy/sc"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "deployment.apps/sc rolled back", "{o}");
    rollout_ok(&k, "deploy/sc", &[]);
    expect_pods(&mut s, &k, "app=sc", 2, "after rollout undo", |p| {
        hash_of(p) == old_hash
    });
    let d = k.get_json(&["deploy", "sc"]).unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "the template before the restart: {d}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "{d}"
    );
    let history = k.ok(&["rollout", "history", "deploy/sc"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    // --to-revision: back to the restart's template (revision 2, now 4).
    let o = k.run(&["rollout", "undo", "deploy/sc", "--to-revision=2"]);
    assert_eq!(o.code, 0, "{o}");
    rollout_ok(&k, "deploy/sc", &[]);
    expect_pods(&mut s, &k, "app=sc", 2, "after undo to revision 2", |p| {
        hash_of(p) == restarted_hash
    });
    let o = k.run(&["rollout", "undo", "deploy/sc", "--to-revision=9"]);
    assert_ne!(o.code, 0, "{o}");
    assert!(
        o.stderr.contains("unable to find specified revision 9"),
        "{o}"
    );

    let o = k.run(&[
        "wait",
        "--for=condition=Available",
        "deployment/sc",
        "--timeout=60s",
    ]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("condition met"), "{o}");
}

/// `kubectl rollout pause|resume`: while paused a template change (`set image`) makes no new
/// ReplicaSet and replaces no pod, `rollout status` waits as it does on Kubernetes, `rollout
/// undo` is refused (by kubectl), scaling still applies; resume rolls the pending template.
/// StatefulSets cannot be paused (kubectl says so itself).
#[test]
fn rollout_pause_and_resume() {
    let mut s = server_with_images(&[IMAGE, IMAGE2]);
    let k = Kubectl::admin(&s);
    k.apply(&sleeper_yaml("pz", 2, 3602), &[]);
    rollout_ok(&k, "deploy/pz", &[]);
    // A second revision, so that `rollout undo` has history to go back to.
    k.ok(&["set", "image", "deploy/pz", &format!("main={IMAGE2}")]);
    rollout_ok(&k, "deploy/pz", &[]);
    let before = expect_pods(&mut s, &k, "app=pz", 2, "before the pause", |p| {
        p["spec"]["containers"][0]["image"] == IMAGE2
    });
    let old_hash = hash_of(&before[0]);

    let o = k.run(&["rollout", "pause", "deploy/pz"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, "deployment.apps/pz paused"),
        "{o}"
    );
    let o = k.run(&["set", "env", "deploy/pz", "PAUSED_CHANGE=1"]);
    assert_eq!(o.code, 0, "{o}");
    let progressing = |k: &Kubectl| {
        let d = k.get_json(&["deploy", "pz"]).unwrap();
        let observed = d["status"]["observedGeneration"] == d["metadata"]["generation"];
        let c = d["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing").cloned())
            .unwrap_or_default();
        (observed, c)
    };
    assert!(
        wait_until(WAIT, Duration::from_millis(200), || {
            let (observed, c) = progressing(&k);
            observed && c["reason"] == "DeploymentPaused"
        }),
        "Progressing says DeploymentPaused: {:?}",
        progressing(&k)
    );
    let (_, c) = progressing(&k);
    assert_eq!(
        (c["status"].as_str(), c["message"].as_str()),
        (Some("Unknown"), Some("Deployment is paused"))
    );
    let o = k.run(&["rollout", "status", "deploy/pz", "--watch=false"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        o.stdout.trim(),
        "Waiting for deployment \"pz\" rollout to finish: 0 out of 2 new replicas have been updated...",
        "{o}"
    );
    let o = k.run(&["rollout", "undo", "deploy/pz"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"),
        "{o}"
    );
    // Scaling applies while paused, with the running template.
    k.ok(&["scale", "deploy/pz", "--replicas=3"]);
    expect_pods(&mut s, &k, "app=pz", 3, "scaled while paused", |p| {
        hash_of(p) == old_hash
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        k.names(&["rs", "-l", "app=pz"]).len(),
        2,
        "no new ReplicaSet while paused"
    );
    expect_pods(&mut s, &k, "app=pz", 3, "still paused", |p| {
        hash_of(p) == old_hash && p["spec"]["containers"][0]["env"].is_null()
    });

    let o = k.run(&["rollout", "resume", "deploy/pz"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, "deployment.apps/pz resumed"),
        "{o}"
    );
    rollout_ok(&k, "deploy/pz", &[]);
    expect_pods(&mut s, &k, "app=pz", 3, "after resume", |p| {
        hash_of(p) != old_hash && p["spec"]["containers"][0]["env"][0]["name"] == "PAUSED_CHANGE"
    });
    assert_eq!(
        k.names(&["rs", "-l", "app=pz"]).len(),
        3,
        "the pending template's ReplicaSet"
    );
    let (_, c) = progressing(&k);
    assert_eq!(c["reason"], "NewReplicaSetAvailable", "{c}");
    assert_eq!(
        k.get_json(&["deploy", "pz"]).unwrap()["metadata"]["annotations"]
            ["deployment.kubernetes.io/revision"],
        "3"
    );

    // A StatefulSet has no `paused`: kubectl refuses before asking the server.
    k.apply(
        &format!(
            "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: st
spec:
  serviceName: st
  replicas: 0
  selector:
    matchLabels:
      app: st
  template:
    metadata:
      labels:
        app: st
    spec:
      containers:
      - name: main
        image: {IMAGE}
        imagePullPolicy: Never
"
        ),
        &[],
    );
    let o = k.run(&["rollout", "pause", "statefulset/st"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("statefulsets.apps \"st\" pausing is not supported"),
        "{o}"
    );
}

/// "`kubectl logs -f`": streams while the container runs and ends when it exits; `--tail`,
/// `--timestamps`.
#[test]
fn logs_follow_tail_and_timestamps() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: counter
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6; do echo tick-$i; sleep 1; done; echo done\"]
"
        ),
        &[],
    );
    let o = k.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/counter",
        "--timeout=60s",
    ]);
    assert_eq!(o.code, 0, "{o}");

    let mut f = k.spawn(&["logs", "-f", "counter"]);
    let (first_at, first) = f
        .wait_line(Duration::from_secs(20), |l| l.starts_with("tick-"))
        .unwrap_or_else(|| panic!("no tick line from logs -f: {}", f.describe()));
    let (done_at, _) = f
        .wait_line(Duration::from_secs(30), |l| l == "done")
        .unwrap_or_else(|| panic!("no done line from logs -f: {}", f.describe()));
    let st = f.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "logs -f did not end after the container exited: {}",
            f.describe()
        )
    });
    assert!(st.success(), "logs -f exit status {st}: {}", f.stop());
    let spread = done_at - first_at;
    assert!(
        spread >= Duration::from_secs(2),
        "logs -f did not stream: {first:?} and done arrived {spread:?} apart"
    );
    let text = f.text();
    let ticks: Vec<&str> = text.lines().collect();
    assert_eq!(ticks.last(), Some(&"done"), "{text}");
    // The lines came in order and without duplicates.
    let mut seen = HashSet::new();
    assert!(
        ticks.iter().all(|l| seen.insert(*l)),
        "duplicated lines: {text}"
    );

    // The pod completed.
    s.expect("pod counter Succeeded", WAIT, |_| {
        k.get_json(&["pod", "counter"])
            .is_some_and(|p| p["status"]["phase"] == "Succeeded")
    });
    let all = k.ok(&["logs", "counter"]);
    assert_eq!(
        all,
        "tick-1\ntick-2\ntick-3\ntick-4\ntick-5\ntick-6\ndone\n"
    );
    assert_eq!(k.ok(&["logs", "counter", "--tail=2"]), "tick-6\ndone\n");
    // -f on a finished container prints everything and ends.
    let o = k.run_full(
        &["logs", "-f", "counter", "--tail=1"],
        None,
        Duration::from_secs(20),
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "done\n"), "{o}");

    let ts = k.ok(&["logs", "counter", "--timestamps", "--tail=3"]);
    let lines: Vec<&str> = ts.lines().collect();
    assert_eq!(lines.len(), 3, "{ts}");
    let mut stamps = Vec::new();
    for (l, want) in lines.iter().zip(["tick-5", "tick-6", "done"]) {
        let (stamp, rest) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp: {l:?}"));
        assert_eq!(rest, want, "{ts}");
        // RFC 3339 in UTC: 2026-11-28T02:59:11.375762872Z
        let b = stamp.as_bytes();
        assert!(
            stamp.len() >= 20
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && stamp.ends_with('Z'),
            "not an RFC 3339 timestamp: {stamp:?}"
        );
        stamps.push(stamp.to_string());
    }
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{ts}");
    assert!(
        stamps[0] != stamps[1],
        "tick-5 and tick-6 were a second apart: {ts}"
    );
}

/// "`kubectl delete -f` (pods gone)".
#[test]
fn delete_f_removes_deployment_replicasets_pods_and_containers() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let file = s.work_dir.join("del.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: del-config\ndata:\n  a: b\n",
            sleeper_yaml("del", 2, 3602)
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    k.ok(&["apply", "-f", f]);
    expect_pods(&mut s, &k, "app=del", 2, "before delete", |_| true);
    s.expect("2 containers run", WAIT, |s| {
        s.container_pids(&["sleep", "3602"]).len() == 2
    });

    let o = k.run(&["delete", "-f", f]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("deployment.apps \"del\" deleted"), "{o}");
    assert!(o.stdout.contains("configmap \"del-config\" deleted"), "{o}");
    s.expect(
        "pods and replicasets are gone",
        Duration::from_secs(60),
        |_| {
            k.names(&["pods", "-l", "app=del"]).is_empty()
                && k.names(&["rs", "-l", "app=del"]).is_empty()
        },
    );
    let o = k.run(&["get", "pods", "-l", "app=del"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stderr
            .contains("No resources found in default namespace."),
        "{o}"
    );
    s.expect("the containers are gone", WAIT, |s| {
        s.container_pids(&["sleep", "3602"]).is_empty()
    });
    let o = k.run(&["get", "deploy", "del"]);
    assert_eq!(o.code, 1, "{o}");
    s.assert_no_leftovers(WAIT);
}

/// "`kubectl get pods -w` prints changes as they happen."
#[test]
fn get_pods_watch_prints_changes_as_they_happen() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&sleeper_yaml("w", 1, 3603), &[]);
    let first = expect_pods(&mut s, &k, "app=w", 1, "before watching", |_| true);
    let first = name_of(&first[0]);

    let mut w = k.spawn(&["get", "pods", "-l", "app=w", "-w"]);
    w.wait_line(Duration::from_secs(20), |l| l.starts_with("NAME"))
        .unwrap_or_else(|| panic!("no header: {}", w.describe()));
    w.wait_line(Duration::from_secs(20), |l| {
        l.starts_with(&first) && l.contains("Running")
    })
    .unwrap_or_else(|| panic!("no row for {first}: {}", w.describe()));

    // A change made after the watch started shows up while kubectl keeps running.
    let scaled_at = Instant::now();
    k.ok(&["scale", "deploy/w", "--replicas=2"]);
    let (at, line) = w
        .wait_line(Duration::from_secs(20), |l| {
            l.starts_with("w-") && !l.starts_with(&first)
        })
        .unwrap_or_else(|| panic!("the new pod was not printed: {}", w.describe()));
    eprintln!(
        "get -w printed {line:?} {:?} after the scale began",
        at - scaled_at
    );
    let new_pod = line.split_whitespace().next().unwrap().to_string();
    w.wait_line(Duration::from_secs(30), |l| {
        l.starts_with(&new_pod) && l.contains("Running") && l.contains("1/1")
    })
    .unwrap_or_else(|| panic!("the new pod never showed Running: {}", w.describe()));
    assert!(w.running(), "get -w ended: {}", w.describe());

    // A deletion is printed too (Terminating).
    k.ok(&["delete", "pod", &first, "--wait=false"]);
    w.wait_line(Duration::from_secs(20), |l| {
        l.starts_with(&first) && l.contains("Terminating")
    })
    .unwrap_or_else(|| panic!("the deletion was not printed: {}", w.describe()));
    assert!(w.running(), "get -w ended: {}", w.describe());
    w.stop();
}

/// "`kubectl describe` shows events": Scheduled/Created/Started for a pod, ScalingReplicaSet
/// for a Deployment.
#[test]
fn describe_shows_events() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&sleeper_yaml("ev", 1, 3604), &[]);
    let p = expect_pods(&mut s, &k, "app=ev", 1, "ev", |_| true);
    let pod = name_of(&p[0]);
    k.ok(&["scale", "deploy/ev", "--replicas=2"]);
    expect_pods(&mut s, &k, "app=ev", 2, "ev scaled", |_| true);

    let mut last = String::new();
    let ok = wait_until(WAIT, Duration::from_millis(300), || {
        last = k.run(&["describe", "pod", &pod]).stdout;
        ["Scheduled", "Created", "Started"]
            .iter()
            .all(|r| events_section(&last).contains(r))
    });
    assert!(
        ok,
        "describe pod: no Scheduled/Created/Started events:\n{last}"
    );
    let events = events_section(&last);
    assert!(events.contains("Created container main"), "{last}");
    assert!(events.contains("Started container main"), "{last}");
    let t = parse_tables(events.trim_start_matches("Events:\n"));
    assert!(
        t.first()
            .is_some_and(|t| t.columns == ["Type", "Reason", "Age", "From", "Message"]),
        "events columns: {events}"
    );
    assert_eq!(
        describe_field(&last, "Name").as_deref(),
        Some(pod.as_str()),
        "{last}"
    );
    assert_eq!(
        describe_field(&last, "Status").as_deref(),
        Some("Running"),
        "{last}"
    );
    assert_eq!(
        describe_field(&last, "Image").as_deref(),
        Some(IMAGE),
        "{last}"
    );
    assert_eq!(
        describe_field(&last, "Controlled By")
            .as_deref()
            .map(|c| c.starts_with("ReplicaSet/ev-")),
        Some(true),
        "{last}"
    );

    let ok = wait_until(WAIT, Duration::from_millis(300), || {
        last = k.run(&["describe", "deploy", "ev"]).stdout;
        let e = events_section(&last);
        e.contains("ScalingReplicaSet") && e.contains("from 1 to 2")
    });
    assert!(ok, "describe deploy: no ScalingReplicaSet events:\n{last}");
    assert_eq!(
        describe_field(&last, "Replicas").as_deref(),
        Some("2 desired | 2 updated | 2 total | 2 available | 0 unavailable"),
        "{last}"
    );
    assert_eq!(
        describe_field(&last, "StrategyType").as_deref(),
        Some("RollingUpdate"),
        "{last}"
    );
    assert_eq!(
        describe_field(&last, "RollingUpdateStrategy").as_deref(),
        Some("25% max unavailable, 25% max surge"),
        "{last}"
    );

    // And `kubectl get events` lists them.
    let o = k.ok(&["get", "events"]);
    assert!(
        o.contains("Scheduled") && o.contains("ScalingReplicaSet"),
        "{o}"
    );
}

/// The value of the first `Key:  value` line of `kubectl describe` output (any indentation).
fn describe_field(describe: &str, key: &str) -> Option<String> {
    describe.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

fn events_section(describe: &str) -> String {
    describe
        .find("\nEvents:")
        .map(|i| describe[i + 1..].to_string())
        .unwrap_or_default()
}

/// "`kubectl get deploy nosuch` prints `Error from server (NotFound): deployments.apps "nosuch"
/// not found`; a manifest with an unknown field is rejected naming the field."
/// A `kind: List` file (what `kubectl get -o yaml` writes) applies item by item, client- and
/// server-side; an unknown field in one item is refused by name, as on a real cluster.
#[test]
fn a_list_file_applies_and_a_bad_item_is_named() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    let list = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: l1}}\n  data: {{a: \"1\"}}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: l2}}\n  data: {{a: \"2\"}}\n{extra}"
        )
    };
    let out = k.apply(&list(""), &[]);
    assert!(
        out.contains("configmap/l1 created") && out.contains("configmap/l2 created"),
        "{out}"
    );
    let out = k.apply(&list(""), &["--server-side"]);
    assert!(out.contains("configmap/l2 serverside-applied"), "{out}");
    // kubectl checks a List's items against /openapi/v2 itself, as against a real cluster.
    let o = k.run_stdin(&["apply", "-f", "-"], &list("  bogus: 1\n"));
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains(r#"unknown field "bogus" in io.k8s.api.core.v1.ConfigMap"#),
        "{o}"
    );
    // Without kubectl's own check (server-side apply), the server refuses the item by name.
    let o = k.run_stdin(
        &["apply", "--server-side", "-f", "-"],
        &list("  bogus: 1\n"),
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains(r#"unknown field "bogus""#), "{o}");
}

#[test]
fn not_found_message_and_unknown_fields_rejected_by_name() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    let o = k.run(&["get", "deploy", "nosuch"]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(
        o.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"nosuch\" not found"
    );
    assert_eq!(o.stdout, "");
    let o = k.run(&["get", "cm", "nosuch", "-n", "kube-system"]);
    assert_eq!(o.code, 1, "{o}");
    assert_eq!(
        o.stderr.trim(),
        "Error from server (NotFound): configmaps \"nosuch\" not found"
    );

    // Unknown field deep in a Deployment, client-side and server-side apply.
    let bad = sleeper_yaml("bad", 1, 3605).replace(
        "        imagePullPolicy: Never\n",
        "        imagePullPolicy: Never\n        imagePullPolicyy: Always\n",
    );
    for extra in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend(extra);
        let o = k.run_stdin(&args, &bad);
        assert_eq!(o.code, 1, "kubectl {args:?}: {o}");
        assert!(
            o.stderr.contains("imagePullPolicyy"),
            "kubectl {args:?}: the field is not named: {o}"
        );
        let o = k.run(&["get", "deploy", "bad"]);
        assert_eq!(o.code, 1, "the bad deployment was created: {o}");
    }
    // Unknown metadata field in a ConfigMap.
    let o = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: badcm\n  labelz:\n    a: b\ndata:\n  a: b\n",
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("labelz"), "{o}");
    assert_eq!(k.run(&["get", "cm", "badcm"]).code, 1);
}

/// "`curl -k` without a token gets 401" — and so does a wrong token; kubectl with a wrong token
/// says it must be logged in.
#[test]
fn requests_without_a_valid_token_get_401() {
    let s = server_with_images(&[]);
    let port = s.api_port;
    for path in [
        "/api/v1/namespaces/default/pods",
        "/apis/apps/v1/deployments",
        "/version",
        "/api",
        "/openapi/v3",
    ] {
        for token in [None, Some("skiff.not-a-token"), Some("")] {
            let r = https_request(port, "GET", path, token, None, None);
            assert_eq!(r.status, 401, "GET {path} with {token:?}: {r:?}");
            let v: Value = serde_json::from_str(&r.body)
                .unwrap_or_else(|e| panic!("401 body is not JSON ({e}): {r:?}"));
            assert_eq!(v["kind"], "Status", "{r:?}");
            assert_eq!(v["reason"], "Unauthorized", "{r:?}");
            assert_eq!(v["code"], 401, "{r:?}");
        }
    }
    // Writes too. Over HTTP/1.1: over HTTP/2, curl sometimes gets a stream reset instead of
    // the 401 when the server answers before reading the request body (exit 92; reported).
    let r = https_request_with(
        true,
        port,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        None,
        Some("application/json"),
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
    );
    assert_eq!(r.status, 401, "{r:?}");
    // The admin token works.
    let admin = kubeconfig_token(&s.kubeconfig);
    let r = https_request(
        port,
        "GET",
        "/api/v1/namespaces/default/pods",
        Some(&admin),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Plain HTTP is not served.
    assert!(
        http_get(port, "/version").map_or(true, |r| r.status != 200),
        "the API answered plain HTTP"
    );

    // kubectl with a wrong token.
    let bad_kc = s.work_dir.join("bad-kubeconfig.yaml");
    let text = std::fs::read_to_string(&s.kubeconfig).unwrap();
    std::fs::write(&bad_kc, text.replace(&admin, "skiff.wrong")).unwrap();
    let o = Kubectl::with_kubeconfig(&s, &bad_kc).run(&["get", "pods"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("You must be logged in to the server"),
        "{o}"
    );
}

/// "A namespace-scoped token cannot read another namespace (403) and can roll out an image in
/// its own." Also: apply in its own namespace, list/revoke.
#[test]
fn namespace_token_is_scoped_and_can_roll_out_an_image() {
    let mut s = server_with_images(&[IMAGE, IMAGE2]);
    let admin = Kubectl::admin(&s);
    admin.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ci\n",
        &[],
    );
    admin.apply(&sleeper_yaml("app", 1, 3606), &["-n", "ci"]);
    admin.apply(&sleeper_yaml("other", 1, 3607), &[]);

    let (ci_kc, token) = namespace_token(&s, "ci");
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "token {token:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ci_kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(kubeconfig_token(&ci_kc), token);
    let ci = Kubectl::with_kubeconfig(&s, &ci_kc);

    // Its own namespace: readable (the kubeconfig's context namespace is ci).
    let o = ci.run(&["get", "deploy"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(parse_tables(&o.stdout)[0].row("app").is_some(), "{o}");
    // Other namespaces and the cluster scope: 403 in Kubernetes' words.
    let o = ci.run(&["get", "pods", "-n", "default"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr
            .contains("Error from server (Forbidden): pods is forbidden")
            && o.stderr.contains("in the namespace \"default\""),
        "{o}"
    );
    let o = ci.run(&["get", "deploy", "-A"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("(Forbidden)"), "{o}");
    let o = ci.run(&["get", "deploy", "other", "-n", "default"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("(Forbidden)"), "{o}");
    let r = https_request(
        s.api_port,
        "GET",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(&token),
        None,
        None,
    );
    assert_eq!(r.status, 403, "{r:?}");
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str()),
        (Some("Status"), Some("Forbidden"))
    );
    // No writes elsewhere either.
    let o = ci.run_stdin(
        &["apply", "-n", "default", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sneaky\ndata:\n  a: b\n",
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("(Forbidden)") || o.stderr.contains("forbidden"),
        "{o}"
    );
    assert_eq!(admin.run(&["get", "cm", "sneaky"]).code, 1);

    // Roll out a new image in its own namespace, as CI does.
    let o = ci.run(&["set", "image", "deploy/app", &format!("main={IMAGE2}")]);
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout.contains("deployment.apps/app image updated"),
        "{o}"
    );
    rollout_ok(&ci, "deploy/app", &[]);
    // (The ci kubeconfig's context namespace is ci.)
    expect_pods(&mut s, &ci, "app=app", 1, "after set image", |p| {
        p["spec"]["containers"][0]["image"] == IMAGE2 && p["metadata"]["namespace"] == "ci"
    });
    // And apply in its own namespace.
    let o = ci.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ci-settings\ndata:\n  a: b\n",
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("configmap/ci-settings created"), "{o}");
    assert_eq!(
        admin.ok(&[
            "get",
            "cm",
            "ci-settings",
            "-n",
            "ci",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    // The other namespace's deployment was untouched.
    let other = admin.get_json(&["deploy", "other"]).unwrap();
    assert_eq!(
        other["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );

    // Listed, then revoked: 401 from then on.
    let o = s.cli(&["token", "list"]);
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    let id = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("ci"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no ci token in `skiff token list`:\n{list}"))
        .to_string();
    assert!(
        !list.contains(&token),
        "token list shows the secret:\n{list}"
    );
    let o = s.cli(&["token", "revoke", &id]);
    assert!(
        o.status.success(),
        "revoke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut last = None;
    let revoked = wait_until(WAIT, Duration::from_millis(200), || {
        let r = https_request(
            s.api_port,
            "GET",
            "/api/v1/namespaces/ci/pods",
            Some(&token),
            None,
            None,
        );
        let done = r.status == 401;
        last = Some(r);
        done
    });
    assert!(revoked, "the revoked token still works: {last:?}");
}

/// "The objects of a file in the manifests folder are visible through kubectl, and a kubectl
/// change to a folder-managed field is reported as a conflict rather than silently
/// overwritten."
#[test]
fn folder_objects_visible_and_kubectl_changes_refused_as_conflicts() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let yaml = app_yaml("fold", 1, "from-file");
    s.write_manifest("fold.yaml", &yaml);
    s.expect(
        "kubectl sees the folder's deployment and configmap",
        WAIT,
        |_| k.run(&["get", "deploy", "fold"]).ok() && k.run(&["get", "cm", "fold-config"]).ok(),
    );
    rollout_ok(&k, "deploy/fold", &[]);
    let row = parse_tables(&k.ok(&["get", "deploy", "fold"]))[0]
        .row("fold")
        .cloned()
        .unwrap();
    assert_eq!(row["READY"], "1/1");

    let changed = s.work_dir.join("fold-changed.yaml");
    std::fs::write(&changed, app_yaml("fold", 3, "from-kubectl")).unwrap();
    let f = changed.to_str().unwrap();
    // Client-side apply, server-side apply, merge patch: each refused, naming the folder file.
    for args in [
        vec!["apply", "-f", f],
        vec!["apply", "--server-side", "-f", f],
    ] {
        let o = k.run(&args);
        assert_eq!(o.code, 1, "kubectl {args:?}: {o}");
        assert!(
            o.stderr.contains("conflict") && o.stderr.contains("fold.yaml"),
            "kubectl {args:?} does not report a conflict with the folder file: {o}"
        );
    }
    let o = k.run(&[
        "patch",
        "deploy",
        "fold",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("Conflict") && o.stderr.contains("fold.yaml"),
        "{o}"
    );
    // kubectl scale retries a 409 for 5 minutes; skiff answers this refusal with 403, so
    // kubectl stops at once and prints the message.
    let o = k.run_full(
        &["scale", "deploy/fold", "--replicas=4"],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("conflict") && o.stderr.contains("fold.yaml"),
        "{o}"
    );
    let o = k.run(&["set", "image", "deploy/fold", "main=other:v9"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("fold.yaml"), "{o}");

    // The objects stay as the file says.
    let d = k.get_json(&["deploy", "fold"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "from-file"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "fold-config",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "from-file"
    );
    expect_pods(&mut s, &k, "app=fold", 1, "still one pod", |_| true);

    // The file still rules: editing it changes what kubectl shows.
    s.write_manifest("fold.yaml", &app_yaml("fold", 2, "from-file-2"));
    s.expect("the file's new values show through kubectl", WAIT, |_| {
        k.get_json(&["deploy", "fold"])
            .is_some_and(|d| d["spec"]["replicas"] == 2)
            && k.run(&[
                "get",
                "cm",
                "fold-config",
                "-o",
                "jsonpath={.data.greeting}",
            ])
            .stdout
                == "from-file-2"
    });
    rollout_ok(&k, "deploy/fold", &[]);
    expect_pods(&mut s, &k, "app=fold", 2, "two pods from the file", |_| {
        true
    });

    // Fields the file does not declare are anyone's: an annotation added with kubectl stays
    // through the next change of the file, and a rollout restart goes through.
    k.ok(&["annotate", "deploy", "fold", "team=home"]);
    k.ok(&["rollout", "restart", "deploy/fold"]);
    rollout_ok(&k, "deploy/fold", &[]);
    s.write_manifest("fold.yaml", &app_yaml("fold", 1, "from-file-3"));
    s.expect("the file's third version", WAIT, |_| {
        k.get_json(&["deploy", "fold"])
            .is_some_and(|d| d["spec"]["replicas"] == 1)
    });
    let d = k.get_json(&["deploy", "fold"]).unwrap();
    assert_eq!(d["metadata"]["annotations"]["team"], "home", "{d}");
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );

    // --force-conflicts takes a field over explicitly; the next change of the file takes it
    // back (the folder is the truth).
    let o = k.run(&["apply", "--server-side", "--force-conflicts", "-f", f]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(
        k.get_json(&["deploy", "fold"]).unwrap()["spec"]["replicas"],
        3
    );
    s.write_manifest("fold.yaml", &app_yaml("fold", 2, "from-file-4"));
    s.expect("the folder takes replicas back", WAIT, |_| {
        k.get_json(&["deploy", "fold"])
            .is_some_and(|d| d["spec"]["replicas"] == 2)
    });
}

/// Runs a kubectl command that must succeed and print `says`.
fn created(k: &Kubectl, args: &[&str], says: &str) {
    let o = k.run(args);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, says),
        "kubectl {args:?}: {o}"
    );
}

/// kubectl's typed generators POST protobuf (`application/vnd.kubernetes.protobuf`); skiff
/// decodes it and answers in JSON, which kubectl takes. Each object comes out as the generator
/// meant it, defaults applied, and a Deployment made this way runs.
#[test]
fn typed_generators_create_objects_sent_as_protobuf() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);

    created(&k, &["create", "namespace", "gen"], "namespace/gen created");
    let ns = k.get_json(&["namespace", "gen"]).expect("namespace gen");
    assert_eq!(ns["metadata"]["name"], "gen", "{ns}");
    let o = k.run(&["create", "namespace", "gen"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("AlreadyExists"), "{o}");

    let cm = ["create", "configmap", "settings", "-n", "gen"];
    let literals = ["--from-literal=greeting=hello", "--from-literal=empty="];
    created(
        &k,
        &[&cm[..], &literals].concat(),
        "configmap/settings created",
    );
    let cm = k.get_json(&["cm", "settings", "-n", "gen"]).unwrap();
    let want = serde_json::json!({"greeting": "hello", "empty": ""});
    assert_eq!(cm["data"], want, "{cm}");
    // --dry-run=server decodes and validates, and stores nothing.
    let dry = [
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ];
    created(&k, &dry, "configmap/dry created (server dry run)");
    assert_eq!(k.run(&["get", "cm", "dry"]).code, 1);

    let secret = ["create", "secret", "generic", "creds", "-n", "gen"];
    let password = ["--from-literal=password=hunter2"];
    created(
        &k,
        &[&secret[..], &password].concat(),
        "secret/creds created",
    );
    let get = ["get", "secret", "creds", "-n", "gen", "-o"];
    let b64 = k.ok(&[&get[..], &["jsonpath={.data.password}"]].concat());
    assert_eq!(b64, "aHVudGVyMg==");
    let template = "go-template={{.data.password | base64decode}}";
    assert_eq!(k.ok(&[&get[..], &[template]].concat()), "hunter2");
    let secret = k.get_json(&["secret", "creds", "-n", "gen"]).unwrap();
    assert_eq!(secret["type"], "Opaque", "{secret}");

    let image = format!("--image={IMAGE}");
    let deploy = [
        "create",
        "deployment",
        "web",
        &image,
        "--replicas=2",
        "--port=8080",
    ];
    let command = ["--", "sleep", "3607"];
    created(
        &k,
        &[&deploy[..], &command].concat(),
        "deployment.apps/web created",
    );
    let o = k.run(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=90s",
    ]);
    assert_eq!(o.code, 0, "{o}");
    expect_pods(&mut s, &k, "app=web", 2, "the generated deployment", |_| {
        true
    });
    s.expect("2 sleep containers run", WAIT, |s| {
        s.container_pids(&["sleep", "3607"]).len() == 2
    });
    let d = k.get_json(&["deploy", "web"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "{d}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], IMAGE, "{d}");
    assert_eq!(c["command"], serde_json::json!(["sleep", "3607"]), "{d}");
    assert_eq!(c["ports"][0]["containerPort"], 8080, "{d}");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");

    let svc = ["create", "service", "clusterip", "web", "--tcp=80:8080"];
    created(&k, &svc, "service/web created");
    let svc = k.get_json(&["svc", "web"]).unwrap();
    let spec = &svc["spec"];
    assert_eq!(spec["type"], "ClusterIP", "{svc}");
    assert_eq!(spec["selector"]["app"], "web", "{svc}");
    let port = &spec["ports"][0];
    assert_eq!(
        (&port["port"], &port["targetPort"]),
        (&80.into(), &8080.into()),
        "{svc}"
    );
    assert_eq!(port["protocol"], "TCP", "{svc}");
    let ip = spec["clusterIP"].as_str().unwrap_or_default();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{svc}");
    let np = [
        "create",
        "service",
        "nodeport",
        "web-np",
        "--tcp=81:8080",
        "--node-port=30081",
    ];
    created(&k, &np, "service/web-np created");
    let svc = k.get_json(&["svc", "web-np"]).unwrap();
    assert_eq!(svc["spec"]["type"], "NodePort", "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30081, "{svc}");

    let ing = [
        "create",
        "ingress",
        "web",
        "--class=skiff",
        "--rule=web.example/api*=web:80",
    ];
    created(&k, &ing, "ingress.networking.k8s.io/web created");
    let ing = k.get_json(&["ingress", "web"]).unwrap();
    assert_eq!(ing["spec"]["ingressClassName"], "skiff", "{ing}");
    let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(
        (&path["path"], &path["pathType"]),
        (&"/api".into(), &"Prefix".into()),
        "{ing}"
    );
    assert_eq!(path["backend"]["service"]["port"]["number"], 80, "{ing}");

    // What skiff does not implement is refused by name, as it is for JSON.
    let ext = [
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ];
    let o = k.run(&ext);
    assert_eq!(o.code, 1, "{o}");
    let why = "spec.externalName: field is not supported by skiff";
    assert!(o.stderr.contains(why), "{o}");
}

/// `kubectl exec -it POD -- sh` on a terminal of `cols`×`rows`, once the shell's prompt shows.
fn shell_on_terminal(k: &Kubectl, pod: &str, cols: u16, rows: u16) -> Terminal {
    let mut t = k.spawn_on_terminal(&["exec", "-it", pod, "--", "sh"], cols, rows);
    // busybox sh's prompt for root.
    assert!(
        t.wait_for(Duration::from_secs(30), |x| x.contains("# ")),
        "no prompt: {}",
        t.describe()
    );
    t
}

/// "`kubectl exec`": without a terminal, stdout and stderr apart and the exit code; with
/// `-it`, a real terminal in the container (`tty` shows `/dev/pts/N`), the size of kubectl's
/// own terminal inside it (`stty size`), also after a resize, typed commands, `^C`, and
/// `exit 3` making kubectl exit 3; a client that goes away ends the shell.
#[test]
fn exec_with_and_without_a_terminal() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&sleeper_yaml("shell", 1, 3600), &[]);
    let pod = name_of(&expect_pods(&mut s, &k, "app=shell", 1, "exec", |_| true)[0]);
    let pod = pod.as_str();

    let o = k.run(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        "echo out-$((1+1)); echo err-$((2+2)) >&2; exit 5",
    ]);
    assert_eq!(o.code, 5, "{o}");
    assert_eq!(o.stdout.trim(), "out-2", "{o}");
    assert!(o.stderr.contains("err-4"), "{o}");

    let mut t = shell_on_terminal(&k, pod, 101, 33);
    t.type_text("tty; stty size; echo \"term=$TERM\"; echo done-$((1+2))\r");
    assert!(
        t.wait_for(Duration::from_secs(20), |x| x.contains("done-3")),
        "the typed commands did not run: {}",
        t.describe()
    );
    let text = t.text();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")
            && l["/dev/pts/".len()..].chars().all(|c| c.is_ascii_digit())),
        "tty did not print /dev/pts/N: {text}"
    );
    assert!(lines.contains(&"33 101"), "stty size is not 33 101: {text}");
    assert!(lines.contains(&"term=xterm"), "{text}");

    // A resized window reaches the container's terminal (kubectl sends it on SIGWINCH).
    t.resize(120, 40);
    let mut n = 0;
    let resized = wait_until(Duration::from_secs(20), Duration::from_millis(500), || {
        n += 1;
        t.type_text(&format!("echo size-{n}=$(stty size)\r"));
        std::thread::sleep(Duration::from_millis(300));
        t.text()
            .lines()
            .any(|l| l.trim() == format!("size-{n}=40 120"))
    });
    assert!(
        resized,
        "stty size did not follow the resize: {}",
        t.describe()
    );

    // ^C interrupts the foreground job: the terminal is the session's controlling terminal.
    t.type_text("sleep 600\r");
    std::thread::sleep(Duration::from_millis(500));
    t.type_text("\x03");
    t.type_text("echo after-$((5+5))\r");
    assert!(
        t.wait_for(Duration::from_secs(10), |x| x.contains("after-10")),
        "^C did not interrupt sleep: {}",
        t.describe()
    );

    t.type_text("exit 3\r");
    let st = t
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kubectl exec -it did not end: {}", t.describe()));
    assert_eq!(st.code(), Some(3), "{}", t.describe());

    // A client that goes away hangs the terminal up: the shell and its foreground job end.
    let mut t = shell_on_terminal(&k, pod, 80, 24);
    t.type_text("sleep 4321\r");
    let running = |k: &Kubectl| k.ok(&["exec", pod, "--", "ps"]).contains("sleep 4321");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            running(&k)
        }),
        "sleep 4321 did not start: {}",
        t.describe()
    );
    drop(t); // kills kubectl
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(300), || {
            !running(&k)
        }),
        "the exec'd shell outlived its client:\n{}",
        k.ok(&["exec", pod, "--", "ps"])
    );

    // A command that cannot start: kubectl says so and fails.
    let mut t = k.spawn_on_terminal(&["exec", "-it", pod, "--", "/no/such/program"], 80, 24);
    let st = t.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "kubectl exec -it of a missing program hung: {}",
            t.describe()
        )
    });
    assert_eq!(st.code(), Some(126), "{}", t.describe());
    assert!(t.text().contains("not found"), "{}", t.describe());
    // Each terminal's socket and process file are gone, and libcontainer's link to the socket.
    let (mut left, mut seen) = (Vec::new(), 0);
    for dir in [
        s.data_dir.join("containers"),
        s.data_dir.join("run/libcontainer"),
    ] {
        for c in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            seen += 1;
            for f in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with("exec-") || name.starts_with("tenant-tty-") {
                    left.push(f.path());
                }
            }
        }
    }
    assert!(
        seen >= 2,
        "no container directories under {}",
        s.data_dir.display()
    );
    assert!(left.is_empty(), "left behind: {left:?}");
    s.assert_running();
}

/// A Deployment `web` (label `app: web`) whose busybox httpd answers on 8080 with the pod's
/// name at `/` and 50,000 numbered lines at `/big.txt`; a Service `web` (port 80 → `http`).
fn web_yaml() -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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
        command: [\"sh\", \"-c\", \"hostname > /www/index.html; seq 1 50000 > /www/big.txt; exec httpd -f -p 8080 -h /www\"]
        ports:
        - {{name: http, containerPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - {{port: 80, targetPort: http}}
"
    )
}

/// Starts `kubectl port-forward TARGET 0:REMOTE` and returns it with the local port it chose
/// (from its `Forwarding from 127.0.0.1:PORT -> POD_PORT` line: a Service's port is resolved
/// by kubectl to the pod's).
fn port_forward(
    k: &Kubectl,
    target: &str,
    remote: u16,
    pod_port: u16,
    env: &[(&str, &str)],
) -> (Streaming, u16) {
    let spec = format!("0:{remote}");
    let mut pf = k.spawn_with_env(&["port-forward", target, &spec], env);
    let line = pf.wait_line(Duration::from_secs(30), |l| {
        l.starts_with("Forwarding from 127.0.0.1:")
    });
    let Some((_, line)) = line else {
        let described = pf.describe();
        panic!(
            "kubectl port-forward {target} printed no port: {described}\nstderr: {}",
            pf.stop()
        );
    };
    let port = line["Forwarding from 127.0.0.1:".len()..]
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert!(line.ends_with(&format!("-> {pod_port}")), "{line}");
    (pf, port)
}

/// Opens a connection to 127.0.0.1:PORT and writes the first part of `GET PATH`.
fn forwarded_open(port: u16, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(format!("GET {path} HTTP/1.0\r\n").as_bytes())
        .unwrap();
    c
}

/// Finishes the request begun by [`forwarded_open`]; the status code and the body.
fn forwarded_finish(mut c: std::net::TcpStream) -> (String, String) {
    use std::io::{Read, Write};
    c.write_all(b"Host: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    let r = c.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or_else(|| {
        panic!("no HTTP answer ({r:?}): {out:?}");
    });
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body.to_string())
}

fn forwarded_get(port: u16, path: &str) -> (String, String) {
    forwarded_finish(forwarded_open(port, path))
}

/// "`kubectl port-forward pod/NAME`, `deploy/NAME` and `svc/NAME` work as on a real cluster":
/// over kubectl's WebSocket tunnel and its SPDY fallback, sequential and concurrent
/// connections, a body of several frames; a forward to a closed port is reported.
#[test]
fn port_forward_to_pods_deployments_and_services() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&web_yaml(), &[]);
    rollout_ok(&k, "deploy/web", &[]);
    let name = expect_pods(&mut s, &k, "app=web", 1, "web", running_and_ready)
        .first()
        .map(name_of)
        .unwrap();
    let big: String = (1..=50000).map(|i| format!("{i}\n")).collect();

    let pod = format!("pod/{name}");
    for (target, remote, env) in [
        (pod.as_str(), 8080, &[][..]),
        // The plain SPDY upgrade, which kubectl falls back to.
        (
            pod.as_str(),
            8080,
            &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..],
        ),
        ("deploy/web", 8080, &[][..]),
        ("svc/web", 80, &[][..]),
    ] {
        let (mut pf, port) = port_forward(&k, target, remote, 8080, env);
        let what = format!("{target} {env:?}");
        if env.is_empty() && target == pod {
            // Past kubectl's first keep-alive ping (every 10 s on the WebSocket tunnel).
            std::thread::sleep(Duration::from_secs(12));
        }
        for _ in 0..2 {
            assert_eq!(
                forwarded_get(port, "/"),
                ("200".to_string(), format!("{name}\n")),
                "{what}"
            );
        }
        // Two connections open at once, answered in the other order.
        let first = forwarded_open(port, "/big.txt");
        let second = forwarded_open(port, "/");
        assert_eq!(
            forwarded_finish(second),
            ("200".to_string(), format!("{name}\n")),
            "{what}"
        );
        let (code, body) = forwarded_finish(first);
        assert_eq!(code, "200", "{what}");
        assert!(
            body == big,
            "{what}: /big.txt came back with {} bytes",
            body.len()
        );
        assert!(pf.running(), "{what}: {}", pf.describe());
        let handled = format!("Handling connection for {port}");
        let seen = (0..4).all(|_| {
            pf.wait_line(Duration::from_secs(5), |l| l == handled)
                .is_some()
        });
        assert!(seen, "{what}: {}", pf.describe());
        let stderr = pf.stop();
        assert!(stderr.is_empty(), "{what}: {stderr}");
    }

    // A hostNetwork pod listens on the host itself: reached on 127.0.0.1.
    let host_port = free_port();
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: hostweb
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"echo on-the-host > /www/index.html; exec httpd -f -p 127.0.0.1:{host_port} -h /www\"]
"
        ),
        &[],
    );
    let o = k.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/hostweb",
        "--timeout=60s",
    ]);
    assert_eq!(o.code, 0, "{o}");
    let listening = wait_until(WAIT, POLL, || {
        std::net::TcpStream::connect(("127.0.0.1", host_port)).is_ok()
    });
    assert!(listening, "hostweb never listened on {host_port}");
    let (mut pf, port) = port_forward(&k, "pod/hostweb", host_port, host_port, &[]);
    assert_eq!(
        forwarded_get(port, "/"),
        ("200".to_string(), "on-the-host\n".to_string())
    );
    pf.stop();

    // kubectl 1.32 speaks SPDY inside WebSocket by default and plain SPDY when told not to.
    let log = s.log();
    let sessions = |t: &str| {
        log.lines()
            .filter(|l| {
                l.contains("port-forward session") && l.contains(&format!("transport=\"{t}\""))
            })
            .count()
    };
    assert_eq!((sessions("WebSocket"), sessions("SPDY")), (4, 1), "{log}");

    // A closed port: the error comes back on the error stream, in the kubelet's words; kubectl
    // 1.32 prints it and then closes its whole session (as against a real kubelet: every
    // forwarded connection ends), exiting 1.
    let (mut pf, port) = port_forward(&k, &pod, 9999, 9999, &[]);
    let mut c = forwarded_open(port, "/");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c, &mut rest);
    let status = pf.wait_exit(Duration::from_secs(30));
    let stderr = pf.stop();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    let refused = format!("error forwarding port 9999 to pod {name}_default");
    assert!(
        stderr.contains(&refused) && stderr.contains("connect: connection refused"),
        "{stderr}"
    );
    assert!(stderr.contains("lost connection to pod"), "{stderr}");
    // The server is fine: a new session forwards again.
    let (mut pf, port) = port_forward(&k, &pod, 8080, 8080, &[]);
    assert_eq!(
        forwarded_get(port, "/"),
        ("200".to_string(), format!("{name}\n"))
    );
    pf.stop();

    // port-forward is `create` on pods/portforward: a namespace token only in its namespace.
    k.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ci\n",
        &[],
    );
    let (_, token) = namespace_token(&s, "ci");
    let path = format!("/api/v1/namespaces/default/pods/{name}/portforward");
    let r = https_request_with(true, s.api_port, "POST", &path, Some(&token), None, None);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body
            .contains("cannot create resource \\\"pods/portforward\\\" in API group \\\"\\\" in the namespace \\\"default\\\""),
        "{r:?}"
    );
    let path = "/api/v1/namespaces/ci/pods/nothing/portforward";
    let r = https_request_with(true, s.api_port, "POST", path, Some(&token), None, None);
    assert_eq!(r.status, 404, "{r:?}");
}

/// `kubectl auth can-i` (SelfSubjectAccessReview) answers truthfully for the admin and for a
/// namespace token — what a CI pipeline checks before it acts — and `kubectl auth whoami`
/// (SelfSubjectReview) names the caller.
#[test]
fn auth_can_i_and_whoami() {
    let s = server_with_images(&[]);
    let admin = Kubectl::admin(&s);
    for ns in ["ci", "other"] {
        admin.ok(&["create", "namespace", ns]);
    }
    let o = admin.run(&["auth", "can-i", "create", "pods", "-n", "other"]);
    assert_eq!((o.code, o.stdout.trim()), (0, "yes"), "{o}");
    let o = admin.run(&["auth", "whoami"]);
    assert!(o.ok() && o.stdout.contains("system:admin"), "{o}");
    assert!(o.stdout.contains("system:masters"), "{o}");

    let (kc, _) = namespace_token(&s, "ci");
    let ci = Kubectl::with_kubeconfig(&s, &kc);
    let o = ci.run(&["auth", "can-i", "create", "deployments.apps", "-n", "ci"]);
    assert_eq!((o.code, o.stdout.trim()), (0, "yes"), "{o}");
    let o = ci.run(&["auth", "can-i", "create", "pods", "-n", "other"]);
    assert_eq!((o.code, o.stdout.trim()), (1, "no"), "{o}");
    let o = ci.run(&["auth", "can-i", "list", "nodes"]);
    assert_eq!((o.code, o.stdout.trim()), (1, "no"), "{o}");
    let o = ci.run(&["auth", "can-i", "get", "namespace/ci"]);
    assert_eq!((o.code, o.stdout.trim()), (0, "yes"), "{o}");
    let o = ci.run(&["auth", "can-i", "delete", "namespace/ci"]);
    assert_eq!((o.code, o.stdout.trim()), (1, "no"), "{o}");
    // `--list` (SelfSubjectRulesReview): what the token may do in its namespace, and nothing
    // elsewhere.
    let o = ci.run(&["auth", "can-i", "--list", "-n", "ci"]);
    assert_eq!(o.code, 0, "{o}");
    let row = |out: &str, resource: &str| -> Option<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let every = "[create delete get list patch update watch]";
    assert_eq!(
        row(&o.stdout, "pods"),
        Some(format!("pods [] [] {every}")),
        "{o}"
    );
    assert_eq!(
        row(&o.stdout, "deployments.apps"),
        Some(format!("deployments.apps [] [] {every}")),
        "{o}"
    );
    assert_eq!(
        row(&o.stdout, "namespaces"),
        Some("namespaces [] [ci] [get]".into()),
        "{o}"
    );
    assert_eq!(row(&o.stdout, "nodes"), None, "{o}");
    let o = ci.run(&["auth", "can-i", "--list", "-n", "other"]);
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(row(&o.stdout, "pods"), None, "{o}");
    let o = admin.run(&["auth", "can-i", "--list", "-n", "other"]);
    assert_eq!(row(&o.stdout, "*.*"), Some("*.* [] [] [*]".into()), "{o}");
    let o = ci.run(&["auth", "whoami", "-o", "json"]);
    assert!(o.ok(), "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let user = v["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or_default();
    assert!(user.starts_with("system:serviceaccount:ci:"), "{o}");
}

/// Pod status as kubelet fills it (issue 17 part 4): `hostIP`/`hostIPs` the Node's InternalIP
/// (so `kubectl describe pod` names the node at its address), `podIPs`, `startTime`,
/// container `started`, `lastState.terminated` after a restart, `imageID` with the digest.
#[test]
fn pod_status_as_kubelet_fills_it() {
    let s = server_with_images(&[IMAGE]);
    // An OCI archive carries its manifest's digest (a `docker save` one has none); a file of
    // its own makes it an image of its own (one name, so the digest is known to be its).
    let oci = s.work_dir.join("oci.tar");
    let marker = s.work_dir.join("oci-marker");
    std::fs::write(&marker, "oci\n").unwrap();
    let built = std::process::Command::new("bash")
        .arg(busybox_image_script())
        .arg(&oci)
        .arg("skiff-e2e-oci:v1")
        .arg("--oci")
        .arg("--add")
        .arg(format!("{}:/oci-marker", marker.display()))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    assert!(s.import_image(&oci).status.success());
    let k = Kubectl::admin(&s);
    k.apply(
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: st
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: steady
    image: skiff-e2e-oci:v1
    imagePullPolicy: Never
    command: [\"sleep\", \"3603\"]
  - name: crashing
    image: {IMAGE}
    imagePullPolicy: Never
    command: [\"sh\", \"-c\", \"sleep 1; exit 3\"]
"
        ),
        &[],
    );
    let node = k.get_json(&["nodes"]).unwrap()["items"][0].clone();
    let node_ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let container = |p: &Value, name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_default()
    };
    let mut pod = Value::Null;
    let restarted = wait_until(Duration::from_secs(60), Duration::from_millis(300), || {
        pod = k.get_json(&["pod", "st"]).unwrap_or_default();
        container(&pod, "crashing")["lastState"]["terminated"]["exitCode"] == 3
            && container(&pod, "steady")["started"] == true
    });
    assert!(restarted, "a restart with its last state: {pod:#}");
    let st = &pod["status"];
    assert_eq!(st["hostIP"], node_ip, "{st:#}");
    assert_eq!(
        st["hostIPs"],
        serde_json::json!([{"ip": node_ip}]),
        "{st:#}"
    );
    let pod_ip = st["podIP"].as_str().unwrap();
    assert!(pod_ip.starts_with("10."), "{st:#}");
    assert_eq!(st["podIPs"], serde_json::json!([{"ip": pod_ip}]), "{st:#}");
    assert!(st["startTime"].is_string(), "{st:#}");
    let crashing = container(&pod, "crashing");
    assert!(
        crashing["restartCount"].as_i64().unwrap() >= 1,
        "{crashing:#}"
    );
    assert_eq!(
        crashing["lastState"]["terminated"]["reason"], "Error",
        "{crashing:#}"
    );
    let steady = container(&pod, "steady");
    assert!(
        steady["state"]["running"]["startedAt"].is_string(),
        "{steady:#}"
    );
    let image_id = steady["imageID"].as_str().unwrap();
    let digest = image_id
        .strip_prefix("docker.io/library/skiff-e2e-oci@sha256:")
        .unwrap_or_else(|| panic!("imageID with the digest: {steady:#}"));
    assert_eq!(digest.len(), 64, "{steady:#}");
    // The `docker save` archive has no manifest digest: the image's id.
    let crashing_id = crashing["imageID"].as_str().unwrap();
    assert!(
        crashing_id.starts_with("sha256:") && crashing_id.len() == 71,
        "{crashing:#}"
    );
    let describe = k.ok(&["describe", "pod", "st"]);
    let node_name = node["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        describe_field(&describe, "Node"),
        Some(format!("{node_name}/{node_ip}")),
        "{describe}"
    );
}

/// `kubectl explain` reads the OpenAPI v3 documents: the fields skiff takes, with Kubernetes'
/// documentation; a field skiff refuses does not exist.
#[test]
fn explain_documents_what_skiff_takes() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    // What building and keeping the documents costs (printed for docs/benchmarks.md).
    let rss = || {
        std::fs::read_to_string(format!("/proc/{}/status", s.pid().unwrap()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
            .unwrap()
    };
    let before = rss();
    let started = Instant::now();
    let o = k.run(&["explain", "deployment.spec.strategy"]);
    eprintln!(
        "first explain: {:?}; server RSS {before} before, {} after",
        started.elapsed(),
        rss()
    );
    assert_eq!(o.code, 0, "{o}");
    assert!(
        o.stdout
            .contains("The deployment strategy to use to replace existing pods with new ones."),
        "{o}"
    );
    assert!(o.stdout.contains("rollingUpdate"), "{o}");
    let o = k.run(&["explain", "pod.spec.hostUsers"]);
    assert_eq!(o.code, 1, "{o}");
    assert!(
        o.stderr.contains("field \"hostUsers\" does not exist"),
        "{o}"
    );
    let o = k.run(&["explain", "pod.spec", "--recursive"]);
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("containers"), "{o}");
    assert!(o.stdout.contains("terminationGracePeriodSeconds"), "{o}");
    assert!(!o.stdout.contains("hostUsers"), "{o}");
}
