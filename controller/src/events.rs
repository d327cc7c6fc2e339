//! Kubernetes Events (`v1/Event`) for what happens to objects — what `kubectl describe` and
//! `kubectl get events` show. Repeats of the same (object, reason, message) bump `count` and
//! `lastTimestamp` of one Event instead of adding new ones, as the Kubernetes event recorder
//! does; events older than an hour are collected.

use serde_json::{json, Value};

use crate::meta;
use crate::store::{now_rfc3339, ObjectKey, Store};

/// How long events are kept.
pub const TTL_SECONDS: i64 = 3600;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Who reports the event (`source.component`).
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// The node agent.
    Kubelet,
    /// The Deployment reconciler.
    DeploymentController,
    /// The ReplicaSet reconciler.
    ReplicaSetController,
    /// The Ingress reconciler and its certificates.
    Ingress,
}

impl Source {
    fn component(self) -> &'static str {
        match self {
            Source::Kubelet => "kubelet",
            Source::DeploymentController => "deployment-controller",
            Source::ReplicaSetController => "replicaset-controller",
            Source::Ingress => "skiff-ingress",
        }
    }
}

/// The node's name, as events and pods report it.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Records an event about `object` (any stored object). Failures are logged, never fatal.
pub fn record(
    store: &Store,
    object: &Value,
    ty: Type,
    reason: &str,
    message: &str,
    source: Source,
) {
    if let Err(e) = try_record(store, object, ty, reason, message, source) {
        tracing::debug!("recording an event failed: {e}");
    }
}

fn try_record(
    store: &Store,
    object: &Value,
    ty: Type,
    reason: &str,
    message: &str,
    source: Source,
) -> Result<(), crate::store::StoreError> {
    let ns = match meta::namespace(object) {
        "" => "default",
        ns => ns,
    };
    let involved = json!({
        "kind": object["kind"],
        "namespace": meta::namespace(object),
        "name": meta::name(object),
        "uid": meta::uid(object),
        "apiVersion": object["apiVersion"],
        "resourceVersion": object["metadata"]["resourceVersion"],
    });
    let now = now_rfc3339();
    // One Event per (object, reason, message): repeats bump the count.
    let existing = store.list("Event", Some(ns)).into_iter().find(|e| {
        e["involvedObject"]["uid"] == involved["uid"]
            && e["reason"] == reason
            && e["message"] == message
    });
    if let Some(e) = existing {
        let mut e = (*e).clone();
        e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
        e["lastTimestamp"] = json!(now);
        e["involvedObject"] = involved;
        if let Some(m) = e["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        store.update(e)?;
        return Ok(());
    }
    let suffix: String = (0..16)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    store.create(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{suffix}", meta::name(object)), "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": source.component(), "host": node_name()},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match ty { Type::Normal => "Normal", Type::Warning => "Warning" },
        "reportingComponent": source.component(),
        "reportingInstance": node_name(),
    }))?;
    Ok(())
}

/// Deletes events whose last occurrence is older than [`TTL_SECONDS`].
pub fn expire(store: &Store) -> Result<(), crate::store::StoreError> {
    let now = jiff::Timestamp::now().as_second();
    let old: Vec<ObjectKey> = store
        .list("Event", None)
        .iter()
        .filter(|e| {
            e["lastTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| now - t.as_second() > TTL_SECONDS)
        })
        .map(|e| ObjectKey::of(e))
        .collect();
    for key in old {
        store.remove(&key)?;
    }
    Ok(())
}
