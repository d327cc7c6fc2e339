//! The DaemonSet reconciler, on skiff's one node: one Pod `<ds>-<5 random>` per DaemonSet,
//! owned by it, bound to the node, labelled with its template's hash
//! (`controller-revision-hash`) and `pod-template-generation`, and given the tolerations
//! Kubernetes' DaemonSet controller adds (a node's not-ready, unreachable, pressure and
//! unschedulable taints do not keep a daemon away; network-unavailable only for hostNetwork
//! pods). One ControllerRevision per template (the StatefulSet's scheme, [`super::revisions`]),
//! which `kubectl rollout history|undo ds/X` reads and applies.
//!
//! `RollingUpdate` (the default): a pod of another revision is deleted, within `maxUnavailable`
//! (at least 1 of the one node: the pod is always replaced), and the new one is created once the
//! old is gone; with `maxSurge` (≥ 1 on one node) the new one is created beside the old one,
//! which is deleted once the new one is available (`minReadySeconds`) — unless the old pod
//! holds host ports the new one needs, which a Warning `FailedSurge` says; `OnDelete`: only a
//! pod deleted by someone else is replaced, from the current template. A failed pod is deleted and made again. Status counts
//! nodes, as Kubernetes': desired, current, ready, available (`minReadySeconds`), updated.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{execute_all, Event, Write};
use super::replicaset::{owned_pods, pod_available, pod_ready};
use super::revisions::{self, history, Scheme};
use crate::client::events;
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// The pod (and revision) label holding the template's hash.
pub const HASH_LABEL: &str = "controller-revision-hash";
const GENERATION_LABEL: &str = "pod-template-generation";

const REVISIONS: Scheme = Scheme {
    kind: "DaemonSet",
    hash_label: HASH_LABEL,
};

/// The node's conditions a daemon pod tolerates, as Kubernetes' controller adds them (`key`,
/// `effect`, only for hostNetwork pods).
const TOLERATIONS: &[(&str, &str, bool)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute", false),
    ("node.kubernetes.io/unreachable", "NoExecute", false),
    ("node.kubernetes.io/disk-pressure", "NoSchedule", false),
    ("node.kubernetes.io/memory-pressure", "NoSchedule", false),
    ("node.kubernetes.io/pid-pressure", "NoSchedule", false),
    ("node.kubernetes.io/unschedulable", "NoSchedule", false),
    ("node.kubernetes.io/network-unavailable", "NoSchedule", true),
];

/// One pass over a DaemonSet, from the Pods and ControllerRevisions it controls (as cached):
/// the revision of its template made (or raised, after a rollback); a failed pod deleted, extra
/// pods deleted (the oldest kept), a pod of an old revision replaced under `RollingUpdate`, a
/// missing pod created (`<ds>-<suffix()>`, bound to `node`) once no pod of the set is still
/// terminating — each with its Event; old revisions beyond `revisionHistoryLimit` deleted;
/// then the status (counted from the pods as given). Nothing for a set being deleted.
pub fn plan(
    ds: &Value,
    pods: &[Arc<Value>],
    revisions: &[Arc<Value>],
    now: jiff::Timestamp,
    node: &str,
    suffix: impl FnOnce() -> String,
) -> Vec<Write> {
    if meta::is_terminating(ds) {
        return Vec::new();
    }
    let (revs, write) = REVISIONS.update(ds, revisions);
    let mut writes: Vec<Write> = write.into_iter().collect();

    let mut live: Vec<&Value> = Vec::new();
    for p in pods.iter().filter(|p| !meta::is_terminating(p)) {
        if finished(p) {
            let message = format!(
                "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                meta::namespace(p),
                meta::name(p)
            );
            writes.push(event(ds, events::Type::Warning, "FailedDaemonPod", message));
            delete(ds, p, &mut writes);
        } else {
            live.push(p);
        }
    }
    if rolling(ds) && max_surge(ds) >= 1 {
        surge(ds, &live, pods, &revs.hash, now, &mut writes, node, suffix);
    } else {
        replace(ds, &live, pods, &revs.hash, &mut writes, node, suffix);
    }

    let mut live_revisions: BTreeSet<String> = pods
        .iter()
        .map(|p| format!("{}-{}", meta::name(ds), hash_of(p)))
        .collect();
    live_revisions.insert(revs.update.clone());
    let live_names: BTreeSet<&str> = live_revisions.iter().map(String::as_str).collect();
    writes.extend(history(ds, revisions, &live_names));
    writes.push(Write::UpdateStatus(
        ObjectKey::of(ds),
        status(ds, pods, &revs.hash, now),
    ));
    writes
}

