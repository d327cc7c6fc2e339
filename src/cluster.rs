//! The agent's view of the control plane: pods from the store, status written back, graceful
//! deletions finished. The only place where the agent and the controller meet.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use skiff_controller::store::{ObjectKey, Store};
use tokio::sync::broadcast;

/// Implements [`skiff_agent::Cluster`] over the store.
pub struct StoreCluster {
    store: Arc<Store>,
    changes: broadcast::Sender<()>,
}

impl StoreCluster {
    /// Bridges the store's events about pods into the agent's change notifications.
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        let (changes, _) = broadcast::channel(64);
        let mut events = store.subscribe();
        let tx = changes.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    // A status change written by the agent itself wakes it too; its sync is
                    // idempotent and writes nothing when nothing changed.
                    Ok(e)
                        if matches!(
                            e.object["kind"].as_str(),
                            Some("Pod" | "Service" | "EndpointSlice")
                        ) =>
                    {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(());
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Arc::new(StoreCluster { store, changes })
    }
}

fn key(pod: &Pod) -> ObjectKey {
    ObjectKey::new(
        "Pod",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

impl skiff_agent::Cluster for StoreCluster {
    fn objects(&self, kind: &str) -> Vec<serde_json::Value> {
        self.store
            .list(kind, None)
            .iter()
            .map(|o| (**o).clone())
            .collect()
    }

    fn update_service(
        &self,
        namespace: &str,
        name: &str,
        spec: Option<serde_json::Value>,
        status: Option<serde_json::Value>,
    ) -> anyhow::Result<()> {
        let key = ObjectKey::new("Service", namespace, name);
        let Some(current) = self.store.get(&key) else {
            return Ok(());
        };
        if let Some(serde_json::Value::Object(fields)) = spec {
            let mut svc = (*current).clone();
            for (k, v) in fields {
                svc["spec"][k] = v;
            }
            if svc != *current {
                self.store.update(svc)?;
            }
        }
        if let Some(status) = status {
            self.store.update_status(&key, status)?;
        }
        Ok(())
    }

    fn event(&self, namespace: &str, pod: &str, warning: bool, reason: &str, message: &str) {
        let Some(obj) = self.store.get(&ObjectKey::new("Pod", namespace, pod)) else {
            return;
        };
        let ty = if warning {
            skiff_controller::events::Type::Warning
        } else {
            skiff_controller::events::Type::Normal
        };
        skiff_controller::events::record(
            &self.store,
            &obj,
            ty,
            reason,
            message,
            skiff_controller::events::Source::Kubelet,
        );
    }

    fn pods(&self) -> Vec<Pod> {
        self.store
            .list("Pod", None)
            .iter()
            .filter_map(|v| match serde_json::from_value::<Pod>((**v).clone()) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(pod = %ObjectKey::of(v), "stored pod does not decode: {e}");
                    None
                }
            })
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changes.subscribe()
    }

    fn set_pod_status(&self, pod: &Pod, status: PodStatus) -> anyhow::Result<()> {
        let key = key(pod);
        // Only for the same pod (a re-created pod of the same name has another uid).
        match self.store.get(&key) {
            Some(current) if current["metadata"]["uid"].as_str() == pod.metadata.uid.as_deref() => {
                self.store
                    .update_status(&key, serde_json::to_value(status)?)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn secret(&self, namespace: &str, name: &str) -> Option<k8s_openapi::api::core::v1::Secret> {
        let value = self.store.get(&ObjectKey::new("Secret", namespace, name))?;
        serde_json::from_value((*value).clone())
            .map_err(|e| tracing::error!(secret = %format!("{namespace}/{name}"), "stored secret does not decode: {e}"))
            .ok()
    }

    fn pod_gone(&self, pod: &Pod) -> anyhow::Result<()> {
        let key = key(pod);
        match self.store.get(&key) {
            Some(current) if current["metadata"]["uid"].as_str() == pod.metadata.uid.as_deref() => {
                self.store.remove(&key)?;
            }
            _ => {}
        }
        Ok(())
    }
}
