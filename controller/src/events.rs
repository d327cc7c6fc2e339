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

/// A new Event about `object`. Its name is derived from (object, reason, message), so a repeat
/// finds it and bumps its count, as client-go's event correlator does.
fn new_event(object: &Value, ty: Type, reason: &str, message: &str, source: Source) -> Value {
    use std::hash::{Hash, Hasher};
    let ns = match meta::namespace(object) {
        "" => "default",
        ns => ns,
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (meta::uid(object), reason, message).hash(&mut h);
    let now = now_rfc3339();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{:016x}", meta::name(object), h.finish()), "namespace": ns},
        "involvedObject": {
            "kind": object["kind"],
            "namespace": meta::namespace(object),
            "name": meta::name(object),
            "uid": meta::uid(object),
            "apiVersion": object["apiVersion"],
            "resourceVersion": object["metadata"]["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "source": {"component": source.component(), "host": node_name()},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match ty { Type::Normal => "Normal", Type::Warning => "Warning" },
        "reportingComponent": source.component(),
        "reportingInstance": node_name(),
    })
}

/// Records an event through the API (the controllers' and the node's way, as clients); a
/// repeat bumps the count of the first. Never fails the caller.
pub async fn record_via(
    client: &kube::Client,
    object: &Value,
    ty: Type,
    reason: &str,
    message: &str,
    source: Source,
) {
    if let Err(e) = try_record_via(client, object, ty, reason, message, source).await {
        tracing::debug!("recording an event failed: {e}");
    }
}

async fn try_record_via(
    client: &kube::Client,
    object: &Value,
    ty: Type,
    reason: &str,
    message: &str,
    source: Source,
) -> Result<(), kube::Error> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
    let event = new_event(object, ty, reason, message, source);
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), meta::namespace(&event), &ar);
    let name = meta::name(&event).to_string();
    let now = event["lastTimestamp"].clone();
    let obj: DynamicObject = serde_json::from_value(event).expect("a valid Event");
    match api.create(&PostParams::default(), &obj).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let current = api.get(&name).await?;
            let count = current.data["count"].as_i64().unwrap_or(1) + 1;
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"count": count, "lastTimestamp": now})),
            )
            .await?;
            Ok(())
        }
        r => r.map(|_| ()),
    }
}

/// Deletes events whose last occurrence is older than [`TTL_SECONDS`], and those of deleted
/// namespaces (the API server's own housekeeping, as etcd's TTL is Kubernetes').
pub fn expire(store: &Store) -> Result<(), crate::store::StoreError> {
    let now = jiff::Timestamp::now().as_second();
    let namespaces: std::collections::HashSet<String> = store
        .list("Namespace", None)
        .iter()
        .map(|n| meta::name(n).to_string())
        .collect();
    let old: Vec<ObjectKey> = store
        .list("Event", None)
        .iter()
        .filter(|e| {
            !namespaces.contains(meta::namespace(e))
                || e["lastTimestamp"]
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
