//! DaemonSets (issue 12, part 3) with the real kubectl: one pod `<ds>-<5 random>` on the node,
//! owned by the set and carrying the daemon tolerations; `kubectl get ds` columns and
//! `describe`; a template change replaces the pod (RollingUpdate); `kubectl rollout
//! status|history|undo|restart ds/X` through ControllerRevisions; OnDelete leaves the pod until
//! it is deleted; deleting the set removes its pod and revisions.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::kubectl::{parse_tables, server_with_images, Kubectl};
use skiff_e2e::{wait_for, wait_until, Server};

const IMAGE: &str = "skiff-e2e-ds:v1";

fn agent_yaml(version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  minReadySeconds: 1
  selector:
    matchLabels: {{app: agent}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: {IMAGE}
        imagePullPolicy: Never
        env:
        - {{name: VERSION, value: \"{version}\"}}
        command: [\"sh\", \"-c\", \"echo $VERSION > /www/index.html; exec httpd -f -p 8080 -h /www\"]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
"
    )
}

/// The set's pods that are not going away.
fn pods(k: &Kubectl) -> Vec<Value> {
    k.get_json(&["pods", "-l", "app=agent"])
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rollout_ok(s: &mut Server, k: &Kubectl) -> String {
    let o = k.run(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    s.assert_running();
    assert!(
        o.ok(),
        "kubectl rollout status ds/agent: {o}\n{}",
        s.log_tail(30)
    );
    assert!(
        o.stdout
            .contains("daemon set \"agent\" successfully rolled out"),
        "{o}"
    );
    o.stdout
}

/// The one pod, once it is the only one and not `not` (a replaced pod's name).
fn the_pod(k: &Kubectl, not: Option<&str>) -> Value {
    wait_for(Duration::from_secs(90), || {
        let ps = pods(k);
        (ps.len() == 1 && not.is_none_or(|n| name(&ps[0]) != n)).then(|| ps[0].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "one pod (not {not:?}): {}",
            k.run(&["get", "pods", "-o", "wide"])
        )
    })
}

/// What the pod's web server answers (from inside the pod, on its loopback).
fn answer(k: &Kubectl, pod: &str) -> String {
    wait_for(Duration::from_secs(30), || {
        let o = k.run(&["exec", pod, "--", "wget", "-qO-", "http://127.0.0.1:8080/"]);
        o.ok().then(|| o.stdout.trim().to_string())
    })
    .unwrap_or_else(|| panic!("no answer from {pod}"))
}

#[test]
fn daemonset_runs_one_pod_rolls_back_restarts_and_deletes() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    k.apply(&agent_yaml("one"), &[]);
    rollout_ok(&mut s, &k);

    // One pod <ds>-<5 random>, owned by the set, with the daemon tolerations.
    let first = the_pod(&k, None);
    let first_name = name(&first);
    let suffix = first_name
        .strip_prefix("agent-")
        .expect("named after the set");
    assert!(
        suffix.len() == 5 && suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "{first_name}"
    );
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DaemonSet");
    assert_eq!(owner["name"], "agent");
    assert_eq!(owner["controller"], true);
    let tolerations = first["spec"]["tolerations"].to_string();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(tolerations.contains(key), "{key}: {tolerations}");
    }
    assert!(first["spec"]["nodeName"].is_string(), "bound to the node");
    assert_eq!(answer(&k, &first_name), "one");

    // kubectl get ds: kubectl 1.32's columns.
    let out = k.ok(&["get", "ds"]);
    let t = &parse_tables(&out)[0];
    assert_eq!(
        t.columns,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ],
        "{out}"
    );
    let row = t.row("agent").expect("the agent row");
    for col in ["DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE"] {
        assert_eq!(row[col], "1", "{col}: {out}");
    }
    assert_eq!(row["NODE SELECTOR"], "<none>");
    let ds = k.get_json(&["ds", "agent"]).expect("the set");
    assert_eq!(
        ds["status"]["observedGeneration"],
        ds["metadata"]["generation"]
    );
    assert_eq!(ds["status"]["numberAvailable"], 1);
    let d = k.ok(&["describe", "ds", "agent"]);
    for needle in [
        "Desired Number of Nodes Scheduled: 1",
        "Number of Nodes Scheduled with Up-to-date Pods: 1",
        "Number of Nodes Scheduled with Available Pods: 1",
        "1 Running",
        "SuccessfulCreate",
        &format!("Created pod: {first_name}"),
    ] {
        assert!(d.contains(needle), "describe ds lacks {needle:?}:\n{d}");
    }

    // A template change: the pod is replaced by one of the new revision.
    k.apply(&agent_yaml("two"), &[]);
    let second = the_pod(&k, Some(&first_name));
    rollout_ok(&mut s, &k);
    let second_name = name(&second);
    assert_eq!(answer(&k, &second_name), "two");
    let history = k.ok(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("REVISION") && history.contains('1') && history.contains('2'),
        "{history}"
    );
    let revs = k.ok(&["get", "controllerrevisions"]);
    assert!(revs.contains("daemonset.apps/agent"), "{revs}");

    // Undo: back to the first template, in a new pod.
    let undo = k.run(&["rollout", "undo", "ds/agent"]);
    assert!(undo.ok() && undo.stdout.contains("rolled back"), "{undo}");
    let third = the_pod(&k, Some(&second_name));
    rollout_ok(&mut s, &k);
    assert_eq!(answer(&k, &name(&third)), "one");
    assert_eq!(
        third["metadata"]["labels"]["controller-revision-hash"],
        first["metadata"]["labels"]["controller-revision-hash"]
    );

    // Restart: the same template, a new pod.
    let restart = k.run(&["rollout", "restart", "ds/agent"]);
    assert!(
        restart.ok() && restart.stdout.contains("restarted"),
        "{restart}"
    );
    let fourth = the_pod(&k, Some(&name(&third)));
    rollout_ok(&mut s, &k);
    assert_eq!(answer(&k, &name(&fourth)), "one");

    // OnDelete: a template change leaves the pod alone until someone deletes it.
    let on_delete = agent_yaml("three").replace(
        "  minReadySeconds: 1\n",
        "  minReadySeconds: 1\n  updateStrategy: {type: OnDelete}\n",
    );
    k.apply(&on_delete, &[]);
    std::thread::sleep(Duration::from_secs(3));
    let kept = the_pod(&k, None);
    assert_eq!(name(&kept), name(&fourth), "OnDelete replaced the pod");
    assert_eq!(answer(&k, &name(&kept)), "one");
    let status = k.run(&["rollout", "status", "ds/agent", "--timeout=5s"]);
    assert!(
        !status.ok() && status.stderr.contains("only available for RollingUpdate"),
        "{status}"
    );
    k.ok(&["delete", "pod", &name(&kept)]);
    let fifth = the_pod(&k, Some(&name(&kept)));
    assert_eq!(answer(&k, &name(&fifth)), "three");

    // Deleting the set removes its pod and its revisions.
    k.ok(&["delete", "ds", "agent"]);
    let gone = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        pods(&k).is_empty() && k.names(&["controllerrevisions"]).is_empty()
    });
    assert!(
        gone,
        "left after deleting the set: {}",
        k.run(&["get", "pods,controllerrevisions"])
    );
}