/// The Delete of `pod` and its event.
fn delete(ds: &Value, pod: &Value, writes: &mut Vec<Write>) {
    writes.push(Write::Delete(ObjectKey::of(pod)));
    let message = format!("Deleted pod: {}", meta::name(pod));
    writes.push(event(ds, events::Type::Normal, "SuccessfulDelete", message));
}

fn event(ds: &Value, kind: events::Type, reason: &'static str, message: String) -> Write {
    Write::Event(Event {
        about: ds.clone(),
        kind,
        reason,
        message,
        source: events::Source::DaemonSetController,
    })
}

/// The Create of the set's pod at revision `hash` and its event.
fn create(ds: &Value, hash: &str, node: &str, suffix: &str, writes: &mut Vec<Write>) {
    let pod = new_pod(ds, hash, node, suffix);
    let message = format!("Created pod: {}", meta::name(&pod));
    writes.push(Write::Create(pod));
    writes.push(event(ds, events::Type::Normal, "SuccessfulCreate", message));
}

/// Oldest first (by creation, then name).
fn oldest_first(pods: &mut [&Value]) {
    pods.sort_by_key(|p| {
        (
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            meta::name(p).to_string(),
        )
    });
}

/// Without surge: one pod; more than one, the oldest stays; a pod of another revision is
/// deleted under RollingUpdate, and the pod is made once none of the set is terminating (a
/// replaced daemon's hostPort or host network is free first).
fn replace(
    ds: &Value,
    live: &[&Value],
    pods: &[Arc<Value>],
    hash: &str,
    writes: &mut Vec<Write>,
    node: &str,
    suffix: impl FnOnce() -> String,
) {
    let mut live = live.to_vec();
    oldest_first(&mut live);
    for p in live.iter().skip(1) {
        delete(ds, p, writes);
    }
    let terminating = pods.iter().any(|p| meta::is_terminating(p));
    match live.first() {
        None if !terminating && !writes.iter().any(|w| matches!(w, Write::Delete(_))) => {
            create(ds, hash, node, &suffix(), writes);
        }
        Some(p) if hash_of(p) != hash && rolling(ds) && max_unavailable(ds, 1) >= 1 => {
            delete(ds, p, writes)
        }
        _ => {}
    }
}

/// With `maxSurge` (at least 1 on the one node), as Kubernetes' controller surges: the new
/// revision's pod is made beside the old one, and the old one deleted once the new one is
/// available (`minReadySeconds`). One pod of each kind is kept (the oldest). A template whose
/// host ports the old pod holds cannot surge — upstream's surge pod would stay Pending on them
/// — so the set waits with a warning saying so, never taking the port from the running pod.
#[allow(clippy::too_many_arguments)]
fn surge(
    ds: &Value,
    live: &[&Value],
    pods: &[Arc<Value>],
    hash: &str,
    now: jiff::Timestamp,
    writes: &mut Vec<Write>,
    node: &str,
    suffix: impl FnOnce() -> String,
) {
    let (mut new, mut old): (Vec<&Value>, Vec<&Value>) =
        live.iter().partition(|p| hash_of(p) == hash);
    oldest_first(&mut new);
    oldest_first(&mut old);
    for p in new.iter().skip(1).chain(old.iter().skip(1)) {
        delete(ds, p, writes);
    }
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    match (old.first(), new.first()) {
        (Some(o), Some(n)) if pod_available(n, min_ready, now) => delete(ds, o, writes),
        (Some(o), None) => {
            let shared = shared_host_ports(&o["spec"], &ds["spec"]["template"]["spec"]);
            if shared.is_empty() {
                create(ds, hash, node, &suffix(), writes);
            } else {
                let message = format!(
                    "cannot surge: the running pod {} holds host port(s) {} that the new pod needs; set maxSurge 0 and maxUnavailable 1 to replace it instead",
                    meta::name(o),
                    shared.join(", ")
                );
                writes.push(event(ds, events::Type::Warning, "FailedSurge", message));
            }
        }
        (None, None)
            if !pods.iter().any(|p| meta::is_terminating(p))
                && !writes.iter().any(|w| matches!(w, Write::Delete(_))) =>
        {
            create(ds, hash, node, &suffix(), writes);
        }
        _ => {}
    }
}

