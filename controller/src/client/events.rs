//! Kubernetes Events (`v1/Event`) for what happens to objects — what `kubectl describe` and
//! `kubectl get events` show. Repeats of the same (object, reason, message) bump `count` and
//! `lastTimestamp` of one Event instead of adding new ones, as the Kubernetes event recorder
//! does. The API server expires them (`api/housekeeping.rs`).

use serde_json::{json, Value};

use crate::model::meta;
use crate::model::store::now_rfc3339;

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
    /// The StatefulSet reconciler.
    StatefulSetController,
    /// The Job reconciler.
    JobController,
    /// The CronJob reconciler.
    CronJobController,
    /// The DaemonSet reconciler.
    DaemonSetController,
    /// The Ingress reconciler and its certificates.
    Ingress,
    /// The volume reconciler: binding, provisioning, reclaiming, protection.
    VolumeController,
    /// The scheduler.
    Scheduler,
    /// The node's LoadBalancer Services (k3s's ServiceLB).
    ServiceLoadBalancer,
    /// The manifests folder.
    ManifestsFolder,
    /// The HelmChart reconciler (k3s's helm-controller).
    HelmController,
}

impl Source {
    fn component(self) -> &'static str {
        match self {
            Source::Kubelet => "kubelet",
            Source::DeploymentController => "deployment-controller",
            Source::ReplicaSetController => "replicaset-controller",
            Source::StatefulSetController => "statefulset-controller",
            Source::JobController => "job-controller",
            Source::CronJobController => "cronjob-controller",
            Source::DaemonSetController => "daemonset-controller",
            Source::Ingress => "skiff-ingress",
            Source::VolumeController => "persistentvolume-controller",
            Source::Scheduler => "default-scheduler",
            Source::ServiceLoadBalancer => "service-lb-controller",
            Source::ManifestsFolder => "skiff-manifests-folder",
            Source::HelmController => "helm-controller",
        }
    }
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
        "source": {"component": source.component(), "host": crate::model::node::name()},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": match ty { Type::Normal => "Normal", Type::Warning => "Warning" },
        "reportingComponent": source.component(),
        "reportingInstance": crate::model::node::name(),
    })
}

/// Records an event about a manifests-folder file: in `namespace`, about `object` (the object
/// the file declares first, or the Node when that is not known), named after (file, reason,
/// message) so that the same failure of the same file bumps one Event's count.
pub async fn record_for_file(
    client: &kube::Client,
    file: &str,
    namespace: &str,
    object: &Value,
    ty: Type,
    reason: &str,
    message: &str,
) {
    use std::hash::{Hash, Hasher};
    let mut event = new_event(object, ty, reason, message, Source::ManifestsFolder);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (file, reason, message).hash(&mut h);
    event["metadata"] = json!({
        "name": format!("skiff-manifest.{:016x}", h.finish()),
        "namespace": namespace,
    });
    if let Err(e) = create_or_count(client, event).await {
        tracing::debug!(file, "recording an event failed: {e}");
    }
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
    create_or_count(client, new_event(object, ty, reason, message, source)).await
}

/// Creates `event`, or bumps the count of the one of its name.
async fn create_or_count(client: &kube::Client, event: Value) -> Result<(), kube::Error> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
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
