//! The Deployment reconciler: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>` as Kubernetes names them; rolls from old ReplicaSets to
//! the new one within `maxSurge`/`maxUnavailable` (or all at once for `Recreate`); keeps
//! `revisionHistoryLimit` old ReplicaSets for history; reports status and the `Available` and
//! `Progressing` conditions that `kubectl rollout status` and `kubectl wait` read.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::client::view::{View, WriteError};
use crate::model::meta;
use crate::model::store::{now_rfc3339, ObjectKey, Op};

const REVISION: &str = "deployment.kubernetes.io/revision";
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-1a (32 bit) of its canonical JSON, rendered with
/// Kubernetes' `SafeEncodeString` of the decimal value.
pub fn pod_template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).expect("JSON values serialize");
    let mut h: u32 = 0x811c9dc5;
    for b in text.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Resolves an int-or-percent against a total (`maxSurge` rounds up, `maxUnavailable` down).
fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            if round_up {
                (pct * total + 99) / 100
            } else {
                pct * total / 100
            }
        }
        _ => 0,
    }
}

fn replicas(rs: &Value) -> i64 {
    rs["spec"]["replicas"].as_i64().unwrap_or(0)
}

fn status_i64(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

fn revision(rs: &Value) -> i64 {
    meta::annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn new_replicaset(d: &Value, hash: &str, revision: i64) -> Value {
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
    labels["pod-template-hash"] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{}", meta::name(d), hash),
            "namespace": meta::namespace(d),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": d["spec"]["replicas"].as_i64().unwrap_or(1).to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": meta::name(d),
                "uid": meta::uid(d),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

fn with_replicas(rs: &Value, n: i64) -> Value {
    let mut rs = rs.clone();
    rs["spec"]["replicas"] = json!(n);
    rs
}

/// Reconciles one Deployment.
pub async fn reconcile(view: &View, d: &Value) -> Result<(), WriteError> {
    let ns = meta::namespace(d);
    let uid = meta::uid(d);
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let hash = pod_template_hash(&d["spec"]["template"]);
    let new_name = format!("{}-{}", meta::name(d), hash);
    let mut owned: Vec<Arc<Value>> = view
        .list("ReplicaSet", Some(ns))
        .into_iter()
        .filter(|rs| meta::controller_uid(rs) == Some(uid))
        .collect();
    owned.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    let max_revision = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0);

    let new_rs = match owned.iter().find(|rs| meta::name(rs) == new_name) {
        Some(rs) => {
            if revision(rs) < max_revision {
                // Rolling back to an older template: it becomes the newest revision.
                let mut rs2 = (**rs).clone();
                meta::set_annotation(&mut rs2, REVISION, &(max_revision + 1).to_string());
                Arc::new(view.update(rs2).await?)
            } else {
                rs.clone()
            }
        }
        None => Arc::new(
            view.create(new_replicaset(d, &hash, max_revision + 1))
                .await?,
        ),
    };
    let old: Vec<Arc<Value>> = owned
        .iter()
        .filter(|rs| meta::name(rs) != new_name)
        .cloned()
        .collect();

    let strategy = &d["spec"]["strategy"];
    let mut ops = Vec::new();
    let mut new_replicas = replicas(&new_rs);
    let mut old_replicas: Vec<i64> = old.iter().map(|rs| replicas(rs)).collect();
    if strategy["type"] == "Recreate" {
        if old_replicas.iter().any(|&r| r > 0) {
            old_replicas.iter_mut().for_each(|r| *r = 0);
        } else if old.iter().all(|rs| status_i64(rs, "replicas") == 0) {
            new_replicas = desired;
        }
    } else {
        let ru = &strategy["rollingUpdate"];
        let max_surge = scaled(&ru["maxSurge"], desired, true);
        let mut max_unavailable = scaled(&ru["maxUnavailable"], desired, false);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        // Scale the new ReplicaSet up within the surge.
        if new_replicas > desired {
            new_replicas = desired;
        } else {
            let total: i64 = new_replicas + old_replicas.iter().sum::<i64>();
            let room = desired + max_surge - total;
            if room > 0 {
                new_replicas = desired.min(new_replicas + room);
            }
        }
        // Scale old ReplicaSets down while enough pods stay available.
        let min_available = desired - max_unavailable;
        let available: i64 = status_i64(&new_rs, "availableReplicas")
            + old
                .iter()
                .map(|rs| status_i64(rs, "availableReplicas"))
                .sum::<i64>();
        let mut can_remove = (available - min_available).max(0);
        for (rs, r) in old.iter().zip(old_replicas.iter_mut()) {
            // Unavailable old pods help nobody: remove them first.
            let unhealthy = (*r - status_i64(rs, "availableReplicas")).max(0);
            *r -= unhealthy;
        }
        for r in old_replicas.iter_mut() {
            let take = can_remove.min(*r);
            *r -= take;
            can_remove -= take;
        }
        if old.is_empty() {
            new_replicas = desired;
        }
    }
    if new_replicas != replicas(&new_rs) {
        ops.push(Op::Update(with_replicas(&new_rs, new_replicas)));
    }
    for (rs, r) in old.iter().zip(&old_replicas) {
        if *r != replicas(rs) {
            ops.push(Op::Update(with_replicas(rs, *r)));
        }
    }
    // History: keep `revisionHistoryLimit` drained old ReplicaSets.
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let drained: Vec<&Arc<Value>> = old
        .iter()
        .zip(&old_replicas)
        .filter(|(rs, r)| **r == 0 && status_i64(rs, "replicas") == 0)
        .map(|(rs, _)| rs)
        .collect();
    if drained.len() > limit {
        let mut by_revision = drained.clone();
        by_revision.sort_by_key(|rs| revision(rs));
        for rs in &by_revision[..drained.len() - limit] {
            ops.push(Op::Delete(ObjectKey::of(rs)));
        }
    }
    let scaled: Vec<(String, i64, i64)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Update(rs) => {
                let before = owned
                    .iter()
                    .find(|o| meta::name(o) == meta::name(rs))
                    .map_or(0, |o| replicas(o));
                Some((meta::name(rs).to_string(), before, replicas(rs)))
            }
            _ => None,
        })
        .collect();
    if !ops.is_empty() {
        view.apply(ops).await?;
        for (name, before, after) in scaled {
            let how = if after > before { "up" } else { "down" };
            crate::client::events::record_via(
                view.client(),
                d,
                crate::client::events::Type::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {how} replica set {name} from {before} to {after}"),
                crate::client::events::Source::DeploymentController,
            )
            .await;
        }
    }
    write_status(view, d, &new_rs, &old, desired).await
}