/// The host ports (`protocol/port`) two pod specs would both bind: hostPorts (addresses
/// meeting: the same, or one of them every address) and, for hostNetwork pods, container ports.
fn shared_host_ports(a: &Value, b: &Value) -> Vec<String> {
    fn ports(spec: &Value) -> Vec<(String, Option<String>, u64)> {
        let host_network = spec["hostNetwork"] == true;
        let mut out = Vec::new();
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                for p in c["ports"].as_array().into_iter().flatten() {
                    let port = match p["hostPort"].as_u64().filter(|h| *h != 0) {
                        Some(h) => h,
                        None if host_network => p["containerPort"].as_u64().unwrap_or(0),
                        None => continue,
                    };
                    let ip = p["hostIP"]
                        .as_str()
                        .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0")
                        .map(String::from);
                    let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
                    out.push((proto, ip, port));
                }
            }
        }
        out
    }
    let theirs = ports(a);
    let mut shared: Vec<String> = ports(b)
        .into_iter()
        .filter(|(proto, ip, port)| {
            theirs.iter().any(|(p2, ip2, port2)| {
                p2 == proto && port2 == port && (ip.is_none() || ip2.is_none() || ip == ip2)
            })
        })
        .map(|(proto, _, port)| format!("{proto}/{port}"))
        .collect();
    shared.dedup();
    shared
}

/// Reconciles one DaemonSet: performs its plan, in order.
pub async fn reconcile(view: &View, ds: &Value) -> Result<(), WriteError> {
    if meta::is_terminating(ds) {
        return Ok(());
    }
    let ns = meta::namespace(ds);
    let pods = owned_pods(view, ns, meta::uid(ds));
    let revisions: Vec<_> = view
        .list("ControllerRevision", Some(ns))
        .into_iter()
        .filter(|r| meta::controller_uid(r) == Some(meta::uid(ds)))
        .collect();
    let writes = plan(
        ds,
        &pods,
        &revisions,
        jiff::Timestamp::now(),
        crate::model::node::name(),
        meta::random_suffix,
    );
    execute_all(view, writes).await
}

fn hash_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][HASH_LABEL]
        .as_str()
        .unwrap_or_default()
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn rolling(ds: &Value) -> bool {
    ds["spec"]["updateStrategy"]["type"] != "OnDelete"
}

/// `maxUnavailable` (default 1) against `nodes`; a percentage rounds up, as Kubernetes'
/// DaemonSet controller rounds it.
fn max_unavailable(ds: &Value, nodes: usize) -> usize {
    match &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] {
        Value::String(p) => {
            let pct: usize = p.trim_end_matches('%').parse().unwrap_or(0);
            (pct * nodes).div_ceil(100)
        }
        v => v.as_u64().unwrap_or(1) as usize,
    }
}

/// `maxSurge` (default 0) against one node; a percentage rounds up, as Kubernetes'.
fn max_surge(ds: &Value) -> usize {
    match &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] {
        Value::String(p) => p
            .trim_end_matches('%')
            .parse::<usize>()
            .unwrap_or(0)
            .div_ceil(100),
        v => v.as_u64().unwrap_or(0) as usize,
    }
}