#[test]
fn a_daemonset_surge_beside_an_unavailable_budget_is_refused_by_name() {
    let s = server_with_images(&[]);
    let k = Kubectl::admin(&s);
    // maxSurge with maxUnavailable left at its default 1: Kubernetes' own refusal.
    let yaml = agent_yaml("one").replace(
        "  minReadySeconds: 1\n",
        "  updateStrategy:\n    rollingUpdate: {maxSurge: 1}\n",
    );
    let o = k.run_stdin(&["apply", "-f", "-"], &yaml);
    assert!(!o.ok(), "{o}");
    assert!(
        o.stderr
            .contains("spec.updateStrategy.rollingUpdate.maxSurge")
            && o.stderr
                .contains("may not be set when maxUnavailable is non-zero"),
        "{o}"
    );
    assert!(k.get_json(&["ds", "agent"]).is_none(), "nothing applied");
}

/// maxSurge 1: the new pod starts beside the old one, which stays Ready until the new one is
/// available (minReadySeconds 3), then goes.
#[test]
fn a_surging_daemonset_starts_the_new_pod_before_the_old_one_goes() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    let surging = |v: &str| {
        agent_yaml(v).replace(
            "  minReadySeconds: 1\n",
            "  minReadySeconds: 3\n  updateStrategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n",
        )
    };
    k.apply(&surging("one"), &[]);
    rollout_ok(&mut s, &k);
    let old = name(&the_pod(&k, None));
    k.apply(&surging("two"), &[]);
    // Two pods at once: the old one still Ready while the new one runs.
    let both = wait_for(Duration::from_secs(60), || {
        let ps = pods(&k);
        let ready = |p: &Value| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        };
        let old_ready = ps.iter().any(|p| name(p) == old && ready(p));
        let new_running = ps
            .iter()
            .any(|p| name(p) != old && p["status"]["phase"] == "Running");
        (ps.len() == 2 && old_ready && new_running).then_some(ps)
    });
    assert!(
        both.is_some(),
        "no moment with both pods: {}",
        k.run(&["get", "pods", "-o", "wide"])
    );
    rollout_ok(&mut s, &k);
    let new = the_pod(&k, Some(&old));
    assert_eq!(answer(&k, &name(&new)), "two");
}

/// From the manifests folder: the set's pod runs; the file removed, the set and its pod go.
#[test]
fn a_daemonset_from_the_manifests_folder() {
    let mut s = server_with_images(&[IMAGE]);
    let k = Kubectl::admin(&s);
    s.write_manifest("agent.yaml", &agent_yaml("folder"));
    let pod = the_pod(&k, None);
    s.assert_running();
    assert_eq!(answer(&k, &name(&pod)), "folder");
    s.remove_manifest("agent.yaml");
    let gone = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        k.get_json(&["ds", "agent"]).is_none() && pods(&k).is_empty()
    });
    assert!(gone, "{}", k.run(&["get", "ds,pods"]));
}