async fn write_status(
    view: &View,
    d: &Value,
    new_rs: &Value,
    old: &[Arc<Value>],
    desired: i64,
) -> Result<(), WriteError> {
    let all = std::iter::once(new_rs).chain(old.iter().map(|rs| &**rs));
    let (mut total, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        total += status_i64(rs, "replicas");
        ready += status_i64(rs, "readyReplicas");
        available += status_i64(rs, "availableReplicas");
    }
    let updated = status_i64(new_rs, "replicas");
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let max_unavailable = if d["spec"]["strategy"]["type"] == "Recreate" {
        0
    } else {
        scaled(&ru["maxUnavailable"], desired, false)
    };
    let old_status = &d["status"];
    let old_condition = |t: &str| {
        old_status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .cloned()
    };
    let condition = |t: &str, status: &str, reason: &str, message: String| {
        let previous = old_condition(t);
        let now = now_rfc3339();
        let same = previous.as_ref().is_some_and(|p| p["status"] == status);
        let same_reason = previous
            .as_ref()
            .is_some_and(|p| p["status"] == status && p["reason"] == reason);
        json!({
            "type": t,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": if same { previous.as_ref().unwrap()["lastTransitionTime"].clone() } else { json!(now) },
            "lastUpdateTime": if same_reason { previous.as_ref().unwrap()["lastUpdateTime"].clone() } else { json!(now) },
        })
    };
    let available_cond = if available >= desired - max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    let rs_name = meta::name(new_rs);
    let complete = updated == desired
        && total == desired
        && available == desired
        && status_i64(new_rs, "observedGeneration")
            >= new_rs["metadata"]["generation"].as_i64().unwrap_or(0);
    let progressing = if complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs_name:?} has successfully progressed."),
        )
    } else {
        let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        let prev = old_condition("Progressing");
        let counts_changed = old_status["updatedReplicas"].as_i64().unwrap_or(-1) != updated
            || old_status["availableReplicas"].as_i64().unwrap_or(-1) != available
            || old_status["observedGeneration"] != d["metadata"]["generation"];
        let since = prev
            .as_ref()
            .filter(|p| p["reason"] == "ReplicaSetUpdated" && !counts_changed)
            .and_then(|p| p["lastUpdateTime"].as_str())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let overdue =
            since.is_some_and(|t| jiff::Timestamp::now().as_second() - t.as_second() > deadline);
        let already_overdue = prev
            .as_ref()
            .is_some_and(|p| p["reason"] == "ProgressDeadlineExceeded")
            && !counts_changed;
        if overdue || already_overdue {
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet {rs_name:?} has timed out progressing."),
            )
        } else if counts_changed
            || prev
                .as_ref()
                .is_none_or(|p| p["reason"] != "ReplicaSetUpdated")
        {
            // Progress was made: a fresh lastUpdateTime restarts the deadline.
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet {rs_name:?} is progressing."),
            );
            c["lastUpdateTime"] = json!(now_rfc3339());
            c
        } else {
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet {rs_name:?} is progressing."),
            )
        }
    };
    let status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [available_cond, progressing],
    });
    view.update_status(&ObjectKey::of(d), status).await?;
    Ok(())
}