/// The set's pod from its current template (hash `hash`), named `<ds>-<suffix>`, bound to
/// `node`, with the daemon tolerations added.
fn new_pod(ds: &Value, hash: &str, node: &str, suffix: &str) -> Value {
    let template = &ds["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[HASH_LABEL] = json!(hash);
    let generation = ds["metadata"]["generation"].as_i64().unwrap_or(1);
    labels[GENERATION_LABEL] = json!(generation.to_string());
    let mut metadata = json!({
        "name": format!("{}-{suffix}", meta::name(ds)),
        "namespace": meta::namespace(ds),
        "labels": labels,
        "ownerReferences": [revisions::owner_reference(ds, "DaemonSet")],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(node);
    add_tolerations(&mut spec);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// The daemon tolerations the pod spec does not already have (same key and effect).
fn add_tolerations(spec: &mut Value) {
    let host_network = spec["hostNetwork"] == true;
    if !spec["tolerations"].is_array() {
        spec["tolerations"] = json!([]);
    }
    let list = spec["tolerations"].as_array_mut().expect("just made");
    for (key, effect, host_only) in TOLERATIONS {
        if *host_only && !host_network {
            continue;
        }
        if !list
            .iter()
            .any(|t| t["key"] == *key && t["effect"] == *effect)
        {
            list.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
}

/// The set's status, counted per node (one) from its pods as given: as Kubernetes counts
/// it, from the node's oldest pod (while a surge pod starts, the old one is what the node runs,
/// so `kubectl rollout status` waits until it is gone).
fn status(ds: &Value, pods: &[Arc<Value>], hash: &str, now: jiff::Timestamp) -> Value {
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let mut live: Vec<&Value> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| !meta::is_terminating(p) && !finished(p))
        .collect();
    oldest_first(&mut live);
    let oldest = live.first();
    let any = |f: &dyn Fn(&Value) -> bool| usize::from(oldest.is_some_and(|p| f(p)));
    let available = any(&|p| pod_available(p, min_ready, now));
    json!({
        "desiredNumberScheduled": 1,
        "currentNumberScheduled": usize::from(!live.is_empty()),
        "numberMisscheduled": 0,
        "numberReady": any(&|p| p["status"]["phase"] == "Running" && pod_ready(p)),
        "numberAvailable": available,
        "numberUnavailable": 1 - available,
        "updatedNumberScheduled": any(&|p| hash_of(p) == hash),
        "observedGeneration": ds["metadata"]["generation"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn ds(image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "agent"}, "annotations": {"a": "b"}},
              "spec": {"containers": [{"name": "agent", "image": image}]}}}})
    }

    fn hash(ds: &Value) -> String {
        crate::controllers::deployment::pod_template_hash(&ds["spec"]["template"])
    }

    fn revision(ds: &Value, n: i64) -> Arc<Value> {
        let h = hash(ds);
        let mut r = REVISIONS.new_revision(ds, &format!("agent-{h}"), &h, n);
        r["metadata"]["uid"] = json!(format!("rev-{n}"));
        Arc::new(r)
    }

    /// The set's pod `name` from `ds`'s template, Running; Ready since `ready_since`.
    fn pod(ds: &Value, name: &str, created: &str, ready_since: Option<&str>) -> Arc<Value> {
        let mut p = new_pod(ds, &hash(ds), "node1", name.trim_start_matches("agent-"));
        p["metadata"]["creationTimestamp"] = json!(created);
        let ready = match ready_since {
            Some(t) => json!({"type": "Ready", "status": "True", "lastTransitionTime": t}),
            None => json!({"type": "Ready", "status": "False"}),
        };
        p["status"] = json!({"phase": "Running", "conditions": [ready]});
        Arc::new(p)
    }

    fn run(ds: &Value, pods: &[Arc<Value>], revisions: &[Arc<Value>]) -> Vec<Write> {
        plan(ds, pods, revisions, now(), "node1", || "xyz12".into())
    }

    fn status_of(writes: &[Write]) -> &Value {
        match writes.last() {
            Some(Write::UpdateStatus(_, s)) => s,
            w => panic!("no status last: {w:?}"),
        }
    }

    fn created(writes: &[Write]) -> &Value {
        writes
            .iter()
            .find_map(|w| match w {
                Write::Create(o) if o["kind"] == "Pod" => Some(o),
                _ => None,
            })
            .expect("a pod created")
    }

    #[test]
    fn a_new_set_makes_its_revision_and_one_pod_on_the_node() {
        let d = ds("agent:1");
        let w = run(&d, &[], &[]);
        let h = hash(&d);
        assert_eq!(
            describe(&w),
            [
                format!("create ControllerRevision default/agent-{h}"),
                "create Pod default/agent-xyz12".to_string(),
                "event SuccessfulCreate: Created pod: agent-xyz12".to_string(),
                "status DaemonSet default/agent".to_string(),
            ]
        );
        let p = created(&w);
        assert_eq!(p["spec"]["nodeName"], "node1");
        assert_eq!(p["metadata"]["labels"]["app"], "agent");
        assert_eq!(p["metadata"]["labels"][HASH_LABEL], h.as_str());
        assert_eq!(p["metadata"]["labels"][GENERATION_LABEL], "2");
        assert_eq!(p["metadata"]["annotations"]["a"], "b");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("DaemonSet"), &json!("ds-uid"), &json!(true))
        );
        let keys: Vec<&str> = p["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["operator"], "Exists");
                t["key"].as_str().unwrap()
            })
            .collect();
        assert!(keys.contains(&"node.kubernetes.io/not-ready"));
        assert!(keys.contains(&"node.kubernetes.io/unschedulable"));
        assert!(!keys.contains(&"node.kubernetes.io/network-unavailable"));
        let s = status_of(&w);
        assert_eq!(s["desiredNumberScheduled"], 1);
        assert_eq!(s["currentNumberScheduled"], 0);
        assert_eq!(s["numberUnavailable"], 1);
        assert_eq!(s["observedGeneration"], 2);
    }

    #[test]
    fn host_network_pods_tolerate_network_unavailable_and_own_tolerations_stay() {
        let mut d = ds("agent:1");
        d["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        d["spec"]["template"]["spec"]["tolerations"] = json!([{"key":
            "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 30}]);
        let w = run(&d, &[], &[]);
        let ts = created(&w)["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(ts.len(), TOLERATIONS.len());
        assert_eq!(ts[0]["tolerationSeconds"], 30);
        assert!(ts
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/network-unavailable"));
    }

    #[test]
    fn a_ready_pod_is_counted_and_nothing_else_happens() {
        let d = ds("agent:1");
        let p = pod(
            &d,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        );
        let w = run(&d, &[p], &[revision(&d, 1)]);
        assert_eq!(describe(&w), ["status DaemonSet default/agent"]);
        let s = status_of(&w);
        for f in [
            "currentNumberScheduled",
            "numberReady",
            "numberAvailable",
            "updatedNumberScheduled",
        ] {
            assert_eq!(s[f], 1, "{f}");
        }
        assert_eq!(s["numberUnavailable"], 0);
    }

    #[test]
    fn min_ready_seconds_holds_availability_back() {
        let mut d = ds("agent:1");
        d["spec"]["minReadySeconds"] = json!(30);
        let p = pod(
            &d,
            "agent-aaaaa",
            "2026-01-01T11:59:00Z",
            Some("2026-01-01T11:59:50Z"),
        );
        let s = status_of(&run(&d, &[p], &[revision(&d, 1)])).clone();
        assert_eq!(
            (&s["numberReady"], &s["numberAvailable"]),
            (&json!(1), &json!(0))
        );
    }

    #[test]
    fn a_template_change_replaces_the_pod_after_the_old_one_is_gone() {
        let old = ds("agent:1");
        let new = ds("agent:2");
        let p = pod(
            &old,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        );
        let revs = [revision(&old, 1)];
        let w = run(&new, std::slice::from_ref(&p), &revs);
        assert_eq!(
            describe(&w),
            [
                format!("create ControllerRevision default/agent-{}", hash(&new)),
                "delete Pod default/agent-aaaaa".to_string(),
                "event SuccessfulDelete: Deleted pod: agent-aaaaa".to_string(),
                "status DaemonSet default/agent".to_string(),
            ]
        );
        assert_eq!(status_of(&w)["updatedNumberScheduled"], 0);
        // Terminating: no new pod yet.
        let mut going = (*p).clone();
        going["metadata"]["deletionTimestamp"] = json!(NOW);
        let revs = [revision(&old, 1), revision(&new, 2)];
        let w = run(&new, &[Arc::new(going)], &revs);
        assert_eq!(describe(&w), ["status DaemonSet default/agent"]);
        // Gone: the new one, at the new revision.
        let w = run(&new, &[], &revs);
        assert_eq!(
            created(&w)["metadata"]["labels"][HASH_LABEL],
            hash(&new).as_str()
        );
    }

    /// The set's pod `agent-aaaaa` from `ds`'s template, Ready for an hour.
    fn serving(ds: &Value) -> Arc<Value> {
        pod(
            ds,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        )
    }

    fn surging(image: &str) -> Value {
        let mut d = ds(image);
        d["spec"]["minReadySeconds"] = json!(10);
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxSurge": 1, "maxUnavailable": 0});
        d
    }

    #[test]
    fn max_surge_starts_the_new_pod_beside_the_old_and_deletes_the_old_once_available() {
        let old = surging("agent:1");
        let new = surging("agent:2");
        let revs = [revision(&old, 1), revision(&new, 2)];
        let a = serving(&old);
        // The template changed: the new pod beside the old one, nothing deleted.
        let w = run(&new, std::slice::from_ref(&a), &revs);
        assert_eq!(
            describe(&w),
            [
                "create Pod default/agent-xyz12",
                "event SuccessfulCreate: Created pod: agent-xyz12",
                "status DaemonSet default/agent",
            ]
        );
        assert_eq!(
            created(&w)["metadata"]["labels"][HASH_LABEL],
            hash(&new).as_str()
        );
        // The node still runs the old pod: not updated yet (rollout status waits).
        assert_eq!(status_of(&w)["updatedNumberScheduled"], 0);
        // The new one ready for 5 s of minReadySeconds 10: both stay.
        let b = pod(
            &new,
            "agent-bbbbb",
            "2026-01-01T11:59:50Z",
            Some("2026-01-01T11:59:55Z"),
        );
        let w = run(&new, &[a.clone(), b.clone()], &revs);
        assert_eq!(describe(&w), ["status DaemonSet default/agent"]);
        assert_eq!(status_of(&w)["numberAvailable"], 1, "the old pod serves");
        // Available: the old one goes.
        let b = pod(
            &new,
            "agent-bbbbb",
            "2026-01-01T11:59:40Z",
            Some("2026-01-01T11:59:45Z"),
        );
        let w = run(&new, &[a, b.clone()], &revs);
        assert_eq!(
            describe(&w),
            [
                "delete Pod default/agent-aaaaa",
                "event SuccessfulDelete: Deleted pod: agent-aaaaa",
                "status DaemonSet default/agent",
            ]
        );
        // Done: only the new pod, counted updated.
        let w = run(&new, &[b], &revs);
        assert_eq!(describe(&w), ["status DaemonSet default/agent"]);
        assert_eq!(status_of(&w)["updatedNumberScheduled"], 1);
    }

    #[test]
    fn a_template_whose_host_port_the_old_pod_holds_does_not_surge_and_says_why() {
        let mut old = surging("agent:1");
        old["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 9100, "hostPort": 9100}]);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
        let revs = [revision(&old, 1), revision(&new, 2)];
        let w = run(&new, &[serving(&old)], &revs);
        assert_eq!(
            describe(&w),
            [
                "event FailedSurge: cannot surge: the running pod agent-aaaaa holds host port(s) TCP/9100 that the new pod needs; set maxSurge 0 and maxUnavailable 1 to replace it instead",
                "status DaemonSet default/agent",
            ]
        );
        // hostNetwork: container ports are host ports.
        let mut hn = surging("agent:1");
        hn["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        hn["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9100}]);
        assert_eq!(
            shared_host_ports(
                &hn["spec"]["template"]["spec"],
                &hn["spec"]["template"]["spec"]
            ),
            ["TCP/9100"]
        );
        // Another address, or another protocol: no conflict.
        let on = |ip: &str, proto: &str| json!({"containers": [{"ports": [{"containerPort": 1, "hostPort": 53, "hostIP": ip, "protocol": proto}]}]});
        assert!(shared_host_ports(&on("127.0.0.2", "UDP"), &on("127.0.0.3", "UDP")).is_empty());
        assert!(shared_host_ports(&on("127.0.0.2", "UDP"), &on("127.0.0.2", "TCP")).is_empty());
        assert_eq!(
            shared_host_ports(&on("0.0.0.0", "UDP"), &on("127.0.0.2", "UDP")),
            ["UDP/53"]
        );
    }

    #[test]
    fn on_delete_keeps_the_old_pod_until_someone_deletes_it() {
        let old = ds("agent:1");
        let mut new = ds("agent:2");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let p = pod(
            &old,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        );
        let revs = [revision(&old, 1), revision(&new, 2)];
        let w = run(&new, &[p], &revs);
        assert_eq!(describe(&w), ["status DaemonSet default/agent"]);
        assert_eq!(status_of(&w)["updatedNumberScheduled"], 0);
        let w = run(&new, &[], &revs);
        assert_eq!(
            created(&w)["metadata"]["labels"][HASH_LABEL],
            hash(&new).as_str()
        );
    }

    #[test]
    fn a_failed_pod_is_deleted_and_extra_pods_go_newest_first() {
        let d = ds("agent:1");
        let mut failed = (*pod(&d, "agent-fffff", "2026-01-01T11:00:00Z", None)).clone();
        failed["status"]["phase"] = json!("Failed");
        let w = run(&d, &[Arc::new(failed)], &[revision(&d, 1)]);
        assert_eq!(
            describe(&w),
            [
                "event FailedDaemonPod: Found failed daemon pod default/agent-fffff on node node1, will try to kill it",
                "delete Pod default/agent-fffff",
                "event SuccessfulDelete: Deleted pod: agent-fffff",
                "status DaemonSet default/agent",
            ]
        );
        let a = pod(&d, "agent-aaaaa", "2026-01-01T11:00:00Z", None);
        let b = pod(&d, "agent-bbbbb", "2026-01-01T11:30:00Z", None);
        let w = run(&d, &[b, a], &[revision(&d, 1)]);
        assert_eq!(
            describe(&w)[..2],
            [
                "delete Pod default/agent-bbbbb",
                "event SuccessfulDelete: Deleted pod: agent-bbbbb"
            ]
        );
    }

    #[test]
    fn rollback_raises_the_old_revision_and_history_is_limited() {
        let one = ds("agent:1");
        let two = ds("agent:2");
        let p = pod(
            &two,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        );
        let w = run(&one, &[p], &[revision(&one, 1), revision(&two, 2)]);
        match &w[0] {
            Write::Update(r) => {
                assert_eq!(meta::name(r), format!("agent-{}", hash(&one)));
                assert_eq!(r["revision"], 3);
            }
            w => panic!("{w:?}"),
        }
        let mut limited = ds("agent:3");
        limited["spec"]["revisionHistoryLimit"] = json!(0);
        let p = pod(
            &two,
            "agent-aaaaa",
            "2026-01-01T11:00:00Z",
            Some("2026-01-01T11:00:05Z"),
        );
        let w = run(&limited, &[p], &[revision(&one, 1), revision(&two, 2)]);
        let d = describe(&w);
        assert!(
            d.contains(&format!(
                "delete ControllerRevision default/agent-{}",
                hash(&one)
            )),
            "{d:?}"
        );
        assert!(
            !d.contains(&format!(
                "delete ControllerRevision default/agent-{}",
                hash(&two)
            )),
            "the pod's revision stays: {d:?}"
        );
    }

    #[test]
    fn max_unavailable_rounds_up_on_one_node() {
        let mut d = ds("agent:1");
        assert_eq!(max_unavailable(&d, 1), 1);
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("10%");
        assert_eq!(max_unavailable(&d, 1), 1);
        d["spec"]["updateStrategy"]["rollingUpdate"] = json!({});
        assert_eq!(max_unavailable(&d, 1), 1);
    }

    #[test]
    fn a_set_being_deleted_is_left_alone() {
        let mut d = ds("agent:1");
        d["metadata"]["deletionTimestamp"] = json!(NOW);
        assert!(run(&d, &[], &[]).is_empty());
    }
}
