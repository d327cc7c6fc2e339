//! The ReplicaSet reconciler: keeps `spec.replicas` Pods from the template alive, each owned by
//! the ReplicaSet (`ownerReferences`, `controller: true`), and reports their counts in `status`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::plan::{execute_all, Event, Write};
use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::ObjectKey;

/// Whether a Pod's `Ready` condition is true.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Whether a Pod has been ready for at least `min_ready_seconds`.
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    since.is_some_and(|t| now.as_second() - t.as_second() >= min_ready_seconds)
}

fn pod_active(pod: &Value) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    !meta::is_terminating(pod) && phase != "Succeeded" && phase != "Failed"
}

/// The Pods a controller owns, by owner uid.
pub fn owned_pods(view: &View, namespace: &str, owner_uid: &str) -> Vec<Arc<Value>> {
    view.list("Pod", Some(namespace))
        .into_iter()
        .filter(|p| meta::controller_uid(p) == Some(owner_uid))
        .collect()
}

/// A new Pod from a ReplicaSet's template, named `<rs>-<suffix>` (the scheduler binds it).
fn new_pod(rs: &Value, suffix: &str) -> Value {
    let template = &rs["spec"]["template"];
    let name = format!("{}-{}", meta::name(rs), suffix);
    let mut metadata = json!({
        "name": name,
        "namespace": meta::namespace(rs),
        "labels": template["metadata"]["labels"],
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": meta::name(rs),
            "uid": meta::uid(rs),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    let spec = template["spec"].clone();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// One pass over a ReplicaSet, from the Pods it controls (as cached): Pods created (named
/// `<rs>-<suffix()>`) or deleted — not ready before ready, newest before
/// oldest — to reach `spec.replicas`, each write followed by its Event; or, once the count is
/// right, the status (counts as of `now`). Nothing for a ReplicaSet being deleted.
pub fn plan(
    rs: &Value,
    pods: &[Arc<Value>],
    now: jiff::Timestamp,
    mut suffix: impl FnMut() -> String,
) -> Vec<Write> {
    if meta::is_terminating(rs) {
        return Vec::new();
    }
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut active: Vec<&Arc<Value>> = pods.iter().filter(|p| pod_active(p)).collect();
    let event = |reason, message| {
        Write::Event(Event {
            about: rs.clone(),
            kind: crate::client::events::Type::Normal,
            reason,
            message,
            source: crate::client::events::Source::ReplicaSetController,
        })
    };
    let mut writes = Vec::new();
    if active.len() < want {
        for _ in active.len()..want {
            let pod = new_pod(rs, &suffix());
            let message = format!("Created pod: {}", meta::name(&pod));
            writes.push(Write::Create(pod));
            writes.push(event("SuccessfulCreate", message));
        }
    } else if active.len() > want {
        // Delete the least useful first: not ready before ready, newest before oldest.
        active.sort_by_key(|p| {
            (
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        });
        for p in &active[..active.len() - want] {
            writes.push(Write::Delete(ObjectKey::of(p)));
            writes.push(event(
                "SuccessfulDelete",
                format!("Deleted pod: {}", meta::name(p)),
            ));
        }
    }
    if !writes.is_empty() {
        // The status follows once the caches show the change (the next pass).
        return writes;
    }
    vec![Write::UpdateStatus(
        ObjectKey::of(rs),
        status(rs, pods, now),
    )]
}

/// A ReplicaSet's status, from the Pods it controls.
fn status(rs: &Value, pods: &[Arc<Value>], now: jiff::Timestamp) -> Value {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let active: Vec<_> = pods.iter().filter(|p| pod_active(p)).collect();
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count();
    json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    })
}

/// Reconciles one ReplicaSet: performs its plan, in order.
pub async fn reconcile(view: &View, rs: &Value) -> Result<(), WriteError> {
    if meta::is_terminating(rs) {
        return Ok(());
    }
    let pods = owned_pods(view, meta::namespace(rs), meta::uid(rs));
    let writes = plan(rs, &pods, jiff::Timestamp::now(), meta::random_suffix);
    execute_all(view, writes).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::plan::describe;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn replicaset(replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
          "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
              "spec": {"containers": [{"name": "web", "image": "demo:1"}]}}}})
    }

    /// A Pod of `web-abc`, created at `created`, Running; ready since `ready_since` if given.
    fn pod(name: &str, created: &str, ready_since: Option<&str>) -> Arc<Value> {
        let conditions = match ready_since {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([{"type": "Ready", "status": "False"}]),
        };
        Arc::new(json!({"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
              "controller": true}]},
          "status": {"phase": "Running", "conditions": conditions}}))
    }

    fn with(p: &Arc<Value>, f: impl FnOnce(&mut Value)) -> Arc<Value> {
        let mut p = (**p).clone();
        f(&mut p);
        Arc::new(p)
    }

    /// Suffixes `aaaaa`, `bbbbb`, … in turn.
    fn suffixes() -> impl FnMut() -> String {
        let mut next = b'a';
        move || {
            let s = (next as char).to_string().repeat(5);
            next += 1;
            s
        }
    }

    #[test]
    fn missing_pods_are_created_from_the_template_each_with_its_event() {
        let rs = replicaset(3);
        let running = pod("web-abc-old", "2026-01-01T10:00:00Z", Some(NOW));
        let failed = with(&running, |p| {
            p["metadata"]["name"] = json!("web-abc-failed");
            p["status"]["phase"] = json!("Failed");
        });
        let writes = plan(&rs, &[running, failed], now(), suffixes());
        assert_eq!(
            describe(&writes),
            [
                "create Pod default/web-abc-aaaaa",
                "event SuccessfulCreate: Created pod: web-abc-aaaaa",
                "create Pod default/web-abc-bbbbb",
                "event SuccessfulCreate: Created pod: web-abc-bbbbb",
            ]
        );
        let Write::Create(p) = &writes[0] else {
            unreachable!()
        };
        assert!(p["spec"]["nodeName"].is_null(), "the scheduler binds it");
        assert_eq!(p["spec"]["containers"][0]["image"], "demo:1");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["annotations"]["note"], "x");
        assert_eq!(meta::controller_uid(p), Some("rs-uid"));
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], "web-abc");
    }

    #[test]
    fn terminating_pods_are_replaced() {
        let gone = with(&pod("web-abc-x", "2026-01-01T10:00:00Z", Some(NOW)), |p| {
            p["metadata"]["deletionTimestamp"] = json!(NOW);
        });
        let writes = plan(&replicaset(1), &[gone], now(), suffixes());
        assert_eq!(describe(&writes)[0], "create Pod default/web-abc-aaaaa");
    }

    #[test]
    fn surplus_pods_go_not_ready_first_then_newest_first() {
        let pods = [
            pod("ready-old", "2026-01-01T09:00:00Z", Some(NOW)),
            pod("ready-new", "2026-01-01T11:00:00Z", Some(NOW)),
            pod("unready-old", "2026-01-01T09:00:00Z", None),
            pod("unready-new", "2026-01-01T11:00:00Z", None),
        ];
        let writes = plan(&replicaset(1), &pods, now(), suffixes());
        assert_eq!(
            describe(&writes),
            [
                "delete Pod default/unready-new",
                "event SuccessfulDelete: Deleted pod: unready-new",
                "delete Pod default/unready-old",
                "event SuccessfulDelete: Deleted pod: unready-old",
                "delete Pod default/ready-new",
                "event SuccessfulDelete: Deleted pod: ready-new",
            ]
        );
    }

    #[test]
    fn at_the_count_the_status_counts_active_ready_and_available_pods() {
        let mut rs = replicaset(3);
        rs["spec"]["minReadySeconds"] = json!(30);
        let pods = [
            // Ready for an hour: available.
            pod("a", "2026-01-01T10:00:00Z", Some("2026-01-01T11:00:00Z")),
            // Ready for 10 s: ready, not yet available.
            pod("b", "2026-01-01T10:00:00Z", Some("2026-01-01T11:59:50Z")),
            pod("c", "2026-01-01T10:00:00Z", None),
            // Done: not counted.
            with(&pod("d", "2026-01-01T10:00:00Z", None), |p| {
                p["status"]["phase"] = json!("Succeeded");
            }),
        ];
        let writes = plan(&rs, &pods, now(), suffixes());
        assert_eq!(describe(&writes), ["status ReplicaSet default/web-abc"]);
        let Write::UpdateStatus(_, status) = &writes[0] else {
            unreachable!()
        };
        assert_eq!(
            *status,
            json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 1, "observedGeneration": 2})
        );
    }

    #[test]
    fn a_replicaset_being_deleted_plans_nothing() {
        let mut rs = replicaset(2);
        rs["metadata"]["deletionTimestamp"] = json!(NOW);
        assert!(plan(&rs, &[], now(), suffixes()).is_empty());
    }
}
