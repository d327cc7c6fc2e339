//! The agent's view of the control plane, as a client of the API server (architecture
//! decision 2): it reads the daemon's shared caches (`skiff_controller::client::view::View`, kept by
//! `kube`'s watcher over the in-process client — one informer per kind for the whole process,
//! as client-go's shared informers), and writes as API requests: status, deletions, Service
//! allocations and Events take the same path as kubectl's.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde::de::DeserializeOwned;
use serde_json::json;
use skiff_agent::{Write, WriteError};
use skiff_controller::client::events;
use skiff_controller::client::view::View;
use skiff_controller::model::store::ObjectKey;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// The field manager of the node's writes.
const MANAGER: &str = "skiff-node";

/// Implements [`skiff_agent::Cluster`] over the API.
pub struct KubeCluster {
    client: kube::Client,
    view: Arc<View>,
    issuer: Arc<skiff_controller::api::sa_token::Issuer>,
    changes: broadcast::Sender<()>,
}

/// A cached object as a typed one, read from the shared tree (no copy of it first: the
/// agent decodes every bound pod at each pass).
fn decode<K: DeserializeOwned>(v: &serde_json::Value) -> Option<K> {
    K::deserialize(v)
        .map_err(|e| tracing::error!(object = %ObjectKey::of(v), "does not decode: {e}"))
        .ok()
}

impl KubeCluster {
    /// The agent's cluster over `view` (already filled), writing with `client`; wakes the
    /// agent on every change of a Pod, Service, EndpointSlice, PersistentVolumeClaim or
    /// PersistentVolume (a pod waiting for its claim starts once it is bound), NetworkPolicy or
    /// Namespace (policies select namespaces by label) until `shutdown` flips.
    pub fn start(
        client: kube::Client,
        view: Arc<View>,
        issuer: Arc<skiff_controller::api::sa_token::Issuer>,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (changes, _) = broadcast::channel(64);
        let mut seen = view.subscribe();
        let tx = changes.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    kind = seen.recv() => match kind {
                        Ok("Pod" | "Service" | "EndpointSlice" | "PersistentVolumeClaim" | "PersistentVolume"
                            | "NetworkPolicy" | "Namespace" | "ServiceAccount" | "ConfigMap")
                        | Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = tx.send(());
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        (
            Arc::new(KubeCluster {
                client,
                view,
                issuer,
                changes,
            }),
            task,
        )
    }

    fn pod_api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl KubeCluster {
    /// Records an event about a cached object (none: nothing), in the background.
    fn record(
        &self,
        object: Option<Arc<serde_json::Value>>,
        warning: bool,
        reason: &str,
        message: &str,
        source: events::Source,
    ) {
        let Some(o) = object else {
            return;
        };
        let (client, reason, message) =
            (self.client.clone(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            let ty = if warning {
                events::Type::Warning
            } else {
                events::Type::Normal
            };
            events::record_via(&client, &o, ty, &reason, &message, source).await;
        });
    }
}

impl skiff_agent::Cluster for KubeCluster {
    fn pods(&self) -> Vec<Pod> {
        // The pods the scheduler bound to this node; the others are not the agent's.
        let node = skiff_controller::model::node::name();
        self.view
            .list("Pod", None)
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .filter_map(|p| decode(p))
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changes.subscribe()
    }

    fn set_pod_status<'a>(&'a self, pod: &'a Pod, status: PodStatus) -> Write<'a> {
        Box::pin(async move {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            // The uid makes it a write to this very pod (a re-created pod of the same name
            // has another); no resourceVersion: the status is the node's alone.
            let mut body = Pod {
                metadata: pod.metadata.clone(),
                spec: pod.spec.clone(),
                status: Some(status),
            };
            body.metadata.resource_version = None;
            body.metadata.managed_fields = None;
            match self
                .pod_api(pod)
                .replace_status(name, &PostParams::default(), &body)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(skiff_agent::WriteError::new(e)),
            }
        })
    }

    fn pod_gone<'a>(&'a self, pod: &'a Pod) -> Write<'a> {
        Box::pin(async move {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.pod_api(pod).delete(name, &params).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(skiff_agent::WriteError::new(e)),
            }
        })
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        decode(&*self.view.get(&ObjectKey::new("Secret", namespace, name))?)
    }

    fn event(&self, namespace: &str, pod: &str, warning: bool, reason: &str, message: &str) {
        let p = self.view.get(&ObjectKey::new("Pod", namespace, pod));
        self.record(p, warning, reason, message, events::Source::Kubelet);
    }

    fn service_event(
        &self,
        namespace: &str,
        name: &str,
        warning: bool,
        reason: &str,
        message: &str,
    ) {
        let s = self.view.get(&ObjectKey::new("Service", namespace, name));
        self.record(
            s,
            warning,
            reason,
            message,
            events::Source::ServiceLoadBalancer,
        );
    }

    fn service_account_token(&self, pod: &Pod, seconds: i64) -> Result<String, WriteError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        let sa = self
            .view
            .get(&ObjectKey::new("ServiceAccount", ns, name))
            .ok_or_else(|| {
                WriteError::new(std::io::Error::other(format!(
                    "serviceaccount {name:?} not found"
                )))
            })?;
        let pod = serde_json::to_value(pod).map_err(WriteError::new)?;
        let now = jiff::Timestamp::now().as_second();
        self.issuer
            .issue(&sa, Some(&pod), seconds, now)
            .map(|(token, _)| token)
            .map_err(WriteError::new)
    }

    fn objects(&self, kind: &str) -> Vec<serde_json::Value> {
        self.view
            .list(kind, None)
            .iter()
            .map(|o| (**o).clone())
            .collect()
    }

    fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        self.view
            .get(&ObjectKey::new(kind, namespace, name))
            .map(Arc::unwrap_or_clone)
    }

    fn update_service<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        spec: Option<serde_json::Value>,
        status: Option<serde_json::Value>,
    ) -> Write<'a> {
        Box::pin(async move {
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            let pp = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..PatchParams::default()
            };
            // The allocation was planned on the cached Service: it applies to that version
            // only (a user's change in between wins; the next sync plans again).
            let rv = self
                .view
                .get(&ObjectKey::new("Service", namespace, name))
                .and_then(|s| s["metadata"]["resourceVersion"].as_str().map(String::from));
            let r = async {
                if let Some(spec) = spec {
                    let patch = json!({"metadata": {"resourceVersion": rv}, "spec": spec});
                    api.patch(name, &pp, &Patch::Merge(patch)).await?;
                }
                if let Some(status) = status {
                    api.patch_status(name, &pp, &Patch::Merge(json!({ "status": status })))
                        .await?;
                }
                Ok::<_, kube::Error>(())
            }
            .await;
            match r {
                Err(e) if is_not_found(&e) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                r => r.map_err(skiff_agent::WriteError::new),
            }
        })
    }
}
