//! The ReplicaSet reconciler: keeps `spec.replicas` Pods from the template alive, each owned by
//! the ReplicaSet (`ownerReferences`, `controller: true`), and reports their counts in `status`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::{ObjectKey, Op};

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random 5-character suffix, as Kubernetes' `generateName` makes.
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| ALPHANUMS[rand::random::<usize>() % ALPHANUMS.len()] as char)
        .collect()
}

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

/// A new Pod from a ReplicaSet's template.
fn new_pod(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let name = format!("{}-{}", meta::name(rs), random_suffix());
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
    let mut spec = template["spec"].clone();
    // One node: the pod is bound to it at once (what the scheduler would do).
    spec["nodeName"] = json!(crate::model::node::name());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// Reconciles one ReplicaSet: creates or deletes Pods, then writes status.
pub async fn reconcile(view: &View, rs: &Value) -> Result<(), WriteError> {
    if meta::is_terminating(rs) {
        return Ok(());
    }
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let pods = owned_pods(view, meta::namespace(rs), meta::uid(rs));
    let mut active: Vec<&Arc<Value>> = pods.iter().filter(|p| pod_active(p)).collect();
    let mut ops = Vec::new();
    if active.len() < want {
        for _ in active.len()..want {
            ops.push(Op::Create(new_pod(rs)));
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
            ops.push(Op::Delete(ObjectKey::of(p)));
        }
    }
    if !ops.is_empty() {
        for op in ops {
            let (reason, verb, name) = match &op {
                Op::Delete(k) => ("SuccessfulDelete", "Deleted", k.name.clone()),
                Op::Create(p) => ("SuccessfulCreate", "Created", meta::name(p).to_string()),
                _ => unreachable!("only creations and deletions"),
            };
            view.apply(vec![op]).await?;
            crate::client::events::record_via(
                view.client(),
                rs,
                crate::client::events::Type::Normal,
                reason,
                &format!("{verb} pod: {name}"),
                crate::client::events::Source::ReplicaSetController,
            )
            .await;
        }
        // The status follows once the caches show the change (the next pass).
        return Ok(());
    }
    // Status, from what exists.
    let now = jiff::Timestamp::now();
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let active: Vec<_> = pods.iter().filter(|p| pod_active(p)).collect();
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count();
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    });
    view.update_status(&ObjectKey::of(rs), status).await?;
    Ok(())
}
